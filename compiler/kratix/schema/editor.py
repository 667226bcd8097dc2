"""A draft-07 JSON Schema for a whole request file, e.g. for yaml-language-server's `$schema=` comment, covering
every served version of the API.

CEL rules, list-map keys and null handling cannot be expressed there and are left out; formats are kept only
where an editor reads them the way Kubernetes does (`duration` would mean ISO 8601 to it).
"""

from __future__ import annotations

from typing import Any

from kratix.schema.envelope import DNS_LABEL
from kratix.schema.requests import RequestSchema, VersionSchema, request_root
from kratix.schema.structure import read_schema

DRAFT = "http://json-schema.org/draft-07/schema#"


def editor_json_schema(schema: RequestSchema) -> dict[str, Any]:
    """One served version: its document schema. Several: each version's schema applies to the requests written
    at that version (`if apiVersion is ... then ...`)."""
    served = [schema.versions[name] for name in schema.served] or [schema.storage]
    documents = {f"{schema.group}/{version.name}": _document(schema, version) for version in served}
    title = {"$schema": DRAFT, "title": f"{schema.kind} ({', '.join(documents)})"}
    if len(documents) == 1:
        return {**next(iter(documents.values())), **title}
    return {
        **title,
        "type": "object",
        "required": ["apiVersion", "kind", "metadata"],
        "properties": {"apiVersion": {"enum": list(documents)}, "kind": {"const": schema.kind}},
        "allOf": [
            {"if": {"properties": {"apiVersion": {"const": api_version}}, "required": ["apiVersion"]}, "then": document}
            for api_version, document in documents.items()
        ],
    }


def _document(schema: RequestSchema, version: VersionSchema) -> dict[str, Any]:
    structure = read_schema(version.openapi, editor=True)
    body, _ = request_root(structure.json_schema, structure.root)
    label = {"type": "string", "maxLength": 63, "pattern": DNS_LABEL.pattern}
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
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", *body.get("required", [])],
        "properties": {
            "apiVersion": {"const": f"{schema.group}/{version.name}"},
            "kind": {"const": schema.kind},
            "metadata": metadata,
            **body.get("properties", {}),
        },
    }
