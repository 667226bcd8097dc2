"""What the readers of each input folder share: YAML files parsed with diagnostics, and unvalidated fields.

In: a `SourceTree` folder, or one parsed `SourceDoc`. Out: the folder's YAML files in path order, each file's
documents (with one error diagnostic per YAML problem), a document in today's format (one warning per seed-era
field it used), and small readers that never trust a field's type.
Refuses: nothing itself; a file that does not parse yields the documents before the problem and its diagnostic.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import PurePosixPath
from typing import Any

from kratix import migrate, yamltext
from kratix.diagnostics import Diagnostic, Severity, format_path
from kratix.documents import SourceDoc, SourceTree
from kratix.platform import API_GROUP

YAML_SUFFIXES = (".yaml", ".yml")


def mapping(value: Any) -> Mapping[str, Any]:
    """`value` if it is a mapping, else an empty one: the input is unvalidated, any field may hold anything."""
    return value if isinstance(value, Mapping) else {}


def yaml_files(tree: SourceTree, folder: str) -> Iterator[tuple[str, bytes]]:
    for path in sorted(tree.under(folder)):
        if path.endswith(YAML_SUFFIXES):
            yield path, tree.files[path]


def parse_file(path: str, data: bytes, diagnostics: list[Diagnostic]) -> list[SourceDoc]:
    docs, problems = yamltext.load_documents(path, data)
    for problem in problems:
        severity = Severity.ERROR
        diagnostics.append(Diagnostic(path, problem.line, problem.column, format_path(problem.path), problem.code,
                                      problem.message, severity))
    return docs


def object_name(doc: SourceDoc) -> str:
    body = doc.body if isinstance(doc.body, Mapping) else {}
    metadata = mapping(body.get("metadata"))
    name = metadata.get("name", "?") if isinstance(metadata, Mapping) else "?"
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    where = f"{namespace}/{name}" if namespace else str(name)
    return f"{body.get('kind', '?')} {where}"


def is_platform_kind(body: Any, *kinds: str) -> bool:
    return (isinstance(body, Mapping) and body.get("kind") in kinds
            and str(body.get("apiVersion", "")).split("/", 1)[0] == API_GROUP)


def upgraded(doc: SourceDoc, code: str, diagnostics: list[Diagnostic]) -> Any:
    """The document in today's format; each seed-era field it used is a deprecation warning."""
    upgrade = migrate.upgrade_document(doc.body)
    for path, note in upgrade.notes:
        diagnostics.append(Diagnostic.at(doc, path, code, note, severity=Severity.WARNING, object=object_name(doc)))
    return upgrade.body


def escapes(relative: str) -> bool:
    path = PurePosixPath(relative)
    return path.is_absolute() or ".." in path.parts
