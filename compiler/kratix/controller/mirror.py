"""The mirror decision: which files the input repo should hold for the objects observed in the platform
cluster.

In: a `Snapshot` of the observed Promises, Destinations and requests, and the repo's current files under
`promises/`, `clusters/` and `requests/`. Out: `Changes` (files to add, update and delete) and the paths the
controller refused to take over. Pure: the watch loop and the Git edge call it and act on its answer.

Ownership: every file the controller writes carries the annotation `kratix.io/mirrored-from:
platform-cluster`. A file without it was written by a Git author: the controller never overwrites nor deletes
it, even when an object with the same path exists in the cluster (that object is reported as a conflict
instead).

Never destructive by inference: a marked file is deleted only when the snapshot is `authoritative` for its
scope (`promises`, `clusters`, or `requests/<kind>`): the watch of that kind last completed a full,
successful list, and (for requests) its Promise's CRD is the Promise's own, up to date and established. Then
an object absent from the snapshot was deleted from the cluster. Anything else (a kind not listed yet, a
failed list, a rejected or foreign CRD, a Promise whose API is broken or gone) leaves its files as they are:
they can be added and updated, never deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from kratix import yamltext
from kratix.controller.crds import Resource

MARKER_ANNOTATION = "kratix.io/mirrored-from"
MARKER_VALUE = "platform-cluster"
MIRRORED_FOLDERS = ("promises/", "clusters/", "requests/")

# Server-owned bookkeeping: nobody wrote it, and keeping it would make every write a new commit.
_SERVER_METADATA = (
    "resourceVersion",
    "uid",
    "generation",
    "managedFields",
    "creationTimestamp",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
_CLIENT_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)

ObjectsByName = Mapping[tuple[str, str], dict[str, Any]]  # (namespace or "", name) -> body


PROMISES_SCOPE = "promises"
DESTINATIONS_SCOPE = "clusters"


def request_scope(kind: str) -> str:
    return f"requests/{kind.lower()}"


@dataclass(frozen=True)
class Snapshot:
    """What the watches have seen. `authoritative`: the scopes (`PROMISES_SCOPE`, `DESTINATIONS_SCOPE`,
    `request_scope(kind)`) whose objects are known completely, so that a missing object was deleted."""

    promises: ObjectsByName = field(default_factory=dict)
    destinations: ObjectsByName = field(default_factory=dict)
    requests: Mapping[Resource, ObjectsByName] = field(default_factory=dict)
    authoritative: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Changes:
    contents: Mapping[str, bytes]  # the new bytes of every added or updated path
    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.updated or self.deleted)


@dataclass(frozen=True)
class Plan:
    changes: Changes
    conflicts: tuple[str, ...] = ()  # paths a cluster object maps to but a Git author owns


def desired_files(snapshot: Snapshot) -> dict[str, bytes]:
    """Every file the cluster's objects map to, as the controller writes them (marked, no bookkeeping)."""
    return {path: render_object(body) for path, body in objects_by_path(snapshot).items()}


def objects_by_path(snapshot: Snapshot) -> dict[str, Mapping[str, Any]]:
    """Which observed object each mirrored path holds."""
    objects: dict[str, Mapping[str, Any]] = {}
    for (_, name), body in snapshot.promises.items():
        if _safe(name):
            objects[f"promises/{name}/promise.yaml"] = body
    for (_, name), body in snapshot.destinations.items():
        if _safe(name):
            objects[f"clusters/{name}.yaml"] = body
    for resource, by_name in snapshot.requests.items():
        for (namespace, name), body in by_name.items():
            if _safe(namespace) and _safe(name) and _safe(resource.kind):
                objects[request_path(resource.kind, namespace, name)] = body
    return objects


def request_path(kind: str, namespace: str, name: str) -> str:
    return f"requests/{namespace}/{kind.lower()}/{name}.yaml"


def plan_changes(desired: Mapping[str, bytes], current: Mapping[str, bytes], *, authoritative: frozenset[str]) -> Plan:
    """Turn `current` (the repo's files in the mirrored folders) into `desired`: only marked files change, and
    only files of an `authoritative` scope are deleted."""
    contents: dict[str, bytes] = {}
    added: list[str] = []
    updated: list[str] = []
    conflicts: list[str] = []
    for path, data in sorted(desired.items()):
        existing = current.get(path)
        if existing is None:
            added.append(path)
            contents[path] = data
        elif not is_marked(existing):
            conflicts.append(path)
        elif existing != data:
            updated.append(path)
            contents[path] = data
    deleted = [
        path
        for path, data in sorted(current.items())
        if path not in desired and scope_of(path) in authoritative and is_marked(data)
    ]
    changes = Changes(contents=contents, added=tuple(added), updated=tuple(updated), deleted=tuple(deleted))
    return Plan(changes=changes, conflicts=tuple(conflicts))


def render_object(body: Mapping[str, Any]) -> bytes:
    return yamltext.dump(clean_object(body))


def clean_object(body: Mapping[str, Any]) -> dict[str, Any]:
    """What a user wrote, plus the ownership marker: no status, no server bookkeeping, apiVersion first."""
    written = body.get("metadata") or {}
    metadata = {key: value for key, value in written.items() if key not in _SERVER_METADATA and key != "annotations"}
    annotations = {
        key: value for key, value in (written.get("annotations") or {}).items() if key not in _CLIENT_ANNOTATIONS
    }
    annotations[MARKER_ANNOTATION] = MARKER_VALUE
    metadata["annotations"] = annotations
    cleaned: dict[str, Any] = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": _name_first(metadata),
    }
    for key, value in body.items():
        if key not in ("apiVersion", "kind", "metadata", "status"):
            cleaned[key] = value
    return cleaned


def is_marked(data: bytes) -> bool:
    """Whether the controller wrote this file (its first document carries the marker annotation)."""
    if MARKER_ANNOTATION.encode() not in data:
        return False  # the common case for Git-authored files, decided without parsing
    try:
        document = next(yamltext.load_plain(data), None)
    except yaml.YAMLError:
        return False
    if not isinstance(document, dict) or not isinstance(document.get("metadata"), dict):
        return False
    annotations = document["metadata"].get("annotations")
    return isinstance(annotations, dict) and annotations.get(MARKER_ANNOTATION) == MARKER_VALUE


def commit_message(changes: Changes) -> str:
    """One line naming what changed (the path itself when only one file did), then every path."""
    paths = [
        *(f"add {p}" for p in changes.added),
        *(f"update {p}" for p in changes.updated),
        *(f"delete {p}" for p in changes.deleted),
    ]
    if len(paths) == 1:
        subject = f"Mirror from platform cluster: {paths[0]}"
    else:
        counts = [
            f"{verb} {len(group)}"
            for verb, group in (("add", changes.added), ("update", changes.updated), ("delete", changes.deleted))
            if group
        ]
        subject = f"Mirror from platform cluster: {', '.join(counts)} files"
    return subject + "\n\n" + "".join(f"- {line}\n" for line in paths)


def _name_first(metadata: dict[str, Any]) -> dict[str, Any]:
    order = ("name", "namespace", "labels", "annotations")
    ordered = {key: metadata[key] for key in order if key in metadata}
    ordered.update((key, value) for key, value in metadata.items() if key not in ordered)
    return ordered


def _safe(segment: str) -> bool:
    # The API server validates names as DNS labels; this only guards the repo against path tricks.
    return bool(segment) and "/" not in segment and segment not in (".", "..") and "\\" not in segment


def scope_of(path: str) -> str | None:
    """The scope a mirrored path belongs to, or None for a path the controller never writes."""
    parts = path.split("/")
    if not path.endswith(".yaml"):
        return None
    if len(parts) == 3 and parts[0] == "promises" and parts[2] == "promise.yaml":
        return PROMISES_SCOPE
    if len(parts) == 2 and parts[0] == "clusters":
        return DESTINATIONS_SCOPE
    if len(parts) == 4 and parts[0] == "requests":
        return request_scope(parts[2])
    return None
