"""Promise-level compile: schemas, availability (requiredPromises), dependencies and the promise workflow.

In: the parsed platform. Out: per Promise a `PromiseStatus` holding its placed files (to every matching
destination) and the selectors its requests inherit; the request schemas of the Promises that can serve.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from kratix import schema
from kratix.memory import cache
from kratix.model import paths
from kratix.model.diagnostics import Diagnostic, Severity
from kratix.model.manifests import STATIC_PIPELINE, PlacedFile, WorkflowResult, kratix_labels
from kratix.model.platform import Destination, Platform, Promise
from kratix.model.statuses import PromiseStatus, pipeline_phases, suspended_phases
from kratix.schedule import scheduler as schedule
from kratix.workflows import contract, render, suspensions


def check_promises(platform: Platform, diagnostics: list[Diagnostic]) -> tuple[dict[str, Any], dict[str, str]]:
    """Compile each Promise's request schema; say which Promises cannot serve requests, and why."""
    schemas: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for promise in platform.promises.values():
        if promise.broken is not None:
            problems[promise.name] = promise.broken
            continue
        if promise.crd is None:
            continue
        violations = schema.check_crd(promise.crd)
        for violation in violations:
            diagnostics.append(
                Diagnostic.at(
                    promise.source,
                    ("spec", "api", *violation.path),
                    violation.code,
                    violation.message,
                    severity=violation.severity,
                    object=f"Promise {promise.name}",
                )
            )
        if any(v.severity is Severity.ERROR for v in violations) or promise.api is None:
            problems[promise.name] = "its API (spec.api) is not a valid CustomResourceDefinition"
            continue
        schemas[promise.name] = schema.compile_request_schema(promise.crd)
    return schemas, _unavailable_promises(platform, problems)


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
                    reason = (
                        f"required Promise {required.name!r} is at version {other.version or '(none)'}, "
                        f"not {required.version}"
                    )
                elif required.name in unavailable:
                    reason = f"required Promise {required.name!r} is unavailable"
                if reason:
                    unavailable[promise.name] = reason
                    changed = True
                    break
    return unavailable


def _no_status(name: str) -> Mapping[str, Any]:
    return {}


def compile_promises(
    platform: Platform,
    renderer: render.Renderer,
    unavailable: Mapping[str, str],
    diagnostics: list[Diagnostic],
    *,
    previous_status: Callable[[str], Mapping[str, Any]] = _no_status,
    now: datetime | None = None,
) -> dict[str, PromiseStatus]:
    when = now or datetime.now(UTC)  # the CLI always gives the compile's time (`--now`)
    statuses: dict[str, PromiseStatus] = {}
    for promise in sorted(platform.promises.values(), key=lambda p: p.name):
        names = [p.name for p in promise.promise_configure]
        revision = cache.fingerprint(json.dumps(promise.body, sort_keys=True, default=str))[:12]
        if promise.name in unavailable:
            statuses[promise.name] = PromiseStatus(
                promise,
                available=False,
                reason=unavailable[promise.name],
                pipelines=pipeline_phases(names, None, pending=True),
                revision=revision,
            )
            continue
        status_now = previous_status(promise.name)
        waiting = suspensions.in_force(status_now, revision, when)
        if waiting is not None:  # Kratix does not reconcile a suspended Promise: nothing runs, everything stays
            statuses[promise.name] = _suspended(promise, waiting, names, revision)
            continue
        files, labels, workflow = _render_promise(renderer, promise, platform.destinations, status_now)
        phases = pipeline_phases(names, workflow, pending=False)
        if workflow.suspension is not None and workflow.failure is None:
            statuses[promise.name] = _suspended(
                promise, suspensions.entry(workflow.suspension, status_now, when), names, revision
            )
            continue
        if workflow.failure is not None:
            diagnostics.append(workflow.failure.diagnostic(f"Promise {promise.name}"))
            statuses[promise.name] = PromiseStatus(
                promise,
                available=False,
                reason=f"promise workflow failed: {workflow.failure.message}",
                pipelines=phases,
                revision=revision,
                workflow_ok=False,
            )
            continue
        ignored = [key for key in workflow.written_keys if key != "message"]
        if ignored:
            diagnostics.append(
                Diagnostic.at(
                    promise.source,
                    ("spec", "workflows", "promise"),
                    "pipeline.promise-status",
                    f"the promise workflow wrote {', '.join(ignored)} to status.yaml; only 'message' can be set on a "
                    "Promise's status (Kratix ignores the rest, and so does this compile)",
                    severity=Severity.WARNING,
                    object=f"Promise {promise.name}",
                )
            )
        message = workflow.status.get("message") if "message" in workflow.written_keys else None
        statuses[promise.name] = PromiseStatus(
            promise,
            available=True,
            reason="",
            files=tuple(files),
            request_labels=labels,
            pipelines=phases,
            revision=revision,
            workflow_ok=True,
            message=message if isinstance(message, str) else "",
        )
    return statuses


def _suspended(promise: Promise, entry: Mapping[str, Any], names: list[str], revision: str) -> PromiseStatus:
    """A promise workflow a pipeline suspended: as in Kratix, the Promise is not available (its requests wait),
    and what it published stays."""
    message = str(entry.get("message") or "")
    reason = f"promise workflow suspended by pipeline {entry['name']!r}" + (f": {message}" if message else "")
    return PromiseStatus(
        promise,
        available=False,
        reason=reason,
        revision=revision,
        suspension=dict(entry),
        pipelines=suspended_phases(names, str(entry["name"]), message),
    )


def _render_promise(
    renderer: render.Renderer, promise: Promise, destinations: Mapping[str, Destination], status_now: Mapping[str, Any]
) -> tuple[list[PlacedFile], dict[str, str], WorkflowResult]:
    promise_labels = schedule.selector_labels(promise.selectors)
    outputs = [renderer.render_dependencies(promise)]
    workflow = WorkflowResult()
    if promise.promise_configure:
        obj = {**promise.body, "status": {**status_now, "message": contract.PENDING_MESSAGE}}
        workflow = renderer.render_workflow(promise, promise.promise_configure, obj, request=None)
        outputs.extend(workflow.outputs)
    # Selectors a promise workflow writes for its root output also steer the Promise's requests (Kratix's
    # priority: resource workflow < promise workflow < Promise).
    workflow_labels = schedule.merge_labels(
        *(g.match_labels for o in workflow.outputs for g in o.groups if g.directory is None)
    )
    placed: list[PlacedFile] = []
    for output in outputs:
        for directory, files in schedule.split_groups(output):
            group_labels = schedule.group_labels(output, directory)
            labels = (
                group_labels
                if directory is not None
                else schedule.merge_labels(workflow_labels, group_labels, promise_labels)
            )
            work_type = "static-dependency" if output.pipeline == STATIC_PIPELINE else "promise"
            for destination in schedule.place_all(labels, destinations):
                placed.extend(
                    schedule.place_files(
                        destination,
                        files,
                        area=paths.DEPENDENCIES,
                        base=f"{promise.name}/{output.pipeline}",
                        labels=kratix_labels(promise.name, None, output.pipeline, work_type),
                        owner=f"Promise {promise.name}",
                        promise=promise.name,
                        pipeline=output.pipeline,
                        request=None,
                        directory=directory,
                    )
                )
    return placed, schedule.merge_labels(workflow_labels, promise_labels), workflow
