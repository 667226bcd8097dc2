"""A CRD's versions as the API server checks them on create, and what Kratix changes in them before it does.

In: the decoded `spec` of a Promise's API (`kratix.apiserver.crdtypes`). Out: violations under `spec.versions`.
Refused, as apiextensions refuses it: a version name that is not a DNS-1035 label, or used twice; anything but
exactly one storage version; a version without `schema.openAPIV3Schema`; a schema `kratix.schema.structure`
refuses; a default invalid against its own schema (its CEL rules included); printer columns and selectable
fields the API server refuses; `deprecationWarning` on a version that is not deprecated, empty, longer than 256
characters or not printable.
Kratix enables the status subresource on every version (and replaces `subresources` with it), so the root of
every schema may only use the fields the API server allows there when status is a subresource; a scale
subresource is dropped (a warning). A CRD no version of which is served is valid, but serves no request (a
warning); with conversion by webhook, requests on other versions than the storage one cannot be converted here
(a warning; such requests fail).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema_rs

from kratix.model import names
from kratix.model.diagnostics import Severity
from kratix.model.documents import FieldPath
from kratix.schema.formats import validator
from kratix.schema.keywords import resolve_field_path
from kratix.schema.rules import check_rules
from kratix.schema.structure import Default, read_schema
from kratix.schema.violations import Violation, format_path, show, violations_of

_STATUS_ROOT = (
    "description",
    "type",
    "format",
    "title",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "required",
    "items",
    "properties",
    "externalDocs",
    "example",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-validations",
)
_COLUMN_TYPES = ("boolean", "date", "integer", "number", "string")
_COLUMN_FORMATS = ("byte", "date", "date-time", "double", "float", "int32", "int64", "password")
_MAX_SELECTABLE = 8


def check_versions(spec: Mapping[str, Any]) -> list[Violation]:
    path: FieldPath = ("spec", "versions")
    versions = spec.get("versions") or []
    found: list[Violation] = []
    for index, version in enumerate(versions):
        found += _check_version(version, (*path, index), versions[:index])
    storage = sum(1 for version in versions if version.get("storage") is True)
    if storage != 1:
        found.append(
            Violation(
                path,
                "crd.storage-version",
                f"must have exactly one version marked as storage version (found {storage})",
            )
        )
    if versions and not any(version.get("served") is True for version in versions):
        found.append(
            Violation(
                path,
                "crd.no-served-version",
                "no version has served: true: the API accepts no request",
                Severity.WARNING,
            )
        )
    served = [v for v in versions if v.get("served") is True and v.get("storage") is not True]
    if (spec.get("conversion") or {}).get("strategy") == "Webhook" and served:
        found.append(
            Violation(
                ("spec", "conversion", "strategy"),
                "crd.conversion-webhook",
                f"requests on {', '.join(v.get('name', '') for v in served)} need the conversion "
                "webhook, which a compile cannot call: such requests fail (write them at the "
                "storage version)",
                Severity.WARNING,
            )
        )
    return found


def _check_version(version: Mapping[str, Any], path: FieldPath, before: list[Any]) -> list[Violation]:
    found: list[Violation] = []
    name = version.get("name", "")
    problem = names.dns1035_label(name) if name else "Required value"
    if problem:
        found.append(Violation((*path, "name"), "crd.version", problem))
    elif any(other.get("name") == name for other in before):
        found.append(
            Violation((*path, "name"), "crd.version", f"must contain unique version names ({name!r} is used twice)")
        )
    found += _check_deprecation(version, path)
    raw = (version.get("schema") or {}).get("openAPIV3Schema")
    schema_path = (*path, "schema", "openAPIV3Schema")
    if raw is None:
        found.append(Violation(schema_path, "crd.schema", "Required value: each version needs one"))
    else:
        found += _check_schema(raw, schema_path)
    if "scale" in (version.get("subresources") or {}):
        found.append(
            Violation(
                (*path, "subresources", "scale"),
                "crd.subresources",
                "ignored: Kratix replaces a version's subresources with the status subresource alone",
                Severity.WARNING,
            )
        )
    for index, column in enumerate(version.get("additionalPrinterColumns") or ()):
        found += _check_column(column, (*path, "additionalPrinterColumns", index))
    found += _check_selectable_fields(version.get("selectableFields") or [], raw or {}, (*path, "selectableFields"))
    return found


def _check_deprecation(version: Mapping[str, Any], path: FieldPath) -> list[Violation]:
    warning = version.get("deprecationWarning")
    if warning is None:
        return []
    where = (*path, "deprecationWarning")
    if version.get("deprecated") is not True:
        return [Violation(where, "crd.version", "can only be set for deprecated versions")]
    if not warning or len(warning) > 256 or not warning.isprintable():
        return [Violation(where, "crd.version", "must be a non-empty string of at most 256 printable characters")]
    return []


def _check_schema(raw: Mapping[str, Any], path: FieldPath) -> list[Violation]:
    structure = read_schema(raw, prefix=path)
    found = list(structure.problems)
    extra = [key for key in raw if key not in _STATUS_ROOT and raw[key] not in (False, "", None)]
    if extra:
        found.append(
            Violation(
                path,
                "crd.status-subresource",
                f"{', '.join(extra)}: only "
                f"{', '.join(_STATUS_ROOT)} are allowed at the root of the schema if the status "
                "subresource is enabled, and Kratix enables it on every version",
            )
        )
    if any(problem.code == "crd.pattern" for problem in found):
        return found  # the validator would refuse the same pattern again, less clearly
    try:
        validator(structure.json_schema)
    except (ValueError, jsonschema_rs.ValidationError) as error:
        found.append(Violation(path, "crd.schema", f"not a valid schema: {str(error).splitlines()[0]}"))
        return found
    if not any(problem.severity is Severity.ERROR for problem in found):  # as the API server: once it is sound
        found += _check_defaults(structure.defaults)
    return found


def _check_defaults(defaults: Iterable[Default]) -> list[Violation]:
    """The API server refuses a default that is invalid against its own schema, as written (defaults inside a
    default are not applied first), CEL rules included."""
    found: list[Violation] = []
    for default in defaults:
        errors = list(validator(default.json_schema).iter_errors(default.value))
        for error in errors:
            found += [
                Violation(default.path, "crd.default", f"invalid default: {format_path(v.path)}{v.message}")
                for v in violations_of(error, default.node)
            ]
        if not errors and default.node.walk:
            found += [
                Violation(default.path, "crd.default", f"invalid default: {format_path(v.path)}{v.message}")
                for v in check_rules(default.value, default.node, (), frozenset())
            ]
    return found


def _check_column(column: Mapping[str, Any], path: FieldPath) -> list[Violation]:
    found = []
    if not column.get("name"):
        found.append(Violation((*path, "name"), "crd.columns", "Required value"))
    if column.get("type") not in _COLUMN_TYPES:
        found.append(
            Violation(
                (*path, "type"),
                "crd.columns",
                f"must be one of {', '.join(_COLUMN_TYPES)} (got {show(column.get('type'))})",
            )
        )
    if column.get("format") and column["format"] not in _COLUMN_FORMATS:
        found.append(Violation((*path, "format"), "crd.columns", f"must be one of {', '.join(_COLUMN_FORMATS)}"))
    json_path = column.get("jsonPath", "")
    if not json_path:
        found.append(Violation((*path, "jsonPath"), "crd.columns", "Required value"))
    elif not json_path.startswith("."):
        found.append(Violation((*path, "jsonPath"), "crd.columns", "must be a simple json path starting with ."))
    return found


def _check_selectable_fields(
    fields: list[Mapping[str, Any]], schema: Mapping[str, Any], path: FieldPath
) -> list[Violation]:
    found = []
    seen: set[str] = set()
    for index, entry in enumerate(fields):
        where = (*path, index, "jsonPath")
        json_path = entry.get("jsonPath", "")
        target = resolve_field_path(schema, json_path, arrays=False) if json_path else None
        if not json_path:
            found.append(Violation(where, "crd.selectable-fields", "Required value"))
        elif target is None:
            found.append(Violation(where, "crd.selectable-fields", f"{json_path!r} is an invalid path"))
        elif json_path.lstrip(".").split(".")[0] == "metadata":
            found.append(Violation(where, "crd.selectable-fields", "must not point to fields in metadata"))
        elif target.get("type") not in ("string", "boolean", "integer"):
            found.append(
                Violation(where, "crd.selectable-fields", "must point to a field of type string, boolean or integer")
            )
        elif json_path in seen:
            found.append(Violation(where, "crd.selectable-fields", f"Duplicate value: {json_path!r}"))
        seen.add(json_path)
    if len(seen) > _MAX_SELECTABLE:
        found.append(Violation(path, "crd.selectable-fields", f"must have at most {_MAX_SELECTABLE} items"))
    return found
