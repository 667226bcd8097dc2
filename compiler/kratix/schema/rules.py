"""CEL rules and list-map keys: compiled once with the schema, checked on a request after defaulting.

`compile_rules` turns a node's `x-kubernetes-validations` into `celrules.Rule`s, reporting what cannot run here
(transition rules, functions the `cel` package lacks) as notes on the CRD. `check_rules` walks a defaulted,
schema-checked request through the nodes that carry rules or `x-kubernetes-list-map-keys`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from kratix import celrules
from kratix.diagnostics import Severity
from kratix.documents import FieldPath
from kratix.schema.defaulting import Node
from kratix.schema.violations import Violation, show

_BLOCKING_CODES = frozenset({"schema.type", "schema.required"})


def compile_rules(raw: object, path: FieldPath) -> tuple[tuple[celrules.Rule, ...], list[Violation]]:
    """The rules of one node (`raw` is its `x-kubernetes-validations`) and the problems met compiling them."""
    if raw is None:
        return (), []
    if not isinstance(raw, list):
        return (), [Violation(path, "crd.schema", "must be a list of rules")]
    rules: list[celrules.Rule] = []
    problems: list[Violation] = []
    for index, entry in enumerate(raw):
        compiled = celrules.compile_rule(entry)
        if isinstance(compiled, celrules.Rule):
            rules.append(compiled)
        elif compiled.kind == "transition":
            problems.append(Violation((*path, index), "crd.cel-transition", compiled.message, Severity.INFO))
        elif compiled.kind == "unsupported":
            problems.append(Violation((*path, index), "crd.cel-unsupported", compiled.message, Severity.WARNING))
        else:
            problems.append(Violation((*path, index), "crd.cel", compiled.message))
    return tuple(rules), problems


def blocked_paths(found: Iterable[Violation]) -> frozenset[FieldPath]:
    """Nodes at or above a type or required-field error: a CEL rule there that cannot run says nothing new."""
    return frozenset(v.path[:end] for v in found if v.code in _BLOCKING_CODES
                     for end in range(len(v.path) + 1))


def check_rules(value: Any, node: Node, path: FieldPath, blocked: frozenset[FieldPath]) -> list[Violation]:
    found: list[Violation] = []
    if value is None:  # rules never run on a null (nullable) value
        return found
    for rule in node.rules:
        failure = celrules.evaluate(rule, value)
        if failure is not None and not (failure.errored and path in blocked):
            found.append(Violation((*path, *rule.field_path), "schema.cel", failure.message))
    if node.map_keys is not None and isinstance(value, list):
        found += _check_map_keys(value, node.map_keys, path)
    if isinstance(value, dict):
        for key, item in value.items():
            child = node.child(key)
            if child is not None and child.walk:
                found += check_rules(item, child, (*path, key), blocked)
    elif isinstance(value, list) and node.items is not None and node.items.walk:
        for index, item in enumerate(value):
            found += check_rules(item, node.items, (*path, index), blocked)
    return found


def _check_map_keys(items: list[Any], keys: tuple[str, ...], path: FieldPath) -> list[Violation]:
    seen: set[str] = set()
    found = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue
        identity = json.dumps([item.get(key) for key in keys], sort_keys=True, default=str)
        if identity in seen:
            shown = ", ".join(f"{key}={show(item.get(key))}" for key in keys)
            found.append(Violation((*path, index), "schema.duplicate", f"duplicate entry with {shown}"))
        seen.add(identity)
    return found
