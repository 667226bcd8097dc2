"""Healing: the compiler's memory rebuilt from the output tree itself, when its bookkeeping cannot be read.

In: the files of the output tree and the Destinations the inventory knows (their folders and filepath modes).
Out: provenance entries and placement records that say what the tree says: a workload under
`<root>/resources/<namespace>/<promise>/<request>/<pipeline>/` (or, for an aggregated destination, its copy under
`.kratix/workloads/<destination>/resources/…`) belongs to that request (its kind read from the request's status
file), one under `…/dependencies/<promise>/` to that Promise; the files of a destination of mode none, grouped by
the state file Kratix keeps for each work placement, to the request or Promise their objects' `kratix.io/*` labels
name; what the layout generates (kustomizations, request namespaces, canaries, an aggregated file) and whatever
says nothing of its owner (a work placement holding no object) to the compiler. Each file's objects are read
from its content. What the tree cannot say — the input commit and template behind each file — is left unknown.
When the inventory cannot be read either, destinations are recognised by their nested folders only. Refuses
nothing: a file it cannot read has no objects, a request whose status cannot be read has kind "?".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from kratix import yamltext
from kratix.memory import provenance
from kratix.model import paths
from kratix.model.manifests import PIPELINE_LABEL, PROMISE_LABEL, RESOURCE_LABEL, object_id


def rebuild_provenance(files: Mapping[str, bytes], known: list[paths.Layout]) -> list[provenance.Entry]:
    """`known`: the layouts of the Destinations the inventory knows (empty when it cannot be read)."""
    layouts = known or _guessed_layouts(files)
    owned = {
        path: name
        for path in files
        if (name := paths.destination_at(path, layouts)) is not None
        and (not paths.is_bookkeeping(path) or path.startswith(paths.WORKLOADS_FOLDER + "/"))
    }
    prefetch = getattr(files, "prefetch", None)
    if prefetch is not None:
        prefetch(owned)
    by_name = {layout.name: layout for layout in layouts}
    statuses = _status_files(files)
    grouped = _state_groups(files, [layout for layout in layouts if layout.mode == paths.FLAT], owned)
    entries = []
    for path, name in sorted(owned.items()):
        layout = by_name[name]
        owner, promise, request, pipeline = provenance.GENERATED, None, None, None
        found = layout.owner_in(path)
        objects = _objects_in(files[path])
        if found is not None and found[0] == paths.RESOURCES:
            _, namespace, promise, request_name, pipeline = found
            owner = request = (
                f"{_kind_in(files.get(paths.request_status(namespace, promise, request_name)))} "
                f"{namespace}/{request_name}"
            )
        elif found is not None:
            _, promise, pipeline = found
            owner = f"Promise {promise}"
        elif layout.mode == paths.FLAT:
            # a work placement's files share one owner: the one its objects' labels name
            group = grouped.get(path, [path])
            for member in group:
                owner, promise, request, pipeline = _owner_from_labels(files[member], statuses, files)
                if owner != provenance.GENERATED:
                    break
        if owner == provenance.GENERATED:
            # What the layout generates (kustomizations, request namespaces, canaries) is recorded without
            # objects, as it is when written: those objects are never counted as deletions.
            objects = ()
        entries.append(
            provenance.Entry(
                path=path,
                owner=owner,
                destination=name,
                promise=promise,
                request=request,
                pipeline=pipeline,
                objects=objects,
            )
        )
    return entries


def rebuild_placements(entries: Iterable[provenance.Entry]) -> dict[str, str]:
    """Placement records (`Kind/namespace/name#pipeline`) from where each request's files are."""
    placements: dict[str, str] = {}
    for entry in sorted(entries, key=lambda e: e.path):
        if entry.request is None or entry.pipeline is None or entry.destination is None:
            continue
        kind, _, where = entry.request.partition(" ")
        placements.setdefault(f"{kind}/{where}#{entry.pipeline}", entry.destination)
    return placements


def _state_groups(
    files: Mapping[str, bytes], layouts: Iterable[paths.Layout], owned: Mapping[str, str]
) -> dict[str, list[str]]:
    """For destinations of mode none: each file (and each state file) → the files of its work placement, as
    Kratix's state file lists them."""
    groups: dict[str, list[str]] = {}
    for layout in layouts:
        folder = paths.join(layout.root, paths.STATE_FOLDER) + "/"
        for state in [path for path in owned if path.startswith(folder) and path.count("/") == folder.count("/")]:
            documents = _documents(files[state])
            listed = documents[0].get("files") if documents else None
            if not isinstance(listed, list):
                continue
            prefix = layout.path + "/" if layout.path else ""
            members = [
                paths.join(layout.root, str(item)[len(prefix) :]) for item in listed if str(item).startswith(prefix)
            ]
            members = [member for member in members if member in owned]
            for member in [*members, state]:
                groups[member] = members
    return groups


def _guessed_layouts(files: Iterable[str]) -> list[paths.Layout]:
    """Nested destinations, recognised by their `dependencies/` and `resources/` folders (named by their folder)."""
    roots = set()
    for path in files:
        if paths.is_bookkeeping(path):
            continue
        for area in paths.AREAS:
            root, marker, _ = f"/{path}".partition(f"/{area}/")
            if marker:
                roots.add(root.lstrip("/"))
                break
    return [paths.Layout(root, root) for root in sorted(roots)]


def _status_files(files: Iterable[str]) -> dict[tuple[str, str], list[str]]:
    """The request status files, by (promise, request name)."""
    found: dict[tuple[str, str], list[str]] = {}
    prefix = paths.STATUS_FOLDER + "/"
    for path in files:
        if path.startswith(prefix):
            parts = path[len(prefix) :].split("/")
            if len(parts) == 3 and parts[2].endswith(".yaml"):
                found.setdefault((parts[1], parts[2][:-5]), []).append(parts[0])
    return found


def _owner_from_labels(
    data: bytes, statuses: Mapping[tuple[str, str], list[str]], files: Mapping[str, bytes]
) -> tuple[str, str | None, str | None, str | None]:
    """The owner the labels of a file's first object name (a request only when its status file says which)."""
    documents = _documents(data)
    labels = (documents[0].get("metadata") or {}).get("labels") or {} if documents else {}
    if not isinstance(labels, Mapping) or not isinstance(labels.get(PROMISE_LABEL), str):
        return provenance.GENERATED, None, None, None
    promise, name, pipeline = labels[PROMISE_LABEL], labels.get(RESOURCE_LABEL), labels.get(PIPELINE_LABEL)
    if name is None:
        return f"Promise {promise}", promise, None, pipeline
    namespaces = statuses.get((promise, str(name)), [])
    if len(namespaces) != 1:
        return provenance.GENERATED, None, None, None
    owner = f"{_kind_in(files.get(paths.request_status(namespaces[0], promise, str(name))))} {namespaces[0]}/{name}"
    return owner, promise, owner, pipeline


def _kind_in(data: bytes | None) -> str:
    document = _first(data)
    kind = document.get("kind") if isinstance(document, dict) else None
    return kind if isinstance(kind, str) and kind else "?"


def _documents(data: bytes) -> list[dict[str, Any]]:
    try:
        return [d for d in yamltext.load_plain(data) if isinstance(d, dict)]
    except (yaml.YAMLError, ValueError):
        return []


def _objects_in(data: bytes) -> tuple[str, ...]:
    return tuple(object_id(d) for d in _documents(data) if isinstance(d.get("kind"), str) and d.get("metadata"))


def _first(data: bytes | None) -> Any:
    if not data:
        return None
    try:
        return next(iter(yamltext.load_plain(data)), None)
    except (yaml.YAMLError, ValueError):
        return None
