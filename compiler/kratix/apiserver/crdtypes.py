"""A Promise's `spec.api` decoded as Kratix decodes it: into Go's apiextensions.k8s.io/v1 CustomResourceDefinition.

Kratix reads `spec.api` with Go's `encoding/json` into the v1 types whatever apiVersion and kind it declares,
then creates the CRD through the typed v1 client (which writes apiVersion and kind itself). So:
- a value of the wrong JSON type for its Go field (`served: "yes"`, `required: true`, `maxLength: 1.5`) makes
  the whole API unreadable (Kratix: "api is not a valid CRD"): an error;
- a field the v1 types have no place for (`spec.validation` of v1beta1, `const` in a schema) is dropped before
  the API server sees it: a warning, once per field (per keyword in schemas), never silently;
- a struct field written in another letter case (`Served:`) is matched, as Go matches it: a warning;
- null is the field's zero value (`default: null` is no default);
- v1 defaults follow: `names.singular` is the lowercase kind, `names.listKind` is the kind + "List",
  `conversion` is `{strategy: None}`.

In: `spec.api` as plain data. Out: `Decoded`, the CRD as the API server receives it (plain data, only what the
v1 types hold) and the problems met, each with its path under `spec.api`. Never raises on any input.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kratix.model import names
from kratix.model.diagnostics import Severity
from kratix.model.documents import FieldPath

CRD_API_VERSION = "apiextensions.k8s.io/v1"
CRD_KIND = "CustomResourceDefinition"
_UNREADABLE = "Kratix cannot read spec.api as a CustomResourceDefinition"


@dataclass(frozen=True)
class Problem:
    path: FieldPath  # under spec.api
    code: str
    message: str
    severity: Severity = Severity.ERROR


@dataclass(frozen=True)
class Decoded:
    crd: dict[str, Any] | None  # None when spec.api is not even an object
    problems: tuple[Problem, ...] = ()

    @property
    def readable(self) -> bool:
        return self.crd is not None and not any(p.severity is Severity.ERROR for p in self.problems)


# --- The Go types, as descriptors ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _List:
    item: Any


@dataclass(frozen=True)
class _Map:
    value: Any


@dataclass(frozen=True)
class _Struct:
    name: str
    fields: Mapping[str, Any]


_STRING, _BOOL, _INT64, _INT32, _FLOAT, _RAW, _BYTES = "string", "bool", "int64", "int32", "float", "raw", "bytes"
_SCHEMA, _SCHEMA_OR_BOOL, _SCHEMA_OR_ARRAY, _SCHEMA_OR_STRINGS = "schema", "schema|bool", "schema|array", "schema|[]"

_RULE = _Struct(
    "ValidationRule",
    {
        "rule": _STRING,
        "message": _STRING,
        "messageExpression": _STRING,
        "reason": _STRING,
        "fieldPath": _STRING,
        "optionalOldSelf": _BOOL,
    },
)
SCHEMA_FIELDS: Mapping[str, Any] = {
    "id": _STRING,
    "$schema": _STRING,
    "$ref": _STRING,
    "description": _STRING,
    "type": _STRING,
    "format": _STRING,
    "title": _STRING,
    "default": _RAW,
    "maximum": _FLOAT,
    "exclusiveMaximum": _BOOL,
    "minimum": _FLOAT,
    "exclusiveMinimum": _BOOL,
    "maxLength": _INT64,
    "minLength": _INT64,
    "pattern": _STRING,
    "maxItems": _INT64,
    "minItems": _INT64,
    "uniqueItems": _BOOL,
    "multipleOf": _FLOAT,
    "enum": _List(_RAW),
    "maxProperties": _INT64,
    "minProperties": _INT64,
    "required": _List(_STRING),
    "items": _SCHEMA_OR_ARRAY,
    "allOf": _List(_SCHEMA),
    "oneOf": _List(_SCHEMA),
    "anyOf": _List(_SCHEMA),
    "not": _SCHEMA,
    "properties": _Map(_SCHEMA),
    "additionalProperties": _SCHEMA_OR_BOOL,
    "patternProperties": _Map(_SCHEMA),
    "dependencies": _Map(_SCHEMA_OR_STRINGS),
    "additionalItems": _SCHEMA_OR_BOOL,
    "definitions": _Map(_SCHEMA),
    "externalDocs": _Struct("ExternalDocumentation", {"description": _STRING, "url": _STRING}),
    "example": _RAW,
    "nullable": _BOOL,
    "x-kubernetes-preserve-unknown-fields": _BOOL,
    "x-kubernetes-embedded-resource": _BOOL,
    "x-kubernetes-int-or-string": _BOOL,
    "x-kubernetes-list-map-keys": _List(_STRING),
    "x-kubernetes-list-type": _STRING,
    "x-kubernetes-map-type": _STRING,
    "x-kubernetes-validations": _List(_RULE),
}
_OBJECT_META = _Struct(
    "ObjectMeta",
    {
        "name": _STRING,
        "generateName": _STRING,
        "namespace": _STRING,
        "selfLink": _STRING,
        "uid": _STRING,
        "resourceVersion": _STRING,
        "generation": _INT64,
        "creationTimestamp": _RAW,
        "deletionTimestamp": _RAW,
        "deletionGracePeriodSeconds": _INT64,
        "labels": _Map(_STRING),
        "annotations": _Map(_STRING),
        "ownerReferences": _List(_RAW),
        "finalizers": _List(_STRING),
        "managedFields": _List(_RAW),
    },
)
_SERVICE = _Struct("ServiceReference", {"namespace": _STRING, "name": _STRING, "path": _STRING, "port": _INT32})
_CONVERSION = _Struct(
    "CustomResourceConversion",
    {
        "strategy": _STRING,
        "webhook": _Struct(
            "WebhookConversion",
            {
                "clientConfig": _Struct(
                    "WebhookClientConfig", {"url": _STRING, "service": _SERVICE, "caBundle": _BYTES}
                ),
                "conversionReviewVersions": _List(_STRING),
            },
        ),
    },
)
_COLUMN = _Struct(
    "CustomResourceColumnDefinition",
    {
        "name": _STRING,
        "type": _STRING,
        "format": _STRING,
        "description": _STRING,
        "priority": _INT32,
        "jsonPath": _STRING,
    },
)
_SUBRESOURCES = _Struct(
    "CustomResourceSubresources",
    {
        "status": _Struct("CustomResourceSubresourceStatus", {}),
        "scale": _Struct(
            "CustomResourceSubresourceScale",
            {"specReplicasPath": _STRING, "statusReplicasPath": _STRING, "labelSelectorPath": _STRING},
        ),
    },
)
_VERSION = _Struct(
    "CustomResourceDefinitionVersion",
    {
        "name": _STRING,
        "served": _BOOL,
        "storage": _BOOL,
        "deprecated": _BOOL,
        "deprecationWarning": _STRING,
        "schema": _Struct("CustomResourceValidation", {"openAPIV3Schema": _SCHEMA}),
        "subresources": _SUBRESOURCES,
        "additionalPrinterColumns": _List(_COLUMN),
        "selectableFields": _List(_Struct("SelectableField", {"jsonPath": _STRING})),
    },
)
_NAMES = _Struct(
    "CustomResourceDefinitionNames",
    {
        "plural": _STRING,
        "singular": _STRING,
        "shortNames": _List(_STRING),
        "kind": _STRING,
        "listKind": _STRING,
        "categories": _List(_STRING),
    },
)
_CRD = _Struct(
    "CustomResourceDefinition",
    {
        "apiVersion": _STRING,
        "kind": _STRING,
        "metadata": _OBJECT_META,
        "spec": _Struct(
            "CustomResourceDefinitionSpec",
            {
                "group": _STRING,
                "names": _NAMES,
                "scope": _STRING,
                "versions": _List(_VERSION),
                "conversion": _CONVERSION,
                "preserveUnknownFields": _BOOL,
            },
        ),
        "status": _RAW,
    },
)  # the API server ignores a created CRD's status

_V1BETA1_ONLY = frozenset({"version", "validation", "subresources", "additionalPrinterColumns", "selectableFields"})
_DROP: Any = object()
_GO_TYPES = {
    _STRING: "a string",
    _BOOL: "a boolean",
    _INT64: "an integer",
    _INT32: "a 32-bit integer",
    _FLOAT: "a number",
    _BYTES: "a base64 string",
}


def decode(raw: object) -> Decoded:
    """`spec.api` as Kratix hands it to the API server, and what was wrong or lost on the way."""
    if not isinstance(raw, Mapping):
        return Decoded(None, (Problem((), "crd.not-a-mapping", "must be a CustomResourceDefinition object"),))
    decoder = _Decoder()
    crd = decoder.value(raw, _CRD, ())
    problems = [*decoder.problems, *decoder.ignored_keywords()]
    problems += _type_meta(raw)
    if not isinstance(crd, dict):  # an object decodes to an object: this is only for the type checker
        return Decoded(None, tuple(problems))
    _set_defaults(crd)
    return Decoded(crd, tuple(problems))


def _type_meta(raw: Mapping[str, Any]) -> list[Problem]:
    """spec.api is an embedded resource in a Promise: the API server needs its apiVersion (a group/version) and
    kind (a kind name); Kratix then ignores both."""
    found = []
    for key, expected in (("apiVersion", CRD_API_VERSION), ("kind", CRD_KIND)):
        value = raw.get(key)
        code = "crd.api-version" if key == "apiVersion" else "crd.kind"
        if not isinstance(value, str) or not value:
            found.append(
                Problem(
                    (key,),
                    code,
                    f"required: a non-empty string (the API server refuses a Promise whose spec.api has no {key})",
                )
            )
        elif key == "apiVersion" and value.count("/") > 1:
            found.append(Problem((key,), code, f"{value!r} is not a group/version: the API server refuses the Promise"))
        elif key == "kind" and names.dns1035_label(value.lower()):
            found.append(
                Problem(
                    (key,),
                    code,
                    f"{value!r} is not a kind name (its lowercase form "
                    f"{names.dns1035_label(value.lower())}): the API server refuses the "
                    "Promise",
                )
            )
        elif value != expected:
            found.append(
                Problem(
                    (key,),
                    code,
                    f"{value!r} is read as {expected}: Kratix reads spec.api as an "
                    f"{CRD_API_VERSION} {CRD_KIND} whatever it declares",
                    Severity.WARNING,
                )
            )
    return found


def _set_defaults(crd: dict[str, Any]) -> None:
    """apiextensions.k8s.io/v1's defaulting of a CRD's spec, which runs before the API server validates it."""
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return
    names = spec.get("names")
    if isinstance(names, dict) and names.get("kind"):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    spec.setdefault("conversion", {"strategy": "None"})


class _Decoder:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.keywords: dict[str, list[FieldPath]] = {}  # schema keywords the v1 types have no place for

    def value(self, raw: Any, kind: Any, path: FieldPath) -> Any:
        if raw is None:
            return _DROP
        if isinstance(kind, _Struct):
            return self._struct(raw, kind, path)
        if isinstance(kind, _List):
            if not isinstance(raw, list):
                return self._wrong(path, "a list", raw)
            items = [self.value(item, kind.item, (*path, index)) for index, item in enumerate(raw)]
            return [_zero(kind.item) if item is _DROP else item for item in items]
        if isinstance(kind, _Map):
            if not isinstance(raw, Mapping):
                return self._wrong(path, "a map", raw)
            values = {str(key): self.value(item, kind.value, (*path, str(key))) for key, item in raw.items()}
            return {key: _zero(kind.value) if item is _DROP else item for key, item in values.items()}
        if kind == _SCHEMA:
            return self._schema(raw, path)
        if kind in (_SCHEMA_OR_BOOL, _SCHEMA_OR_ARRAY, _SCHEMA_OR_STRINGS):
            return self._either(raw, kind, path)
        return self._scalar(raw, kind, path)

    def _scalar(self, raw: Any, kind: str, path: FieldPath) -> Any:
        if kind == _RAW:
            return raw
        if kind == _BOOL:
            return raw if isinstance(raw, bool) else self._wrong(path, _GO_TYPES[kind], raw)
        if kind in (_STRING, _BYTES):
            if not isinstance(raw, str):
                return self._wrong(path, _GO_TYPES[kind], raw)
            if kind == _BYTES:
                try:
                    base64.b64decode(raw, validate=True)
                except (binascii.Error, ValueError):
                    return self._wrong(path, _GO_TYPES[kind], raw)
            return raw
        number = raw if isinstance(raw, int | float) and not isinstance(raw, bool) else None
        if number is None or not math.isfinite(number):
            return self._wrong(path, _GO_TYPES[kind], raw)
        if kind == _FLOAT:
            return number
        bound = 2 ** (63 if kind == _INT64 else 31)
        if (isinstance(number, float) and not number.is_integer()) or not -bound <= number < bound:
            return self._wrong(path, _GO_TYPES[kind], raw)
        return int(number)

    def _struct(self, raw: Any, kind: _Struct, path: FieldPath, *, schema: bool = False) -> Any:
        if not isinstance(raw, Mapping):
            return self._wrong(path, "an object", raw)
        out: dict[str, Any] = {}
        folded = {name.lower(): name for name in kind.fields}
        for key, item in raw.items():
            name = key if key in kind.fields else folded.get(str(key).lower())
            if name is None:
                self._ignored(str(key), (*path, str(key)), kind, schema=schema)
                continue
            if name != key:
                if name in raw:
                    continue  # Go keeps the exact match, whichever comes first
                self.problems.append(
                    Problem(
                        (*path, str(key)),
                        "crd.field-case",
                        f"read as {name!r}: Go matches field names in any letter case, and so does Kratix",
                        Severity.WARNING,
                    )
                )
            decoded = self.value(item, kind.fields[name], (*path, str(key)))
            if decoded is not _DROP:
                out[name] = decoded
        return out

    def _schema(self, raw: Any, path: FieldPath) -> Any:
        return self._struct(raw, _Struct("JSONSchemaProps", SCHEMA_FIELDS), path, schema=True)

    def _either(self, raw: Any, kind: str, path: FieldPath) -> Any:
        if isinstance(raw, Mapping):
            return self._schema(raw, path)
        if kind == _SCHEMA_OR_BOOL:
            return raw if isinstance(raw, bool) else self._wrong(path, "a boolean or a schema", raw)
        if isinstance(raw, list):
            return self.value(raw, _List(_SCHEMA if kind == _SCHEMA_OR_ARRAY else _STRING), path)
        # Go leaves `items: string` (or a dependency that is neither) empty, without an error.
        self.problems.append(
            Problem(
                path, "crd.ignored", "ignored: must be a schema (or a list of them); Kratix drops it", Severity.WARNING
            )
        )
        return _DROP

    def _ignored(self, key: str, path: FieldPath, kind: _Struct, *, schema: bool) -> None:
        if schema:
            self.keywords.setdefault(key, []).append(path)
            return
        v1beta1 = kind.name == "CustomResourceDefinitionSpec" and key in _V1BETA1_ONLY
        why = (
            (
                "a field of apiextensions.k8s.io/v1beta1 that v1 moved or removed (spec.versions[*] holds "
                "schema, subresources and printer columns)"
            )
            if v1beta1
            else f"not a field of {kind.name}"
        )
        self.problems.append(
            Problem(
                path, "crd.ignored", f"ignored: {why}; Kratix drops it before the API server sees it", Severity.WARNING
            )
        )

    def ignored_keywords(self) -> list[Problem]:
        found = []
        for key, paths in sorted(self.keywords.items()):
            more = f" (and {len(paths) - 1} more place(s))" if len(paths) > 1 else ""
            found.append(
                Problem(
                    paths[0],
                    "crd.ignored",
                    f"ignored: {key!r} is not a keyword of a CRD schema"
                    f"{more}; Kratix drops it before the API server sees it",
                    Severity.WARNING,
                )
            )
        return found

    def _wrong(self, path: FieldPath, expected: str, raw: Any) -> Any:
        self.problems.append(
            Problem(path, "crd.unreadable", f"must be {expected}, not {_json_type(raw)}: {_UNREADABLE}")
        )
        return _DROP


def _zero(kind: Any) -> Any:
    """Go's zero value, for a null inside a list or map."""
    if isinstance(kind, _Struct) or kind in (_SCHEMA, _SCHEMA_OR_BOOL, _SCHEMA_OR_ARRAY, _SCHEMA_OR_STRINGS):
        return {}
    return {_STRING: "", _BYTES: "", _BOOL: False, _INT64: 0, _INT32: 0, _FLOAT: 0, _RAW: None}.get(kind)


def _json_type(value: Any) -> str:
    for kind, name in (
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a number"),
        (str, "a string"),
        (list, "a list"),
        (Mapping, "an object"),
    ):
        if isinstance(value, kind):
            return name
    return type(value).__name__
