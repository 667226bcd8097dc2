"""CEL rules as the API server bounds them: the cel package as pinned, cost limits, RE2 regular expressions."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import cel
import pytest

from kratix import schema
from kratix.apiserver import celcost, celrules, celsyntax, regexes
from tests.platforms import PROMISE, database, kratix, platform_files, write_files
from tests.test_schema import compile_spec, make_crd, obj, request, rule_schema, validate

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------ the cel package


def test_the_cel_package_is_the_exact_version_pinned_for_the_shell_stand_in():
    """kratix.apiserver.celrules keeps the package's interactive shell from loading by standing in for `cel.cli`; that
    leans on how the package's __init__ is written, so the version is pinned and this test fails when the
    installed package is another one or its __init__ no longer imports `cli` as a bare module."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [pin] = [d for d in dependencies if d.startswith("common-expression-language")]
    assert re.fullmatch(r"common-expression-language==[0-9.]+", pin), pin
    assert importlib.metadata.version("common-expression-language") == pin.split("==")[1]

    init = ast.parse(Path(cel.__file__).read_text())
    relative_imports = [
        (node.module, sorted(alias.name for alias in node.names))
        for node in init.body
        if isinstance(node, ast.ImportFrom) and node.level == 1
    ]
    assert (None, ["cli", "stdlib"]) in relative_imports  # `from . import cli, stdlib`: a module, nothing from it
    assert "cli" not in {name.id for node in init.body for name in ast.walk(node) if isinstance(name, ast.Name)}


def test_loading_the_rules_module_does_not_load_the_interactive_shell():
    probe = (
        "import sys, kratix.apiserver.celrules; "
        "print(sorted(m for m in ('prompt_toolkit', 'typer', 'rich') if m in sys.modules))"
    )
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "rule",
    [
        "-self.x < 0 && !(self.y in [1, 2])",
        "optional.of(1).hasValue()",
        "self.l.map(x, x * 2).exists(y, y > 2)",
        "dyn(self.x) == 1 || type(self.x) == int",
        "int(self.s) > 0 || uint(1) > 0u || bytes('a') == b'a'",
        "self.s.lowerAscii().split(',').size() > 0",
        "math.abs(-1) == 1 && self.l.isSorted()",
    ],
)
def test_operators_macros_and_library_functions_compile(rule: str):
    assert isinstance(celrules.compile_rule({"rule": rule}), celrules.Rule)


# ------------------------------------------------------------------------------- the cost model


def array_of(items: dict, rule: str, **bounds: int) -> dict:
    return {"type": "array", "items": items, **bounds, "x-kubernetes-validations": [{"rule": rule}]}


def map_of(values: dict, rule: str, **bounds: int) -> dict:
    return {"type": "object", "additionalProperties": values, **bounds, "x-kubernetes-validations": [{"rule": rule}]}


def string_with(rule: str, **bounds: Any) -> dict:
    return {"type": "string", **bounds, "x-kubernetes-validations": [{"rule": rule}]}


NUMBER, STRING, BOOLEAN = {"type": "number"}, {"type": "string"}, {"type": "boolean"}
PAIR = {
    "type": "object",
    "required": ["required"],
    "properties": {"required": {"type": "string"}, "optional": {"type": "string"}},
}

# Schemas and rules with the estimates the API server's own tests expect of them (apiextensions-apiserver,
# TestCostEstimation): the same numbers decide here what the API server accepts.
KUBERNETES_ESTIMATES = [
    (array_of(NUMBER, "self.all(x, true)"), 4718591),
    (array_of(NUMBER, "self.all(x, true)", maxItems=10), 32),
    (array_of(STRING, "self.all(x, true)"), 3145727),
    (array_of(BOOLEAN, "self.all(x, true)", maxItems=5), 17),
    (array_of(PAIR, "self.all(x, true)"), 555128),
    (map_of(NUMBER, "self.all(x, true)"), 1348169),
    (map_of(STRING, "self.all(x, true)", maxProperties=3), 11),
    (map_of({"type": "string", "format": "date-time"}, "self.all(x, true)"), 349526),
    (string_with("self.contains('test')"), 314574),
    (string_with("self.contains('test')", maxLength=10), 5),
    (string_with("self.startsWith('test')"), 2),
    (string_with('size(self + "hello") > size("hello")'), 314578),
    (array_of(STRING, "self[1] == self[1]", maxItems=8), 314577),
    (array_of(NUMBER, "self.all(x, self.all(y, true))", maxItems=10), 352),
    (array_of(NUMBER, "self.all(x, self.all(y, self.all(z, true)))", maxItems=10), 3552),
    (string_with('self.matches("x")', maxLength=50), 22),
    (string_with('"".matches("(((((((((())))))))))[0-9]")'), 7),
    (map_of({"type": "string", "maxLength": 10}, "self.all(x, x.contains(self[x]))", maxProperties=10), 72),
    (string_with('self == "x"', maxLength=0), 1),
    (array_of({"x-kubernetes-int-or-string": True}, "self[0] == 5"), 3),
    (array_of({"type": "object", "additionalProperties": NUMBER}, "self.all(x, x.y == 25.2)"), 6291452),
    (string_with("self.find('[0-9]+') == ''"), 629147),
    (array_of({"type": "string", "maxLength": 10}, "self.join(' ') == 'aa bb'", maxItems=10), 43),
    (array_of({"type": "string"}, "self.isSorted() == true"), 329854432052),
    (string_with("self.lowerAscii() == 'lower!'", maxLength=10), 6),
    (map_of({"type": "string", "format": "duration"}, 'self["c"] == self["d"]'), 8),
    (string_with("self.contains('A')", enum=["A", "B", "C", "LongValue"]), 2),
    (string_with("self.contains('A')", enum=["A", "B", "C", "LongValue"], maxLength=1000), 401),
    (
        {
            "type": "object",
            "properties": {
                "str": {"type": "string", "maxLength": 4},
                "before": {"type": "string", "maxLength": 2},
                "after": {"type": "string", "maxLength": 4},
            },
            "x-kubernetes-validations": [{"rule": "self.str.replace(self.before, self.after) == 'does not matter'"}],
        },
        12,
    ),
]


@pytest.mark.parametrize(
    ("node", "expected"),
    KUBERNETES_ESTIMATES,
    ids=[f"{n['x-kubernetes-validations'][0]['rule']}|{e}" for n, e in KUBERNETES_ESTIMATES],
)
def test_estimates_are_the_api_servers(node: dict, expected: int):
    rule = node["x-kubernetes-validations"][0]["rule"]
    assert celcost.estimate(celsyntax.parse(rule), celcost.shape_of(node)) == expected


UNICODE = {"type": "object", "properties": {"val1": {"type": "string"}}}


# What the API server counts evaluating these on "Rook takes 👑" (apiextensions-apiserver, TestCelCostStability).
@pytest.mark.parametrize(
    ("rule", "counted"),
    [
        ("self.val1.startsWith('Rook')", 3),
        ("self.val1.matches('^[^0-9]*$')", 8),
        ("size(self.val1) == 12", 4),
        ("self.val1.indexOf('o') == 1", 4),
        ("self.val1.replace(' ', 'x') == 'Rookxtakesx👑'", 7),
        ("self.val1.split(' ') == ['Rook', 'takes', '👑']", 6),
        ("self.val1.lowerAscii() == self.val1.lowerAscii()", 10),
    ],
)
def test_the_bound_on_one_requests_values_is_at_least_what_the_api_server_counts(rule: str, counted: int):
    bound = celcost.estimate(
        celsyntax.parse(rule), celcost.shape_of(UNICODE), celcost.value_sizes({"val1": "Rook takes 👑"})
    )
    assert counted <= bound <= 2 * counted + 10


def test_the_resource_root_reads_names_of_at_most_253_characters():
    # metadata.name is a DNS subdomain: a rule over it is cheap even though the schema does not say so.
    root = {"type": "object", "x-kubernetes-validations": [{"rule": "self.metadata.name.contains('x')"}]}
    assert (
        celcost.estimate(
            celsyntax.parse("self.metadata.name.contains('x')"), celcost.shape_of(root, resource_root=True)
        )
        == 105
    )  # 253 × 4 bytes


def test_the_excess_is_worded_as_the_api_server_words_it():
    assert celcost.factor_text(12_000_000, 10_000_000) == "1.200000x"
    assert celcost.factor_text(25_000_000, 10_000_000) == "2.5x"
    assert celcost.factor_text(2 * 10**9, 10_000_000) == "more than 100x"


# ------------------------------------------------------------------- limits when a Promise is loaded

ZONES_RULE = "self.zones.all(z, z.matches('^[a-z]+-[0-9]$'))"


def zones(**bounds: int) -> dict:
    items = {"type": "string", **({"maxLength": bounds.pop("maxLength")} if "maxLength" in bounds else {})}
    return {
        "type": "object",
        "properties": {"zones": {"type": "array", "items": items, **bounds}},
        "x-kubernetes-validations": [{"rule": ZONES_RULE}],
    }


def test_an_expensive_rule_over_an_unbounded_list_makes_the_api_invalid():
    problems = schema.check_crd(make_crd(zones()))
    assert {v.code for v in problems} == {"crd.cel-cost"}
    assert (
        "estimated rule cost exceeds budget by factor of more than 100x (try simplifying the rule, or adding "
        "maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
    ) in {v.message for v in problems if v.path[-3:] == ("x-kubernetes-validations", 0, "rule")}
    # so far over that it is over the whole CRD's limit too, as the API server also reports it
    assert any(v.path[-1] == "openAPIV3Schema" for v in problems)


def test_the_same_rule_with_max_items_and_max_length_passes():
    assert schema.check_crd(make_crd(zones(maxItems=16, maxLength=32))) == []
    compiled = schema.compile_request_schema(make_crd(zones(maxItems=16, maxLength=32)))
    assert validate(compiled, request({"zones": ["eu-1", "us-2"]}))[1] == []
    assert [p[1] for p in validate(compiled, request({"zones": ["EU"]}))[1]] == ["schema.cel"]


def test_a_rule_is_multiplied_by_the_times_it_can_run_in_one_object():
    # Cheap once, but on every item of an unbounded list of objects: as many as a 3 MiB request holds.
    item = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 64}},
        "x-kubernetes-validations": [{"rule": "self.name.contains('a')"}],
    }
    problems = schema.check_crd(make_crd(obj({"items": {"type": "array", "items": item}})))
    assert [(v.code, v.path[-4:]) for v in problems] == [
        ("crd.cel-cost", ("items", "x-kubernetes-validations", 0, "rule"))
    ]
    assert schema.check_crd(make_crd(obj({"items": {"type": "array", "items": item, "maxItems": 100}}))) == []


def test_the_rules_of_a_whole_schema_share_one_limit():
    # Each rule (5.1 million) under the per-rule limit, twenty of them over the CRD's total of 100 million.
    rule = {"rule": "self.names.all(x, self.names.exists(y, y == x))"}
    properties = {
        f"list{i}": {
            "type": "object",
            "x-kubernetes-validations": [rule],
            "properties": {"names": {"type": "array", "maxItems": 400, "items": {"type": "string", "maxLength": 64}}},
        }
        for i in range(20)
    }
    problems = schema.check_crd(make_crd(obj(properties)))
    assert all(v.code == "crd.cel-cost" for v in problems)
    total = [v for v in problems if v.path[-1] == "openAPIV3Schema"]
    assert [v.message.split(" exceeds")[0] for v in total] == [
        "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema"
    ]
    contributed = [v for v in problems if v.message.startswith("contributed to estimated rule cost total")]
    assert len(contributed) == 4  # the API server names the four costliest
    assert schema.check_crd(make_crd(obj(dict(list(properties.items())[:19])))) == []


def test_a_message_expression_has_its_own_limit():
    # `string(int)` has no size estimate in the API server's model, so text concatenated with it is unbounded.
    crd = make_crd(rule_schema({"rule": "self.min <= self.max", "messageExpression": "'min ' + string(self.min)"}))
    assert any(
        v.path[-1] == "messageExpression"
        and v.message.startswith("estimated messageExpression cost exceeds budget by factor of")
        for v in schema.check_crd(crd)
    )
    bounded = make_crd(
        rule_schema(
            {"rule": "self.min <= self.max", "messageExpression": "self.unit + ' min'"},
            min={"type": "integer"},
            max={"type": "integer"},
            unit={"type": "string", "maxLength": 8},
        )
    )
    assert schema.check_crd(bounded) == []


# ---------------------------------------------------------------------- limits when a request is checked

PAIRS = [
    "self.names.all(x, self.names.exists(y, y == x))",
    "self.names.all(x, self.names.exists(y, x == y))",
    "self.names.all(x, self.names.exists(y, y == x || y == ''))",
]


def groups_schema() -> schema.RequestSchema:
    group = {
        "type": "object",
        "x-kubernetes-validations": [{"rule": rule} for rule in PAIRS],
        "properties": {"names": {"type": "array", "maxItems": 400, "items": {"type": "string", "maxLength": 16}}},
    }
    return compile_spec(obj({"groups": {"type": "array", "maxItems": 4, "items": group}}))


def names(count: int) -> list[str]:
    return [f"name-{index:05d}" for index in range(count)]


def test_a_schema_whose_rules_cannot_reach_the_runtime_limits_is_not_charged():
    assert not compile_spec(zones(maxItems=16, maxLength=32)).storage.cel_budget
    assert groups_schema().storage.cel_budget


def test_an_evaluation_over_the_per_call_limit_fails_the_request_and_stops_the_rules():
    compiled = groups_schema()
    assert validate(compiled, request({"groups": [{"names": names(50)}]}))[1] == []
    problems = validate(compiled, request({"groups": [{"names": names(400)}, {"names": ["dup", "dup"]}]}))[1]
    assert problems == [
        (
            "spec.groups.0",
            "schema.cel-cost",
            f"no further validation rules will be run due to call cost exceeds limit for rule: "
            f"{PAIRS[0]} (on these values it can cost 1,122,403, over the limit of 1,000,000 per call)",
        )
    ]


def test_evaluations_past_the_runtime_budget_fail_the_request():
    compiled = groups_schema()
    assert validate(compiled, request({"groups": [{"names": names(350)}] * 3}))[1] == []
    problems = validate(compiled, request({"groups": [{"names": names(350)}] * 4}))[1]
    assert problems == [
        (
            "spec.groups.3",
            "schema.cel-cost",
            "validation failed due to running out of cost budget, no further validation rules will be run",
        )
    ]


# ---------------------------------------------------------------------------------- regular expressions


def test_a_rule_with_a_constant_pattern_re2_refuses_is_invalid():
    crd = make_crd(rule_schema({"rule": "self.name.matches('^(?=a)b')"}, name={"type": "string", "maxLength": 8}))
    [problem] = schema.check_crd(crd)
    assert problem.code == "crd.cel"
    assert (
        "matches() pattern '^(?=a)b' is not a valid regular expression: invalid perl operator: (?=" in problem.message
    )


def test_a_schema_pattern_re2_refuses_is_invalid():
    [problem] = schema.check_crd(make_crd(obj({"name": {"type": "string", "pattern": "(a)\\1"}})))
    assert (problem.code, problem.path[-1]) == ("crd.pattern", "pattern")
    assert problem.message == "must be a valid regular expression, but isn't: invalid escape sequence: \\1"


def test_find_and_find_all_are_re2():
    assert regexes.find("abc123def45", "[0-9]+") == "123"
    assert regexes.find_all("abc123def45", "[0-9]+") == ["123", "45"]
    assert regexes.find_all("abc123def45", "[0-9]+", 1) == ["123"]
    assert regexes.find_all("ünï 1 ✓ 2", "[^ ]") == ["ü", "n", "ï", "1", "✓", "2"]
    with pytest.raises(regexes.RegexError):
        regexes.find("aa", "(a)\\1")


CATASTROPHIC = "(a+)+$"  # backtracks exponentially in a backtracking engine on a non-matching text


def test_a_catastrophic_pattern_finishes_on_a_long_text(tmp_path: Path):
    """RE2 semantics: linear in the text. Run in a child process, so a regression hangs it, not the suite."""
    probe = f"""
from kratix import schema
from kratix.apiserver import celrules, regexes
from tests.platforms import PROMISE, database, kratix, platform_files, write_files
from tests.test_schema import compile_spec, obj, request, validate
text = "a" * 10_000 + "!"
assert regexes.find(text, {CATASTROPHIC!r}) == ""
rule = celrules.compile_rule({{"rule": "self.matches('{CATASTROPHIC}') || self.findAll('{CATASTROPHIC}').size() > 0"}})
assert celrules.evaluate(rule, text).message.startswith("failed rule")
compiled = compile_spec(obj({{"name": {{"type": "string", "pattern": {CATASTROPHIC!r}}}}}))
assert [p[1] for p in validate(compiled, request({{"name": text}}))[1]] == ["schema.pattern"]
print("done")
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.stdout.strip() == "done", done.stderr


# ------------------------------------------------------------------------------------- through the CLI

NOTE = """                    note:
                      type: string
"""


def promise_with(note: str = "", *, more: str = "", rule: str = "") -> str:
    """The test platform's Promise, with `note` added to `spec.note`, properties `more` and a `rule` on `spec`."""
    promise = PROMISE.replace(NOTE, more + NOTE + note)
    if rule:
        promise = promise.replace(
            "                      message: large databases need at least 2 replicas\n",
            "                      message: large databases need at least 2 replicas\n"
            f"                    - rule: {rule}\n",
        )
    return promise


def test_an_expensive_rule_is_refused_when_the_promise_is_loaded(tmp_path: Path):
    tags = "                    tags:\n                      type: array\n                      items: {type: string}\n"
    rule = '"!has(self.tags) || self.tags.all(t, self.tags.exists_one(u, u == t))"'
    files = {
        **platform_files(**{"team-a/orders": database("orders")}),
        "promises/database/promise.yaml": promise_with(more=tags, rule=rule),
    }
    result = kratix("validate", str(write_files(tmp_path / "unbounded", files)))
    assert result.returncode == 1
    assert (
        "x-kubernetes-validations[1].rule: estimated rule cost exceeds budget by factor of more than 100x "
        "(try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and "
        "strings are declared)"
    ) in result.stderr
    assert "promises/database/promise.yaml:" in result.stderr

    bounded = tags.replace(
        "items: {type: string}", "maxItems: 20\n                      items: {type: string, maxLength: 63}"
    )
    files["promises/database/promise.yaml"] = promise_with(more=bounded, rule=rule)
    result = kratix("validate", str(write_files(tmp_path / "bounded", files)))
    assert result.returncode == 0, result.stderr


def test_a_catastrophic_pattern_fails_one_request_quickly_and_not_the_others(tmp_path: Path):
    files = {
        **platform_files(
            **{"team-a/good": database("good", note="aaaa"), "team-a/bad": database("bad", note="a" * 10_000 + "!")}
        ),
        "promises/database/promise.yaml": promise_with(f"                      pattern: '^$|{CATASTROPHIC}'\n"),
    }
    out = tmp_path / "out"
    result = kratix("compile", str(write_files(tmp_path / "p", files)), "--out", str(out))
    assert result.returncode == 1
    assert "requests/team-a/bad.yaml:6:3: spec.note: must match ^$|(a+)+$" in result.stderr
    assert "1 placed, 0 pending, 1 failed" in result.stderr
    assert list(out.glob("*/resources/team-a/database/good/instance/configmap.yaml"))


def test_a_pattern_re2_refuses_is_refused_when_the_promise_is_loaded(tmp_path: Path):
    files = {
        **platform_files(**{"team-a/orders": database("orders")}),
        "promises/database/promise.yaml": promise_with("                      pattern: '^(?!admin).*'\n"),
    }
    result = kratix("validate", str(write_files(tmp_path / "p", files)))
    assert result.returncode == 1
    assert (
        "properties.spec.properties.note.pattern: must be a valid regular expression, but isn't: invalid "
        "perl operator: (?!" in result.stderr
    )
