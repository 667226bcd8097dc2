"""Static YAML files beside a step's templates: parsed once per compile and shared by every request (nothing
downstream mutates documents: labels are stamped onto copies)."""

from __future__ import annotations

from typing import Any

from kratix import yamltext
from kratix.model.documents import SourceTree
from kratix.model.manifests import RenderFailure
from kratix.workflows.render_checks import StepFailed


class StaticFiles:
    """One per compile: the parsed documents of each static file, by path."""

    def __init__(self, tree: SourceTree) -> None:
        self._tree = tree
        self._parsed: dict[str, list[Any]] = {}

    def documents(self, name: str, step: str) -> list[Any]:
        """The documents of the static file `name`; a file that is not valid YAML fails `step`."""
        if name not in self._parsed:
            docs, problems = yamltext.load_documents(name, self._tree.files[name])
            if problems:
                first = problems[0]
                raise StepFailed(RenderFailure(name, first.line, first.column, first.code, first.message, step))
            self._parsed[name] = [doc.body for doc in docs]
        return self._parsed[name]
