"""Assembling the output tree from every status: conflicts between owners (objects, and files sharing a path),
files a destination cannot take, output validation against Kubernetes' schemas, last-known-good files,
bookkeeping (statuses, placements, provenance, the request cache).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from kratix import workers, yamltext
from kratix.layout import tree as layout
from kratix.memory import cache, incremental, inventory, provenance
from kratix.memory.previous import PreviousOutput, encode_placements
from kratix.model import paths
from kratix.model.diagnostics import Diagnostic, Severity
from kratix.model.documents import Content, Store, keep
from kratix.model.manifests import IDENTITY_LABELS, PlacedFile
from kratix.model.platform import Destination, Platform
from kratix.model.statuses import PromiseStatus, RequestStatus, promise_status_document, request_status_document
from kratix.schema import conformance
from kratix.workflows import render, secretpolicy, sops

T = TypeVar("T")


def reject_conflicts(
    promises: dict[str, PromiseStatus],
    requests: dict[str, RequestStatus],
    diagnostics: list[Diagnostic],
    previous: PreviousOutput,
) -> None:
    """Two owners rendering one object for one destination (kustomize would refuse the whole destination): the
    owner that published it before keeps it and the others fail; when none did, the first in sorted order keeps
    it. The previous output decides, not the request cache, so a warm and a cold compile decide alike."""
    placed = [f for s in promises.values() for f in s.files] + [f for s in requests.values() for f in s.files]
    _reject_path_clashes(placed, promises, requests, diagnostics, previous)
    placed = [f for s in promises.values() for f in s.files] + [f for s in requests.values() for f in s.files]
    clashes = layout.find_conflicts(placed)
    if not clashes:
        return
    before: dict[tuple[str, str], str] = {}
    for entry in previous.provenance.values():
        for oid in entry.objects:
            if (entry.destination, oid) in clashes:
                before[(str(entry.destination), oid)] = entry.owner
    for (destination, oid), items in sorted(clashes.items()):
        owners = sorted({item.owner for item in items})
        if len(owners) == 1:
            message = (
                f"{oid} is emitted twice on destination {destination} (in {items[0].file.path} and "
                f"{items[1].file.path})"
            )
            _fail_owner(owners[0], "ObjectConflict", message, promises, requests, diagnostics)
            continue
        keeper = before.get((destination, oid)) if before.get((destination, oid)) in owners else owners[0]
        for owner in owners:
            if owner != keeper:
                message = f"{oid} on destination {destination} is already emitted by {keeper}"
                _fail_owner(owner, "ObjectConflict", message, promises, requests, diagnostics)


def _reject_path_clashes(
    placed: Sequence[PlacedFile],
    promises: dict[str, PromiseStatus],
    requests: dict[str, RequestStatus],
    diagnostics: list[Diagnostic],
    previous: PreviousOutput,
) -> None:
    """Two files for one path (outputs share one folder in a destination of filepath mode none): the owner that
    published the path before keeps it and the others fail, as for objects. Kratix lets the last writer win, and
    the first to be deleted then removes the other's file; here no two owners ever share one."""
    for path, items in sorted(layout.find_path_clashes(placed).items()):
        owners = sorted({item.owner for item in items})
        if len(owners) == 1:
            message = f"output {path} is written twice (by {', '.join(sorted({i.pipeline for i in items}))})"
            _fail_owner(owners[0], "FileConflict", message, promises, requests, diagnostics)
            continue
        before = previous.provenance.get(path)
        keeper = before.owner if before is not None and before.owner in owners else owners[0]
        for owner in owners:
            if owner != keeper:
                message = f"output {path} is already written by {keeper}"
                _fail_owner(owner, "FileConflict", message, promises, requests, diagnostics)


def reject_unfit_files(
    platform: Platform,
    promises: dict[str, PromiseStatus],
    requests: dict[str, RequestStatus],
    diagnostics: list[Diagnostic],
) -> None:
    """Files a destination cannot take fail their owner: in filepath mode none, a file where the compiler keeps
    its own (the destination's kustomization.yaml, Kratix's canary and state files); in aggregatedYAML, a file
    that is not Kubernetes objects (joined into the one YAML file Flux applies, it would break the destination
    for every owner). A YAML file that is not all Kubernetes objects is delivered as written, and said so."""
    destinations = platform.destinations
    noted: set[tuple[str, str]] = set()
    owners = [
        *((f"Promise {name}", s.files) for name, s in promises.items()),
        *((key, s.files) for key, s in requests.items()),
    ]
    for owner, files in owners:
        for item in files:
            destination = destinations.get(item.destination)
            if destination is None or item.file.source == paths.GENERATED_SOURCE:
                continue
            problem = destination.layout.reserved(
                item.output_path[len(destination.layout.root) + 1 :] if destination.layout.root else item.output_path
            )
            if problem is None and item.file.raw is not None and destination.mode == paths.AGGREGATED:
                problem = (
                    f"holds no Kubernetes objects, and Destination {destination.name!r} (filepath mode "
                    f"aggregatedYAML) joins every output into one YAML file of Kubernetes objects"
                )
            if problem is not None:
                file, line = _source_of(item, platform)
                message = f"output {item.file.path} for Destination {destination.name!r}: {problem}"
                diagnostics.append(Diagnostic(file, line, 1, "", "output.unfit", message, Severity.ERROR, owner))
                _fail_owner(owner, "OutputUnfit", message, promises, requests, [])
                break
            if item.file.raw is not None and item.file.path.endswith((".yaml", ".yml")):
                why = _not_objects(item.file.raw)
                if why and (owner, item.file.path) not in noted:
                    noted.add((owner, item.file.path))
                    file, line = _source_of(item, platform)
                    diagnostics.append(
                        Diagnostic(
                            file,
                            line,
                            1,
                            "",
                            "output.not-objects",
                            f"output {item.file.path} is delivered as written, not applied as Kubernetes objects: "
                            f"{why}",
                            Severity.WARNING,
                            owner,
                        )
                    )


def _source_of(item: PlacedFile, platform: Platform) -> tuple[str, int]:
    """Where a diagnostic about an output file points: its template, or the Promise whose step wrote it."""
    promise = platform.promises.get(item.promise)
    if item.file.source.startswith("container:") and promise is not None:
        return promise.source.path, promise.source.line
    return item.file.source, 1


def _not_objects(data: bytes) -> str | None:
    """Why a YAML file is not all Kubernetes objects (None when it is, or holds no document at all)."""
    documents, problems = yamltext.load_documents("", data)
    if problems:
        return f"it is not YAML Kubernetes reads (line {problems[0].line}: {problems[0].message})"
    for index, document in enumerate(documents):
        problem = render.object_problem(document.body)
        if problem:
            return f"document {index + 1} {problem}"
    return None


def reject_conflicts_with_published(
    promises: dict[str, PromiseStatus],
    requests: dict[str, RequestStatus],
    diagnostics: list[Diagnostic],
    previous: PreviousOutput,
) -> None:
    """An object rendered now that output carried over already holds on its destination (an unchanged request's,
    or what a failing request or unavailable Promise keeps): what was published first keeps it. Run once every
    other failure is known, since each failure carries more output over."""
    placed = [f for s in promises.values() for f in s.files] + [f for s in requests.values() for f in s.files]
    # Carried-over output was conflict-free when it was published; only objects that are new where they land
    # (a file whose owner and objects differ from before) can clash with it now.
    fresh = [item for item in placed if _new_identities(item, previous)]
    if not fresh:
        return
    destinations = {item.destination for item in fresh}
    carried = _carried_paths(requests, promises, previous)
    taken, files_taken = _taken_by_carried(carried, destinations, previous)
    for item in fresh:
        _reject_if_taken(item, taken, files_taken, carried, promises, requests, diagnostics)


def _carried_paths(
    requests: Mapping[str, RequestStatus], promises: Mapping[str, PromiseStatus], previous: PreviousOutput
) -> set[str]:
    """The paths of the output carried over: the last known good, and what unchanged requests published."""
    carried = set(_last_known_good(requests, promises, previous))
    records = {r.key: r for r in previous.cache}
    for key, status in requests.items():
        if status.reused:
            carried.update(records[key].outputs)
    return carried


def _taken_by_carried(
    carried: set[str], destinations: set[str], previous: PreviousOutput
) -> tuple[dict[tuple[str | None, str], str], dict[str, str]]:
    """Who holds what on the given destinations through carried-over output: each object by (destination, object)
    -> owner, and each file and the folders it is in by path -> owner."""
    taken: dict[tuple[str | None, str], str] = {}
    files_taken: dict[str, str] = {}  # carried-over files, and the folders they are in, by path -> owner
    for path in carried:
        entry = previous.provenance.get(path)
        if entry is not None and entry.destination in destinations:
            taken.update(((entry.destination, oid), entry.owner) for oid in entry.objects)
            files_taken[path] = entry.owner
            files_taken.update((folder, entry.owner) for folder in paths.folders(path))
    return taken, files_taken


def _reject_if_taken(
    item: PlacedFile,
    taken: Mapping[tuple[str | None, str], str],
    files_taken: Mapping[str, str],
    carried: set[str],
    promises: dict[str, PromiseStatus],
    requests: dict[str, RequestStatus],
    diagnostics: list[Diagnostic],
) -> None:
    """A fresh file whose path (or a folder of it) or one of whose objects another owner's carried-over output
    holds fails its owner: the file conflict is said first, then the first object conflict."""
    other = files_taken.get(item.output_path) or next(
        (files_taken[f] for f in paths.folders(item.output_path) if f in files_taken and f in carried), None
    )
    if other is not None and other != item.owner:
        message = f"output {item.output_path} is already written by {other}"
        _fail_owner(item.owner, "FileConflict", message, promises, requests, diagnostics)
        return
    for oid in layout.objects_of(item):
        other = taken.get((item.destination, oid))
        if other is not None and other != item.owner:
            message = f"{oid} on destination {item.destination} is already emitted by {other}"
            _fail_owner(item.owner, "ObjectConflict", message, promises, requests, diagnostics)
            break


def _new_identities(item: PlacedFile, previous: PreviousOutput) -> bool:
    entry = previous.provenance.get(item.output_path)
    return entry is None or entry.owner != item.owner or set(entry.objects) != set(layout.objects_of(item))


def _fail_owner(
    owner: str,
    reason: str,
    message: str,
    promises: dict[str, PromiseStatus],
    requests: dict[str, RequestStatus],
    diagnostics: list[Diagnostic],
) -> None:
    if owner in requests:
        status = requests[owner]
        if not status.failed_now:
            diagnostics.append(Diagnostic.at(status.request.source, (), f"output.{reason}", message, object=owner))
            requests[owner] = status.failed(reason, message)
        return
    name = owner.removeprefix("Promise ")
    status_of_promise = promises[name]
    if status_of_promise.available:
        diagnostics.append(
            Diagnostic.at(status_of_promise.promise.source, (), f"output.{reason}", message, object=owner)
        )
        promises[name] = replace(status_of_promise, available=False, reason=message, files=())


def validate_output(
    checker: conformance.Conformance,
    promises: dict[str, PromiseStatus],
    requests: dict[str, RequestStatus],
    diagnostics: list[Diagnostic],
    *,
    jobs: int = 1,
) -> tuple[str, ...]:
    """Check every emitted object against Kubernetes' schemas (custom kinds against the CRDs delivered to the
    same destination); an owner with an invalid object fails. Each request remembers the kinds no schema could
    check; the kinds of the Promises' own output are returned."""
    placed = [f for s in promises.values() for f in s.files] + [f for s in requests.values() for f in s.files]
    _reject_identity_labels(placed, promises, requests, diagnostics)
    placed = [f for s in promises.values() for f in s.files] + [f for s in requests.values() for f in s.files]
    crds = _crds_by_destination(placed)
    unchecked: dict[str, set[str]] = {}
    groups = _documents_by_owner_and_destination(placed)

    def check(start: int, stop: int) -> list[conformance.ConformanceReport]:
        return [
            checker.check(
                [secretpolicy.for_schema_check(document) for _, document in entries], crds=crds.get(destination, ())
            )
            for (_, destination), entries in groups[start:stop]
        ]

    for ((owner, _), entries), report in zip(groups, workers.map_ranges(check, len(groups), jobs=jobs), strict=True):
        unchecked.setdefault(owner, set()).update(report.not_validated_kinds)
        _fail_invalid_objects(checker, owner, entries, report, promises, requests, diagnostics)
    for owner, kinds in unchecked.items():
        if owner in requests:
            requests[owner] = replace(requests[owner], unchecked_kinds=tuple(sorted(kinds)))
    return tuple(sorted({k for owner, kinds in unchecked.items() if owner not in requests for k in kinds}))


def _crds_by_destination(placed: Sequence[PlacedFile]) -> dict[str, list[Mapping[str, Any]]]:
    """The CustomResourceDefinitions delivered to each destination: the schemas of the custom kinds there."""
    crds: dict[str, list[Mapping[str, Any]]] = {}
    for item in placed:
        for document in item.file.documents:
            if document.get("kind") == "CustomResourceDefinition":
                crds.setdefault(item.destination, []).append(document)
    return crds


def _documents_by_owner_and_destination(
    placed: Sequence[PlacedFile],
) -> list[tuple[tuple[str, str], list[tuple[PlacedFile, Mapping[str, Any]]]]]:
    """Every emitted object with its file, grouped by owner and destination (the unit checked at once), sorted."""
    by_owner_destination: dict[tuple[str, str], list[tuple[PlacedFile, Mapping[str, Any]]]] = {}
    for item in placed:
        for document in item.file.documents:
            by_owner_destination.setdefault((item.owner, item.destination), []).append((item, document))
    return sorted(by_owner_destination.items())


def _fail_invalid_objects(
    checker: conformance.Conformance,
    owner: str,
    entries: Sequence[tuple[PlacedFile, Mapping[str, Any]]],
    report: conformance.ConformanceReport,
    promises: dict[str, PromiseStatus],
    requests: dict[str, RequestStatus],
    diagnostics: list[Diagnostic],
) -> None:
    """Each problem the schema check found is a diagnostic on its object's file, and fails the object's owner."""
    for index, problems in sorted(report.problems.items()):
        item, document = entries[index]
        subject = f"{document.get('kind')} {(document.get('metadata') or {}).get('name')}"
        for problem in problems:
            diagnostics.append(
                Diagnostic(
                    item.file.source,
                    1,
                    1,
                    ".".join(map(str, problem.path)),
                    problem.code,
                    f"output {subject} in {item.file.path}: {problem.message}",
                    Severity.ERROR,
                    owner,
                )
            )
        _fail_owner(
            owner,
            "OutputInvalid",
            f"output {subject} is not valid for Kubernetes {checker.kubernetes_version}: {problems[0].message}",
            promises,
            requests,
            [],
        )


def _reject_identity_labels(
    placed: Sequence[PlacedFile],
    promises: dict[str, PromiseStatus],
    requests: dict[str, RequestStatus],
    diagnostics: list[Diagnostic],
) -> None:
    """An object may not carry the labels that say whose output it is with other values than the compiler gives
    it: a step cannot pass its output off as another request's, or as a compound Promise's child."""
    for item in placed:
        for document in item.file.documents:
            labels = (document.get("metadata") or {}).get("labels")
            if not isinstance(labels, Mapping):
                continue
            for key in sorted(IDENTITY_LABELS.intersection(labels)):
                if labels[key] != item.labels.get(key):
                    subject = f"{document.get('kind')} {(document.get('metadata') or {}).get('name')}"
                    expected = item.labels.get(key)
                    message = (
                        f"output {subject} in {item.file.path} sets label {key}={labels[key]!r}, which only "
                        f"the compiler sets ({'to ' + repr(expected) if expected else 'not at all'} here)"
                    )
                    _fail_owner(item.owner, "OutputInvalid", message, promises, requests, diagnostics)
                    break


def pack(
    promises: dict[str, PromiseStatus],
    requests: dict[str, RequestStatus],
    *,
    jobs: int = 1,
    keeper: layout.Keeper | None = None,
) -> None:
    """Every placed file made into its bytes (over worker processes), its documents dropped (`layout.pack`), and
    kept as `keeper` keeps it. For when no check reads the objects any more: from here on the compile holds each
    file once, as YAML or as the blob its bytes were stored as."""
    placed = [f for s in promises.values() for f in s.files] + [f for s in requests.values() for f in s.files]
    kept_as = keeper or (lambda item: item)
    # A file a compile worker packed already (`request_compile`) only needs keeping.
    packed = iter(
        [
            kept_as(item if item.content is not None else layout.pack(item, content))
            for item, content in zip(placed, layout.render_files(placed, jobs=jobs), strict=True)
        ]
    )
    del placed
    for name, promise_status in promises.items():
        promises[name] = replace(promise_status, files=tuple(next(packed) for _ in promise_status.files))
    for key, status in requests.items():
        if status.files:
            files = tuple(next(packed) for _ in status.files)
            if any(new is not old for new, old in zip(files, status.files, strict=True)):  # most were kept already
                requests[key] = replace(status, files=files)


def lay_out(
    platform: Platform,
    promises: Mapping[str, PromiseStatus],
    requests: Mapping[str, RequestStatus],
    previous: PreviousOutput,
    *,
    commit: str | None,
    fingerprints: Mapping[str, str],
    diagnostics: Sequence[Diagnostic],
    tree_files: Mapping[str, bytes] | None = None,
    jobs: int = 1,
    store: Store = keep,
) -> tuple[dict[str, Content], dict[str, provenance.Entry]]:
    """The output tree, and the provenance of each of its files (also in the tree, encoded). A destination whose
    state store cannot be reached keeps what it had: nothing of it is written, and its provenance stays. Request
    statuses and bookkeeping shards go to `store` as they are made (see `pack`)."""
    frozen = {name for name, d in platform.destinations.items() if previous.unknown(paths.target_of(d.layout.root))}
    placed = [f for s in promises.values() for f in s.files] + [f for s in requests.values() for f in s.files]
    live = [f for f in placed if f.destination not in frozen]
    kept = _kept_output(requests, promises, previous)
    bookkeeping = _bookkeeping(platform, promises, requests, previous, store, jobs)
    carried = _carried_to_layout(kept, previous, frozen)
    tree = layout.build_tree(
        live,
        destinations=[d for d in platform.destinations.values() if d.name not in frozen],
        bookkeeping=bookkeeping,
        kept=carried,
        read=previous.files.__getitem__,
        jobs=jobs,
    )
    files = tree.files
    standing = [e for e in previous.provenance.values() if e.destination in frozen] if frozen else []
    files.update((e.path, previous.content(e.path)) for e in standing if e.path in previous.files)
    entries = _provenance(live, files, carried, previous, commit, tree.generated, standing)
    files.update(_shards(provenance.shards(entries), previous.provenance_shards, provenance.encode, previous, store))
    cached = incremental.cache_records(requests, previous, fingerprints, files, tree_files or {}, diagnostics)
    files.update(_shards(cache.shards(cached), previous.cache_shards, cache.encode, previous, store))
    return files, {entry.path: entry for entry in entries}


def _kept_output(
    requests: Mapping[str, RequestStatus], promises: Mapping[str, PromiseStatus], previous: PreviousOutput
) -> dict[str, Content]:
    """The previous output that stays, by path: the last known good, and what unchanged requests published."""
    kept = _last_known_good(requests, promises, previous)
    old_records = {r.key: r for r in previous.cache}
    for key, status in requests.items():
        if status.reused:
            kept.update((path, previous.content(path)) for path in old_records[key].outputs)
    return kept


def _bookkeeping(
    platform: Platform,
    promises: Mapping[str, PromiseStatus],
    requests: Mapping[str, RequestStatus],
    previous: PreviousOutput,
    store: Store,
    jobs: int,
) -> dict[str, Any]:
    """The compiler's own files by path: the placements, the inventory, and each request's and Promise's status
    (an unchanged request's carried over as it was, a new one in `store`)."""
    bookkeeping: dict[str, Any] = {
        paths.PLACEMENTS: encode_placements(_placements(requests, previous)),
        paths.INVENTORY: _inventory(platform, previous),
    }
    fresh = [status for status in requests.values() if not status.reused]
    # Dumped now, over worker processes (a cold compile of 100,000 requests dumps 100,000 statuses of about 1 KB),
    # each handed to `store` as it comes in: never every document, nor every text, at once.
    dumped = workers.iter_ranges(
        lambda start, stop: [yamltext.dump_sorted(request_status_document(s)) for s in fresh[start:stop]],
        len(fresh),
        jobs=jobs,
    )
    for status, text in zip(fresh, dumped, strict=True):
        path = incremental.status_path(status)
        bookkeeping[path] = store(path, text)
    for status in requests.values():
        if status.reused:
            path = incremental.status_path(status)
            bookkeeping[path] = previous.content(path)
    for name, promise_status in promises.items():
        bookkeeping[paths.promise_status(name)] = promise_status_document(promise_status)
    return bookkeeping


def _placements(requests: Mapping[str, RequestStatus], previous: PreviousOutput) -> dict[str, str]:
    """Where each request's output was placed: as compiled now, or as before for what keeps its previous output."""
    previous_placements = previous.placements
    records = {k: v for s in requests.values() for k, v in s.placement_records.items()}
    for status in requests.values():
        if status.keeps_previous_output or status.kept_pipelines:
            records.update(_kept_placements(status, previous_placements))
    return records


def _carried_to_layout(
    kept: Mapping[str, Content], previous: PreviousOutput, frozen: set[str]
) -> dict[str, layout.Kept]:
    """The kept files the layout writes again: those provenance places on a destination that is not frozen."""
    carried = {}
    for path, content in kept.items():
        entry = previous.provenance.get(path)
        if entry is not None and entry.destination is not None and entry.destination not in frozen:
            carried[path] = layout.Kept(content, entry.destination, entry.objects)
    return carried


def _inventory(platform: Platform, previous: PreviousOutput) -> bytes:
    """What this compile read, and from which files; what stands in for a broken file keeps its old entry."""
    known = previous.inventory
    promises = {}
    for name, promise in platform.promises.items():
        if promise.broken is not None:
            if name in known.promises:
                promises[name] = known.promises[name]
            continue
        api = promise.api
        promises[name] = inventory.PromiseEntry(
            promise.source.path, *((api.group, api.kind, api.version, api.plural) if api else ())
        )
    destinations = {}
    for name, destination in platform.destinations.items():
        if destination.broken is not None:
            if name in known.destinations:
                destinations[name] = known.destinations[name]
            continue
        root = destination.layout.root
        destinations[name] = inventory.DestinationEntry(
            destination.source.path,
            destination.path,
            dict(destination.labels),
            destination.strict_match_labels,
            mode=destination.mode,
            filename=destination.filename if destination.mode == paths.AGGREGATED else None,
            store=destination.store,
            root=root if root != destination.path else None,
            init_workloads=None if destination.init_workloads else False,
        )
    return inventory.encode(promises, destinations)


def _shards(
    new: Mapping[str, list[T]],
    old: Mapping[str, list[T]],
    encode: Callable[[list[T]], bytes],
    previous: PreviousOutput,
    store: Store,
) -> dict[str, Content]:
    """Bookkeeping shards: one whose items are all carried over unchanged (the very same objects, read from the
    previous output) is carried over as its blob, neither encoded nor hashed again."""
    contents: dict[str, Content] = {}
    for path, items in new.items():
        before = old.get(path)
        unchanged = (
            before is not None
            and len(before) == len(items)
            and path in previous.files
            and all(a is b for a, b in zip(items, before, strict=True))
        )
        contents[path] = previous.content(path) if unchanged else store(path, encode(items))
    return contents


def _provenance(
    placed: Sequence[PlacedFile],
    files: Mapping[str, Content],
    kept: Mapping[str, layout.Kept],
    previous: PreviousOutput,
    commit: str | None,
    generated: Mapping[str, str],
    standing: Sequence[provenance.Entry],
) -> list[provenance.Entry]:
    before = previous.provenance
    entries = {
        p.output_path: provenance.Entry(
            path=p.output_path,
            owner=p.owner,
            destination=p.destination,
            promise=p.promise,
            request=None if p.owner.startswith("Promise ") else p.owner,
            pipeline=p.pipeline,
            source=p.file.source,
            objects=layout.objects_of(p),
            sandbox=p.file.sandbox,
            images=p.file.images,
        )
        for p in placed
    }
    for path in kept:
        if path in files:
            entries[path] = before[path]
    entries.update((entry.path, entry) for entry in standing)
    for path, destination in generated.items():
        if path not in entries:
            entries[path] = provenance.Entry(path=path, owner=provenance.GENERATED, destination=destination)
    settled = provenance.settle_commits(
        entries.values(), unchanged=lambda path: previous.same(path, files.get(path)), previous=before, commit=commit
    )
    return settled


def _last_known_good(
    statuses: Mapping[str, RequestStatus], promise_statuses: Mapping[str, PromiseStatus], previous: PreviousOutput
) -> dict[str, Content]:
    """What fails now keeps what it had published: a broken change never deletes running infrastructure. That
    covers failing requests, requests pending on an unavailable Promise, and unavailable Promises' output (their
    files, as provenance records them)."""
    owners = {s.owner for s in statuses.values() if s.keeps_previous_output}
    owners.update(f"Promise {name}" for name, s in promise_statuses.items() if not s.available)
    # A suspended workflow keeps what its suspended pipeline and those after it published (Kratix leaves their
    # Works alone).
    pipelines = {s.owner: set(s.kept_pipelines) for s in statuses.values() if s.kept_pipelines}
    if not owners and not pipelines:
        return {}
    return {
        path: previous.content(path)
        for path, entry in previous.provenance.items()
        if (entry.owner in owners or entry.pipeline in pipelines.get(entry.owner, ())) and path in previous.files
    }


def _kept_placements(status: RequestStatus, previous_placements: Mapping[str, str]) -> dict[str, str]:
    key = status.request.key
    prefix = f"{key.kind}/{key.namespace}/{key.name}#"
    kept = {k: v for k, v in previous_placements.items() if k.startswith(prefix)}
    if status.keeps_previous_output:
        return kept
    return {k: v for k, v in kept.items() if k[len(prefix) :].split("/", 1)[0] in status.kept_pipelines}


def check_secrets(
    platform: Platform,
    promises: dict[str, PromiseStatus],
    requests: dict[str, RequestStatus],
    diagnostics: list[Diagnostic],
    previous: PreviousOutput,
    *,
    sealer: sops.Sealer,
) -> None:
    """No plaintext Secret reaches the output (`kratix.workflows.secretpolicy`): an owner emitting one fails, naming the
    Secret and its file; a Secret bound for a destination with SOPS recipients is encrypted first (stamped
    with its labels, which the encryption's MAC covers), or its owner fails when that cannot be done here."""
    destinations = platform.destinations
    allowed = {name: secretpolicy.plaintext_allowed(p.body) for name, p in platform.promises.items()}
    owners = [
        *((f"Promise {name}", s.files) for name, s in promises.items()),
        *((key, s.files) for key, s in requests.items()),
    ]
    for owner, files in owners:
        checked: list[PlacedFile] = []
        for item in files:
            destination = destinations.get(item.destination)
            outcome = _seal_file(item, destination, allowed.get(item.promise or "", ()), previous, sealer)
            if isinstance(outcome, str):
                message = f"output {item.file.path}: {outcome}"
                diagnostics.append(
                    Diagnostic(item.file.source, 1, 1, "", "output.plaintext-secret", message, Severity.ERROR, owner)
                )
                _fail_owner(owner, "PlaintextSecret", message, promises, requests, [])
                break
            checked.append(outcome)
        else:
            if any(a is not b for a, b in zip(checked, files, strict=True)):
                if owner in requests:
                    requests[owner] = replace(requests[owner], files=tuple(checked))
                else:
                    name = owner.removeprefix("Promise ")
                    promises[name] = replace(promises[name], files=tuple(checked))


def _seal_file(
    item: PlacedFile,
    destination: Destination | None,
    allowed: Sequence[str],
    previous: PreviousOutput,
    sealer: sops.Sealer,
) -> PlacedFile | str:
    """The file with its Secrets encrypted where its destination asks for it, or why it cannot be written."""
    encrypts = destination is not None and destination.encrypts_secrets
    documents = []
    for document in item.file.documents:
        verdict = secretpolicy.verdict(document, allowed=allowed, encrypts=encrypts)
        if verdict.action == secretpolicy.REFUSE:
            return verdict.reason
        if verdict.action == secretpolicy.ENCRYPT and destination is not None:
            data = previous.files.get(item.output_path)
            earlier = [d for d in yamltext.load_plain(data) if isinstance(d, Mapping)] if data else []
            try:
                document = sealer.seal(
                    layout.stamp(document, item.labels),
                    age=destination.sops_age,
                    pgp=destination.sops_pgp,
                    previous=earlier,
                )
            except sops.SopsError as exc:
                return f"{secretpolicy.subject(document)} for Destination {destination.name!r}: {exc}"
        documents.append(document)
    if all(a is b for a, b in zip(documents, item.file.documents, strict=True)):
        return item
    return replace(item, file=replace(item.file, documents=tuple(documents)))
