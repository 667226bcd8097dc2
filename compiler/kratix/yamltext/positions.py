"""Where each node of a parsed document starts, and the duplicate keys met on the way.

In: records the loader's walk adds per node (`Marks.add`). Out: the `{path: (line, column)}` mapping
`SourceDoc.positions` holds. `YamlProblem` is one problem reading a file. Refuses nothing.
"""

from __future__ import annotations

from array import array
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
    """Where each node of one document starts, recorded in flat sequences during the walk and turned into the
    `{path: (line, column)}` mapping only when a diagnostic asks: a compile keeps every source document, and
    a tuple or two per node would keep the garbage collector busy for positions that are almost never read.

    A record is a key (its name a str: the key's position wins over an earlier one, as a duplicate key's
    does) or the root or a sequence item (an int index: the first position recorded for a path stays). Its
    numbers (parent record, line, column) go to one array of 32-bit integers, three a record: no int objects,
    nothing for the collector to track, and two sequences a document instead of four lists (a compile of 100,000
    requests keeps 100,000 of these)."""

    __slots__ = ("names", "numbers")

    def __init__(self) -> None:
        self.names: list[str | int] = []
        # Parent, line, column of each record, as 32-bit integers: a file read is at most 16 MiB
        # (`limits.MAX_FILE_BYTES`), so none comes near 2**31.
        self.numbers = array("i")

    def add(self, parent: int, name: str | int, mark: Any) -> int:
        self.names.append(name)
        self.numbers.extend((parent, mark.line + 1, mark.column + 1))
        return len(self.names) - 1

    def path(self, record: int) -> FieldPath:
        names: list[str | int] = []
        while record > 0:
            names.append(self.names[record])
            record = self.numbers[3 * record]
        return tuple(reversed(names))


class Positions(Mapping[FieldPath, Position]):
    """The read-only view `SourceDoc.positions` gets of a document's `Marks`, built on first use. Slotted, and
    the table made only when asked for: until then it holds the names (as a tuple, no spare room) and the
    numbers."""

    __slots__ = ("_names", "_numbers", "_table")

    def __init__(self, marks: Marks) -> None:
        self._names: tuple[str | int, ...] = tuple(marks.names)
        self._numbers: array[int] | None = marks.numbers
        self._table: dict[FieldPath, Position] | None = None

    def _built(self) -> dict[FieldPath, Position]:
        table = self._table
        if table is None:
            table = self._table = {}
            numbers = self._numbers
            assert numbers is not None
            paths: list[FieldPath] = []
            for index, name in enumerate(self._names):
                parent, line, column = numbers[3 * index : 3 * index + 3]
                path = (*paths[parent], name) if paths else ()
                paths.append(path)
                if type(name) is str:
                    table[path] = (line, column)
                else:
                    table.setdefault(path, (line, column))
            self._names, self._numbers = (), None
        return table

    def __getitem__(self, path: FieldPath) -> Position:
        numbers = self._numbers
        if not path and numbers is not None and self._names:  # the root is the first record: no table for it
            return (numbers[1], numbers[2])
        return self._built()[path]

    def __iter__(self) -> Iterator[FieldPath]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())
