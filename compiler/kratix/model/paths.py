"""The output repo's layout: every path the compiler writes is spelled here, and every other module asks.

In: a destination's name, folder and `filepath` mode; a request's or Promise's identity. Out: where their files
go, which folders Flux builds, and where the compiler keeps its own bookkeeping.

The output tree is one mapping `{path: content}` over every Git state store a compile publishes to: the files
of the default store (`--output-repo`) at their paths in it, those of every other store under `@<store>/`
(`@dev-store/worker-1/...`); the publish edge splits it into one tree per repo and branch.

Per destination, by `spec.filepath.mode` (as Kratix lays out a state store, `internal/controller/
workplacement_controller.go`):
- `nestedByMetadata`: `<root>/dependencies/<promise>/<pipeline>/…` and
  `<root>/resources/<namespace>/<promise>/<request>/<pipeline>/…`, each area with a generated
  `kustomization.yaml` (two Flux Kustomizations, the second depending on the first);
- `none`: each file at `<root>/<its path under /kratix/output>`, and per work placement the state file Kratix
  keeps, `<root>/.kratix/<namespace>-<work placement>.yaml` (`files: [...]`, the paths it wrote), with one
  generated `kustomization.yaml` at `<root>` listing the files that hold Kubernetes objects;
- `aggregatedYAML`: one file `<root>/<filename>` (default `aggregated.yaml`) holding every workload on the
  destination, and a `kustomization.yaml` listing it. Each workload is also kept, byte for byte, under
  `.kratix/workloads/<destination>/` in the nested shape, so that what a failing request published stays, and an
  unchanged request is carried over, exactly as in the other modes.
With `initWorkloads` (the default), Kratix's two canary files: `kratix-canary-namespace.yaml` and
`kratix-canary-configmap.yaml` (in `dependencies/` and `resources/` when nested, else at `<root>`).

The compiler's bookkeeping lives under `.kratix/` at the root of the default store: statuses, Promise statuses,
placements, the inventory, provenance and request-cache shards, and the workloads of aggregated destinations.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from urllib.parse import quote

BOOKKEEPING = ".kratix"
DEPENDENCIES = "dependencies"
RESOURCES = "resources"
AREAS = (DEPENDENCIES, RESOURCES)  # the two folders of a nested destination, synced by two Flux Kustomizations
KUSTOMIZATION = "kustomization.yaml"
NAMESPACE_FILE = "namespace.yaml"  # a request's namespace, in a nested destination's resources/<namespace>/

NESTED = "nestedByMetadata"
AGGREGATED = "aggregatedYAML"
FLAT = "none"
MODES = (NESTED, AGGREGATED, FLAT)
AGGREGATED_FILENAME = "aggregated.yaml"
CANARY_NAMESPACE_FILE = "kratix-canary-namespace.yaml"
CANARY_CONFIGMAP_FILE = "kratix-canary-configmap.yaml"
STATE_FOLDER = ".kratix"  # inside a `none` destination: Kratix's state files, one per work placement
SYSTEM_NAMESPACE = "kratix-platform-system"  # the namespace of a Promise's work placements, in Kratix
GENERATED_SOURCE = "kratix"  # the `source` of a file the compiler writes itself (a state file)
STORE_PREFIX = "@"  # `@<store>/`: the files of a state store other than the default one

PLACEMENTS = f"{BOOKKEEPING}/placements.json"  # JSON: tens of thousands of entries parse 20x faster than YAML
INVENTORY = f"{BOOKKEEPING}/inventory.json"
# What a compile that reads only what changed needs of the rest (`kratix.memory.totals`).
TOTALS = f"{BOOKKEEPING}/totals.json"
OUTPUT_TREE_TRAILER = "Output-Tree"  # a commit's own tree id, in its message: the branch holds what kratix wrote
STATUS_FOLDER = f"{BOOKKEEPING}/status"
PROMISE_STATUS_FOLDER = f"{BOOKKEEPING}/promises"
PROVENANCE_FOLDER = f"{BOOKKEEPING}/provenance"
CACHE_FOLDER = f"{BOOKKEEPING}/cache"
WORKLOADS_FOLDER = f"{BOOKKEEPING}/workloads"
STATUS_FOLDERS = (STATUS_FOLDER + "/", PROMISE_STATUS_FOLDER + "/")  # what the controller reads back


def join(*parts: str) -> str:
    """Path parts joined with `/`, empty parts (the root) left out."""
    return "/".join(part for part in parts if part)


def folders(path: str) -> list[str]:
    """The folders a path lies in, deepest first (`a/b/c` → `a/b`, `a`)."""
    found = []
    cut = path.rfind("/")
    while cut > 0:
        found.append(path[:cut])
        cut = path.rfind("/", 0, cut)
    return found


def is_bookkeeping(path: str) -> bool:
    return path.startswith(BOOKKEEPING + "/")


def request_status(namespace: str, promise: str, name: str) -> str:
    return f"{STATUS_FOLDER}/{namespace}/{promise}/{name}.yaml"


def promise_status(name: str) -> str:
    return f"{PROMISE_STATUS_FOLDER}/{name}.yaml"


@lru_cache(maxsize=4096)
def provenance_shard(destination: str) -> str:
    """The provenance of one destination's files (`_` holds what belongs to none)."""
    return f"{PROVENANCE_FOLDER}/{quote(destination or '_', safe='')}.jsonl"


def is_provenance_shard(path: str) -> bool:
    return path.startswith(PROVENANCE_FOLDER + "/")


@lru_cache(maxsize=4096)
def cache_shard(namespace: str) -> str:
    return f"{CACHE_FOLDER}/{quote(namespace, safe='')}.jsonl"


def is_cache_shard(path: str) -> bool:
    return path.startswith(CACHE_FOLDER + "/")


def store_prefix(store: str) -> str:
    """The folder of the output tree that holds a state store's files (a store other than the default)."""
    return f"{STORE_PREFIX}{store}"


def target_of(path: str) -> str:
    """The store prefix of a path of the output tree: `@<store>`, or "" for the default store."""
    return path.split("/", 1)[0] if path.startswith(STORE_PREFIX) else ""


def in_target(path: str) -> str:
    """A path of the output tree as a path of its store's repo."""
    return path.split("/", 1)[1] if path.startswith(STORE_PREFIX) else path


def static_flat_path(promise: str, file_path: str) -> str:
    """Where Kratix writes a Promise's spec.dependencies in a destination without nesting."""
    return f"static/{promise}-{file_path}"


def work_name(identifier: str) -> str:
    """A Work's name as Kratix makes it (`objectutil.GenerateDeterministicObjectName`): the identifier cut to 56
    characters and trimmed to end alphanumeric, a `-` and five hex digits of its MD5. (Kratix's own Works end in
    five random characters; these are stable, so the state files keep their names between compiles.)"""
    name = identifier[:56] if len(identifier) > 57 else identifier
    while name and not (name[-1].isascii() and name[-1].isalnum()):
        name = name[:-1]
    return f"{name}-{hashlib.md5(identifier.encode(), usedforsecurity=False).hexdigest()[:5]}"


def work_placement_name(identifier: str, destination: str, directory: str | None) -> str:
    """`<work>.<destination>-<first five hex digits of the MD5 of the group's directory>` (`.` for the root
    group), as Kratix's scheduler names a WorkPlacement."""
    group = hashlib.md5((directory or ".").encode(), usedforsecurity=False).hexdigest()[:5]
    return f"{work_name(identifier)}.{destination}-{group}"


def work_identifier(promise: str, pipeline: str, request: tuple[str, str] | None, *, static: bool = False) -> str:
    """Kratix's work-creator identifier: `<promise>-<pipeline>`, or `<promise>-<request>-<namespace>-<pipeline>`
    for a request's (given as (namespace, name)); a Promise's `spec.dependencies` are `<promise>-static-deps`."""
    if request is None:
        return f"{promise}-static-deps" if static else f"{promise}-{pipeline}"
    namespace, name = request
    return f"{promise}-{name}-{namespace}-{pipeline}"


@dataclass(frozen=True)
class Layout:
    """Where one destination's files go in the output tree."""

    name: str  # the Destination's name
    root: str  # its folder in the output tree: [@<store>/]<store path>/<spec.path>, "" for a store's root
    mode: str = NESTED
    filename: str = AGGREGATED_FILENAME  # aggregatedYAML: the one file
    path: str = ""  # its spec.path, as Kratix lists files relative to the store's path (state files)

    def workload(self, area: str, inner: str, flat: str) -> str:
        """A rendered file: `inner` is its nested path inside the area, `flat` its path under /kratix/output."""
        if self.mode == FLAT:
            return join(self.root, flat)
        if self.mode == AGGREGATED:
            return join(WORKLOADS_FOLDER, self.name, area, inner)
        return join(self.root, area, inner)

    def area_folder(self, area: str) -> str:
        """Where the workloads of an area are: in the destination (nested) or in the bookkeeping (aggregated)."""
        if self.mode == AGGREGATED:
            return join(WORKLOADS_FOLDER, self.name, area)
        return join(self.root, area)

    def built_folders(self) -> tuple[str, ...]:
        """The folders Flux (and `kubectl kustomize`) builds, each with a generated kustomization.yaml."""
        if self.mode == NESTED:
            return tuple(join(self.root, area) for area in AREAS)
        return (self.root,)

    @property
    def aggregated_file(self) -> str:
        return join(self.root, self.filename)

    def canary_files(self) -> tuple[str, str]:
        """Kratix's canary files (initWorkloads): the Namespace's, then the ConfigMap's."""
        if self.mode == NESTED:
            return (
                join(self.root, DEPENDENCIES, CANARY_NAMESPACE_FILE),
                join(self.root, RESOURCES, CANARY_CONFIGMAP_FILE),
            )
        return (join(self.root, CANARY_NAMESPACE_FILE), join(self.root, CANARY_CONFIGMAP_FILE))

    def state_file(self, namespace: str, work_placement: str) -> str:
        return join(self.root, STATE_FOLDER, f"{namespace}-{work_placement}.yaml")

    def state_listing(self, flat: str) -> str:
        """A file as a state file lists it: relative to the store's path (`<spec.path>/<file>`)."""
        return join(self.path, flat)

    @cached_property
    def _claims(self) -> tuple[str, ...]:
        return self._find_claims()

    def claims(self) -> tuple[str, ...]:
        """What the destination occupies in the output tree: folders end with `/` ("" is a whole store), files do
        not. Two destinations whose claims overlap would write over each other's files."""
        return self._claims

    def _find_claims(self) -> tuple[str, ...]:
        def folder(path: str) -> str:
            return path + "/" if path else ""

        if self.mode == NESTED:
            return tuple(folder(join(self.root, area)) for area in AREAS)
        if self.mode == FLAT:
            return (folder(self.root),)
        return (self.aggregated_file, join(self.root, KUSTOMIZATION), *self.canary_files())

    def holds(self, path: str) -> bool:
        """Whether `path` is one of this destination's files (or, aggregated, one of its kept workloads)."""
        if self.mode == AGGREGATED:
            return path.startswith(join(WORKLOADS_FOLDER, self.name) + "/") or path in self._claims
        return path.startswith(self._claims)

    def reserved(self, flat: str) -> str | None:
        """Why a pipeline may not write `flat` (its path under /kratix/output) to this destination, or None: in a
        `none` destination the compiler's own files sit beside the pipelines'."""
        if self.mode != FLAT:
            return None
        if flat in (KUSTOMIZATION, CANARY_NAMESPACE_FILE, CANARY_CONFIGMAP_FILE):
            return f"{flat} at the top of a filepath mode none destination is the compiler's own file"
        if flat.split("/", 1)[0] == STATE_FOLDER:
            return f"{STATE_FOLDER}/ in a filepath mode none destination holds Kratix's state files"
        return None

    def owner_in(self, path: str) -> tuple[str, ...] | None:
        """From a workload's path alone: `("resources", namespace, promise, request, pipeline)` or
        `("dependencies", promise, pipeline)`; None when the path does not say (mode none, generated files)."""
        if self.mode == FLAT:
            return None
        for area in AREAS:
            base = self.area_folder(area) + "/" if self.area_folder(area) else ""
            if not path.startswith(base):
                continue
            parts = path[len(base) :].split("/")
            if area == RESOURCES and len(parts) >= 5:
                return (area, *parts[:4])
            if area == DEPENDENCIES and len(parts) >= 3:
                return (area, *parts[:2])
        return None


def overlapping(one: str, other: str) -> bool:
    """Whether two claims (see `Layout.claims`) overlap."""

    def covers(claim: str, path: str) -> bool:
        return claim == path or ((claim == "" or claim.endswith("/")) and path.startswith(claim))

    return covers(one, other) or covers(other, one)


def bookkeeping_claim() -> str:
    return BOOKKEEPING + "/"


def destination_at(path: str, layouts: Iterable[Layout]) -> str | None:
    """The name of the destination whose files include `path`, None when none does."""
    for layout in layouts:
        if layout.holds(path):
            return layout.name
    return None
