"""One version's `openAPIV3Schema` read for requests: its JSON Schema, its `Node` tree, and what is wrong with it.

The JSON Schema is `kratix.openapi`'s translation, read as a request checker needs (formats and int32/int64
ranges checked, descriptions and defaults kept for editors). This module adds what the translation leaves to
its callers: the problems the API server would refuse (a non-structural schema, keywords a CRD may not use,
unusable CEL rules, CEL rules over the cost limits, patterns RE2 refuses), the defaults to check against their
own schema, and the tree for defaulting and CEL (with whether its rules must be charged at run time).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kratix import celcost, openapi, regexes
from kratix.documents import FieldPath
from kratix.schema.defaulting import MISSING, Node
from kratix.schema.formats import EDITOR_FORMATS, FORMATS
from kratix.schema.rules import CompiledRules, compile_rules
from kratix.schema.violations import Violation, show

_UNSUPPORTED = ("$ref", "definitions", "dependencies", "patternProperties", "additionalItems", "id",
                "$schema")
REQUESTS = openapi.Reading(annotations=True, formats=FORMATS, int_ranges=True)
EDITORS = openapi.Reading(annotations=True, formats=EDITOR_FORMATS, int_ranges=True)


@dataclass(frozen=True)
class Default:
    path: FieldPath  # of the `default` keyword
    value: Any
    json_schema: Mapping[str, Any]  # of the node holding it
    node: Node


@dataclass(frozen=True)
class Structure:
    json_schema: dict[str, Any]
    root: Node
    problems: list[Violation]
    defaults: list[Default]
    # The CEL rules could exceed the API server's runtime limits on some request (one evaluation over the
    # per-call limit, or all of them together over the budget): each evaluation must be charged.
    cel_budget: bool = False


def read_schema(raw: object, *, prefix: FieldPath = (), editor: bool = False) -> Structure:
    """`raw` read as a request API; `prefix` is where it sits in the CRD, for the problems' paths."""
    json_schema = openapi.translate(raw, EDITORS if editor else REQUESTS)
    walk = _Walk(prefix)
    root = walk.node(raw, (), occurrences=1)
    defaults = [Default((*prefix, *path, "default"), value, _fragment(json_schema, path), node)
                for path, value, node in walk.defaults]
    total = sum(cost for _, cost in walk.costs)
    if total > celcost.CRD_COST_LIMIT:
        walk.problems += _over_crd_limit(prefix, total, walk.costs)
    return Structure(json_schema=json_schema, root=root, problems=walk.problems, defaults=defaults,
                     cel_budget=total > celcost.RUNTIME_BUDGET or walk.per_call > celcost.PER_CALL_LIMIT)


def _over_crd_limit(prefix: FieldPath, total: int, costs: list[tuple[FieldPath, int]]) -> list[Violation]:
    """The API server's report: the total, and the (at most four) costliest rules of 1% of the limit or more."""
    costliest = sorted((item for item in costs if item[1] >= celcost.CRD_COST_LIMIT // 100),
                       key=lambda item: -item[1])[:4]
    found = [Violation(path, "crd.cel-cost", "contributed to estimated rule cost total exceeding cost limit for "
                                             "entire OpenAPIv3 schema") for path, _ in costliest]
    name = "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema"
    return [*found, Violation(prefix, "crd.cel-cost", celcost.exceeds_message(name, total, celcost.CRD_COST_LIMIT))]


def _fragment(json_schema: Mapping[str, Any], path: FieldPath) -> Mapping[str, Any]:
    """The translation keeps the raw schema's shape, so a node's path in one is its path in the other."""
    found: Any = json_schema
    for part in path:
        found = found[part]
    return found


class _Walk:
    """One walk over an openAPIV3Schema: the defaulting/CEL tree, the defaults met and the problems met."""

    def __init__(self, prefix: FieldPath) -> None:
        self.prefix = prefix
        self.problems: list[Violation] = []
        self.defaults: list[tuple[FieldPath, Any, Node]] = []
        self.costs: list[tuple[FieldPath, int]] = []  # every CEL rule's estimated cost over one object
        self.per_call = 0  # the costliest single evaluation of a rule that runs

    def problem(self, path: FieldPath, message: str, code: str = "crd.schema") -> None:
        self.problems.append(Violation((*self.prefix, *path), code, message))

    def node(self, raw: object, path: FieldPath, *, junctor: bool = False, occurrences: int | None) -> Node:
        """`occurrences`: how many times this node can occur in one object (None: unbounded), for CEL costs."""
        if not isinstance(raw, Mapping):
            self.problem(path, "must be a schema object")
            return Node()
        below = celcost.cardinality(raw, occurrences)  # for the node's children
        for key in _UNSUPPORTED:
            if key in raw:
                self.problem((*path, key), f"{key} is not allowed in a CRD schema")
        self._check_type(raw, path, junctor=junctor)
        if isinstance(raw.get("pattern"), str):
            refused = regexes.problem(raw["pattern"])
            if refused is not None:  # as the API server, whose regexp is RE2: no look-around, no backreferences
                self.problem((*path, "pattern"), f"must be a valid regular expression, but isn't: {refused}",
                             "crd.pattern")
        properties = self._properties(raw, path, junctor=junctor, occurrences=below)
        items = self._items(raw, path, junctor=junctor, occurrences=below)
        additional = self._additional(raw, path, junctor=junctor, occurrences=below)
        for key in ("allOf", "anyOf", "oneOf"):  # branches only add checks: their nodes are not kept
            branches = raw.get(key)
            for index, branch in enumerate(branches if isinstance(branches, list) else []):
                self.node(branch, (*path, key, index), junctor=True, occurrences=occurrences)
        if "not" in raw:
            self.node(raw["not"], (*path, "not"), junctor=True, occurrences=occurrences)
        map_keys = self._map_keys(raw, path)
        compiled = self._rules(raw, path, occurrences)
        rules = compiled.rules
        children = [*properties.values(), *(n for n in (items, additional) if n is not None)]
        node = Node(nullable=raw.get("nullable") is True, default=raw.get("default", MISSING),
                    properties=properties, items=items, additional=additional, rules=rules, map_keys=map_keys,
                    walk=bool(rules) or map_keys is not None or any(child.walk for child in children))
        if "default" in raw:
            self.defaults.append((path, raw["default"], node))
        return node

    def _rules(self, raw: Mapping[str, Any], path: FieldPath, occurrences: int | None) -> CompiledRules:
        declared = raw.get("x-kubernetes-validations")
        shape = None
        if declared is not None:  # the CEL view of this node: a resource's root also shows its envelope
            shape = celcost.shape_of(raw, resource_root=path == () or raw.get("x-kubernetes-embedded-resource") is True)
        compiled = compile_rules(declared, (*self.prefix, *path, "x-kubernetes-validations"), shape=shape,
                                 occurrences=occurrences)
        self.problems += compiled.problems
        self.costs += compiled.costs
        self.per_call = max(self.per_call, compiled.per_call)
        return compiled

    def _check_type(self, raw: Mapping[str, Any], path: FieldPath, *, junctor: bool) -> None:
        declared = raw.get("type")
        if raw.get("x-kubernetes-int-or-string") is True:
            return
        if declared is None:
            if not junctor and raw.get("x-kubernetes-preserve-unknown-fields") is not True:
                self.problem(path, "type is required (a CRD schema must be structural)")
        elif not isinstance(declared, str) or declared not in openapi.TYPES:
            allowed = ", ".join(sorted(openapi.TYPES))
            self.problem((*path, "type"), f"must be one of: {allowed} (got {show(declared)})")

    def _properties(self, raw: Mapping[str, Any], path: FieldPath, *, junctor: bool,
                    occurrences: int | None) -> dict[str, Node]:
        declared = raw.get("properties")
        if declared is None:
            return {}
        if not isinstance(declared, Mapping):
            self.problem((*path, "properties"), "must be a map of schemas")
            return {}
        return {name: self.node(sub, (*path, "properties", name), junctor=junctor, occurrences=occurrences)
                for name, sub in declared.items()}

    def _items(self, raw: Mapping[str, Any], path: FieldPath, *, junctor: bool,
               occurrences: int | None) -> Node | None:
        if "items" not in raw:
            if raw.get("type") == "array":
                self.problem(path, "items is required for type: array")
            return None
        return self.node(raw["items"], (*path, "items"), junctor=junctor, occurrences=occurrences)

    def _additional(self, raw: Mapping[str, Any], path: FieldPath, *, junctor: bool,
                    occurrences: int | None) -> Node | None:
        declared = raw.get("additionalProperties")
        if declared is None:
            return None
        if "properties" in raw and declared is not False:
            self.problem((*path, "additionalProperties"), "properties and additionalProperties are exclusive")
        if isinstance(declared, bool):
            return Node() if declared else None
        return self.node(declared, (*path, "additionalProperties"), junctor=junctor, occurrences=occurrences)

    def _map_keys(self, raw: Mapping[str, Any], path: FieldPath) -> tuple[str, ...] | None:
        if raw.get("x-kubernetes-list-type") != "map":
            return None
        keys = raw.get("x-kubernetes-list-map-keys")
        if not isinstance(keys, list) or not keys or not all(isinstance(key, str) for key in keys):
            self.problem((*path, "x-kubernetes-list-map-keys"), "list-type map needs a list of key names")
            return None
        return tuple(keys)

