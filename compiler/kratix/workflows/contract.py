"""The pipeline contract: the `KRATIX_*` variables every container of a workflow sees, built in one place.

In: the Promise, the request (None for a promise workflow), the pipeline's name. Out: the variables, as Kratix's
pipeline factory sets them (`api/v1alpha1/pipeline_factory.go`, `pipeline_types.go`): for a promise workflow the
object is the Promise itself (`Promise`, `platform.kratix.io`, `v1alpha1`, no namespace, plural `promises`,
cluster-scoped); for a resource workflow it is the request, at the version it is stored at, with its CRD's plural
and scope. Only the configure action runs here (delete workflows are not run: see `kratix.load.pipelines`).
`KRATIX_DRY_RUN` is not set: Kratix's dry run (a request labelled `kratix.io/dry-run`) has no counterpart in a
compiler, whose every run writes nothing until it is published.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import yaml

from kratix import yamltext
from kratix.model.manifests import OutputGroup, Suspension
from kratix.model.platform import API_VERSION, Promise, ResourceRequest
from kratix.model.statuses import merge_conditions

PROMISE_WORKFLOW = "promise"
RESOURCE_WORKFLOW = "resource"
CONFIGURE = "configure"


def kratix_variables(
    promise: Promise, request: ResourceRequest | None, *, pipeline: str, action: str = CONFIGURE
) -> dict[str, str]:
    """The `KRATIX_*` variables of every container of `pipeline`, for `request`'s resource workflow or (with
    None) the Promise's own."""
    if request is None:
        group, _, version = API_VERSION.rpartition("/")
        kind, name, namespace, plural, cluster_scoped = "Promise", promise.name, "", "promises", True
        workflow = PROMISE_WORKFLOW
    else:
        # The object as the API server returns it: at the storage version, whichever version it was written at.
        group, _, version = request.api_version.rpartition("/")
        if promise.api is not None:
            group, version = promise.api.group, promise.api.version
        kind, name, namespace = request.key.kind, request.key.name, request.key.namespace
        plural = promise.api.plural if promise.api else ""
        spec = (promise.crd or {}).get("spec")
        cluster_scoped = isinstance(spec, Mapping) and spec.get("scope") == "Cluster"
        workflow = RESOURCE_WORKFLOW
    return {
        "KRATIX_WORKFLOW_ACTION": action,
        "KRATIX_WORKFLOW_TYPE": workflow,
        "KRATIX_PROMISE_NAME": promise.name,
        "KRATIX_PIPELINE_NAME": pipeline,
        "KRATIX_OBJECT_KIND": kind,
        "KRATIX_OBJECT_GROUP": group,
        "KRATIX_OBJECT_VERSION": version,
        "KRATIX_OBJECT_NAME": name,
        "KRATIX_OBJECT_NAMESPACE": namespace,
        "KRATIX_CRD_PLURAL": plural,
        "KRATIX_CLUSTER_SCOPED": "true" if cluster_scoped else "false",
    }


# -- /kratix/metadata/workflow-control.yaml ----------------------------------------------------------------

WORKFLOW_CONTROL = "workflow-control.yaml"
_CONTROL_FILE = f"/kratix/metadata/{WORKFLOW_CONTROL}"
# Go's time.ParseDuration, which Kratix parses retryAfter with: a sign, then one or more <number><unit>.
_DURATION = re.compile(r"([-+]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+|0)")
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ContractError(ValueError):
    """A file a step wrote to /kratix/metadata that Kratix would refuse: the pipeline fails, saying why."""


def parse_duration(text: str) -> timedelta:
    """A Go duration (`90s`, `10m`, `1h30m`, `1.5h`); raises ContractError for anything else."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ContractError(f"{text!r} is not a duration (a number and a unit, as 30s, 10m or 1h30m)")
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(match.group(2)))
    return timedelta(seconds=-seconds if match.group(1) == "-" else seconds)


def read_workflow_control(data: bytes | None) -> Suspension | None:
    """What a pipeline's workflow-control.yaml asks for, as Kratix's work-creator reads it: `suspend: true` or a
    `retryAfter` duration stop the workflow at this pipeline (with `message`); anything else lets it go on. A file
    Kratix cannot read (not a mapping, a field of the wrong type, a duration it cannot parse) raises."""
    if data is None:
        return None
    try:
        document = next(iter(yamltext.load_plain(data)), None)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ContractError(f"{_CONTROL_FILE} is not YAML: {exc}") from None
    if document is None:
        return None
    if not isinstance(document, Mapping):
        raise ContractError(
            f"{_CONTROL_FILE} must be a mapping (suspend, message, retryAfter), not a {type(document).__name__}"
        )
    suspend, message, retry = document.get("suspend", False), document.get("message", ""), document.get("retryAfter")
    for field, value, kind in (("suspend", suspend, bool), ("message", message, str), ("retryAfter", retry, str)):
        if value is not None and not isinstance(value, kind):
            raise ContractError(f"{_CONTROL_FILE}: {field} must be a {kind.__name__}, not {value!r}")
    try:
        retry_after = parse_duration(retry) if retry else None
    except ContractError as exc:
        raise ContractError(f"{_CONTROL_FILE}: retryAfter: {exc}") from None
    if not suspend and retry_after is None:
        return None
    return Suspension("", message or "", retry_after.total_seconds() if retry_after is not None else None)


# -- /kratix/metadata/status.yaml --------------------------------------------------------------------------

STATUS = "status.yaml"
_STATUS_FILE = f"/kratix/metadata/{STATUS}"
# Fields of the status the compiler sets itself. Kratix refuses `kratix` (its own); the others are where this
# compiler keeps what Kratix keeps under `status.kratix`, so a pipeline writing them is refused the same way
# rather than silently overwritten.
MANAGED_STATUS_FIELDS = ("kratix", "observedRevision", "placements", "pipelines")
PENDING_MESSAGE = "Pending"  # Kratix's status.message while a workflow runs


def read_status(data: bytes | None) -> dict[str, Any]:
    """What a pipeline wrote to status.yaml, as Kratix's status writer reads it: a mapping (an empty file is
    none) of fields to merge into the object's status. Raises ContractError for anything Kratix refuses."""
    if data is None:
        return {}
    try:
        document = next(iter(yamltext.load_plain(data)), None)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ContractError(f"{_STATUS_FILE} is not YAML: {exc}") from None
    if document is None:
        return {}
    if not isinstance(document, Mapping):
        raise ContractError(f"{_STATUS_FILE} must be a mapping of status fields, not a {type(document).__name__}")
    for key in MANAGED_STATUS_FIELDS:
        if key in document:
            raise ContractError(
                f"{_STATUS_FILE}: {key!r} is a status field the compiler manages (Kratix keeps "
                "it under status.kratix); a workflow cannot update it"
            )
    return {str(k): v for k, v in document.items()}


def merge_status(status: Mapping[str, Any], written: Mapping[str, Any]) -> dict[str, Any]:
    """Kratix's merge (`work-creator/lib/status_updater.go`): every field written replaces the one there, except
    `conditions`, which, when both are lists, are merged by `type` (a condition without a string type is
    dropped, as Kratix drops it)."""
    merged = dict(status)
    for key, value in written.items():
        if key == "conditions" and isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key] = merge_conditions(merged[key], value)
        else:
            merged[key] = value
    return merged


# -- /kratix/metadata/destination-selectors.yaml -----------------------------------------------------------

DESTINATION_SELECTORS = "destination-selectors.yaml"
_SELECTORS_FILE = f"/kratix/metadata/{DESTINATION_SELECTORS}"


def read_destination_selectors(data: bytes | None) -> tuple[OutputGroup, ...]:
    """The selectors a pipeline wrote, checked as Kratix's work-creator checks them (`ParseDestinationSelectors`):
    a list of `{directory?, matchLabels}` where matchLabels is a non-empty map of strings, each directory (cleaned
    as a path: `./db/` is `db`, `.` or none is the root) is a top-level folder of the output, used once. Raises
    ContractError naming the entry and field."""
    if data is None:
        return ()
    try:
        document = next(iter(yamltext.load_plain(data)), None)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ContractError(f"{_SELECTORS_FILE} is not YAML: {exc}") from None
    if document is None:
        return ()
    if not isinstance(document, list):
        raise ContractError(
            f"{_SELECTORS_FILE} must be a list of {{directory, matchLabels}} entries, not a {type(document).__name__}"
        )
    groups: list[OutputGroup] = []
    for index, entry in enumerate(document):
        where = f"{_SELECTORS_FILE}: entry {index}"
        if not isinstance(entry, Mapping):
            raise ContractError(f"{where} must be a mapping with matchLabels, not a {type(entry).__name__}")
        directory = _selector_directory(entry.get("directory"), where)
        labels = entry.get("matchLabels")
        if labels is not None and not isinstance(labels, Mapping):
            raise ContractError(f"{where}: matchLabels must be a map of label names to strings")
        for key, value in (labels or {}).items():
            if not isinstance(value, str):
                raise ContractError(f"{where}: matchLabels.{key} must be a string, not {value!r} (quote it)")
        if not labels:
            raise ContractError(f"{where} has no selectors (matchLabels is empty)")
        if any(group.directory == directory for group in groups):
            raise ContractError(
                f"{where}: directory {directory or '.'!r} has an entry already; each directory "
                "(and the root) may have one"
            )
        groups.append(OutputGroup(directory, {str(k): v for k, v in labels.items()}))
    return tuple(groups)


def _selector_directory(raw: Any, where: str) -> str | None:
    """A directory as Kratix reads it (`filepath.Clean`), None for the root; only a top-level folder."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ContractError(f"{where}: directory must be a string, not {raw!r}")
    cleaned = posixpath.normpath(raw) if raw else "."
    if cleaned == ".":
        return None
    if "/" in cleaned or cleaned == "..":
        raise ContractError(
            f"{where}: directory {raw!r} must be a top-level folder of /kratix/output (sub-directories are not allowed)"
        )
    return cleaned


# -- env, envFrom and volumes: what a container reads from ConfigMaps and Secrets --------------------------

SYSTEM_NAMESPACE = "kratix-platform-system"  # where Kratix runs promise workflows
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")  # apimachinery's IsEnvVarName
# (kind, name) in the pipeline's namespace -> its data, decoded (a Secret decrypted), or None when it is not there
Lookup = Callable[[str, str], Mapping[str, bytes] | None]


@dataclass(frozen=True)
class Mount:
    """A volume a container mounts: `files` under `path` (one file at `path` itself when `single`), or an empty
    writable directory (`files` None: an emptyDir)."""

    path: str
    files: Mapping[str, bytes] | None
    single: bool = False


@dataclass(frozen=True)
class StepInputs:
    env: tuple[tuple[str, str], ...]  # the container's own variables, resolved, in Kubernetes' order
    mounts: tuple[Mount, ...] = ()


def pipeline_namespace(promise: Promise, request: ResourceRequest | None) -> str:
    """Where Kratix runs the workflow's pods, so where its ConfigMaps and Secrets are read:
    `spec.workflows.config.pipelineNamespace` when set, else the request's namespace (a promise workflow:
    kratix-platform-system)."""
    workflows = promise.body.get("spec", {}).get("workflows") if isinstance(promise.body.get("spec"), Mapping) else None
    config = workflows.get("config") if isinstance(workflows, Mapping) else None
    configured = config.get("pipelineNamespace") if isinstance(config, Mapping) else None
    if isinstance(configured, str) and configured:
        return configured
    return request.key.namespace if request is not None else SYSTEM_NAMESPACE


def service_account(promise: Promise, pipeline: Mapping[str, Any], workflow: str) -> str:
    """The pipeline's ServiceAccount as Kratix names it (`spec.rbac.serviceAccount`, else its pipeline ID)."""
    rbac = _field(_field(pipeline, "spec"), "rbac")
    named = rbac.get("serviceAccount")
    if isinstance(named, str) and named:
        return named
    return f"{promise.name}-{workflow}-configure-{_field(pipeline, 'metadata').get('name', '')}"


def resolve_step(
    container: Mapping[str, Any], pipeline: Mapping[str, Any], *, namespace: str, account: str, lookup: Lookup
) -> StepInputs:
    """The container's `envFrom`, `env` (with `valueFrom`) and `volumeMounts` resolved as the kubelet resolves
    them: envFrom first, env after it (a later name wins); a missing object or key is an error naming it unless
    marked `optional` (then the variable is not set, the volume is empty). Raises ContractError."""
    where = f"container {container.get('name')!r}"
    env: dict[str, str] = {}
    for index, source in enumerate(container.get("envFrom") or ()):
        env.update(_env_from(_mapping(source), lookup, namespace, f"{where}: envFrom[{index}]"))
    for entry in container.get("env") or ():
        entry = _mapping(entry)
        name = str(entry.get("name"))
        if "valueFrom" not in entry:
            env[name] = str(entry.get("value", ""))
            continue
        value = _value_from(_field(entry, "valueFrom"), lookup, namespace, account, f"{where}: env {name}")
        if value is not None:
            env[name] = value
    volumes = {str(v.get("name")): v for v in (_field(pipeline, "spec").get("volumes") or ()) if isinstance(v, Mapping)}
    mounts = tuple(_mount(_mapping(m), volumes, lookup, namespace, where) for m in container.get("volumeMounts") or ())
    return StepInputs(tuple(env.items()), mounts)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _field(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    return _mapping(parent.get(key))


def _missing(kind: str, name: Any, namespace: str) -> str:
    return (
        f"{kind} {namespace}/{name} does not exist: put it in config/{namespace}/ (Secrets SOPS-encrypted), or "
        "mark the reference optional: true"
    )


def _env_from(source: Mapping[str, Any], lookup: Lookup, namespace: str, where: str) -> dict[str, str]:
    kind, ref = (
        ("ConfigMap", _field(source, "configMapRef"))
        if "configMapRef" in source
        else ("Secret", _field(source, "secretRef"))
    )
    if not ref:
        raise ContractError(f"{where} needs configMapRef or secretRef")
    data = lookup(kind, str(ref.get("name")))
    if data is None:
        if ref.get("optional") is True:
            return {}
        raise ContractError(f"{where}: {_missing(kind, ref.get('name'), namespace)}")
    prefix = str(source.get("prefix") or "")
    found = {}
    for key, raw in data.items():
        name = prefix + key
        if not _ENV_NAME.fullmatch(name):
            raise ContractError(
                f"{where}: key {key!r} of {kind} {namespace}/{ref.get('name')} is not an environment variable name"
            )
        found[name] = _text(raw, f"{where}: key {key!r} of {kind} {namespace}/{ref.get('name')}")
    return found


def _value_from(source: Mapping[str, Any], lookup: Lookup, namespace: str, account: str, where: str) -> str | None:
    for field, kind, name_key in (("configMapKeyRef", "ConfigMap", "name"), ("secretKeyRef", "Secret", "name")):
        if field in source:
            ref = _field(source, field)
            data = lookup(kind, str(ref.get(name_key)))
            optional = ref.get("optional") is True
            if data is None:
                if optional:
                    return None
                raise ContractError(f"{where}: {_missing(kind, ref.get(name_key), namespace)}")
            key = str(ref.get("key"))
            if key not in data:
                if optional:
                    return None
                raise ContractError(f"{where}: {kind} {namespace}/{ref.get(name_key)} has no key {key!r}")
            return _text(data[key], f"{where}: key {key!r} of {kind} {namespace}/{ref.get(name_key)}")
    if "fieldRef" in source:
        path = str(_field(source, "fieldRef").get("fieldPath"))
        known = {"metadata.namespace": namespace, "spec.serviceAccountName": account}
        if path not in known:
            raise ContractError(
                f"{where}: fieldRef {path!r} has no value in a compiler (there is no pod); only "
                f"{' and '.join(known)} do"
            )
        return known[path]
    raise ContractError(
        f"{where}: valueFrom {', '.join(map(str, source)) or '(empty)'} has no value in a compiler "
        "(configMapKeyRef, secretKeyRef and fieldRef do)"
    )


def _text(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ContractError(f"{where} is binary data, which an environment variable cannot hold") from None


def _mount(
    mount: Mapping[str, Any], volumes: Mapping[str, Mapping[str, Any]], lookup: Lookup, namespace: str, where: str
) -> Mount:
    name, path = str(mount.get("name")), mount.get("mountPath")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ContractError(f"{where}: volumeMount {name!r} needs an absolute mountPath")
    if name not in volumes:
        raise ContractError(f"{where}: volumeMount {name!r} names no volume of the pipeline (spec.volumes)")
    volume = volumes[name]
    if "emptyDir" in volume:
        return Mount(path, None)
    if "configMap" in volume:
        kind, ref, ref_name = "ConfigMap", _field(volume, "configMap"), _field(volume, "configMap").get("name")
    elif "secret" in volume:
        kind, ref, ref_name = "Secret", _field(volume, "secret"), _field(volume, "secret").get("secretName")
    else:
        types = ", ".join(k for k in volume if k != "name") or "(none)"
        raise ContractError(
            f"{where}: volume {name!r} is of type {types}, which a compiler cannot provide "
            "(configMap, secret and emptyDir volumes are)"
        )
    data = lookup(kind, str(ref_name))
    optional = ref.get("optional") is True
    if data is None and not optional:
        raise ContractError(f"{where}: volume {name!r}: {_missing(kind, ref_name, namespace)}")
    files = _volume_files(
        data or {}, ref.get("items"), optional, f"{where}: volume {name!r}: {kind} {namespace}/{ref_name}"
    )
    sub = mount.get("subPath")
    if isinstance(sub, str) and sub:
        if sub not in files:
            raise ContractError(f"{where}: volumeMount {name!r}: subPath {sub!r} is not a file of the volume")
        return Mount(path, {"": files[sub]}, single=True)
    return Mount(path, files)


def _volume_files(data: Mapping[str, bytes], items: Any, optional: bool, where: str) -> dict[str, bytes]:
    if not isinstance(items, list):
        return dict(data)
    files = {}
    for item in items:
        item = _mapping(item)
        key, target = str(item.get("key")), str(item.get("path") or item.get("key"))
        if key not in data:
            if optional:
                continue
            raise ContractError(f"{where} has no key {key!r}")
        if target.startswith("/") or ".." in target.split("/"):
            raise ContractError(f"{where}: item path {target!r} must be relative, without '..'")
        files[target] = data[key]
    return files
