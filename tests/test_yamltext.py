"""What we emit is read back as the same data by PyYAML and by Kubernetes' own YAML reader (kubectl's); what we read
means what it means to Kubernetes, and nothing a file holds can stall or crash the reader."""

from __future__ import annotations

import contextlib
import datetime
import math
import shutil
import subprocess
import time
from typing import Any

import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kratix import yamltext
from kratix.model import limits
from kratix.yamltext import emit

# Strings that some YAML parser (1.1 or 1.2, go-yaml or PyYAML) reads as another type when left bare.
TRICKY = [
    "on",
    "off",
    "yes",
    "no",
    "y",
    "n",
    "Y",
    "N",
    "true",
    "False",
    "null",
    "~",
    "",
    "0755",
    "0o17",
    "0x1F",
    "1e3",
    "1E3",
    "-1e-3",
    "+12",
    "1_000",
    "1.5",
    ".inf",
    "-.Inf",
    ".nan",
    "2024-01-01",
    "2024-01-01T10:00:00Z",
    "12:30:00",
    "=",
    "<<",
    "0b101",
    "007",
    "1.0e+3",
    "09",
    "0009",
    "1:20",
    ".5",
    "+.inf",
    "NULL",
    "Yes",
    "0.",
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
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "tricky"},
        "data": {f"k{i}": text for i, text in enumerate(readable)},
    }
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
    *TRICKY,
    "a: b",
    "a #b",
    "#x",
    "- x",
    "-",
    "---",
    "...",
    "'q'",
    '"d"',
    "a\nb",
    "a\nb\n",
    "a\nb\n\n",
    " lead",
    "trail ",
    "a\tb",
    "x\x00y",
    "\x85",
    "\u2028",
    "\ufeff",
    "é",
    "😀",
    "1.2.3",
    "100m",
    "512Mi",
    "nO",
    "-c",
    "$(X)",
    "a:b",
    "http://x.y/z",
    "key=value",
    "a,b",
    "[x]",
    "{y}",
    "*a",
    "&a",
    "!t",
    "%p",
    "@a",
    "`b",
    "|",
    ">",
    "?",
    ":x",
    "x:",
    "\r\n",
    "\n",
    " ",
    "a  b",
    "a\n b",
    "a \nb",
    "x\u00a0y",
    "09",
    "0009",
    "\n\nx",
    "x\n\n\n",
]
NASTY = st.sampled_from(NASTY_TEXTS)
TEXT = st.one_of(
    NASTY,
    st.text(max_size=12),
    st.text(alphabet="ab :#-.0123\n '\"\t", max_size=10),
    st.builds(str.__add__, NASTY, NASTY),
)
SCALARS = st.one_of(TEXT, st.integers(), st.floats(), st.booleans(), st.none())
KEYS = st.one_of(TEXT, st.integers(), st.booleans(), st.none())
DATA = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=25,
)
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
    document = {
        "metadata": {"name": "web", "labels": {}},
        "spec": {"ports": [{"port": 80, "name": "http"}], "args": [], "matrix": [[1, 2], []]},
    }
    assert yamltext.dump(document).decode() == (
        "metadata:\n  name: web\n  labels: {}\nspec:\n  ports:\n  - port: 80\n    name: http\n  args: []\n"
        "  matrix:\n  - - 1\n    - 2\n  - []\n"
    )
    assert yamltext.dump_all([{"a": 1}, {}, []]) == b"a: 1\n--- {}\n--- []\n"


def test_literal_blocks_keep_trailing_newlines_with_the_right_chomping() -> None:
    emitted = yamltext.dump({"strip": "a\nb", "clip": "a\nb\n", "keep": "a\nb\n\n"}).decode()
    assert emitted == "strip: |-\n  a\n  b\nclip: |\n  a\n  b\nkeep: |+\n  a\n  b\n\n...\n"


def test_text_a_block_cannot_hold_is_double_quoted_with_json_escapes() -> None:
    emitted = yamltext.dump({"v": [" indented\nfirst", "trailing \nspace", "tab\there\n", "bell\x07\u2028"]})
    assert emitted.decode().splitlines()[1:] == [
        '- " indented\\nfirst"',
        '- "trailing \\nspace"',
        '- "tab\\there\\n"',
        '- "bell\\u0007\\u2028"',
    ]


def test_digits_with_a_leading_zero_are_quoted_for_kubernetes() -> None:
    # PyYAML reads `09` as a string, go-yaml v2 (kubectl) as the float 9: the former output left it bare.
    assert yamltext.dump({"v": "09"}) == b"v: '09'\n"


def test_data_outside_json_goes_through_pyyaml_unchanged() -> None:
    document = {"when": datetime.date(2024, 1, 1), "k" * 200: 1, "blob": b"\x00"}
    expected = yaml.dump(
        document,
        Dumper=emit._KubeDumper,
        default_flow_style=False,  # noqa: SLF001
        sort_keys=False,
        allow_unicode=True,
        width=1 << 30,
    )
    assert yamltext.dump(document).decode() == expected
    with pytest.raises(yaml.representer.RepresenterError):
        yamltext.dump({"value": object()})


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubernetes_reads_nasty_text_back_as_the_same_strings(tmp_path) -> None:
    # kustomize prints `=` and `<<` bare, and U+0085/U+2028 raw where PyYAML (YAML 1.1) reads a line break.
    texts = [text for text in NASTY_TEXTS if text not in ("=", "<<", "\x85", "\u2028")]
    texts += ["multi\nline\ntext\n", "  two leading\nspaces", "quote ' and \" both", "ünïcödé ✓", "x\x1by"]
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "nasty"},
        "data": {f"k{i}": text for i, text in enumerate(texts)},
    }
    (tmp_path / "cm.yaml").write_bytes(yamltext.dump(configmap))
    (tmp_path / "kustomization.yaml").write_text("resources:\n- cm.yaml\n")
    built = subprocess.run(["kubectl", "kustomize", str(tmp_path)], capture_output=True, text=True, check=True)
    assert yaml.safe_load(built.stdout)["data"] == configmap["data"]


# --- the loader: documents as Kubernetes reads them (go-yaml v2, then JSON) -----------------------------------


def _one(text: str) -> Any:
    docs, problems = yamltext.load_documents("f.yaml", text.encode())
    assert not problems, problems
    (doc,) = docs
    return doc.body


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v: yes", True),
        ("v: y", True),
        ("v: N", False),
        ("v: Off", False),
        ("v: ~", None),
        ("v:", None),
        ("v: 1e3", 1000),
        ("v: 1.0", 1),
        ("v: 1.5", 1.5),
        ("v: 08", 8),
        ("v: 017", 15),
        ("v: 0o17", 15),
        ("v: 0x1F", 31),
        ("v: 0b101", 5),
        ("v: 1_000", 1000),
        ("v: -12", -12),
        ("v: +12", 12),
        ("v: 1:20", "1:20"),
        ("v: 2024-01-01", "2024-01-01"),
        ("v: 2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z"),
        ("v: 1e400", "1e400"),
        ("v: 99999999999999999999", 1e20),
        ("v: .5", 0.5),
        ("v: '1'", "1"),
        ("v: !!str 12", "12"),
        ("v: !!int '7'", 7),
        ("v: !!float '3'", 3),
        ("v: !!binary aGVs bG8=", "aGVsbG8="),
        ("v: yess", "yess"),
        ("v: -x", "-x"),
        ("v: 1.2.3", "1.2.3"),
        ("v: 0x", "0x"),
    ],
)
def test_scalars_mean_what_they_mean_to_kubernetes(text: str, expected: Any) -> None:
    assert _same(_one(text)["v"], expected)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("1: x", "1"),
        ("yes: x", "true"),
        ("on: x", "true"),
        ("n: x", "false"),
        ("1.5: x", "1.5"),
        ("1e3: x", "1000"),
        ("1e6: x", "1e+06"),
        ("0.1: x", "0.1"),
        ("0.00001: x", "1e-05"),
        ("017: x", "15"),
        ("'1': x", "1"),
        ("2024-01-01: x", "2024-01-01"),
        (".inf: x", ".inf"),
        ("-.inf: x", "-.inf"),
        ("3.14159265: x", "3.1415927"),
    ],
)
def test_keys_become_strings_as_sigs_k8s_io_yaml_makes_them(text: str, key: str) -> None:
    assert _one(text) == {key: "x"}


@pytest.mark.parametrize(
    ("text", "line", "column", "code"),
    [
        ("a: 1\nnull: x\n", 2, 1, "yaml.key"),
        ("a: 1\n? [a, b]\n: x\n", 2, 3, "yaml.key"),
        ("a:\n  ? {b: 1}\n  : x\n", 2, 5, "yaml.key"),
        ("a: 1\nb: !!set {x, y}\n", 2, 4, "yaml.tag"),
        ("a: !!omap [x: 1]\n", 1, 4, "yaml.tag"),
        ("a:\n  b: !custom y\n", 2, 6, "yaml.tag"),
        ("a: .nan\n", 1, 4, "yaml.value"),
        ("a: !!int nope\n", 1, 4, "yaml.value"),
        ("1: x\n'1': y\n", 2, 1, "yaml.duplicate-key"),
        ("spec:\n  size: small\n  size: large\n", 3, 3, "yaml.duplicate-key"),
        ("&a [1, *a]\n", 1, 1, "yaml.alias"),
        ("a: [1\n", 2, 1, "yaml.syntax"),
    ],
)
def test_what_kubernetes_refuses_is_a_problem_at_its_place_never_an_exception(
    text: str, line: int, column: int, code: str
) -> None:
    docs, problems = yamltext.load_documents("f.yaml", text.encode())
    assert docs == []
    assert [(p.line, p.column, p.code) for p in problems] == [(line, column, code)]
    with pytest.raises(yaml.MarkedYAMLError, match="line"):
        list(yamltext.load_plain(text))


def test_a_refused_document_does_not_take_the_rest_of_the_file_with_it() -> None:
    docs, problems = yamltext.load_documents("f.yaml", b"a: 1\n---\nnull: x\n---\nc: 3\n")
    assert [doc.body for doc in docs] == [{"a": 1}, {"c": 3}]
    assert [(p.line, p.code) for p in problems] == [(3, "yaml.key")]


def _nested(levels: int) -> str:
    """`levels` mappings, one inside the other."""
    return "".join(" " * level + "a:\n" for level in range(levels)) + " " * levels + "b\n"


def test_nesting_is_bounded_in_block_and_flow_style() -> None:
    assert _one(_nested(limits.MAX_DEPTH))
    for text in (_nested(limits.MAX_DEPTH + 1), "[" * 101 + "]" * 101, "x: " + "[" * 500_000 + "]" * 500_000):
        docs, problems = yamltext.load_documents("f.yaml", text)
        assert docs == [] and [p.code for p in problems] == ["yaml.depth"], text[:20]


def test_an_alias_cannot_nest_deeper_than_the_limit() -> None:
    text = f"deep: &d {'[' * 60}1{']' * 60}\nwrap: {'[' * 60}*d{']' * 60}\n"
    docs, problems = yamltext.load_documents("f.yaml", text)
    assert docs == [] and [p.code for p in problems] == ["yaml.depth"]


def _laughs(levels: int) -> str:
    text = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for index in range(1, levels):
        name, previous = chr(ord("a") + index), chr(ord("a") + index - 1)
        text += f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]\n"
    return text


def test_a_billion_laughs_is_refused_in_time_proportional_to_its_size() -> None:
    started = time.perf_counter()
    docs, problems = yamltext.load_documents("bomb.yaml", _laughs(10))  # 9**10 "lol"s, 600 bytes
    assert time.perf_counter() - started < 0.5
    assert docs == [] and [p.code for p in problems] == ["yaml.aliases"]
    assert "excessive aliasing" in problems[0].message


def test_modest_aliases_and_merge_keys_read_as_kubernetes_reads_them() -> None:
    body = _one(
        "base: &base {a: 1, b: 2}\nderived:\n  <<: *base\n  b: 3\nlist: &l [1, 2]\nagain: *l\n"
        "merged:\n  <<: [{x: 1}, {x: 2, z: 2}]\n"
    )
    assert body == {
        "base": {"a": 1, "b": 2},
        "derived": {"b": 3, "a": 1},
        "list": [1, 2],
        "again": [1, 2],
        "merged": {"x": 1, "z": 2},
    }
    body["again"].append(3)  # an alias is a copy: a later stage editing one place changes only that place
    assert body["list"] == [1, 2]


def test_oversized_files_and_documents_are_not_read() -> None:
    big_document = "a: " + "x" * (limits.MAX_DOCUMENT_CHARS + 1) + "\n---\nb: 1\n"
    docs, problems = yamltext.load_documents("f.yaml", big_document)
    assert [doc.body for doc in docs] == [{"b": 1}] and [p.code for p in problems] == ["yaml.too-large"]
    docs, problems = yamltext.load_documents("f.yaml", b"#" * (limits.MAX_FILE_BYTES + 1))
    assert docs == [] and [p.code for p in problems] == ["yaml.too-large"]


def test_text_that_is_not_utf8_is_a_problem() -> None:
    docs, problems = yamltext.load_documents("f.yaml", b"a: \xff\xfe\n")
    assert docs == [] and [p.code for p in problems] == ["yaml.encoding"]


def test_transform_may_substitute_nodes_built_by_a_representer() -> None:
    representer = yaml.representer.SafeRepresenter()

    def substitute(node: yaml.Node) -> yaml.Node:
        for index, (key, value) in enumerate(node.value):
            if isinstance(value, yaml.ScalarNode) and value.value == "TOKEN":
                node.value[index] = (key, representer.represent_data({"n": 5, "f": 0.5, "on": True, "x": None}))
        return node

    assert yamltext.load_transformed("a: TOKEN\nb: plain\n", substitute) == [
        {"a": {"n": 5, "f": 0.5, "on": True, "x": None}, "b": "plain"}
    ]


def _as_kubernetes_holds(value: Any) -> Any:
    """JSON-like data as the API server holds it after the JSON round trip (what the loader must give back)."""
    if isinstance(value, dict):
        return {str(k).lower() if isinstance(k, bool) else str(k): _as_kubernetes_holds(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_kubernetes_holds(item) for item in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 9.2e18:
        return int(value)
    return value


def _keys_collide(value: Any) -> bool:
    if isinstance(value, dict):
        return len({str(k) for k in value}) < len(value) or any(_keys_collide(v) for v in value.values())
    return isinstance(value, list) and any(_keys_collide(item) for item in value)


JSON_SCALARS = st.one_of(
    TEXT,
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
JSON_DATA = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.one_of(TEXT, st.integers(-1000, 1000)), inner, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(TEXT, JSON_DATA, min_size=1, max_size=5), min_size=1, max_size=3))
def test_what_we_emit_reads_back_as_kubernetes_holds_it(documents: list[Any]) -> None:
    assume(not any(_keys_collide(document) for document in documents))  # 1 and "1": a duplicate, tested above
    text = yamltext.dump_all(documents)
    expected = [_as_kubernetes_holds(document) for document in documents]
    assert _same(list(yamltext.load_plain(text)), expected)
    docs, problems = yamltext.load_documents("f.yaml", text)
    assert not problems
    assert _same([doc.body for doc in docs], expected)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab:-[]{}&*!<> \n'\"#|>?,.019yn~", max_size=60))
def test_any_text_reads_or_is_a_problem_and_never_raises(text: str) -> None:
    docs, problems = yamltext.load_documents("f.yaml", text)
    for doc in docs:
        assert _json_like(doc.body)
    with contextlib.suppress(yaml.MarkedYAMLError):
        list(yamltext.load_plain(text))


def _json_like(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_like(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_like(item) for item in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | bool | int)


@given(st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=40))
@settings(max_examples=300)
def test_the_ascii_shortcuts_decide_as_the_full_patterns_do(text: str) -> None:
    # Text that is ASCII is checked without the Unicode patterns, which take longer to compile than a small
    # compile spends emitting; the answer must be theirs.
    from kratix.yamltext import scalars

    assert bool(scalars._PLAIN_ASCII.fullmatch(text)) == bool(scalars._plain().fullmatch(text))
    assert scalars._verbatim(text) == bool(scalars._quotable().fullmatch(text))
