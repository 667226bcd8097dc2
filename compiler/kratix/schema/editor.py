"""A draft-07 JSON Schema for a whole request file, e.g. for yaml-language-server's `$schema=` comment.

CEL rules, list-map keys and null handling cannot be expressed there and are left out; formats are kept only
where an editor reads them the way Kubernetes does (`duration` would mean ISO 8601 to it).
"""

from __future__ import annotations

from typing import Any

from kratix.schema.envelope import DNS_LABEL
from kratix.schema.requests import RequestSchema, request_root
from kratix.schema.structure import read_schema

DRAFT = "http://json-schema.org/draft-07/schema#"


def editor_json_schema(schema: RequestSchema) -> dict[str, Any]:
    structure = read_schema(schema.openapi, editor=True)
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
