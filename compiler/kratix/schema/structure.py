"""One version's `openAPIV3Schema` read for requests: its JSON Schema, its `Node` tree, and what is wrong with it.

In: the schema as `kratix.apiserver.crdtypes` decodes it (every keyword of its Go type). The JSON Schema is
`kratix.apiserver.openapi`'s translation, read as a request checker needs (formats and int32/int64 ranges checked,
descriptions and defaults kept for editors). This module adds what the translation leaves to its callers: the
problems the API server would refuse, the defaults to check against their own schema, and the tree for
defaulting, CEL and pruning (with whether its rules must be charged at run time).
What is refused, as apiextensions refuses it: a schema that is not structural (a node of the structure without
a type, unless int-or-string or preserve-unknown-fields; an array without items; additionalProperties or a
non-object type at the root; an embedded resource that is not an object; metadata at the root narrowing more than
name and generateName; junctors holding more than value checks, see `kratix.schema.junctors`); keywords and
extensions used wrongly (`kratix.schema.keywords`); a default in the root's apiVersion, kind or metadata; CEL
rules that do not compile or cost too much; patterns RE2 refuses. Defaults under additionalProperties are not
checked against their schema, as the API server does not check them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from kratix.apiserver import celcost, openapi, regexes
from kratix.model.diagnostics import Severity
from kratix.model.documents import FieldPath
from kratix.schema import junctors, keywords
from kratix.schema.defaulting import MISSING, Node
from kratix.schema.formats import EDITOR_FORMATS, FORMATS
from kratix.schema.rules import CompiledRules, compile_rules
from kratix.schema.violations import Violation

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
    root = walk.node(raw, (), _Place(), occurrences=1)
    defaults = [
        Default((*prefix, *path, "default"), value, _fragment(json_schema, path), node)
        for path, value, node in walk.defaults
    ]
    total = sum(cost for _, cost in walk.costs)
    if total > celcost.CRD_COST_LIMIT:
        walk.problems += _over_crd_limit(prefix, total, walk.costs)
    return Structure(
        json_schema=json_schema,
        root=root,
        problems=walk.problems,
        defaults=defaults,
        cel_budget=total > celcost.RUNTIME_BUDGET or walk.per_call > celcost.PER_CALL_LIMIT,
    )


def _over_crd_limit(prefix: FieldPath, total: int, costs: list[tuple[FieldPath, int]]) -> list[Violation]:
    """The API server's report: the total, and the (at most four) costliest rules of 1% of the limit or more."""
    costliest = sorted((item for item in costs if item[1] >= celcost.CRD_COST_LIMIT // 100), key=lambda item: -item[1])[
        :4
    ]
    found = [
        Violation(
            path,
            "crd.cel-cost",
            "contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema",
        )
        for path, _ in costliest
    ]
    name = "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema"
    return [*found, Violation(prefix, "crd.cel-cost", celcost.exceeds_message(name, total, celcost.CRD_COST_LIMIT))]


def _fragment(json_schema: Mapping[str, Any], path: FieldPath) -> Mapping[str, Any]:
    """The translation keeps the raw schema's shape, so a node's path in one is its path in the other."""
    found: Any = json_schema
    for part in path:
        found = found[part]
    return found


_META_FIELDS = ("apiVersion", "kind", "metadata")
_ROOT, _ITEMS, _FIELD = "at the root", "for specified array items", "for specified object fields"


@dataclass(frozen=True)
class _Place:
    """Where a node sits, for the rules that depend on it."""

    level: str = _ROOT  # _ROOT, _ITEMS or _FIELD
    junctor: bool = False  # inside allOf/anyOf/oneOf/not: value checks only
    in_meta: bool = False  # the apiVersion, kind or metadata of a resource (or inside them)
    defaults: str | None = None  # why a default is refused here; None: allowed
    check_defaults: bool = True  # the API server checks defaults it reaches through properties and items only


class _Walk:
    """One walk over a decoded openAPIV3Schema (`kratix.apiserver.crdtypes`): the defaulting/CEL tree, the defaults met
    and the problems met."""

    def __init__(self, prefix: FieldPath) -> None:
        self.prefix = prefix
        self.problems: list[Violation] = []
        self.defaults: list[tuple[FieldPath, Any, Node]] = []
        self.costs: list[tuple[FieldPath, int]] = []  # every CEL rule's estimated cost over one object
        self.per_call = 0  # the costliest single evaluation of a rule that runs

    def problem(self, path: FieldPath, message: str, code: str = "crd.schema") -> None:
        self.problems.append(Violation((*self.prefix, *path), code, message))

    def _errors(self) -> int:
        """Schema errors so far (a rule's own errors do not keep the rules above it from compiling)."""
        return sum(
            1
            for problem in self.problems
            if problem.severity is Severity.ERROR and not problem.code.startswith("crd.cel")
        )

    def node(self, raw: object, path: FieldPath, place: _Place, *, occurrences: int | None) -> Node:
        """`occurrences`: how many times this node can occur in one object (None: unbounded), for CEL costs."""
        if not isinstance(raw, Mapping):
            self.problem(path, "must be a schema object")
            return Node()
        below = celcost.cardinality(raw, occurrences)  # for the node's children
        errors_before = self._errors()
        for relative, message in keywords.check_keywords(raw, defaults=place.defaults, in_meta=place.in_meta):
            self.problem((*path, *relative), message)
        if isinstance(raw.get("pattern"), str):
            refused = regexes.problem(raw["pattern"])
            if refused is not None:  # as the API server, whose regexp is RE2: no look-around, no backreferences
                self.problem(
                    (*path, "pattern"), f"must be a valid regular expression, but isn't: {refused}", "crd.pattern"
                )
        if not place.junctor:
            self._check_structure(raw, path, place)
        embedded = raw.get("x-kubernetes-embedded-resource") is True
        properties = self._properties(raw, path, place, embedded=embedded, occurrences=below)
        items = self._items(raw, path, place, occurrences=below)
        additional = self._additional(raw, path, place, occurrences=below)
        for branch_path, branch in junctors.branches(raw):  # branches only add checks: their nodes are not kept
            self.node(branch, (*path, *branch_path), replace(place, junctor=True), occurrences=occurrences)
        map_keys = self._map_keys(raw)
        # As the API server: rules are compiled only where the schema at and below them is sound.
        sound = self._errors() == errors_before
        rules = self._rules(raw, path, occurrences).rules if sound and not place.junctor else ()
        children = [*properties.values(), *(n for n in (items, additional) if n is not None)]
        node = Node(
            nullable=raw.get("nullable") is True,
            default=raw.get("default", MISSING),
            properties=properties,
            items=items,
            additional=additional,
            rules=rules,
            map_keys=map_keys,
            walk=bool(rules) or map_keys is not None or any(child.walk for child in children),
            preserve_unknown=raw.get("x-kubernetes-preserve-unknown-fields") is True,
            embedded=embedded,
        )
        if "default" in raw and place.defaults is None and place.check_defaults and not place.junctor:
            self.defaults.append((path, raw["default"], node))
        return node

    def _check_structure(self, raw: Mapping[str, Any], path: FieldPath, place: _Place) -> None:
        """apiextensions' ValidateStructural for a node of the structure (not inside a junctor)."""
        embedded = raw.get("x-kubernetes-embedded-resource") is True
        self._check_type(raw, path, place, embedded=embedded)
        if embedded:
            self._check_embedded(raw, path)
        root = place.level == _ROOT
        if root:
            self._check_root(raw, path)
        if root or embedded:
            self._check_resource_fields(raw, path, root=root)
        for relative, message in junctors.check_junctors(raw):
            self.problem((*path, *relative), message)
        if root:
            for relative, message in junctors.check_completeness(raw):
                self.problem((*path, *relative), message)

    def _check_type(self, raw: Mapping[str, Any], path: FieldPath, place: _Place, *, embedded: bool) -> None:
        """Every node of the structure has a type (int-or-string and preserved nodes may go without), and an
        array says what its items are."""
        declared = raw.get("type")
        exempt = any(
            raw.get(key) is True for key in ("x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields")
        )
        if embedded and declared != "object":
            self.problem((*path, "type"), "must be object if x-kubernetes-embedded-resource is true")
        elif not declared and not exempt:
            self.problem(
                (*path, "type"), f"Required value: must not be empty {place.level} (a CRD schema must be structural)"
            )
        if declared == "array" and "items" not in raw:
            self.problem((*path, "items"), "Required value: must be specified for type: array")

    def _check_embedded(self, raw: Mapping[str, Any], path: FieldPath) -> None:
        """An embedded resource is an object with its own fields, never a map."""
        if "additionalProperties" in raw:
            self.problem((*path, "additionalProperties"), "must not be used if x-kubernetes-embedded-resource is true")
        if not raw.get("properties") and raw.get("x-kubernetes-preserve-unknown-fields") is not True:
            self.problem(
                (*path, "properties"),
                "must not be empty if x-kubernetes-embedded-resource is true without "
                "x-kubernetes-preserve-unknown-fields",
            )

    def _check_root(self, raw: Mapping[str, Any], path: FieldPath) -> None:
        """The root is a non-null object with named fields: the resource itself."""
        if "additionalProperties" in raw:
            self.problem((*path, "additionalProperties"), "must not be used at the root")
        declared = raw.get("type")
        if declared and declared != "object":
            self.problem((*path, "type"), "must be object at the root")
        if raw.get("nullable") is True:
            self.problem((*path, "nullable"), "nullable cannot be true at the root")

    def _check_resource_fields(self, raw: Mapping[str, Any], path: FieldPath, *, root: bool) -> None:
        """apiVersion and kind are strings, metadata an object; at the root, metadata may only narrow name and
        generateName (the rest of it is ObjectMeta, which the API server owns)."""
        properties = raw.get("properties") or {}
        for key in ("apiVersion", "kind"):
            if key in properties and properties[key].get("type") != "string":
                self.problem((*path, "properties", key, "type"), "must be string")
        metadata = properties.get("metadata")
        if metadata is None:
            return
        where = (*path, "properties", "metadata")
        if metadata.get("type") != "object":
            self.problem((*where, "type"), "must be object")
        extra = sorted(set(metadata.get("properties") or {}) - {"name", "generateName"})
        others = sorted(set(metadata) - {"type", "properties", "default"})
        if root and (extra or others):
            self.problem(
                where,
                "must not specify anything other than name and generateName, but metadata is "
                f"implicitly specified (found {', '.join([*others, *extra])})",
            )

    def _rules(self, raw: Mapping[str, Any], path: FieldPath, occurrences: int | None) -> CompiledRules:
        declared = raw.get("x-kubernetes-validations")
        shape = None
        if declared is not None:  # the CEL view of this node: a resource's root also shows its envelope
            shape = celcost.shape_of(raw, resource_root=path == () or raw.get("x-kubernetes-embedded-resource") is True)
        compiled = compile_rules(
            declared, (*self.prefix, *path, "x-kubernetes-validations"), shape=shape, occurrences=occurrences
        )
        self.problems += compiled.problems
        self.costs += compiled.costs
        self.per_call = max(self.per_call, compiled.per_call)
        return compiled

    def _properties(
        self, raw: Mapping[str, Any], path: FieldPath, place: _Place, *, embedded: bool, occurrences: int | None
    ) -> dict[str, Node]:
        declared = raw.get("properties")
        if not isinstance(declared, Mapping):
            return {}
        found = {}
        for name, sub in declared.items():
            child = replace(place, level=_FIELD)
            if (place.level == _ROOT or embedded) and name in _META_FIELDS and not place.junctor:
                child = replace(child, in_meta=True)
                if place.level == _ROOT:
                    child = replace(child, defaults=child.defaults or f"in top-level {name}")
            found[name] = self.node(sub, (*path, "properties", name), child, occurrences=occurrences)
        return found

    def _items(self, raw: Mapping[str, Any], path: FieldPath, place: _Place, *, occurrences: int | None) -> Node | None:
        if not isinstance(raw.get("items"), Mapping):
            return None
        return self.node(raw["items"], (*path, "items"), replace(place, level=_ITEMS), occurrences=occurrences)

    def _additional(
        self, raw: Mapping[str, Any], path: FieldPath, place: _Place, *, occurrences: int | None
    ) -> Node | None:
        declared = raw.get("additionalProperties")
        if declared is None:
            return None
        if isinstance(declared, bool):
            return Node(preserve_unknown=True) if declared else None
        child = replace(place, level=_FIELD, check_defaults=False)
        if place.in_meta:  # pruning cannot tell where such a default would go
            child = replace(child, defaults=child.defaults or "inside additionalProperties applying to object metadata")
        return self.node(declared, (*path, "additionalProperties"), child, occurrences=occurrences)

    def _map_keys(self, raw: Mapping[str, Any]) -> tuple[str, ...] | None:
        keys = raw.get("x-kubernetes-list-map-keys")
        if raw.get("x-kubernetes-list-type") != "map" or not isinstance(keys, list) or not keys:
            return None  # keywords.check_keywords reports a map list without keys
        return tuple(str(key) for key in keys)
