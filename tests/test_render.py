"""The native template step: request values are data, never YAML text; template errors point at the template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox
import pytest
import yaml
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from kratix import yamltext
from kratix.model.documents import SourceDoc, SourceTree
from kratix.model.manifests import WorkflowResult
from kratix.model.platform import Container, Pipeline, Promise, RequestKey, ResourceRequest
from kratix.model.settings import RenderSettings
from kratix.workflows import templating
from kratix.workflows.contract import merge_status
from kratix.workflows.render import Renderer
from tests.platforms import CONFIGMAP_TEMPLATE, database, kratix, platform_files, write_files

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
    '"unterminated',
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


def promise_with(
    files: dict[str, bytes], containers: tuple[Container, ...] = (Container("render", template="t"),)
) -> tuple[Promise, Pipeline, Renderer]:
    tree = SourceTree({PROMISE_FILE: b"kind: Promise\n", **{f"promises/demo/{k}": v for k, v in files.items()}})
    promise = Promise(
        name="demo",
        source=SourceDoc(PROMISE_FILE, 0, 1, {"kind": "Promise", "spec": {}}),
        folder="promises/demo",
        api=None,
        crd=None,
    )
    return promise, Pipeline("instance", containers), Renderer(tree, settings=RenderSettings())


REQUEST = ResourceRequest(
    RequestKey("Demo", "team-a", "demo-1"),
    "example.io/v1",
    "demo",
    SourceDoc("requests/team-a/demo-1.yaml", 0, 1, {}),
    {},
)


def request(spec: dict[str, Any], name: str = "demo-1") -> dict[str, Any]:
    return {
        "apiVersion": "example.io/v1",
        "kind": "Demo",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": spec,
    }


def render(files: dict[str, bytes], spec: dict[str, Any]) -> WorkflowResult:
    promise, pipeline, renderer = promise_with(files)
    return renderer.render_workflow(promise, [pipeline], request(spec), request=REQUEST)


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
    document = only_document(
        render(
            {"t/deploy.yaml.j2": template},
            {"labels": {"team": "on"}, "replicas": 3, "paused": False, "containers": containers},
        )
    )
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
    result = renderer.render_workflow(promise, [pipeline], request({"value": "x"}), request=REQUEST)
    assert result.failure is None
    [output] = result.outputs
    assert [f.path for f in output.files] == ["cm.yaml", "sa.yaml"]
    assert output.files[1].documents == ({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "fixed"}},)


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


@pytest.mark.parametrize(
    "body, problem",
    [
        (b"- just\n- a list\n", "not a Kubernetes object"),
        (b"apiVersion: v1\nmetadata:\n  name: x\n", "has no kind"),
        (b"apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "has no metadata.name"),
    ],
)
def test_every_output_document_must_be_an_object(body: bytes, problem: str) -> None:
    result = render({"t/out.yaml.j2": body}, {})
    assert result.failure is not None and problem in result.failure.message


def test_status_merge_overwrites_keys_and_merges_conditions_by_type() -> None:
    earlier = {"stage": "one", "conditions": [{"type": "A", "status": "False"}, {"type": "B", "status": "True"}]}
    written = {"stage": "two", "conditions": [{"type": "A", "status": "True"}], "done": True}
    assert merge_status(earlier, written) == {
        "stage": "two",
        "done": True,
        "conditions": [{"type": "A", "status": "True"}, {"type": "B", "status": "True"}],
    }


# ---------------------------------------------------------------- text rendered inside a template

CONFIG_MAP = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n"


def rendered_data(body: bytes, spec: dict[str, Any]) -> dict[str, Any]:
    return only_document(render({"t/cm.yaml.j2": CONFIG_MAP + body}, spec))["data"]


def failure_of(body: bytes, spec: dict[str, Any] | None = None) -> Any:
    result = render({"t/cm.yaml.j2": CONFIG_MAP + body}, spec or {})
    assert result.failure is not None
    return result.failure


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        # what plain Jinja2 gives, with the request's name "demo-1" and spec.value "a-b:c"
        ("{% set s %}{{ request.metadata.name }}{% endset %}{{ s | length }}", 6),
        ("{% set s %}{{ request.metadata.name }}{% endset %}{{ s[0:4] }}", "demo"),
        ("{{ request.metadata.name[0:3] }}", "dem"),
        ("{% set s %}x{{ request.metadata.name }}{% endset %}{{ s | upper }}", "XDEMO-1"),
        ("{% set s %}{{ request.spec.value }}{% endset %}{{ s | replace(':', '/') }}", "a-b/c"),
        ("{% macro m(v) %}<{{ v }}>{% endmacro %}{{ m(request.metadata.name) | length }}", 8),
        ("{% macro m(v) %}{{ v }}{% endmacro %}{{ m(request.metadata.name) == request.metadata.name }}", True),
        ("{% macro m(v) %}{{ v }}{% endmacro %}{% set t = m(request.spec.value) %}{{ t.split(':')[1] }}", "c"),
        ("{% for n in ['x', 'y'] %}{% set s %}{{ loop.index }}{% endset %}{{ s | int * 10 }}{% endfor %}", "1020"),
        ("{% set s %}{{ request.metadata.name }}{% endset %}{{ [s, 'z'] | join('+') }}", "demo-1+z"),
        ("{% set s %}{{ request.spec.value }}{% endset %}{{ s | tojson }}", '"a-b:c"'),
        ("{% set s | upper %}{{ request.metadata.name }}{% endset %}{{ s }}", "DEMO-1"),
        ("{% filter upper %}{{ request.metadata.name }}{% endfilter %}", "DEMO-1"),
        (
            "{% macro m() %}{{ caller() | length }}{% endmacro %}"
            "{% call m() %}{{ request.metadata.name }}{% endcall %}",
            6,
        ),
        ("{% set s %}{{ request.metadata.name }}{% endset %}{% if s %}{{ s == 'demo-1' }}{% endif %}", True),
        ("{% set s %}{% endset %}{{ s == '' }}", True),
    ],
)
def test_rendered_text_reads_as_plain_jinja_would_give_it(snippet: str, expected: Any) -> None:
    assert rendered_data(f"  v: {snippet}\n".encode(), {"value": "a-b:c"})["v"] == expected


def test_rendered_text_printed_again_keeps_its_values_as_data() -> None:
    body = (
        b"{% set entry %}replicas: {{ request.spec.replicas }}{% endset %}"
        b"  {{ entry }}\n"
        b"{% macro label(v) %}team: {{ v }}{% endmacro %}"
        b"  {{ label(request.spec.value) }}\n"
        b"  {% filter upper %}shout: ok{% endfilter %}\n"
    )
    data = rendered_data(body, {"replicas": 3, "value": "x\n  evil: injected"})
    assert data == {"replicas": 3, "team": "x\n  evil: injected", "SHOUT": "OK"}


@pytest.mark.parametrize("value", ADVERSARIAL)
def test_no_value_adds_a_key_through_blocks_macros_filters_or_calls(value: str) -> None:
    body = (
        b"  a: {% set s %}{{ request.spec.value }}{% endset %}{{ s }}\n"
        b"  b: {% macro m(v) %}{{ v }}{% endmacro %}{{ m(request.spec.value) }}\n"
        b"  c: {% filter replace('Q', request.spec.value) %}Q{% endfilter %}\n"
        b"  d: {% filter upper %}{{ request.spec.value }}{% endfilter %}\n"
        b"  e: {% call '{}'.format(request.spec.value) %}{% endcall %}\n"
        b"  f: {% set s | lower %}{{ request.spec.value }}{% endset %}{{ s }}\n"
        b"  g: {{ request.spec.value | indent(2) }}\n"
    )
    data = rendered_data(body, {"value": value})
    assert set(data) == set("abcdefg")
    assert data["a"] == data["b"] == data["c"] == data["e"] == value
    assert (data["d"], data["f"]) == (value.upper(), value.lower())


def test_tokens_never_reach_a_value() -> None:
    body = (
        b"{% set s %}{{ request.metadata.name }}{% endset %}"
        b"{% macro m() %}{{ request.metadata.name }}{% endmacro %}"
        b"  v: {{ [s, m(), s|upper, m()|lower, s|list|join, (s ~ m())|reverse] | join(' ') }}\n"
    )
    assert rendered_data(body, {})["v"] == "demo-1 demo-1 DEMO-1 demo-1 demo-1 1-omed1-omed"


# A corpus of templates built of the constructs that see rendered text; each gives one scalar in plain Jinja2.
CORPUS = [
    "{{ v }}",
    "{{ v | upper }}",
    "{{ v[1:4] }}",
    "{{ v | replace('a', 'b') }}",
    "{{ v | length }}",
    "{% set s %}{{ v }}{% endset %}{{ s | length }}",
    "{% set s %}{{ v }}{% endset %}{{ s[0:3] }}",
    "{% set s %}{{ v }}|{{ w }}{% endset %}{{ s | upper }}",
    "{% set s %}{{ v }}{% endset %}{{ s == v }}",
    "{% set s %}{{ v }}{{ w }}{% endset %}{{ s | replace(w, '') | length }}",
    "{% macro m(x) %}<{{ x }}>{% endmacro %}{{ m(v) | length }}",
    "{% macro m(x) %}<{{ x }}>{% endmacro %}{{ m(v) }}",
    "{% macro m(x) %}{{ x }}!{% endmacro %}{{ m(v) | upper }}",
    "{% macro m(x) %}{{ x }}{% endmacro %}{{ m(v) == v }}",
    "{% for i in items %}{% if loop.last %}{{ loop.index }}{% endif %}{% endfor %}",
    "{{ items | join('+') }}",
    "{% set s %}{{ v }}{% endset %}{{ [s, w] | join(',') }}",
    "{{ v | tojson }}",
    "{% set s %}{{ w }}{% endset %}{{ s | tojson }}",
    "{% filter upper %}{{ v }}{% endfilter %}",
    "{% set s | lower %}{{ v }}{% endset %}{{ s }}",
    "{{ (v ~ w) | length }}",
    "{% set ns = namespace(t='') %}{% for i in items %}{% set ns.t = ns.t ~ i %}{% endfor %}{{ ns.t | length }}",
    "{% for i in items %}{% set s %}{{ i }}{% endset %}{{ s | length }}{% endfor %}",
    "{% macro m() %}{{ caller() | trim }}{% endmacro %}{% call m() %} {{ v }} {% endcall %}",
]
SCALAR_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)


def plain_jinja(snippet: str, context: dict[str, Any]) -> str:
    return jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined).from_string(snippet).render(context)


@settings(max_examples=300, deadline=None)
@given(snippet=st.sampled_from(CORPUS), v=SCALAR_TEXT, w=SCALAR_TEXT, items=st.lists(SCALAR_TEXT, max_size=4))
@example(snippet=CORPUS[-1], v="0 ", w="", items=[])  # trim reaching into a value: plain Jinja2 trims it too
def test_rendering_gives_what_plain_jinja_gives_for_plain_scalars(
    snippet: str, v: str, w: str, items: list[str]
) -> None:
    expected = plain_jinja(snippet, {"v": v, "w": w, "items": items})
    # Compared where plain Jinja2's text reads back from YAML as itself: a plain scalar.
    try:
        read_back = yaml.safe_load(f"v: {expected}") if "\n" not in expected else None
    except yaml.YAMLError:
        read_back = None
    assume(
        isinstance(read_back, dict)
        and read_back.get("v") is not None
        and templating.as_text(read_back["v"]) == expected
    )
    prelude = "{% set v = request.spec.v %}{% set w = request.spec.w %}{% set items = request.spec.names %}"
    ours = rendered_data(f"  v: {prelude}{snippet}\n".encode(), {"v": v, "w": w, "names": items})["v"]
    assert templating.as_text(ours) == expected


# ---------------------------------------------------------------------------- the template budget


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            b"  a: {% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}\n",
            "more than 2,000,000 steps",
        ),
        (
            b"  a: {% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}\n",
            "more than 2,000,000 steps",
        ),
        (b"  a: {{ 'x' * 1000000000 }}\n", "a value of 1,000,000,000 characters or items"),
        (
            b"  a: {% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}\n",
            "a value of 16,777,216 characters or items",
        ),
        (b"  a: {{ 'x' | center(1000000000) }}\n", "a value of 1,000,000,000 characters or items"),
        (b"  a: {{ '%1000000000s' % 'x' }}\n", "a value of 1,000,000,000 characters or items"),
        (b"  a: {{ '{:>1000000000}'.format('x') }}\n", "a value of 1,000,000,000 characters or items"),
        (b"  a: {{ 7 ** 100000 }}\n", "a number of more than 10,000 bits"),
        (b"  a: {% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}\n", "the output is over 8,388,608 characters"),
    ],
)
def test_a_template_past_its_budget_fails_naming_the_template_and_line(body: bytes, says: str) -> None:
    failure = failure_of(body)
    assert (failure.file, failure.line, failure.code) == ("promises/demo/t/cm.yaml.j2", 6, "render.template-budget")
    assert failure.message.startswith("template budget exceeded: ") and says in failure.message


def test_the_sandbox_caps_range_itself() -> None:
    failure = failure_of(b"  a: {% for i in range(10**9) %}{% endfor %}\n")
    assert failure.line == 6 and "MAX_RANGE (100000)" in failure.message


def test_the_budget_is_per_request_and_step() -> None:
    # 1,500,000 steps fit once; twice in one template step does not, while two requests each get their own.
    loop = b"{% for i in range(1500) %}{% for j in range(1000) %}{% endfor %}{% endfor %}"
    assert render({"t/cm.yaml.j2": CONFIG_MAP + b"  a: " + loop + b"1\n"}, {}).failure is None
    promise, pipeline, renderer = promise_with(
        {"t/a.yaml.j2": CONFIG_MAP + b"  a: " + loop + b"1\n", "t/b.yaml.j2": CONFIG_MAP + b"  b: " + loop + b"1\n"}
    )
    result = renderer.render_workflow(promise, [pipeline], request({}), request=REQUEST)
    assert result.failure is not None and result.failure.file == "promises/demo/t/b.yaml.j2"
    for name in ("one", "two"):
        again = renderer.render_workflow(
            promise, [Pipeline("instance", (Container("render", template="t"),))], request({}, name), request=REQUEST
        )
        assert again.failure is not None  # the same for every request: the budget is a count, not a clock


def test_a_request_past_the_budget_fails_alone_through_the_cli(tmp_path: Path) -> None:
    spin = (
        "{% if request.spec.note == 'spin' %}{% for i in range(100000) %}{% for j in range(100000) %}"
        "{% endfor %}{% endfor %}{% endif %}"
    )
    files = platform_files(**{"team-a/calm": database("calm"), "team-a/spinning": database("spinning", note="spin")})
    files["promises/database/templates/configmap.yaml.j2"] = CONFIGMAP_TEMPLATE.replace(
        "  size: {{ request.spec.size }}", "  size: {{ request.spec.size }}" + spin
    )
    out = tmp_path / "out"
    result = kratix("compile", str(write_files(tmp_path / "p", files)), "--out", str(out))
    assert result.returncode == 1
    assert (
        "promises/database/templates/configmap.yaml.j2:7:1: instance/render: template budget exceeded: more than "
        "2,000,000 steps" in result.stderr
    )
    assert "1 placed, 0 pending, 1 failed" in result.stderr
    assert list(out.glob("*/resources/team-a/database/calm/instance/configmap.yaml"))
