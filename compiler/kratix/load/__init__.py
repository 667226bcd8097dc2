"""Load: the input repo (a work tree or one Git commit) → typed Promises, Destinations and resource requests.

In: a `SourceTree` ({path: bytes} of `promises/`, `clusters/`, `requests/`, `config/`), the `Inventory` of what the last
compile read, and where each state store's files go in the output tree. Out: a `Platform` and the diagnostics
of everything that could not be read as what its folder says it is. Nothing is validated against a request
schema here: requests keep the body as written (namespace filled in from their folder), but every name that
becomes a path or a label is checked first.
Refuses: what the modules below refuse, each file alone. A file that cannot be read is not a deletion: what the
inventory says it held stands in (a broken Promise, a broken Destination, held requests), so that one bad edit
never removes running infrastructure; only removing the file does.

The modules, by concern: `sources` (the I/O edge: work tree or commit → `SourceTree`), `promises` (with
`pipelines`), `destinations` (with state stores), `requests`, `configs` (the ConfigMaps and Secrets steps read),
`shapes` (the platform's own document shapes), and `shared` (parsing a file with diagnostics, unvalidated fields).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import PurePosixPath

from kratix.load.configs import parse_configs
from kratix.load.destinations import overlap_problem, parse_destinations, parse_state_stores
from kratix.load.promises import parse_promises, promise_documents
from kratix.load.requests import parse_requests
from kratix.load.shared import YAML_SUFFIXES
from kratix.load.sources import INPUT_FOLDERS, read_commit, read_worktree
from kratix.memory.inventory import Inventory
from kratix.model import paths
from kratix.model.diagnostics import Diagnostic, Severity
from kratix.model.documents import SourceDoc, SourceTree
from kratix.model.platform import (
    ApiRef,
    Destination,
    HeldRequest,
    Platform,
    Promise,
    RequestKey,
    ResourceRequest,
)

__all__ = [
    "INPUT_FOLDERS",
    "YAML_SUFFIXES",
    "SkipRequests",
    "parse_platform",
    "parse_state_stores",
    "read_commit",
    "read_worktree",
]

SkipRequests = Callable[[Mapping[str, Promise], Mapping[str, Destination]], frozenset[str]]


def parse_platform(
    tree: SourceTree,
    *,
    skip_requests: SkipRequests | None = None,
    known: Inventory | None = None,
    store_prefixes: Mapping[str, str] | None = None,
) -> tuple[Platform, list[Diagnostic]]:
    """`skip_requests`, given the parsed Promises and Destinations, names request files not to parse (the
    caller reuses what it knows of them). `known` is what the last compile read (None: nothing is known).
    `store_prefixes` says where a state store's files go in the output tree, when not under `@<store>/`."""
    known = known or Inventory()
    diagnostics = [
        Diagnostic(path, 1, 1, "", "source.unread", f"{path} {why}", Severity.ERROR)
        for path, why in sorted(tree.unread.items())
    ]
    promise_docs, file_problems, misnamed = promise_documents(tree)
    promises = parse_promises(promise_docs, diagnostics, tree)
    template_folders = {
        _join(p.folder, c.template)
        for p in promises.values()
        for pl in (*p.promise_configure, *p.resource_configure)
        for c in pl.containers
        if c.template
    }
    # A YAML file beside a Promise that does not parse is an error unless it lives in a template folder:
    # the render stage reports those with the step that uses them.
    diagnostics.extend(
        d
        for d in (*file_problems, *misnamed)
        if not any(d.file.startswith(folder + "/") for folder in template_folders)
    )
    broken = _broken_files(tree, diagnostics)
    promises.update(_standing_promises(known, promises, broken))
    destinations, stores = parse_destinations(tree, diagnostics, known=known, store_prefixes=store_prefixes)
    broken = _broken_files(tree, diagnostics)
    destinations.update(_standing_destinations(known, destinations, broken))
    skip = skip_requests(promises, destinations) if skip_requests else frozenset()
    requests = parse_requests(tree, promises, diagnostics, skip)
    broken = _broken_files(tree, diagnostics)
    held = _held_requests(known, promises, requests, broken)
    configs = parse_configs(tree, diagnostics)
    return Platform(
        promises=promises,
        destinations=destinations,
        requests=requests,
        commit=tree.commit,
        held=held,
        stores=stores,
        configs=configs,
    ), diagnostics


def _join(folder: str, relative: str) -> str:
    return str(PurePosixPath(folder, relative))


def _broken_files(tree: SourceTree, diagnostics: list[Diagnostic]) -> dict[str, str]:
    """Input files that exist but hold an error, each with its first error (the why of what stands in)."""
    broken: dict[str, str] = {}
    for diagnostic in diagnostics:
        if (
            diagnostic.severity is Severity.ERROR
            and diagnostic.file
            and diagnostic.file not in broken
            and (diagnostic.file in tree.files or diagnostic.file in tree.unread)
        ):
            field = f" {diagnostic.path}:" if diagnostic.path else ""
            broken[diagnostic.file] = f"{diagnostic.file}:{diagnostic.line}:{field} {diagnostic.message}"
    return broken


def _stand_in_source(file: str) -> SourceDoc:
    return SourceDoc(path=file, index=0, line=1, body={})


def _standing_promises(
    known: Inventory, promises: Mapping[str, Promise], broken: Mapping[str, str]
) -> dict[str, Promise]:
    """Promises the last compile read from files that are broken now, as it knew them."""
    served = {(p.api.group, p.api.kind) for p in promises.values() if p.api is not None}
    standing = {}
    for name, entry in known.promises.items():
        if name in promises or entry.file not in broken:
            continue
        api = None
        if entry.group and entry.kind and entry.version and (entry.group, entry.kind) not in served:
            api = ApiRef(entry.group, entry.version, entry.kind, entry.plural or entry.kind.lower() + "s")
        standing[name] = Promise(
            name=name,
            source=_stand_in_source(entry.file),
            folder=str(PurePosixPath(entry.file).parent),
            api=api,
            crd=None,
            broken=f"its file cannot be read: {broken[entry.file]}",
        )
    return standing


def _standing_destinations(
    known: Inventory, destinations: Mapping[str, Destination], broken: Mapping[str, str]
) -> dict[str, Destination]:
    """Destinations the last compile read from files that are broken now, as it knew them."""
    standing: dict[str, Destination] = {}
    for name, entry in known.destinations.items():
        if name in destinations or entry.file not in broken:
            continue
        destination = Destination(
            name=name,
            path=entry.path,
            labels=dict(entry.labels),
            strict_match_labels=entry.strict_match_labels,
            source=_stand_in_source(entry.file),
            broken=f"its file cannot be read: {broken[entry.file]}",
            mode=entry.mode or paths.NESTED,
            filename=entry.filename or paths.AGGREGATED_FILENAME,
            init_workloads=entry.init_workloads is not False,
            store=entry.store,
            root=entry.root if entry.root is not None else entry.path,
        )
        if overlap_problem(destination, [*destinations.values(), *standing.values()]) is None:
            standing[name] = destination
    return standing


def _held_requests(
    known: Inventory, promises: Mapping[str, Promise], requests: tuple[ResourceRequest, ...], broken: Mapping[str, str]
) -> tuple[HeldRequest, ...]:
    """Requests the last compile read from files that are broken now and that no file requests any more."""
    requested = {r.key for r in requests}
    held = []
    for file, entries in sorted(known.requests.items()):
        if file not in broken:
            continue
        for entry in entries:
            key = RequestKey(entry.kind, entry.namespace, entry.name)
            if key not in requested and entry.promise in promises:
                held.append(
                    HeldRequest(
                        key=key,
                        api_version=entry.api_version,
                        promise=entry.promise,
                        file=file,
                        why=f"its file cannot be read: {broken[file]}",
                    )
                )
                requested.add(key)
    return tuple(held)
