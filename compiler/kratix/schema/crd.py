"""What the API server would refuse in a Promise's request API (`spec.api`, a whole CRD), plus what this
compiler cannot evaluate (notes and warnings, e.g. CEL rules it skips)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema_rs

from kratix import names
from kratix.diagnostics import Severity
from kratix.documents import FieldPath
from kratix.schema.defaulting import apply_defaults
from kratix.schema.formats import validator
from kratix.schema.structure import Default, read_schema
from kratix.schema.violations import Violation, format_path, show, sort_violations, violations_of

CRD_API_VERSION = "apiextensions.k8s.io/v1"


def check_crd(crd: object) -> list[Violation]:
    if not isinstance(crd, Mapping):
        return [Violation((), "crd.not-a-mapping", "must be a CustomResourceDefinition object")]
    found: list[Violation] = []
    for key, expected, code in (("apiVersion", CRD_API_VERSION, "crd.api-version"),
                                ("kind", "CustomResourceDefinition", "crd.kind")):
        if crd.get(key) != expected:
            found.append(Violation((key,), code, f"must be {expected} (got {show(crd.get(key))})"))
    spec = crd.get("spec")
    if not isinstance(spec, Mapping):
        return sort_violations([*found, Violation(("spec",), "crd.spec", "must be an object")])
    found += _check_names(crd, spec)
    if spec.get("scope") != "Namespaced":
        scope = show(spec.get("scope"))
        found.append(Violation(("spec", "scope"), "crd.not-namespaced",
                               f"must be Namespaced (got {scope}): requests live in a namespace"))
    found += _check_versions(spec.get("versions"))
    return sort_violations(found)


def _check_names(crd: Mapping[str, Any], spec: Mapping[str, Any]) -> list[Violation]:
    found: list[Violation] = []
    group = spec.get("group")
    if not isinstance(group, str) or "." not in group or names.dns_subdomain(group):
        found.append(Violation(("spec", "group"), "crd.group",
                               f"must be a DNS subdomain with at least one dot (got {show(group)})"))
    declared = spec.get("names")
    declared = declared if isinstance(declared, Mapping) else {}
    kind, plural = declared.get("kind"), declared.get("plural")
    if not isinstance(kind, str) or not re.match(r"^[A-Za-z][A-Za-z0-9]*$", kind):
        found.append(Violation(("spec", "names", "kind"), "crd.names",
                               f"must be a kind name (got {show(kind)})"))
    if not isinstance(plural, str) or names.dns_label(plural):
        found.append(Violation(("spec", "names", "plural"), "crd.names",
                               f"must be a lowercase DNS label (got {show(plural)})"))
    elif isinstance(group, str):
        name = (crd.get("metadata") or {}).get("name") if isinstance(crd.get("metadata"), Mapping) else None
        if name != f"{plural}.{group}":
            found.append(Violation(("metadata", "name"), "crd.name",
                                   f"must be {plural}.{group} (got {show(name)})"))
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
    structure = read_schema(raw, prefix=path)
    found = list(structure.problems)
    if raw.get("type") != "object":
        found.append(Violation((*path, "type"), "crd.schema", "the root schema must have type: object"))
    if any(problem.code == "crd.pattern" for problem in found):
        return found  # the validator would refuse the same pattern again, less clearly
    try:
        validator(structure.json_schema)
    except (ValueError, jsonschema_rs.ValidationError) as error:
        found.append(Violation(path, "crd.schema", f"not a valid schema: {str(error).splitlines()[0]}"))
        return found
    found += _check_defaults(structure.defaults)
    return found


def _check_defaults(defaults: Iterable[Default]) -> list[Violation]:
    """The API server refuses a default that is invalid against its own schema (after nested defaults)."""
    found: list[Violation] = []
    for default in defaults:
        defaulted = apply_defaults(default.value, default.node)
        for error in validator(default.json_schema).iter_errors(defaulted):
            found += [Violation(default.path, "crd.default", f"invalid default: {format_path(v.path)}{v.message}")
                      for v in violations_of(error, default.node)]
    return found
