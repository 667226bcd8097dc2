"""The shapes of the platform's own documents: Promise, Destination, GitStateStore and the Pipelines inside a
Promise.

In: one document's body (after seed-era fields were upgraded). Out: `(path, message)` for every field of the
wrong shape, the way `kubectl apply --validate=strict` and Kratix's own decoding would refuse it: an unknown field
in a Promise's or Destination's spec (a typo such as `destinationSelector` would otherwise be ignored), a list
written as a mapping (`destinationSelectors: {matchLabels: ...}`), a label value that is not a string, a
container `command` that is not a list. Pipelines keep unknown fields (Kratix decodes them leniently, and our
own `template`, `network` and `legacyPaths` live there), but the fields it knows must have their types.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jsonschema_rs

from kratix.model.documents import FieldPath
from kratix.model.platform import API_VERSION

_STRING = {"type": "string"}
_STRINGS = {"type": "array", "items": _STRING}
_STRING_MAP = {"type": "object", "additionalProperties": _STRING}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": _STRING, "labels": _STRING_MAP, "annotations": _STRING_MAP},
}
_TRIGGERS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "configure": {"type": "array", "items": {"type": "object"}},
        "delete": {"type": "array", "items": {"type": "object"}},
    },
}
# A Kubernetes object, as far as a compiler must know it to place it: what it is and what it is called.
_OBJECT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata"],
    "properties": {
        "apiVersion": {"type": "string", "minLength": 1},
        "kind": {"type": "string", "minLength": 1},
        "metadata": {"type": "object", "required": ["name"], "properties": {"name": _STRING}},
    },
}
_SELECTOR = {"type": "object", "additionalProperties": False, "properties": {"matchLabels": _STRING_MAP}}

PROMISE: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata"],
    "properties": {
        "apiVersion": {"const": API_VERSION},
        "kind": {"const": "Promise"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "api": {"type": "object"},
                "dependencies": {"type": "array", "items": _OBJECT},
                "destinationSelectors": {"type": "array", "items": _SELECTOR},
                "requiredPromises": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name"],
                        "properties": {"name": _STRING, "version": _STRING},
                    },
                },
                "workflows": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "config": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"pipelineNamespace": _STRING, "reconciliationInterval": _STRING},
                        },
                        "resource": _TRIGGERS,
                        "promise": _TRIGGERS,
                    },
                },
            },
        },
        "status": {"type": "object"},
    },
}

DESTINATION: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata"],
    "properties": {
        "apiVersion": {"const": API_VERSION},
        "kind": {"const": "Destination"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "path": _STRING,
                "stateStoreRef": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["kind", "name"],
                    "properties": {"kind": {"enum": ["GitStateStore", "BucketStateStore"]}, "name": _STRING},
                },
                "strictMatchLabels": {"type": "boolean"},
                "filepath": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "mode": {"enum": ["nestedByMetadata", "aggregatedYAML", "none"]},
                        "filename": _STRING,
                    },
                },
                "cleanup": {"enum": ["none", "all"]},
                "initWorkloads": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"enabled": {"type": "boolean"}},
                },
            },
        },
        "status": {"type": "object"},
    },
}

# Kratix's GitStateStore (api/v1alpha1/gitstatestore_types.go): the fields it defines, with their types.
GIT_STATE_STORE: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": API_VERSION},
        "kind": {"const": "GitStateStore"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["url"],
            "properties": {
                "url": {"type": "string", "minLength": 1},
                "branch": _STRING,
                "path": _STRING,
                "secretRef": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"name": _STRING, "namespace": _STRING},
                },
                "authMethod": {"enum": ["basicAuth", "ssh", "githubApp"]},
                "gitAuthor": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"name": _STRING, "email": _STRING},
                },
            },
        },
        "status": {"type": "object"},
    },
}

_ENV_VAR = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": _STRING, "value": _STRING, "valueFrom": {"type": "object"}},
}
PIPELINE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": _STRING,
        "kind": _STRING,
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "properties": {
                "containers": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": _STRING,
                            "image": _STRING,
                            "template": _STRING,
                            "command": _STRINGS,
                            "args": _STRINGS,
                            "env": {"type": "array", "items": _ENV_VAR},
                            "envFrom": {"type": "array", "items": {"type": "object"}},
                            "volumeMounts": {"type": "array", "items": {"type": "object"}},
                            "network": {"type": "boolean"},
                            "legacyPaths": {"type": "boolean"},
                        },
                    },
                },
                "volumes": {"type": "array", "items": {"type": "object"}},
            },
        },
    },
}

_VALIDATORS = {
    id(schema): jsonschema_rs.Draft7Validator(schema) for schema in (PROMISE, DESTINATION, GIT_STATE_STORE, PIPELINE)
}


def problems(schema: Mapping[str, Any], body: Any) -> list[tuple[FieldPath, str]]:
    """Every field of `body` whose shape `schema` refuses, as (path, message), in document order."""
    found: list[tuple[FieldPath, str]] = []
    for error in _VALIDATORS[id(schema)].iter_errors(body):
        path: FieldPath = tuple(error.instance_path)
        kind = error.kind
        if isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
            found += [((*path, name), f'unknown field "{name}"') for name in kind.unexpected]
        elif isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
            found.append(((*path, kind.property), "required field missing"))
        elif isinstance(kind, jsonschema_rs.ValidationErrorKind.Type):
            wanted = " or ".join(
                "a list" if t == "array" else "a mapping" if t == "object" else f"a {t}" for t in kind.types
            )
            found.append((path, f"must be {wanted}, not {_kind_of(error.instance)}"))
        elif isinstance(kind, jsonschema_rs.ValidationErrorKind.Constant):
            found.append((path, f"must be {kind.expected_value} (got {_shown(error.instance)})"))
        elif isinstance(kind, jsonschema_rs.ValidationErrorKind.Enum):
            found.append((path, f"must be one of {', '.join(map(str, kind.options))} (got {_shown(error.instance)})"))
        else:
            found.append((path, error.message))
    return found


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return f"a string ({_shown(value)})"
    if value is None:
        return "null"
    return "a list" if isinstance(value, list) else "a mapping"


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."
