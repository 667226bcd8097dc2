"""Render: a Promise's workflows and dependencies → Kubernetes objects.

In: a Promise, the object its workflow runs for (a request with defaults applied, or the Promise itself) and the
source tree holding the Promise's step files. Out: a `WorkflowResult` per object (files of documents per pipeline,
status written by the pipelines, or the one failure that stopped it).

This module is the façade the stages use; each job lives in a module of its own:
- `kratix.workflows.render_templates`: the native step (`template: <dir>`), one Jinja2 environment per compile, whose
  `{{ }}` values are put back as data (`kratix.workflows.render_tokens`) and whose static files are parsed once
  (`kratix.workflows.render_static`);
- `kratix.workflows.render_containers`: pipelines with command or image steps, run through `kratix.workflows.steps`,
their inputs
  read from ConfigMaps and Secrets (`kratix.workflows.render_configs`);
- `kratix.workflows.render_checks`: the failure that stops a workflow and the check that a document is an object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from kratix.model.documents import SourceTree
from kratix.model.manifests import STATIC_PIPELINE, PipelineOutput, RenderedFile, WorkflowResult
from kratix.model.platform import ConfigObject, Pipeline, Promise, ResourceRequest
from kratix.model.settings import RenderSettings
from kratix.workflows import contract, sops
from kratix.workflows.render_checks import StepFailed, object_problem
from kratix.workflows.render_configs import StepInputs
from kratix.workflows.render_containers import ContainerPipelines
from kratix.workflows.render_templates import TemplateFolders

__all__ = ["Renderer", "object_problem"]  # object_problem: assemble checks what the steps wrote with it


class Renderer:
    """One per compile: the template folders and container pipelines it composes keep their caches for it."""

    def __init__(
        self,
        tree: SourceTree,
        *,
        settings: RenderSettings,
        configs: Mapping[tuple[str, str, str], ConfigObject] | None = None,
        sealer: sops.Sealer | None = None,
    ) -> None:
        self._templates = TemplateFolders(tree, settings)
        inputs = StepInputs(configs or {}, sealer or sops.Sealer())  # the ConfigMaps and Secrets of config/
        self._containers = ContainerPipelines(tree, settings, self._templates, inputs)

    # Whether request workflows may be rendered in forked worker processes (`kratix.workers`): a renderer that
    # keeps what its workflows did (`kratix.compile.shards`) must see every one of them in this process.
    forkable = True

    def waits_on_programs(self, promise: Promise, request: ResourceRequest) -> bool:
        """Whether `request`'s workflow runs programs or containers here: it then waits on processes, not on
        Python, and requests like it are compiled side by side on threads."""
        return promise.runs_programs

    def render_dependencies(self, promise: Promise) -> PipelineOutput:
        documents = tuple(d for d in promise.dependencies if isinstance(d, Mapping))
        files = (RenderedFile("dependencies.yaml", documents, promise.source.path),) if documents else ()
        return PipelineOutput(STATIC_PIPELINE, files)

    def render_workflow(
        self,
        promise: Promise,
        pipelines: Sequence[Pipeline],
        obj: Mapping[str, Any],
        *,
        request: ResourceRequest | None,
    ) -> WorkflowResult:
        """Run `pipelines` in order for `obj` (`request`'s resource workflow, or with None the Promise's own);
        each later pipeline sees the status the earlier ones wrote."""
        workflow_type = contract.RESOURCE_WORKFLOW if request is not None else contract.PROMISE_WORKFLOW
        outputs: list[PipelineOutput] = []
        status: dict[str, Any] = dict(obj.get("status") or {})
        keys: dict[str, None] = {}
        for pipeline in pipelines:
            current = {**obj, "status": status} if status else dict(obj)
            suspension = None
            try:
                if all(c.template is not None for c in pipeline.containers):
                    output, written = self._native_pipeline(promise, pipeline, current, workflow_type)
                else:
                    env = contract.kratix_variables(promise, request, pipeline=pipeline.name)
                    output, written, suspension = self._containers.run(
                        promise, pipeline, current, workflow_type, env, request
                    )
            except StepFailed as failure:
                return WorkflowResult(tuple(outputs), status, failure.failure, written_keys=tuple(keys))
            status = contract.merge_status(status, written)
            keys.update(dict.fromkeys(written))
            if suspension is not None:  # Kratix creates no Work for it, and runs nothing after it
                return WorkflowResult(
                    tuple(outputs), status, None, replace(suspension, pipeline=pipeline.name), tuple(keys)
                )
            outputs.append(output)
        return WorkflowResult(tuple(outputs), status, None, written_keys=tuple(keys))

    def _native_pipeline(
        self, promise: Promise, pipeline: Pipeline, obj: Mapping[str, Any], workflow_type: str
    ) -> tuple[PipelineOutput, Mapping[str, Any]]:
        """A pipeline of template steps only: rendered in process, no container runs and no status is written."""
        files: dict[str, RenderedFile] = {}
        for container in pipeline.containers:
            step = f"{pipeline.name}/{container.name}"
            for rendered in self._templates.render_folder(promise, container, obj, workflow_type, step):
                files[rendered.path] = rendered  # a later container overwrites, as in a shared output folder
        return PipelineOutput(pipeline.name, tuple(files[p] for p in sorted(files))), {}
