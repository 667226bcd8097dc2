"""A Promise's workflows: `spec.workflows.<promise|resource>.configure` → typed `Pipeline`s of `Container`s.

In: one Promise document, its (upgraded) `workflows` field and which workflow to read. Out: the pipelines in
the order written, each with its containers (a native `template` step or an `image`/`command` one).
Refuses, with a `pipeline.shape` or `pipeline.duplicate` error and without the pipeline: a configure that is not
a list, a pipeline without metadata.name or containers, a container without a name, with both `template` and
`image` or with neither (nor a command), a template folder outside the Promise's folder, a name used twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kratix.diagnostics import Diagnostic, Severity
from kratix.documents import SourceDoc
from kratix.load.shared import escapes, mapping
from kratix.platform import Container, Pipeline


def parse_pipelines(doc: SourceDoc, workflows: Any, workflow: str, diagnostics: list[Diagnostic],
                    subject: str) -> tuple[Pipeline, ...]:
    if not isinstance(workflows, Mapping):
        return ()
    section = workflows.get(workflow) or {}
    if isinstance(section, Mapping) and section.get("delete"):
        diagnostics.append(Diagnostic.at(
            doc, ("spec", "workflows", workflow, "delete"), "pipeline.delete-not-run",
            "delete workflows do not run here: when it leaves the repo, its output leaves the output repo and "
            "Flux prunes it", severity=Severity.INFO, object=subject))
    raw = section.get("configure") if isinstance(section, Mapping) else None
    if raw is None:
        return ()
    base = ("spec", "workflows", workflow, "configure")
    if not isinstance(raw, list):
        diagnostics.append(Diagnostic.at(doc, base, "pipeline.shape", "configure must be a list of Pipelines",
                                         object=subject))
        return ()
    pipelines: list[Pipeline] = []
    for index, entry in enumerate(raw):
        pipeline = _pipeline(doc, entry, (*base, index), diagnostics, subject)
        if pipeline is None:
            continue
        if any(p.name == pipeline.name for p in pipelines):
            diagnostics.append(Diagnostic.at(doc, (*base, index, "metadata", "name"), "pipeline.duplicate",
                                             f"pipeline name {pipeline.name!r} is used twice in the {workflow} "
                                             "workflow", object=subject))
            continue
        pipelines.append(pipeline)
    return tuple(pipelines)


def _pipeline(doc: SourceDoc, entry: Any, path: tuple[str | int, ...], diagnostics: list[Diagnostic],
              subject: str) -> Pipeline | None:
    def problem(sub: tuple[str | int, ...], message: str) -> None:
        diagnostics.append(Diagnostic.at(doc, (*path, *sub), "pipeline.shape", message, object=subject))

    if not isinstance(entry, Mapping):
        problem((), "a pipeline must be a Pipeline object")
        return None
    metadata = mapping(entry.get("metadata"))
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        problem(("metadata", "name"), "a pipeline needs metadata.name")
        return None
    spec = mapping(entry.get("spec"))
    raw_containers = spec.get("containers")
    if not isinstance(raw_containers, list) or not raw_containers:
        problem(("spec", "containers"), "a pipeline needs a non-empty list of containers")
        return None
    containers = []
    for index, raw in enumerate(raw_containers):
        where = ("spec", "containers", index)
        if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
            problem(where, "a container needs a name")
            return None
        template, image, command = raw.get("template"), raw.get("image"), raw.get("command")
        if template is not None and image is not None:
            problem(where, "a container has either `template` (a native step) or `image`, not both")
            return None
        if template is None and image is None and not command:
            problem(where, "a container needs `template`, `image` or `command`")
            return None
        if template is not None and (not isinstance(template, str) or escapes(template)):
            problem((*where, "template"), "template must be a folder inside the Promise's folder")
            return None
        containers.append(Container(
            name=raw["name"],
            template=template,
            image=str(image) if image is not None else None,
            command=_strings(command),
            args=_strings(raw.get("args")),
            env=tuple((str(e["name"]), str(e.get("value", ""))) for e in raw.get("env") or []
                      if isinstance(e, Mapping) and e.get("name")),
            body=raw,
        ))
    return Pipeline(name=name, containers=tuple(containers), body=entry)


def _strings(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (raw,)
    return tuple(str(item) for item in raw) if isinstance(raw, list) else (str(raw),)
