"""What we emit is read back as the same data by PyYAML and by Kubernetes' own YAML reader (kubectl's)."""

from __future__ import annotations

import datetime
import math
import shutil
import subprocess
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kratix import yamltext
from kratix.yamltext import emit
from kratix.yamltext.positions import index_positions

# Strings that some YAML parser (1.1 or 1.2, go-yaml or PyYAML) reads as another type when left bare.
TRICKY = [
    "on", "off", "yes", "no", "y", "n", "Y", "N", "true", "False", "null", "~", "", "0755", "0o17", "0x1F",
    "1e3", "1E3", "-1e-3", "+12", "1_000", "1.5", ".inf", "-.Inf", ".nan", "2024-01-01", "2024-01-01T10:00:00Z",
    "12:30:00", "=", "<<", "0b101", "007", "1.0e+3", "09", "0009", "1:20", ".5", "+.inf", "NULL", "Yes", "0.",
]


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_strings_survive_a_pyyaml_round_trip(text: str) -> None:
    assert yaml.safe_load(yamltext.dump({"v": text})) == {"v": text}


def test_tricky_strings_are_quoted_in_the_emitted_text() -> None:
    emitted = yamltext.dump({"values": TRICKY}).decode()
    bare = [line for line in emitted.splitlines()[1:] if not line.startswith(("- '", '- "'))]
    assert bare == []


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubernetes_reads_tricky_strings_as_strings(tmp_path) -> None:
    # kustomize prints `=` and `<<` bare, which PyYAML cannot read back: leave them out of this round trip.
    readable = [text for text in TRICKY if text not in ("=", "<<")]
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "tricky"},
                 "data": {f"k{i}": text for i, text in enumerate(readable)}}
    (tmp_path / "cm.yaml").write_bytes(yamltext.dump(configmap))
    (tmp_path / "kustomization.yaml").write_text("resources:\n- cm.yaml\n")
    built = subprocess.run(["kubectl", "kustomize", str(tmp_path)], capture_output=True, text=True, check=True)
    assert yaml.safe_load(built.stdout)["data"] == configmap["data"]


def test_multiline_strings_are_literal_blocks_and_round_trip() -> None:
    script = "#!/bin/sh\nset -e\necho 'hi: there'\n"
    emitted = yamltext.dump({"script": script})
    assert emitted.startswith(b"script: |")
    assert yaml.safe_load(emitted) == {"script": script}


def test_no_aliases_and_no_line_folding() -> None:
    shared = {"a": 1}
    long = "x" * 500 + " " + "y" * 500
    emitted = yamltext.dump({"one": shared, "two": shared, "long": long}).decode()
    assert "&" not in emitted and "*" not in emitted
    assert long in emitted


def test_positions_point_at_keys_and_items() -> None:
    docs, problems = yamltext.load_documents("f.yaml", b"a: 1\nb:\n  c:\n    - x\n    - y\n---\nz: 2\n")
    assert problems == []
    assert [d.line for d in docs] == [1, 7]
    assert docs[0].locate(("b", "c", 1)) == (5, 7)
    assert docs[0].locate(("b", "missing")) == (2, 1)


def test_syntax_error_reports_libyaml_position_and_keeps_earlier_documents() -> None:
    docs, problems = yamltext.load_documents("f.yaml", b"a: 1\n---\nb: [1, 2\nc: 3\n")
    assert [d.body for d in docs] == [{"a": 1}]
    assert len(problems) == 1 and problems[0].code == "yaml.syntax"
    assert problems[0].line == 4


def test_duplicate_keys_are_reported() -> None:
    _, problems = yamltext.load_documents("f.yaml", b"spec:\n  size: small\n  size: large\n")
    assert [(p.line, p.path, p.code) for p in problems] == [(3, ("spec", "size"), "yaml.duplicate-key")]


# --- the emitter: what we write reads back as the same data --------------------------------------------------

NASTY_TEXTS = [
    *TRICKY, "a: b", "a #b", "#x", "- x", "-", "---", "...", "'q'", '"d"', "a\nb", "a\nb\n", "a\nb\n\n", " lead",
    "trail ", "a\tb", "x\x00y", "\x85", "\u2028", "\ufeff", "é", "😀", "1.2.3", "100m", "512Mi", "nO", "-c",
    "$(X)", "a:b", "http://x.y/z", "key=value", "a,b", "[x]", "{y}", "*a", "&a", "!t", "%p", "@a", "`b", "|", ">",
    "?", ":x", "x:", "\r\n", "\n", " ", "a  b", "a\n b", "a \nb", "x\u00a0y", "09", "0009", "\n\nx", "x\n\n\n",
]
NASTY = st.sampled_from(NASTY_TEXTS)
TEXT = st.one_of(NASTY, st.text(max_size=12), st.text(alphabet="ab :#-.0123\n '\"\t", max_size=10),
                 st.builds(str.__add__, NASTY, NASTY))
SCALARS = st.one_of(TEXT, st.integers(), st.floats(), st.booleans(), st.none())
KEYS = st.one_of(TEXT, st.integers(), st.booleans(), st.none())
DATA = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(KEYS, inner, max_size=4)), max_leaves=25)
DOCUMENTS = st.one_of(st.dictionaries(KEYS, DATA, max_size=5), st.lists(DATA, max_size=5))


def _same(a: Any, b: Any) -> bool:
    """Equality that also holds for NaN, tells -0.0 from 0.0, and does not take True for 1."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@settings(max_examples=300, deadline=None)
@given(st.lists(DOCUMENTS, min_size=1, max_size=3))
def test_any_json_like_data_reads_back_the_same(documents: list[Any]) -> None:
    emitted = yamltext.dump_all(documents)
    assert _same(list(yaml.safe_load_all(emitted)), documents)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=8), DATA, max_size=6))
def test_sorted_dump_reads_back_the_same_with_keys_in_order(document: dict[str, Any]) -> None:
    assert _same(yaml.safe_load(yamltext.dump_sorted(document)), _sorted_deep(document))


def _sorted_deep(value: Any) -> Any:
    if isinstance(value, dict):
        try:
            keys = sorted(value)
        except TypeError:  # keys of mixed types keep their order, as in PyYAML
            keys = list(value)
        return {key: _sorted_deep(value[key]) for key in keys}
    return [_sorted_deep(item) for item in value] if isinstance(value, list) else value


def test_block_style_layout_and_flow_empties() -> None:
    document = {"metadata": {"name": "web", "labels": {}}, "spec": {"ports": [{"port": 80, "name": "http"}],
                                                                     "args": [], "matrix": [[1, 2], []]}}
    assert yamltext.dump(document).decode() == (
        "metadata:\n  name: web\n  labels: {}\nspec:\n  ports:\n  - port: 80\n    name: http\n  args: []\n"
        "  matrix:\n  - - 1\n    - 2\n  - []\n")
    assert yamltext.dump_all([{"a": 1}, {}, []]) == b"a: 1\n--- {}\n--- []\n"


def test_literal_blocks_keep_trailing_newlines_with_the_right_chomping() -> None:
    emitted = yamltext.dump({"strip": "a\nb", "clip": "a\nb\n", "keep": "a\nb\n\n"}).decode()
    assert emitted == "strip: |-\n  a\n  b\nclip: |\n  a\n  b\nkeep: |+\n  a\n  b\n\n...\n"


def test_text_a_block_cannot_hold_is_double_quoted_with_json_escapes() -> None:
    emitted = yamltext.dump({"v": [" indented\nfirst", "trailing \nspace", "tab\there\n", "bell\x07\u2028"]})
    assert emitted.decode().splitlines()[1:] == [
        '- " indented\\nfirst"', '- "trailing \\nspace"', '- "tab\\there\\n"', '- "bell\\u0007\\u2028"']


def test_digits_with_a_leading_zero_are_quoted_for_kubernetes() -> None:
    # PyYAML reads `09` as a string, go-yaml v2 (kubectl) as the float 9: the former output left it bare.
    assert yamltext.dump({"v": "09"}) == b"v: '09'\n"


def test_data_outside_json_goes_through_pyyaml_unchanged() -> None:
    document = {"when": datetime.date(2024, 1, 1), "k" * 200: 1, "blob": b"\x00"}
    expected = yaml.dump(document, Dumper=emit._KubeDumper, default_flow_style=False,  # noqa: SLF001
                         sort_keys=False, allow_unicode=True, width=1 << 30)
    assert yamltext.dump(document).decode() == expected
    with pytest.raises(yaml.representer.RepresenterError):
        yamltext.dump({"value": object()})


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubernetes_reads_nasty_text_back_as_the_same_strings(tmp_path) -> None:
    # kustomize prints `=` and `<<` bare, and U+0085/U+2028 raw where PyYAML (YAML 1.1) reads a line break.
    texts = [text for text in NASTY_TEXTS if text not in ("=", "<<", "\x85", "\u2028")]
    texts += ["multi\nline\ntext\n", "  two leading\nspaces", "quote ' and \" both", "ünïcödé ✓", "x\x1by"]
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nasty"},
                 "data": {f"k{i}": text for i, text in enumerate(texts)}}
    (tmp_path / "cm.yaml").write_bytes(yamltext.dump(configmap))
    (tmp_path / "kustomization.yaml").write_text("resources:\n- cm.yaml\n")
    built = subprocess.run(["kubectl", "kustomize", str(tmp_path)], capture_output=True, text=True, check=True)
    assert yaml.safe_load(built.stdout)["data"] == configmap["data"]


# --- the loader: the same documents, positions and problems as PyYAML's SafeConstructor ----------------------

CORPUS = [
    "a: 1\nb: [x, 'y', \"z\"]\nc: {d: null, e: ~, f: 1.5, g: 0x1F, h: 0o17, i: 017, j: 1_000, k: 1:20}\n",
    "when: 2024-01-01\nat: 2024-01-01T10:00:00Z\nflag: yes\nother: Off\nnan: .nan\ninf: -.inf\nbig: 1e3\n",
    "base: &base {a: 1, b: 2}\nderived:\n  <<: *base\n  b: 3\nlist: &l [1, 2]\nagain: *l\n",
    "merge:\n  <<: [{a: 1}, {b: 2}]\n  c: 3\n",
    "tagged: !!str 12\nnumber: !!int '7'\nfloat: !!float '3'\nblob: !!binary aGVsbG8=\nset: !!set {a, b}\n",
    "'=': value\n=: plain\n",
    "'<<': 1\n'<<': 2\nspec:\n  size: small\n  size: large\n  list:\n  - a: 1\n    a: 2\n",
    "1: int key\n2.5: float key\ntrue: bool key\nnull: null key\n",
    "---\n---\na: 1\n--- |\n  block\n--- 42\n",
    "omap: !!omap [a: 1, b: 2]\npairs: !!pairs [a: 1, a: 2]\n",
    "- &x [1]\n- *x\n- &y {k: v}\n- *y\n",
]


def _pyyaml_documents(text: str) -> list[Any]:
    return [doc for doc in yaml.load_all(text, Loader=yaml.CSafeLoader) if doc is not None]


def _former_positions(text: str) -> list[tuple[dict[Any, Any], list[tuple[Any, ...]]]]:
    """Positions and duplicate-key problems by the former algorithm (indexing the composed node tree)."""
    loader = yaml.CSafeLoader(text)
    found = []
    while loader.check_node():
        node: Any = loader.get_node()
        positions: dict[Any, Any] = {}
        problems: list[yamltext.YamlProblem] = []
        index_positions(node, (), positions, problems)  # the reference algorithm
        if loader.construct_document(node) is not None:
            found.append((positions, [(p.line, p.column, p.path, p.code) for p in problems]))
    return found


@pytest.mark.parametrize("text", CORPUS)
def test_loading_matches_pyyaml_safe_loader(text: str) -> None:
    expected = _pyyaml_documents(text)
    assert list(yamltext.load_plain(text)) == expected
    assert yamltext.load_transformed(text, lambda node: node) == expected
    docs, problems = yamltext.load_documents("f.yaml", text.encode())
    assert [doc.body for doc in docs] == expected
    former = _former_positions(text)
    assert [dict(doc.positions) for doc in docs] == [positions for positions, _ in former]
    assert [(p.line, p.column, p.path, p.code) for p in problems] == [p for _, found in former for p in found]


def test_a_recursive_alias_loads_as_pyyaml_builds_it() -> None:
    (loop,) = yamltext.load_plain("&a [1, *a]\n")
    assert loop[0] == 1 and loop[1] is loop


@pytest.mark.parametrize("text", ["a: !custom x\n", "key: =\n", "? [a, b]\n: list key\n", "? {a: 1}\n: map\n"])
def test_what_pyyaml_cannot_build_fails_the_same_way(text: str) -> None:
    with pytest.raises(yaml.MarkedYAMLError) as theirs:
        _pyyaml_documents(text)
    with pytest.raises(type(theirs.value)) as ours:
        list(yamltext.load_plain(text))
    assert str(ours.value) == str(theirs.value)
    _, problems = yamltext.load_documents("f.yaml", text)
    mark = theirs.value.problem_mark
    assert mark is not None
    assert [(p.line, p.code) for p in problems] == [(mark.line + 1, "yaml.syntax")]


def test_a_bad_value_for_an_explicit_tag_raises_as_in_pyyaml() -> None:
    with pytest.raises(ValueError):
        list(yamltext.load_plain("a: !!int nope\n"))


def test_transform_may_substitute_nodes_built_by_a_representer() -> None:
    representer = yaml.representer.SafeRepresenter()

    def substitute(node: yaml.Node) -> yaml.Node:
        for index, (key, value) in enumerate(node.value):
            if isinstance(value, yaml.ScalarNode) and value.value == "TOKEN":
                node.value[index] = (key, representer.represent_data({"n": 5, "f": 0.5, "on": True, "x": None}))
        return node

    assert yamltext.load_transformed("a: TOKEN\nb: plain\n", substitute) == [
        {"a": {"n": 5, "f": 0.5, "on": True, "x": None}, "b": "plain"}]


@settings(max_examples=150, deadline=None)
@given(st.lists(DOCUMENTS, min_size=1, max_size=3), st.sampled_from([False, None, True]))
def test_loading_any_pyyaml_output_matches_pyyaml(documents: list[Any], flow: bool | None) -> None:
    text = yaml.dump_all(documents, Dumper=yaml.CSafeDumper, default_flow_style=flow, allow_unicode=True)
    expected = _pyyaml_documents(text)
    assert _same(list(yamltext.load_plain(text)), expected)
    docs, problems = yamltext.load_documents("f.yaml", text)
    assert _same([doc.body for doc in docs], expected)
    former = _former_positions(text)
    assert [dict(doc.positions) for doc in docs] == [positions for positions, _ in former]
    assert [(p.line, p.column, p.path, p.code) for p in problems] == [p for _, found in former for p in found]
