"""Diagnostics: every problem the compiler finds, as data.

Stages never raise on user input; they return `Diagnostic`s, which the CLI prints compiler-style
(`requests/team-a/db.yaml:12:5: spec.replicas: must be >= 1`) or as JSON / GitHub annotations.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kratix.model.documents import FieldPath, SourceDoc


class Severity(enum.IntEnum):
    INFO = 0
    WARNING = 1
    ERROR = 2

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, order=True)
class Diagnostic:
    file: str
    line: int
    column: int
    path: str  # the field path inside the object, e.g. "spec.replicas"; "" for the whole document
    code: str  # a stable identifier, e.g. "schema.minimum", "yaml.syntax", "request.unknown-kind"
    message: str
    severity: Severity = Severity.ERROR
    object: str = ""  # "Kind namespace/name" of the object concerned, when known

    @classmethod
    def at(
        cls,
        doc: SourceDoc,
        path: FieldPath,
        code: str,
        message: str,
        *,
        severity: Severity = Severity.ERROR,
        object: str = "",
    ) -> Diagnostic:
        """A diagnostic pointing at `path` inside `doc` (or its nearest existing parent)."""
        line, column = doc.locate(path)
        return cls(doc.path, line, column, format_path(path), code, message, severity, object)

    def render(self) -> str:
        """Compiler-style text, safe to print where a CI runner reads workflow commands: names are shown with
        their control characters escaped, and a message's later lines are indented behind a `|`, so nothing a
        tenant writes (a file name, a step's stderr) can start a line of its own."""
        location = f"{_escaped(self.file)}:{self.line}:{self.column}" if self.file else "<platform>"
        field = f"{_escaped(self.path)}: " if self.path else ""
        subject = f" [{_escaped(self.object)}]" if self.object else ""
        prefix = "" if self.severity is Severity.ERROR else f"{self.severity}: "
        message = "\n    | ".join(_escaped(line) for line in self.message.split("\n"))
        return f"{location}: {prefix}{field}{message}{subject}"

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "code": self.code,
            "severity": str(self.severity),
            "message": self.message,
            "object": self.object,
        }


_CONTROL = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")


def _escaped(text: str) -> str:
    """`text` on one line: control characters (a newline, a carriage return, an escape) shown as escapes."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def errors(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if d.severity is Severity.ERROR]


def format_path(path: Iterable[object]) -> str:
    """("spec", "items", 2, "name") -> "spec.items[2].name"."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
