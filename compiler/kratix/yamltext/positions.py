"""Where each node of a parsed document starts, and the duplicate keys met on the way.

In: records the loader's walk adds per node (`Marks.add`), or a composed node tree (`index_positions`, for
documents the lean walk hands to SafeConstructor). Out: the `{path: (line, column)}` mapping `SourceDoc.positions`
holds, and a `YamlProblem` per duplicate key (`<<` may repeat: merge keys are allowed to). Refuses nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from kratix.documents import FieldPath, Position


@dataclass(frozen=True)
class YamlProblem:
    """One problem reading a file: `yaml.syntax`, `yaml.encoding` or `yaml.duplicate-key`."""

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
            for parent, name, line, column in zip(marks.parents, marks.names, marks.lines, marks.columns,
                                                  strict=True):
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


def index_positions(node: yaml.Node, path: FieldPath, positions: dict[FieldPath, Position],
                    problems: list[YamlProblem]) -> None:
    """Positions and duplicate keys of a document the lean walk hands to SafeConstructor."""
    positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.start_mark)
            child = (*path, key)
            if key in seen and key != "<<":
                problems.append(YamlProblem(key_node.start_mark.line + 1, key_node.start_mark.column + 1,
                                            child, f"duplicate key {key!r}", "yaml.duplicate-key"))
            seen.add(key)
            positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            _index_child(value_node, child, positions, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_child(item, (*path, index), positions, problems)


def _index_child(node: yaml.Node, path: FieldPath, positions: dict[FieldPath, Position],
                 problems: list[YamlProblem]) -> None:
    if isinstance(node, yaml.ScalarNode):
        positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    else:
        index_positions(node, path, positions, problems)
