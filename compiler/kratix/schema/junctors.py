"""allOf, anyOf, oneOf and not in a CRD schema, as a structural schema allows them (apiextensions'
`ValidateStructural`): they may only add value checks to what the structural part of the schema declares.

In: one decoded schema node that is part of the structure (not itself inside a junctor). Out: (relative path,
message) pairs for what its junctors may not hold: a type, a default, a title or description, nullable,
additionalProperties, any `x-kubernetes-*` extension, or a `metadata` property. Two shapes are exempt, because
they spell int-or-string: `anyOf: [{type: integer}, {type: string}]`, and the same as the first allOf entry.
`check_completeness` adds, for the root only (as the API server checks it), that every property and `items`
a junctor names exists in the structure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kratix.model.documents import FieldPath
from kratix.schema.keywords import Found

JUNCTORS = ("allOf", "anyOf", "oneOf")
_INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]
_FORBIDDEN = (
    ("type", "must be empty to be structural"),
    ("default", "must be undefined to be structural"),
    ("title", "must be empty to be structural"),
    ("description", "must be empty to be structural"),
)
_FORBIDDEN_TRUE = (
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
)
_FORBIDDEN_SET = (
    ("x-kubernetes-list-map-keys", "must be empty to be structural"),
    ("x-kubernetes-list-type", "must be undefined to be structural"),
    ("x-kubernetes-map-type", "must be undefined to be structural"),
    ("x-kubernetes-validations", "must be empty to be structural"),
)


def check_junctors(raw: Mapping[str, Any]) -> Found:
    """What the junctors of a structural node may not hold."""
    return _value_validation(
        raw, (), skip_any_of=_is_int_or_string(raw.get("anyOf")), skip_first_any_of=_first_all_of_is_int_or_string(raw)
    )


def branches(raw: Mapping[str, Any]) -> list[tuple[FieldPath, Mapping[str, Any]]]:
    """The junctor branches directly under `raw`, with their relative paths."""
    found: list[tuple[FieldPath, Mapping[str, Any]]] = []
    for key in JUNCTORS:
        found += [((key, index), branch) for index, branch in enumerate(raw.get(key) or ())]
    if isinstance(raw.get("not"), Mapping):
        found.append((("not",), raw["not"]))
    return found


def _value_validation(raw: Mapping[str, Any], path: FieldPath, *, skip_any_of: bool, skip_first_any_of: bool) -> Found:
    found: Found = []
    for branch_path, branch in branches(raw):
        if branch_path[0] == "anyOf" and skip_any_of:
            continue
        skip = branch_path == ("allOf", 0) and skip_first_any_of
        found += _nested((*path, *branch_path), branch, skip_any_of=skip)
    return found


def _nested(path: FieldPath, raw: Mapping[str, Any], *, skip_any_of: bool) -> Found:
    found = _value_validation(raw, path, skip_any_of=skip_any_of, skip_first_any_of=False)
    if isinstance(raw.get("items"), Mapping):
        found += _nested((*path, "items"), raw["items"], skip_any_of=False)
    for name, sub in (raw.get("properties") or {}).items():
        found += _nested((*path, "properties", name), sub, skip_any_of=False)
    for key, message in _FORBIDDEN:
        if raw.get(key) not in (None, ""):
            found.append(((*path, key), message))
    if "additionalProperties" in raw and raw["additionalProperties"] is not False:
        found.append(((*path, "additionalProperties"), "must be undefined to be structural"))
    for key in _FORBIDDEN_TRUE:
        if raw.get(key) is True:
            found.append(((*path, key), "must be false to be structural"))
    for key, message in _FORBIDDEN_SET:
        if raw.get(key) not in (None, []):
            found.append(((*path, key), message))
    if "metadata" in (raw.get("properties") or {}):
        found.append(((*path, "properties", "metadata"), "must not be specified in a nested context"))
    return found


def check_completeness(raw: Mapping[str, Any]) -> Found:
    """Every property and `items` the root's junctors name must exist in the structure below the root."""
    found: Found = []
    for branch_path, branch in branches(raw):
        found += _complete(branch, raw, (), branch_path)
    return found


def _complete(
    value: Mapping[str, Any], structure: Mapping[str, Any] | None, at: FieldPath, defined: FieldPath
) -> Found:
    if structure is None:
        return [(at, f"Required value: because it is defined in {_dotted(defined)}")]
    found: Found = []
    for branch_path, branch in branches(value):
        found += _complete(branch, structure, at, (*defined, *branch_path))
    if isinstance(value.get("items"), Mapping):
        items = structure.get("items") if isinstance(structure.get("items"), Mapping) else None
        found += _complete(value["items"], items, (*at, "items"), (*defined, "items"))
    own = structure.get("properties") or {}
    for name, sub in (value.get("properties") or {}).items():
        found += _complete(sub, own.get(name), (*at, "properties", name), (*defined, "properties", name))
    return found


def _is_int_or_string(any_of: Any) -> bool:
    return any_of == _INT_OR_STRING


def _first_all_of_is_int_or_string(raw: Mapping[str, Any]) -> bool:
    all_of: list[Mapping[str, Any]] = raw.get("allOf") or []
    return bool(all_of) and _is_int_or_string(all_of[0].get("anyOf"))


def _dotted(path: FieldPath) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")
