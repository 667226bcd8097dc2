"""CEL validation rules (`x-kubernetes-validations`) for the schema stage, on the `cel` package (cel-rust).

In: one rule as written in a CRD (`rule`, `message`, `messageExpression`, `fieldPath`, `reason`) and the CEL
view of the schema node it sits on (`celcost.Shape`). Out: a compiled `Rule`, reused for every request, with its
worst-case cost per evaluation as the API server estimates it; or a `RuleProblem` explaining why the rule cannot
run here. Each rule is evaluated with `self` bound to the node it sits on, after defaulting.

Refused as the API server refuses them: a constant regular expression (in `matches`, `find`, `findAll`) that
RE2 does not accept. Regular expressions run with RE2's semantics, in time linear in the text: `matches` in
cel-rust (Rust's regex crate, which has no backtracking either) and `find`/`findAll` here (RE2 itself).

What the API server has and this module does not:
- transition rules (`oldSelf`): a compile has no previous object, so they are skipped (reported as a problem
  of kind "transition"; their cost still counts, as it does in the API server);
- the Kubernetes libraries `quantity()`, `url()`, `ip()`, `cidr()`, `format()`: a rule that uses them is skipped
  and reported as kind "unsupported";
- the optional-field syntax (`self.?x`, `self[?0]`), which the package does not parse: reported as "invalid";
- compile-time type checking: a type error shows only when a request reaches it;
- strings with `format: date-time`/`duration` stay strings (the API server turns them into timestamps).
Supported: the CEL core (`has`, `size`, `all`, `exists`, `exists_one`, `map`, `filter`, `matches`,
`startsWith`, conversions, timestamps), the cel-go extension libraries the package ships (`lowerAscii`,
`split`, `join`, `indexOf`, `sets.*`, `math.*`, list `min`/`max`/`sum`, ...) plus list `isSorted`/`indexOf`
and string `find`/`findAll`, and Kubernetes' escaping of field names (`self.__namespace__`, `x__dash__y`).
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# The `cel` package's __init__ imports its interactive shell (`cel.cli`: prompt_toolkit, typer, rich), 0.15 s or
# more of every compile's start-up for a module never used here. An empty stand-in keeps it from loading. This
# leans on how that __init__ is written, so pyproject.toml pins the package's exact version and
# tests/test_celrules.py fails when the pinned version's __init__ no longer imports `cli` the way it is stood in for.
sys.modules.setdefault("cel.cli", types.ModuleType("cel.cli"))

import cel  # noqa: E402 - after the stand-in above, on purpose
from cel.stdlib import add_stdlib_to_context  # noqa: E402

from kratix.apiserver import celcost, celsyntax, regexes  # noqa: E402

# Functions cel-rust implements natively (found by evaluating each); operators (`_+_`, `@in`) are native too.
_NATIVE = frozenset(
    {
        "size",
        "matches",
        "contains",
        "startsWith",
        "endsWith",
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "bool",
        "timestamp",
        "duration",
        "dyn",
        "type",
        "has",
        "all",
        "exists",
        "exists_one",
        "map",
        "filter",
        "getFullYear",
        "getMonth",
        "getDate",
        "getDayOfMonth",
        "getDayOfWeek",
        "getDayOfYear",
        "getHours",
        "getMinutes",
        "getSeconds",
        "getMilliseconds",
        "of",
        "none",
        "hasValue",
        "orValue",
        "value",
        "or",
    }
)
_PATH_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\['((?:[^'\\]|\\.)*)'\]")
_REGEX_FUNCTIONS = frozenset({"matches", "find", "findAll"})


@dataclass(frozen=True)
class Rule:
    source: str
    program: Any = field(repr=False, compare=False)  # cel.Program
    message: str
    message_program: Any = field(default=None, repr=False, compare=False)  # cel.Program | None
    field_path: tuple[str, ...] = ()  # where to report a failure, relative to the node (`fieldPath`)
    functions: Mapping[str, Callable[..., Any]] = field(default_factory=dict, repr=False, compare=False)
    escaped: bool = False  # the rule names escaped fields, so `self` is handed over with escaped keys
    # The only fields of `self` the rule reads, when that is plain from its text: converting a Python value to
    # CEL costs per key, and a rule over two fields of a large spec should not pay for the whole spec.
    fields: frozenset[str] | None = None
    cost: int = 0  # worst case of one evaluation, from the schema's bounds (CEL cost units)
    message_cost: int = 0  # the same for the messageExpression
    expr: celsyntax.Expr | None = field(default=None, repr=False, compare=False)
    message_expr: celsyntax.Expr | None = field(default=None, repr=False, compare=False)
    shape: celcost.Shape | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class RuleFailure:
    message: str
    errored: bool  # the rule could not be evaluated (no such key, no such overload) rather than said false


@dataclass(frozen=True)
class RuleProblem:
    kind: str  # "invalid" (an error), "transition" or "unsupported" (the rule is skipped)
    message: str
    cost: int = 0  # a skipped rule's cost still counts against the CRD's limits, as in the API server
    message_cost: int = 0


@dataclass(frozen=True)
class _Parsed:
    program: Any  # cel.Program
    expr: celsyntax.Expr
    cost: int


def compile_rule(raw: object, shape: celcost.Shape | None = None) -> Rule | RuleProblem:
    """`raw` compiled, its cost estimated with `self` of `shape` (None: nothing is known of `self`)."""
    if not isinstance(raw, Mapping) or not _nonblank_text(raw.get("rule")):
        return RuleProblem("invalid", "a validation rule needs a non-empty string `rule`")
    source: str = raw["rule"]
    rule = _parse(source, shape)
    if isinstance(rule, RuleProblem):
        return rule
    message = _parse_message(raw, shape)
    if isinstance(message, RuleProblem):
        return message
    message_program, message_expr, message_cost = (
        (None, None, 0) if message is None else (message.program, message.expr, message.cost)
    )
    costs = {"cost": rule.cost, "message_cost": message_cost}
    if "oldSelf" in rule.program.variables():
        return RuleProblem(
            "transition",
            f"transition rule {source!r} skipped: it compares with oldSelf, and a compile has no previous object",
            **costs,
        )
    field_path = parse_field_path(raw.get("fieldPath", ""))
    if field_path is None:
        return RuleProblem("invalid", f"fieldPath {raw.get('fieldPath')!r} is not a path like .x.y or ['x']")
    exprs = [rule.expr] if message_expr is None else [rule.expr, message_expr]
    refused = _refused_pattern(exprs)
    if refused is not None:
        return RuleProblem("invalid", f"rule {source!r}: {refused}", **costs)
    library = _library()
    names = _functions_called(exprs)
    unknown = _unknown_functions(names, library)
    if unknown:
        return RuleProblem(
            "unsupported", f"rule {source!r} skipped: this compiler cannot evaluate {', '.join(unknown)}()", **costs
        )
    return Rule(
        source=source,
        program=rule.program,
        message=_static_message(raw, source),
        message_program=message_program,
        field_path=field_path,
        functions={name: library[name] for name in names if name in library},
        escaped="__" in source,
        fields=_fields_read(exprs),
        expr=rule.expr,
        message_expr=message_expr,
        shape=shape,
        **costs,
    )


def _nonblank_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _parse_message(raw: Mapping[str, Any], shape: celcost.Shape | None) -> _Parsed | RuleProblem | None:
    """The messageExpression compiled; None when there is no string messageExpression."""
    text = raw.get("messageExpression")
    return _parse(text, shape) if isinstance(text, str) else None


def _static_message(raw: Mapping[str, Any], source: str) -> str:
    text = raw.get("message")
    return text if isinstance(text, str) and text else f"failed rule: {source}"


def _unknown_functions(names: set[str], library: Mapping[str, Callable[..., Any]]) -> list[str]:
    """The functions called that neither cel-rust nor the library here can evaluate, sorted."""
    return sorted(name for name in names if not _is_native(name) and name not in library)


def evaluate(rule: Rule, value: object, *, message_expression: bool = True) -> RuleFailure | None:
    """None when the rule holds, else the failure to report (the rule's message, or the evaluation error).
    `message_expression=False`: report `message` without evaluating the messageExpression."""
    context = _context(rule, value)
    try:
        result = rule.program.execute(context)
    except Exception as error:  # cel raises KeyError/TypeError/ValueError/RuntimeError/...: all are data here
        return RuleFailure(f"rule {rule.source!r} could not be evaluated: {_error_text(error)}", errored=True)
    if result is True:
        return None
    if result is not False:
        return RuleFailure(f"rule {rule.source!r} must evaluate to a bool (got {type(result).__name__})", errored=True)
    return RuleFailure(_failure_message(rule, context) if message_expression else rule.message, errored=False)


def failure_message(rule: Rule, value: object) -> str:
    """The message for a failure of `rule` on `value`: its messageExpression's text, else `message`."""
    return _failure_message(rule, _context(rule, value))


def cost_on(rule: Rule, value: object, *, message: bool = False) -> int:
    """The most evaluating `rule` (or its messageExpression) on `value` can cost: the rule's estimate with the
    sizes `value` has, which bounds what the evaluation counts (it costs a walk over the parts the rule reads)."""
    expr = rule.message_expr if message else rule.expr
    if expr is None:
        return 0
    return celcost.estimate(expr, rule.shape, celcost.value_sizes(value))


def _context(rule: Rule, value: object) -> dict[str, Any]:
    if rule.escaped:
        value = escape_keys(value)
    if rule.fields is not None and isinstance(value, dict):
        value = {key: item for key, item in value.items() if key in rule.fields}
    return {"self": value, **rule.functions}


def parse_field_path(text: object) -> tuple[str, ...] | None:
    if text in ("", None):
        return ()
    if not isinstance(text, str):
        return None
    steps: list[str] = []
    position = 0
    for match in _PATH_STEP.finditer(text):
        if match.start() != position:
            return None
        quoted = match.group(2)
        steps.append(match.group(1) if quoted is None else re.sub(r"\\(.)", r"\1", quoted))
        position = match.end()
    return tuple(steps) if position == len(text) else None


def _fields_read(exprs: list[celsyntax.Expr]) -> frozenset[str] | None:
    """`{a, b}` for `self.a > self.b`; None when `self` is used whole (`size(self)`, `self.all(...)`)."""
    fields: set[str] = set()
    selected: set[int] = set()
    for expr in exprs:
        for node in celsyntax.walk(expr):
            if (
                isinstance(node, celsyntax.Select)
                and isinstance(node.operand, celsyntax.Ident)
                and node.operand.name == "self"
            ):
                fields.add(node.field)
                selected.add(id(node.operand))
    for expr in exprs:
        for node in celsyntax.walk(expr):
            if isinstance(node, celsyntax.Ident) and node.name == "self" and id(node) not in selected:
                return None
    return frozenset(fields)


def _functions_called(exprs: list[celsyntax.Expr]) -> set[str]:
    return {node.function for expr in exprs for node in celsyntax.walk(expr) if isinstance(node, celsyntax.Call)}


def _refused_pattern(exprs: list[celsyntax.Expr]) -> str | None:
    """Why a constant regular expression of the rule is not RE2, as the API server says at compile time."""
    for expr in exprs:
        for node in celsyntax.walk(expr):
            if not isinstance(node, celsyntax.Call) or node.function not in _REGEX_FUNCTIONS:
                continue
            pattern = (
                node.args[0]
                if node.target is not None and node.args
                else (node.args[1] if len(node.args) == 2 else None)
            )
            if isinstance(pattern, celsyntax.Literal) and pattern.kind == "string":
                problem = regexes.problem(pattern.value)
                if problem is not None:
                    return f"{node.function}() pattern {pattern.value!r} is not a valid regular expression: {problem}"
    return None


def escape_keys(value: object) -> object:
    """Kubernetes' CEL names for fields that are not CEL identifiers (`x-y` -> `x__dash__y`); a property with
    no CEL name is not visible to rules, as in the API server."""
    if isinstance(value, dict):
        escaped = ((celsyntax.escape_name(str(key)), item) for key, item in value.items())
        return {key: escape_keys(item) for key, item in escaped if key is not None}
    if isinstance(value, list):
        return [escape_keys(item) for item in value]
    return value


def _parse(source: str, shape: celcost.Shape | None) -> _Parsed | RuleProblem:
    try:
        program = cel.compile(source)
    except Exception as error:  # the package raises ValueError for syntax, others for unsupported syntax
        return RuleProblem("invalid", f"CEL expression {source!r} does not compile: {_error_text(error)}")
    try:
        expr = celsyntax.parse(source)
    except celsyntax.CelSyntaxError as error:
        # The package read it and this compiler's own reader did not: the rule cannot be bounded, so not run.
        return RuleProblem("unsupported", f"rule {source!r} skipped: its cost cannot be estimated here ({error})")
    return _Parsed(program, expr, celcost.estimate(expr, shape))


def _failure_message(rule: Rule, context: Mapping[str, Any]) -> str:
    if rule.message_program is not None:
        # Like the API server: a messageExpression that fails or yields no text falls back to `message`.
        try:
            text = rule.message_program.execute(dict(context))
        except Exception:
            return rule.message
        if isinstance(text, str) and text.strip():
            return text
    return rule.message


def _error_text(error: BaseException) -> str:
    if isinstance(error, KeyError):
        return f"no such key: {error.args[0] if error.args else ''}"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _is_native(name: str) -> bool:
    # Operators are native (`_+_`, `@in`, `!_`, `-_`), and so are the optional type's functions (`optional.of`).
    return (
        name in _NATIVE
        or name.startswith(("_", "@", "!", "-"))
        or (name.startswith("optional.") and name.removeprefix("optional.") in _NATIVE)
    )


def _library() -> dict[str, Callable[..., Any]]:
    context = cel.Context()
    add_stdlib_to_context(context)  # the package's documented way to the cel-go extension libraries
    functions: dict[str, Callable[..., Any]] = dict(context.functions)
    string_index = functions.get("indexOf")
    functions.update(
        {
            "isSorted": _is_sorted,
            "find": regexes.find,  # RE2, as Kubernetes' regex library: linear in the text, whatever the pattern
            "findAll": regexes.find_all,
            "indexOf": lambda target, item, *rest: _index_of(target, item, string_index, *rest),
        }
    )
    return functions


def _is_sorted(items: list[Any]) -> bool:
    return all(a <= b for a, b in zip(items, items[1:], strict=False))


def _index_of(target: Any, item: Any, string_index: Callable[..., Any] | None, *rest: Any) -> Any:
    # The package's indexOf only knows strings; Kubernetes' list library adds lists.
    if isinstance(target, list):
        return next((index for index, element in enumerate(target) if element == item), -1)
    if string_index is None:
        raise TypeError("indexOf is not available")
    return string_index(target, item, *rest)
