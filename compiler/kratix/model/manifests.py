"""Rendered output as data: what the workflows of a Promise or request produced, before placement."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kratix.model.diagnostics import Diagnostic, Severity
from kratix.model.documents import Content

MANAGED_BY = "app.kubernetes.io/managed-by"
PROMISE_LABEL = "kratix.io/promise-name"
RESOURCE_LABEL = "kratix.io/resource-name"
PIPELINE_LABEL = "kratix.io/pipeline-name"
WORK_TYPE_LABEL = "kratix.io/work-type"
PARENT_LABEL_PREFIX = "kratix.io/parent-"  # on requests a compound Promise's workflow emitted, and their output
PARENT_PROMISE_LABEL = "kratix.io/parent-promise-name"
PARENT_RESOURCE_LABEL = "kratix.io/parent-resource-name"
PARENT_NAMESPACE_LABEL = "kratix.io/parent-resource-namespace"
# The labels that say whose output an object is: the compiler sets them, and nothing a tenant writes may.
IDENTITY_LABELS = frozenset(
    {
        PROMISE_LABEL,
        RESOURCE_LABEL,
        PIPELINE_LABEL,
        WORK_TYPE_LABEL,
        PARENT_PROMISE_LABEL,
        PARENT_RESOURCE_LABEL,
        PARENT_NAMESPACE_LABEL,
    }
)

STATIC_PIPELINE = "static"  # the pipeline name of a Promise's spec.dependencies


@dataclass(frozen=True, slots=True)
class RenderedFile:
    path: str  # relative to the pipeline's output folder
    documents: tuple[Mapping[str, Any], ...]  # its Kubernetes objects; () for a file delivered as written
    source: str  # the repo path of the template or file it came from, or "container:<name>"
    sandbox: str | None = None  # "none" when a command step that wrote it ran unsandboxed (`--unsandboxed`)
    images: tuple[tuple[str, str], ...] = ()  # (image, content id) of the images whose pipeline wrote it
    # A file that holds no Kubernetes objects (Terraform, JSON, a script, YAML of another kind) is delivered as
    # the step wrote it, byte for byte, as Kratix's work-creator does; such a file is neither validated nor
    # listed in a kustomization.yaml.
    raw: bytes | None = None


@dataclass(frozen=True)
class OutputGroup:
    """One `destination-selectors.yaml` entry: the files under `directory` (all others when None) go to
    destinations carrying `match_labels`."""

    directory: str | None
    match_labels: Mapping[str, str]


@dataclass(frozen=True)
class PipelineOutput:
    pipeline: str
    files: tuple[RenderedFile, ...]
    groups: tuple[OutputGroup, ...] = ()


@dataclass(frozen=True)
class RenderFailure:
    file: str
    line: int
    column: int
    code: str
    message: str
    step: str  # "<pipeline>/<container>"

    def diagnostic(self, subject: str) -> Diagnostic:
        return Diagnostic(
            self.file, self.line, self.column, "", self.code, f"{self.step}: {self.message}", Severity.ERROR, subject
        )


@dataclass(frozen=True)
class Suspension:
    """A pipeline's workflow-control.yaml stopped its workflow: `suspend: true`, or run it again `retry_after`
    seconds from now. Its own output is not delivered and the pipelines after it do not run."""

    pipeline: str
    message: str
    retry_after: float | None  # seconds; None: suspended until its input changes


@dataclass(frozen=True)
class WorkflowResult:
    outputs: tuple[PipelineOutput, ...] = ()
    status: Mapping[str, Any] = field(default_factory=dict)  # what the pipelines wrote to status.yaml, merged
    failure: RenderFailure | None = None
    suspension: Suspension | None = None
    written_keys: tuple[str, ...] = ()  # the status fields the pipelines wrote (status.yaml), in order


@dataclass(frozen=True, slots=True)
class PlacedFile:
    """A rendered file on its way to one destination."""

    destination: str  # the Destination's name
    area: str  # "dependencies" or "resources"
    path: str  # inside the area: "<promise>/<pipeline>/<file>" or "<ns>/<promise>/<request>/<pipeline>/<file>"
    file: RenderedFile
    labels: Mapping[str, str]  # stamped onto every object of the file
    owner: str  # "Promise <name>" or "<Kind> <namespace>/<name>"
    promise: str
    pipeline: str
    output_path: str  # where it is written in the output tree (`kratix.model.paths`: it depends on the destination)
    # Set once every check that reads its objects is done (`kratix.layout.assemble.pack`): the file's bytes as they
    # are written and the ids of its objects. Its documents are dropped then: a compile holds every request's output
    # at once, and parsed objects take several times the memory of their YAML.
    content: Content | None = None  # or, once handed to a `Store`, the blob it was written as
    objects: tuple[str, ...] | None = None


def object_id(document: Mapping[str, Any]) -> str:
    """What kustomize and the API server tell objects apart by, written kubectl-style:
    `Kind[.group]/[namespace/]name`, e.g. `Namespace/team-a`, `HelmRelease.helm.toolkit.fluxcd.io/infra/redis`."""
    api_version = str(document.get("apiVersion", ""))
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    metadata = document.get("metadata") or {}
    kind = f"{document.get('kind')}.{group}" if group else str(document.get("kind"))
    namespace = metadata.get("namespace")
    return f"{kind}/{namespace}/{metadata.get('name')}" if namespace else f"{kind}/{metadata.get('name')}"


def kind_of(object_id: str) -> str:
    return object_id.split("/", 1)[0].split(".", 1)[0]


def kratix_labels(promise: str, resource: str | None, pipeline: str, work_type: str) -> dict[str, str]:
    labels = {PROMISE_LABEL: promise}
    if resource is not None:
        labels[RESOURCE_LABEL] = resource
    labels[PIPELINE_LABEL] = pipeline
    labels[WORK_TYPE_LABEL] = work_type
    labels[MANAGED_BY] = "kratix"
    return labels
