"""A CRD's OpenAPI v3 structural schema (`openAPIV3Schema`) as JSON Schema: one translation, read two ways.

In: one schema node as plain data, junk included (what is not a schema is skipped, never raised on; reporting
it is the caller's business). Out: a JSON Schema dict that draft-07 and 2020-12 read alike (exclusive bounds
are numbers, as both want).

What every reading shares, because it is what Kubernetes means:
- `nullable: true` lets a value be null (added to `type` and to `enum`);
- `x-kubernetes-int-or-string` is "integer or string", `x-kubernetes-list-type: set` unique items, and
  OpenAPI's boolean `exclusiveMinimum`/`exclusiveMaximum` flags become JSON Schema's numeric bounds;
- objects are closed (`additionalProperties: false`): an unknown field is an error, as with
  `kubectl --validate=strict`, unless `x-kubernetes-preserve-unknown-fields` keeps it or the object sits inside
  allOf/anyOf/oneOf/not, whose branches only add checks and may name a subset of the fields;
- an `x-kubernetes-embedded-resource` is a Kubernetes object: apiVersion and kind non-empty strings and
  required, metadata an object, as the API server checks them;
- `$ref`, `patternProperties` and the other keywords a structural schema may not use are left out.

What differs is a `Reading`: the schema stage checks a request as written, before the API server would see it
(it applies defaults and settles nulls itself first); the conformance check reads rendered output the way the
API server does after dropping null fields and filling defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean"})
_CONSTRAINTS = (
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "multipleOf",
    "uniqueItems",
    "minimum",
    "maximum",
)
_ANNOTATIONS = ("description", "title")
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_JUNCTORS = ("allOf", "anyOf", "oneOf")


@dataclass(frozen=True)
class Reading:
    """How one user reads a schema; the defaults are the plainest reading."""

    annotations: bool = False  # keep description, title and default (for editors)
    formats: frozenset[str] = frozenset()  # `format` values kept for the validator to check; others dropped
    int_ranges: bool = False  # `format: int32`/`int64` bound the value as the API server does
    null_fields: bool = False  # every object field may be null (the API server drops a null field first)
    defaulted_optional: bool = False  # a required field with a default may be absent (the API server fills it)


def translate(raw: object, reading: Reading, *, closed: bool = True, field: bool = False) -> dict[str, Any]:
    """`raw` as JSON Schema. `closed`: unknown fields are errors (False inside junctors and below them);
    `field`: `raw` is the value of an object field (a property or a map value)."""
    if not isinstance(raw, Mapping):
        return {}
    out = _copied(raw, reading)
    accepts_null = raw.get("nullable") is True or (field and reading.null_fields)
    types = _types(raw)
    if types:
        out["type"] = _one_or_many([*types, "null"] if accepts_null else types)
    _bounds(raw, out, reading)
    if isinstance(raw.get("required"), list):
        out["required"] = _required(raw, reading)
    if isinstance(raw.get("enum"), list):
        out["enum"] = [*raw["enum"], *([None] if accepts_null and None not in raw["enum"] else [])]
    _children(raw, out, reading, closed=closed)
    _kubernetes_extensions(raw, out, closed=closed)
    if reading.annotations and "default" in raw:
        out["default"] = raw["default"]
    return out


def _copied(raw: Mapping[str, Any], reading: Reading) -> dict[str, Any]:
    """The keywords that mean the same in both: the annotations (when kept) and the constraints."""
    out: dict[str, Any] = {key: raw[key] for key in _ANNOTATIONS if reading.annotations and key in raw}
    out.update({key: raw[key] for key in _CONSTRAINTS if key in raw})
    return out


def _one_or_many(types: list[str]) -> str | list[str]:
    return types[0] if len(types) == 1 else types


def _kubernetes_extensions(raw: Mapping[str, Any], out: dict[str, Any], *, closed: bool) -> None:
    """An embedded resource's envelope, a closed object's unknown fields refused, a set's items unique."""
    if raw.get("x-kubernetes-embedded-resource") is True:
        out["properties"] = {**_envelope(), **out.get("properties", {})}
        out["required"] = sorted({*out.get("required", []), "apiVersion", "kind"})
    is_object = raw.get("type") == "object" or "properties" in raw
    preserve = raw.get("x-kubernetes-preserve-unknown-fields") is True
    if closed and is_object and not preserve and "additionalProperties" not in raw:
        out["additionalProperties"] = False
    if raw.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True


def _types(raw: Mapping[str, Any]) -> list[str]:
    if raw.get("x-kubernetes-int-or-string") is True:
        return ["integer", "string"]
    declared = raw.get("type")
    return [declared] if isinstance(declared, str) and declared in TYPES else []


def _bounds(raw: Mapping[str, Any], out: dict[str, Any], reading: Reading) -> None:
    # OpenAPI 3.0 spells exclusive bounds as booleans next to minimum/maximum; JSON Schema as numbers.
    for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if raw.get(flag) is True and bound in out:
            out[flag] = out.pop(bound)
    fmt = raw.get("format") if isinstance(raw.get("format"), str) else None
    if reading.int_ranges and fmt in _INT_RANGES:
        low, high = _INT_RANGES[fmt]
        if "minimum" not in out and "exclusiveMinimum" not in out:
            out["minimum"] = low
        if "maximum" not in out and "exclusiveMaximum" not in out:
            out["maximum"] = high
    elif fmt in reading.formats:
        out["format"] = fmt


def _required(raw: Mapping[str, Any], reading: Reading) -> list[Any]:
    properties = raw.get("properties")
    if not reading.defaulted_optional or not isinstance(properties, Mapping):
        return list(raw["required"])
    return [
        key
        for key in raw["required"]
        if not (isinstance(key, str) and isinstance(properties.get(key), Mapping) and "default" in properties[key])
    ]


def _children(raw: Mapping[str, Any], out: dict[str, Any], reading: Reading, *, closed: bool) -> None:
    if isinstance(raw.get("properties"), Mapping):
        out["properties"] = {
            name: translate(sub, reading, closed=closed, field=True) for name, sub in raw["properties"].items()
        }
    if "items" in raw:
        out["items"] = translate(raw["items"], reading, closed=closed)
    additional = raw.get("additionalProperties")
    if isinstance(additional, bool):
        out["additionalProperties"] = additional
    elif additional is not None:  # the schema of map values
        out["additionalProperties"] = translate(additional, reading, closed=closed, field=True)
    for key in _JUNCTORS:
        if key in raw:
            branches = raw[key] if isinstance(raw[key], list) else []
            out[key] = [translate(branch, reading, closed=False) for branch in branches]
    if "not" in raw:
        out["not"] = translate(raw["not"], reading, closed=False)


def _envelope() -> dict[str, Any]:
    return {
        "apiVersion": {"type": "string", "minLength": 1},
        "kind": {"type": "string", "minLength": 1},
        "metadata": {"type": "object"},
    }
