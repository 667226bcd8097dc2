"""What every part of rendering shares: the failure that stops a workflow, the check that a document is a
Kubernetes object, and how a path in the source tree is spelled."""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from kratix.model.manifests import RenderFailure


class StepFailed(Exception):
    """Raised inside rendering with the one failure that stops the workflow; the façade turns it into a
    `WorkflowResult`."""

    def __init__(self, failure: RenderFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def object_problem(document: Any) -> str | None:
    """Why `document` is not a Kubernetes object, or None."""
    if not isinstance(document, Mapping):
        return f"is a {type(document).__name__}, not a Kubernetes object"
    for field in ("apiVersion", "kind"):
        if not isinstance(document.get(field), str) or not document[field]:
            return f"has no {field}"
    metadata = document.get("metadata")
    if not isinstance(metadata, Mapping) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        return f"({document['kind']}) has no metadata.name"
    return None


def normalise(path: str) -> str:
    """`path` with `.` and `..` resolved, as the source tree keys its files."""
    parts: list[str] = []
    for part in PurePosixPath(path).parts:
        if part == "..":
            if parts:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def template_frame(exc: BaseException, fallback: str) -> tuple[str, int]:
    """Jinja rewrites tracebacks so template frames carry the template's name and line."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename and not frame.filename.endswith(".py") and frame.lineno:
            return normalise(frame.filename), frame.lineno
    return fallback, 1
