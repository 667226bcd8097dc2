"""Container pipelines: pipelines with command or image steps, run through `kratix.workflows.steps`.

Native steps inside such a pipeline render into the shared output folder like any other step. Every file the
pipeline writes is delivered; its metadata (destination selectors, status, workflow control) is read back.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kratix import yamltext
from kratix.model.documents import SourceTree
from kratix.model.errors import StepError
from kratix.model.manifests import PipelineOutput, RenderedFile, RenderFailure, Suspension
from kratix.model.platform import Container, Pipeline, Promise, ResourceRequest
from kratix.model.settings import RenderSettings
from kratix.workflows import contract, steps
from kratix.workflows.render_checks import StepFailed, object_problem
from kratix.workflows.render_configs import StepInputs
from kratix.workflows.render_templates import TemplateFolders


class ContainerPipelines:
    """One per compile: what the machine can run is asked once."""

    def __init__(
        self, tree: SourceTree, settings: RenderSettings, templates: TemplateFolders, inputs: StepInputs
    ) -> None:
        self._tree = tree
        self._settings = settings
        self._templates = templates
        self._inputs = inputs
        self._probes: dict[str, str | None] = {}  # what the machine can run, asked once per compile

    def run(
        self,
        promise: Promise,
        pipeline: Pipeline,
        obj: Mapping[str, Any],
        workflow_type: str,
        env: Mapping[str, str],
        request: ResourceRequest | None,
    ) -> tuple[PipelineOutput, Mapping[str, Any], Suspension | None]:
        """Run `pipeline` for `obj`: its output, the status it wrote and its suspension if it asked for one;
        raises `StepFailed` when a step cannot run or fails."""
        try:
            pipeline, mounts = self._inputs.resolve(promise, pipeline, request, workflow_type)
        except contract.ContractError as exc:
            raise _failed(promise, "render.step-input", str(exc), pipeline.name) from None
        promise_files = {
            path[len(promise.folder) + 1 :]: data
            for path, data in self._tree.files.items()
            if path.startswith(promise.folder + "/")
        }

        def native(container: Container, out: Path) -> str | None:
            return self._native_into(promise, container, obj, workflow_type, pipeline, out)

        try:
            run = steps.run_pipeline(
                pipeline,
                object_yaml=yamltext.dump(obj),
                promise_files=promise_files,
                env=env,
                settings=self._settings,
                native_step=native,
                mounts=mounts,
                **self._probe(pipeline),
            )
        except StepError as exc:  # refused before any container ran: no sandbox, no runtime, no network allowed
            raise _failed(promise, "render.step-refused", str(exc), pipeline.name) from None
        if run.error is not None:
            raise _failed(promise, "render.step-failed", run.error, f"{pipeline.name}/{run.failed_step or '?'}")
        files = tuple(_delivered(path, run.output_files[path], pipeline, run) for path in sorted(run.output_files))
        try:
            groups = contract.read_destination_selectors(run.metadata_files.get(contract.DESTINATION_SELECTORS))
            written = contract.read_status(run.metadata_files.get(contract.STATUS))
            suspension = contract.read_workflow_control(run.metadata_files.get(contract.WORKFLOW_CONTROL))
        except contract.ContractError as exc:
            raise _failed(promise, "render.metadata", str(exc), pipeline.name) from None
        return PipelineOutput(pipeline.name, files, groups), written, suspension

    def _probe(self, pipeline: Pipeline) -> dict[str, str | None]:
        commands = any(c.image is None and c.template is None for c in pipeline.containers)
        if commands and "sandbox" not in self._probes:
            self._probes["sandbox"] = steps.command_sandbox(self._settings)  # "": none here, steps refuse
        if any(c.image for c in pipeline.containers) and "runtime" not in self._probes:
            self._probes["runtime"] = steps.detect_runtime(self._settings.container_runtime)
        return dict(self._probes)

    def _native_into(
        self,
        promise: Promise,
        container: Container,
        obj: Mapping[str, Any],
        workflow_type: str,
        pipeline: Pipeline,
        out: Path,
    ) -> str | None:
        try:
            files = self._templates.render_folder(
                promise, container, obj, workflow_type, f"{pipeline.name}/{container.name}"
            )
        except StepFailed as failure:
            f = failure.failure
            return f"{f.file}:{f.line}: {f.message}"
        for file in files:
            target = out / file.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(yamltext.dump_all(file.documents))
        return None


def _delivered(path: str, data: bytes, pipeline: Pipeline, run: steps.PipelineRun) -> RenderedFile:
    """Every file is delivered (Kratix's work-creator): YAML that is all Kubernetes objects as objects (so they
    are validated, labelled and listed for kustomize), anything else as written, byte for byte."""
    bodies: tuple[Any, ...] = ()
    if path.endswith((".yaml", ".yml")):
        documents, problems = yamltext.load_documents(path, data)
        parsed = tuple(d.body for d in documents)
        if not problems and parsed and not any(object_problem(body) for body in parsed):
            bodies = parsed
    return RenderedFile(
        path,
        bodies,
        f"container:{pipeline.name}",
        sandbox=steps.UNSANDBOXED if run.unsandboxed else None,
        images=run.images,
        raw=None if bodies else data,
    )


def _failed(promise: Promise, code: str, message: str, step: str) -> StepFailed:
    return StepFailed(RenderFailure(promise.source.path, promise.source.line, 1, code, message, step))
