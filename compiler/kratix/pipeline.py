"""The compile, top to bottom: load → schema → render → schedule → layout. No I/O happens here.

`compile_platform(tree, previous=...)` is a pure function of the input tree and the previous output tree
(sticky placements and last-known-good output are read from it). One invalid request or failing template fails
that request alone: everything valid is rendered, every failure becomes a diagnostic and a status.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from kratix import __version__, cache, conformance, layout, load, provenance, render, schedule, schema, steps, yamltext
from kratix import plan as plans
from kratix.diagnostics import Diagnostic, Severity
from kratix.documents import SourceDoc, SourceTree
from kratix.manifests import (
    BOOKKEEPING,
    MANAGED_BY,
    PARENT_LABEL_PREFIX,
    PARENT_NAMESPACE_LABEL,
    PARENT_PROMISE_LABEL,
    PARENT_RESOURCE_LABEL,
    PIPELINE_LABEL,
    PROMISE_LABEL,
    RESOURCE_LABEL,
    WORK_TYPE_LABEL,
    PipelineOutput,
    PlacedFile,
    RenderFailure,
    WorkflowResult,
    destination_of,
    object_id,
)
from kratix.platform import Destination, Platform, Promise, RequestKey, ResourceRequest
from kratix.settings import Settings
from kratix.statuses import PromiseStatus, RequestStatus, promise_status_document, request_status_document

PLACEMENTS_FILE = "placements.yaml"
STATUS_FOLDER = "status"
PROMISE_STATUS_FOLDER = "promises"


@dataclass(frozen=True)
class PreviousOutput:
    """What the last publish left on the output branch: the compiler's memory between runs."""

    files: Mapping[str, bytes] = field(default_factory=dict)
    commit: str | None = None

    @cached_property
    def placement_records(self) -> dict[str, str]:
        data = self.files.get(f"{BOOKKEEPING}/{PLACEMENTS_FILE}")
        document = next(iter(yamltext.load_plain(data)), None) if data else None
        return {str(k): str(v) for k, v in document.items()} if isinstance(document, Mapping) else {}

    def placements(self) -> dict[str, str]:
        return self.placement_records

    @cached_property
    def provenance(self) -> dict[str, provenance.Entry]:
        return provenance.decode(self.files.get(provenance.PROVENANCE_PATH))

    @cached_property
    def cache(self) -> list[cache.Record]:
        return cache.decode(self.files.get(cache.CACHE_PATH))


@dataclass(frozen=True)
class Summary:
    promises: int
    promises_unavailable: int
    destinations: int
    requests: int
    placed: int
    pending: int
    misplaced: int
    failed: int
    files: int
    not_validated_kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class CompileResult:
    files: Mapping[str, bytes]
    diagnostics: tuple[Diagnostic, ...]
    summary: Summary
    requests: Mapping[str, RequestStatus]  # by "Kind namespace/name"

    @property
    def ok(self) -> bool:
        return not any(d.severity is Severity.ERROR for d in self.diagnostics)


Progress = Callable[[str, int, int], None]  # (what, done, total): for a progress line on a terminal


def _no_progress(what: str, done: int, total: int) -> None:
    return None


def compile_platform(tree: SourceTree, *, settings: Settings, previous: PreviousOutput | None = None,
                     progress: Progress = _no_progress) -> CompileResult:
    previous = previous or PreviousOutput()
    platform, diagnostics, reused, fingerprints = _load(tree, previous, settings)
    schemas, unavailable = _check_promises(platform, diagnostics)
    renderer = render.Renderer(tree, settings=settings.render)
    promises = _compile_promises(platform, renderer, unavailable, diagnostics)
    requests = _compile_requests(platform, schemas, promises, renderer, previous.placements(), diagnostics,
                                 progress, taken=reused.keys(), parallelism=settings.render.parallelism)
    requests.update(reused)
    _reject_conflicts(promises, requests, diagnostics, previous)
    not_validated: tuple[str, ...] = ()
    if settings.validate.validate_output:
        checker = conformance.Conformance.for_kubernetes(settings.validate.kubernetes_version)
        not_validated = _validate_output(checker, promises, requests, diagnostics)
    files = _lay_out(platform, promises, requests, previous, commit=tree.commit,
                     fingerprints=fingerprints,
                     diagnostics=diagnostics, tree_files=tree.files)
    diagnostics.sort()
    return CompileResult(files=files, diagnostics=tuple(diagnostics),
                         summary=_summary(platform, requests, promises, files, not_validated),
                         requests=requests)


# --- reusing what did not change ----------------------------------------------------------------------------

def _load(tree: SourceTree, previous: PreviousOutput, settings: Settings
          ) -> tuple[Platform, list[Diagnostic], dict[str, RequestStatus], dict[str, str]]:
    """Parse the platform, skipping request files whose cached output is still good. Also returns each
    Promise's fingerprint (see `_fingerprints`)."""
    hits: dict[str, list[cache.Record]] = {}
    fingerprints: dict[str, str] = {}

    def skip(promises: Mapping[str, Promise], destinations: Mapping[str, Destination]) -> frozenset[str]:
        fingerprints.update(_fingerprints(tree, promises, destinations, settings))
        if previous.cache:
            hits.update(_cache_hits(tree, previous, fingerprints))
        return frozenset(hits)

    platform, diagnostics = load.parse_platform(tree, skip_requests=skip)
    reused_keys = {r.key for records in hits.values() for r in records}
    if reused_keys & {str(r.key) for r in platform.requests}:
        # A changed file now requests what a cached one does: which of them is the duplicate depends on file
        # order, so take no shortcut.
        platform, diagnostics = load.parse_platform(tree)
        hits.clear()
    unchanged = {name: schedule.Placement(d, schedule.PLACED, "unchanged", {})
                 for name, d in platform.destinations.items()}
    reused = {r.key: _reused_status(r, unchanged) for records in hits.values() for r in records}
    return platform, diagnostics, reused, fingerprints


def _fingerprints(tree: SourceTree, promises: Mapping[str, Promise], destinations: Mapping[str, Destination],
                  settings: Settings) -> dict[str, str]:
    """Per Promise: a digest of everything its requests' output depends on besides the request itself."""
    shared = cache.fingerprint(
        __version__, repr(settings.validate), repr(settings.render.container_runtime),
        *(f"{d.name}|{d.path}|{sorted(d.labels.items())}|{d.strict_match_labels}"
          for d in sorted(destinations.values(), key=lambda d: d.name)),
        *sorted(f"{p.name}|{p.api.group}|{p.api.kind}|{p.version}" for p in promises.values() if p.api))
    digests = _image_digests(promises, settings)
    prints = {}
    for promise in promises.values():
        folder = promise.folder + "/"
        files = sorted((path, cache.digest(data)) for path, data in tree.files.items() if path.startswith(folder))
        images = sorted({c.image for pl in promise.resource_configure for c in pl.containers if c.image})
        prints[promise.name] = cache.fingerprint(shared, promise.name, promise.folder,
                                                 *(f"{path}={blob}" for path, blob in files),
                                                 *(f"{image}@{digests[image]}" for image in images))
    return prints


def _image_digests(promises: Mapping[str, Promise], settings: Settings) -> dict[str, str]:
    """What each image a resource workflow uses is now: a tag moved to new content re-runs its requests. An
    image not pulled yet has no digest; its requests re-run once it has one."""
    images = sorted({c.image for p in promises.values() for pl in p.resource_configure for c in pl.containers
                     if c.image})
    if not images:
        return {}
    runtime = steps.detect_runtime(settings.render.container_runtime)
    return {image: (steps.image_digest(image, runtime) if runtime else None) or "unknown" for image in images}


def _cache_hits(tree: SourceTree, previous: PreviousOutput, fingerprints: Mapping[str, str]
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
        if all(r.blob == blob and r.fingerprint == fingerprints.get(r.promise) and r.status in previous.files
               and all(o in previous.files for o in r.outputs) for r in records):
            hits[file] = records
    return hits


def _reused_status(record: cache.Record, unchanged: Mapping[str, schedule.Placement]) -> RequestStatus:
    """A request carried over from the cache: `unchanged` holds one shared placement per destination."""
    key = RequestKey(record.kind, record.namespace, record.name)
    request = ResourceRequest(key=key, api_version=record.api_version, promise=record.promise,
                              source=SourceDoc(record.file, 0, 1, None), body={})
    placements = []
    for name, destination in sorted(record.placements.items()):
        pipeline_name, _, directory = name.partition("#")[2].partition("/")
        placements.append((pipeline_name, directory or None, unchanged[destination]))
    return RequestStatus(request, "placed", "Resource requested", "Placed", "unchanged since the last compile",
                         placements=tuple(placements), placement_records=dict(record.placements),
                         workflow_ok=True, reused=True, unchecked_kinds=record.unchecked)


def _cache_records(requests: Mapping[str, RequestStatus], previous: PreviousOutput, fingerprints: Mapping[str, str],
                   files: Mapping[str, bytes], tree_files: Mapping[str, bytes],
                   diagnostics: Sequence[Diagnostic]) -> list[cache.Record]:
    """What to remember of each cleanly placed request; files with any diagnostic are never remembered."""
    old = {r.key: r for r in previous.cache}
    noisy = {d.file for d in diagnostics}
    per_file: dict[str, list[RequestStatus]] = {}
    for status in requests.values():
        per_file.setdefault(status.request.source.path, []).append(status)
    records = []
    for file, statuses in per_file.items():
        if file in noisy or file not in tree_files or not file.startswith("requests/") or any(
                s.state != "placed" or s.children or (not s.reused and not s.files) for s in statuses):
            continue
        for status in statuses:
            key = status.request.key
            if status.reused:
                records.append(old[str(key)])
                continue
            outputs = tuple(sorted(f.output_path for f in status.files))
            records.append(cache.Record(
                file=file, blob=cache.digest(tree_files[file]), fingerprint=fingerprints[status.request.promise],
                documents=len(statuses), kind=key.kind, namespace=key.namespace, name=key.name,
                api_version=status.request.api_version, promise=status.request.promise,
                placements=dict(status.placement_records), outputs=outputs, unchecked=status.unchecked_kinds,
                status=f"{BOOKKEEPING}/{_status_path(status)}"))
    return records


def _status_path(status: RequestStatus) -> str:
    key = status.request.key
    return f"{STATUS_FOLDER}/{key.namespace}/{status.request.promise}/{key.name}.yaml"


def prepare_publish(tree: SourceTree, previous: PreviousOutput, *, settings: Settings,
                    progress: Progress = _no_progress) -> tuple[CompileResult, str, list[plans.GuardTrip]]:
    """Compile against what the output branch holds now; the commit message and the guard's verdict."""
    result = compile_platform(tree, settings=settings, previous=previous, progress=progress)
    trips = plans.guard(provenance.decode(previous.files.get(provenance.PROVENANCE_PATH)),
                        provenance.decode(result.files.get(provenance.PROVENANCE_PATH)),
                        threshold=settings.publish.deletion_threshold)
    return result, _commit_message(tree, result, previous), trips


def plan_platform(tree: SourceTree, previous: PreviousOutput, *, settings: Settings
                  ) -> tuple[CompileResult, plans.Plan]:
    result = compile_platform(tree, settings=settings, previous=previous)
    return result, plans.make_plan(previous.files, result.files, statuses=result.requests,
                                   previous_placements=previous.placements(),
                                   threshold=settings.publish.deletion_threshold)


def _commit_message(tree: SourceTree, result: CompileResult, previous: PreviousOutput) -> str:
    changed = [p for p in set(result.files) | set(previous.files)
               if not p.startswith(BOOKKEEPING + "/") and result.files.get(p) != previous.files.get(p)]
    destinations = sorted({destination_of(p) or "" for p in changed} - {""})
    s = result.summary
    source = f"{tree.origin} @ {tree.commit[:12]}" if tree.commit else f"{tree.origin} (work tree)"
    lines = [f"kratix: compile {source}", "",
             f"{len(changed)} file(s) changed on {', '.join(destinations) or 'no destination'}.",
             f"Requests: {s.placed} placed, {s.pending} pending, {s.misplaced} misplaced, {s.failed} failed; "
             f"{s.promises} promises, {s.destinations} destinations."]
    if tree.commit:
        lines += ["", f"Source-Commit: {tree.commit}"]
    return "\n".join(lines) + "\n"


def _lay_out(platform: Platform, promises: Mapping[str, PromiseStatus], requests: Mapping[str, RequestStatus],
             previous: PreviousOutput, *, commit: str | None, fingerprints: Mapping[str, str],
             diagnostics: Sequence[Diagnostic], tree_files: Mapping[str, bytes] | None = None) -> dict[str, bytes]:
    placed = [f for s in promises.values() for f in s.files] + [f for s in requests.values() for f in s.files]
    kept = _last_known_good(requests, promises, previous)
    old_records = {r.key: r for r in previous.cache}
    for key, status in requests.items():
        if status.reused:
            kept.update((path, previous.files[path]) for path in old_records[key].outputs)
    previous_placements = previous.placements()
    records = {k: v for s in requests.values() for k, v in s.placement_records.items()}
    for status in requests.values():
        if status.keeps_previous_output:
            records.update(_kept_placements(status, previous_placements))
    bookkeeping: dict[str, Any] = {PLACEMENTS_FILE: dict(sorted(records.items()))}
    for status in requests.values():
        path = _status_path(status)
        bookkeeping[path] = (previous.files[f"{BOOKKEEPING}/{path}"] if status.reused
                             else request_status_document(status))
    for name, promise_status in promises.items():
        bookkeeping[f"{PROMISE_STATUS_FOLDER}/{name}.yaml"] = promise_status_document(promise_status)
    kept_objects: dict[str, set[str]] = {}
    for path in kept:
        entry = previous.provenance.get(path)
        if entry is not None and entry.destination is not None:
            kept_objects.setdefault(entry.destination, set()).update(entry.objects)
    files = layout.build_tree(placed, destinations=[d.path for d in platform.destinations.values()],
                              bookkeeping=bookkeeping, kept=kept, kept_objects=kept_objects)
    files[provenance.PROVENANCE_PATH] = _provenance(placed, files, kept, previous, commit)
    cached = _cache_records(requests, previous, fingerprints, files, tree_files or {}, diagnostics)
    if cached:
        files[cache.CACHE_PATH] = cache.encode(cached)
    return files


def _provenance(placed: Sequence[PlacedFile], files: Mapping[str, bytes], kept: Mapping[str, bytes],
                previous: PreviousOutput, commit: str | None) -> bytes:
    before = previous.provenance
    entries = {p.output_path: provenance.Entry(
        path=p.output_path, owner=p.owner, destination=p.destination, promise=p.promise,
        request=None if p.owner.startswith("Promise ") else p.owner, pipeline=p.pipeline, source=p.file.source,
        objects=tuple(object_id(d) for d in p.file.documents)) for p in placed}
    for path in kept:
        if path in before:
            entries[path] = before[path]
    for path in files:
        if path not in entries and not path.startswith(BOOKKEEPING + "/"):
            entries[path] = provenance.Entry(path=path, owner=provenance.GENERATED,
                                             destination=destination_of(path))
    return provenance.encode(provenance.settle_commits(entries.values(), files=files, previous_files=previous.files,
                                                       previous=before, commit=commit))


# --- Promises -----------------------------------------------------------------------------------------------

def _check_promises(platform: Platform, diagnostics: list[Diagnostic]) -> tuple[dict[str, Any], dict[str, str]]:
    """Compile each Promise's request schema; say which Promises cannot serve requests, and why."""
    schemas: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for promise in platform.promises.values():
        if promise.body.get("spec", {}).get("api") is None:
            continue
        violations = schema.check_crd(promise.body["spec"]["api"])
        for violation in violations:
            diagnostics.append(Diagnostic.at(promise.source, ("spec", "api", *violation.path), violation.code,
                                             violation.message, severity=violation.severity,
                                             object=f"Promise {promise.name}"))
        if any(v.severity is Severity.ERROR for v in violations) or promise.api is None:
            problems[promise.name] = "its API (spec.api) is not a valid CustomResourceDefinition"
            continue
        schemas[promise.name] = schema.compile_request_schema(promise.body["spec"]["api"])
    return schemas, _unavailable_promises(platform, problems)


def _compile_promises(platform: Platform, renderer: render.Renderer, unavailable: Mapping[str, str],
                      diagnostics: list[Diagnostic]) -> dict[str, PromiseStatus]:
    statuses: dict[str, PromiseStatus] = {}
    for promise in sorted(platform.promises.values(), key=lambda p: p.name):
        names = [p.name for p in promise.promise_configure]
        revision = cache.fingerprint(json.dumps(promise.body, sort_keys=True, default=str))[:12]
        if promise.name in unavailable:
            statuses[promise.name] = PromiseStatus(promise, available=False, reason=unavailable[promise.name],
                                                   pipelines=_phases(names, None, pending=True), revision=revision)
            continue
        files, labels, workflow = _render_promise(renderer, promise, platform.destinations)
        phases = _phases(names, workflow, pending=False)
        if workflow.failure is not None:
            diagnostics.append(_failure_diagnostic(workflow.failure, f"Promise {promise.name}"))
            statuses[promise.name] = PromiseStatus(promise, available=False,
                                                   reason=f"promise workflow failed: {workflow.failure.message}",
                                                   pipelines=phases, revision=revision, workflow_ok=False)
            continue
        statuses[promise.name] = PromiseStatus(promise, available=True, reason="", files=tuple(files),
                                               request_labels=labels, pipelines=phases, revision=revision,
                                               workflow_ok=True)
    return statuses


def _compile_requests(platform: Platform, schemas: Mapping[str, Any], promises: Mapping[str, PromiseStatus],
                      renderer: render.Renderer, previous_placements: Mapping[str, str],
                      diagnostics: list[Diagnostic], progress: Progress, *, taken: Collection[str] = (),
                      parallelism: int = 1) -> dict[str, RequestStatus]:
    """Every request, then the requests their workflows emit for other Promises' APIs (compound Promises), in
    waves: parents before children, so a child always sees a finished parent. Requests whose Promise runs
    programs or containers are compiled `parallelism` at a time (they wait on processes, not on Python)."""
    served = {(p.api.group, p.api.kind): p.name for p in platform.promises.values() if p.api is not None}
    statuses: dict[str, RequestStatus] = {}
    total = len(platform.requests)

    def compile_one(item: tuple[ResourceRequest, tuple[ResourceRequest, ...]]) -> RequestStatus:
        status = _compile_request(item[0], promises[item[0].promise], schemas, renderer, platform.destinations,
                                  previous_placements, diagnostics, served=served)
        progress("rendering requests", len(statuses) + 1, total)
        return status

    wave: list[tuple[ResourceRequest, tuple[ResourceRequest, ...]]] = [(r, ()) for r in platform.requests]
    progress("rendering requests", 0, total)
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        while wave:
            todo = []
            seen = set(statuses) | set(taken)
            for request, ancestry in wave:
                if str(request.key) in seen:
                    parent = ancestry[-1]
                    diagnostics.append(Diagnostic(request.source.path, 1, 1, "", "request.duplicate",
                                                  f"{parent.key} emits {request.key}, which already exists",
                                                  Severity.ERROR, str(parent.key)))
                    continue
                seen.add(str(request.key))
                todo.append((request, ancestry))
            slow = [item for item in todo if promises[item[0].promise].promise.runs_programs]
            ran = dict(zip((str(r.key) for r, _ in slow), pool.map(compile_one, slow), strict=True))
            wave = []
            for request, ancestry in todo:
                status = ran.get(str(request.key)) or compile_one((request, ancestry))
                status, children = _check_cycles(status, (*ancestry, request), diagnostics)
                wave.extend((child, (*ancestry, request)) for child in children)
                statuses[str(request.key)] = status
            total += len(wave)
    return statuses


def _check_cycles(status: RequestStatus, chain: tuple[ResourceRequest, ...], diagnostics: list[Diagnostic]
                  ) -> tuple[RequestStatus, tuple[ResourceRequest, ...]]:
    """A request whose emitted requests lead back to a Promise already on its chain fails, naming the cycle."""
    for child in status.children:
        if any(link.promise == child.promise for link in chain):
            cycle = " → ".join([*(link.promise for link in chain), child.promise])
            message = f"compound Promise cycle: {cycle}"
            diagnostics.append(Diagnostic(child.source.path, 1, 1, "", "request.cycle", message,
                                          Severity.ERROR, str(chain[-1].key)))
            return status.failed("CompoundCycle", message), ()
    return status, status.children


def _reject_conflicts(promises: dict[str, PromiseStatus], requests: dict[str, RequestStatus],
                      diagnostics: list[Diagnostic], previous: PreviousOutput) -> None:
    """Two owners emitting one object to one destination: the later owner (in sorted order) fails. Output
    carried over unchanged counts as emitted first."""
    placed = [f for s in promises.values() for f in s.files] + [f for s in requests.values() for f in s.files]
    for conflict in layout.find_conflicts(placed):
        message = (f"{conflict.object_id} on destination {conflict.placed.destination} is also emitted by "
                   f"{conflict.other.owner}")
        _fail_owner(conflict.placed.owner, "ObjectConflict", message, promises, requests, diagnostics)
    taken: dict[tuple[str | None, str], str] = {}
    records = {r.key: r for r in previous.cache}
    for key, status in requests.items():
        if status.reused:
            for path in records[key].outputs:
                entry = previous.provenance.get(path)
                if entry is not None:
                    taken.update(((entry.destination, object_id), key) for object_id in entry.objects)
    if not taken:
        return
    for item in placed:
        for document in item.file.documents:
            other = taken.get((item.destination, object_id(document)))
            if other is not None and other != item.owner:
                message = (f"{object_id(document)} on destination {item.destination} is also emitted by "
                           f"{other}")
                _fail_owner(item.owner, "ObjectConflict", message, promises, requests, diagnostics)


def _fail_owner(owner: str, reason: str, message: str, promises: dict[str, PromiseStatus],
                requests: dict[str, RequestStatus], diagnostics: list[Diagnostic]) -> None:
    if owner in requests:
        status = requests[owner]
        if not status.failed_now:
            diagnostics.append(Diagnostic.at(status.request.source, (), f"output.{reason}", message, object=owner))
            requests[owner] = status.failed(reason, message)
        return
    name = owner.removeprefix("Promise ")
    status_of_promise = promises[name]
    if status_of_promise.available:
        diagnostics.append(Diagnostic.at(status_of_promise.promise.source, (), f"output.{reason}", message,
                                         object=owner))
        promises[name] = replace(status_of_promise, available=False, reason=message, files=())


def _unavailable_promises(platform: Platform, problems: Mapping[str, str]) -> dict[str, str]:
    """Promises that cannot serve requests: invalid, or a required Promise missing (transitively)."""
    unavailable = dict(problems)
    changed = True
    while changed:
        changed = False
        for promise in platform.promises.values():
            if promise.name in unavailable:
                continue
            for required in promise.required:
                other = platform.promises.get(required.name)
                reason = None
                if other is None:
                    reason = f"required Promise {required.name!r} is not installed"
                elif required.version is not None and other.version != required.version:
                    reason = (f"required Promise {required.name!r} is at version {other.version or '(none)'}, "
                              f"not {required.version}")
                elif required.name in unavailable:
                    reason = f"required Promise {required.name!r} is unavailable"
                if reason:
                    unavailable[promise.name] = reason
                    changed = True
                    break
    return unavailable


def _render_promise(renderer: render.Renderer, promise: Promise, destinations: Mapping[str, Destination]
                    ) -> tuple[list[PlacedFile], dict[str, str], WorkflowResult]:
    promise_labels = schedule.selector_labels(promise.selectors)
    outputs = [renderer.render_dependencies(promise)]
    workflow = WorkflowResult()
    if promise.promise_configure:
        workflow = renderer.render_workflow(promise, promise.promise_configure, promise.body,
                                            workflow_type="promise", env=_env(promise, None, "promise"))
        outputs.extend(workflow.outputs)
    # Selectors a promise workflow writes for its root output also steer the Promise's requests (Kratix's
    # priority: resource workflow < promise workflow < Promise).
    workflow_labels = schedule.merge_labels(*(g.match_labels for o in workflow.outputs for g in o.groups
                                              if g.directory is None))
    placed: list[PlacedFile] = []
    for output in outputs:
        for directory, files in _split_groups(output):
            group_labels = _group_labels(output, directory)
            labels = (group_labels if directory is not None
                      else schedule.merge_labels(workflow_labels, group_labels, promise_labels))
            for destination in schedule.place_all(labels, destinations):
                for file in files:
                    placed.append(PlacedFile(
                        destination=destination.path, area="dependencies",
                        path=f"{promise.name}/{output.pipeline}/{file.path}", file=file,
                        labels=_labels(promise.name, None, output.pipeline,
                                       "static-dependency" if output.pipeline == "static" else "promise"),
                        owner=f"Promise {promise.name}", promise=promise.name, pipeline=output.pipeline))
    return placed, schedule.merge_labels(workflow_labels, promise_labels), workflow


# --- Requests -----------------------------------------------------------------------------------------------

def _compile_request(request: ResourceRequest, promise_status: PromiseStatus, schemas: Mapping[str, Any],
                     renderer: render.Renderer, destinations: Mapping[str, Destination],
                     previous_placements: Mapping[str, str], diagnostics: list[Diagnostic], *,
                     served: Mapping[tuple[str, str], str]) -> RequestStatus:
    status, workflow = _run_request(request, promise_status, schemas, renderer, destinations, previous_placements,
                                    diagnostics, served=served)
    names = [p.name for p in promise_status.promise.resource_configure]
    return replace(status, pipelines=_phases(names, workflow, pending=not promise_status.available),
                   revision=_revision(request, promise_status.promise))


def _phases(names: Sequence[str], workflow: WorkflowResult | None, *,
            pending: bool) -> tuple[tuple[str, str, str], ...]:
    """Each pipeline's phase, Kratix-style: Succeeded, Failed (with why), Skipped after a failure, Pending."""
    if workflow is None:
        return tuple((name, "Pending" if pending else "Skipped", "") for name in names)
    done = {o.pipeline for o in workflow.outputs}
    failed = workflow.failure.step.split("/", 1)[0] if workflow.failure else None
    return tuple((name, "Succeeded", "") if name in done and name != failed
                 else (name, "Failed", workflow.failure.message) if name == failed and workflow.failure
                 else (name, "Skipped", "") for name in names)


def _revision(request: ResourceRequest, promise: Promise) -> str:
    """Changes whenever what the request asks for or its Promise's version does: Kratix's observedGeneration."""
    text = json.dumps(request.body, sort_keys=True, default=str) + "|" + (promise.version or "")
    return cache.fingerprint(text)[:12]


def _run_request(request: ResourceRequest, promise_status: PromiseStatus, schemas: Mapping[str, Any],
                 renderer: render.Renderer, destinations: Mapping[str, Destination],
                 previous_placements: Mapping[str, str], diagnostics: list[Diagnostic], *,
                 served: Mapping[tuple[str, str], str]) -> tuple[RequestStatus, WorkflowResult | None]:
    subject = str(request.key)
    promise = promise_status.promise
    if not promise_status.available:
        return RequestStatus.pending(request, f"Promise {promise.name!r} is unavailable: {promise_status.reason}"), None
    body, violations = schema.validate_request(schemas[promise.name], request.body)
    for violation in violations:
        diagnostics.append(Diagnostic.at(request.source, violation.path, violation.code, violation.message,
                                         severity=violation.severity, object=subject))
    errors = [v for v in violations if v.severity is Severity.ERROR]
    if errors:
        return RequestStatus.invalid(request, [f"{'.'.join(map(str, v.path))}: {v.message}" for v in errors]), None
    workflow = renderer.render_workflow(promise, promise.resource_configure, body, workflow_type="resource",
                                        env=_env(promise, request, "resource"))
    if workflow.failure is not None:
        diagnostics.append(_failure_diagnostic(workflow.failure, subject))
        return RequestStatus.render_failed(request, workflow.failure, workflow.status), workflow
    workflow, children = _split_sub_requests(workflow, request, served)
    status = _place_request(request, promise, workflow, destinations, promise_status.request_labels,
                            previous_placements)
    return replace(status, children=children), workflow


def _split_sub_requests(workflow: WorkflowResult, parent: ResourceRequest, served: Mapping[tuple[str, str], str]
                        ) -> tuple[WorkflowResult, tuple[ResourceRequest, ...]]:
    """Objects of a kind some Promise serves are requests to compile, not manifests to deliver."""
    children: list[ResourceRequest] = []
    outputs = []
    for output in workflow.outputs:
        files = []
        for file in output.files:
            kept = []
            for document in file.documents:
                api_version = str(document.get("apiVersion", ""))
                group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
                promise = served.get((group, str(document.get("kind"))))
                if promise is None:
                    kept.append(document)
                else:
                    children.append(_sub_request(document, promise, parent, file.source))
            if kept:
                files.append(replace(file, documents=tuple(kept)))
        outputs.append(replace(output, files=tuple(files)))
    return replace(workflow, outputs=tuple(outputs)), tuple(children)


def _sub_request(document: Mapping[str, Any], promise: str, parent: ResourceRequest, source: str
                 ) -> ResourceRequest:
    metadata = dict(document.get("metadata") or {})
    metadata.setdefault("namespace", parent.key.namespace)
    metadata["labels"] = {**(metadata.get("labels") or {}), **_parent_labels(parent)}
    body = {**document, "metadata": metadata}
    key = RequestKey(str(document["kind"]), str(metadata["namespace"]), str(metadata["name"]))
    return ResourceRequest(key=key, api_version=str(document["apiVersion"]), promise=promise,
                           source=SourceDoc(source, 0, 1, body), body=body)


def _parent_labels(parent: ResourceRequest) -> dict[str, str]:
    return {PARENT_PROMISE_LABEL: parent.promise, PARENT_RESOURCE_LABEL: parent.key.name,
            PARENT_NAMESPACE_LABEL: parent.key.namespace}


def _place_request(request: ResourceRequest, promise: Promise, workflow: WorkflowResult,
                   destinations: Mapping[str, Destination], promise_labels: Mapping[str, str],
                   previous_placements: Mapping[str, str]) -> RequestStatus:
    key = request.key
    identity = f"{key.kind}/{key.namespace}/{key.name}"
    own_labels = (request.body.get("metadata") or {}).get("labels") or {}
    parent_labels = {k: str(v) for k, v in own_labels.items() if k.startswith(PARENT_LABEL_PREFIX)}
    files: list[PlacedFile] = []
    placements: list[tuple[str, str | None, schedule.Placement]] = []
    records: dict[str, str] = {}
    outputs = workflow.outputs or (PipelineOutput(promise.resource_configure[0].name if promise.resource_configure
                                                  else "none", ()),)
    for output in outputs:
        for directory, group_files in _split_groups(output):
            group_labels = _group_labels(output, directory)
            # A directory group goes where its own labels say (as in Kratix); the root group also carries the
            # Promise's selectors, and the Promise wins a key conflict.
            labels = group_labels if directory is not None else schedule.merge_labels(group_labels, promise_labels)
            record = f"{identity}#{output.pipeline}" + (f"/{directory}" if directory else "")
            placement = schedule.place_one(identity, labels, destinations, previous=previous_placements.get(record))
            placements.append((output.pipeline, directory, placement))
            if placement.destination is None:
                continue
            records[record] = placement.destination.name
            for file in group_files:
                files.append(PlacedFile(
                    destination=placement.destination.path, area="resources",
                    path=f"{key.namespace}/{promise.name}/{key.name}/{output.pipeline}/{file.path}", file=file,
                    labels={**_labels(promise.name, key.name, output.pipeline, "resource"), **parent_labels},
                    owner=str(key), promise=promise.name, pipeline=output.pipeline))
    return RequestStatus.rendered(request, workflow.status, placements, files, records)


# --- output validation --------------------------------------------------------------------------------------

def _validate_output(checker: conformance.Conformance, promises: dict[str, PromiseStatus],
                     requests: dict[str, RequestStatus], diagnostics: list[Diagnostic]) -> tuple[str, ...]:
    """Check every emitted object against Kubernetes' schemas (custom kinds against the CRDs delivered to the
    same destination); an owner with an invalid object fails. Each request remembers the kinds no schema could
    check; the kinds of the Promises' own output are returned."""
    placed = [f for s in promises.values() for f in s.files] + [f for s in requests.values() for f in s.files]
    crds: dict[str, list[Mapping[str, Any]]] = {}
    for item in placed:
        for document in item.file.documents:
            if document.get("kind") == "CustomResourceDefinition":
                crds.setdefault(item.destination, []).append(document)
    unchecked: dict[str, set[str]] = {}
    by_owner_destination: dict[tuple[str, str], list[tuple[PlacedFile, Mapping[str, Any]]]] = {}
    for item in placed:
        for document in item.file.documents:
            by_owner_destination.setdefault((item.owner, item.destination), []).append((item, document))
    for (owner, destination), entries in sorted(by_owner_destination.items()):
        report = checker.check([document for _, document in entries], crds=crds.get(destination, ()))
        unchecked.setdefault(owner, set()).update(report.not_validated_kinds)
        for index, problems in sorted(report.problems.items()):
            item, document = entries[index]
            subject = f"{document.get('kind')} {(document.get('metadata') or {}).get('name')}"
            for problem in problems:
                diagnostics.append(Diagnostic(item.file.source, 1, 1, ".".join(map(str, problem.path)),
                                              problem.code, f"output {subject} in {item.file.path}: "
                                              f"{problem.message}", Severity.ERROR, owner))
            _fail_owner(owner, "OutputInvalid", f"output {subject} is not valid for Kubernetes "
                        f"{checker.kubernetes_version}: {problems[0].message}", promises, requests, [])
    for owner, kinds in unchecked.items():
        if owner in requests:
            requests[owner] = replace(requests[owner], unchecked_kinds=tuple(sorted(kinds)))
    return tuple(sorted({k for owner, kinds in unchecked.items() if owner not in requests for k in kinds}))


# --- shared helpers -----------------------------------------------------------------------------------------

def _split_groups(output: PipelineOutput) -> list[tuple[str | None, list[Any]]]:
    """Files by destination-selector group: each `directory` group, then the rest (the root group)."""
    directories = sorted({g.directory for g in output.groups if g.directory is not None})
    grouped: dict[str | None, list[Any]] = {d: [] for d in directories}
    grouped[None] = []
    for file in output.files:
        top = file.path.split("/", 1)[0] if "/" in file.path else None
        grouped[top if top in grouped else None].append(file)
    return [(d, grouped[d]) for d in directories if grouped[d]] + [(None, grouped[None])]


def _group_labels(output: PipelineOutput, directory: str | None) -> dict[str, str]:
    return schedule.merge_labels(*(g.match_labels for g in output.groups if g.directory == directory))


def _labels(promise: str, resource: str | None, pipeline: str, work_type: str) -> dict[str, str]:
    labels = {PROMISE_LABEL: promise}
    if resource is not None:
        labels[RESOURCE_LABEL] = resource
    labels[PIPELINE_LABEL] = pipeline
    labels[WORK_TYPE_LABEL] = work_type
    labels[MANAGED_BY] = "kratix"
    return labels


def _env(promise: Promise, request: ResourceRequest | None, workflow_type: str) -> dict[str, str]:
    api = promise.api
    if request is None:
        kind, group, version, name, namespace = "Promise", "platform.kratix.io", "v1alpha1", promise.name, ""
    else:
        kind, name, namespace = request.key.kind, request.key.name, request.key.namespace
        group, version = (api.group, api.version) if api else ("", "")
    return {
        "KRATIX_WORKFLOW_TYPE": workflow_type,
        "KRATIX_WORKFLOW_ACTION": "configure",
        "KRATIX_PROMISE_NAME": promise.name,
        "KRATIX_OBJECT_KIND": kind,
        "KRATIX_OBJECT_GROUP": group,
        "KRATIX_OBJECT_VERSION": version,
        "KRATIX_OBJECT_NAME": name,
        "KRATIX_OBJECT_NAMESPACE": namespace,
        "KRATIX_CRD_PLURAL": api.plural if api else "",
    }


def _failure_diagnostic(failure: RenderFailure, subject: str) -> Diagnostic:
    return Diagnostic(failure.file, failure.line, failure.column, "", failure.code,
                      f"{failure.step}: {failure.message}", Severity.ERROR, subject)


def _last_known_good(statuses: Mapping[str, RequestStatus], promise_statuses: Mapping[str, PromiseStatus],
                     previous: PreviousOutput) -> dict[str, bytes]:
    """What fails now keeps what it had published: a broken change never deletes running infrastructure. That
    covers failing requests, requests pending on an unavailable Promise, and unavailable Promises' output."""
    requests = {(s.request.key.namespace, s.request.promise, s.request.key.name)
                for s in statuses.values() if s.keeps_previous_output}
    promises = {name for name, s in promise_statuses.items() if not s.available}
    kept: dict[str, bytes] = {}
    if not requests and not promises:
        return kept
    for path, data in previous.files.items():
        if path.startswith(BOOKKEEPING + "/"):
            continue
        if "/resources/" in path:
            parts = path.split("/resources/", 1)[1].split("/")
            if len(parts) > 3 and (parts[0], parts[1], parts[2]) in requests:
                kept[path] = data
        elif "/dependencies/" in path:
            parts = path.split("/dependencies/", 1)[1].split("/")
            if len(parts) > 1 and parts[0] in promises:
                kept[path] = data
    return kept


def _kept_placements(status: RequestStatus, previous_placements: Mapping[str, str]) -> dict[str, str]:
    key = status.request.key
    prefix = f"{key.kind}/{key.namespace}/{key.name}#"
    return {k: v for k, v in previous_placements.items() if k.startswith(prefix)}


def _summary(platform: Platform, statuses: Mapping[str, RequestStatus], promise_statuses: Mapping[str, PromiseStatus],
             files: Mapping[str, bytes], not_validated: tuple[str, ...]) -> Summary:
    states = [s.state for s in statuses.values()]
    return Summary(
        promises=len(platform.promises),
        promises_unavailable=sum(1 for s in promise_statuses.values() if not s.available),
        destinations=len(platform.destinations),
        requests=len(statuses),
        placed=states.count("placed"),
        pending=states.count("pending"),
        misplaced=states.count("misplaced"),
        failed=states.count("failed"),
        files=len(files),
        not_validated_kinds=tuple(sorted({*not_validated, *(k for s in statuses.values() for k in s.unchecked_kinds)})),
    )

