"""Status back: the statuses the compiler published in the output repo, onto the objects in the cluster.

In: the output repo's `.kratix/status/<namespace>/<promise>/<request>.yaml` and `.kratix/promises/<name>.yaml`
files (each `{apiVersion, kind, metadata: {name, namespace?}, status}`) and the objects as observed. Out:
`StatusUpdate`s, one JSON merge patch of `.status` per object whose status differs (keys the file no longer
has are set to null, so the object ends up with exactly the published status). Objects not in the cluster and
files that do not parse are skipped (logged by the caller); a status file is never an error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from kratix import yamltext
from kratix.controller.crds import Resource

log = logging.getLogger(__name__)

STATUS_FOLDERS = (".kratix/status/", ".kratix/promises/")

Key = tuple[str, str]


@dataclass(frozen=True)
class PublishedStatus:
    group: str
    kind: str
    namespace: str
    name: str
    status: dict[str, Any]


@dataclass(frozen=True)
class StatusUpdate:
    resource: Resource
    namespace: str
    name: str
    patch: dict[str, Any]


def parse_status_files(files: Mapping[str, bytes]) -> list[PublishedStatus]:
    published: list[PublishedStatus] = []
    for path, data in sorted(files.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        try:
            document = next(yamltext.load_plain(data), None)
        except yaml.YAMLError as exc:
            log.warning("skipping status file %s: %s", path, exc)
            continue
        entry = _published(document)
        if entry is None:
            log.warning("skipping status file %s: not {apiVersion, kind, metadata.name, status}", path)
        else:
            published.append(entry)
    return published


def plan_status(published: list[PublishedStatus], *, resources: Mapping[tuple[str, str], Resource],
                observed: Mapping[Resource, Mapping[Key, dict[str, Any]]]) -> list[StatusUpdate]:
    """Patches for the observed objects whose `.status` differs from what the compiler published."""
    updates: list[StatusUpdate] = []
    for entry in published:
        resource = resources.get((entry.group, entry.kind))
        if resource is None:
            continue
        namespace = entry.namespace if resource.namespaced else ""
        body = observed.get(resource, {}).get((namespace, entry.name))
        if body is None:
            continue
        current: dict[str, Any] = body["status"] if isinstance(body.get("status"), dict) else {}
        if current != entry.status:
            updates.append(StatusUpdate(resource=resource, namespace=namespace, name=entry.name,
                                        patch=merge_patch(current, entry.status)))
    return updates


def merge_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The RFC 7386 merge patch that turns `current` into `desired` (lists are replaced whole)."""
    patch: dict[str, Any] = {key: None for key in current if key not in desired}
    for key, value in desired.items():
        old = current.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            if old != value:
                patch[key] = merge_patch(old, value)
        elif key not in current or old != value:
            patch[key] = value
    return patch


def _published(document: Any) -> PublishedStatus | None:
    if not isinstance(document, dict):
        return None
    api_version, kind = document.get("apiVersion"), document.get("kind")
    metadata, status = document.get("metadata"), document.get("status")
    if not isinstance(api_version, str) or not isinstance(kind, str) or not isinstance(metadata, dict):
        return None
    if not isinstance(metadata.get("name"), str) or not isinstance(status, dict):
        return None
    group = api_version.rpartition("/")[0]
    return PublishedStatus(group=group, kind=kind, namespace=str(metadata.get("namespace") or ""),
                           name=metadata["name"], status=status)
