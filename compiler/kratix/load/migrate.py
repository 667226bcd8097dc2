"""Seed-era (2021/2022) Promises and Clusters, rewritten in today's format.

In: one parsed document. Out: an `Upgrade` with today's body (a deep copy; the input is never mutated) and one
deprecation note per old field, at that field's path in the old document. Anything that is not a
`platform.kratix.io` Promise or Cluster comes back unchanged with no notes, and so does a current document:
upgrading is idempotent.

Promise (2021: namespaced, `xaasCrd`, `xaasRequestPipeline`, `clusterWorkerResources`; 2022:
`workerClusterResources`, `clusterSelector`):
- `spec.xaasCrd` -> `spec.api` (dropped when `spec.api` is already set).
- `spec.xaasRequestPipeline` (image names) -> a first resource configure pipeline named `instance-configure`
  (the name today's Kratix gives the pipeline it generates for a request), one container per image, in order.
  Only the first image ran in 2021; every image ran in order from 2022, which is what a list means today. The
  containers get `legacyPaths: true`: those images read `/input` and write `/output` and
  `/metadata/cluster-selectors.yaml`, which the step runner provides for them.
- `spec.clusterWorkerResources`, `spec.workerClusterResources` -> appended to `spec.dependencies`. Entries
  were whole objects (Go `Unstructured` inlined); an entry wrapped as `{unstructured: <object>}` is unwrapped.
- `spec.clusterSelector` (a label map) -> `spec.destinationSelectors: [{matchLabels: ...}]`, appended.
- `metadata.namespace` dropped: Promises are cluster-scoped.
Cluster (2021: `spec.id`, `spec.bucketPath`, namespaced; 2023: `spec.path`, `spec.stateStoreRef`):
- `kind: Cluster` -> `kind: Destination`; `spec.bucketPath` -> `spec.path`; `spec.id` and `metadata.namespace`
  dropped (the name identifies a Destination, which is cluster-scoped); other fields kept.
New keys take the place of the old ones in the spec, so a rewritten file reads in the same order.

`migrate_file` rewrites the seed-era documents of one YAML file: documents that need no change keep their text
byte for byte; a rewritten document keeps its `---` line and leading comments, loses its inner comments.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from kratix import yamltext
from kratix.model.diagnostics import format_path
from kratix.model.documents import FieldPath
from kratix.model.errors import SourceError
from kratix.model.platform import API_GROUP, API_VERSION

PIPELINE_NAME = "instance-configure"
Note = tuple[FieldPath, str]

_OLD_PROMISE_FIELDS = {  # old field -> the field that replaces it
    "xaasCrd": "api",
    "xaasRequestPipeline": "workflows",
    "clusterWorkerResources": "dependencies",
    "workerClusterResources": "dependencies",
    "clusterSelector": "destinationSelectors",
}
_SEPARATOR = re.compile(r"^---(?:[ \t]+#.*|[ \t]*)\r?\n?$")
_DNS_LABEL_INVALID = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class Upgrade:
    body: Any  # today's format: a deep copy of the input (a dict for a Promise or Cluster)
    notes: tuple[Note, ...]  # one per old field: (path in the OLD document, message)

    @property
    def changed(self) -> bool:
        return bool(self.notes)


def upgrade_document(body: Any) -> Upgrade:
    """Today's form of a Promise or Cluster; anything else unchanged with no notes."""
    upgraded = copy.deepcopy(body)
    if not isinstance(body, Mapping) or not str(body.get("apiVersion", "")).startswith(f"{API_GROUP}/"):
        return Upgrade(upgraded, ())
    notes: list[Note] = []
    if body.get("kind") == "Promise":
        _upgrade_promise(upgraded, notes)
    elif body.get("kind") == "Cluster":
        _upgrade_cluster(upgraded, notes)
    return Upgrade(upgraded, tuple(notes))


def _deprecated(path: FieldPath, replacement: str) -> Note:
    return path, f"{format_path(path)} is deprecated: use {replacement} (kratix migrate rewrites it)"


def _obsolete(path: FieldPath, why: str) -> Note:
    return path, f"{format_path(path)} is obsolete and ignored: {why} (kratix migrate removes it)"


def _drop_namespace(body: dict[str, Any], kind: str, notes: list[Note]) -> None:
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and "namespace" in metadata:
        del metadata["namespace"]
        notes.append(_obsolete(("metadata", "namespace"), f"a {kind} is cluster-scoped"))


# -- Promise ----------------------------------------------------------------------------------------------


def _upgrade_promise(body: dict[str, Any], notes: list[Note]) -> None:
    _drop_namespace(body, "Promise", notes)
    spec = body.get("spec")
    if not isinstance(spec, dict) or not any(key in spec for key in _OLD_PROMISE_FIELDS):
        return
    replacements: dict[str, Any] = {}  # new field -> its value, merged with what the spec already had
    for old in _OLD_PROMISE_FIELDS:
        if old in spec:
            _CONVERTERS[old](spec, spec[old], replacements, notes)
    body["spec"] = _respell(spec, replacements)


def _respell(spec: Mapping[str, Any], replacements: Mapping[str, Any]) -> dict[str, Any]:
    """The spec without its old fields, each new field at the place of its first old one (or where it was)."""
    result: dict[str, Any] = {}
    for key, value in spec.items():
        if key in _OLD_PROMISE_FIELDS:
            new = _OLD_PROMISE_FIELDS[key]
            if new in replacements and new not in spec and new not in result:
                result[new] = replacements[new]
        else:
            result[key] = replacements.get(key, value)
    return result


def _convert_crd(spec: Mapping[str, Any], crd: Any, out: dict[str, Any], notes: list[Note]) -> None:
    if spec.get("api") is not None:
        notes.append(_obsolete(("spec", "xaasCrd"), "spec.api is set"))
    else:
        out["api"] = crd
        notes.append(_deprecated(("spec", "xaasCrd"), "spec.api"))


def _convert_request_pipeline(spec: Mapping[str, Any], images: Any, out: dict[str, Any], notes: list[Note]) -> None:
    path: FieldPath = ("spec", "xaasRequestPipeline")
    images = images if isinstance(images, list) else [images] if images else []
    if not images:
        notes.append(_obsolete(path, "it lists no image"))
        return
    current = spec.get("workflows")
    workflows: dict[str, Any] = copy.deepcopy(dict(current)) if isinstance(current, Mapping) else {}
    resource: dict[str, Any] = workflows.get("resource") or {}
    if not isinstance(resource, dict):
        resource = {}
    existing: list[Any] = resource.get("configure") or []
    if not isinstance(existing, list):
        existing = []
    taken = {
        p["metadata"].get("name") for p in existing if isinstance(p, Mapping) and isinstance(p.get("metadata"), Mapping)
    }
    name = PIPELINE_NAME if PIPELINE_NAME not in taken else f"{PIPELINE_NAME}-seed"
    resource["configure"] = [_pipeline(name, [str(image) for image in images]), *existing]
    workflows["resource"] = resource
    out["workflows"] = workflows
    notes.append(_deprecated(path, f"spec.workflows.resource.configure (here: the pipeline {name!r})"))


def _pipeline(name: str, images: list[str]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = []
    names: set[str] = set()
    for image in images:
        container_name = _container_name(image, names)
        names.add(container_name)
        containers.append({"name": container_name, "image": image, "legacyPaths": True})
    return {
        "apiVersion": API_VERSION,
        "kind": "Pipeline",
        "metadata": {"name": name},
        "spec": {"containers": containers},
    }


def _container_name(image: str, taken: set[str]) -> str:
    """`ghcr.io/acme/postgres-request-pipeline:v0.1.0` -> `postgres-request-pipeline`: a DNS label, unique."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
    base = _DNS_LABEL_INVALID.sub("-", last.lower()).strip("-")[:55].strip("-") or "step"
    candidate, number = base, 1
    while candidate in taken:
        number += 1
        candidate = f"{base}-{number}"
    return candidate


def _convert_resources(old: str) -> Callable[[Mapping[str, Any], Any, dict[str, Any], list[Note]], None]:
    def convert(spec: Mapping[str, Any], entries: Any, out: dict[str, Any], notes: list[Note]) -> None:
        dependencies = out.get("dependencies")
        if dependencies is None:
            current = spec.get("dependencies")
            dependencies = copy.deepcopy(current) if isinstance(current, list) else []
        items = entries if isinstance(entries, list) else [entries] if entries else []
        dependencies.extend(_unwrap(entry) for entry in items)
        out["dependencies"] = dependencies
        notes.append(_deprecated(("spec", old), "spec.dependencies"))

    return convert


def _unwrap(entry: Any) -> Any:
    if isinstance(entry, Mapping) and set(entry) == {"unstructured"}:
        return entry["unstructured"]
    return entry


def _convert_selector(spec: Mapping[str, Any], labels: Any, out: dict[str, Any], notes: list[Note]) -> None:
    current = spec.get("destinationSelectors")
    selectors = copy.deepcopy(current) if isinstance(current, list) else []
    if labels:
        selectors.append({"matchLabels": labels})
    out["destinationSelectors"] = selectors
    notes.append(_deprecated(("spec", "clusterSelector"), "spec.destinationSelectors: [{matchLabels: ...}]"))


_CONVERTERS: dict[str, Callable[[Mapping[str, Any], Any, dict[str, Any], list[Note]], None]] = {
    "xaasCrd": _convert_crd,
    "xaasRequestPipeline": _convert_request_pipeline,
    "clusterWorkerResources": _convert_resources("clusterWorkerResources"),
    "workerClusterResources": _convert_resources("workerClusterResources"),
    "clusterSelector": _convert_selector,
}


# -- Cluster ----------------------------------------------------------------------------------------------


def _upgrade_cluster(body: dict[str, Any], notes: list[Note]) -> None:
    body["kind"] = "Destination"
    notes.append((("kind",), "kind: Cluster is deprecated: use kind: Destination (kratix migrate rewrites it)"))
    _drop_namespace(body, "Destination", notes)
    spec = body.get("spec")
    if not isinstance(spec, dict):
        return
    respelled: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "bucketPath":
            if "path" in spec:
                notes.append(_obsolete(("spec", "bucketPath"), "spec.path is set"))
            else:
                respelled["path"] = value
                notes.append(_deprecated(("spec", "bucketPath"), "spec.path"))
        elif key == "id":
            notes.append(_obsolete(("spec", "id"), "a Destination is identified by its name"))
        else:
            respelled[key] = value
    body["spec"] = respelled


# -- files ------------------------------------------------------------------------------------------------


def migrate_file(text: str, *, path: str = "<text>") -> tuple[str, int]:
    """`text` with every seed-era document rewritten, and how many were. Raises `SourceError` on a file that
    is not YAML (nothing is rewritten then)."""
    pieces: list[str] = []
    changed = 0
    for chunk in _chunks(text):
        rewritten = _migrate_chunk(chunk, path)
        changed += rewritten is not None
        pieces.append(chunk if rewritten is None else rewritten)
    return "".join(pieces), changed


def _chunks(text: str) -> list[str]:
    """The file cut before each `---` line: every piece is one document with its own separator line. (A
    `---` at the start of a line is always a document marker: block scalars are indented, quoted scalars
    cannot hold it.)"""
    chunks: list[str] = []
    current: list[str] = []
    for line in text.splitlines(keepends=True):
        if _SEPARATOR.match(line) and current:
            chunks.append("".join(current))
            current = []
        current.append(line)
    if current:
        chunks.append("".join(current))
    return chunks


def _migrate_chunk(chunk: str, path: str) -> str | None:
    try:
        documents = list(yamltext.load_plain(chunk))
    except yaml.YAMLError as exc:
        raise SourceError(f"{path}: not valid YAML, nothing migrated: {exc}") from exc
    if len(documents) != 1:
        return None
    upgrade = upgrade_document(documents[0])
    if not upgrade.changed:
        return None
    lines = chunk.splitlines(keepends=True)
    head = []
    if lines and _SEPARATOR.match(lines[0]):
        head.append(lines.pop(0))
    for line in lines:
        if line.strip() and not line.lstrip().startswith("#"):
            break
        head.append(line)
    if head and not head[-1].endswith("\n"):
        head[-1] += "\n"
    return "".join(head) + yamltext.dump(upgrade.body).decode("utf-8")
