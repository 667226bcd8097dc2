"""Requests: a CRD compiled once per Promise into a `RequestSchema`, then each request defaulted, checked and
converted to the storage version.

A request may use any served version of the API, as with the API server: it is defaulted and checked against
that version's own schema, then converted to the storage version the way the API server converts without a
conversion webhook (`strategy: None`): only `apiVersion` changes, fields the storage version's schema does not
know are pruned (a warning for each: never silently), and the storage version's defaults apply. The pipeline is
handed that object, as Kratix's pipelines read the request at the storage version. A version that is not served
is refused, naming the served ones; so is a request needing a conversion webhook (which a compile cannot call).

`validate_request` never changes its input: it returns the object as stored (without `status`) and every
problem, sorted by path. Type and required-field errors come first in spirit: a CEL rule that cannot even be
evaluated at or under such an error is not reported, the error already says why.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kratix.apiserver import crdtypes
from kratix.model.diagnostics import Severity
from kratix.model.documents import FieldPath
from kratix.schema.defaulting import Node, apply_defaults
from kratix.schema.envelope import ENVELOPE, check_envelope
from kratix.schema.formats import validator
from kratix.schema.rules import CostBudget, blocked_paths, check_rules
from kratix.schema.structure import read_schema
from kratix.schema.violations import Violation, show, sort_violations, violations_of


@dataclass(frozen=True)
class VersionSchema:
    name: str
    served: bool
    openapi: Mapping[str, Any] = field(repr=False, compare=False)  # the version's openAPIV3Schema, decoded
    root: Node = field(repr=False, compare=False)
    validator: Any = field(repr=False, compare=False)  # jsonschema_rs.Draft7Validator
    cel_budget: bool = False  # each CEL evaluation is charged to the API server's runtime limits


@dataclass(frozen=True)
class RequestSchema:
    group: str
    version: str  # the storage version: what the pipeline sees
    kind: str
    plural: str
    versions: Mapping[str, VersionSchema] = field(repr=False, compare=False)
    webhook_conversion: bool = False  # conversion between versions needs a webhook

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def storage(self) -> VersionSchema:
        return self.versions[self.version]

    @property
    def served(self) -> tuple[str, ...]:
        return tuple(name for name, version in self.versions.items() if version.served)

    # The storage version's schema, for editors and other single-version readers.
    @property
    def openapi(self) -> Mapping[str, Any]:
        return self.storage.openapi

    @property
    def root(self) -> Node:
        return self.storage.root


def compile_request_schema(crd: Mapping[str, Any]) -> RequestSchema:
    """Every version's schema; the storage version is the first with `storage: true`, as Kratix picks it. Call only
    when `check_crd` found no errors."""
    decoded = crdtypes.decode(crd).crd or {}
    spec = decoded["spec"]
    versions = {v["name"]: _compile_version(v) for v in spec["versions"]}
    storage = next((v["name"] for v in spec["versions"] if v.get("storage") is True), spec["versions"][0]["name"])
    return RequestSchema(
        group=spec["group"],
        version=storage,
        kind=spec["names"]["kind"],
        plural=spec["names"]["plural"],
        versions=versions,
        webhook_conversion=spec["conversion"]["strategy"] == "Webhook",
    )


def _compile_version(version: Mapping[str, Any]) -> VersionSchema:
    openapi = json.loads(json.dumps(version["schema"]["openAPIV3Schema"], default=str))
    structure = read_schema(openapi)
    json_schema, root = request_root(structure.json_schema, structure.root)
    return VersionSchema(
        name=version["name"],
        served=version.get("served") is True,
        openapi=openapi,
        root=root,
        validator=validator(json_schema),
        cel_budget=structure.cel_budget,
    )


def request_root(json_schema: dict[str, Any], root: Node) -> tuple[dict[str, Any], Node]:
    """The envelope (apiVersion, kind, metadata, status) is checked by hand, not by openAPIV3Schema."""
    properties = {k: v for k, v in json_schema.get("properties", {}).items() if k not in ENVELOPE}
    required = [k for k in json_schema.get("required", []) if k not in ENVELOPE]
    json_schema = {**json_schema, "properties": properties, "required": required}
    nodes = {k: v for k, v in root.properties.items() if k not in ENVELOPE}
    return json_schema, Node(
        properties=nodes,
        additional=root.additional,
        rules=root.rules,
        walk=root.walk,
        preserve_unknown=root.preserve_unknown,
        embedded=True,
    )


def validate_request(schema: RequestSchema, body: Mapping[str, Any]) -> tuple[dict[str, Any], list[Violation]]:
    """The request as the API server stores it (defaulted, at the storage version) and every problem in it,
    sorted by path. `body` is never changed."""
    if not isinstance(body, Mapping):
        return {}, [Violation((), "schema.not-an-object", "a request must be a mapping")]
    version, refused = _version_of(schema, body.get("apiVersion"))
    expected = f"{schema.group}/{version.name}" if version is not None else None
    found = check_envelope(body, api_version=expected, kind=schema.kind)
    if version is None:
        return {}, sort_violations([*found, *refused])
    content = {str(k): v for k, v in body.items() if k not in ENVELOPE}
    result: dict[str, Any] = {
        key: apply_defaults(body[key], None) for key in ("apiVersion", "kind", "metadata") if key in body
    }
    defaulted = apply_defaults(content, version.root)
    result.update(defaulted)
    if not version.validator.is_valid(defaulted):
        for error in version.validator.iter_errors(defaulted):
            found += violations_of(error, version.root)
    if version.root.walk:
        budget = CostBudget() if version.cel_budget else None  # else no request can reach the limits
        found += check_rules(result, version.root, (), blocked_paths(found), budget)
    if version.name != schema.version:
        result, dropped = _convert(result, schema)
        found += dropped
    return result, sort_violations(found)


def _version_of(schema: RequestSchema, api_version: object) -> tuple[VersionSchema | None, list[Violation]]:
    """The served version a request is written at; or why none is."""
    served = ", ".join(f"{schema.group}/{name}" for name in schema.served) or "none"
    group, _, name = api_version.rpartition("/") if isinstance(api_version, str) else ("", "", "")
    version = schema.versions.get(name) if group == schema.group else None
    if version is None or not version.served:
        why = "is not served" if version is not None else "is not a version of this API"
        return None, [Violation(("apiVersion",), "schema.api-version", f"{show(api_version)} {why}; served: {served}")]
    if schema.webhook_conversion and version.name != schema.version:
        return None, [
            Violation(
                ("apiVersion",),
                "schema.api-version",
                f"{show(api_version)} needs the Promise's "
                f"conversion webhook to reach the storage version {schema.api_version}, which a "
                f"compile cannot call: write the request as {schema.api_version}",
            )
        ]
    return version, []


def _convert(stored: dict[str, Any], schema: RequestSchema) -> tuple[dict[str, Any], list[Violation]]:
    """`stored` at the storage version, as the API server converts with no webhook: apiVersion changes, fields
    the storage schema lacks are pruned, its defaults apply."""
    dropped: list[Violation] = []
    content = {k: v for k, v in stored.items() if k not in ENVELOPE}
    pruned = _prune(content, schema.storage.root, (), dropped, schema.api_version)
    converted = {**{k: v for k, v in stored.items() if k in ENVELOPE}, **apply_defaults(pruned, schema.root)}
    converted["apiVersion"] = schema.api_version
    return converted, dropped


def _prune(value: Any, node: Node | None, path: FieldPath, dropped: list[Violation], target: str) -> Any:
    if node is None:
        return value
    if isinstance(value, dict):
        kept: dict[str, Any] = {}
        for key, item in value.items():
            child = node.child(key)
            if child is None and not node.preserve_unknown and not (node.embedded and key in ENVELOPE):
                dropped.append(
                    Violation(
                        (*path, key),
                        "schema.pruned",
                        f"dropped in conversion to {target}: its schema has no such field (the API server prunes it)",
                        Severity.WARNING,
                    )
                )
                continue
            kept[key] = _prune(item, child, (*path, key), dropped, target)
        return kept
    if isinstance(value, list):
        return [_prune(item, node.items, (*path, index), dropped, target) for index, item in enumerate(value)]
    return value
