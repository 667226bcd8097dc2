"""Where each node of a parsed document starts, and the duplicate keys met on the way.

In: records the loader's walk adds per node (`Marks.add`). Out: the `{path: (line, column)}` mapping
`SourceDoc.positions` holds. `YamlProblem` is one problem reading a file. Refuses nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kratix.model.documents import FieldPath, Position


@dataclass(frozen=True)
class YamlProblem:
    """One problem reading a file (`yaml.syntax`, `yaml.duplicate-key`, `yaml.depth`, ...: `kratix.yamltext.load`)."""

    line: int
    column: int
    path: FieldPath
    message: str
    code: str


class Marks:
    """Where each node of one document starts, recorded in flat lists during the walk and turned into the
    `{path: (line, column)}` mapping only when a diagnostic asks: a compile keeps every source document, and
    a tuple or two per node would keep the garbage collector busy for positions that are almost never read.

    A record is a key (its name a str: the key's position wins over an earlier one, as a duplicate key's
    does) or the root or a sequence item (an int index: the first position recorded for a path stays)."""

    def __init__(self) -> None:
        self.parents: list[int] = []
        self.names: list[str | int] = []
        self.lines: list[int] = []
        self.columns: list[int] = []

    def add(self, parent: int, name: str | int, mark: Any) -> int:
        self.parents.append(parent)
        self.names.append(name)
        self.lines.append(mark.line + 1)
        self.columns.append(mark.column + 1)
        return len(self.parents) - 1

    def path(self, record: int) -> FieldPath:
        names: list[str | int] = []
        while record > 0:
            names.append(self.names[record])
            record = self.parents[record]
        return tuple(reversed(names))


class Positions(Mapping[FieldPath, Position]):
    """The read-only view `SourceDoc.positions` gets of a document's `Marks`, built on first use."""

    def __init__(self, marks: Marks) -> None:
        self._marks: Marks | None = marks
        self._table: dict[FieldPath, Position] = {}

    def _built(self) -> dict[FieldPath, Position]:
        marks = self._marks
        if marks is not None:
            paths: list[FieldPath] = []
            table = self._table
            for parent, name, line, column in zip(marks.parents, marks.names, marks.lines, marks.columns, strict=True):
                path = (*paths[parent], name) if paths else ()
                paths.append(path)
                if type(name) is str:
                    table[path] = (line, column)
                else:
                    table.setdefault(path, (line, column))
            self._marks = None
        return self._table

    def __getitem__(self, path: FieldPath) -> Position:
        return self._built()[path]

    def __iter__(self) -> Iterator[FieldPath]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())
