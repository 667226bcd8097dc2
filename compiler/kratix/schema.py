"""The schema stage: a Promise's request API (`spec.api`, a whole CRD) in, a validator for requests out.

`check_crd` reports what the API server would refuse in the CRD, plus what this compiler cannot evaluate.
`compile_request_schema` turns the request version's OpenAPI v3 structural schema into a draft-07 JSON
Schema (checked by jsonschema-rs), a tree for defaulting, and compiled CEL rules, once per Promise.
`validate_request` applies defaults to a copy of a request and returns it with every problem, sorted by path.

Where a compiler departs from the API server, on purpose:
- unknown fields are errors (`schema.unknown-field`), as with `kubectl --validate=strict`; the API server
  prunes them silently, and a silently dropped typo (`sise: large`) is the worst outcome for a Git request;
- `status` in a request file is ignored with a warning and left out of the result (pipelines write status);
- a CEL rule that cannot even be evaluated (no such key, no such overload) is not reported where a type or
  required-field error at or under its node already explains why;
- `oldSelf` rules and rules using functions the `cel` package lacks are skipped; `check_crd` says so once.
As the API server: a non-nullable `null` takes the default if there is one and is dropped otherwise; defaults
apply to absent fields, inside present and defaulted objects, array items and map values, before validation.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import difflib
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs

from kratix import celrules
from kratix.diagnostics import Severity
from kratix.documents import FieldPath

CRD_API_VERSION = "apiextensions.k8s.io/v1"
DRAFT = "http://json-schema.org/draft-07/schema#"
ENVELOPE = ("apiVersion", "kind", "metadata", "status")  # checked here, never against openAPIV3Schema
_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean"})
_PASSED_THROUGH = ("description", "title", "pattern", "minLength", "maxLength", "minItems", "maxItems",
                   "minProperties", "maxProperties", "multipleOf", "uniqueItems", "minimum", "maximum")
_UNSUPPORTED = ("$ref", "definitions", "dependencies", "patternProperties", "additionalItems", "id",
                "$schema")
_INT_BOUNDS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_MISSING: Any = object()  # "no default": a default may itself be null
_BLOCKING_CODES = frozenset({"schema.type", "schema.required"})
_DURATION = re.compile(r"[-+]?((\d+(\.\d*)?|\.\d+)\s*(ns|us|µs|μs|ms|s|m|h|d|w)\s*)+")
_DATETIME = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}):(\d{2})(:(\d{2})(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?")


@dataclass(frozen=True)
class Violation:
    path: FieldPath
    code: str
    message: str
    severity: Severity = Severity.ERROR


@dataclass(frozen=True, eq=False)
class _Node:
    """What defaulting and CEL need of one schema node (the value checks live in the JSON Schema)."""

    nullable: bool = False
    default: Any = _MISSING
    properties: Mapping[str, _Node] = field(default_factory=dict)
    items: _Node | None = None
    additional: _Node | None = None  # the schema of map values (`additionalProperties: {...}`)
    rules: tuple[celrules.Rule, ...] = ()
    map_keys: tuple[str, ...] | None = None  # `x-kubernetes-list-type: map`
    walk: bool = False  # rules or list-map keys here or below: the post-validation walk must visit this node

    def child(self, key: str) -> _Node | None:
        found = self.properties.get(key)
        return found if found is not None else self.additional


@dataclass(frozen=True)
class RequestSchema:
    group: str
    version: str
    kind: str
    plural: str
    openapi: Mapping[str, Any] = field(repr=False, compare=False)  # the version's openAPIV3Schema, a copy
    root: _Node = field(repr=False, compare=False)
    validator: Any = field(repr=False, compare=False)  # jsonschema_rs.Draft7Validator

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


# ---------------------------------------------------------------------------------------------- the CRD


def check_crd(crd: object) -> list[Violation]:
    if not isinstance(crd, Mapping):
        return [Violation((), "crd.not-a-mapping", "must be a CustomResourceDefinition object")]
    found: list[Violation] = []
    for key, expected, code in (("apiVersion", CRD_API_VERSION, "crd.api-version"),
                                ("kind", "CustomResourceDefinition", "crd.kind")):
        if crd.get(key) != expected:
            found.append(Violation((key,), code, f"must be {expected} (got {_show(crd.get(key))})"))
    spec = crd.get("spec")
    if not isinstance(spec, Mapping):
        return sort_violations([*found, Violation(("spec",), "crd.spec", "must be an object")])
    found += _check_names(crd, spec)
    if spec.get("scope") != "Namespaced":
        scope = _show(spec.get("scope"))
        found.append(Violation(("spec", "scope"), "crd.not-namespaced",
                               f"must be Namespaced (got {scope}): requests live in a namespace"))
    found += _check_versions(spec.get("versions"))
    return sort_violations(found)


def _check_names(crd: Mapping[str, Any], spec: Mapping[str, Any]) -> list[Violation]:
    found: list[Violation] = []
    group = spec.get("group")
    if not isinstance(group, str) or "." not in group or not _DNS_SUBDOMAIN.match(group):
        found.append(Violation(("spec", "group"), "crd.group",
                               f"must be a DNS subdomain with at least one dot (got {_show(group)})"))
    names = spec.get("names")
    names = names if isinstance(names, Mapping) else {}
    kind, plural = names.get("kind"), names.get("plural")
    if not isinstance(kind, str) or not re.match(r"^[A-Za-z][A-Za-z0-9]*$", kind):
        found.append(Violation(("spec", "names", "kind"), "crd.names",
                               f"must be a kind name (got {_show(kind)})"))
    if not isinstance(plural, str) or not _DNS_LABEL.match(plural):
        found.append(Violation(("spec", "names", "plural"), "crd.names",
                               f"must be a lowercase DNS label (got {_show(plural)})"))
    elif isinstance(group, str):
        name = (crd.get("metadata") or {}).get("name") if isinstance(crd.get("metadata"), Mapping) else None
        if name != f"{plural}.{group}":
            found.append(Violation(("metadata", "name"), "crd.name",
                                   f"must be {plural}.{group} (got {_show(name)})"))
    return found


def _check_versions(versions: object) -> list[Violation]:
    path: FieldPath = ("spec", "versions")
    if not isinstance(versions, list) or not versions:
        return [Violation(path, "crd.no-versions", "must list at least one version")]
    found: list[Violation] = []
    served = storage = 0
    for index, version in enumerate(versions):
        if not isinstance(version, Mapping) or not isinstance(version.get("name"), str):
            found.append(Violation((*path, index), "crd.version", "must be an object with a name"))
            continue
        served += version.get("served") is True
        storage += version.get("storage") is True
        found += _check_version_schema(version, (*path, index))
    if not served:
        found.append(Violation(path, "crd.no-served-version", "no version has served: true"))
    if storage > 1:
        found.append(Violation(path, "crd.storage-version", "more than one version has storage: true"))
    elif not storage:
        found.append(Violation(path, "crd.storage-version", "no version has storage: true; the first served "
                                                            "version is used", Severity.WARNING))
    return found


def _check_version_schema(version: Mapping[str, Any], path: FieldPath) -> list[Violation]:
    schema = version.get("schema")
    raw = schema.get("openAPIV3Schema") if isinstance(schema, Mapping) else None
    path = (*path, "schema", "openAPIV3Schema")
    if not isinstance(raw, Mapping):
        return [Violation(path, "crd.schema", "required field missing: each version needs one")]
    builder = _Builder(editor=False)
    json_schema, node = builder.build(raw, path)
    found = builder.problems
    if raw.get("type") != "object":
        found.append(Violation((*path, "type"), "crd.schema", "the root schema must have type: object"))
    try:
        _validator(json_schema)
    except (ValueError, jsonschema_rs.ValidationError) as error:
        found.append(Violation(path, "crd.schema", f"not a valid schema: {str(error).splitlines()[0]}"))
        return found
    found += _check_defaults(builder.defaults)
    return found


def _check_defaults(defaults: Iterable[tuple[FieldPath, Any, dict[str, Any], _Node]]) -> list[Violation]:
    """The API server refuses a default that is invalid against its own schema (after nested defaults)."""
    found: list[Violation] = []
    for path, value, json_schema, node in defaults:
        defaulted = _apply(value, node)
        for error in _validator(json_schema).iter_errors(defaulted):
            found += [Violation(path, "crd.default", f"invalid default: {_format_path(v.path)}{v.message}")
                      for v in _violations(error, node)]
    return found


# ------------------------------------------------------------------------------- OpenAPI -> JSON Schema


class _Builder:
    """One walk over an openAPIV3Schema: the JSON Schema, the defaulting/CEL tree, and the problems met."""

    def __init__(self, *, editor: bool) -> None:
        self.editor = editor
        self.problems: list[Violation] = []
        self.defaults: list[tuple[FieldPath, Any, dict[str, Any], _Node]] = []

    def problem(self, path: FieldPath, message: str, code: str = "crd.schema",
                severity: Severity = Severity.ERROR) -> None:
        self.problems.append(Violation(path, code, message, severity))

    def build(self, raw: object, path: FieldPath, *, junctor: bool = False) -> tuple[dict[str, Any], _Node]:
        if not isinstance(raw, Mapping):
            self.problem(path, "must be a schema object")
            return {}, _Node()
        for key in _UNSUPPORTED:
            if key in raw:
                self.problem((*path, key), f"{key} is not allowed in a CRD schema")
        out: dict[str, Any] = {key: raw[key] for key in _PASSED_THROUGH if key in raw}
        nullable = raw.get("nullable") is True
        self._type(raw, path, out, nullable=nullable, junctor=junctor)
        self._bounds(raw, out)
        if isinstance(raw.get("required"), list):
            out["required"] = list(raw["required"])
        if isinstance(raw.get("enum"), list):
            out["enum"] = [*raw["enum"], *([None] if nullable and None not in raw["enum"] else [])]
        properties = self._properties(raw, path, out, junctor=junctor)
        items = self._items(raw, path, out, junctor=junctor)
        additional = self._additional(raw, path, out, junctor=junctor)
        self._junctors(raw, path, out)
        if not junctor:  # a branch of anyOf/oneOf/allOf/not only adds checks: it must not forbid other fields
            self._close(raw, out)
        map_keys = self._list_type(raw, path, out)
        rules = self._rules(raw.get("x-kubernetes-validations"), (*path, "x-kubernetes-validations"))
        children = [*properties.values(), *(n for n in (items, additional) if n is not None)]
        node = _Node(nullable=nullable, default=raw.get("default", _MISSING), properties=properties,
                     items=items, additional=additional, rules=rules, map_keys=map_keys,
                     walk=bool(rules) or map_keys is not None or any(child.walk for child in children))
        if "default" in raw:
            out["default"] = raw["default"]
            self.defaults.append(((*path, "default"), raw["default"], out, node))
        return out, node

    def _type(self, raw: Mapping[str, Any], path: FieldPath, out: dict[str, Any], *, nullable: bool,
              junctor: bool) -> None:
        declared = raw.get("type")
        if raw.get("x-kubernetes-int-or-string") is True:
            types = ["integer", "string"]
        elif declared is None:
            if not junctor and raw.get("x-kubernetes-preserve-unknown-fields") is not True:
                self.problem(path, "type is required (a CRD schema must be structural)")
            return
        elif not isinstance(declared, str) or declared not in _TYPES:
            allowed = ", ".join(sorted(_TYPES))
            self.problem((*path, "type"), f"must be one of: {allowed} (got {_show(declared)})")
            return
        else:
            types = [declared]
        if nullable:
            types.append("null")
        out["type"] = types[0] if len(types) == 1 else types

    def _bounds(self, raw: Mapping[str, Any], out: dict[str, Any]) -> None:
        # OpenAPI 3.0 spells exclusive bounds as booleans next to minimum/maximum; JSON Schema as numbers.
        for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if raw.get(flag) is True and bound in out:
                out[flag] = out.pop(bound)
        fmt = raw.get("format") if isinstance(raw.get("format"), str) else None
        if fmt in _INT_BOUNDS:
            low, high = _INT_BOUNDS[fmt]
            if "minimum" not in out and "exclusiveMinimum" not in out:
                out["minimum"] = low
            if "maximum" not in out and "exclusiveMaximum" not in out:
                out["maximum"] = high
        elif fmt in (_EDITOR_FORMATS if self.editor else _FORMATS):
            out["format"] = fmt

    def _properties(self, raw: Mapping[str, Any], path: FieldPath, out: dict[str, Any], *,
                    junctor: bool) -> dict[str, _Node]:
        declared = raw.get("properties")
        if declared is None:
            return {}
        if not isinstance(declared, Mapping):
            self.problem((*path, "properties"), "must be a map of schemas")
            return {}
        nodes: dict[str, _Node] = {}
        out["properties"] = {}
        for name, sub in declared.items():
            sub_path = (*path, "properties", name)
            out["properties"][name], nodes[name] = self.build(sub, sub_path, junctor=junctor)
        if raw.get("x-kubernetes-embedded-resource") is True:
            # An embedded object is a Kubernetes object: apiVersion and kind must be set (metadata is free).
            for key in ("apiVersion", "kind"):
                out["properties"].setdefault(key, {"type": "string", "minLength": 1})
            out["properties"].setdefault("metadata", {"type": "object"})
            out["required"] = sorted({*out.get("required", []), "apiVersion", "kind"})
        return nodes

    def _items(self, raw: Mapping[str, Any], path: FieldPath, out: dict[str, Any], *,
               junctor: bool) -> _Node | None:
        if "items" not in raw:
            if raw.get("type") == "array":
                self.problem(path, "items is required for type: array")
            return None
        out["items"], node = self.build(raw["items"], (*path, "items"), junctor=junctor)
        return node

    def _additional(self, raw: Mapping[str, Any], path: FieldPath, out: dict[str, Any], *,
                    junctor: bool) -> _Node | None:
        declared = raw.get("additionalProperties")
        if declared is None:
            return None
        if "properties" in raw and declared is not False:
            self.problem((*path, "additionalProperties"), "properties and additionalProperties are exclusive")
        if isinstance(declared, bool):
            out["additionalProperties"] = declared
            return _Node() if declared else None
        sub_path = (*path, "additionalProperties")
        out["additionalProperties"], node = self.build(declared, sub_path, junctor=junctor)
        return node

    def _junctors(self, raw: Mapping[str, Any], path: FieldPath, out: dict[str, Any]) -> None:
        for key in ("allOf", "anyOf", "oneOf"):
            if key in raw:
                subs = raw[key] if isinstance(raw[key], list) else []
                out[key] = [self.build(sub, (*path, key, i), junctor=True)[0] for i, sub in enumerate(subs)]
        if "not" in raw:
            out["not"] = self.build(raw["not"], (*path, "not"), junctor=True)[0]

    def _close(self, raw: Mapping[str, Any], out: dict[str, Any]) -> None:
        is_object = raw.get("type") == "object" or "properties" in raw
        preserve = raw.get("x-kubernetes-preserve-unknown-fields") is True
        embedded = raw.get("x-kubernetes-embedded-resource") is True
        if is_object and not preserve and "additionalProperties" not in raw:
            out["additionalProperties"] = False
            if embedded and "properties" not in out:
                out["properties"] = {"apiVersion": {"type": "string", "minLength": 1},
                                     "kind": {"type": "string", "minLength": 1},
                                     "metadata": {"type": "object"}}
        if embedded:
            out["required"] = sorted({*out.get("required", []), "apiVersion", "kind"})

    def _list_type(self, raw: Mapping[str, Any], path: FieldPath,
                   out: dict[str, Any]) -> tuple[str, ...] | None:
        list_type = raw.get("x-kubernetes-list-type")
        if list_type == "set":
            out["uniqueItems"] = True
        if list_type != "map":
            return None
        keys = raw.get("x-kubernetes-list-map-keys")
        if not isinstance(keys, list) or not keys or not all(isinstance(key, str) for key in keys):
            self.problem((*path, "x-kubernetes-list-map-keys"), "list-type map needs a list of key names")
            return None
        return tuple(keys)

    def _rules(self, raw: object, path: FieldPath) -> tuple[celrules.Rule, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.problem(path, "must be a list of rules")
            return ()
        rules: list[celrules.Rule] = []
        for index, entry in enumerate(raw):
            compiled = celrules.compile_rule(entry)
            if isinstance(compiled, celrules.Rule):
                rules.append(compiled)
            elif compiled.kind == "transition":
                self.problem((*path, index), compiled.message, "crd.cel-transition", Severity.INFO)
            elif compiled.kind == "unsupported":
                self.problem((*path, index), compiled.message, "crd.cel-unsupported", Severity.WARNING)
            else:
                self.problem((*path, index), compiled.message, "crd.cel")
        return tuple(rules)


# --------------------------------------------------------------------------------------- compiling


def compile_request_schema(crd: Mapping[str, Any]) -> RequestSchema:
    """The storage version's schema (else the first served). Call only when `check_crd` found no errors."""
    spec = crd["spec"]
    versions = spec["versions"]
    version = next((v for v in versions if v.get("storage") is True), None) or next(
        (v for v in versions if v.get("served") is True), versions[0])
    openapi = json.loads(json.dumps(version["schema"]["openAPIV3Schema"], default=str))
    json_schema, root = _request_root(*_Builder(editor=False).build(openapi, ()))
    return RequestSchema(group=spec["group"], version=version["name"], kind=spec["names"]["kind"],
                         plural=spec["names"]["plural"], openapi=openapi, root=root,
                         validator=_validator(json_schema))


def _request_root(json_schema: dict[str, Any], root: _Node) -> tuple[dict[str, Any], _Node]:
    """The envelope (apiVersion, kind, metadata, status) is checked by hand, not by openAPIV3Schema."""
    properties = {k: v for k, v in json_schema.get("properties", {}).items() if k not in ENVELOPE}
    required = [k for k in json_schema.get("required", []) if k not in ENVELOPE]
    json_schema = {**json_schema, "properties": properties, "required": required}
    nodes = {k: v for k, v in root.properties.items() if k not in ENVELOPE}
    return json_schema, _Node(properties=nodes, additional=root.additional, rules=root.rules, walk=root.walk)


def _validator(json_schema: Mapping[str, Any]) -> Any:
    return jsonschema_rs.Draft7Validator(dict(json_schema), validate_formats=True,
                                         ignore_unknown_formats=True, formats=dict(_FORMAT_CHECKS))


# --------------------------------------------------------------------------------------- requests


def validate_request(schema: RequestSchema,
                     body: Mapping[str, Any]) -> tuple[dict[str, Any], list[Violation]]:
    """A defaulted copy of `body` and every problem in it, sorted by path. `body` is never changed."""
    if not isinstance(body, Mapping):
        return {}, [Violation((), "schema.not-an-object", "a request must be a mapping")]
    found = _check_envelope(schema, body)
    content = {str(k): v for k, v in body.items() if k not in ENVELOPE}
    result: dict[str, Any] = {key: _apply(body[key], None) for key in ("apiVersion", "kind", "metadata")
                              if key in body}
    defaulted = _apply(content, schema.root)
    result.update(defaulted)
    if not schema.validator.is_valid(defaulted):
        for error in schema.validator.iter_errors(defaulted):
            found += _violations(error, schema.root)
    if schema.root.walk:
        found += _check_rules(result, schema.root, (), _blocked(found))
    return result, sort_violations(found)


def _check_envelope(schema: RequestSchema, body: Mapping[str, Any]) -> list[Violation]:
    found: list[Violation] = []
    for key, expected, code in (("apiVersion", schema.api_version, "schema.api-version"),
                                ("kind", schema.kind, "schema.kind")):
        if body.get(key) != expected:
            found.append(Violation((key,), code, f"must be {expected} (got {_show(body.get(key))})"))
    metadata = body.get("metadata")
    if not isinstance(metadata, Mapping):
        found.append(Violation(("metadata",), "schema.metadata", "must be an object with at least a name"))
        metadata = {}
    name = metadata.get("name")
    if name is None:
        found.append(Violation(("metadata", "name"), "schema.name", "required field missing"))
    else:
        found += _check_dns_label(name, ("metadata", "name"), "schema.name")
    if "namespace" in metadata:
        found += _check_dns_label(metadata["namespace"], ("metadata", "namespace"), "schema.namespace")
    for key in ("labels", "annotations"):
        found += _check_string_map(metadata.get(key), ("metadata", key), labels=key == "labels")
    if "status" in body:
        found.append(Violation(("status",), "schema.status-ignored",
                               "ignored: status is written by pipelines, not by a request", Severity.WARNING))
    return found


def _check_dns_label(value: object, path: FieldPath, code: str) -> list[Violation]:
    if not isinstance(value, str):
        return [Violation(path, code, f"must be a string (got {_type_name(value)})")]
    found = []
    if len(value) > 63:
        found.append(Violation(path, code, f"must be at most 63 characters (got {len(value)})"))
    if not _DNS_LABEL.match(value):
        found.append(Violation(path, code, "must be a DNS-1123 label: lowercase letters, digits and '-', "
                                           f"alphanumeric at both ends (got {_show(value)})"))
    return found


def _check_string_map(value: object, path: FieldPath, *, labels: bool) -> list[Violation]:
    if value is None:
        return []
    code = "schema.labels" if labels else "schema.annotations"
    if not isinstance(value, Mapping):
        return [Violation(path, code, f"must be a map of strings (got {_type_name(value)})")]
    found = []
    for key, item in value.items():
        if not isinstance(item, str):
            message = f"must be a string (got {_type_name(item)}): quote it"
        elif labels and (len(item) > 63 or not _LABEL_VALUE.match(item)):
            message = ("must be a label value: at most 63 letters, digits, '-', '_' or '.', alphanumeric at "
                       f"both ends (got {_show(item)})")
        else:
            continue
        found.append(Violation((*path, str(key)), code, message))
    return found


def _apply(value: Any, node: _Node | None) -> Any:
    """A deep copy of `value` in JSON terms, with `node`'s defaults applied and non-nullable nulls settled."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for raw_key, item in value.items():
            key = raw_key if isinstance(raw_key, str) else str(raw_key)
            child = node.child(key) if node is not None else None
            if item is None and child is not None and not child.nullable:
                if child.default is not _MISSING:  # the API server defaults a non-nullable null...
                    out[key] = _apply(child.default, child)
                continue  # ...and prunes it when there is no default
            out[key] = _apply(item, child)
        if node is not None:
            for key, child in node.properties.items():
                if key not in out and child.default is not _MISSING:
                    out[key] = _apply(child.default, child)
        return out
    if isinstance(value, list | tuple):
        items = node.items if node is not None else None
        return [_apply(item, items) for item in value]
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


def _blocked(found: Iterable[Violation]) -> frozenset[FieldPath]:
    """Nodes at or above a type or required-field error: a CEL rule there that cannot run says nothing new."""
    return frozenset(v.path[:end] for v in found if v.code in _BLOCKING_CODES
                     for end in range(len(v.path) + 1))


def _check_rules(value: Any, node: _Node, path: FieldPath, blocked: frozenset[FieldPath]) -> list[Violation]:
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
                found += _check_rules(item, child, (*path, key), blocked)
    elif isinstance(value, list) and node.items is not None and node.items.walk:
        for index, item in enumerate(value):
            found += _check_rules(item, node.items, (*path, index), blocked)
    return found


def _check_map_keys(items: list[Any], keys: tuple[str, ...], path: FieldPath) -> list[Violation]:
    seen: set[str] = set()
    found = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue
        identity = json.dumps([item.get(key) for key in keys], sort_keys=True, default=str)
        if identity in seen:
            shown = ", ".join(f"{key}={_show(item.get(key))}" for key in keys)
            found.append(Violation((*path, index), "schema.duplicate", f"duplicate entry with {shown}"))
        seen.add(identity)
    return found


# ----------------------------------------------------------------------------------- error messages


def _violations(error: Any, root: _Node) -> list[Violation]:
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
        return Violation(path, code, template.format(**detail, got=_show(value), count=_size(value)))
    if kind == "Type":
        expected = " or ".join(detail["types"])
        return Violation(path, "schema.type", f"must be {expected} (got {_type_name(value)})")
    if kind == "Enum":
        options = ", ".join(str(o) if isinstance(o, str) else json.dumps(o) for o in detail["options"])
        return Violation(path, "schema.enum", f"must be one of: {options} (got {_show(value)})")
    return Violation(path, f"schema.{_kebab(kind)}", error.message)


def _unknown_fields(path: FieldPath, names: list[str], root: _Node) -> list[Violation]:
    known = _node_at(root, path)
    found = []
    for name in names:
        close = difflib.get_close_matches(name, list(known.properties) if known else [], n=1)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        found.append(Violation((*path, name), "schema.unknown-field", f'unknown field "{name}"{hint}'))
    return found


def _node_at(root: _Node, path: FieldPath) -> _Node | None:
    node: _Node | None = root
    for part in path:
        if node is None:
            return None
        node = node.items if isinstance(part, int) else node.child(part)
    return node


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


def sort_violations(found: Iterable[Violation]) -> list[Violation]:
    unique = {(v.path, v.code, v.message, v.severity): v for v in found}
    return sorted(unique.values(), key=lambda v: (_path_key(v.path), v.code, v.message))


def _path_key(path: FieldPath) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, part) if isinstance(part, int) else (1, part) for part in path)


def _format_path(path: FieldPath) -> str:
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
    return f"{text.lstrip('.')}: " if text else ""


def _show(value: object) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _size(value: object) -> int | str:
    return len(value) if isinstance(value, str | list | dict) else "?"


def _type_name(value: object) -> str:
    for kind, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
                       (list, "array"), (dict, "object"), (type(None), "null")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


# ------------------------------------------------------------------------------------------ formats


def _is_duration(text: str) -> bool:
    # Go's time.ParseDuration plus the d/w units kube-openapi also accepts, not ISO 8601.
    return text == "0" or _DURATION.fullmatch(text) is not None


def _is_datetime(text: str) -> bool:
    # kube-openapi accepts RFC 3339 and a few ISO 8601 relatives (no seconds, no zone, a space for the T).
    found = _DATETIME.fullmatch(text)
    if found is None:
        return False
    try:
        datetime.date.fromisoformat(found.group(1))
    except ValueError:
        return False
    return int(found.group(2)) < 24 and int(found.group(3)) < 60 and int(found.group(5) or 0) < 61


def _is_byte(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


def _is_mac(text: str) -> bool:
    return re.fullmatch(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}", text) is not None


_FORMAT_CHECKS = {"duration": _is_duration, "date-time": _is_datetime, "datetime": _is_datetime,
                  "byte": _is_byte, "cidr": _is_cidr, "mac": _is_mac}
# Formats checked on requests: the API server's meaning where it differs from JSON Schema's.
_FORMATS = frozenset({*_FORMAT_CHECKS, "date", "email", "hostname", "ipv4", "ipv6", "uuid"})
# Formats an editor reads the way Kubernetes does (`duration` would mean ISO 8601 there).
_EDITOR_FORMATS = frozenset({"date", "email", "hostname", "ipv4", "ipv6", "uuid"})


# ------------------------------------------------------------------------------------------ editor


def editor_json_schema(schema: RequestSchema) -> dict[str, Any]:
    """A draft-07 JSON Schema for a whole request file, e.g. for yaml-language-server's `$schema=` comment.
    CEL rules, list-map keys and null handling cannot be expressed and are left out."""
    body, _ = _request_root(*_Builder(editor=True).build(schema.openapi, ()))
    label = {"type": "string", "maxLength": 63, "pattern": _DNS_LABEL.pattern}
    metadata = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {**label, "description": "A DNS-1123 label: lowercase letters, digits and '-'."},
            "namespace": label,
            "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    return {
        **body,
        "$schema": DRAFT,
        "title": f"{schema.kind} ({schema.api_version})",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", *body.get("required", [])],
        "properties": {
            "apiVersion": {"const": schema.api_version},
            "kind": {"const": schema.kind},
            "metadata": metadata,
            **body.get("properties", {}),
        },
    }
