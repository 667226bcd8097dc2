"""Output conformance: every object the compiler emits, checked before it is published.

In: the objects bound for one destination, the CustomResourceDefinitions delivered to it, and (optionally) the
serialized size of each object. Out: a `ConformanceReport` of `ObjectProblem`s by object index, plus how many
objects were checked against a schema and which custom kinds could not be (no CRD delivered: not an error).

Built-in kinds are checked against the Kubernetes OpenAPI schemas shipped offline by `kubernetes-validate`,
in their "strict" variant (`additionalProperties: false` on every object), which is what `kubectl apply
--validate=strict` enforces, for one chosen release (`--kubernetes-version`; the newest shipped by default).
An object refused there that a newer shipped release accepts (a field or an API added later) says which
release to choose; an API an older release served says when it went. An object of a Kubernetes API group
(`*.k8s.io`) the chosen release lacks, with no CRD delivered for it, is refused the same way.
Custom kinds are checked against the delivered CRD's `openAPIV3Schema`, read the way a strict apiserver
does (unknown fields rejected unless `x-kubernetes-preserve-unknown-fields`; null fields and defaulted
required fields accepted, since the apiserver drops or fills them first). CEL rules
(`x-kubernetes-validations`) and formats are not checked here. Every object also gets shape, name and size
checks; sizes are compact JSON unless the caller passes its own (the annotation and etcd hold JSON, not YAML).

Schemas are compiled with `jsonschema_rs`, one validator per kind, on first use, cached on the `Conformance`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import util
from pathlib import Path
from typing import Any

import jsonschema_rs

from kratix.apiserver import openapi
from kratix.model import limits, names
from kratix.model.documents import FieldPath
from kratix.model.errors import KratixError

APPLY_LIMIT = 256 * 1024  # client-side apply keeps the whole object in an annotation; annotations max 256 KiB
ETCD_LIMIT = 1536 * 1024  # etcd refuses requests over 1.5 MiB

_DEFINITIONS_ID = "https://kubernetes.io/api/_definitions.json"
_DRAFT = "https://json-schema.org/draft/2020-12/schema"
_LOCAL_PREFIX = "#/$defs/"  # a reference inside the definitions document
_DEFS_PREFIX = f"{_DEFINITIONS_ID}{_LOCAL_PREFIX}"  # a reference to it from a schema of ours
_OBJECT_META = f"{_DEFS_PREFIX}io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_SCHEMA_DIR = re.compile(r"^v(\d+)\.(\d+)\.\d+-local-strict$")


@dataclass(frozen=True)
class ObjectProblem:
    path: FieldPath  # field path inside the object, e.g. ("spec", "replicas")
    code: str  # "k8s.schema", "k8s.unknown-field", "object.too-large", ...
    message: str


@dataclass(frozen=True)
class ConformanceReport:
    problems: Mapping[int, tuple[ObjectProblem, ...]]  # by index into the objects passed; only those with any
    validated: int  # objects checked against a built-in schema or a delivered CRD
    not_validated: int  # custom kinds with no CRD delivered
    not_validated_kinds: tuple[str, ...]  # "group/version Kind", sorted, each once

    @property
    def ok(self) -> bool:
        return not self.problems


# --- Kubernetes versions ----------------------------------------------------------------------------------


def shipped_versions() -> tuple[str, ...]:
    """The Kubernetes minor versions whose schemas `kubernetes-validate` ships, oldest first ("1.25", ...)."""
    found = [_SCHEMA_DIR.match(entry.name) for entry in _schema_root().iterdir()]
    pairs = sorted((int(m[1]), int(m[2])) for m in found if m)
    return tuple(f"{major}.{minor}" for major, minor in pairs)


def select_version(requested: str | None, shipped: Sequence[str]) -> str:
    """The shipped minor version `requested` names ("1.30", "v1.30" and "1.30.4" all mean 1.30); None: the
    newest shipped. A release whose schemas are not shipped is refused, never replaced by another."""
    listing = ", ".join(shipped)
    if not shipped:
        raise KratixError("the kubernetes-validate package ships no Kubernetes schemas")
    if requested is None:
        return shipped[-1]
    match = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.\d+)?", requested.strip())
    if not match:
        raise KratixError(f"Kubernetes version {requested!r} is not like {shipped[-1]}; schemas ship for {listing}")
    wanted = f"{int(match[1])}.{int(match[2])}"
    if wanted not in shipped:
        newer = " (a newer kubernetes-validate may ship it)" if _minor_key(wanted) > _minor_key(shipped[-1]) else ""
        raise KratixError(f"no Kubernetes {wanted} schemas are installed{newer}; schemas ship for {listing}")
    return wanted


def chosen_version(requested: str | None) -> str:
    """The release `requested` resolves to here (None: the newest the installed package ships)."""
    return select_version(requested, shipped_versions())


def _minor_key(version: str) -> tuple[int, int]:
    major, minor = version.split(".")
    return int(major), int(minor)


def _schema_root() -> Path:
    # Located, not imported: importing kubernetes_validate pulls in jsonschema and more (~60 ms) for nothing.
    spec = util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise KratixError("the kubernetes-validate package (Kubernetes schemas) is not installed")
    return Path(next(iter(spec.submodule_search_locations)), "kubernetes-json-schema")


def _load_definitions(version: str) -> dict[str, Any]:
    path = _schema_root().joinpath(f"v{version}.0-local-strict", "_definitions.json")
    document: dict[str, Any] = json.loads(path.read_bytes())
    # IntOrString and Quantity are `oneOf` two nullable types: `null` (an unset field) matches both and fails.
    for definition in document["$defs"].values():
        if set(definition) == {"oneOf"}:
            definition["anyOf"] = definition.pop("oneOf")
    return document


def _refs(schema: Any) -> Iterator[str]:
    """Every `$ref` in `schema`, at any depth."""
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                yield ref
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)


def _reachable(definitions: Mapping[str, Any], roots: Iterable[str]) -> dict[str, Any]:
    """The definitions named in `roots` and every one they reach through `$ref` (`#/$defs/<name>` inside the
    definitions document)."""
    found: dict[str, Any] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in found or name not in definitions:
            continue
        found[name] = definitions[name]
        pending.extend(
            ref.removeprefix(_LOCAL_PREFIX) for ref in _refs(definitions[name]) if ref.startswith(_LOCAL_PREFIX)
        )
    return found


# --- The checker ------------------------------------------------------------------------------------------


class Conformance:
    """The schemas of one Kubernetes version, compiled on demand; built once per run."""

    def __init__(self, *, kubernetes_version: str, definitions: Mapping[str, Any], shipped: Sequence[str] = ()) -> None:
        self.kubernetes_version = kubernetes_version  # the schema version actually used
        self._shipped = tuple(shipped)  # the other releases, loaded when an object is refused
        self._releases: dict[str, Conformance] = {}
        self._definitions = definitions
        self._definition_of: dict[tuple[str, str], str] = {}  # (apiVersion, kind) -> name in $defs
        for name, definition in definitions["$defs"].items():
            for gvk in definition.get("x-kubernetes-group-version-kind", ()):
                api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
                self._definition_of.setdefault((api_version, gvk["kind"]), name)
        self.builtin_groups = frozenset(_group_of(api_version) for api_version, _ in self._definition_of)
        self._validators: dict[str, jsonschema_rs.Validator] = {}

    @classmethod
    def for_kubernetes(cls, version: str | None = None) -> Conformance:
        """The schemas of `version` (None: the newest shipped), with the other shipped releases at hand to say
        which one a refused object needs."""
        chosen = chosen_version(version)
        return cls(kubernetes_version=chosen, definitions=_load_definitions(chosen), shipped=shipped_versions())

    def check(
        self, objects: Sequence[Any], *, crds: Sequence[Mapping[str, Any]] = (), sizes: Sequence[int] | None = None
    ) -> ConformanceReport:
        """Check `objects` (all bound for one destination, which receives `crds`). `sizes`: each object's
        serialized size when the caller has it; by default its compact JSON size (see `check_size`)."""
        delivered = _DeliveredCrds(crds)
        problems: dict[int, tuple[ObjectProblem, ...]] = {}
        validated = 0
        unvalidated: list[str] = []
        for index, obj in enumerate(objects):
            size = sizes[index] if sizes is not None else None
            found, outcome = self._check_one(obj, size=size, delivered=delivered)
            if found:
                problems[index] = tuple(found)
            if outcome == _VALIDATED:
                validated += 1
            elif outcome == _NO_CRD:
                unvalidated.append(f"{obj['apiVersion']} {obj['kind']}")
        return ConformanceReport(
            problems=problems,
            validated=validated,
            not_validated=len(unvalidated),
            not_validated_kinds=tuple(sorted(set(unvalidated))),
        )

    def _check_one(self, obj: Any, *, size: int | None, delivered: _DeliveredCrds) -> tuple[list[ObjectProblem], str]:
        found = check_shape(obj)
        if found:
            return found, _SKIPPED
        found += check_names(obj, builtin=_group_of(obj["apiVersion"]) in self.builtin_groups)
        found += check_size(obj, size=size)
        schema_problems, outcome = self._check_schema(obj, delivered)
        if schema_problems and _group_of(obj["apiVersion"]) in self.builtin_groups:
            schema_problems = self._name_releases(obj, schema_problems)
        elif outcome == _NO_CRD and _group_of(obj["apiVersion"]).endswith("k8s.io"):
            schema_problems, outcome = self._kubernetes_group(obj, schema_problems, outcome)
        if outcome == _NO_CRD:  # no schema for the object: its metadata is still ObjectMeta
            schema_problems = [
                ObjectProblem(("metadata", *p.path), p.code, p.message)
                for p in describe_errors(self._object_meta(), obj.get("metadata"))
            ]
        return found + schema_problems, outcome

    def _object_meta(self) -> jsonschema_rs.Validator:
        if _OBJECT_META not in self._validators:
            schema = {"$schema": _DRAFT, "$ref": _OBJECT_META}
            self._validators[_OBJECT_META] = jsonschema_rs.validator_for(schema, registry=self._registry_for(schema))
        return self._validators[_OBJECT_META]

    def _check_schema(self, obj: Mapping[str, Any], delivered: _DeliveredCrds) -> tuple[list[ObjectProblem], str]:
        api_version, kind = obj["apiVersion"], obj["kind"]
        group, _, version = api_version.rpartition("/")
        if group in self.builtin_groups:
            validator = self._builtin_validator(api_version, kind)
            if validator is None:
                return [self._unknown_builtin(api_version, kind)], _SKIPPED
            return describe_errors(validator, obj), _VALIDATED
        key = (group, kind, version)
        if key not in delivered.resolved:  # once per kind and check, not once per object
            delivered.resolved[key] = self._custom_validator(delivered.by_kind.get((group, kind)), version)
        found = delivered.resolved[key]
        if found is None:
            return [], _NO_CRD
        if isinstance(found, ObjectProblem):
            return [found], _SKIPPED
        return describe_errors(found, obj), _VALIDATED

    def _builtin_validator(self, api_version: str, kind: str) -> jsonschema_rs.Validator | None:
        name = self._definition_of.get((api_version, kind))
        if name is None:
            return None
        if name not in self._validators:
            schema = {"$schema": _DRAFT, "$ref": f"{_DEFINITIONS_ID}#/$defs/{name}"}
            self._validators[name] = jsonschema_rs.validator_for(schema, registry=self._registry_for(schema))
        return self._validators[name]

    def _custom_validator(
        self, crd: Mapping[str, Any] | None, version: str
    ) -> jsonschema_rs.Validator | ObjectProblem | None:
        if crd is None:
            return None
        crd_version = _crd_version(crd, version)
        if crd_version is None:
            served = ", ".join(v["name"] for v in crd["spec"]["versions"] if v.get("served", True))
            message = f"CRD {crd['metadata']['name']} does not serve version {version} (serves {served})"
            return ObjectProblem(("apiVersion",), "crd.unknown-version", message)
        schema = (crd_version.get("schema") or {}).get("openAPIV3Schema") or {"type": "object"}
        # Keyed by content: the same CRD delivered to many destinations compiles once, a changed one again.
        text = json.dumps(schema, sort_keys=True, default=str)
        key = "crd:" + hashlib.sha256(text.encode()).hexdigest()
        if key not in self._validators:
            # The regex crate, not fancy-regex: a CRD's `pattern` matches in linear time, as RE2 does.
            custom = custom_resource_schema(schema)
            self._validators[key] = jsonschema_rs.validator_for(
                custom, registry=self._registry_for(custom), pattern_options=jsonschema_rs.RegexOptions()
            )
        return self._validators[key]

    def _registry_for(self, schema: Mapping[str, Any]) -> jsonschema_rs.Registry:
        """A registry holding the Kubernetes definitions `schema` reaches, and no others: building one of all
        860-odd definitions costs more than a one-request compile checks (a Deployment reaches about 60)."""
        roots = [ref.removeprefix(_DEFS_PREFIX) for ref in _refs(schema) if ref.startswith(_DEFS_PREFIX)]
        document = {key: value for key, value in self._definitions.items() if key != "$defs"}
        document["$defs"] = _reachable(self._definitions["$defs"], roots)
        return jsonschema_rs.Registry([(_DEFINITIONS_ID, document)])

    def _name_releases(self, obj: Mapping[str, Any], problems: list[ObjectProblem]) -> list[ObjectProblem]:
        """A problem of a built-in object that a newer release does not have (a field, an API added later) says
        which release to choose; an API that an older release served says when it went."""
        named: list[ObjectProblem] = []
        for problem in problems:
            newer = self._first_release(obj, problem, newer=True)
            if newer is not None:
                choose = f"choose --kubernetes-version {newer} or later"
                message = (
                    f"{problem.message}; {choose}"
                    if problem.code == "k8s.unknown-kind"
                    else f"{problem.message}: not in Kubernetes {self.kubernetes_version}; {choose}"
                )
                named.append(ObjectProblem(problem.path, problem.code, message))
                continue
            older = self._first_release(obj, problem, newer=False) if problem.code == "k8s.unknown-kind" else None
            if older is not None:
                named.append(
                    ObjectProblem(
                        problem.path, problem.code, f"{problem.message}; it was served up to Kubernetes {older}"
                    )
                )
                continue
            named.append(problem)
        return named

    def _first_release(self, obj: Mapping[str, Any], problem: ObjectProblem, *, newer: bool) -> str | None:
        mine = _minor_key(self.kubernetes_version)
        releases = [v for v in self._shipped if (_minor_key(v) > mine if newer else _minor_key(v) < mine)]
        for version in releases if newer else reversed(releases):
            other = self._release(version)
            if _group_of(obj["apiVersion"]) not in other.builtin_groups:
                continue
            found, _ = other._check_schema(obj, _DeliveredCrds(()))
            if not any((p.path, p.code) == (problem.path, problem.code) for p in found):
                return version
        return None

    def _kubernetes_group(
        self, obj: Mapping[str, Any], problems: list[ObjectProblem], outcome: str
    ) -> tuple[list[ObjectProblem], str]:
        """An object of a Kubernetes API group this release does not have, with no CRD delivered for it: the
        cluster refuses it, unless the group comes in a newer release (or went in an older one)."""
        api_version, kind = obj["apiVersion"], obj["kind"]
        releases = [
            v
            for v in self._shipped
            if v != self.kubernetes_version and (api_version, kind) in self._release(v)._definition_of
        ]
        if not releases:
            return problems, outcome
        problem = self._unknown_builtin(api_version, kind)
        return self._name_releases(obj, [problem]), _SKIPPED

    def _release(self, version: str) -> Conformance:
        if version not in self._releases:
            self._releases[version] = Conformance(kubernetes_version=version, definitions=_load_definitions(version))
        return self._releases[version]

    def _unknown_builtin(self, api_version: str, kind: str) -> ObjectProblem:
        others = sorted(av for av, k in self._definition_of if k == kind and _group_of(av) == _group_of(api_version))
        served = f" (served: {', '.join(others)})" if others else ""
        message = f"{api_version} {kind} is not served by Kubernetes {self.kubernetes_version}{served}"
        return ObjectProblem(("apiVersion",), "k8s.unknown-kind", message)


_VALIDATED, _NO_CRD, _SKIPPED = "validated", "no-crd", "skipped"


def _group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0]


class _DeliveredCrds:
    """The CRDs delivered to one destination, and what each (group, kind, version) resolved to, per check."""

    def __init__(self, crds: Iterable[Mapping[str, Any]]) -> None:
        self.by_kind: dict[tuple[str, str], Mapping[str, Any]] = {}
        for crd in crds:
            spec = crd.get("spec") or {}
            kind = (spec.get("names") or {}).get("kind")
            if isinstance(spec.get("group"), str) and isinstance(kind, str):
                self.by_kind.setdefault((spec["group"], kind), crd)  # the first delivered wins
        self.resolved: dict[tuple[str, str, str], jsonschema_rs.Validator | ObjectProblem | None] = {}


def _crd_version(crd: Mapping[str, Any], version: str) -> Mapping[str, Any] | None:
    for entry in crd["spec"].get("versions") or ():
        if entry.get("name") == version and entry.get("served", True):
            return entry
    return None


# --- Checks every object gets -----------------------------------------------------------------------------

_RBAC = "rbac.authorization.k8s.io"


def _segment_problem(name: str) -> str | None:
    if name in (".", "..") or "/" in name or "%" in name:
        return f"{name!r} is not a valid name: it may not be '.' or '..' nor contain '/' or '%'"
    return None


# Built-in kinds whose names follow another rule than the DNS-1123 subdomain most kinds use (apiserver
# validation for each kind): namespaces are labels, services DNS-1035 labels, RBAC objects any path segment.
_NAME_RULES: dict[tuple[str, str], Callable[[Any], str | None]] = {
    ("", "Namespace"): names.dns_label,
    ("", "Service"): names.dns1035_label,
    **{(_RBAC, kind): _segment_problem for kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")},
}


def check_shape(obj: Any) -> list[ObjectProblem]:
    """apiVersion, kind and metadata.name present and strings; without them nothing else can be checked."""
    if not isinstance(obj, Mapping):
        return [ObjectProblem((), "object.shape", f"an object must be a mapping, not {_json_type(obj)}")]
    found = [
        ObjectProblem((key,), "object.shape", f"{key} must be a non-empty string")
        for key in ("apiVersion", "kind")
        if not (isinstance(obj.get(key), str) and obj[key])
    ]
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        found.append(ObjectProblem(("metadata",), "object.shape", "metadata must be a mapping with a name"))
    elif not (isinstance(metadata.get("name"), str) and metadata["name"]):
        found.append(ObjectProblem(("metadata", "name"), "object.shape", "must be a non-empty string"))
    return found


def check_names(obj: Mapping[str, Any], *, builtin: bool) -> list[ObjectProblem]:
    """What the API server checks of every object before its schema: apiVersion and kind, the name and namespace,
    label keys and values, annotation keys and their total size."""
    found = _check_type(obj["apiVersion"], obj["kind"])
    group, kind = _group_of(obj["apiVersion"]), obj["kind"]
    rule = _NAME_RULES.get((group, kind), names.dns_subdomain) if builtin else names.dns_subdomain
    metadata = obj["metadata"]
    message = rule(metadata["name"])
    if message:
        found.append(ObjectProblem(("metadata", "name"), "object.name", message))
    namespace = metadata.get("namespace")
    if namespace is not None:
        message = names.dns_label(namespace)
        if message:
            found.append(ObjectProblem(("metadata", "namespace"), "object.name", message))
    return found + _check_labels(metadata.get("labels")) + _check_annotations(metadata.get("annotations"))


def _check_type(api_version: str, kind: str) -> list[ObjectProblem]:
    group, slash, version = api_version.rpartition("/")
    found = []
    if (slash and (not group or names.dns_subdomain(group))) or names.dns_label(version):
        found.append(
            ObjectProblem(
                ("apiVersion",),
                "object.api-version",
                f"{api_version!r} is not an API version "
                "(a version such as v1, or group/version with a DNS-subdomain group)",
            )
        )
    if names.dns1035_label(kind.lower()):
        found.append(
            ObjectProblem(
                ("kind",), "object.kind", f"{kind!r} is not a kind: letters, digits and '-', starting with a letter"
            )
        )
    return found


def _check_labels(labels: Any) -> list[ObjectProblem]:
    if labels is None:
        return []
    if not isinstance(labels, Mapping):
        return [ObjectProblem(("metadata", "labels"), "object.labels", "must be a map of strings")]
    found = []
    for key, value in labels.items():
        if not isinstance(value, str):
            continue  # a type error: the object's schema (or ObjectMeta's) reports it
        message = names.qualified_name(key) or names.label_value(value)
        if message:
            found.append(ObjectProblem(("metadata", "labels", str(key)), "object.labels", message))
    return found


def _check_annotations(annotations: Any) -> list[ObjectProblem]:
    if annotations is None:
        return []
    if not isinstance(annotations, Mapping):
        return [ObjectProblem(("metadata", "annotations"), "object.annotations", "must be a map of strings")]
    found = []
    total = 0
    for key, value in annotations.items():
        message = names.qualified_name(key)
        if message:
            found.append(ObjectProblem(("metadata", "annotations", str(key)), "object.annotations", message))
        total += len(str(key).encode()) + len(str(value).encode())
    if total > limits.ANNOTATIONS_TOTAL_MAX_BYTES:
        found.append(
            ObjectProblem(
                ("metadata", "annotations"),
                "object.annotations",
                f"annotations total {total:,} bytes; Kubernetes takes at most {limits.ANNOTATIONS_TOTAL_MAX_BYTES:,}",
            )
        )
    return found


def check_size(obj: Mapping[str, Any], *, size: int | None) -> list[ObjectProblem]:
    """`size` defaults to the compact JSON size: what kubectl stores in the annotation and the apiserver
    receives (a YAML file's size differs by its indentation, and measuring it costs 30 times more)."""
    if size is None:
        size = len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str).encode())
    if size > ETCD_LIMIT:
        message = f"object is {_kib(size)} serialized; etcd refuses objects over {_kib(ETCD_LIMIT)}"
        return [ObjectProblem((), "object.too-large", message)]
    if size > APPLY_LIMIT:
        message = (
            f"object is {_kib(size)} serialized; `kubectl apply` keeps a copy in an annotation "
            f"limited to {_kib(APPLY_LIMIT)} (split it, or apply server-side)"
        )
        return [ObjectProblem((), "object.too-large-for-apply", message)]
    return []


def _kib(size: int) -> str:
    return f"{size / 1024:.0f} KiB"


# --- Schema errors as problems ----------------------------------------------------------------------------


def describe_errors(validator: jsonschema_rs.Validator, obj: Any) -> list[ObjectProblem]:
    try:
        if validator.is_valid(obj):  # the common case, and several times cheaper than collecting errors
            return []
    except ValueError:  # a YAML value JSON has no word for (a date, bytes, a non-string key)
        found = list(_non_json_values(obj, ()))
        as_json = json.loads(json.dumps(obj, default=str))
        return found + [problem for error in validator.iter_errors(as_json) for problem in _describe(error)]
    return [problem for error in validator.iter_errors(obj) for problem in _describe(error)]


def _non_json_values(value: Any, path: FieldPath) -> Iterator[ObjectProblem]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                yield ObjectProblem(
                    (*path, str(key)),
                    "object.not-json",
                    f"key {key!r} is a {type(key).__name__}, not a string: quote it",
                )
            yield from _non_json_values(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _non_json_values(item, (*path, index))
    elif not isinstance(value, (str, int, float, bool, type(None))):
        message = (
            f"a YAML {type(value).__name__} is not a JSON value; Kubernetes turns it into a string of "
            "another form: quote it"
        )
        yield ObjectProblem(path, "object.not-json", message)


def _describe(error: jsonschema_rs.ValidationError) -> Iterator[ObjectProblem]:
    path: FieldPath = tuple(error.instance_path)
    kind = error.kind
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
        for name in kind.unexpected:
            yield ObjectProblem((*path, name), "k8s.unknown-field", f"unknown field {name!r}")
    elif isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
        yield ObjectProblem((*path, kind.property), "k8s.schema", "required field is missing")
    elif isinstance(kind, jsonschema_rs.ValidationErrorKind.Type):
        yield ObjectProblem(path, "k8s.schema", _type_message(kind.types, error.instance))
    elif isinstance(kind, _ALTERNATIVES) and _only_type_errors(kind.context):  # IntOrString, Quantity
        types = [t for branch in kind.context for e in branch for t in e.kind.types]  # type: ignore[attr-defined]
        yield ObjectProblem(path, "k8s.schema", _type_message(types, error.instance))
    elif isinstance(kind, jsonschema_rs.ValidationErrorKind.Enum):
        options = ", ".join(json.dumps(o) for o in kind.options if o is not None)
        yield ObjectProblem(path, "k8s.schema", f"must be one of {options}, not {_short(error.instance)}")
    else:
        shown = json.dumps(error.instance, separators=(",", ":"))  # how jsonschema_rs quotes it: maybe huge
        yield ObjectProblem(path, "k8s.schema", error.message.replace(shown, _short(error.instance)))


def _type_message(types: Iterable[str], instance: Any) -> str:
    expected = " or ".join(dict.fromkeys(t for t in types if t != "null"))  # every field takes null: noise
    return f"must be {expected}, not {_json_type(instance)}"


def _only_type_errors(context: Sequence[Sequence[jsonschema_rs.ValidationError]]) -> bool:
    type_error = jsonschema_rs.ValidationErrorKind.Type
    return all(isinstance(e.kind, type_error) for branch in context for e in branch)


_ALTERNATIVES = (jsonschema_rs.ValidationErrorKind.AnyOf, jsonschema_rs.ValidationErrorKind.OneOfNotValid)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return f"string {_short(value)}"
    return "array" if isinstance(value, list) else "object"


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


# --- CRD schemas ------------------------------------------------------------------------------------------

# What a strict apiserver accepts after it has dropped null fields and filled defaults; formats not checked.
_CUSTOM_RESOURCES = openapi.Reading(null_fields=True, defaulted_optional=True)


def custom_resource_schema(open_api_v3: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON Schema (2020-12) accepting what a strict apiserver accepts for a custom resource of this
    `openAPIV3Schema` (CEL rules and formats aside)."""
    root = openapi.translate(open_api_v3, _CUSTOM_RESOURCES)
    properties = root.setdefault("properties", {})
    user_metadata = properties.get("metadata")
    properties["apiVersion"] = {"type": "string"}
    properties["kind"] = {"type": "string"}
    # A CRD may only narrow metadata (name patterns); the rest of it is the built-in ObjectMeta.
    properties["metadata"] = {"$ref": _OBJECT_META}
    if user_metadata:
        narrowed = openapi.translate(open_api_v3["properties"]["metadata"], _CUSTOM_RESOURCES, closed=False)
        properties["metadata"] = {"allOf": [{"$ref": _OBJECT_META}, narrowed]}
    return {"$schema": _DRAFT, **root}
