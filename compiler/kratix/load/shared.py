"""What the readers of each input folder share: YAML files parsed with diagnostics, and unvalidated fields.

In: a `SourceTree` folder, or one parsed `SourceDoc`. Out: the folder's YAML files in path order, each file's
documents (with one error diagnostic per YAML problem), a document in today's format (one warning per seed-era
field it used), and small readers that never trust a field's type.
Refuses: a document that is not a mapping; otherwise nothing itself (a document that does not parse is left out
with its diagnostic), but it offers the checks each reader applies: shapes (`kratix.load.shapes`) and names.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from kratix import yamltext
from kratix.load import migrate, shapes
from kratix.model.diagnostics import Diagnostic, Severity, format_path
from kratix.model.documents import SourceDoc, SourceTree
from kratix.model.platform import API_GROUP

YAML_SUFFIXES = (".yaml", ".yml")


def mapping(value: Any) -> Mapping[str, Any]:
    """`value` if it is a mapping, else an empty one: the input is unvalidated, any field may hold anything."""
    return value if isinstance(value, Mapping) else {}


def yaml_files(tree: SourceTree, folder: str) -> Iterator[tuple[str, bytes]]:
    for path in sorted(tree.under(folder)):
        if path.endswith(YAML_SUFFIXES):
            yield path, tree.files[path]


def parse_file(path: str, data: bytes, diagnostics: list[Diagnostic]) -> list[SourceDoc]:
    """The documents of one file that are mappings; every YAML problem and every other document is an error."""
    docs, problems = yamltext.load_documents(path, data)
    for problem in problems:
        diagnostics.append(
            Diagnostic(
                path,
                problem.line,
                problem.column,
                format_path(problem.path),
                problem.code,
                problem.message,
                Severity.ERROR,
            )
        )
    objects = []
    for doc in docs:
        if isinstance(doc.body, Mapping):
            objects.append(doc)
        else:
            diagnostics.append(
                Diagnostic.at(
                    doc,
                    (),
                    "yaml.not-object",
                    f"document {doc.index + 1} is a {_kind_name(doc.body)}, not a Kubernetes object (a mapping)",
                )
            )
    return objects


def _kind_name(value: Any) -> str:
    return "list" if isinstance(value, list) else "string" if isinstance(value, str) else type(value).__name__


def object_name(doc: SourceDoc) -> str:
    body = doc.body if isinstance(doc.body, Mapping) else {}
    metadata = mapping(body.get("metadata"))
    name = metadata.get("name", "?") if isinstance(metadata, Mapping) else "?"
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    where = f"{namespace}/{name}" if namespace else str(name)
    return f"{body.get('kind', '?')} {where}"


def is_platform_kind(body: Any, *kinds: str) -> bool:
    return (
        isinstance(body, Mapping)
        and body.get("kind") in kinds
        and str(body.get("apiVersion", "")).split("/", 1)[0] == API_GROUP
    )


def upgraded(doc: SourceDoc, code: str, diagnostics: list[Diagnostic]) -> Any:
    """The document in today's format; each seed-era field it used is a deprecation warning."""
    upgrade = migrate.upgrade_document(doc.body)
    for path, note in upgrade.notes:
        diagnostics.append(Diagnostic.at(doc, path, code, note, severity=Severity.WARNING, object=object_name(doc)))
    return upgrade.body


def check_shape(doc: SourceDoc, body: Any, schema: Mapping[str, Any], code: str, diagnostics: list[Diagnostic]) -> bool:
    """Whether `body` (doc's body, maybe upgraded) has `schema`'s shape; each field that does not is an error."""
    found = shapes.problems(schema, body)
    for path, message in found:
        diagnostics.append(Diagnostic.at(doc, path, code, message, object=object_name(doc)))
    return not found


def check_name(
    doc: SourceDoc, path: tuple[str | int, ...], problem: str | None, code: str, diagnostics: list[Diagnostic]
) -> bool:
    """Whether a name is valid (`problem` is None); else an error at `path`."""
    if problem is not None:
        diagnostics.append(Diagnostic.at(doc, path, code, problem, object=object_name(doc)))
    return problem is None
