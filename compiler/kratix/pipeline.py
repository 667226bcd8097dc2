"""The compile, top to bottom: load → schema → render → schedule → layout. No I/O happens here.

`compile_platform(tree, previous=...)` is a pure function of the input tree and the previous output tree
(sticky placements and last-known-good output are read from it). One invalid request or failing template fails
that request alone: everything valid is rendered, every failure becomes a diagnostic and a status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kratix import layout, load, render, schedule, schema
from kratix.diagnostics import Diagnostic, Severity
from kratix.documents import SourceTree
from kratix.manifests import (
    MANAGED_BY,
    PIPELINE_LABEL,
    PROMISE_LABEL,
    RESOURCE_LABEL,
    WORK_TYPE_LABEL,
    PipelineOutput,
    PlacedFile,
    RenderFailure,
    WorkflowResult,
)
from kratix.platform import Destination, Platform, Promise, ResourceRequest
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

    def placements(self) -> dict[str, str]:
        from kratix import yamltext

        data = self.files.get(f"{layout.BOOKKEEPING}/{PLACEMENTS_FILE}")
        if not data:
            return {}
        document = next(iter(yamltext.load_plain(data)), None)
        return {str(k): str(v) for k, v in (document or {}).items()} if isinstance(document, Mapping) else {}


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


@dataclass(frozen=True)
class CompileResult:
    files: Mapping[str, bytes]
    diagnostics: tuple[Diagnostic, ...]
    summary: Summary
    requests: Mapping[str, RequestStatus]  # by "Kind namespace/name"

    @property
    def ok(self) -> bool:
        return not any(d.severity is Severity.ERROR for d in self.diagnostics)


def compile_platform(tree: SourceTree, *, settings: Settings, previous: PreviousOutput | None = None) -> CompileResult:
    previous = previous or PreviousOutput()
    platform, diagnostics = load.parse_platform(tree)
    schemas, promise_problems = _promise_schemas(platform, diagnostics)
    unavailable = _unavailable_promises(platform, promise_problems)
    renderer = render.Renderer(tree, settings=settings.render)
    destinations = platform.destinations

    placed: list[PlacedFile] = []
    promise_statuses: dict[str, PromiseStatus] = {}
    promise_root_labels: dict[str, dict[str, str]] = {}
    for promise in sorted(platform.promises.values(), key=lambda p: p.name):
        if promise.name in unavailable:
            promise_statuses[promise.name] = PromiseStatus(promise, available=False, reason=unavailable[promise.name])
            continue
        files, labels, failure = _render_promise(renderer, promise, destinations)
        promise_root_labels[promise.name] = labels
        if failure is not None:
            diagnostics.append(_failure_diagnostic(failure, f"Promise {promise.name}"))
            promise_statuses[promise.name] = PromiseStatus(promise, available=False,
                                                           reason=f"promise workflow failed: {failure.message}")
            continue
        placed.extend(files)
        promise_statuses[promise.name] = PromiseStatus(promise, available=True, reason="")

    previous_placements = previous.placements()
    placements: dict[str, str] = {}
    statuses: dict[str, RequestStatus] = {}
    for request in platform.requests:
        promise = platform.promises[request.promise]
        status = _compile_request(request, promise, schemas, unavailable, renderer, destinations,
                                  promise_root_labels.get(promise.name, {}), previous_placements, diagnostics)
        statuses[str(request.key)] = status
        placed.extend(status.files)
        placements.update(status.placement_records)

    for conflict in layout.find_conflicts(placed):
        loser = next(s for s in statuses.values() if s.owner == conflict.placed.owner)
        message = (f"{conflict.object_id} on destination {conflict.placed.destination} is also emitted by "
                   f"{conflict.other.owner}")
        diagnostics.append(Diagnostic.at(loser.request.source, (), "render.conflict", message,
                                         object=str(loser.request.key)))
        statuses[str(loser.request.key)] = loser.failed("ObjectConflict", message)
    placed = [p for p in placed if not _is_failed(p, statuses)]

    kept = _last_known_good(statuses, previous)
    bookkeeping: dict[str, Any] = {PLACEMENTS_FILE: dict(sorted(
        {**placements, **{k: v for s in statuses.values() if s.failed_now for k, v in _kept_placements(
            s, previous_placements).items()}}.items()))}
    for status in statuses.values():
        key = status.request.key
        bookkeeping[f"{STATUS_FOLDER}/{key.namespace}/{status.request.promise}/{key.name}.yaml"] = (
            request_status_document(status))
    for name, promise_status in promise_statuses.items():
        bookkeeping[f"{PROMISE_STATUS_FOLDER}/{name}.yaml"] = promise_status_document(promise_status)
    files = layout.build_tree(placed, destinations=[d.path for d in destinations.values()],
                              bookkeeping=bookkeeping, kept=kept)
    diagnostics.sort()
    return CompileResult(files=files, diagnostics=tuple(diagnostics),
                         summary=_summary(platform, statuses, promise_statuses, files),
                         requests=statuses)


# --- Promises -----------------------------------------------------------------------------------------------

def _promise_schemas(platform: Platform, diagnostics: list[Diagnostic]) -> tuple[dict[str, Any], dict[str, str]]:
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
    return schemas, problems


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
                    ) -> tuple[list[PlacedFile], dict[str, str], RenderFailure | None]:
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
    return placed, schedule.merge_labels(workflow_labels, promise_labels), workflow.failure


# --- Requests -----------------------------------------------------------------------------------------------

def _compile_request(request: ResourceRequest, promise: Promise, schemas: Mapping[str, Any],
                     unavailable: Mapping[str, str], renderer: render.Renderer,
                     destinations: Mapping[str, Destination], promise_labels: Mapping[str, str],
                     previous_placements: Mapping[str, str], diagnostics: list[Diagnostic]) -> RequestStatus:
    subject = str(request.key)
    if promise.name in unavailable:
        return RequestStatus.pending(request, f"Promise {promise.name!r} is unavailable: {unavailable[promise.name]}")
    body, violations = schema.validate_request(schemas[promise.name], request.body)
    for violation in violations:
        diagnostics.append(Diagnostic.at(request.source, violation.path, violation.code, violation.message,
                                         severity=violation.severity, object=subject))
    errors = [v for v in violations if v.severity is Severity.ERROR]
    if errors:
        return RequestStatus.invalid(request, [f"{'.'.join(map(str, v.path))}: {v.message}" for v in errors])
    workflow = renderer.render_workflow(promise, promise.resource_configure, body, workflow_type="resource",
                                        env=_env(promise, request, "resource"))
    if workflow.failure is not None:
        diagnostics.append(_failure_diagnostic(workflow.failure, subject))
        return RequestStatus.render_failed(request, workflow.failure, workflow.status)
    return _place_request(request, promise, workflow, destinations, promise_labels, previous_placements)


def _place_request(request: ResourceRequest, promise: Promise, workflow: WorkflowResult,
                   destinations: Mapping[str, Destination], promise_labels: Mapping[str, str],
                   previous_placements: Mapping[str, str]) -> RequestStatus:
    key = request.key
    identity = f"{key.kind}/{key.namespace}/{key.name}"
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
                    labels=_labels(promise.name, key.name, output.pipeline, "resource"),
                    owner=str(key), promise=promise.name, pipeline=output.pipeline))
    return RequestStatus.rendered(request, workflow.status, placements, files, records)


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


def _is_failed(placed: PlacedFile, statuses: Mapping[str, RequestStatus]) -> bool:
    status = statuses.get(placed.owner)
    return status is not None and status.failed_now


def _last_known_good(statuses: Mapping[str, RequestStatus], previous: PreviousOutput) -> dict[str, bytes]:
    """A request that fails now keeps what it had published: a broken change never deletes infrastructure."""
    failed = {(s.request.key.namespace, s.request.promise, s.request.key.name)
              for s in statuses.values() if s.failed_now}
    kept: dict[str, bytes] = {}
    if not failed:
        return kept
    for path, data in previous.files.items():
        if path.startswith(layout.BOOKKEEPING + "/") or "/resources/" not in path:
            continue
        parts = path.split("/resources/", 1)[1].split("/")
        if len(parts) > 3 and (parts[0], parts[1], parts[2]) in failed:
            kept[path] = data
    return kept


def _kept_placements(status: RequestStatus, previous_placements: Mapping[str, str]) -> dict[str, str]:
    key = status.request.key
    prefix = f"{key.kind}/{key.namespace}/{key.name}#"
    return {k: v for k, v in previous_placements.items() if k.startswith(prefix)}


def _summary(platform: Platform, statuses: Mapping[str, RequestStatus], promise_statuses: Mapping[str, PromiseStatus],
             files: Mapping[str, bytes]) -> Summary:
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
    )

