"""CEL validation rules (`x-kubernetes-validations`) for the schema stage, on the `cel` package (cel-rust).

In: one rule as written in a CRD (`rule`, `message`, `messageExpression`, `fieldPath`, `reason`). Out: a
compiled `Rule`, reused for every request, or a `RuleProblem` explaining why the rule cannot run here.
Each rule is evaluated with `self` bound to the node it sits on, after defaulting.

What the API server has and this module does not:
- transition rules (`oldSelf`): a compile has no previous object, so they are skipped (reported as a problem
  of kind "transition");
- the Kubernetes libraries `quantity()`, `url()`, `ip()`, `cidr()`, `format()` and the optional-field syntax
  (`self.?x`, `self[?0]`): a rule that uses them is skipped and reported as kind "unsupported";
- compile-time type checking and cost limits: a type error shows only when a request reaches it;
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

# Functions cel-rust implements natively (found by evaluating each); operators (`_+_`, `@in`) are native too.
_NATIVE = frozenset({
    "size", "matches", "contains", "startsWith", "endsWith", "int", "uint", "double", "string", "bytes",
    "bool", "timestamp", "duration", "dyn", "type", "has", "all", "exists", "exists_one", "map", "filter",
    "getFullYear", "getMonth", "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getHours",
    "getMinutes", "getSeconds", "getMilliseconds", "of", "none", "hasValue", "orValue", "value", "or",
})
_SELF = re.compile(r"\bself\b(?:\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\())?")
_PATH_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\['((?:[^'\\]|\\.)*)'\]")
_ESCAPES = (("__", "__underscores__"), (".", "__dot__"), ("-", "__dash__"), ("/", "__slash__"))
# CEL reserved words a field name must be escaped from (Kubernetes writes `self.__namespace__`).
_RESERVED = frozenset({
    "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function", "if",
    "import", "let", "loop", "package", "namespace", "return", "var", "void", "while",
})


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


@dataclass(frozen=True)
class RuleFailure:
    message: str
    errored: bool  # the rule could not be evaluated (no such key, no such overload) rather than said false


@dataclass(frozen=True)
class RuleProblem:
    kind: str  # "invalid" (an error), "transition" or "unsupported" (the rule is skipped)
    message: str


def compile_rule(raw: object) -> Rule | RuleProblem:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("rule"), str) or not raw["rule"].strip():
        return RuleProblem("invalid", "a validation rule needs a non-empty string `rule`")
    source = raw["rule"]
    program = _compile(source)
    if isinstance(program, RuleProblem):
        return program
    names = set(program.functions())
    if "oldSelf" in program.variables():
        return RuleProblem("transition", f"transition rule {source!r} skipped: it compares with oldSelf, "
                                         "and a compile has no previous object")
    message_program = None
    if isinstance(raw.get("messageExpression"), str):
        message_program = _compile(raw["messageExpression"])
        if isinstance(message_program, RuleProblem):
            return message_program
        names |= set(message_program.functions())
    field_path = parse_field_path(raw.get("fieldPath", ""))
    if field_path is None:
        return RuleProblem("invalid", f"fieldPath {raw.get('fieldPath')!r} is not a path like .x.y or ['x']")
    library = _library()
    unknown = sorted(name for name in names if not _is_native(name) and name not in library)
    if unknown:
        return RuleProblem("unsupported", f"rule {source!r} skipped: this compiler cannot evaluate "
                                          f"{', '.join(unknown)}()")
    message = raw.get("message")
    texts = [source, raw.get("messageExpression") if message_program is not None else ""]
    return Rule(
        source=source,
        program=program,
        message=message if isinstance(message, str) and message else f"failed rule: {source}",
        message_program=message_program,
        field_path=field_path,
        functions={name: library[name] for name in names if name in library},
        escaped="__" in source,
        fields=_fields_read(texts),
    )


def evaluate(rule: Rule, value: object) -> RuleFailure | None:
    """None when the rule holds, else the failure to report (the rule's message, or the evaluation error)."""
    if rule.escaped:
        value = escape_keys(value)
    if rule.fields is not None and isinstance(value, dict):
        value = {key: item for key, item in value.items() if key in rule.fields}
    context: dict[str, Any] = {"self": value, **rule.functions}
    try:
        result = rule.program.execute(context)
    except Exception as error:  # cel raises KeyError/TypeError/ValueError/RuntimeError/...: all are data here
        return RuleFailure(f"rule {rule.source!r} could not be evaluated: {_error_text(error)}", errored=True)
    if result is True:
        return None
    if result is not False:
        return RuleFailure(f"rule {rule.source!r} must evaluate to a bool (got {type(result).__name__})",
                           errored=True)
    return RuleFailure(_failure_message(rule, context), errored=False)


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


def _fields_read(texts: list[str]) -> frozenset[str] | None:
    """`{a, b}` for `self.a > self.b`; None when `self` is used whole (`size(self)`, `self.all(...)`)."""
    fields: set[str] = set()
    for text in texts:
        for found in _SELF.finditer(text):
            if found.group(1) is None:
                return None
            fields.add(found.group(1))
    return frozenset(fields)


def escape_keys(value: object) -> object:
    """Kubernetes' CEL names for fields that are not CEL identifiers (`x-y` -> `x__dash__y`)."""
    if isinstance(value, dict):
        return {_escape(key): escape_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [escape_keys(item) for item in value]
    return value


def _escape(name: str) -> str:
    if name in _RESERVED:
        return f"__{name}__"
    for plain, escaped in _ESCAPES:
        name = name.replace(plain, escaped)
    return name


def _compile(source: str) -> Any:
    try:
        return cel.compile(source)
    except Exception as error:  # the package raises ValueError for syntax, others for unsupported syntax
        return RuleProblem("invalid", f"CEL expression {source!r} does not compile: {_error_text(error)}")


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
    return name in _NATIVE or name.startswith(("_", "@", "!"))


def _library() -> dict[str, Callable[..., Any]]:
    context = cel.Context()
    add_stdlib_to_context(context)  # the package's documented way to the cel-go extension libraries
    functions: dict[str, Callable[..., Any]] = dict(context.functions)
    string_index = functions.get("indexOf")
    functions.update({
        "isSorted": _is_sorted,
        "find": _find,
        "findAll": _find_all,
        "indexOf": lambda target, item, *rest: _index_of(target, item, string_index, *rest),
    })
    return functions


def _is_sorted(items: list[Any]) -> bool:
    return all(a <= b for a, b in zip(items, items[1:], strict=False))


def _find(text: str, pattern: str) -> str:
    found = re.search(pattern, text)
    return found.group(0) if found else ""


def _find_all(text: str, pattern: str, limit: int = -1) -> list[str]:
    matches = [found.group(0) for found in re.finditer(pattern, text)]
    return matches if limit < 0 else matches[:limit]


def _index_of(target: Any, item: Any, string_index: Callable[..., Any] | None, *rest: Any) -> Any:
    # The package's indexOf only knows strings; Kubernetes' list library adds lists.
    if isinstance(target, list):
        return next((index for index, element in enumerate(target) if element == item), -1)
    if string_index is None:
        raise TypeError("indexOf is not available")
    return string_index(target, item, *rest)
