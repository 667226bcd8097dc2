"""Healing: the compiler's memory rebuilt from the output tree itself, when its bookkeeping cannot be read.

In: the files of the output branch (and the destination names the inventory knows by path). Out: provenance
entries and placement records that say what the tree says: a file under
`<dest>/resources/<namespace>/<promise>/<request>/<pipeline>/` belongs to that request (its kind read from the
request's status file), one under `<dest>/dependencies/<promise>/` to that Promise, a `kustomization.yaml` or a
request namespace to the compiler; each file's objects are read from its content. What the tree cannot say — the
input commit and template behind each file — is left unknown. Refuses nothing: a file it cannot read has no
objects, a request whose status cannot be read has kind "?".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from kratix import provenance, yamltext
from kratix.manifests import AREAS, BOOKKEEPING, destination_of, object_id

_KUSTOMIZATION = "kustomization.yaml"
_NAMESPACE_FILE = "namespace.yaml"


def rebuild_provenance(files: Mapping[str, bytes], *, status_folder: str) -> list[provenance.Entry]:
    prefetch = getattr(files, "prefetch", None)
    owned = [path for path in files if not path.startswith(BOOKKEEPING + "/") and destination_of(path) is not None]
    if prefetch is not None:
        prefetch(owned)
    kinds: dict[str, str] = {}
    entries = []
    for path in sorted(owned):
        destination = destination_of(path)
        assert destination is not None
        area, inside = _area_of(path, destination)
        parts = inside.split("/")
        owner, promise, request, pipeline = provenance.GENERATED, None, None, None
        if area == "resources" and len(parts) >= 5:
            namespace, promise, name, pipeline = parts[:4]
            status = f"{BOOKKEEPING}/{status_folder}/{namespace}/{promise}/{name}.yaml"
            if status not in kinds:
                kinds[status] = _kind_in(files.get(status))
            owner = request = f"{kinds[status]} {namespace}/{name}"
        elif area == "dependencies" and len(parts) >= 3:
            promise, pipeline = parts[:2]
            owner = f"Promise {promise}"
        objects = () if parts[-1] == _KUSTOMIZATION else _objects_in(files[path])
        entries.append(provenance.Entry(path=path, owner=owner, destination=destination, promise=promise,
                                        request=request, pipeline=pipeline, objects=objects))
    return entries


def rebuild_placements(entries: Iterable[provenance.Entry], names_by_path: Mapping[str, str]) -> dict[str, str]:
    """Placement records (`Kind/namespace/name#pipeline`) from where each request's files are."""
    placements: dict[str, str] = {}
    for entry in sorted(entries, key=lambda e: e.path):
        if entry.request is None or entry.pipeline is None or entry.destination is None:
            continue
        kind, _, where = entry.request.partition(" ")
        record = f"{kind}/{where}#{entry.pipeline}"
        placements.setdefault(record, names_by_path.get(entry.destination, entry.destination))
    return placements


def _area_of(path: str, destination: str) -> tuple[str, str]:
    rest = path[len(destination) + 1:]
    for area in AREAS:
        if rest.startswith(area + "/"):
            return area, rest[len(area) + 1:]
    return "", rest


def _kind_in(data: bytes | None) -> str:
    document = _first(data)
    kind = document.get("kind") if isinstance(document, dict) else None
    return kind if isinstance(kind, str) and kind else "?"


def _objects_in(data: bytes) -> tuple[str, ...]:
    try:
        documents = list(yamltext.load_plain(data))
    except yaml.YAMLError:
        return ()
    return tuple(object_id(d) for d in documents if isinstance(d, dict))


def _first(data: bytes | None) -> Any:
    if not data:
        return None
    try:
        return next(iter(yamltext.load_plain(data)), None)
    except yaml.YAMLError:
        return None
