"""In: the documents of one file, read the way Kubernetes reads them, under limits.

In: the bytes or text of one file. Out: `load_documents` gives each non-empty document as a `SourceDoc` with the
position of every node, plus a `YamlProblem` for each thing Kubernetes would refuse or that could stall a compile,
and never raises for bad input; `load_plain` and `load_transformed` give the documents alone and raise a
`yaml.MarkedYAMLError` on the first problem. Empty documents (between `---` separators) are skipped.

Values are what the API server would hold (`kratix.yamltext.resolve`: go-yaml v2 resolution, then the JSON round
trip): only str, bool, None, int, float, dict with str keys and list come out. Refused, each at its line and
column, the document dropped and the rest of the file read on: a mapping key Kubernetes cannot turn into a string
(null, a mapping or list), a tag other than the core ones (`!!set`, `!!omap`, `!custom`), `.nan`/`.inf`, a
duplicate key, nesting deeper than `limits.MAX_DEPTH`, alias expansion beyond go-yaml's budget (a "billion laughs"
file is refused in time proportional to its size: expanded sizes are counted, never built), a recursive alias,
a document over `limits.MAX_DOCUMENT_CHARS`. Refused for the whole file: more than `limits.MAX_FILE_BYTES`, text
that is not UTF-8, a syntax error (the documents before it are kept).

libyaml composes each document's node tree; a walk here constructs it, recording positions in the same pass.
libyaml's composer recurses in C, so a file that could nest deeper than is safe is first measured with libyaml's
event stream (which does not recurse) and refused before composing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from kratix.model import limits
from kratix.model.documents import FieldPath, Position, SourceDoc
from kratix.yamltext import resolve
from kratix.yamltext.positions import Marks, Positions, YamlProblem

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# libyaml's composer recurses once per nesting level in C; up to here it is known to be safe.
_SAFE_COMPOSE_DEPTH = 2000


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Tags only: a plain scalar is marked for `kratix.yamltext.resolve` to read, a quoted one is a string, so
    no PyYAML implicit resolver runs. Path resolvers are never used, so the hooks for them do nothing."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.descend_resolver = lambda *args: None
        self.ascend_resolver = lambda *args: None

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is ScalarNode:
            return resolve.PLAIN if implicit[0] else resolve.STR
        return resolve.MAP if kind is MappingNode else resolve.SEQ


_SHARED_UP_TO = 64  # characters: the short strings that repeat across objects (kinds, versions, names, enums)


def _shared(value: Any) -> Any:
    """One copy of a short string value for the whole compile, as for keys."""
    return sys.intern(value) if type(value) is str and len(value) <= _SHARED_UP_TO else value


class _Refused(Exception):
    """This document cannot be read as Kubernetes would; it is dropped with this problem."""

    def __init__(self, node: Any, message: str, code: str, path: FieldPath = ()) -> None:
        super().__init__(message)
        mark = node.start_mark
        self.problem = YamlProblem(mark.line + 1, mark.column + 1, path, message, code)
        self.mark = mark


class _Reader:
    """Builds one document from libyaml's node tree as Kubernetes would read it. A node met a second time is an
    alias: its value is copied (later stages may edit one place without the other changing), and what its
    expansion would cost is counted the way go-yaml counts it, from sizes computed once per node."""

    def __init__(self, marks: Marks | None) -> None:
        self.marks = marks
        self.scalars: dict[str, Any] = {}  # plain scalar text -> value: within a file most of them repeat
        self.built: dict[int, Any] = {}  # id(node) -> its value, for aliases
        self.open: set[int] = set()  # collections being built: meeting one again is a recursive alias
        self.sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (decodes, height) of its expansion
        self.decodes = 0
        self.alias_decodes = 0
        self.duplicates: list[YamlProblem] = []

    # --- scalars ---------------------------------------------------------------------------------------------

    def scalar(self, node: Any) -> Any:
        tag, text = node.tag, node.value
        if tag is resolve.PLAIN or tag == resolve.PLAIN:
            value = self.scalars.get(text, _UNSET)
            if value is _UNSET:
                value = self.scalars[text] = _shared(resolve.json_value(resolve.go_value(text)))
        elif tag == resolve.STR:
            return _shared(text)
        elif tag in resolve.SCALAR_TAGS:
            value = resolve.tagged_value(tag, text)
            if not isinstance(value, resolve.ScalarProblem):
                value = resolve.json_value(value)
        else:
            raise _Refused(
                node,
                f"YAML tag {_tag_name(tag)} is not supported: Kubernetes reads only mappings, "
                "lists, strings, numbers, booleans and null",
                "yaml.tag",
            )
        if isinstance(value, resolve.ScalarProblem):
            raise _Refused(node, value.message, "yaml.value")
        return value

    def key(self, node: Any) -> str:
        if type(node) is not ScalarNode:
            raise _Refused(
                node,
                "a mapping key must be a string, number or boolean, not a "
                f"{'mapping' if type(node) is MappingNode else 'list'}",
                "yaml.key",
            )
        if node.tag == resolve.STR:
            return str(node.value)
        if node.tag == resolve.PLAIN:
            raw = resolve.go_value(node.value)
        elif node.tag in resolve.SCALAR_TAGS:
            raw = resolve.tagged_value(node.tag, node.value)
        else:
            raise _Refused(node, f"YAML tag {_tag_name(node.tag)} is not supported on a key", "yaml.tag")
        text = raw if isinstance(raw, resolve.ScalarProblem) else resolve.key_text(raw)
        if isinstance(text, resolve.ScalarProblem):
            raise _Refused(node, text.message, "yaml.key")
        return text

    # --- collections -----------------------------------------------------------------------------------------

    def value(self, node: Any, depth: int, record: int) -> Any:
        kind = type(node)
        if kind is ScalarNode:
            return self.scalar(node)
        marker = id(node)
        if marker in self.built:
            return self.alias(node, depth)
        if marker in self.open:
            raise _Refused(node, "a recursive alias (an anchor used inside itself) cannot be read", "yaml.alias")
        if depth > limits.MAX_DEPTH:
            raise _Refused(node, f"nested more than {limits.MAX_DEPTH} levels deep", "yaml.depth")
        self.open.add(marker)
        self.decodes += 1
        if kind is MappingNode:
            if node.tag != resolve.MAP:
                raise _Refused(
                    node,
                    f"YAML tag {_tag_name(node.tag)} is not supported: Kubernetes reads only "
                    "mappings, lists, strings, numbers, booleans and null",
                    "yaml.tag",
                )
            built: Any = self.mapping(node, depth, record)
        else:
            if node.tag != resolve.SEQ:
                raise _Refused(
                    node,
                    f"YAML tag {_tag_name(node.tag)} is not supported: Kubernetes reads only "
                    "mappings, lists, strings, numbers, booleans and null",
                    "yaml.tag",
                )
            built = self.sequence(node, depth, record)
        self.open.discard(marker)
        self.built[marker] = built
        return built

    def mapping(self, node: Any, depth: int, record: int) -> dict[str, Any]:
        mapping: dict[str, Any] = {}
        merged: list[tuple[Any, Any]] = []
        marks = self.marks
        for key_node, value_node in node.value:
            if type(key_node) is ScalarNode and key_node.tag == resolve.PLAIN and key_node.value == "<<":
                merged.append((key_node, value_node))
                continue
            # Interned: every object of a kind spells the same keys, and a compile holds hundreds of thousands of
            # objects (one copy of each key; pickling to and from worker processes keeps them shared).
            key = sys.intern(self.key(key_node))
            child = record
            if marks is not None:
                child = marks.add(record, key, key_node.start_mark)
            if key in mapping:
                mark = key_node.start_mark
                path = marks.path(child) if marks is not None else (key,)
                self.duplicates.append(
                    YamlProblem(mark.line + 1, mark.column + 1, path, f"duplicate key {key!r}", "yaml.duplicate-key")
                )
            if type(value_node) is ScalarNode:
                self.decodes += 1
                mapping[key] = _shared(value_node.value) if value_node.tag == resolve.STR else self.scalar(value_node)
            else:
                mapping[key] = self.value(value_node, depth + 1, child)
        for key_node, value_node in merged:
            self.merge(mapping, key_node, value_node, depth)
        return mapping

    def merge(self, mapping: dict[str, Any], key_node: Any, value_node: Any, depth: int) -> None:
        """`<<: *base` or `<<: [*a, *b]`: keys written here win, then earlier merged mappings over later ones."""
        sources = value_node.value if type(value_node) is SequenceNode else [value_node]
        for source in sources:
            if type(source) is not MappingNode:
                raise _Refused(key_node, "a merge key (<<) takes a mapping or a list of mappings", "yaml.merge")
            if id(source) in self.built:
                merged = self.alias(source, depth)
            else:
                marks, self.marks = self.marks, None  # positions are for what the document spells out
                merged = self.value(source, depth + 1, 0)
                self.marks = marks
            for key, item in merged.items():
                mapping.setdefault(key, item)

    def sequence(self, node: Any, depth: int, record: int) -> list[Any]:
        items = []
        marks = self.marks
        for index, item in enumerate(node.value):
            child = marks.add(record, index, item.start_mark) if marks is not None else record
            if type(item) is ScalarNode:
                self.decodes += 1
                items.append(item.value if item.tag == resolve.STR else self.scalar(item))
            else:
                items.append(self.value(item, depth + 1, child))
        return items

    # --- aliases ---------------------------------------------------------------------------------------------

    def alias(self, node: Any, depth: int) -> Any:
        decodes, height = self.size(node)
        if depth + height - 1 > limits.MAX_DEPTH:
            raise _Refused(node, f"nested more than {limits.MAX_DEPTH} levels deep (through an alias)", "yaml.depth")
        self.decodes += decodes
        self.alias_decodes += decodes
        if (
            self.alias_decodes > limits.ALIAS_MIN_COUNT
            and self.decodes > limits.ALIAS_MIN_DECODES
            and self.alias_decodes / self.decodes > _allowed_alias_ratio(self.decodes)
        ):
            raise _Refused(
                node,
                f"the document contains excessive aliasing: {self.alias_decodes:,} of its first "
                f"{self.decodes:,} nodes come from aliases (Kubernetes' YAML reader refuses it too)",
                "yaml.aliases",
            )
        return _copy(self.built[id(node)])

    def size(self, node: Any) -> tuple[int, int]:
        """(nodes, height) of `node` expanded, counted without expanding: each node's figure is computed once."""
        stack = [(node, False)]
        sizes = self.sizes
        while stack:
            current, children_done = stack.pop()
            marker = id(current)
            if marker in sizes:
                continue
            if type(current) is ScalarNode:
                sizes[marker] = (1, 0)
                continue
            children = [c for pair in current.value for c in pair] if type(current) is MappingNode else current.value
            if children_done:
                decodes, height = 1, 1
                for child in children:
                    child_decodes, child_height = sizes[id(child)]
                    decodes += child_decodes
                    height = max(height, child_height + 1)
                sizes[marker] = (decodes, height)
            else:
                stack.append((current, True))
                stack.extend((child, False) for child in children if id(child) not in sizes)
        return sizes[id(node)]


_UNSET = object()


def _copy(value: Any) -> Any:
    if type(value) is dict:
        return {key: _copy(item) for key, item in value.items()}
    if type(value) is list:
        return [_copy(item) for item in value]
    return value


def _allowed_alias_ratio(decodes: int) -> float:
    low, high = limits.ALIAS_RATIO_RANGE
    small, large = limits.ALIAS_RATIO_BOUNDS
    if decodes <= low:
        return small
    if decodes >= high:
        return large
    return small - (small - large) * (decodes - low) / (high - low)


def _tag_name(tag: str) -> str:
    return "!!" + tag.rsplit(":", 1)[1] if tag.startswith("tag:yaml.org,2002:") else tag


# --- the stream ----------------------------------------------------------------------------------------------


# What libyaml says (0.2.6, in PyYAML 6.0.4's wheels) when a file nests deeper than its own limit (1,000 levels).
_LIBYAML_DEPTH_LIMIT = "exceeded maximum nesting depth"


def _too_deep(text: str | bytes) -> tuple[int, YamlProblem] | None:
    """None when libyaml may compose every document of `text` safely, else the index of the first document that
    nests too deep, and where.

    No document nests deeper than a line is long (block style), plus its flow brackets: when even that bound is
    safe nothing is measured; otherwise libyaml's event stream, which does not recurse, is walked once."""
    lines = text.splitlines() or [text]
    brackets = (b"[", b"{") if isinstance(text, bytes) else ("[", "{")
    bound = 2 * (max(map(len, lines)) + 1) + text.count(brackets[0]) + text.count(brackets[1])  # type: ignore[arg-type]
    if bound <= _SAFE_COMPOSE_DEPTH:
        return None
    loader = _BaseLoader(text)
    depth = index = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > limits.MAX_DEPTH:
                    start = event.start_mark
                    line, column = (start.line + 1, start.column + 1) if start else (1, 1)
                    return index, YamlProblem(
                        line, column, (), f"nested more than {limits.MAX_DEPTH} levels deep", "yaml.depth"
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            elif isinstance(event, yaml.DocumentEndEvent):
                index += 1
    except yaml.YAMLError:
        return None  # the composer meets the same syntax error and reports it with the documents before it
    finally:
        loader.dispose()
    return None


def _documents(
    text: str | bytes,
    marks_wanted: bool,
    problems: list[YamlProblem],
    transform: Callable[[yaml.Node], yaml.Node] | None = None,
) -> Iterator[tuple[Any, Mapping[FieldPath, Position], int, int]]:
    """(body, positions, index, line) of each non-empty document; every problem is appended to `problems`."""
    size = len(text)
    if size > limits.MAX_FILE_BYTES:
        problems.append(
            YamlProblem(
                1,
                1,
                (),
                f"the file is {size:,} bytes; files over {limits.MAX_FILE_BYTES:,} bytes are not read",
                "yaml.too-large",
            )
        )
        return
    deep = _too_deep(text)
    loader = _Loader(text)
    try:
        index = 0
        while loader.check_node():
            if deep is not None and deep[0] == index:
                problems.append(deep[1])  # composing it could overflow the C stack: the rest is not read
                return
            node = loader.get_node()
            if node is None:
                break
            if transform is not None:
                node = transform(node)
            found = _document(node, marks_wanted, problems)
            if found is not None:
                yield (*found, index, node.start_mark.line + 1)
            index += 1
    except yaml.reader.ReaderError as exc:
        problems.append(
            YamlProblem(1, 1, (), f"not UTF-8 text, or a character YAML does not allow: {exc.reason}", "yaml.encoding")
        )
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        if _LIBYAML_DEPTH_LIMIT in (exc.problem or ""):
            # Newer libyaml builds stop at their own nesting limit while scanning ahead of the event stream, before
            # ours is met: the same refusal, reported in our words.
            problems.append(
                YamlProblem(line, column, (), f"nested more than {limits.MAX_DEPTH} levels deep", "yaml.depth")
            )
            return
        message = " ".join(part for part in (exc.context, exc.problem) if part) or str(exc)
        problems.append(YamlProblem(line, column, (), f"YAML syntax error: {message}", "yaml.syntax"))
    except yaml.YAMLError as exc:
        problems.append(YamlProblem(1, 1, (), f"YAML error: {exc}", "yaml.syntax"))
    except UnicodeDecodeError as exc:
        problems.append(YamlProblem(1, 1, (), f"not UTF-8 text: {exc.reason}", "yaml.encoding"))
    finally:
        loader.dispose()


def _document(
    node: Any, marks_wanted: bool, problems: list[YamlProblem]
) -> tuple[Any, Mapping[FieldPath, Position]] | None:
    span = node.end_mark.index - node.start_mark.index
    if span > limits.MAX_DOCUMENT_CHARS:
        mark = node.start_mark
        problems.append(
            YamlProblem(
                mark.line + 1,
                mark.column + 1,
                (),
                f"the document is {span:,} characters; documents over "
                f"{limits.MAX_DOCUMENT_CHARS:,} are not read (the API server takes at most "
                "3 MiB)",
                "yaml.too-large",
            )
        )
        return None
    marks = Marks() if marks_wanted else None
    reader = _Reader(marks)
    try:
        root = marks.add(-1, 0, node.start_mark) if marks is not None else 0
        body = reader.value(node, 1, root)
    except _Refused as refused:
        problems.append(refused.problem)
        return None
    if reader.duplicates:
        problems.extend(reader.duplicates)
        return None
    if body is None:  # an empty document between `---` separators is not an object, just noise
        return None
    return body, (Positions(marks) if marks is not None else {})


def load_documents(path: str, data: bytes | str) -> tuple[list[SourceDoc], list[YamlProblem]]:
    """Parse every document of one file; see the module docstring for what is refused."""
    problems: list[YamlProblem] = []
    docs = [
        SourceDoc(path=path, index=index, line=line, body=body, positions=positions)
        for body, positions, index, line in _documents(data, True, problems)
    ]
    return docs, problems


def _raise_first(problems: list[YamlProblem]) -> None:
    if problems:
        problem = problems[0]
        # No buffer: the message names the line and column without quoting the text.
        mark = yaml.Mark("<input>", 0, problem.line - 1, problem.column - 1, None, None)  # type: ignore[arg-type]
        raise yaml.MarkedYAMLError(problem=problem.message, problem_mark=mark)


def load_plain(data: bytes | str) -> Iterator[Any]:
    """The documents of `data` without positions; raises `yaml.MarkedYAMLError` on the first problem."""
    problems: list[YamlProblem] = []
    bodies = [body for body, _, _, _ in _documents(data, False, problems)]
    _raise_first(problems)
    yield from bodies


Composed = dict[str, tuple[Any, ...]]  # text -> the node tree of each of its documents (`load_transformed`)


def load_transformed(
    data: str, transform: Callable[[yaml.Node], yaml.Node], composed: Composed | None = None
) -> list[Any]:
    """Documents of `data`, each node tree passed through `transform` before construction. Raises
    `yaml.MarkedYAMLError` on the first problem (the caller knows what the text was rendered from).

    With `composed` (the caller's, e.g. one per compile), the node trees of a text are composed once and handed to
    every call with the same text, so `transform` must leave the nodes it is given as they are (and return new
    ones). A template renders the same text for every request (its values are tokens, put back by `transform`), so
    most calls skip libyaml altogether."""
    problems: list[YamlProblem] = []
    nodes = _composed(data, composed) if composed is not None else None
    if nodes is None:  # a problem composing it: read as any file is, to report it the same way
        bodies = [body for body, _, _, _ in _documents(data, False, problems, transform)]
    else:
        documents = (_document(transform(node), False, problems) for node in nodes)
        bodies = [found[0] for found in documents if found is not None]
    _raise_first(problems)
    return bodies


_COMPOSED_TEXTS = 256  # distinct texts kept (the rendered templates of a platform); then it starts over
_COMPOSED_CHARS = 64 * 1024  # longer texts are composed each time


def _composed(text: str, composed: Composed) -> tuple[Any, ...] | None:
    """The node trees of `text`'s documents, composed once per distinct text (kept in `composed`); None when
    composing finds a problem (or could: a text nested deeper than is safe)."""
    found = composed.get(text)
    if found is not None:
        return found
    if len(text) > _COMPOSED_CHARS or _too_deep(text) is not None:
        return None
    loader = _Loader(text)
    nodes = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            nodes.append(node)
    except (yaml.YAMLError, UnicodeDecodeError):
        return None
    finally:
        loader.dispose()
    if len(composed) >= _COMPOSED_TEXTS:
        composed.clear()
    found = composed[text] = tuple(nodes)
    return found
