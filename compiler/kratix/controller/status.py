"""Status back: the statuses the compiler published in the output repo, onto the objects in the cluster.

In: the output repo's `.kratix/status/<namespace>/<promise>/<request>.yaml` and `.kratix/promises/<name>.yaml`
files (each `{apiVersion, kind, metadata: {name, namespace?}, status}`) and the objects as observed. Out:
`StatusUpdate`s, one JSON merge patch of `.status` per object whose status differs (keys the file no longer
has are set to null, so the object ends up with exactly the published status). Objects not in the cluster and
files that do not parse are skipped (logged by the caller); a status file is never an error.

The controller's own conditions (`CONTROLLER_CONDITION_TYPES`, e.g. a Promise whose API it cannot serve) are
merged into whatever the compiler published, by type, so neither writer erases the other's; a condition keeps
its `lastTransitionTime` while its status stays the same.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from kratix import yamltext
from kratix.controller.crds import Resource

log = logging.getLogger(__name__)

API_CONDITION = "APIAvailable"  # on a Promise: whether the controller serves its request API
CONTROLLER_CONDITION_TYPES = frozenset({API_CONDITION})

Key = tuple[str, str]
ObjectKey = tuple[Resource, str, str]  # (resource, namespace or "", name)


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


def plan_status(
    published: list[PublishedStatus],
    *,
    resources: Mapping[tuple[str, str], Resource],
    observed: Mapping[Resource, Mapping[Key, dict[str, Any]]],
    conditions: Mapping[ObjectKey, dict[str, Any]] | None = None,
    now: str = "",
) -> list[StatusUpdate]:
    """Patches for the observed objects whose `.status` differs from what the compiler published with the
    controller's `conditions` merged in (`now`: the RFC 3339 time a changed condition transitioned)."""
    wanted: dict[ObjectKey, dict[str, Any] | None] = {}
    for entry in published:
        resource = resources.get((entry.group, entry.kind))
        if resource is not None:
            wanted[(resource, entry.namespace if resource.namespaced else "", entry.name)] = entry.status
    for key in conditions or {}:
        wanted.setdefault(key, None)  # None: nothing published; the object's own status is the base
    updates: list[StatusUpdate] = []
    for (resource, namespace, name), published_status in wanted.items():
        body = observed.get(resource, {}).get((namespace, name))
        if body is None:
            continue
        current: dict[str, Any] = body["status"] if isinstance(body.get("status"), dict) else {}
        base = published_status if published_status is not None else current
        desired = with_conditions(
            base, current=current, mine=(conditions or {}).get((resource, namespace, name)), now=now
        )
        if current != desired:
            updates.append(
                StatusUpdate(resource=resource, namespace=namespace, name=name, patch=merge_patch(current, desired))
            )
    return updates


def with_conditions(
    base: Mapping[str, Any], *, current: Mapping[str, Any], mine: dict[str, Any] | None, now: str
) -> dict[str, Any]:
    """`base` whose controller-typed conditions are `mine` (or, without one, those `current` has)."""
    status = copy.deepcopy(dict(base))
    others = [c for c in _conditions(base) if c.get("type") not in CONTROLLER_CONDITION_TYPES]
    previous = [c for c in _conditions(current) if c.get("type") in CONTROLLER_CONDITION_TYPES]
    if mine is None:
        ours = previous
    else:
        before = next((c for c in previous if c.get("type") == mine["type"]), None)
        since = before.get("lastTransitionTime") if before and before.get("status") == mine["status"] else None
        ours = [*(c for c in previous if c.get("type") != mine["type"]), {**mine, "lastTransitionTime": since or now}]
    if ours or "conditions" in status:
        status["conditions"] = [*others, *ours]
    return status


def _conditions(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    conditions = status.get("conditions")
    return [c for c in conditions if isinstance(c, dict)] if isinstance(conditions, list) else []


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
    return PublishedStatus(
        group=group, kind=kind, namespace=str(metadata.get("namespace") or ""), name=metadata["name"], status=status
    )
