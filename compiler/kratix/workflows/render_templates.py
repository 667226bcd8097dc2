"""The native step (`template: <dir>`): every `*.j2` file of the folder rendered, every static YAML file copied.

One sandboxed Jinja2 environment per compile, templates compiled once (`kratix.workflows.templating`). Values
interpolated
with `{{ }}` are data, never YAML text (`kratix.workflows.render_tokens`). A step's templates share one budget per
request
(steps, time, output): a template past it fails that request alone, naming the template and line.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath
from typing import Any

import jinja2
import yaml

from kratix import yamltext
from kratix.model import names as kratix_names
from kratix.model.documents import SourceTree
from kratix.model.manifests import RenderedFile, RenderFailure
from kratix.model.platform import Container, Promise
from kratix.model.settings import RenderSettings
from kratix.workflows import templating
from kratix.workflows.render_checks import StepFailed, normalise, object_problem, template_frame
from kratix.workflows.render_static import StaticFiles
from kratix.workflows.render_tokens import TokenSubstitution

TEMPLATE_SUFFIX = ".j2"


class TemplateFolders:
    """One per compile: the Jinja2 environment, compiled templates, folder listings and static files are shared."""

    def __init__(self, tree: SourceTree, settings: RenderSettings) -> None:
        self._tree = tree
        self._settings = settings
        self._env = templating.TemplateEnvironment(loader=jinja2.FunctionLoader(self._load_template))
        self._nonce = secrets.token_hex(6)
        self._tokens = TokenSubstitution()
        self._static = StaticFiles(tree)
        self._folders: dict[str, list[str]] = {}
        self._composed: yamltext.Composed = {}  # rendered texts, parsed once (texts hold this compile's nonce)

    def _load_template(self, name: str) -> tuple[str, str, Callable[[], bool]] | None:
        path = normalise(name)
        data = self._tree.files.get(path)
        # The filename is what Jinja puts in tracebacks: the repo path makes errors point at the template.
        return (data.decode("utf-8"), path, lambda: True) if data is not None else None

    def render_folder(
        self, promise: Promise, container: Container, obj: Mapping[str, Any], workflow_type: str, step: str
    ) -> list[RenderedFile]:
        """The files of `container`'s template folder for `obj`; raises `StepFailed` naming the first problem."""
        assert container.template is not None
        folder = normalise(f"{promise.folder}/{container.template}")
        names = self._folder_files(folder)
        if not names:
            raise StepFailed(
                RenderFailure(
                    promise.source.path,
                    promise.source.line,
                    1,
                    "render.template-folder",
                    f"template folder {folder}/ has no *.j2 or *.yaml files",
                    step,
                )
            )
        context = {"promise": promise.body}
        if workflow_type == "resource":
            context["request"] = obj
        budget = templating.Budget.for_request(self._settings)  # one for all the templates of this step
        rendered: list[RenderedFile] = []
        for name in names:
            relative = _output_path(name, folder, step)
            if name.endswith(TEMPLATE_SUFFIX):
                documents = self._render_template(name, context, step, budget)
            else:
                documents = self._static.documents(name, step)
            _check_objects(name, documents, step)
            if documents:
                rendered.append(RenderedFile(relative, tuple(documents), name))
        return rendered

    def _folder_files(self, folder: str) -> list[str]:
        if folder not in self._folders:
            prefix = folder + "/"
            self._folders[folder] = sorted(
                path
                for path in self._tree.files
                if path.startswith(prefix)
                and path.endswith((TEMPLATE_SUFFIX, ".yaml", ".yml"))
                and not PurePosixPath(path).name.startswith("_")
            )  # _partials.j2 are for include only
        return self._folders[folder]

    def _render_template(
        self, name: str, context: Mapping[str, Any], step: str, budget: templating.Budget
    ) -> list[Any]:
        tokens = templating.Tokens(self._nonce)
        try:
            text = self._env.render(name, context, tokens, budget)
        except jinja2.TemplateSyntaxError as exc:
            raise StepFailed(
                RenderFailure(
                    normalise(exc.filename or name),
                    exc.lineno or 1,
                    1,
                    "render.template-syntax",
                    f"template syntax error: {exc.message}",
                    step,
                )
            ) from None
        except templating.TemplateBudgetError as exc:
            file, line = template_frame(exc, name)
            raise StepFailed(RenderFailure(file, line, 1, "render.template-budget", str(exc), step)) from None
        except Exception as exc:  # noqa: BLE001 - any error a template raises is the template's fault
            file, line = template_frame(exc, name)
            raise StepFailed(
                RenderFailure(file, line, 1, "render.template-error", f"{type(exc).__name__}: {exc}", step)
            ) from None
        try:
            return yamltext.load_transformed(text, lambda node: self._tokens.substitute(node, tokens), self._composed)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            where = f" at line {mark.line + 1} of the rendered output" if mark else ""
            raise StepFailed(
                RenderFailure(
                    name,
                    1,
                    1,
                    "render.output-yaml",
                    f"the rendered output is not valid YAML{where}: {exc.problem}",
                    step,
                )
            ) from None


def _output_path(name: str, folder: str, step: str) -> str:
    """Where the file `name` of `folder` lands in the output: its path in the folder, less `.j2`."""
    relative = name[len(folder) + 1 :]
    if name.endswith(TEMPLATE_SUFFIX):
        relative = relative[: -len(TEMPLATE_SUFFIX)]
    unsafe = kratix_names.relative_path(relative)
    if unsafe is not None:
        raise StepFailed(
            RenderFailure(name, 1, 1, "render.output-path", f"the output file name {relative!r} {unsafe}", step)
        )
    return relative


def _check_objects(name: str, documents: list[Any], step: str) -> None:
    for index, document in enumerate(documents):
        problem = object_problem(document)
        if problem:
            raise StepFailed(
                RenderFailure(name, 1, 1, "render.not-an-object", f"document {index + 1} of the output {problem}", step)
            )
