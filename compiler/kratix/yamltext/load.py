"""In: the documents of one file, the way PyYAML's `safe_load` builds them, faster.

In: the bytes or text of one file. Out: `load_documents` gives each non-empty document as a `SourceDoc` with the
position of every node, plus a `YamlProblem` per duplicate key, syntax error (the documents before it are kept)
or non-UTF-8 input, and never raises for bad YAML; `load_plain` and `load_transformed` give the documents alone
and raise `yaml.YAMLError` on bad input. Empty documents (between `---` separators) are skipped.

libyaml composes the node tree; a lean walk constructs it (and records positions in the same pass) for the tags
`safe_load` builds, delegating non-trivial scalars to SafeConstructor itself. Aliases, merge keys, `=` keys,
collection-valued keys and any other tag send the document through SafeConstructor, so that the fast path never
changes what a document means.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from kratix.documents import FieldPath, Position, SourceDoc
from kratix.yamltext.positions import Marks, Positions, YamlProblem, index_positions

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
# Scalar tags SafeConstructor builds without generators; their constructors are called as they are.
_SCALAR_TAGS = frozenset({_STR, _INT, "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool",
                          "tag:yaml.org,2002:null", "tag:yaml.org,2002:timestamp",
                          "tag:yaml.org,2002:binary"})
# Keys SafeConstructor rewrites before building the mapping.
_SPECIAL_KEYS = frozenset({"tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"})


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """libyaml's composer calls back into Python to resolve every scalar's tag and twice per node for path
    resolvers; these answer the same, faster. Within one load most plain scalars repeat (keys, label values),
    so each one is resolved once; a scalar starting with a character no implicit resolver is registered for
    is a string without trying any pattern."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._tags: dict[str, str] = {}
        self._starts = frozenset(self.yaml_implicit_resolvers)
        # Wildcard or path resolvers make a tag depend on more than the scalar's first character and text.
        self._exact = None in self._starts or bool(self.yaml_path_resolvers)
        if not self._exact:
            # Path resolvers are the only users of these hooks: without any, doing nothing in C is exact.
            self.descend_resolver = operator.is_
            self.ascend_resolver = tuple

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is ScalarNode and implicit[0] and not self._exact:
            tag = self._tags.get(value)
            if tag is None:
                tag = _STR if value and value[0] not in self._starts else super().resolve(kind, value, implicit)
                self._tags[value] = tag
            return tag
        return super().resolve(kind, value, implicit)


class _Fallback(Exception):
    """The lean walk meets something only SafeConstructor builds exactly (aliases, merges, other tags)."""


class _Builder:
    """Builds one document from libyaml's node tree as SafeConstructor would, optionally with positions.

    Mapping values and sequence items that are strings, the bulk of a manifest, are taken inline rather than
    through a call per node."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.constructors = loader.yaml_constructors
        self.seen: set[int] = set()  # collection nodes walked: meeting one twice means an alias

    def scalar(self, node: Any) -> Any:
        tag, value = node.tag, node.value
        if tag == _STR:
            return value
        if tag == _INT and value.isdigit() and value.isascii() and (value[0] != "0" or value == "0"):
            return int(value)
        if tag in _SCALAR_TAGS:
            return self.constructors[tag](self.loader, node)
        raise _Fallback

    def key(self, node: Any) -> Any:
        if type(node) is not ScalarNode or node.tag in _SPECIAL_KEYS:
            raise _Fallback
        return self.scalar(node)

    def enter(self, node: Any, tag: str) -> None:
        marker = id(node)
        if marker in self.seen or node.tag != tag:
            raise _Fallback
        self.seen.add(marker)

    def value(self, node: Any) -> Any:
        kind = type(node)
        if kind is ScalarNode:
            return self.scalar(node)
        if kind is MappingNode:
            self.enter(node, _MAP)
            mapping: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = key_node.value if type(key_node) is ScalarNode and key_node.tag == _STR else self.key(key_node)
                if type(value_node) is ScalarNode and value_node.tag == _STR:
                    mapping[key] = value_node.value
                else:
                    mapping[key] = self.value(value_node)
            return mapping
        if kind is not SequenceNode:
            raise _Fallback
        self.enter(node, _SEQ)
        return [item.value if type(item) is ScalarNode and item.tag == _STR else self.value(item)
                for item in node.value]

    def indexed(self, node: Any, me: int, marks: Marks, problems: list[YamlProblem]) -> Any:
        """`value` that also records where each path starts and reports duplicate keys, in document order.
        `me` is the record of this node's path (a mapping value shares its key's)."""
        kind = type(node)
        if kind is ScalarNode:
            return self.scalar(node)
        if kind is SequenceNode:
            self.enter(node, _SEQ)
            items = []
            for index, item in enumerate(node.value):
                record = marks.add(me, index, item.start_mark)
                is_text = type(item) is ScalarNode and item.tag == _STR
                items.append(item.value if is_text else self.indexed(item, record, marks, problems))
            return items
        if kind is not MappingNode:
            raise _Fallback
        self.enter(node, _MAP)
        mapping: dict[Any, Any] = {}
        names: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value if type(key_node) is ScalarNode and key_node.tag == _STR else self.key(key_node)
            name = key_node.value
            mark = key_node.start_mark
            record = marks.add(me, name, mark)
            if name in names and name != "<<":
                problems.append(YamlProblem(mark.line + 1, mark.column + 1, marks.path(record),
                                            f"duplicate key {name!r}", "yaml.duplicate-key"))
            names.add(name)
            if type(value_node) is ScalarNode:
                mapping[key] = value_node.value if value_node.tag == _STR else self.scalar(value_node)
            else:
                mapping[key] = self.indexed(value_node, record, marks, problems)
        return mapping


def _construct(loader: Any, node: yaml.Node) -> Any:
    try:
        return _Builder(loader).value(node)
    except _Fallback:
        return loader.construct_document(node)


def _construct_indexed(loader: Any, node: yaml.Node,
                       problems: list[YamlProblem]) -> tuple[Any, Mapping[FieldPath, Position]]:
    marks = Marks()
    found: list[YamlProblem] = []
    try:
        body = _Builder(loader).indexed(node, marks.add(-1, 0, node.start_mark), marks, found)
    except (_Fallback, yaml.YAMLError):  # SafeConstructor raises the same error, after the same problems
        positions: dict[FieldPath, Position] = {}
        found = []
        index_positions(node, (), positions, found)
        body = loader.construct_document(node)
        problems.extend(found)
        return body, positions
    problems.extend(found)
    return body, Positions(marks)


def load_documents(path: str, data: bytes | str) -> tuple[list[SourceDoc], list[YamlProblem]]:
    """Parse every document of one file. A syntax error stops the file: the documents before it are kept."""
    docs: list[SourceDoc] = []
    problems: list[YamlProblem] = []
    loader = _Loader(data)
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            body, positions = _construct_indexed(loader, node, problems)
            start = node.start_mark
            if body is not None:  # an empty document between `---` separators is not an object, just noise
                docs.append(SourceDoc(path=path, index=index, line=start.line + 1, body=body,
                                      positions=positions))
            index += 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(part for part in (exc.context, exc.problem) if part) or str(exc)
        problems.append(YamlProblem(line, column, (), f"YAML syntax error: {message}", "yaml.syntax"))
    except yaml.YAMLError as exc:
        problems.append(YamlProblem(1, 1, (), f"YAML error: {exc}", "yaml.syntax"))
    except UnicodeDecodeError as exc:
        problems.append(YamlProblem(1, 1, (), f"not UTF-8 text: {exc.reason}", "yaml.encoding"))
    finally:
        loader.dispose()
    return docs, problems


def _documents(loader: Any, transform: Callable[[yaml.Node], yaml.Node] | None = None) -> Iterator[Any]:
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            document = _construct(loader, transform(node) if transform else node)
            if document is not None:
                yield document
    finally:
        loader.dispose()


def load_plain(data: bytes | str) -> Iterator[Any]:
    """Documents without positions, for files we wrote ourselves."""
    yield from _documents(_Loader(data))


def load_transformed(data: str, transform: Callable[[yaml.Node], yaml.Node]) -> list[Any]:
    """Documents of `data`, each node tree passed through `transform` before construction. Raises
    `yaml.MarkedYAMLError` on a syntax error (the caller knows what the text was rendered from)."""
    return list(_documents(_Loader(data), transform))
