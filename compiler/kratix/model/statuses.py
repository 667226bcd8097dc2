"""Statuses as data, and the documents written to `.kratix/status/` and `.kratix/promises/` in Kratix's shape.

No timestamps: the output is a pure function of its inputs, and a status only changes when something about
the request did. The controller copies these onto the objects' status subresource.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kratix.model.manifests import PlacedFile, RenderFailure, WorkflowResult
from kratix.model.placements import MISPLACED, PENDING, PLACED, Placement
from kratix.model.platform import API_VERSION, Promise, ResourceRequest

FAILED = "failed"
SUSPENDED = "suspended"  # a pipeline's workflow-control.yaml stopped its workflow (suspend, or retryAfter)
SUSPENDED_REASON = "WorkflowSuspended"  # Kratix's reason on the Reconciled condition


@dataclass(frozen=True, slots=True)
class RequestStatus:
    request: ResourceRequest
    state: str  # placed | pending | misplaced | failed | suspended
    message: str
    reason: str  # a CamelCase reason for the Reconciled condition
    detail: str  # the human sentence behind it
    written: Mapping[str, Any] = field(default_factory=dict)  # what the pipelines wrote to status.yaml
    placements: tuple[tuple[str, str | None, Placement], ...] = ()  # (pipeline, directory, placement)
    files: tuple[PlacedFile, ...] = ()
    placement_records: Mapping[str, str] = field(default_factory=dict)
    workflow_ok: bool | None = None  # None: the workflow did not run
    children: tuple[ResourceRequest, ...] = ()  # requests its workflow emitted for other Promises' APIs
    reused: bool = False  # unchanged since the last compile: its published files and status are carried over
    unchecked_kinds: tuple[str, ...] = ()  # kinds of its output no schema could check (no CRD delivered)
    pipelines: tuple[tuple[str, str, str], ...] = ()  # (pipeline, phase, message) in workflow order
    revision: str = ""  # changes when the request or its Promise's version does (Kratix: observedGeneration)
    # Suspended: the suspended pipeline's status entry (name, phase, message, nextRetryAt, attempts), and the
    # pipelines whose previously published output stays (the suspended one and those after it).
    suspension: Mapping[str, Any] | None = None
    kept_pipelines: tuple[str, ...] = ()

    @property
    def owner(self) -> str:
        return str(self.request.key)

    @property
    def failed_now(self) -> bool:
        return self.state == FAILED

    @property
    def keeps_previous_output(self) -> bool:
        """Failing now, or waiting on an unavailable Promise: what it published before stays published."""
        return self.failed_now or (self.state == PENDING and self.workflow_ok is None)

    @classmethod
    def pending(cls, request: ResourceRequest, why: str) -> RequestStatus:
        return cls(request, PENDING, "Pending", "PromiseUnavailable", why)

    @classmethod
    def held(cls, request: ResourceRequest, why: str) -> RequestStatus:
        """Its file cannot be read now: what it published stays, and this says why."""
        return cls(request, FAILED, "Failed: its file cannot be read", "FileInvalid", why)

    @classmethod
    def invalid(cls, request: ResourceRequest, errors: Sequence[str]) -> RequestStatus:
        return cls(request, FAILED, "Failed: the request is invalid", "ValidationFailed", "; ".join(errors))

    @classmethod
    def render_failed(
        cls, request: ResourceRequest, failure: RenderFailure, written: Mapping[str, Any]
    ) -> RequestStatus:
        where = f"{failure.file}:{failure.line}"
        return cls(
            request,
            FAILED,
            f"Failed: pipeline step {failure.step} failed",
            "PipelineFailed",
            f"{failure.step}: {failure.message} ({where})",
            written,
            workflow_ok=False,
        )

    @classmethod
    def rendered(
        cls,
        request: ResourceRequest,
        written: Mapping[str, Any],
        placements: Sequence[tuple[str, str | None, Placement]],
        files: Sequence[PlacedFile],
        records: Mapping[str, str],
    ) -> RequestStatus:
        states = {p.state for _, _, p in placements}
        reasons = "; ".join(p.reason for _, _, p in placements)
        if PENDING in states:
            state, message, reason = PENDING, "Pending", "NoMatchingDestination"
        elif MISPLACED in states:
            state, message, reason = MISPLACED, "Resource requested (misplaced)", "DestinationNoLongerMatches"
        else:
            state, message, reason = PLACED, "Resource requested", "Placed"
        return cls(
            request,
            state,
            message,
            reason,
            reasons,
            written,
            tuple(placements),
            tuple(files),
            dict(records),
            workflow_ok=True,
        )

    def suspended(self, entry: Mapping[str, Any], held: Sequence[str]) -> RequestStatus:
        """Its workflow stopped at `entry["name"]`: what ran before it is placed as usual (this status's files),
        the output of `held` pipelines stays as it was published."""
        message = str(entry.get("message") or "")
        retry = (
            f"; it runs again on the first compile at or after {entry['nextRetryAt']}"
            if entry.get("nextRetryAt")
            else "; it runs again when the request or its Promise changes"
        )
        detail = f"pipeline {entry['name']!r} suspended the workflow" + (f": {message}" if message else "") + retry
        return replace(
            self,
            state=SUSPENDED,
            message="Suspended" + (f": {message}" if message else ""),
            reason=SUSPENDED_REASON,
            detail=detail,
            suspension=dict(entry),
            kept_pipelines=tuple(held),
        )

    def failed(self, reason: str, detail: str) -> RequestStatus:
        return replace(
            self,
            state=FAILED,
            message=f"Failed: {detail}",
            reason=reason,
            detail=detail,
            files=(),
            placement_records={},
        )


@dataclass(frozen=True)
class PromiseStatus:
    promise: Promise
    available: bool
    reason: str
    files: tuple[PlacedFile, ...] = ()  # dependencies and promise-workflow output, placed
    request_labels: Mapping[str, str] = field(default_factory=dict)  # selectors its requests inherit
    pipelines: tuple[tuple[str, str, str], ...] = ()  # its promise workflow: (pipeline, phase, message)
    revision: str = ""  # changes whenever the Promise does
    workflow_ok: bool | None = None  # None: the promise workflow did not run
    suspension: Mapping[str, Any] | None = None  # the suspended pipeline's status entry (see RequestStatus)
    message: str = ""  # what its promise workflow wrote to status.message (the one field it may set)


def merge_conditions(existing: Sequence[Any], incoming: Sequence[Any]) -> list[Any]:
    """Conditions merged by `type`, the incoming one winning (Kratix's merge); one without a string type is
    dropped, as Kratix drops it. The order is the existing one, new types after."""
    by_type: dict[str, Any] = {}
    for condition in (*existing, *incoming):
        if isinstance(condition, Mapping) and isinstance(condition.get("type"), str):
            by_type[condition["type"]] = condition
    return list(by_type.values())


def _message(status: RequestStatus) -> str:
    """Kratix sets `Pending` when a workflow starts and `Resource requested` when it completes if no pipeline
    wrote another message; a message a pipeline wrote stands. Failing, waiting or suspended: ours says why."""
    written = status.written.get("message")
    if status.state == PLACED and isinstance(written, str) and written and written != "Pending":
        return written
    return status.message


def _condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": message}


def request_status_document(status: RequestStatus) -> dict[str, Any]:
    request = status.request
    workflow = {
        None: ("Unknown", "NotRun", "the workflow has not run: " + status.detail),
        True: ("True", "PipelinesSucceeded", "every pipeline completed"),
        False: ("False", "PipelineFailed", status.detail),
    }[status.workflow_ok]
    works = {
        PLACED: ("True", "WorksSucceeded", status.detail),
        MISPLACED: ("True", "DestinationNoLongerMatches", status.detail),
        PENDING: ("Unknown", status.reason, status.detail),
        FAILED: ("False", status.reason, status.detail),
        SUSPENDED: ("Unknown", status.reason, status.detail),
    }[status.state]
    reconciled = {PLACED: "True", MISPLACED: "True", PENDING: "Unknown", FAILED: "False", SUSPENDED: "Unknown"}[
        status.state
    ]
    reconciled_message = "Suspended" if status.state == SUSPENDED else status.detail  # Kratix's words
    if status.state == SUSPENDED:
        workflow = ("Unknown", SUSPENDED_REASON, status.detail)
    suspension = status.suspension or {}
    ours = [
        _condition("ConfigureWorkflowCompleted", *workflow),
        _condition("WorksSucceeded", *works),
        _condition("Reconciled", reconciled, status.reason, reconciled_message),
    ]
    written = status.written.get("conditions")
    # The pipelines' own conditions stay beside Kratix's, which the compiler sets (and which win, as the
    # controller's later update does in Kratix).
    theirs = [
        c
        for c in merge_conditions([], written if isinstance(written, list) else [])
        if c["type"] not in {o["type"] for o in ours}
    ]
    body: dict[str, Any] = {
        **status.written,
        "message": _message(status),
        "observedRevision": status.revision,
        "conditions": [*ours, *theirs],
        "placements": [
            {
                "pipeline": pipeline,
                **({"directory": directory} if directory else {}),
                "destination": placement.destination.name if placement.destination else None,
                "state": placement.state,
                "reason": placement.reason,
            }
            for pipeline, directory, placement in status.placements
        ],
        "pipelines": _pipeline_entries(status.pipelines, suspension),
    }
    return {
        "apiVersion": request.api_version,
        "kind": request.key.kind,
        "metadata": {"name": request.key.name, "namespace": request.key.namespace},
        "status": body,
    }


def _pipeline_entries(pipelines: Sequence[tuple[str, str, str]], suspension: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each pipeline's phase; a suspended one also says when it is retried and how often it was."""
    return [
        {
            "name": name,
            "phase": phase,
            **({"message": message} if message else {}),
            **(
                {k: v for k, v in suspension.items() if k in ("nextRetryAt", "attempts")}
                if name == suspension.get("name")
                else {}
            ),
        }
        for name, phase, message in pipelines
    ]


def promise_status_document(status: PromiseStatus) -> dict[str, Any]:
    promise = status.promise
    api = promise.api
    requirements_unmet = status.reason.startswith("required Promise")
    workflow = {
        None: ("Unknown", "NotRun", status.reason or "the promise workflow has not run"),
        True: ("True", "PipelinesSucceeded", "every pipeline completed"),
        False: ("False", "PipelineFailed", status.reason),
    }[status.workflow_ok]
    suspension = status.suspension or {}
    reconciled = (
        ("True", "Available", status.reason or "Promise available")
        if status.available
        else ("False", "Unavailable", status.reason)
    )
    if suspension:  # Kratix's conditions on a suspended Promise
        workflow, reconciled = ("Unknown", SUSPENDED_REASON, status.reason), ("Unknown", SUSPENDED_REASON, "Suspended")
    body: dict[str, Any] = {
        "status": "Available" if status.available else "Unavailable",
        "message": (status.message if status.message and status.message != "Pending" else "Promise available")
        if status.available
        else f"Promise unavailable: {status.reason}",
        "observedRevision": status.revision,
        "conditions": [
            _condition(
                "RequirementsFulfilled",
                "False" if requirements_unmet else "True",
                "RequirementsNotInstalled" if requirements_unmet else "RequirementsInstalled",
                status.reason if requirements_unmet else "every required Promise is installed",
            ),
            _condition("ConfigureWorkflowCompleted", *workflow),
            _condition("Reconciled", *reconciled),
        ],
        "pipelines": _pipeline_entries(status.pipelines, suspension),
    }
    if api is not None:
        body["kind"] = api.kind
        body["apiVersion"] = api.api_version
    if promise.version is not None:
        body["version"] = promise.version
    return {"apiVersion": API_VERSION, "kind": "Promise", "metadata": {"name": promise.name}, "status": body}


def pipeline_phases(
    names: Sequence[str], workflow: WorkflowResult | None, *, pending: bool
) -> tuple[tuple[str, str, str], ...]:
    """Each pipeline's phase, Kratix-style: Succeeded, Failed (with why), Skipped after a failure, Pending."""
    if workflow is None:
        return tuple((name, "Pending" if pending else "Skipped", "") for name in names)
    if workflow.suspension is not None:
        return suspended_phases(names, workflow.suspension.pipeline, workflow.suspension.message)
    done = {o.pipeline for o in workflow.outputs}
    failed = workflow.failure.step.split("/", 1)[0] if workflow.failure else None
    return tuple(
        (name, "Succeeded", "")
        if name in done and name != failed
        else (name, "Failed", workflow.failure.message)
        if name == failed and workflow.failure
        else (name, "Skipped", "")
        for name in names
    )


def suspended_phases(names: Sequence[str], suspended: str, message: str) -> tuple[tuple[str, str, str], ...]:
    """A workflow stopped at `suspended`: those before it succeeded, those after it wait (Kratix: Pending)."""
    position = list(names).index(suspended) if suspended in names else len(names)
    return tuple(
        (name, "Succeeded", "")
        if index < position
        else (name, "Suspended", message)
        if index == position
        else (name, "Pending", "")
        for index, name in enumerate(names)
    )
