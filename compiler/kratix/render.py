"""Render: a Promise's workflows and dependencies → Kubernetes objects.

In: a Promise, the object its workflow runs for (a request with defaults applied, or the Promise itself) and the
source tree holding the Promise's step files. Out: a `WorkflowResult` per object (files of documents per pipeline,
status written by the pipelines, or the one failure that stopped it).

The native step (`template: <dir>`) renders every `*.j2` file of that folder with one sandboxed Jinja2
environment per run (templates compiled once; `kratix.templating`). Values interpolated with `{{ }}` are data,
never YAML text: each one becomes an opaque token, the rendered text is parsed, and tokens are replaced in the
parsed nodes. A value that is a whole plain scalar keeps its type (a mapping stays a mapping), one inside a larger
or quoted scalar is joined as text. So a request's strings holding newlines, `---`, `: ` or `#` can never add keys
or documents. A step's templates share one budget per request (steps, time, output): a template past it fails
that request alone, naming the template and line.
Other containers (commands, images) run through `kratix.steps`.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2
import yaml

from kratix import contract, sops, steps, templating, yamltext
from kratix import names as kratix_names
from kratix.documents import SourceTree
from kratix.errors import StepError
from kratix.manifests import (
    STATIC_PIPELINE,
    PipelineOutput,
    RenderedFile,
    RenderFailure,
    Suspension,
    WorkflowResult,
)
from kratix.platform import ConfigObject, Container, Pipeline, Promise, ResourceRequest
from kratix.settings import RenderSettings

TEMPLATE_SUFFIX = ".j2"


class _Failure(Exception):
    def __init__(self, failure: RenderFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class Renderer:
    """One per compile: the Jinja2 environment, compiled templates and the node representer are shared."""

    def __init__(self, tree: SourceTree, *, settings: RenderSettings,
                 configs: Mapping[tuple[str, str, str], ConfigObject] | None = None,
                 sealer: sops.Sealer | None = None) -> None:
        self._tree = tree
        self._settings = settings
        self._configs = configs or {}  # the ConfigMaps and Secrets of config/<namespace>/
        self._sealer = sealer or sops.Sealer()
        self._decrypted: dict[tuple[str, str, str], Mapping[str, bytes] | str] = {}  # in memory only
        self._decrypting = threading.Lock()
        self._env = templating.TemplateEnvironment(loader=jinja2.FunctionLoader(self._load_template))
        self._nonce = secrets.token_hex(6)
        self._local = threading.local()  # container pipelines render templates from several threads
        self._folders: dict[str, list[str]] = {}
        self._static: dict[str, list[Any]] = {}  # parsed static YAML files, by path
        self._probes: dict[str, str | None] = {}  # what the machine can run, asked once per compile

    def _load_template(self, name: str) -> tuple[str, str, Callable[[], bool]] | None:
        path = _normalise(name)
        data = self._tree.files.get(path)
        # The filename is what Jinja puts in tracebacks: the repo path makes errors point at the template.
        return (data.decode("utf-8"), path, lambda: True) if data is not None else None

    # --- public entry points ------------------------------------------------------------------------------

    def render_dependencies(self, promise: Promise) -> PipelineOutput:
        documents = tuple(d for d in promise.dependencies if isinstance(d, Mapping))
        files = (RenderedFile("dependencies.yaml", documents, promise.source.path),) if documents else ()
        return PipelineOutput(STATIC_PIPELINE, files)

    def render_workflow(self, promise: Promise, pipelines: Sequence[Pipeline], obj: Mapping[str, Any], *,
                        request: ResourceRequest | None) -> WorkflowResult:
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
                    output, written, suspension = self._container_pipeline(promise, pipeline, current,
                                                                           workflow_type, env, request)
            except _Failure as failure:
                return WorkflowResult(tuple(outputs), status, failure.failure, written_keys=tuple(keys))
            status = contract.merge_status(status, written)
            keys.update(dict.fromkeys(written))
            if suspension is not None:  # Kratix creates no Work for it, and runs nothing after it
                return WorkflowResult(tuple(outputs), status, None, replace(suspension, pipeline=pipeline.name),
                                      tuple(keys))
            outputs.append(output)
        return WorkflowResult(tuple(outputs), status, None, written_keys=tuple(keys))

    # --- native template pipelines ------------------------------------------------------------------------

    def _native_pipeline(self, promise: Promise, pipeline: Pipeline, obj: Mapping[str, Any],
                         workflow_type: str) -> tuple[PipelineOutput, Mapping[str, Any]]:
        files: dict[str, RenderedFile] = {}
        for container in pipeline.containers:
            step = f"{pipeline.name}/{container.name}"
            for rendered in self._render_folder(promise, container, obj, workflow_type, step):
                files[rendered.path] = rendered  # a later container overwrites, as in a shared output folder
        return PipelineOutput(pipeline.name, tuple(files[p] for p in sorted(files))), {}

    def _render_folder(self, promise: Promise, container: Container, obj: Mapping[str, Any],
                       workflow_type: str, step: str) -> list[RenderedFile]:
        assert container.template is not None
        folder = _normalise(f"{promise.folder}/{container.template}")
        names = self._folder_files(folder)
        if not names:
            raise _Failure(RenderFailure(promise.source.path, promise.source.line, 1, "render.template-folder",
                                         f"template folder {folder}/ has no *.j2 or *.yaml files", step))
        context = {"promise": promise.body}
        if workflow_type == "resource":
            context["request"] = obj
        budget = templating.Budget.for_request(self._settings)  # one for all the templates of this step
        rendered: list[RenderedFile] = []
        for name in names:
            relative = name[len(folder) + 1:]
            if name.endswith(TEMPLATE_SUFFIX):
                relative = relative[: -len(TEMPLATE_SUFFIX)]
            unsafe = kratix_names.relative_path(relative)
            if unsafe is not None:
                raise _Failure(RenderFailure(name, 1, 1, "render.output-path",
                                             f"the output file name {relative!r} {unsafe}", step))
            if name.endswith(TEMPLATE_SUFFIX):
                documents = self._render_template(name, context, step, budget)
            else:
                documents = self._copy_yaml(name, step)
            for index, document in enumerate(documents):
                problem = object_problem(document)
                if problem:
                    raise _Failure(RenderFailure(name, 1, 1, "render.not-an-object",
                                                 f"document {index + 1} of the output {problem}", step))
            if documents:
                rendered.append(RenderedFile(relative, tuple(documents), name))
        return rendered

    def _folder_files(self, folder: str) -> list[str]:
        if folder not in self._folders:
            prefix = folder + "/"
            self._folders[folder] = sorted(
                path for path in self._tree.files
                if path.startswith(prefix) and path.endswith((TEMPLATE_SUFFIX, ".yaml", ".yml"))
                and not PurePosixPath(path).name.startswith("_"))  # _partials.j2 are for include only
        return self._folders[folder]

    def _render_template(self, name: str, context: Mapping[str, Any], step: str,
                         budget: templating.Budget) -> list[Any]:
        tokens = templating.Tokens(self._nonce)
        try:
            text = self._env.render(name, context, tokens, budget)
        except jinja2.TemplateSyntaxError as exc:
            raise _Failure(RenderFailure(_normalise(exc.filename or name), exc.lineno or 1, 1,
                                         "render.template-syntax", f"template syntax error: {exc.message}",
                                         step)) from None
        except templating.TemplateBudgetError as exc:
            file, line = _template_frame(exc, name)
            raise _Failure(RenderFailure(file, line, 1, "render.template-budget", str(exc), step)) from None
        except Exception as exc:  # noqa: BLE001 - any error a template raises is the template's fault
            file, line = _template_frame(exc, name)
            raise _Failure(RenderFailure(file, line, 1, "render.template-error",
                                         f"{type(exc).__name__}: {exc}", step)) from None
        try:
            return yamltext.load_transformed(text, lambda node: self._substitute(node, tokens))
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            where = f" at line {mark.line + 1} of the rendered output" if mark else ""
            raise _Failure(RenderFailure(name, 1, 1, "render.output-yaml",
                                         f"the rendered output is not valid YAML{where}: {exc.problem}",
                                         step)) from None

    def _copy_yaml(self, name: str, step: str) -> list[Any]:
        """A static file beside the templates: parsed once per compile, shared by every request (nothing
        downstream mutates documents: labels are stamped onto copies)."""
        if name not in self._static:
            docs, problems = yamltext.load_documents(name, self._tree.files[name])
            if problems:
                first = problems[0]
                raise _Failure(RenderFailure(name, first.line, first.column, first.code, first.message, step))
            self._static[name] = [doc.body for doc in docs]
        return self._static[name]

    def _substitute(self, node: yaml.Node, tokens: templating.Tokens) -> yaml.Node:
        if isinstance(node, yaml.ScalarNode):
            if tokens.nonce not in node.value:
                return node
            if not node.style and tokens.pattern.fullmatch(node.value):
                return self._represent(tokens.value_of(node.value))
            return yaml.ScalarNode("tag:yaml.org,2002:str", tokens.expand_text(node.value),
                                   node.start_mark, node.end_mark, style=node.style or "'")
        if isinstance(node, yaml.MappingNode):
            node.value = [(self._substitute_key(k, tokens), self._substitute(v, tokens)) for k, v in node.value]
        elif isinstance(node, yaml.SequenceNode):
            node.value = [self._substitute(item, tokens) for item in node.value]
        return node

    def _substitute_key(self, node: yaml.Node, tokens: templating.Tokens) -> yaml.Node:
        if isinstance(node, yaml.ScalarNode) and tokens.nonce in node.value:
            return yaml.ScalarNode("tag:yaml.org,2002:str", tokens.expand_text(node.value),
                                   node.start_mark, node.end_mark)
        return node

    def _represent(self, value: Any) -> yaml.Node:
        representer = getattr(self._local, "representer", None)
        if representer is None:
            representer = self._local.representer = yaml.representer.SafeRepresenter()
        representer.represented_objects = {}
        representer.object_keeper = []
        representer.alias_key = None
        return representer.represent_data(templating.plain(value))

    # --- container pipelines ------------------------------------------------------------------------------

    def _container_pipeline(self, promise: Promise, pipeline: Pipeline, obj: Mapping[str, Any],
                            workflow_type: str, env: Mapping[str, str], request: ResourceRequest | None
                            ) -> tuple[PipelineOutput, Mapping[str, Any], Suspension | None]:
        try:
            pipeline, mounts = self._resolve_inputs(promise, pipeline, request, workflow_type)
        except contract.ContractError as exc:
            raise _Failure(RenderFailure(promise.source.path, promise.source.line, 1, "render.step-input",
                                         str(exc), pipeline.name)) from None
        promise_files = {path[len(promise.folder) + 1:]: data for path, data in self._tree.files.items()
                         if path.startswith(promise.folder + "/")}

        def native(container: Container, out: Path) -> str | None:
            return self._native_into(promise, container, obj, workflow_type, pipeline, out)

        try:
            run = steps.run_pipeline(pipeline, object_yaml=yamltext.dump(obj), promise_files=promise_files,
                                     env=env, settings=self._settings,
                                     native_step=native, mounts=mounts, **self._probe(pipeline))
        except StepError as exc:  # refused before any container ran: no sandbox, no runtime, no network allowed
            raise _Failure(RenderFailure(promise.source.path, promise.source.line, 1, "render.step-refused",
                                         str(exc), pipeline.name)) from None
        if run.error is not None:
            raise _Failure(RenderFailure(promise.source.path, promise.source.line, 1, "render.step-failed",
                                         run.error, f"{pipeline.name}/{run.failed_step or '?'}"))
        files = []
        for path in sorted(run.output_files):
            # Every file is delivered (Kratix's work-creator): YAML that is all Kubernetes objects as objects (so
            # they are validated, labelled and listed for kustomize), anything else as written, byte for byte.
            data = run.output_files[path]
            bodies: tuple[Any, ...] = ()
            if path.endswith((".yaml", ".yml")):
                documents, problems = yamltext.load_documents(path, data)
                parsed = tuple(d.body for d in documents)
                if not problems and parsed and not any(object_problem(body) for body in parsed):
                    bodies = parsed
            files.append(RenderedFile(path, bodies, f"container:{pipeline.name}",
                                      sandbox=steps.UNSANDBOXED if run.unsandboxed else None, images=run.images,
                                      raw=None if bodies else data))
        try:
            groups = contract.read_destination_selectors(run.metadata_files.get(contract.DESTINATION_SELECTORS))
            written = contract.read_status(run.metadata_files.get(contract.STATUS))
            suspension = contract.read_workflow_control(run.metadata_files.get(contract.WORKFLOW_CONTROL))
        except contract.ContractError as exc:
            raise _Failure(RenderFailure(promise.source.path, promise.source.line, 1, "render.metadata",
                                         str(exc), pipeline.name)) from None
        return PipelineOutput(pipeline.name, tuple(files), groups), written, suspension

    def _resolve_inputs(self, promise: Promise, pipeline: Pipeline, request: ResourceRequest | None,
                        workflow_type: str) -> tuple[Pipeline, dict[str, tuple[contract.Mount, ...]]]:
        """Each container's env (valueFrom, envFrom) and volumes, read from the ConfigMaps and Secrets of the
        namespace the pipeline runs in."""
        namespace = contract.pipeline_namespace(promise, request)
        account = contract.service_account(promise, pipeline.body, workflow_type)

        def lookup(kind: str, name: str) -> Mapping[str, bytes] | None:
            return self._config_data(kind, namespace, name)

        containers, mounts = [], {}
        for container in pipeline.containers:
            if container.template is not None:
                containers.append(container)
                continue
            inputs = contract.resolve_step(container.body, pipeline.body, namespace=namespace, account=account,
                                           lookup=lookup)
            containers.append(replace(container, env=inputs.env))
            mounts[container.name] = inputs.mounts
        return replace(pipeline, containers=tuple(containers)), mounts

    def _config_data(self, kind: str, namespace: str, name: str) -> Mapping[str, bytes] | None:
        """A ConfigMap's or Secret's data, decoded; a Secret decrypted once per compile, kept in memory only."""
        found = self._configs.get((kind, namespace, name))
        if found is None:
            return None
        with self._decrypting:
            if (kind, namespace, name) not in self._decrypted:
                self._decrypted[(kind, namespace, name)] = self._decode(found)
        data = self._decrypted[(kind, namespace, name)]
        if isinstance(data, str):
            raise contract.ContractError(data)
        return data

    def _decode(self, found: ConfigObject) -> Mapping[str, bytes] | str:
        """The object's keys and bytes (`data` as text, `binaryData`/a Secret's `data` base64, `stringData`
        text), or why it cannot be read."""
        where = f"{found.kind} {found.namespace}/{found.name} ({found.source})"
        body = found.body
        if found.kind == "Secret":
            try:
                body = self._sealer.decrypt(body)
            except sops.SopsError as exc:
                return f"{where}: {exc}"
        text, encoded = (("data",), ("binaryData",)) if found.kind == "ConfigMap" else (("stringData",), ("data",))
        decoded: dict[str, bytes] = {}
        for fields, is_base64 in ((encoded, True), (text, False)):
            for field in fields:
                values = body.get(field) or {}
                if not isinstance(values, Mapping):
                    return f"{where}: {field} must be a map of keys to strings"
                for key, value in values.items():
                    if not isinstance(value, str):
                        return f"{where}: {field}.{key} must be a string (quote it)"
                    try:
                        decoded[str(key)] = base64.b64decode(value, validate=True) if is_base64 else value.encode()
                    except binascii.Error:
                        return f"{where}: {field}.{key} is not base64"
        return decoded

    def _probe(self, pipeline: Pipeline) -> dict[str, str | None]:
        commands = any(c.image is None and c.template is None for c in pipeline.containers)
        if commands and "sandbox" not in self._probes:
            self._probes["sandbox"] = steps.command_sandbox(self._settings)  # "": none here, steps refuse
        if any(c.image for c in pipeline.containers) and "runtime" not in self._probes:
            self._probes["runtime"] = steps.detect_runtime(self._settings.container_runtime)
        return dict(self._probes)

    def _native_into(self, promise: Promise, container: Container, obj: Mapping[str, Any], workflow_type: str,
                     pipeline: Pipeline, out: Path) -> str | None:
        try:
            files = self._render_folder(promise, container, obj, workflow_type, f"{pipeline.name}/{container.name}")
        except _Failure as failure:
            f = failure.failure
            return f"{f.file}:{f.line}: {f.message}"
        for file in files:
            target = out / file.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(yamltext.dump_all(file.documents))
        return None


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


def _normalise(path: str) -> str:
    parts: list[str] = []
    for part in PurePosixPath(path).parts:
        if part == "..":
            if parts:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def _template_frame(exc: BaseException, fallback: str) -> tuple[str, int]:
    """Jinja rewrites tracebacks so template frames carry the template's name and line."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename and not frame.filename.endswith(".py") and frame.lineno:
            return _normalise(frame.filename), frame.lineno
    return fallback, 1
