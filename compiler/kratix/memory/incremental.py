"""Incremental compilation: reuse what did not change.

A request whose file has the same bytes, and whose context (its Promise's folder, the destinations, the kinds all
Promises serve, settings, image digests) has the same fingerprint as when it was last compiled, is neither
parsed, validated, rendered nor dumped: its published files and status are carried over from the previous
output. See `kratix.memory.cache` for what is remembered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kratix import __version__, load
from kratix.memory import cache
from kratix.memory.previous import PreviousOutput
from kratix.model import paths
from kratix.model.diagnostics import Diagnostic
from kratix.model.documents import Content, SourceDoc, SourceTree, blob_id
from kratix.model.platform import Destination, Platform, Promise, RequestKey, ResourceRequest
from kratix.model.settings import Settings
from kratix.model.statuses import RequestStatus
from kratix.schema import conformance


def load_reusing(
    tree: SourceTree, previous: PreviousOutput, settings: Settings
) -> tuple[Platform, list[Diagnostic], dict[str, RequestStatus], dict[str, str]]:
    """Parse the platform, skipping request files whose cached output is still good. Also returns each
    Promise's fingerprint (see `promise_fingerprints`)."""
    hits: dict[str, list[cache.Record]] = {}
    fingerprints: dict[str, str] = {}

    def skip(promises: Mapping[str, Promise], destinations: Mapping[str, Destination]) -> frozenset[str]:
        fingerprints.update(promise_fingerprints(tree, promises, destinations, settings))
        if previous.cache and settings.render.reuse_unchanged:
            hits.update(_cache_hits(tree, previous, fingerprints))
        return frozenset(hits)

    known = previous.inventory
    prefixes = dict(settings.publish.store_prefixes)
    platform, diagnostics = load.parse_platform(tree, skip_requests=skip, known=known, store_prefixes=prefixes)
    reused_keys = {r.key for records in hits.values() for r in records}
    requested = {str(r.key) for r in platform.requests} | {str(h.key) for h in platform.held}
    if reused_keys & requested:
        # A changed file now requests what a cached one does: which of them is the duplicate depends on file
        # order, so take no shortcut.
        platform, diagnostics = load.parse_platform(tree, known=known, store_prefixes=prefixes)
        hits.clear()
    reused = {r.key: _reused_status(r) for records in hits.values() for r in records}
    return platform, diagnostics, reused, fingerprints


def promise_fingerprints(
    tree: SourceTree, promises: Mapping[str, Promise], destinations: Mapping[str, Destination], settings: Settings
) -> dict[str, str]:
    """Per Promise: a digest of everything its requests' output depends on besides the request itself."""
    shared = cache.fingerprint(
        # The release output is checked against, resolved: a newer kubernetes-validate changes the default one.
        __version__,
        repr(settings.validate),
        conformance.chosen_version(settings.validate.kubernetes_version),
        repr(settings.render.container_runtime),
        f"unsandboxed={settings.render.unsandboxed} network={settings.render.step_network}",
        *(
            f"{d.name}|{d.layout}|{sorted(d.labels.items())}|{d.strict_match_labels}|{d.sops_age}|{d.sops_pgp}"
            for d in sorted(destinations.values(), key=lambda d: d.name)
        ),
        *sorted(f"{p.name}|{p.api.group}|{p.api.kind}|{p.version}" for p in promises.values() if p.api),
    )
    digests = _image_digests(promises, settings)
    # The ConfigMaps and Secrets steps may read (`config/`): a change re-runs the requests of Promises that run
    # programs (which of them a step reads is known only when it runs).
    configs = cache.fingerprint(
        *sorted(f"{path}={cache.digest(data)}" for path, data in tree.files.items() if path.startswith("config/"))
    )
    # Only `promises/` can hold a Promise's files: no need to look at the (many) request files.
    promise_files = {path: data for path, data in tree.files.items() if path.startswith("promises/")}
    prints = {}
    for promise in promises.values():
        folder = promise.folder + "/"
        files = sorted((path, cache.digest(data)) for path, data in promise_files.items() if path.startswith(folder))
        images = sorted({c.image for pl in promise.resource_configure for c in pl.containers if c.image})
        prints[promise.name] = cache.fingerprint(
            shared,
            promise.name,
            promise.folder,
            *((configs,) if promise.runs_programs else ()),
            *(f"{path}={blob}" for path, blob in files),
            *(f"{image}@{digests[image]}" for image in images),
        )
    return prints


def context_fingerprint(promises: Mapping[str, Promise], settings: Settings) -> str:
    """A digest of what requests' output depends on that the input tree does not hold: the compiler and the
    release output is checked against, the settings, what the images Promises run are now."""
    digests = _image_digests(promises, settings)
    return cache.fingerprint(
        __version__,
        repr(settings.validate),
        conformance.chosen_version(settings.validate.kubernetes_version),
        repr(settings.render.container_runtime),
        f"unsandboxed={settings.render.unsandboxed} network={settings.render.step_network}",
        *(f"{image}@{digest}" for image, digest in sorted(digests.items())),
    )


def _image_digests(promises: Mapping[str, Promise], settings: Settings) -> dict[str, str]:
    """What each image a resource workflow uses is now: a tag moved to new content re-runs its requests. An
    image not pulled yet has no digest; its requests re-run once it has one."""
    images = sorted(
        {c.image for p in promises.values() for pl in p.resource_configure for c in pl.containers if c.image}
    )
    if not images:
        return {}
    from kratix.workflows import steps  # only when a Promise runs images

    runtime = steps.detect_runtime(settings.render.container_runtime)
    return {
        image: (steps.image_digest(steps.qualified_image(image), runtime) if runtime else None) or "unknown"
        for image in images
    }


def _cache_hits(
    tree: SourceTree, previous: PreviousOutput, fingerprints: Mapping[str, str]
) -> dict[str, list[cache.Record]]:
    by_file: dict[str, list[cache.Record]] = {}
    for record in previous.cache:
        by_file.setdefault(record.file, []).append(record)
    hits = {}
    for file, records in by_file.items():
        data = tree.files.get(file)
        if data is None or len(records) != records[0].documents:
            continue
        blob = cache.digest(data)
        if all(
            r.reusable and r.blob == blob and r.fingerprint == fingerprints.get(r.promise) and _trustworthy(r, previous)
            for r in records
        ):
            hits[file] = records
    return hits


def _trustworthy(record: cache.Record, previous: PreviousOutput) -> bool:
    """The record names only files of its own request (as provenance records them) that are still there,
    exactly as when it was written."""
    named = cache.named_files(record)
    if record.status != paths.request_status(record.namespace, record.promise, record.name):
        return False
    if not all(path in previous.files for path in named):
        return False
    entries = previous.provenance
    if not all((entry := entries.get(path)) is not None and entry.owner == record.key for path in record.outputs):
        return False
    return cache.intact(record, (previous.oid(path) for path in named))


def _reused_status(record: cache.Record) -> RequestStatus:
    """A request carried over from the cache. Its placements are its records (`placement_records`): nothing
    about them changed, so no `Placement` is built for it (there can be tens of thousands)."""
    key = RequestKey(record.kind, record.namespace, record.name)
    request = ResourceRequest(
        key=key,
        api_version=record.api_version,
        promise=record.promise,
        source=SourceDoc(record.file, 0, 1, None),
        body={},
    )
    return RequestStatus(
        request,
        "placed",
        "Resource requested",
        "Placed",
        "unchanged since the last compile",
        placement_records=record.placements,
        workflow_ok=True,
        reused=True,
        unchecked_kinds=record.unchecked,
    )


def cache_records(
    requests: Mapping[str, RequestStatus],
    previous: PreviousOutput,
    fingerprints: Mapping[str, str],
    files: Mapping[str, Content],
    tree_files: Mapping[str, bytes],
    diagnostics: Sequence[Diagnostic],
) -> list[cache.Record]:
    """A record of every request read from a request file (what each file held: the inventory). Only a cleanly
    placed request of a file with no diagnostic is reusable; a held request keeps the record it had."""
    old = {r.key: r for r in previous.cache}
    noisy = {d.file for d in diagnostics}
    per_file: dict[str, list[RequestStatus]] = {}
    for status in requests.values():
        per_file.setdefault(status.request.source.path, []).append(status)
    records = []
    for file, statuses in per_file.items():
        if not file.startswith("requests/"):
            continue  # the children of compound Promises: their parents' output, not files of the input
        reusable = _file_reusable(file, statuses, noisy, files, tree_files)
        for status in statuses:
            key = status.request.key
            if status.reused or (status.reason == "FileInvalid" and str(key) in old):
                records.append(old[str(key)])
                continue
            records.append(_new_record(file, status, len(statuses), reusable, fingerprints, files, tree_files))
    return records


def _file_reusable(
    file: str,
    statuses: Sequence[RequestStatus],
    noisy: set[str],
    files: Mapping[str, Content],
    tree_files: Mapping[str, bytes],
) -> bool:
    """Whether a request file's output may be reused next time: no diagnostic names the file, and every request
    in it is cleanly placed with all its output written."""
    # A request with a file the tree does not hold (its destination's state store could not be reached) is
    # compiled again next time.
    return (
        file not in noisy
        and file in tree_files
        and not any(
            s.state != "placed"
            or s.children
            or (not s.reused and not s.files)
            or any(f.output_path not in files for f in s.files)
            for s in statuses
        )
    )


def _new_record(
    file: str,
    status: RequestStatus,
    documents: int,
    reusable: bool,
    fingerprints: Mapping[str, str],
    files: Mapping[str, Content],
    tree_files: Mapping[str, bytes],
) -> cache.Record:
    """The sealed record of a request compiled now; one that is not reusable remembers only what the file held."""
    key = status.request.key
    outputs = tuple(sorted(f.output_path for f in status.files)) if reusable else ()
    record = cache.Record(
        file=file,
        blob=cache.digest(tree_files[file]) if file in tree_files else "",
        fingerprint=fingerprints.get(status.request.promise, "") if reusable else "",
        documents=documents,
        kind=key.kind,
        namespace=key.namespace,
        name=key.name,
        api_version=status.request.api_version,
        promise=status.request.promise,
        placements=dict(status.placement_records) if reusable else {},
        outputs=outputs,
        unchecked=status.unchecked_kinds if reusable else (),
        status=status_path(status) if reusable else "",
        reusable=reusable,
    )
    return cache.seal(record, (blob_id(files[path]) for path in cache.named_files(record)))


def status_path(status: RequestStatus) -> str:
    key = status.request.key
    return paths.request_status(key.namespace, status.request.promise, key.name)
