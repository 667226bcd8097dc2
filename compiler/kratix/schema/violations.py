"""`Violation`, the schema stage's unit of output, and jsonschema-rs errors turned into violations with stable
codes and messages a request's author can act on (`spec.replicas: must be >= 1 (got 0)`,
`unknown field "sise" (did you mean "size"?)`)."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kratix.model.diagnostics import Severity
from kratix.model.documents import FieldPath
from kratix.schema.defaulting import Node


@dataclass(frozen=True)
class Violation:
    path: FieldPath
    code: str
    message: str
    severity: Severity = Severity.ERROR


def sort_violations(found: Iterable[Violation]) -> list[Violation]:
    unique = {(v.path, v.code, v.message, v.severity): v for v in found}
    return sorted(unique.values(), key=lambda v: (_path_key(v.path), v.code, v.message))


def _path_key(path: FieldPath) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, part) if isinstance(part, int) else (1, part) for part in path)


def format_path(path: FieldPath) -> str:
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
    return f"{text.lstrip('.')}: " if text else ""


def show(value: object) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def type_name(value: object) -> str:
    for kind, name in (
        (bool, "boolean"),
        (int, "integer"),
        (float, "number"),
        (str, "string"),
        (list, "array"),
        (dict, "object"),
        (type(None), "null"),
    ):
        if isinstance(value, kind):
            return name
    return type(value).__name__


_SIMPLE_MESSAGES = {
    "Minimum": ("schema.minimum", "must be >= {limit} (got {got})"),
    "Maximum": ("schema.maximum", "must be <= {limit} (got {got})"),
    "ExclusiveMinimum": ("schema.minimum", "must be > {limit} (got {got})"),
    "ExclusiveMaximum": ("schema.maximum", "must be < {limit} (got {got})"),
    "MultipleOf": ("schema.multiple-of", "must be a multiple of {multiple_of} (got {got})"),
    "MinLength": ("schema.min-length", "must be at least {limit} characters long (got {count})"),
    "MaxLength": ("schema.max-length", "must be at most {limit} characters long (got {count})"),
    "MinItems": ("schema.min-items", "must have at least {limit} items (got {count})"),
    "MaxItems": ("schema.max-items", "must have at most {limit} items (got {count})"),
    "MinProperties": ("schema.min-properties", "must have at least {limit} entries (got {count})"),
    "MaxProperties": ("schema.max-properties", "must have at most {limit} entries (got {count})"),
    "UniqueItems": ("schema.unique", "must not contain duplicate items"),
    "Pattern": ("schema.pattern", "must match {pattern} (got {got})"),
    "Format": ("schema.format", "must be a valid {format} (got {got})"),
    "Constant": ("schema.const", "must be {expected_value} (got {got})"),
    "AnyOf": ("schema.any-of", "must match at least one of the allowed forms"),
    "OneOfNotValid": ("schema.one-of", "must match exactly one of the allowed forms (matches none)"),
    "OneOfMultipleValid": ("schema.one-of", "must match exactly one of the allowed forms (matches several)"),
    "Not": ("schema.not", "must not match the forbidden form (got {got})"),
}


def violations_of(error: Any, root: Node) -> list[Violation]:
    """One jsonschema-rs error as violations; `root` is the schema's node tree, for "did you mean" hints."""
    kind = type(error.kind).__name__
    path: FieldPath = tuple(error.instance_path)
    if kind == "AdditionalProperties":  # jsonschema-rs names every unknown key of one object in one error
        return _unknown_fields(path, error.kind.as_dict()["unexpected"], root)
    return [_violation(kind, error, path)]


def _violation(kind: str, error: Any, path: FieldPath) -> Violation:
    detail = error.kind.as_dict()
    value = error.instance
    if kind == "Required":
        return Violation((*path, detail["property"]), "schema.required", "required field missing")
    simple = _SIMPLE_MESSAGES.get(kind)
    if simple is not None:
        code, template = simple
        return Violation(path, code, template.format(**detail, got=show(value), count=_size(value)))
    if kind == "Type":
        expected = " or ".join(detail["types"])
        return Violation(path, "schema.type", f"must be {expected} (got {type_name(value)})")
    if kind == "Enum":
        options = ", ".join(str(o) if isinstance(o, str) else json.dumps(o) for o in detail["options"])
        return Violation(path, "schema.enum", f"must be one of: {options} (got {show(value)})")
    return Violation(path, f"schema.{_kebab(kind)}", error.message)


def _unknown_fields(path: FieldPath, names: list[str], root: Node) -> list[Violation]:
    known = _node_at(root, path)
    found = []
    for name in names:
        close = difflib.get_close_matches(name, list(known.properties) if known else [], n=1)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        found.append(Violation((*path, name), "schema.unknown-field", f'unknown field "{name}"{hint}'))
    return found


def _size(value: object) -> int | str:
    return len(value) if isinstance(value, str | list | dict) else "?"


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def _node_at(root: Node, path: FieldPath) -> Node | None:
    node: Node | None = root
    for part in path:
        if node is None:
            return None
        node = node.items if isinstance(part, int) else node.child(part)
    return node
