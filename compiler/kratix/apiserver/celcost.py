"""The cost of a CEL rule, counted as the API server counts it, and its limits.

In: a parsed rule (`kratix.apiserver.celsyntax`) and what is known of the sizes of the values it reads, either from the
schema (`shape_of`: maxLength, maxItems, maxProperties, enums, formats, and for what is unbounded the most a
3 MiB request can hold) or from one request's values (`value_sizes`). Out: the rule's worst-case cost in CEL's
cost units (about 50 ns each in cel-go). `factor_text` words an excess as the API server does.

The model is cel-go's cost estimator (checker/cost.go) with the Kubernetes library's estimates for the functions
Kubernetes adds, over the same macro expansions: one unit per variable, field selection and function call,
a tenth of a unit per character a string function traverses, a quarter per character of a regular expression
times the text it scans, and a comprehension's body times the most elements its range can hold. It keeps the
estimator's quirks where they decide what the API server accepts (a rule whose cost exceeds the limits makes
the CRD invalid). Estimated from one request's values, the same model bounds what evaluating the rule on
them can cost, before it runs: `kratix.schema.rules` charges that against the API server's runtime budgets.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kratix.apiserver.celsyntax import (
    Call,
    Comprehension,
    Expr,
    Ident,
    ListExpr,
    Literal,
    MapExpr,
    Select,
    StructExpr,
    escape_name,
)

U64 = 2**64 - 1
MAX_REQUEST_BYTES = 3 * 1024 * 1024  # the API server's largest request: what bounds what no schema bounds
RULE_COST_LIMIT = 10_000_000  # a rule's (or messageExpression's) estimated cost, times how often it can run
CRD_COST_LIMIT = 100_000_000  # the sum of those over a whole CRD version's schema
PER_CALL_LIMIT = 1_000_000  # what one evaluation may cost
RUNTIME_BUDGET = 10_000_000  # what all the evaluations for one object may cost together

_STRING_TRAVERSAL = 0.1
_REGEX_LENGTH = 0.25
_LIST_CREATE = 10
_MAP_CREATE = 30
_STRUCT_CREATE = 40
_SCALARS = frozenset({"bool", "double", "duration", "int", "timestamp", "uint"})


def _add(a: int, b: int) -> int:
    return min(a + b, U64)


def _mul(a: int, b: int) -> int:
    return min(a * b, U64)


def _factor(x: int, factor: float) -> int:
    """x times a cost factor, rounded up, saturating (Go's float64 arithmetic, so the same roundings)."""
    if x > 0 and factor > 0 and float(x) > U64 / factor:
        return U64
    rounded = math.ceil(float(x) * factor)
    return U64 if rounded >= 2**64 else int(rounded)


@dataclass(frozen=True)
class Size:
    lo: int
    hi: int

    def __add__(self, other: Size) -> Size:
        return Size(_add(self.lo, other.lo), _add(self.hi, other.hi))

    def times(self, other: Size) -> Size:
        return Size(_mul(self.lo, other.lo), _mul(self.hi, other.hi))

    def union(self, other: Size) -> Size:
        return Size(min(self.lo, other.lo), max(self.hi, other.hi))


UNKNOWN = Size(0, U64)
ONE = Size(1, 1)


# --- what the schema says of sizes ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Shape:
    """What CEL sees of a schema node (Kubernetes' DeclType): a kind, how many elements (characters, items,
    properties) it can hold, the fewest bytes it takes in JSON, and its children (by CEL name)."""

    kind: str  # object, map, list, string, bytes, int, double, bool, timestamp, duration, dyn
    max_elements: int = 0
    min_size: int = 1
    fields: Mapping[str, Shape] = field(default_factory=dict)
    elem: Shape | None = None  # list items, map values


_MAP_KEY = Shape("string", 0, 2)  # Kubernetes declares map keys as strings with no size (so 0)
_PER_REQUEST = MAX_REQUEST_BYTES - 2  # the longest string (or `[]`-less list) a request can hold


def shape_of(raw: object, *, resource_root: bool = False) -> Shape | None:
    """The CEL view of an openAPIV3Schema node, or None when CEL cannot see it (no type, say)."""
    if not isinstance(raw, Mapping):
        return None
    if raw.get("x-kubernetes-int-or-string") is True:
        return Shape("dyn", _max_length(raw) if _count(raw.get("maxLength")) is not None else _PER_REQUEST, 1)
    kind = raw.get("type")
    if kind == "object" and resource_root:
        raw = _with_type_and_object_meta(raw)
    if kind == "array":
        items = shape_of(raw.get("items"), resource_root=_embedded(raw.get("items")))
        if items is None:
            return None
        most = _count(raw.get("maxItems"))
        return Shape("list", most if most is not None else (_PER_REQUEST // (items.min_size + 1)), 2, elem=items)
    if kind == "object":
        return _object_shape(raw)
    if kind == "string":
        return _string_shape(raw)
    return {"boolean": Shape("bool", 0, 4), "number": Shape("double", 0, 1), "integer": Shape("int", 0, 1)}.get(
        kind if isinstance(kind, str) else ""
    )


def _object_shape(raw: Mapping[str, Any]) -> Shape | None:
    additional = raw.get("additionalProperties")
    if isinstance(additional, Mapping):
        values = shape_of(additional, resource_root=_embedded(additional))
        if values is None:
            return None
        most = _count(raw.get("maxProperties"))
        return Shape("map", most if most is not None else _PER_REQUEST // (values.min_size + 6), 2, elem=values)
    required = set(raw.get("required") or ()) if isinstance(raw.get("required"), list) else set()
    fields: dict[str, Shape] = {}
    min_size = 2  # {}
    properties = raw.get("properties")
    for name, prop in properties.items() if isinstance(properties, Mapping) else ():
        child = shape_of(prop, resource_root=_embedded(prop))
        if child is None:
            continue
        escaped = escape_name(str(name))
        if escaped is not None:
            fields[escaped] = child
        if name in required and isinstance(prop, Mapping) and "default" not in prop:
            min_size += len(str(name)) + child.min_size + 4  # "name": value,
    return Shape("object", 0, min_size, fields)


def _string_shape(raw: Mapping[str, Any]) -> Shape:
    fmt = raw.get("format")
    if fmt == "byte":
        most = _count(raw.get("maxLength"))
        return Shape("bytes", most if most is not None else _PER_REQUEST, 2)
    if fmt == "duration":
        return Shape("duration", 32, 3)
    if fmt == "date":
        return Shape("timestamp", 12, 12)
    if fmt == "date-time":
        return Shape("timestamp", 32, 21)
    if _count(raw.get("maxLength")) is not None:
        return Shape("string", _max_length(raw), 2)
    enum = raw.get("enum")
    if isinstance(enum, list) and enum:
        return Shape("string", max((len(v.encode()) for v in enum if isinstance(v, str)), default=0), 2)
    return Shape("string", _PER_REQUEST, 2)


def _max_length(raw: Mapping[str, Any]) -> int:
    return (_count(raw.get("maxLength")) or 0) * 4  # maxLength counts characters, of up to 4 bytes each


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return max(int(value), 0)


def _embedded(raw: object) -> bool:
    return isinstance(raw, Mapping) and raw.get("x-kubernetes-embedded-resource") is True


def _with_type_and_object_meta(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """At a resource's root, `apiVersion`, `kind` and `metadata.name`/`generateName` are always readable; the
    names are as long as a DNS subdomain at most (253; 252 for generateName, the suffix takes one at least)."""
    properties = dict(raw.get("properties") or {}) if isinstance(raw.get("properties"), Mapping) else {}
    metadata: Mapping[str, Any] = properties["metadata"] if isinstance(properties.get("metadata"), Mapping) else {}
    declared: Mapping[str, Any] = metadata["properties"] if isinstance(metadata.get("properties"), Mapping) else {}
    if (
        all(_typed(properties.get(k), "string") for k in ("kind", "apiVersion"))
        and _typed(metadata, "object")
        and all(_typed(declared.get(k), "string") for k in ("name", "generateName"))
    ):
        return raw
    string = {"type": "string"}
    properties.update(
        kind=string,
        apiVersion=string,
        metadata={
            "type": "object",
            "properties": {
                "name": _capped(declared.get("name"), _DNS_SUBDOMAIN),
                "generateName": _capped(declared.get("generateName"), _DNS_SUBDOMAIN - 1),
            },
        },
    )
    return {**raw, "properties": properties}


_DNS_SUBDOMAIN = 253


def _typed(raw: object, kind: str) -> bool:
    return isinstance(raw, Mapping) and raw.get("type") == kind


def _capped(raw: object, most: int) -> dict[str, Any]:
    declared = _count(raw.get("maxLength")) if isinstance(raw, Mapping) else None
    return {"type": "string", "maxLength": min(most, declared) if declared is not None else most}


def cardinality(raw: Mapping[str, Any], parent: int | None) -> int | None:
    """How many times a child of `raw` can occur, given `raw` occurs at most `parent` times (None: unbounded)."""
    if parent is None:
        return None
    kind = raw.get("type")
    if kind == "object" and "additionalProperties" in raw:
        most = _count(raw.get("maxProperties"))
    elif kind == "array":
        most = _count(raw.get("maxItems"))
    else:
        return parent
    return None if most is None else _mul(parent, most)


def rule_cost(per_call: int, shape: Shape | None, occurrences: int | None) -> int:
    """A rule's cost over one object: per call, times the times it can run (for a node under an unbounded list
    or map, as many as a request can hold of the smallest such node)."""
    if occurrences is None:
        occurrences = MAX_REQUEST_BYTES // ((shape.min_size if shape is not None else 1) + 1)
    return _mul(per_call, occurrences)


def factor_text(cost: int, limit: int) -> str:
    factor = cost / limit
    if factor > 100.0:
        return "more than 100x"
    if factor < 1.5:
        return f"{factor:f}x"
    return f"{factor:.1f}x"


def exceeds_message(name: str, cost: int, limit: int) -> str:
    return (
        f"{name} exceeds budget by factor of {factor_text(cost, limit)} (try simplifying the rule, or adding "
        "maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
    )


# --- sizes ------------------------------------------------------------------------------------------------

SizeOf = Callable[[tuple[str, ...]], Size | None]


def schema_sizes(root: Shape | None) -> SizeOf:
    """Sizes as the schema bounds them, at a path from `self` (`@items`, `@values`, `@keys` step into
    containers). A field the schema does not declare is known only to fit in a request."""

    def size_of(path: tuple[str, ...]) -> Size | None:
        node = root
        for step in path[1:]:  # the first step names the variable (and is not checked, as in the API server)
            if node is None:
                return Size(0, _PER_REQUEST)
            if step in ("@items", "@values"):
                node = node.elem
                if node is None:
                    return None
            elif step == "@keys":
                if node.kind != "map":
                    return None
                node = _MAP_KEY
            elif node.kind == "object":
                found = node.fields.get(step)
                if found is None:
                    return Size(0, _PER_REQUEST)  # undeclared: the API server would not compile the rule
                node = found
            else:
                return None
        return Size(0, node.max_elements) if node is not None else Size(0, _PER_REQUEST)

    return size_of


def value_sizes(value: Any) -> SizeOf:
    """Sizes as one value has them: at a path, the largest string, list or map found there."""
    cache: dict[tuple[str, ...], Size | None] = {}

    def size_of(path: tuple[str, ...]) -> Size | None:
        if not path or path[0] != "self":
            return None
        if path not in cache:
            found = [value]
            for step in path[1:]:
                found = _step(found, step)
            cache[path] = Size(0, max((_actual_size(v) for v in found), default=0))
        return cache[path]

    return size_of


def _step(values: list[Any], step: str) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if step == "@items" and isinstance(value, list):
            out.extend(value)
        elif step == "@values" and isinstance(value, dict):
            out.extend(value.values())
        elif step == "@keys" and isinstance(value, dict):
            out.extend(value)
        elif isinstance(value, dict):
            if step in value:
                out.append(value[step])
            elif "__" in step:  # an escaped name: the value may hold the property under its own name
                out.extend(item for key, item in value.items() if escape_name(key) == step)
    return out


def _actual_size(value: Any) -> int:
    if isinstance(value, str | bytes | list | dict):
        return len(value)
    return 0


# --- the estimator ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Type:
    kind: str  # as Shape.kind, plus uint, null, type
    shape: Shape | None = None  # for values read from the schema: their children
    elem: _Type | None = None  # for lists and maps built in the expression


_DYN = _Type("dyn")
_BOOL = _Type("bool")
_INT = _Type("int")
_STRING = _Type("string")
_RESULT_KINDS: dict[str, str] = {
    **dict.fromkeys(
        (
            "_==_",
            "_!=_",
            "_<_",
            "_<=_",
            "_>_",
            "_>=_",
            "@in",
            "!_",
            "_&&_",
            "_||_",
            "contains",
            "@not_strictly_false",
            "startsWith",
            "endsWith",
            "matches",
            "isSorted",
            "sets.contains",
            "sets.intersects",
            "sets.equivalent",
            "bool",
            "math.isNaN",
            "math.isInf",
            "math.isFinite",
            "hasValue",
        ),
        "bool",
    ),
    **dict.fromkeys(
        (
            "size",
            "int",
            "indexOf",
            "lastIndexOf",
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
        ),
        "int",
    ),
    **dict.fromkeys(
        (
            "string",
            "lowerAscii",
            "upperAscii",
            "substring",
            "trim",
            "replace",
            "join",
            "find",
            "charAt",
            "strings.quote",
            "format",
            "base64.encode",
        ),
        "string",
    ),
    **dict.fromkeys(("split", "findAll", "lists.range", "distinct", "flatten", "slice", "sort"), "list"),
    "uint": "uint",
    "double": "double",
    "bytes": "bytes",
    "base64.decode": "bytes",
    "timestamp": "timestamp",
    "duration": "duration",
    "type": "type",
}


@dataclass
class _Local:
    path: tuple[str, ...] | None
    size: Size | None
    entry: tuple[Size, Size] | None  # (key, value) sizes of a container built in the expression
    type: _Type


class _Estimator:
    """One estimate: cel-go's coster, keyed by node identity."""

    def __init__(self, root: Shape | None, sizes: SizeOf) -> None:
        self.root = _Type(root.kind, root) if root is not None else _DYN
        self.sizes = sizes
        self.paths: dict[int, tuple[str, ...]] = {}
        self.computed: dict[int, Size] = {}
        self.entries: dict[int, tuple[Size, Size]] = {}
        self.types: dict[int, _Type] = {}
        self.locals: dict[str, list[_Local]] = {}

    # -- bookkeeping

    def local(self, name: str) -> _Local | None:
        stack = self.locals.get(name)
        return stack[-1] if stack else None

    def push(self, name: str, local: _Local) -> None:
        self.locals.setdefault(name, []).append(local)

    def pop(self, name: str) -> None:
        self.locals[name].pop()

    def path(self, e: Expr) -> tuple[str, ...] | None:
        if isinstance(e, Ident):
            found = self.local(e.name)
            if found is not None:
                return found.path
        return self.paths.get(id(e))

    def type(self, e: Expr) -> _Type:
        return self.types.get(id(e), _DYN)

    def size(self, e: Expr) -> Size | None:
        if id(e) in self.computed:
            return self.computed[id(e)]
        literal = _literal_size(e)
        if literal is not None:
            return literal
        path = self.path(e)
        if path:
            estimated = self.sizes(path)
            if estimated is not None:
                self.computed[id(e)] = estimated
                return estimated
        if self.type(e).kind in _SCALARS:
            return ONE
        if isinstance(e, Ident):
            found = self.local(e.name)
            if found is not None and found.size is not None:
                return found.size
        return None

    def size_or_unknown(self, e: Expr | None) -> Size:
        found = self.size(e) if e is not None else None
        return found if found is not None else UNKNOWN

    def entry(self, e: Expr) -> tuple[Size, Size] | None:
        if id(e) in self.entries:
            return self.entries[id(e)]
        if isinstance(e, Ident):
            found = self.local(e.name)
            if found is not None:
                return found.entry
        return None

    # -- costs

    def cost(self, e: Expr) -> int:
        if isinstance(e, Literal):
            self.types[id(e)] = _Type(e.kind)
            return 0
        if isinstance(e, Ident):
            return self.ident(e)
        if isinstance(e, Select):
            return self.select(e)
        if isinstance(e, Call):
            return self.call(e)
        if isinstance(e, ListExpr):
            return self.list_expr(e)
        if isinstance(e, MapExpr):
            return self.map_expr(e)
        if isinstance(e, StructExpr):
            return _add(sum(self.cost(value) for _, value in e.fields), _STRUCT_CREATE)
        return self.comprehension(e)

    def ident(self, e: Ident) -> int:
        found = self.local(e.name)
        if found is not None:
            if found.path is not None:
                self.paths[id(e)] = found.path
            self.types[id(e)] = found.type
        else:
            self.paths[id(e)] = (e.name,)
            self.types[id(e)] = self.root if e.name in ("self", "oldSelf") else _DYN
        return 1

    def select(self, e: Select) -> int:
        operand_cost = self.cost(e.operand)
        operand = self.type(e.operand)
        if e.test_only:
            self.types[id(e)] = _BOOL
            return _add(1, operand_cost)
        if operand.kind in ("object", "map"):
            operand_cost = _add(operand_cost, 1)
        self.types[id(e)] = _field_type(operand, e.field)
        base = self.path(e.operand)
        self.paths[id(e)] = (*(base or ()), e.field)
        return operand_cost

    def list_expr(self, e: ListExpr) -> int:
        total = 0
        item = Size(U64, 0) if e.elements else Size(0, 0)
        for element in e.elements:
            total = _add(total, self.cost(element))
            item = item.union(self.size_or_unknown(element))
        self.entries[id(e)] = (ONE, item)
        self.types[id(e)] = _Type("list", elem=self.type(e.elements[0]) if e.elements else _DYN)
        return _add(total, _LIST_CREATE)

    def map_expr(self, e: MapExpr) -> int:
        total = 0
        keys = Size(U64, 0) if e.entries else Size(0, 0)
        values = Size(U64, 0) if e.entries else Size(0, 0)
        for key, value in e.entries:
            total = _add(_add(total, self.cost(key)), self.cost(value))
            keys = keys.union(self.size_or_unknown(key))
            values = values.union(self.size_or_unknown(value))
        self.entries[id(e)] = (keys, values)
        self.types[id(e)] = _Type("map", elem=self.type(e.entries[0][1]) if e.entries else _DYN)
        return _add(total, _MAP_CREATE)

    def comprehension(self, e: Comprehension) -> int:
        total = _add(self.cost(e.iter_range), self.cost(e.accu_init))
        self.push(
            e.accu_var,
            _Local(self.path(e.accu_init), self.size(e.accu_init), self.entry(e.accu_init), self.type(e.accu_init)),
        )
        range_type = self.type(e.iter_range)
        entry = self.entry(e.iter_range)
        is_list = range_type.kind == "list"
        base = self.path(e.iter_range) or ()
        elem = _elem_type(range_type)
        if e.iter_var2 is not None:
            self.push(
                e.iter_var, _Local((*base, "@keys"), entry[0] if entry else None, None, _INT if is_list else _STRING)
            )
            self.push(
                e.iter_var2,
                _Local((*base, "@items" if is_list else "@values"), entry[1] if entry else None, None, elem),
            )
        elif is_list:
            self.push(e.iter_var, _Local((*base, "@items"), entry[1] if entry else None, None, elem))
        else:
            self.push(e.iter_var, _Local((*base, "@keys"), entry[0] if entry else None, None, _STRING))
        loop = _add(self.cost(e.loop_condition), self.cost(e.loop_step))
        self.pop(e.iter_var)
        if e.iter_var2 is not None:
            self.pop(e.iter_var2)
        total = _add(total, self.cost(e.result))
        self.pop(e.accu_var)
        count = self.size_or_unknown(e.iter_range)
        total = _add(total, _mul(count.hi, loop))
        if isinstance(e.accu_init, Literal):
            literal = _literal_size(e.accu_init)
            if literal is not None:
                self.computed[id(e)] = literal
        elif isinstance(e.accu_init, ListExpr | MapExpr):
            self.computed[id(e)] = count
            step_entry = self.entry(e.loop_step)
            if step_entry is not None:
                self.entries[id(e)] = step_entry
        self.types[id(e)] = self.type(e.result)
        return total

    def call(self, e: Call) -> int:
        if e.function == "dyn" and len(e.args) == 1 and e.target is None:
            cost = _add(1, self.cost(e.args[0]))
            self._copy_sizes(e, e.args[0])
            self.types[id(e)] = self.type(e.args[0])
            return cost
        arg_costs = [self.cost(arg) for arg in e.args]
        total = 0
        if e.target is not None:
            total = self.cost(e.target)
        args_total = 0
        for cost in arg_costs:
            args_total = _add(args_total, cost)
        self.types[id(e)] = self._result_type(e)
        cost, result = self._function(e, arg_costs, args_total)
        if e.function == "_[_]" and e.args:
            container = self.type(e.args[0])
            base = self.path(e.args[0])
            entry = self.entry(e.args[0])
            result = entry[1] if entry is not None else None
            self.paths[id(e)] = (*(base or ()), "@items" if container.kind == "list" else "@values")
        if result is None:
            result = self.size(e)
        if result is not None:
            self.computed[id(e)] = result
        return _add(total, cost)

    def _copy_sizes(self, to: Expr, source: Expr) -> None:
        size = self.size(source)
        if size is not None:
            self.computed[id(to)] = size
        entry = self.entry(source)
        if entry is not None:
            self.entries[id(to)] = entry

    def _result_type(self, e: Call) -> _Type:
        name = e.function
        if name in _RESULT_KINDS:
            kind = _RESULT_KINDS[name]
            if name == "split" or name == "findAll":
                return _Type("list", elem=_STRING)
            return _Type(kind)
        if name in ("_+_", "_-_", "_*_", "_/_", "_%_", "-_"):
            kinds = [self.type(arg) for arg in e.args]
            return next((t for t in kinds if t.kind != "dyn"), _DYN)
        if name == "_?_:_":
            return self.type(e.args[1]) if self.type(e.args[1]).kind != "dyn" else self.type(e.args[2])
        if name in ("_[_]", "_[?_]") and e.args:
            return _elem_type(self.type(e.args[0]))
        if name == "reverse" and e.target is not None:
            return self.type(e.target)
        if name in ("min", "max", "sum", "first", "last") and e.target is not None:
            return _elem_type(self.type(e.target))
        return _DYN

    def _function(self, e: Call, arg_costs: list[int], args_total: int) -> tuple[int, Size | None]:
        """(cost of the call and its arguments, size of its result when known): the Kubernetes library's
        estimates first, then cel-go's extension libraries', then cel-go's own, else one unit."""
        name, target, args = e.function, e.target, e.args
        found = self._kubernetes(name, target, args)
        if found is None:
            found = self._extensions(name, target, args)
        if found is not None:
            return _add(found[0], args_total), found[1]
        return self._builtin(e, arg_costs, args_total)

    def _kubernetes(self, name: str, target: Expr | None, args: tuple[Expr, ...]) -> tuple[int, Size | None] | None:
        """The Kubernetes CEL libraries' estimates (lists, strings, regex, url, quantity, ...); None: not one of
        theirs, or not called the way they declare it."""
        estimate = _KUBERNETES.get(name)
        return estimate(self, name, target, args) if estimate is not None else None

    def _list_search(self, name: str, target: Expr | None, args: tuple[Expr, ...]) -> tuple[int, Size | None] | None:
        if target is None:
            return None
        target_type = self.type(target)
        if target_type.kind == "list":
            element = ONE.hi
            if _elem_type(target_type).kind in ("string", "bytes"):
                element = _add(element, _factor(self._items_size(target).hi, _STRING_TRAVERSAL))
            return _mul(self.size_or_unknown(target).hi, element), None
        if name == "includes":
            return self.size_or_unknown(target).hi, None
        return _factor(self.size_or_unknown(target).hi, _STRING_TRAVERSAL), None

    def _argument_copy(self, name: str, target: Expr | None, args: tuple[Expr, ...]) -> tuple[int, Size] | None:
        if len(args) != 1 or target is not None:
            return None
        size = self.size_or_unknown(args[0])
        return _factor(size.hi, _STRING_TRAVERSAL), size

    def _target_copy(self, name: str, target: Expr | None, args: tuple[Expr, ...]) -> tuple[int, Size] | None:
        if target is None:
            return None
        size = self.size_or_unknown(target)
        return _factor(size.hi, _STRING_TRAVERSAL), size

    def _kubernetes_replace(self, name: str, target: Expr | None, args: tuple[Expr, ...]) -> tuple[int, Size] | None:
        return self._replace(target, args) if target is not None and len(args) >= 2 else None

    def _split(self, name: str, target: Expr | None, args: tuple[Expr, ...]) -> tuple[int, Size] | None:
        if target is None:
            return None
        size = self.size_or_unknown(target)
        most = size.hi
        if len(args) > 1 and isinstance(args[1], Literal) and args[1].kind == "int":
            most = args[1].value % 2**64
        return _factor(size.hi, 2 * _STRING_TRAVERSAL), Size(0, most)

    def _kubernetes_join(self, name: str, target: Expr | None, args: tuple[Expr, ...]) -> tuple[int, Size] | None:
        return self._join(target, args) if target is not None else None

    def _find(self, name: str, target: Expr | None, args: tuple[Expr, ...]) -> tuple[int, Size] | None:
        if target is None or not args:
            return None
        size = self.size_or_unknown(target)
        text = _factor(_add(size.hi, 1), _STRING_TRAVERSAL)
        regex = _factor(self.size_or_unknown(args[0]).hi, _REGEX_LENGTH)
        return _mul(text, regex), Size(0, size.hi)

    def _argument_parse(self, name: str, target: Expr | None, args: tuple[Expr, ...]) -> tuple[int, None] | None:
        if not args:
            return None
        return _factor(self.size_or_unknown(args[0]).hi, _STRING_TRAVERSAL), None

    def _items_size(self, target: Expr) -> Size:
        base = self.path(target)
        found = self.sizes((*base, "@items")) if base is not None else None
        return found if found is not None else UNKNOWN

    def _replace(self, target: Expr, args: tuple[Expr, ...]) -> tuple[int, Size]:
        size = self.size_or_unknown(target)
        old = self.size_or_unknown(args[0])
        new = self.size_or_unknown(args[1])
        if old.lo == 0:
            count_hi, kept_hi = (size.hi + 1 if size.hi < U64 else size.hi), size.hi
        elif new.hi <= old.lo:
            count_hi, kept_hi = 0, size.hi
        else:
            count_hi, kept_hi = math.ceil(size.hi / old.lo) if size.hi < U64 else U64, 0
        if old.hi == 0:
            count_lo, kept_lo = (size.lo + 1 if size.lo < U64 else size.lo), size.lo
        elif old.hi <= new.lo:
            count_lo, kept_lo = 0, size.lo
        else:
            count_lo, kept_lo = math.ceil(size.lo / old.hi), 0
        result = Size(count_lo, count_hi).times(new) + Size(kept_lo, kept_hi)
        return _factor(size.hi, 2 * _STRING_TRAVERSAL), result

    def _join(self, target: Expr, args: tuple[Expr, ...]) -> tuple[int, Size]:
        items = self.size_or_unknown(target)
        size = Size(0, 0)
        if self.type(target).kind in ("list", "map"):
            size = items.times(self._items_size(target))
        if args:
            separators = Size(max(items.lo - 1, 0), max(items.hi - 1, 0))
            size = size + self.size_or_unknown(args[0]).times(separators)
        return _factor(size.hi, _STRING_TRAVERSAL), size

    def _extensions(self, name: str, target: Expr | None, args: tuple[Expr, ...]) -> tuple[int, Size | None] | None:
        """cel-go's sets and lists extensions, which carry their own estimates."""
        if name in ("sets.contains", "sets.intersects", "sets.equivalent") and len(args) == 2:
            factor = 2.0 if name == "sets.equivalent" else 1.0
            product = self.size_or_unknown(args[0]).hi * self.size_or_unknown(args[1]).hi
            return _add(_factor(min(product, U64), factor), 1), None
        if target is None or self.type(target).kind != "list":
            if name == "lists.range" and len(args) == 1:
                count = _literal_count(args[0], U64)
                return _list_call(1.0, Size(count, count))
            return None
        size = self.size_or_unknown(target)
        if name == "slice" and len(args) == 2:
            start, end = _literal_count(args[0], 0), _literal_count(args[1], size.hi)
            return _list_call(1.0, Size(max(end - start, 0), max(end - start, 0)))
        if name == "flatten" and len(args) <= 1:
            return _list_call(float(_literal_count(args[0], U64)) if args else 1.0, size)
        if name == "reverse" and not args:
            return _list_call(1.0, size)
        if name == "distinct" and not args:
            return _list_call(2.0, size.times(size))
        if name == "sort" and not args:
            strings = _elem_type(self.type(target)).kind in ("string", "bytes")
            return _list_call(2.0 + (_STRING_TRAVERSAL if strings else 0.0), size.times(size))
        return None

    def _builtin(self, e: Call, arg_costs: list[int], args_total: int) -> tuple[int, Size | None]:
        """cel-go's own estimates for its standard functions and operators; one unit for any other call, and for
        one of those called with arguments they do not estimate."""
        estimate = _BUILTINS.get(e.function)
        found = estimate(self, e, arg_costs, args_total) if estimate is not None else None
        return found if found is not None else (_add(1, args_total), None)

    def _format(self, e: Call, arg_costs: list[int], args_total: int) -> tuple[int, None] | None:
        if e.target is None:
            return None
        return _add(_factor(self.size_or_unknown(e.target).hi, _STRING_TRAVERSAL), args_total), None

    def _bytes(self, e: Call, arg_costs: list[int], args_total: int) -> tuple[int, Size] | None:
        if not self._one_argument_of(e, ("string", "dyn")):
            return None
        size = self.size_or_unknown(e.args[0])
        return _add(_factor(size.hi, _STRING_TRAVERSAL), args_total), Size(size.lo, _mul(size.hi, 4))

    def _string(self, e: Call, arg_costs: list[int], args_total: int) -> tuple[int, Size] | None:
        if not self._one_argument_of(e, ("bytes", "dyn")):
            return None
        size = self.size_or_unknown(e.args[0])
        return _add(_factor(size.hi, _STRING_TRAVERSAL), args_total), Size(size.lo // 4, size.hi)

    def _one_argument_of(self, e: Call, kinds: tuple[str, ...]) -> bool:
        return len(e.args) == 1 and self.type(e.args[0]).kind in kinds

    def _quote(self, e: Call, arg_costs: list[int], args_total: int) -> tuple[int, Size] | None:
        if len(e.args) != 1:
            return None
        size = self.size_or_unknown(e.args[0])
        return _add(_factor(size.hi, _STRING_TRAVERSAL), args_total), Size(size.lo + 2, _add(_mul(size.hi, 2), 2))

    def _affix(self, e: Call, arg_costs: list[int], args_total: int) -> tuple[int, None] | None:
        if len(e.args) != 1 or e.target is None:
            return None
        return _add(_factor(self.size_or_unknown(e.args[0]).hi, _STRING_TRAVERSAL), args_total), None

    def _in(self, e: Call, arg_costs: list[int], args_total: int) -> tuple[int, None] | None:
        if len(e.args) != 2 or self.type(e.args[1]).kind not in ("list", "dyn"):
            return None
        return _add(self.size_or_unknown(e.args[1]).hi, args_total), None

    def _matches(self, e: Call, arg_costs: list[int], args_total: int) -> tuple[int, None] | None:
        if e.target is None or len(e.args) != 1:
            return None
        text = _factor(_add(self.size_or_unknown(e.target).hi, 1), _STRING_TRAVERSAL)
        regex = _factor(self.size_or_unknown(e.args[0]).hi, _REGEX_LENGTH)
        return _add(_mul(text, regex), args_total), None

    def _contains(self, e: Call, arg_costs: list[int], args_total: int) -> tuple[int, None] | None:
        if e.target is None or len(e.args) != 1:
            return None
        if self.type(e.target).kind == "list":  # the cel package's list `contains`: a traversal, like `in`
            return _add(self.size_or_unknown(e.target).hi, args_total), None
        text = _factor(self.size_or_unknown(e.target).hi, _STRING_TRAVERSAL)
        part = _factor(self.size_or_unknown(e.args[0]).hi, _STRING_TRAVERSAL)
        return _add(_mul(text, part), args_total), None

    def _logical(self, e: Call, arg_costs: list[int], args_total: int) -> tuple[int, None] | None:
        if len(arg_costs) != 2:
            return None
        return _add(arg_costs[0], arg_costs[1]), None

    def _conditional(self, e: Call, arg_costs: list[int], args_total: int) -> tuple[int, Size] | None:
        if len(e.args) != 3:
            return None
        size = self.size_or_unknown(e.args[1]).union(self.size_or_unknown(e.args[2]))
        self._union_entries(e, e.args[1], e.args[2])
        return _add(arg_costs[0], max(arg_costs[1], arg_costs[2])), size

    def _plus(self, e: Call, arg_costs: list[int], args_total: int) -> tuple[int, Size] | None:
        added = self._add_sizes(e) if len(e.args) == 2 else None
        return (_add(added[0], args_total), added[1]) if added is not None else None

    def _equality(self, e: Call, arg_costs: list[int], args_total: int) -> tuple[int, None]:
        smallest = min(self.size_or_unknown(e.args[0]).hi, self.size_or_unknown(e.args[1]).hi)
        return _add(_factor(smallest, _STRING_TRAVERSAL), args_total), None

    def _ordering(self, e: Call, arg_costs: list[int], args_total: int) -> tuple[int, None] | None:
        kinds = [self.type(arg).kind for arg in e.args]
        if len(e.args) != 2 or not any(k in ("string", "bytes", "dyn") for k in kinds):
            return None  # numbers, timestamps, durations: one unit
        smallest = min(self.size_or_unknown(e.args[0]).hi, self.size_or_unknown(e.args[1]).hi)
        cost = _factor(smallest, _STRING_TRAVERSAL)
        if not all(k in ("string", "bytes") for k in kinds):
            cost = max(cost, 1)  # untyped operands: the costliest of the overloads they may pick
        return _add(cost, args_total), None

    def _union_entries(self, e: Call, first: Expr, second: Expr) -> None:
        """`e` yields `first` or `second` (or both joined): its entries may be of either."""
        entries = (self.entry(first), self.entry(second))
        if entries[0] is not None and entries[1] is not None:
            self.entries[id(e)] = (entries[0][0].union(entries[1][0]), entries[0][1].union(entries[1][1]))

    def _add_sizes(self, e: Call) -> tuple[int, Size] | None:
        kinds = {self.type(arg).kind for arg in e.args}
        if not kinds & {"string", "bytes", "list", "dyn"}:
            return None  # numbers, timestamps, durations: one unit
        size = self.size_or_unknown(e.args[0]) + self.size_or_unknown(e.args[1])
        self._union_entries(e, e.args[0], e.args[1])
        if kinds & {"string", "bytes"}:
            return _factor(size.hi, _STRING_TRAVERSAL), size
        if "dyn" in kinds and "list" not in kinds:  # untyped: the costliest of the overloads it may pick
            return max(_factor(size.hi, _STRING_TRAVERSAL), 1), size
        return 1, size  # list concatenation is O(1); the size is tracked


_KubernetesEstimate = Callable[[_Estimator, str, Expr | None, tuple[Expr, ...]], tuple[int, Size | None] | None]
_BuiltinEstimate = Callable[[_Estimator, Call, list[int], int], tuple[int, Size | None] | None]

# Which estimate each Kubernetes library function has, by name (as in the API server's cost estimator).
_KUBERNETES: dict[str, _KubernetesEstimate] = {
    **dict.fromkeys(("isSorted", "sum", "max", "min", "indexOf", "lastIndexOf", "includes"), _Estimator._list_search),
    **dict.fromkeys(("url", "jsonpatch.escapeKey"), _Estimator._argument_copy),
    **dict.fromkeys(("lowerAscii", "upperAscii", "substring", "trim"), _Estimator._target_copy),
    "replace": _Estimator._kubernetes_replace,
    "split": _Estimator._split,
    "join": _Estimator._kubernetes_join,
    **dict.fromkeys(("find", "findAll"), _Estimator._find),
    **dict.fromkeys(
        ("quantity", "isQuantity", "semver", "isSemver", "cidr", "isIP", "isCIDR", "ip"), _Estimator._argument_parse
    ),
}

# Which estimate each of cel-go's standard functions and operators has, by name.
_BUILTINS: dict[str, _BuiltinEstimate] = {
    "format": _Estimator._format,
    "bytes": _Estimator._bytes,
    "string": _Estimator._string,
    "strings.quote": _Estimator._quote,
    **dict.fromkeys(("startsWith", "endsWith"), _Estimator._affix),
    "@in": _Estimator._in,
    "matches": _Estimator._matches,
    "contains": _Estimator._contains,
    **dict.fromkeys(("_||_", "_&&_"), _Estimator._logical),
    "_?_:_": _Estimator._conditional,
    "_+_": _Estimator._plus,
    **dict.fromkeys(("_==_", "_!=_"), _Estimator._equality),
    **dict.fromkeys(("_<_", "_<=_", "_>_", "_>=_"), _Estimator._ordering),
}


def _list_call(factor: float, size: Size) -> tuple[int, Size]:
    return _add(_add(_factor(size.hi, factor), 1), _LIST_CREATE), size


def _literal_count(e: Expr, default: int) -> int:
    if isinstance(e, Literal) and e.kind == "int":
        return max(e.value, 0)
    return default


def _literal_size(e: Expr) -> Size | None:
    if isinstance(e, Literal):
        if e.kind in ("string", "bytes"):
            return Size(len(e.value), len(e.value))
        return ONE
    if isinstance(e, ListExpr):
        return Size(len(e.elements), len(e.elements))
    if isinstance(e, MapExpr):
        return Size(len(e.entries), len(e.entries))
    return None


def _field_type(operand: _Type, name: str) -> _Type:
    shape = operand.shape
    if shape is None:
        return _DYN
    if shape.kind == "object":
        child = shape.fields.get(name)
        return _Type(child.kind, child) if child is not None else _DYN
    if shape.kind == "map" and shape.elem is not None:
        return _Type(shape.elem.kind, shape.elem)
    return _DYN


def _elem_type(container: _Type) -> _Type:
    if container.elem is not None:
        return container.elem
    shape = container.shape
    if shape is not None and shape.elem is not None and shape.kind in ("list", "map"):
        return _Type(shape.elem.kind, shape.elem)
    return _DYN


def estimate(expr: Expr, root: Shape | None, sizes: SizeOf | None = None) -> int:
    """The worst-case cost of evaluating `expr` with `self` of shape `root`, sizes from the schema unless given."""
    return _Estimator(root, sizes if sizes is not None else schema_sizes(root)).cost(expr)
