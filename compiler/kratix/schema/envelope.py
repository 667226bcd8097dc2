"""A request's envelope (apiVersion, kind, metadata, status): checked here by hand, never against the CRD's
`openAPIV3Schema`, with the API server's rules for names, namespaces, labels and annotations."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kratix.model import names
from kratix.model.diagnostics import Severity
from kratix.model.documents import FieldPath
from kratix.schema.violations import Violation, show, type_name

ENVELOPE = ("apiVersion", "kind", "metadata", "status")
DNS_LABEL = re.compile(names.DNS_LABEL_PATTERN)


def check_envelope(body: Mapping[str, Any], *, api_version: str | None, kind: str) -> list[Violation]:
    """`api_version`: the one the request must have (None: the caller checks it)."""
    found: list[Violation] = []
    for key, expected, code in (("apiVersion", api_version, "schema.api-version"), ("kind", kind, "schema.kind")):
        if expected is not None and body.get(key) != expected:
            found.append(Violation((key,), code, f"must be {expected} (got {show(body.get(key))})"))
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
        found.append(
            Violation(
                ("status",),
                "schema.status-ignored",
                "ignored: status is written by pipelines, not by a request",
                Severity.WARNING,
            )
        )
    return found


def _check_dns_label(value: object, path: FieldPath, code: str) -> list[Violation]:
    problem = names.dns_label(value)
    return [Violation(path, code, problem)] if problem else []


def _check_string_map(value: object, path: FieldPath, *, labels: bool) -> list[Violation]:
    if value is None:
        return []
    code = "schema.labels" if labels else "schema.annotations"
    if not isinstance(value, Mapping):
        return [Violation(path, code, f"must be a map of strings (got {type_name(value)})")]
    found = []
    for key, item in value.items():
        problem = names.qualified_name(key)
        if problem is None:
            problem = (
                names.label_value(item)
                if labels
                else (None if isinstance(item, str) else f"must be a string (got {type_name(item)}): quote it")
            )
        if problem is not None:
            found.append(Violation((*path, str(key)), code, problem))
    return found
