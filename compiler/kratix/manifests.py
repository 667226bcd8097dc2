"""Rendered output as data: what the workflows of a Promise or request produced, before placement."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MANAGED_BY = "app.kubernetes.io/managed-by"
PROMISE_LABEL = "kratix.io/promise-name"
RESOURCE_LABEL = "kratix.io/resource-name"
PIPELINE_LABEL = "kratix.io/pipeline-name"
WORK_TYPE_LABEL = "kratix.io/work-type"
PARENT_LABEL_PREFIX = "kratix.io/parent-"  # on requests a compound Promise's workflow emitted, and their output
PARENT_PROMISE_LABEL = "kratix.io/parent-promise-name"
PARENT_RESOURCE_LABEL = "kratix.io/parent-resource-name"
PARENT_NAMESPACE_LABEL = "kratix.io/parent-resource-namespace"

STATIC_PIPELINE = "static"  # the folder that holds a Promise's spec.dependencies


@dataclass(frozen=True)
class RenderedFile:
    path: str  # relative to the pipeline's output folder
    documents: tuple[Mapping[str, Any], ...]
    source: str  # the repo path of the template or file it came from, or "container:<name>"


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


@dataclass(frozen=True)
class WorkflowResult:
    outputs: tuple[PipelineOutput, ...] = ()
    status: Mapping[str, Any] = field(default_factory=dict)  # what the pipelines wrote to status.yaml, merged
    failure: RenderFailure | None = None


@dataclass(frozen=True)
class PlacedFile:
    """A rendered file on its way to one destination's folder."""

    destination: str  # the Destination's spec.path
    area: str  # "dependencies" or "resources"
    path: str  # inside the area: "<promise>/<pipeline>/<file>" or "<ns>/<promise>/<request>/<pipeline>/<file>"
    file: RenderedFile
    labels: Mapping[str, str]  # stamped onto every object of the file
    owner: str  # "Promise <name>" or "<Kind> <namespace>/<name>"
    promise: str
    pipeline: str

    @property
    def output_path(self) -> str:
        return f"{self.destination}/{self.area}/{self.path}"
