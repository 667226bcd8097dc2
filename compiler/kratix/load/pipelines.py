"""A Promise's workflows: `spec.workflows.<promise|resource>.configure` → typed `Pipeline`s of `Container`s.

In: one Promise document, its (upgraded) `workflows` field and which workflow to read. Out: the pipelines in
the order written, each with its containers (a native `template` step or an `image`/`command` one), and whether
every one of them could be read (a Promise with a pipeline it cannot read is a failed Promise, not one with a
pipeline less).
Refuses, with a `pipeline.shape`, `pipeline.name` or `pipeline.duplicate` error: a pipeline of the wrong shape
(`kratix.load.shapes.PIPELINE`), without metadata.name or containers, a pipeline or container name that is not a
DNS-1123 label, a pipeline whose Kratix ID (`<promise>-<workflow>-configure-<pipeline>`) is over 60 characters
(Kratix refuses it: the ID names the pipeline's ServiceAccount), a container with both `template` and `image` or
with neither (nor a command), a template folder that is not a plain relative folder of the Promise's folder, a
pipeline or container name used twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath
from typing import Any

from kratix.load import shapes
from kratix.load.shared import mapping
from kratix.model import names
from kratix.model.diagnostics import Diagnostic, Severity
from kratix.model.documents import FieldPath, SourceDoc
from kratix.model.platform import Container, Pipeline

_MAX_PIPELINE_ID = 60  # Kratix's limit on `<promise>-<workflow>-<action>-<pipeline>`
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")  # apimachinery's IsEnvVarName


def parse_pipelines(
    doc: SourceDoc,
    workflows: Any,
    workflow: str,
    diagnostics: list[Diagnostic],
    subject: str,
    promise: str,
    has_templates: Callable[[str], bool],
) -> tuple[tuple[Pipeline, ...], bool]:
    """The pipelines of one workflow, and whether all of them were read. `has_templates(folder)` tells whether a
    template folder (relative to the Promise's folder) holds files to render."""
    if not isinstance(workflows, Mapping):
        return (), True
    section = mapping(workflows.get(workflow))
    if section.get("delete"):
        diagnostics.append(
            Diagnostic.at(
                doc,
                ("spec", "workflows", workflow, "delete"),
                "pipeline.delete-not-run",
                "delete workflows do not run here: when it leaves the repo, its output leaves the output repo and "
                "Flux prunes it",
                severity=Severity.INFO,
                object=subject,
            )
        )
    raw = section.get("configure")
    if not isinstance(raw, list):
        return (), True  # absent; a configure of the wrong shape is reported with the Promise's shape
    base: FieldPath = ("spec", "workflows", workflow, "configure")
    pipelines: list[Pipeline] = []
    complete = True

    def problem(path: FieldPath, message: str, code: str = "pipeline.shape") -> None:
        nonlocal complete
        complete = False
        diagnostics.append(Diagnostic.at(doc, path, code, message, object=subject))

    for index, entry in enumerate(raw):
        pipeline = _pipeline(
            entry, (*base, index), problem, promise=promise, workflow=workflow, has_templates=has_templates
        )
        if pipeline is None:
            continue
        if any(p.name == pipeline.name for p in pipelines):
            problem(
                (*base, index, "metadata", "name"),
                f"pipeline name {pipeline.name!r} is used twice in the {workflow} workflow",
                "pipeline.duplicate",
            )
            continue
        pipelines.append(pipeline)
    return tuple(pipelines), complete


def _pipeline(
    entry: Any, path: FieldPath, problem: Any, *, promise: str, workflow: str, has_templates: Callable[[str], bool]
) -> Pipeline | None:
    found = shapes.problems(shapes.PIPELINE, entry)
    for sub, message in found:
        problem((*path, *sub), message)
    if found:
        return None
    metadata = mapping(entry.get("metadata"))
    name = metadata.get("name")
    invalid = names.dns_label(name)
    if invalid is not None:
        problem((*path, "metadata", "name"), f"a pipeline name {invalid}", "pipeline.name")
        return None
    identity = f"{promise}-{workflow}-configure-{name}"
    if len(identity) > _MAX_PIPELINE_ID:
        problem(
            (*path, "metadata", "name"),
            f"pipeline {name!r} is too long: Kratix names its resources "
            f"{identity!r}, which may be at most {_MAX_PIPELINE_ID} characters",
            "pipeline.name",
        )
        return None
    raw_containers = mapping(entry.get("spec")).get("containers")
    if not raw_containers:
        problem((*path, "spec", "containers"), "a pipeline needs a non-empty list of containers")
        return None
    containers: list[Container] = []
    for index, raw in enumerate(raw_containers):
        container = _container(raw, (*path, "spec", "containers", index), problem, has_templates)
        if container is None:
            return None
        if any(c.name == container.name for c in containers):
            problem(
                (*path, "spec", "containers", index, "name"),
                f"container name {container.name!r} is used twice in this pipeline",
                "pipeline.duplicate",
            )
            return None
        containers.append(container)
    return Pipeline(name=str(name), containers=tuple(containers), body=entry)


def _container(
    raw: Mapping[str, Any], where: FieldPath, problem: Any, has_templates: Callable[[str], bool]
) -> Container | None:
    """The container `raw`, or None once `problem` has been told the first thing wrong with it."""
    if not _names_are_valid(raw, where, problem) or not _step_kind_is_clear(raw, where, problem):
        return None
    template = raw.get("template")
    if template is not None:
        template = _template_folder(template, where, problem, has_templates)
        if template is None:
            return None
    return Container(
        name=raw["name"],
        template=template,
        image=raw.get("image"),
        command=tuple(raw.get("command") or ()),
        args=tuple(raw.get("args") or ()),
        env=tuple((e["name"], e.get("value", "")) for e in raw.get("env") or ()),
        body=raw,
    )


def _names_are_valid(raw: Mapping[str, Any], where: FieldPath, problem: Any) -> bool:
    """The container's name is a DNS-1123 label and each env entry's name an environment variable name."""
    invalid = names.dns_label(raw["name"])
    if invalid is not None:
        problem((*where, "name"), f"a container name {invalid}", "pipeline.name")
        return False
    for index, entry in enumerate(raw.get("env") or ()):
        if not _ENV_NAME.fullmatch(entry["name"]):
            problem(
                (*where, "env", index, "name"),
                f"{entry['name']!r} is not an environment variable name "
                "(letters, digits, '_', '-' and '.', not starting with a digit)",
            )
            return False
    return True


def _step_kind_is_clear(raw: Mapping[str, Any], where: FieldPath, problem: Any) -> bool:
    """No NUL in what reaches a process, and exactly one of a native step (`template`) or a container step
    (`image`, or a `command` alone)."""
    texts = [
        raw.get("image") or "",
        *(raw.get("command") or ()),
        *(raw.get("args") or ()),
        *(str(e.get("value", "")) for e in raw.get("env") or ()),
    ]
    if any("\x00" in text for text in texts):
        problem(where, "a container's image, command, args and env values cannot hold a NUL character")
        return False
    template, image, command = raw.get("template"), raw.get("image"), raw.get("command")
    if template is not None and image is not None:
        problem(where, "a container has either `template` (a native step) or `image`, not both")
        return False
    if template is None and image is None and not command:
        problem(where, "a container needs `template`, `image` or `command`")
        return False
    return True


def _template_folder(template: Any, where: FieldPath, problem: Any, has_templates: Callable[[str], bool]) -> str | None:
    """A native step's folder, normalised: a plain folder inside the Promise's folder holding files to render."""
    folder = str(PurePosixPath(template))
    invalid = names.relative_path(folder) if folder != "." else "is the Promise's folder itself"
    if invalid is not None:
        problem((*where, "template"), f"template must be a folder inside the Promise's folder: {template!r} {invalid}")
        return None
    if not has_templates(folder):
        problem((*where, "template"), f"template folder {folder!r} has no *.j2 or *.yaml file to render")
        return None
    return folder


# What a pipeline may ask of a cluster that a compiler has not got: said once per Promise, never ignored silently.
_CLUSTER_ACCESS = (
    (("spec", "rbac", "permissions"), "RBAC permissions for its ServiceAccount"),
    (("spec", "rbac", "serviceAccount"), "an existing ServiceAccount"),
    (("spec", "imagePullSecrets"), "image pull Secrets (images are pulled with this machine's credentials)"),
)
_POD_ONLY = (("spec", "nodeSelector"), ("spec", "tolerations"), ("spec", "jobOptions"), ("spec", "restartPolicy"))
_CONTAINER_POD_ONLY = ("securityContext", "resources", "imagePullPolicy")
_PROVIDED_VOLUMES = ("configMap", "secret", "emptyDir")


def report_cluster_access(doc: SourceDoc, workflows: Any, diagnostics: list[Diagnostic], subject: str) -> None:
    """One warning for everything the Promise's pipelines ask of a cluster (RBAC, ServiceAccounts, pull Secrets,
    volumes other than configMap/secret/emptyDir), which steps here do not get; one note for the pod settings
    that have no meaning without a pod. Steps run with no Kubernetes API at all."""
    access: list[str] = []
    ignored: list[str] = []
    for workflow in ("promise", "resource"):
        raw = mapping(mapping(workflows).get(workflow)).get("configure")
        for entry in raw if isinstance(raw, list) else ():
            asks, settings = _asks_of(workflow, entry)
            access += asks
            ignored += settings
    if access:
        diagnostics.append(
            Diagnostic.at(
                doc,
                ("spec", "workflows"),
                "pipeline.cluster-access",
                f"its pipelines ask for cluster access a compiler cannot give ({'; '.join(access)}): steps run with no "
                "Kubernetes API and no credentials; a step that needs them fails",
                severity=Severity.WARNING,
                object=subject,
            )
        )
    if mapping(mapping(workflows).get("config")).get("reconciliationInterval"):
        ignored.append(
            "config.reconciliationInterval (workflows run again when their inputs change or a "
            "retryAfter is due, not on a timer)"
        )
    if ignored:
        diagnostics.append(
            Diagnostic.at(
                doc,
                ("spec", "workflows"),
                "pipeline.pod-settings",
                f"pod settings have no effect here, where steps are not pods ({'; '.join(ignored)}); the compile's own "
                "limits apply (see docs/pipeline-contract.md)",
                severity=Severity.INFO,
                object=subject,
            )
        )


def _asks_of(workflow: str, entry: Any) -> tuple[list[str], list[str]]:
    """What one pipeline asks of a cluster, and the pod settings it sets."""
    name = mapping(mapping(entry).get("metadata")).get("name", "?")
    access = [f"{workflow}/{name}: {what}" for path, what in _CLUSTER_ACCESS if _has(entry, path)]
    for volume in mapping(mapping(entry).get("spec")).get("volumes") or ():
        kinds = [k for k in mapping(volume) if k != "name" and k not in _PROVIDED_VOLUMES]
        if kinds:
            access.append(f"{workflow}/{name}: volume {mapping(volume).get('name')!r} ({', '.join(kinds)})")
    ignored = [f"{workflow}/{name}: {'.'.join(path[1:])}" for path in _POD_ONLY if _has(entry, path)]
    for container in mapping(mapping(entry).get("spec")).get("containers") or ():
        ignored += [
            f"{workflow}/{name}/{mapping(container).get('name')}: {field}"
            for field in _CONTAINER_POD_ONLY
            if _has(container, (field,))
        ]
    return access, ignored


def _has(value: Any, path: tuple[str, ...]) -> bool:
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return False
        value = value[key]
    return value not in (None, "", [], {})
