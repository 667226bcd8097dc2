"""API-server defaulting, and `Node`, the tree of what defaulting and the post-validation walk need of each
schema node (the value checks live in the JSON Schema).

As the API server: defaults fill absent fields, inside present and defaulted objects, array items and
map values, before validation; a non-nullable `null` takes the default if there is one and is dropped otherwise.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kratix.apiserver import celrules

MISSING: Any = object()  # "no default": a default may itself be null


@dataclass(frozen=True, eq=False)
class Node:
    nullable: bool = False
    default: Any = MISSING
    properties: Mapping[str, Node] = field(default_factory=dict)
    items: Node | None = None
    additional: Node | None = None  # the schema of map values (`additionalProperties: {...}`)
    rules: tuple[celrules.Rule, ...] = ()
    map_keys: tuple[str, ...] | None = None  # `x-kubernetes-list-type: map`
    walk: bool = False  # rules or list-map keys here or below: the post-validation walk must visit this node
    preserve_unknown: bool = False  # `x-kubernetes-preserve-unknown-fields` (or `additionalProperties: true`)
    embedded: bool = False  # `x-kubernetes-embedded-resource`: apiVersion, kind and metadata are its own

    def child(self, key: str) -> Node | None:
        found = self.properties.get(key)
        return found if found is not None else self.additional


def apply_defaults(value: Any, node: Node | None) -> Any:
    """A deep copy of `value` in JSON terms, with `node`'s defaults applied and non-nullable nulls settled."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for raw_key, item in value.items():
            key = raw_key if isinstance(raw_key, str) else str(raw_key)
            child = node.child(key) if node is not None else None
            if item is None and child is not None and not child.nullable:
                if child.default is not MISSING:  # the API server defaults a non-nullable null...
                    out[key] = apply_defaults(child.default, child)
                continue  # ...and prunes it when there is no default
            out[key] = apply_defaults(item, child)
        if node is not None:
            for key, child in node.properties.items():
                if key not in out and child.default is not MISSING:
                    out[key] = apply_defaults(child.default, child)
        return out
    if isinstance(value, list | tuple):
        items = node.items if node is not None else None
        return [apply_defaults(item, items) for item in value]
    return _scalar(value)


def _scalar(value: Any) -> Any:
    # YAML 1.1 timestamps and !!binary arrive as Python objects; in JSON (the API server) they are text.
    if isinstance(value, datetime.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value
