"""Layout: placed files → the output tree, `{path: bytes}`, exactly as it will be committed.

In: the placed files (each already knows its path, `kratix.model.paths`), the destinations, the previously published
files carried over (last-known-good output, unchanged requests) and the bookkeeping documents. Out: the tree, and
which destination each file the layout generates itself belongs to.

Per destination, by its filepath mode: its workloads (every object stamped with Kratix's labels; a file that
holds no Kubernetes object written as it is); a generated `kustomization.yaml` for each folder Flux builds,
listing the files that hold Kubernetes objects (kustomize refuses anything else), so that `kubectl kustomize`
and Flux build it and an empty destination still exists for Flux; when nested, a Namespace for each request
namespace no output creates; with initWorkloads, Kratix's canary Namespace and ConfigMap (unless some output
already emits that object); when aggregated, the one file holding every workload (dependencies first, then
resources, each in path order) joined with `---`. Same input, same bytes: files are sorted and YAML is dumped by
`kratix.yamltext`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kratix import workers, yamltext
from kratix.model import paths
from kratix.model.documents import BlobRef, Content, Store
from kratix.model.manifests import MANAGED_BY, PlacedFile, RenderedFile, object_id
from kratix.model.platform import Destination

BUILTIN_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
CANARY_NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kratix-worker-system"}}
CANARY_CONFIGMAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "kratix-info", "namespace": "kratix-worker-system"},
    "data": {"canary": "this confirms your infrastructure is reading from Kratix state stores"},
}


@dataclass(frozen=True)
class Kept:
    """A previously published file carried over as it is."""

    content: Content
    destination: str  # the name of the destination it was written for
    objects: tuple[str, ...]  # the ids of the Kubernetes objects it holds (none: delivered as written)


@dataclass(frozen=True)
class Tree:
    files: dict[str, Content]
    generated: dict[str, str]  # the files the layout wrote itself -> the name of their destination


def find_conflicts(placed: Iterable[PlacedFile]) -> dict[tuple[str, str], list[PlacedFile]]:
    """Objects emitted twice to one destination, by two owners or by one (kustomize would refuse the whole
    destination): the file of each emission, by (destination, object id)."""
    seen: dict[tuple[str, str], list[PlacedFile]] = {}
    for item in placed:
        for oid in objects_of(item):  # a packed file has its ids, no documents
            seen.setdefault((item.destination, oid), []).append(item)
    return {key: items for key, items in seen.items() if len(items) > 1}


def find_path_clashes(placed: Iterable[PlacedFile]) -> dict[str, list[PlacedFile]]:
    """Files written to one path twice, or where one file's path is another's folder (possible where outputs
    share a folder: a destination of filepath mode none), by the path they clash on."""
    by_path: dict[str, list[PlacedFile]] = defaultdict(list)
    for item in placed:
        by_path[item.output_path].append(item)
    clashes = {path: list(items) for path, items in by_path.items() if len(items) > 1}
    for path, items in by_path.items():
        for folder in paths.folders(path):
            if folder in by_path:
                clashes.setdefault(folder, list(by_path[folder])).extend(items)
    return clashes


def stamp(document: Mapping[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    metadata = dict(document.get("metadata") or {})
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    return {**document, "metadata": metadata}


def render_file(item: PlacedFile) -> Content:
    if item.content is not None:
        return item.content
    if item.file.raw is not None:
        return item.file.raw
    return yamltext.dump_all(stamp(document, item.labels) for document in item.file.documents)


def objects_of(item: PlacedFile) -> tuple[str, ...]:
    """The ids of the Kubernetes objects a file holds (none: a file delivered as written)."""
    if item.objects is not None:
        return item.objects
    return tuple(object_id(document) for document in item.file.documents)


def pack(item: PlacedFile, content: Content) -> PlacedFile:
    """`item` carrying its bytes (`render_file`) and object ids instead of its documents, and without the labels
    stamped into those bytes."""
    return replace(
        item, file=replace(item.file, documents=()), content=content, objects=objects_of(item), labels=_STAMPED
    )


_STAMPED: Mapping[str, str] = {}


@dataclass(frozen=True)
class Keeper:
    """What a packed file is kept as until the tree is written: its bytes handed to `store` (a file of an
    aggregated Destination keeps them: the one file the layout writes there is made of them), and its
    `RenderedFile`, the same for every request a template renders for once its documents are dropped, shared.
    One per compile."""

    store: Store
    joined: frozenset[str]  # the aggregated Destinations
    files: dict[RenderedFile, RenderedFile] = field(default_factory=dict)

    def __call__(self, item: PlacedFile) -> PlacedFile:
        if not isinstance(item.content, bytes):  # not packed yet, or kept already
            return item
        content = item.content if item.destination in self.joined else self.store(item.output_path, item.content)
        return replace(item, content=content, file=self.files.setdefault(item.file, item.file))


def build_tree(
    placed: Sequence[PlacedFile],
    *,
    destinations: Iterable[Destination],
    bookkeeping: Mapping[str, Any],
    kept: Mapping[str, Kept] | None = None,
    read: Callable[[str], bytes] | None = None,
    jobs: int = 1,
) -> Tree:
    """`bookkeeping` maps paths under `.kratix/` to documents, or to contents kept as they are; `kept` holds
    previously published files carried over verbatim (last-known-good output of what fails now, and the output
    of requests that did not change); `read` turns a carried-over blob into bytes (an aggregated file is made of
    the bytes of its workloads)."""
    files: dict[str, Content] = {}
    generated: dict[str, str] = {}
    workloads: dict[str, list[tuple[str, Content, bool]]] = defaultdict(list)  # destination -> (path, content, k8s)
    emitted: dict[str, set[str]] = defaultdict(set)
    for item, content in zip(placed, render_files(placed, jobs=jobs), strict=True):
        objects = objects_of(item)
        workloads[item.destination].append((item.output_path, content, bool(objects)))
        emitted[item.destination].update(objects)
    by_name = {d.name: d for d in destinations}
    for path, carried in (kept or {}).items():
        destination = by_name.get(carried.destination)
        if destination is not None and destination.layout.holds(path):
            workloads[carried.destination].append((path, carried.content, bool(carried.objects)))
            emitted[carried.destination].update(carried.objects)
    for destination in by_name.values():
        items = workloads.get(destination.name, [])
        files.update((path, content) for path, content, _ in items)
        made = _generated(destination, items, emitted.get(destination.name, set()), read)
        files.update(made)
        generated.update((path, destination.name) for path in made)
    for path, document in bookkeeping.items():
        kept_as_is = isinstance(document, bytes | BlobRef)
        files[path] = document if kept_as_is else yamltext.dump_sorted(document)
    return Tree(dict(sorted(files.items())), generated)


def render_files(placed: Sequence[PlacedFile], *, jobs: int = 1) -> list[Content]:
    """`render_file` of each, over worker processes for those not packed yet (packed ones have their content)."""
    todo = [item for item in placed if item.content is None]
    made = iter(
        workers.map_ranges(lambda start, stop: [render_file(item) for item in todo[start:stop]], len(todo), jobs=jobs)
    )
    return [item.content if item.content is not None else next(made) for item in placed]


def generated_files(
    destination: Destination,
    workloads: Sequence[tuple[str, Content, bool]],
    emitted: set[str],
    read: Callable[[str], bytes] | None,
) -> dict[str, bytes]:
    """What `build_tree` generates for one destination from its workloads ((path, content, holds objects)) and
    the ids of the objects they emit: a compile that changes a few of a destination's files makes them again from
    the destination's provenance."""
    return _generated(destination, workloads, emitted, read)


def _generated(
    destination: Destination,
    workloads: Sequence[tuple[str, Content, bool]],
    emitted: set[str],
    read: Callable[[str], bytes] | None,
) -> dict[str, bytes]:
    """The files the layout writes for one destination: kustomizations, request namespaces, canaries, and the
    aggregated file."""
    layout = destination.layout
    listed: dict[str, list[str]] = {folder: [] for folder in layout.built_folders()}
    files: dict[str, bytes] = {}

    def add(path: str, document: Mapping[str, Any], folder: str) -> None:
        files[path] = yamltext.dump(document)
        listed[folder].append(_relative(path, folder))

    if layout.mode == paths.AGGREGATED:
        parts = sorted(
            workloads, key=lambda w: (not w[0].startswith(layout.area_folder(paths.DEPENDENCIES) + "/"), w[0])
        )
        if parts:
            files[layout.aggregated_file] = _aggregate(
                content if isinstance(content, bytes) else _read(read, path) for path, content, _ in parts
            )
            listed[layout.root].append(layout.filename)
    else:
        # Hoisted out of the loop: a destination of a 100,000-request platform holds thousands of workloads.
        prefixes = [(folder, folder + "/" if folder else "") for folder in layout.built_folders()]
        for path, _, objects in workloads:
            if objects:
                folder = next((f for f, prefix in prefixes if path.startswith(prefix)), None)
                if folder is not None:
                    listed[folder].append(_relative(path, folder))
    if layout.mode == paths.NESTED:
        resources = layout.area_folder(paths.RESOURCES)
        for namespace in _namespaces_to_create(listed[resources], emitted):
            add(paths.join(resources, namespace, paths.NAMESPACE_FILE), namespace_object(namespace), resources)
    if destination.init_workloads:
        folders = layout.built_folders()
        for path, document, folder in zip(
            layout.canary_files(), (CANARY_NAMESPACE, CANARY_CONFIGMAP), (folders[0], folders[-1]), strict=True
        ):
            if object_id(document) not in emitted:
                add(path, document, folder)
    for folder, entries in listed.items():
        files[paths.join(folder, paths.KUSTOMIZATION)] = kustomization(sorted(set(entries)))
    return files


def _relative(path: str, folder: str) -> str:
    return path[len(folder) + 1 :] if folder else path


def _read(read: Callable[[str], bytes] | None, path: str) -> bytes:
    if read is None:
        raise ValueError(f"{path}: a carried-over file, and no way to read it")
    return read(path)


def _aggregate(contents: Iterable[bytes]) -> bytes:
    """Kratix's aggregatedYAML: every workload, joined with `---`."""
    return b"---\n".join(content if content.endswith(b"\n") else content + b"\n" for content in contents)


def namespace_object(name: str) -> dict[str, Any]:
    # Flux must never prune a request namespace: it may hold what others put there after we created it.
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {MANAGED_BY: "kratix"},
            "annotations": {"kustomize.toolkit.fluxcd.io/prune": "disabled"},
        },
    }


def _namespaces_to_create(listed: Sequence[str], emitted: set[str]) -> list[str]:
    """The namespaces of the requests placed on a nested destination, unless some output already emits that
    Namespace."""
    used = {path.split("/", 1)[0] for path in listed if "/" in path}
    made = {object_id.split("/", 1)[1] for object_id in emitted if object_id.startswith("Namespace/")}
    return sorted(used - made - BUILTIN_NAMESPACES)


def kustomization(resources: Sequence[str]) -> bytes:
    return yamltext.dump(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": list(resources),
        }
    )
