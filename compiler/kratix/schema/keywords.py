"""What the API server refuses in one node of a CRD schema, whatever the node's place: keywords a CRD may not
use, the rules of the `x-kubernetes-*` extensions, list and map types, and the fields of validation rules
(apiextensions' `ValidateCustomResourceDefinitionOpenAPISchema`).

In: one decoded schema node (`kratix.apiserver.crdtypes`: every keyword has its Go type). Out: (relative path, message)
pairs. The checks that depend on where the node sits (the root, array items, metadata, allOf/anyOf/oneOf/not)
live in `kratix.schema.structure` and `kratix.schema.junctors`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kratix.apiserver import celrules
from kratix.model.documents import FieldPath

Found = list[tuple[FieldPath, str]]

TYPES = ("array", "boolean", "integer", "number", "object", "string")
_FORBIDDEN = {
    "id": "id is not supported",
    "additionalItems": "additionalItems is not supported",
    "patternProperties": "patternProperties is not supported",
    "definitions": "definitions is not supported",
    "dependencies": "dependencies is not supported",
    "$ref": "$ref is not supported",
    "$schema": "$schema is not supported",
}
_FORBIDDEN_EVEN_EMPTY = frozenset({"$ref", "dependencies", "additionalItems"})  # Go pointers: set at all is set
_REASONS = ("FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired")
_NEWLINES = re.compile(r"[\n\r]+")


def check_keywords(raw: Mapping[str, Any], *, defaults: str | None, in_meta: bool) -> Found:
    """`defaults`: why defaults are forbidden here (None: they are allowed); `in_meta`: the node is (inside)
    the apiVersion, kind or metadata of a resource."""
    return (
        _type_keyword(raw)
        + _forbidden(raw, defaults=defaults)
        + _refused_settings(raw, in_meta=in_meta)
        + _int_or_string(raw)
        + _map_type(raw)
        + _list_type(raw)
        + _rule_fields(raw)
    )


def _type_keyword(raw: Mapping[str, Any]) -> Found:
    declared = raw.get("type")
    if declared == "null":
        return [(("type",), "type cannot be set to null, use nullable as an alternative")]
    if declared and declared not in TYPES:
        return [(("type",), f"Unsupported value: {declared!r}: supported values: {', '.join(TYPES)}")]
    return []


def _forbidden(raw: Mapping[str, Any], *, defaults: str | None) -> Found:
    """Keywords a CRD may not use (here, or anywhere)."""
    found: Found = []
    if "default" in raw and defaults is not None:
        found.append((("default",), f"must not be set {defaults}"))
    for key, message in _FORBIDDEN.items():
        if key in raw and (key in _FORBIDDEN_EVEN_EMPTY or raw[key]):
            found.append(((key,), message))
    if isinstance(raw.get("items"), list) and raw["items"]:
        found.append((("items",), "items must be a schema object and not an array"))
    return found


def _refused_settings(raw: Mapping[str, Any], *, in_meta: bool) -> Found:
    """Allowed keywords set to a value, or beside another, that the API server refuses."""
    found: Found = []
    if in_meta and raw.get("x-kubernetes-embedded-resource") is True:
        found.append((("x-kubernetes-embedded-resource",), "must not be used inside of resource meta"))
    if raw.get("uniqueItems") is True:
        found.append(
            (
                ("uniqueItems",),
                "uniqueItems cannot be set to true since the runtime complexity becomes "
                "quadratic (use x-kubernetes-list-type: set)",
            )
        )
    additional = raw.get("additionalProperties")
    if additional is not None and raw.get("properties") and additional is not True:
        found.append((("additionalProperties",), "additionalProperties and properties are mutual exclusive"))
    if raw.get("x-kubernetes-preserve-unknown-fields") is False:
        found.append((("x-kubernetes-preserve-unknown-fields",), "must be true or undefined"))
    return found


def _int_or_string(raw: Mapping[str, Any]) -> Found:
    if raw.get("x-kubernetes-int-or-string") is not True:
        return []
    return [
        ((key,), "must be false if x-kubernetes-int-or-string is true")
        for key in ("x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource")
        if raw.get(key) is True
    ]


def _map_type(raw: Mapping[str, Any]) -> Found:
    if "x-kubernetes-map-type" not in raw:
        return []
    found: Found = []
    if raw.get("type") != "object":
        found.append((("type",), "must be object if x-kubernetes-map-type is specified"))
    if raw["x-kubernetes-map-type"] not in ("atomic", "granular"):
        found.append(
            (
                ("x-kubernetes-map-type",),
                f"Unsupported value: {raw['x-kubernetes-map-type']!r}: supported values: atomic, granular",
            )
        )
    return found


def _list_type(raw: Mapping[str, Any]) -> Found:
    list_type, keys = raw.get("x-kubernetes-list-type"), raw.get("x-kubernetes-list-map-keys") or []
    items = raw.get("items") if isinstance(raw.get("items"), Mapping) else None
    found: Found = []
    if keys and list_type != "map":
        found.append((("x-kubernetes-list-type",), "must be map if x-kubernetes-list-map-keys is non-empty"))
    if list_type is None:
        return found
    if raw.get("type") != "array":
        found.append((("type",), "must be array if x-kubernetes-list-type is specified"))
    elif list_type == "set" and items is not None:
        if items.get("type") == "array" and items.get("x-kubernetes-list-type", "atomic") != "atomic":
            found.append(
                (
                    ("items", "x-kubernetes-list-type"),
                    "must be atomic as item of a list with x-kubernetes-list-type=set",
                )
            )
        if items.get("type") == "object" and items.get("x-kubernetes-map-type") != "atomic":
            found.append(
                (("items", "x-kubernetes-map-type"), "must be atomic as item of a list with x-kubernetes-list-type=set")
            )
    if list_type not in ("atomic", "set", "map"):
        found.append(
            (("x-kubernetes-list-type",), f"Unsupported value: {list_type!r}: supported values: atomic, map, set")
        )
    if list_type in ("set", "map") and items is not None and items.get("nullable") is True:
        found.append((("items", "nullable"), f"cannot be nullable when x-kubernetes-list-type is {list_type}"))
    if list_type == "map":
        found += _list_map(raw, keys, items)
    return found


def _list_map(raw: Mapping[str, Any], keys: list[str], items: Mapping[str, Any] | None) -> Found:
    found: Found = []
    if not keys:
        found.append((("x-kubernetes-list-map-keys",), "must not be empty if x-kubernetes-list-type is map"))
    if "items" not in raw:
        found.append((("items",), "must have a schema if x-kubernetes-list-type is map"))
    elif items is None:
        found.append((("items",), "must only have a single schema if x-kubernetes-list-type is map"))
    elif items.get("type") != "object":
        found.append((("items", "type"), "must be object if parent array's x-kubernetes-list-type is map"))
    else:
        properties = items.get("properties") or {}
        required = set(items.get("required") or ())
        for index, key in enumerate(keys):
            where: FieldPath = ("items", "properties", key)
            if key not in properties:
                found.append((("x-kubernetes-list-map-keys",), "entries must all be names of item properties"))
                continue
            if key in keys[:index]:
                found.append((("x-kubernetes-list-map-keys",), "must not contain duplicate entries"))
            if properties[key].get("type") in ("array", "object"):
                found.append(
                    ((*where, "type"), "must be a scalar type if parent array's x-kubernetes-list-type is map")
                )
            if key not in required and "default" not in properties[key]:
                found.append(
                    (
                        (*where, "default"),
                        "this property is in x-kubernetes-list-map-keys, so it must "
                        "have a default or be a required property",
                    )
                )
            if properties[key].get("nullable") is True:
                found.append(
                    ((*where, "nullable"), "this property is in x-kubernetes-list-map-keys, so it cannot be nullable")
                )
    return found


def _rule_fields(raw: Mapping[str, Any]) -> Found:
    """The fields of each `x-kubernetes-validations` entry; the rule itself is compiled by `kratix.schema.rules`."""
    found: Found = []
    for index, rule in enumerate(raw.get("x-kubernetes-validations") or ()):
        where: FieldPath = ("x-kubernetes-validations", index)
        text, message = rule.get("rule", "").strip(), rule.get("message", "")
        if not text:
            found.append(((*where, "rule"), "rule is not specified"))
        elif message and not message.strip():
            found.append(((*where, "message"), "must be non-empty if specified"))
        elif _NEWLINES.search(message.strip()):
            found.append(((*where, "message"), "must not contain line breaks"))
        elif _NEWLINES.search(text) and not message.strip():
            found.append(((*where, "message"), "message must be specified if rule contains line breaks"))
        if rule.get("messageExpression", "") and not rule["messageExpression"].strip():
            found.append(((*where, "messageExpression"), "messageExpression must be non-empty if specified"))
        if "reason" in rule and rule["reason"] not in _REASONS:
            found.append(
                ((*where, "reason"), f"Unsupported value: {rule['reason']!r}: supported values: {', '.join(_REASONS)}")
            )
        field_path = rule.get("fieldPath", "")
        if field_path and not field_path.strip():
            found.append(((*where, "fieldPath"), "must be non-empty if specified"))
        elif _NEWLINES.search(field_path):
            found.append(((*where, "fieldPath"), "must not contain line breaks"))
        elif field_path and resolve_field_path(raw, field_path) is None:
            found.append(((*where, "fieldPath"), "must be a valid path"))
    return found


def resolve_field_path(raw: Mapping[str, Any], text: str, *, arrays: bool = True) -> Mapping[str, Any] | None:
    """The schema node `text` (`.a.b`, `['a']`) names under `raw`, as the API server resolves a rule's fieldPath
    or a selectable field (`arrays=False`: no `['x']` steps); None when it names no field."""
    steps = celrules.parse_field_path(text)
    if not steps or (not arrays and "[" in text):
        return None
    node: Mapping[str, Any] | None = raw
    for step in steps:
        if node is None:
            return None
        if "properties" in node:
            node = node["properties"].get(step)
        elif isinstance(node.get("additionalProperties"), Mapping):
            node = node["additionalProperties"]
        else:
            return None
    return node
