"""Request-level compile: validate each request, run its workflow, split off the requests it emits for other
Promises (compound Promises, compiled in later waves), and place its output on one destination.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from kratix import schema, workers
from kratix.layout import tree as layout
from kratix.memory import cache
from kratix.model import paths
from kratix.model.diagnostics import Diagnostic, Severity
from kratix.model.documents import SourceDoc
from kratix.model.manifests import (
    IDENTITY_LABELS,
    PARENT_LABEL_PREFIX,
    PARENT_NAMESPACE_LABEL,
    PARENT_PROMISE_LABEL,
    PARENT_RESOURCE_LABEL,
    PipelineOutput,
    PlacedFile,
    WorkflowResult,
    kratix_labels,
)
from kratix.model.placements import PLACED
from kratix.model.platform import Destination, Platform, Promise, RequestKey, ResourceRequest
from kratix.model.statuses import PromiseStatus, RequestStatus, pipeline_phases, suspended_phases
from kratix.schedule import scheduler as schedule
from kratix.schema import conformance
from kratix.workflows import contract, render, secretpolicy, suspensions

Progress = Callable[[str, int, int], None]  # (what, done, total): for a progress line on a terminal
PreviousStatus = Callable[[str, str, str], Mapping[str, Any]]  # (namespace, promise, name) -> last status


def _no_status(namespace: str, promise: str, name: str) -> Mapping[str, Any]:
    return {}


def compile_requests(
    platform: Platform,
    schemas: Mapping[str, Any],
    promises: Mapping[str, PromiseStatus],
    renderer: render.Renderer,
    previous_placements: Mapping[str, str],
    diagnostics: list[Diagnostic],
    progress: Progress,
    *,
    taken: Collection[str] = (),
    parallelism: int = 1,
    previous_status: PreviousStatus = _no_status,
    now: datetime | None = None,
    checker: conformance.Conformance | None = None,
    keeper: layout.Keeper | None = None,
) -> dict[str, RequestStatus]:
    """Every request, then the requests their workflows emit for other Promises' APIs (compound Promises), in
    waves: parents before children, so a child always sees a finished parent. Requests whose Promise runs
    programs or containers are compiled `parallelism` at a time (they wait on processes, not on Python).
    `checker`: what output is validated against (None: output is not validated), for `_packed_if_settled`.
    `keeper`: what keeps the files packed already, as each status comes in (so that a large platform's output
    is never held as bytes all at once). Each status holds its request as `ResourceRequest.located`: nothing
    after the compile reads a request's body."""
    served = {(p.api.group, p.api.kind): p.name for p in platform.promises.values() if p.api is not None}
    destinations = schedule.Destinations(platform.destinations)  # which match each selector, worked out once
    statuses: dict[str, RequestStatus] = {}
    total = len(platform.requests)
    reading = threading.Lock()  # the previous output may be read through one git process
    when = now or datetime.now(UTC)  # the CLI always gives the compile's time (`--now`)

    def status_of(request: ResourceRequest) -> Mapping[str, Any]:
        with reading:
            return previous_status(request.key.namespace, request.promise, request.key.name)

    def compile_one(item: tuple[ResourceRequest, tuple[ResourceRequest, ...]]) -> RequestStatus:
        status = _compile_request(
            item[0],
            promises[item[0].promise],
            schemas,
            renderer,
            destinations,
            previous_placements,
            diagnostics,
            served=served,
            previous_status=status_of,
            now=when,
        )
        progress("rendering requests", len(statuses) + 1, total)
        return status

    wave: list[tuple[ResourceRequest, tuple[ResourceRequest, ...]]] = [(r, ()) for r in platform.requests]
    progress("rendering requests", 0, total)
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        while wave:
            todo = []
            seen = set(statuses) | set(taken)
            for request, ancestry in wave:
                if ancestry and str(request.key) in seen:  # the loader already refused duplicate files
                    parent = ancestry[-1]
                    diagnostics.append(
                        Diagnostic(
                            request.source.path,
                            1,
                            1,
                            "",
                            "request.duplicate",
                            f"{parent.key} emits {request.key}, which already exists",
                            Severity.ERROR,
                            str(parent.key),
                        )
                    )
                    continue
                seen.add(str(request.key))
                todo.append((request, ancestry))
            slow = [item for item in todo if renderer.waits_on_programs(promises[item[0].promise].promise, item[0])]
            ran = {
                str(request.key): _kept(status, request, keeper)
                for (request, _), status in zip(slow, pool.map(compile_one, slow), strict=True)
            }
            quick = [request for request, _ in todo if str(request.key) not in ran]
            ran.update(
                _compile_on_every_core(
                    quick,
                    promises,
                    schemas,
                    renderer,
                    destinations,
                    previous_placements,
                    diagnostics,
                    served,
                    jobs=parallelism,
                    previous_status=status_of,
                    now=when,
                    checker=checker,
                    keeper=keeper,
                )
            )
            wave = []
            for request, ancestry in todo:
                status = ran.get(str(request.key)) or _kept(compile_one((request, ancestry)), request, keeper)
                status, children = _check_cycles(status, (*ancestry, request), diagnostics)
                wave.extend((child, (*ancestry, request)) for child in children)
                statuses[str(request.key)] = status
            total += len(wave)
    for held in platform.held:
        request = ResourceRequest(
            key=held.key,
            api_version=held.api_version,
            promise=held.promise,
            source=SourceDoc(held.file, 0, 1, {}),
            body={},
        )
        statuses[str(held.key)] = RequestStatus.held(request, held.why)
    return statuses


def _kept(status: RequestStatus, request: ResourceRequest, keeper: layout.Keeper | None) -> RequestStatus:
    """`status` of `request` as the compile holds it from now on: see `compile_requests`."""
    files = tuple(keeper(item) for item in status.files) if keeper is not None else status.files
    return replace(status, request=request.located(), files=files)


def _compile_on_every_core(
    requests: Sequence[ResourceRequest],
    promises: Mapping[str, PromiseStatus],
    schemas: Mapping[str, Any],
    renderer: render.Renderer,
    destinations: Mapping[str, Destination],
    previous_placements: Mapping[str, str],
    diagnostics: list[Diagnostic],
    served: Mapping[tuple[str, str], str],
    *,
    jobs: int,
    previous_status: Callable[[ResourceRequest], Mapping[str, Any]],
    now: datetime,
    checker: conformance.Conformance | None,
    keeper: layout.Keeper | None,
) -> dict[str, RequestStatus]:
    """Requests whose workflows are templates only (CPU work in Python), over worker processes when they are many
    (`kratix.workers`; few are compiled by the caller, one at a time). Diagnostics come back with each
    status; each placed file comes back as bytes when no later check reads its objects (`_packed_if_settled`)."""
    if len(requests) < workers.MINIMUM or jobs <= 1 or not renderer.forkable:
        return {}

    # Read here, before the fork: the previous output may be read through one git process, which the workers
    # must not share.
    before = {str(request.key): previous_status(request) for request in requests}

    def work(start: int, stop: int) -> list[tuple[RequestStatus, list[Diagnostic]]]:
        done = []
        for request in requests[start:stop]:
            found: list[Diagnostic] = []
            status = _compile_request(
                request,
                promises[request.promise],
                schemas,
                renderer,
                destinations,
                previous_placements,
                found,
                served=served,
                now=now,
                previous_status=lambda r: before[str(r.key)],
            )
            # The request goes back without its body: this process has it already (a copy would double it). What
            # the pipelines wrote is most often only Kratix's `Pending`: one shared dict, so pickling sends one per
            # slice, not one per request (tens of thousands; nothing changes a status's `written`).
            written = _PENDING_ONLY if status.written == _PENDING_ONLY else status.written
            files = tuple(_packed_if_settled(item, checker) for item in status.files)
            bare = replace(request, body={}, source=_NO_SOURCE)
            done.append((replace(status, request=bare, written=written, files=files), found))
        return done

    statuses = {}
    # Slice by slice as the workers finish: each file is kept (`keeper`) before the next slice comes in.
    for request, (status, found) in zip(requests, workers.iter_ranges(work, len(requests), jobs=jobs), strict=True):
        statuses[str(request.key)] = _kept(status, request, keeper)
        diagnostics.extend(found)
    return statuses


_NO_SOURCE = SourceDoc("", 0, 1, None)
_PENDING_ONLY: Mapping[str, Any] = {"message": contract.PENDING_MESSAGE}


def _packed_if_settled(item: PlacedFile, checker: conformance.Conformance | None) -> PlacedFile:
    """`item` made into its bytes and object ids here, in the worker (`layout.pack`), when no check after the
    compile would read its objects: its parsed documents are then neither sent back to nor kept by the parent
    process (most of a large platform's output). That holds when every object is of a built-in kind and neither a
    Secret (`assemble.check_secrets` reads, and may encrypt, those) nor a CustomResourceDefinition (a schema other
    objects on its destination are checked against), carries no identity label (`assemble.validate_output` checks
    those), and passes the very check `assemble.validate_output` makes (a built-in kind's does not depend on what
    else is delivered). Any other file keeps its documents and goes through every check as before."""
    documents = item.file.documents
    if not documents or item.file.raw is not None or item.content is not None:
        return item
    if not all(_settled(document, checker) for document in documents):
        return item
    if checker is not None:
        report = checker.check(documents)
        if report.problems or report.not_validated:
            return item
    return layout.pack(item, layout.render_file(item))


def _settled(document: Any, checker: conformance.Conformance | None) -> bool:
    """Whether no check but the schema check reads this object (see `_packed_if_settled`)."""
    if not isinstance(document, Mapping):
        return False
    api_version, kind, metadata = document.get("apiVersion"), document.get("kind"), document.get("metadata")
    if not isinstance(api_version, str) or not isinstance(kind, str) or not isinstance(metadata, Mapping):
        return False
    labels = metadata.get("labels")
    if labels is not None and (not isinstance(labels, Mapping) or not IDENTITY_LABELS.isdisjoint(labels)):
        return False
    builtin = checker is None or api_version.rpartition("/")[0] in checker.builtin_groups
    return builtin and kind != "CustomResourceDefinition" and not secretpolicy.is_secret(document)


def _check_cycles(
    status: RequestStatus, chain: tuple[ResourceRequest, ...], diagnostics: list[Diagnostic]
) -> tuple[RequestStatus, tuple[ResourceRequest, ...]]:
    """A request whose emitted requests lead back to a Promise already on its chain fails, naming the cycle."""
    for child in status.children:
        if any(link.promise == child.promise for link in chain):
            cycle = " → ".join([*(link.promise for link in chain), child.promise])
            message = f"compound Promise cycle: {cycle}"
            diagnostics.append(
                Diagnostic(child.source.path, 1, 1, "", "request.cycle", message, Severity.ERROR, str(chain[-1].key))
            )
            return status.failed("CompoundCycle", message), ()
    return status, status.children


def _compile_request(
    request: ResourceRequest,
    promise_status: PromiseStatus,
    schemas: Mapping[str, Any],
    renderer: render.Renderer,
    destinations: Mapping[str, Destination],
    previous_placements: Mapping[str, str],
    diagnostics: list[Diagnostic],
    *,
    served: Mapping[tuple[str, str], str],
    previous_status: Callable[[ResourceRequest], Mapping[str, Any]],
    now: datetime,
) -> RequestStatus:
    revision = _revision(request, promise_status.promise)
    names = [p.name for p in promise_status.promise.resource_configure]
    status_now = previous_status(request)
    waiting = suspensions.in_force(status_now, revision, now) if promise_status.available else None
    if waiting is not None:  # Kratix does not reconcile a suspended object: nothing runs, everything stays
        held = RequestStatus(request, PLACED, "", "", "", dict(status_now), revision=revision)
        return replace(
            held.suspended(waiting, names),
            pipelines=suspended_phases(names, str(waiting["name"]), str(waiting.get("message") or "")),
        )
    status, workflow = _run_request(
        request,
        promise_status,
        schemas,
        renderer,
        destinations,
        previous_placements,
        diagnostics,
        served=served,
        status_now=status_now,
    )
    if workflow is None and status_now:  # nothing ran: what the pipelines wrote before stays, as on an object
        status = replace(status, written=dict(status_now))
    if workflow is not None and workflow.suspension is not None and not status.failed_now:
        status = status.suspended(
            suspensions.entry(workflow.suspension, status_now, now), names[names.index(workflow.suspension.pipeline) :]
        )
    return replace(
        status, pipelines=pipeline_phases(names, workflow, pending=not promise_status.available), revision=revision
    )


def _revision(request: ResourceRequest, promise: Promise) -> str:
    """Changes whenever what the request asks for or its Promise's version does: Kratix's observedGeneration."""
    text = json.dumps(request.body, sort_keys=True, default=str) + "|" + (promise.version or "")
    return cache.fingerprint(text)[:12]


def _run_request(
    request: ResourceRequest,
    promise_status: PromiseStatus,
    schemas: Mapping[str, Any],
    renderer: render.Renderer,
    destinations: Mapping[str, Destination],
    previous_placements: Mapping[str, str],
    diagnostics: list[Diagnostic],
    *,
    served: Mapping[tuple[str, str], str],
    status_now: Mapping[str, Any],
) -> tuple[RequestStatus, WorkflowResult | None]:
    subject = str(request.key)
    promise = promise_status.promise
    if not promise_status.available:
        return RequestStatus.pending(request, f"Promise {promise.name!r} is unavailable: {promise_status.reason}"), None
    body, violations = schema.validate_request(schemas[promise.name], request.body)
    for violation in violations:
        diagnostics.append(
            Diagnostic.at(
                request.source,
                violation.path,
                violation.code,
                violation.message,
                severity=violation.severity,
                object=subject,
            )
        )
    errors = [v for v in violations if v.severity is Severity.ERROR]
    if errors:
        return RequestStatus.invalid(request, [f"{'.'.join(map(str, v.path))}: {v.message}" for v in errors]), None
    # Its pipelines see the object as the API server returns it: with the status it has now (Kratix's pipelines
    # read the status their previous run wrote from /kratix/input/object.yaml).
    obj = {**body, "status": {**status_now, "message": contract.PENDING_MESSAGE}}
    workflow = renderer.render_workflow(promise, promise.resource_configure, obj, request=request)
    if workflow.failure is not None:
        diagnostics.append(workflow.failure.diagnostic(subject))
        return RequestStatus.render_failed(request, workflow.failure, workflow.status), workflow
    workflow, children = _split_sub_requests(workflow, request, served)
    status = _place_request(
        request, promise, workflow, destinations, promise_status.request_labels, previous_placements
    )
    return replace(status, children=children), workflow


def _split_sub_requests(
    workflow: WorkflowResult, parent: ResourceRequest, served: Mapping[tuple[str, str], str]
) -> tuple[WorkflowResult, tuple[ResourceRequest, ...]]:
    """Objects of a kind some Promise serves are requests to compile, not manifests to deliver. What nothing was
    taken from is kept as it is (the usual case: no copies of the workflow, its outputs and files)."""
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
            if file.raw is not None or (kept and len(kept) == len(file.documents)):
                files.append(file)
            elif kept:
                files.append(replace(file, documents=tuple(kept)))
        same = len(files) == len(output.files) and all(a is b for a, b in zip(files, output.files, strict=True))
        outputs.append(output if same else replace(output, files=tuple(files)))
    if all(a is b for a, b in zip(outputs, workflow.outputs, strict=True)):
        return workflow, tuple(children)
    return replace(workflow, outputs=tuple(outputs)), tuple(children)


def _sub_request(document: Mapping[str, Any], promise: str, parent: ResourceRequest, source: str) -> ResourceRequest:
    metadata = dict(document.get("metadata") or {})
    metadata.setdefault("namespace", parent.key.namespace)
    metadata["labels"] = {**(metadata.get("labels") or {}), **_parent_labels(parent)}
    body = {**document, "metadata": metadata}
    key = RequestKey(str(document["kind"]), str(metadata["namespace"]), str(metadata["name"]))
    return ResourceRequest(
        key=key,
        api_version=str(document["apiVersion"]),
        promise=promise,
        source=SourceDoc(source, 0, 1, body),
        body=body,
    )


def _parent_labels(parent: ResourceRequest) -> dict[str, str]:
    return {
        PARENT_PROMISE_LABEL: parent.promise,
        PARENT_RESOURCE_LABEL: parent.key.name,
        PARENT_NAMESPACE_LABEL: parent.key.namespace,
    }


def _place_request(
    request: ResourceRequest,
    promise: Promise,
    workflow: WorkflowResult,
    destinations: Mapping[str, Destination],
    promise_labels: Mapping[str, str],
    previous_placements: Mapping[str, str],
) -> RequestStatus:
    key = request.key
    identity = f"{key.kind}/{key.namespace}/{key.name}"
    own_labels = (request.body.get("metadata") or {}).get("labels") or {}
    parent_labels = {k: str(v) for k, v in own_labels.items() if k.startswith(PARENT_LABEL_PREFIX)}
    files: list[PlacedFile] = []
    placements: list[tuple[str, str | None, schedule.Placement]] = []
    records: dict[str, str] = {}
    outputs = workflow.outputs or (
        PipelineOutput(promise.resource_configure[0].name if promise.resource_configure else "none", ()),
    )
    for output in outputs:
        for directory, group_files in schedule.split_groups(output):
            group_labels = schedule.group_labels(output, directory)
            # A directory group goes where its own labels say (as in Kratix); the root group also carries the
            # Promise's selectors, and the Promise wins a key conflict.
            labels = group_labels if directory is not None else schedule.merge_labels(group_labels, promise_labels)
            record = f"{identity}#{output.pipeline}" + (f"/{directory}" if directory else "")
            placement = schedule.place_one(identity, labels, destinations, previous=previous_placements.get(record))
            placements.append((output.pipeline, directory, placement))
            if placement.destination is None:
                continue
            records[record] = placement.destination.name
            files.extend(
                schedule.place_files(
                    placement.destination,
                    group_files,
                    area=paths.RESOURCES,
                    base=f"{key.namespace}/{promise.name}/{key.name}/{output.pipeline}",
                    labels={**kratix_labels(promise.name, key.name, output.pipeline, "resource"), **parent_labels},
                    owner=str(key),
                    promise=promise.name,
                    pipeline=output.pipeline,
                    request=(key.namespace, key.name),
                    directory=directory,
                )
            )
    return RequestStatus.rendered(request, workflow.status, placements, files, records)
