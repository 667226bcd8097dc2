"""The native template step: request values are data, never YAML text; template errors point at the template."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kratix import yamltext
from kratix.documents import SourceDoc, SourceTree
from kratix.manifests import WorkflowResult
from kratix.platform import Container, Pipeline, Promise
from kratix.render import Renderer, merge_status
from kratix.settings import RenderSettings

PROMISE_FILE = "promises/demo/promise.yaml"

# Strings that would change the structure of a document if a template pasted them in as text.
ADVERSARIAL = [
    "plain",
    "two\nlines",
    "a: b",
    "key: value\nother: injected",
    "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: stolen",
    "...",
    "# not a comment",
    "value # trailing",
    "'single' \"double\"",
    "\"unterminated",
    "{a: 1, b: [2, 3]}",
    "[1, 2, 3]",
    "&anchor value",
    "*alias",
    "!!python/object:os.system",
    "!custom tag",
    "- item",
    "? complex key",
    "| block",
    "> folded",
    "%YAML 1.1",
    "@at `backtick`",
    "on",
    "0755",
    "2024-01-01",
    "1e3",
    "null",
    "",
    " leading and trailing ",
    "\ttab",
    "unicode ✓ ünïcödé",
    "\\back\\slash",
    "{{ not a template }}",
    "{% raw %}",
    "kx000000n0k",
]

TEMPLATE = b"""apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ request.metadata.name }}
data:
  whole: {{ request.spec.value }}
  joined: prefix-{{ request.spec.value }}-suffix
  quoted: "{{ request.spec.value }}"
  single: '{{ request.spec.value }}'
  block: |
    line one
    {{ request.spec.value }}
"""


def promise_with(files: dict[str, bytes], containers: tuple[Container, ...] = (Container("render", template="t"),)
                 ) -> tuple[Promise, Pipeline, Renderer]:
    tree = SourceTree({PROMISE_FILE: b"kind: Promise\n", **{f"promises/demo/{k}": v for k, v in files.items()}})
    promise = Promise(name="demo", source=SourceDoc(PROMISE_FILE, 0, 1, {"kind": "Promise", "spec": {}}),
                      folder="promises/demo", api=None, crd=None)
    return promise, Pipeline("instance", containers), Renderer(tree, settings=RenderSettings())


def request(spec: dict[str, Any], name: str = "demo-1") -> dict[str, Any]:
    return {"apiVersion": "example.io/v1", "kind": "Demo", "metadata": {"name": name, "namespace": "team-a"},
            "spec": spec}


def render(files: dict[str, bytes], spec: dict[str, Any]) -> WorkflowResult:
    promise, pipeline, renderer = promise_with(files)
    return renderer.render_workflow(promise, [pipeline], request(spec), workflow_type="resource", env={})


def only_document(result: WorkflowResult) -> dict[str, Any]:
    assert result.failure is None, result.failure
    [output] = result.outputs
    [file] = output.files
    [document] = file.documents
    return dict(document)


def assert_value_stays_one_scalar(value: str) -> None:
    document = only_document(render({"t/cm.yaml.j2": TEMPLATE}, {"value": value}))
    assert set(document) == {"apiVersion", "kind", "metadata", "data"}
    assert document["data"] == {
        "whole": value,
        "joined": f"prefix-{value}-suffix",
        "quoted": value,
        "single": value,
        "block": f"line one\n{value}\n",
    }
    # and what we emit reads back the same
    assert yamltext.load_transformed(yamltext.dump(document).decode(), lambda n: n) == [document]


@pytest.mark.parametrize("value", ADVERSARIAL)
def test_adversarial_values_never_change_the_structure(value: str) -> None:
    assert_value_stays_one_scalar(value)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40))
def test_any_text_value_stays_one_scalar(value: str) -> None:
    assert_value_stays_one_scalar(value)


def test_whole_scalars_keep_their_type_and_structures_are_inserted() -> None:
    template = b"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ request.metadata.name }}
  labels: {{ request.spec.labels }}
spec:
  replicas: {{ request.spec.replicas }}
  paused: {{ request.spec.paused }}
  template:
    spec:
      containers: {{ request.spec.containers }}
      env:
        - name: REPLICAS
          value: "{{ request.spec.replicas }}"
"""
    containers = [{"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]
    document = only_document(render({"t/deploy.yaml.j2": template},
                                    {"labels": {"team": "on"}, "replicas": 3, "paused": False,
                                     "containers": containers}))
    assert document["metadata"]["labels"] == {"team": "on"}
    assert document["spec"]["replicas"] == 3
    assert document["spec"]["paused"] is False
    assert document["spec"]["template"]["spec"]["containers"] == containers
    assert document["spec"]["template"]["spec"]["env"] == [{"name": "REPLICAS", "value": "3"}]


def test_loops_and_conditionals_shape_the_document() -> None:
    template = b"""apiVersion: v1
kind: ConfigMap
metadata:
  name: dbs
data:
{% for db in request.spec.databases %}
  {{ db }}: "enabled"
{% endfor %}
{% if request.spec.get('extra') %}
  extra: "yes"
{% endif %}
"""
    document = only_document(render({"t/cm.yaml.j2": template}, {"databases": ["orders", "users: x"]}))
    assert document["data"] == {"orders": "enabled", "users: x": "enabled"}


def test_yaml_files_beside_templates_are_copied() -> None:
    static = b"apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: fixed\n"
    promise, pipeline, renderer = promise_with({"t/sa.yaml": static, "t/cm.yaml.j2": TEMPLATE})
    result = renderer.render_workflow(promise, [pipeline], request({"value": "x"}), workflow_type="resource",
                                      env={})
    assert result.failure is None
    [output] = result.outputs
    assert [f.path for f in output.files] == ["cm.yaml", "sa.yaml"]
    assert output.files[1].documents == ({"apiVersion": "v1", "kind": "ServiceAccount",
                                          "metadata": {"name": "fixed"}},)


def test_relative_includes_of_partials() -> None:
    partial = b"app.kubernetes.io/part-of: {{ request.metadata.name }}\n"
    template = b"""apiVersion: v1
kind: ConfigMap
metadata:
  name: x
  labels:
    {% filter indent(4) %}{% include "./_labels.j2" %}{% endfilter %}
"""
    document = only_document(render({"t/cm.yaml.j2": template, "t/_labels.j2": partial}, {}))
    assert document["metadata"]["labels"] == {"app.kubernetes.io/part-of": "demo-1"}


def test_a_missing_field_names_the_template_line() -> None:
    template = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: {{ request.spec.nope }}\n"
    result = render({"t/cm.yaml.j2": template}, {})
    assert result.failure is not None
    assert (result.failure.file, result.failure.line) == ("promises/demo/t/cm.yaml.j2", 6)
    assert "nope" in result.failure.message
    assert result.failure.step == "instance/render"


def test_a_template_syntax_error_names_the_template_line() -> None:
    template = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ request.metadata.name }\n"
    result = render({"t/cm.yaml.j2": template}, {})
    assert result.failure is not None
    assert result.failure.code == "render.template-syntax"
    assert (result.failure.file, result.failure.line) == ("promises/demo/t/cm.yaml.j2", 4)


def test_the_sandbox_refuses_python_internals() -> None:
    template = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ ''.__class__.__mro__[1].__subclasses__() }}\n"
    result = render({"t/cm.yaml.j2": template}, {})
    assert result.failure is not None and "unsafe" in result.failure.message.lower()


@pytest.mark.parametrize("body, problem", [
    (b"- just\n- a list\n", "not a Kubernetes object"),
    (b"apiVersion: v1\nmetadata:\n  name: x\n", "has no kind"),
    (b"apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "has no metadata.name"),
])
def test_every_output_document_must_be_an_object(body: bytes, problem: str) -> None:
    result = render({"t/out.yaml.j2": body}, {})
    assert result.failure is not None and problem in result.failure.message


def test_status_merge_overwrites_keys_and_merges_conditions_by_type() -> None:
    earlier = {"stage": "one", "conditions": [{"type": "A", "status": "False"}, {"type": "B", "status": "True"}]}
    written = {"stage": "two", "conditions": [{"type": "A", "status": "True"}], "done": True}
    assert merge_status(earlier, written) == {
        "stage": "two", "done": True,
        "conditions": [{"type": "A", "status": "True"}, {"type": "B", "status": "True"}],
    }
