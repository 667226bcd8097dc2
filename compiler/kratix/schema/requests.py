"""Requests: a CRD compiled once per Promise into a `RequestSchema`, then each request defaulted and checked.

`validate_request` never changes its input: it returns a defaulted copy (without `status`) and every problem,
sorted by path. Type and required-field errors come first in spirit: a CEL rule that cannot even be evaluated
at or under such an error is not reported, the error already says why.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kratix import crdtypes
from kratix.schema.defaulting import Node, apply_defaults
from kratix.schema.envelope import ENVELOPE, check_envelope
from kratix.schema.formats import validator
from kratix.schema.rules import CostBudget, blocked_paths, check_rules
from kratix.schema.structure import read_schema
from kratix.schema.violations import Violation, sort_violations, violations_of


@dataclass(frozen=True)
class RequestSchema:
    group: str
    version: str
    kind: str
    plural: str
    openapi: Mapping[str, Any] = field(repr=False, compare=False)  # the version's openAPIV3Schema, a copy
    root: Node = field(repr=False, compare=False)
    validator: Any = field(repr=False, compare=False)  # jsonschema_rs.Draft7Validator
    cel_budget: bool = False  # each CEL evaluation is charged to the API server's runtime limits

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


def compile_request_schema(crd: Mapping[str, Any]) -> RequestSchema:
    """The storage version's schema (else the first served), as Kratix decodes it (`kratix.crdtypes`). Call only
    when `check_crd` found no errors."""
    spec = (crdtypes.decode(crd).crd or {})["spec"]
    versions = spec["versions"]
    version = next((v for v in versions if v.get("storage") is True), None) or next(
        (v for v in versions if v.get("served") is True), versions[0])
    openapi = json.loads(json.dumps(version["schema"]["openAPIV3Schema"], default=str))
    structure = read_schema(openapi)
    json_schema, root = request_root(structure.json_schema, structure.root)
    return RequestSchema(group=spec["group"], version=version["name"], kind=spec["names"]["kind"],
                         plural=spec["names"]["plural"], openapi=openapi, root=root,
                         validator=validator(json_schema), cel_budget=structure.cel_budget)


def request_root(json_schema: dict[str, Any], root: Node) -> tuple[dict[str, Any], Node]:
    """The envelope (apiVersion, kind, metadata, status) is checked by hand, not by openAPIV3Schema."""
    properties = {k: v for k, v in json_schema.get("properties", {}).items() if k not in ENVELOPE}
    required = [k for k in json_schema.get("required", []) if k not in ENVELOPE]
    json_schema = {**json_schema, "properties": properties, "required": required}
    nodes = {k: v for k, v in root.properties.items() if k not in ENVELOPE}
    return json_schema, Node(properties=nodes, additional=root.additional, rules=root.rules, walk=root.walk)


def validate_request(schema: RequestSchema,
                     body: Mapping[str, Any]) -> tuple[dict[str, Any], list[Violation]]:
    """A defaulted copy of `body` and every problem in it, sorted by path. `body` is never changed."""
    if not isinstance(body, Mapping):
        return {}, [Violation((), "schema.not-an-object", "a request must be a mapping")]
    found = check_envelope(body, api_version=schema.api_version, kind=schema.kind)
    content = {str(k): v for k, v in body.items() if k not in ENVELOPE}
    result: dict[str, Any] = {key: apply_defaults(body[key], None) for key in ("apiVersion", "kind", "metadata")
                              if key in body}
    defaulted = apply_defaults(content, schema.root)
    result.update(defaulted)
    if not schema.validator.is_valid(defaulted):
        for error in schema.validator.iter_errors(defaulted):
            found += violations_of(error, schema.root)
    if schema.root.walk:
        budget = CostBudget() if schema.cel_budget else None  # else no request can reach the limits
        found += check_rules(result, schema.root, (), blocked_paths(found), budget)
    return result, sort_violations(found)
