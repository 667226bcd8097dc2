"""Layout: placed files → the output tree, `{path: bytes}`, exactly as it will be committed.

Per destination: `<path>/dependencies/<promise>/<pipeline|static>/…` and
`<path>/resources/<namespace>/<promise>/<request>/<pipeline>/…`, each area with a generated `kustomization.yaml`
listing its files (so `kubectl kustomize` and Flux build it, and an empty area still exists for Flux). Every
object is stamped with Kratix's labels. Bookkeeping lives under `.kratix/` at the root, outside every
destination. Same input, same bytes: files are sorted and YAML is dumped by `kratix.yamltext`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kratix import yamltext
from kratix.documents import BlobRef, Content
from kratix.manifests import AREAS, BOOKKEEPING, MANAGED_BY, PlacedFile, object_id

KUSTOMIZATION = "kustomization.yaml"
BUILTIN_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})


def find_conflicts(placed: Iterable[PlacedFile]) -> dict[tuple[str, str], list[PlacedFile]]:
    """Objects emitted twice to one destination, by two owners or by one (kustomize would refuse the whole
    destination): the file of each emission, by (destination, object id)."""
    seen: dict[tuple[str, str], list[PlacedFile]] = {}
    for item in placed:
        for document in item.file.documents:
            seen.setdefault((item.destination, object_id(document)), []).append(item)
    return {key: items for key, items in seen.items() if len(items) > 1}


def stamp(document: Mapping[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    metadata = dict(document.get("metadata") or {})
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    return {**document, "metadata": metadata}


def render_file(item: PlacedFile) -> bytes:
    return yamltext.dump_all(stamp(document, item.labels) for document in item.file.documents)


def build_tree(placed: Sequence[PlacedFile], *, destinations: Iterable[str], bookkeeping: Mapping[str, Any],
               kept: Mapping[str, Content] | None = None,
               kept_objects: Mapping[str, set[str]] | None = None) -> dict[str, Content]:
    """`bookkeeping` maps paths under `.kratix/` to documents, or to contents kept as they are; `kept` holds
    previously published files carried over verbatim (last-known-good output of what fails now, and the output
    of requests that did not change), and `kept_objects` the object ids they hold per destination."""
    files: dict[str, Content] = {}
    listed: dict[str, list[str]] = defaultdict(list)
    for item in placed:
        files[item.output_path] = render_file(item)
        listed[f"{item.destination}/{item.area}"].append(item.path)
    known = set(destinations)
    for path, data in (kept or {}).items():
        for area in AREAS:
            destination, marker, inside = path.partition(f"/{area}/")
            if marker and destination in known and inside != KUSTOMIZATION:
                files[path] = data
                listed[f"{destination}/{area}"].append(inside)
                break
    emitted = _emitted_namespaces(placed, kept_objects or {})
    for destination in destinations:
        for namespace in _namespaces_to_create(destination, listed, emitted.get(destination, set())):
            path = f"{namespace}/namespace.yaml"
            files[f"{destination}/resources/{path}"] = yamltext.dump(namespace_object(namespace))
            listed[f"{destination}/resources"].append(path)
        for area in AREAS:
            folder = f"{destination}/{area}"
            files[f"{folder}/{KUSTOMIZATION}"] = kustomization(sorted(set(listed.get(folder, ()))))
    for path, document in bookkeeping.items():
        kept_as_is = isinstance(document, bytes | BlobRef)
        files[f"{BOOKKEEPING}/{path}"] = document if kept_as_is else yamltext.dump_sorted(document)
    return dict(sorted(files.items()))


def namespace_object(name: str) -> dict[str, Any]:
    # Flux must never prune a request namespace: it may hold what others put there after we created it.
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {MANAGED_BY: "kratix"},
                         "annotations": {"kustomize.toolkit.fluxcd.io/prune": "disabled"}}}


def _emitted_namespaces(placed: Sequence[PlacedFile], kept_objects: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """Per destination, the Namespaces some output already holds (rendered now, or carried over)."""
    emitted: dict[str, set[str]] = defaultdict(set)
    for item in placed:
        for document in item.file.documents:
            if document.get("kind") == "Namespace" and document.get("apiVersion") == "v1":
                emitted[item.destination].add(str((document.get("metadata") or {}).get("name")))
    for destination, objects in kept_objects.items():
        emitted[destination].update(o.split("/", 1)[1] for o in objects if o.startswith("Namespace/"))
    return emitted


def _namespaces_to_create(destination: str, listed: Mapping[str, list[str]], emitted: set[str]) -> list[str]:
    """The namespaces of the requests placed on a destination, unless some output already emits that Namespace."""
    used = {path.split("/", 1)[0] for path in listed.get(f"{destination}/resources", ())}
    return sorted(used - emitted - BUILTIN_NAMESPACES)


def kustomization(resources: Sequence[str]) -> bytes:
    return yamltext.dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": list(resources),
    })
