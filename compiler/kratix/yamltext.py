"""YAML in and out, the way Kubernetes reads it.

In: every document of a file with the position of each node (for diagnostics), duplicate keys and
syntax errors reported with libyaml's position. Out: block style, no aliases, no folding, and every string
quoted that any YAML 1.1 (go-yaml, what Kubernetes uses) or YAML 1.2 parser could read as another type:
PyYAML alone quotes `on`, `0755` and `2024-01-01` but leaves `1e3`, `y` and `0o17` bare.

Both directions have a fast path for the JSON-like data manifests are made of, and fall back to PyYAML for
anything else, so that the fast path never changes what a document means:
- Out: our own emitter for dict (str, int, float, bool or None keys), list, str, int, float, bool and None.
  PyYAML's representer, serializer and resolver are Python even with libyaml's emitter and cost ~150 us per
  small manifest. A document holding anything else (dates, bytes, subclasses, keys longer than 128 bytes or
  spanning lines, a scalar root) makes the whole call go through PyYAML as before.
- In: libyaml composes the node tree; a lean walk constructs it (and records positions in the same pass) for
  the tags `safe_load` builds, delegating non-trivial scalars to SafeConstructor itself. Aliases, merge keys,
  `=` keys, collection-valued keys and any other tag send the document through SafeConstructor.
"""

from __future__ import annotations

import contextlib
import json
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from kratix.documents import FieldPath, Position, SourceDoc

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@dataclass(frozen=True)
class YamlProblem:
    line: int
    column: int
    path: FieldPath
    message: str
    code: str


# --- out: the PyYAML path, for documents the fast emitter does not take -------------------------------------

class _KubeDumper(_BaseDumper):  # type: ignore[misc, valid-type]
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Multi-line text (scripts, config files) reads best as a literal block; libyaml falls back to quoting
    # where a block cannot hold the value exactly (trailing spaces, special characters).
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_KubeDumper.add_representer(str, _represent_str)


# Scalars other parsers read as non-strings that PyYAML's YAML 1.1 resolver reads as strings. Registering them
# as implicit floats/bools makes the emitter quote any *string* that looks like them.
_OTHER_PARSERS_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)$")
_OTHER_PARSERS_INT = re.compile(r"^(?:0o[0-7]+|[-+]?0[xX][0-9a-fA-F]+)$")
_OTHER_PARSERS_BOOL = re.compile(r"^(?:y|Y|n|N)$")
_KubeDumper.add_implicit_resolver("tag:yaml.org,2002:float", _OTHER_PARSERS_FLOAT, list("-+.0123456789"))
_KubeDumper.add_implicit_resolver("tag:yaml.org,2002:int", _OTHER_PARSERS_INT, list("-+0"))
_KubeDumper.add_implicit_resolver("tag:yaml.org,2002:bool", _OTHER_PARSERS_BOOL, list("yYnN"))

_WIDE = 1 << 30


def _dump_with_pyyaml(documents: list[Any], *, sort_keys: bool) -> str:
    return yaml.dump_all(documents, Dumper=_KubeDumper, default_flow_style=False, sort_keys=sort_keys,
                         allow_unicode=True, width=_WIDE, explicit_start=False)


# --- out: the fast emitter ---------------------------------------------------------------------------------

# A plain scalar is emitted only when it matches this allow-list: printable, no `#`, no flow indicators, a `:`
# only when another non-space character follows, single words separated by spaces. The first character and the
# reserved/number-like checks below are applied on top.
_PLAIN_WORD = r"(?:[!-\"$-9;-Z\\^-z|~\u00a1-\ufffd]|:(?=[!-\"$-Z\\^-z|~\u00a1-\ufffd]))+"
_PLAIN = re.compile(rf"{_PLAIN_WORD}(?: +{_PLAIN_WORD})*")
# The common case in one match (a subset of the above, written to match fast): ASCII, starts with a letter,
# `_`, `/` or `$`, colons only between word characters, not a reserved word.
_SIMPLE_CHAR = r"[!-\"$-9;-Z\\^-z|~]"
# Or a quantity like `100m`, `128Mi` or `30s`: a letter no number syntax uses follows the digits.
_SIMPLE = re.compile(rf"(?!(?i:y|n|yes|no|true|false|on|off|null)\Z)[A-Za-z_/$]{_SIMPLE_CHAR}*"
                     rf"(?::+{_SIMPLE_CHAR}+)*(?: +{_SIMPLE_CHAR}+(?::+{_SIMPLE_CHAR}+)*)*"
                     r"|[0-9][0-9.]*[g-hj-mp-su-wyG-HJ-MP-SU-WY][A-Za-z0-9]*")
# Every word any parser we care about reads as a bool or null, in any letter case.
_RESERVED = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null"})
# Characters that can make up an int, float, timestamp, sexagesimal, `.inf` or `.nan` in YAML 1.1 (spec,
# PyYAML, go-yaml v2) or YAML 1.2: a string that starts like a number and holds nothing else is quoted.
_NUMBERISH = frozenset("0123456789abcdefABCDEFxXoObB_.:+- tTzZiInN")
_SIGNS = frozenset(".+-_")
# What libyaml (and so YAML) prints verbatim inside quotes; a line break other than \n ends single-line text.
_QUOTABLE = re.compile("[\x20-\x7e\u00a0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd"
                       "\U00010000-\U0010ffff]*")
# Needs an escape in double quotes beyond JSON's: C1 controls, YAML 1.1 line breaks, BOM, surrogates.
_ESCAPE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff\ufffe\uffff]")
_MAX_SIMPLE_KEY = 128  # bytes: longer keys are written as `? key` by libyaml; leave those to PyYAML
_LINE_BREAKS = ("\n", "\r", "\x85", "\u2028", "\u2029")


class _Unsupported(Exception):
    """The fast emitter cannot write this data exactly as PyYAML would mean it."""


def _plain_ok(text: str) -> bool:
    if not _PLAIN.fullmatch(text) or not (text.isascii() or text.isprintable()):
        return False
    first = text[0]
    if first.isalpha() or first in "_/$":
        return text.lower() not in _RESERVED
    if first not in "0123456789.+-" or text.startswith(("---", "...")) or text[:2] == "- ":
        return False
    if text == "-":
        return False
    if _NUMBERISH.issuperset(text):
        lowered = text.lower()
        numeric = any(c.isdigit() for c in text) or "inf" in lowered or "nan" in lowered
        return not (numeric or _SIGNS.issuperset(text))
    return True


def _quoted(text: str) -> str:
    if _QUOTABLE.fullmatch(text):
        return "'" + text.replace("'", "''") + "'"
    escaped = json.dumps(text, ensure_ascii=False)
    return _ESCAPE.sub(lambda m: f"\\u{ord(m.group()):04x}", escaped)


def _inline_str(text: str) -> str:
    return text if _plain_ok(text) else _quoted(text)


def _block_ok(text: str) -> bool:
    # A literal block holds text exactly only when its indentation and line ends are unambiguous: no leading
    # space or break (would need an indentation indicator), no trailing spaces, nothing YAML cannot print raw.
    return (text[0] not in " \n" and " \n" not in text and not text.endswith(" ") and "\t" not in text
            and all(_QUOTABLE.fullmatch(line) for line in text.split("\n")))


def _float_text(value: float) -> str:
    if value != value:
        return ".nan"
    if value in (float("inf"), float("-inf")):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value).lower()
    # `1e+16` is an int or a string to YAML 1.1 parsers; `1.0e+16` is a float everywhere.
    return text.replace("e", ".0e", 1) if "." not in text and "e" in text else text


class _Emitter:
    """One dump call: the output parts and libyaml's `...` bookkeeping."""

    def __init__(self, *, sort_keys: bool) -> None:
        self.parts: list[str] = []
        self.sort_keys = sort_keys
        self.open_ended = False  # a `|+` block was the last literal written: the stream must end with `...`

    def document(self, root: Any, *, first: bool) -> None:
        self.open_ended = False
        kind = type(root)
        if kind is not dict and kind is not list:
            raise _Unsupported
        if not root:
            self.parts.append(("{}\n" if kind is dict else "[]\n") if first else
                              ("--- {}\n" if kind is dict else "--- []\n"))
            return
        if not first:
            self.parts.append("---\n")
        if kind is dict:
            self.mapping(root, "", "")
        else:
            self.sequence(root, "", "")

    def mapping(self, mapping: dict[Any, Any], lead: str, indent: str) -> None:
        # The hot loop of a dump: common keys and values take one regex match and one append.
        parts, inner, simple = self.parts, indent + "  ", _SIMPLE.fullmatch
        items: Iterable[tuple[Any, Any]] = mapping.items()
        if self.sort_keys:
            with contextlib.suppress(TypeError):  # PyYAML keeps insertion order when keys do not compare
                items = sorted(items, key=itemgetter(0))
        append = parts.append
        for key, value in items:
            text = key if type(key) is str and simple(key) and len(key) <= _MAX_SIMPLE_KEY else _key_text(key)
            kind = type(value)
            if kind is str:
                append(f"{lead}{text}: {value if simple(value) else self.string(value, inner)}\n")
            elif kind is dict:
                if value:
                    parts.append(f"{lead}{text}:\n")
                    self.mapping(value, inner, inner)
                else:
                    parts.append(f"{lead}{text}: {{}}\n")
            elif kind is list:
                if value:
                    parts.append(f"{lead}{text}:\n")
                    self.sequence(value, indent, indent)  # libyaml's indentless sequence under a key
                else:
                    parts.append(f"{lead}{text}: []\n")
            else:
                parts.append(f"{lead}{text}: {_other_scalar(value)}\n")
            lead = indent

    def sequence(self, items: list[Any], lead: str, indent: str) -> None:
        parts, inner, simple = self.parts, indent + "  ", _SIMPLE.fullmatch
        for item in items:
            kind = type(item)
            if kind is str:
                parts.append(f"{lead}- {item if simple(item) else self.string(item, inner)}\n")
            elif kind is dict and item:
                self.mapping(item, lead + "- ", inner)
            elif kind is list and item:
                self.sequence(item, lead + "- ", inner)
            elif kind is dict:
                parts.append(f"{lead}- {{}}\n")
            elif kind is list:
                parts.append(f"{lead}- []\n")
            else:
                parts.append(f"{lead}- {_other_scalar(item)}\n")
            lead = indent

    def string(self, text: str, indent: str) -> str:
        if "\n" not in text or not _block_ok(text):
            return _inline_str(text)
        lines = text.split("\n")
        if lines[-1]:
            chomp = "-"
        else:
            lines.pop()
            chomp = "+" if not lines[-1] else ""
        self.open_ended = chomp == "+"
        body = "\n".join(indent + line if line else line for line in lines)
        return f"|{chomp}\n{body}"


def _key_text(key: Any) -> str:
    if type(key) is not str:
        text = _other_scalar(key)
    elif any(brk in key for brk in _LINE_BREAKS):
        raise _Unsupported
    else:
        text = _inline_str(key)
    if len(text) > _MAX_SIMPLE_KEY // 4 and len(str(key).encode("utf-8", "surrogatepass")) > _MAX_SIMPLE_KEY:
        raise _Unsupported
    return text


def _other_scalar(value: Any) -> str:
    kind = type(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if value is None:
        return "null"
    if kind is float:
        return _float_text(value)
    raise _Unsupported


def _emit(documents: list[Any], *, sort_keys: bool) -> str:
    try:
        emitter = _Emitter(sort_keys=sort_keys)
        for index, document in enumerate(documents):
            emitter.document(document, first=index == 0)
    except _Unsupported:
        return _dump_with_pyyaml(documents, sort_keys=sort_keys)
    if emitter.open_ended:
        emitter.parts.append("...\n")
    return "".join(emitter.parts)


def dump(document: Any) -> bytes:
    return dump_all([document])


def dump_all(documents: Iterable[Any]) -> bytes:
    return _emit(list(documents), sort_keys=False).encode("utf-8")


def dump_sorted(document: Any) -> bytes:
    """For files we generate ourselves (status, provenance): stable regardless of insertion order."""
    return _emit([document], sort_keys=True).encode("utf-8")


# --- in ----------------------------------------------------------------------------------------------------

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

    def indexed(self, node: Any, me: int, marks: _Marks, problems: list[YamlProblem]) -> Any:
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


class _Marks:
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


class _Positions(Mapping[FieldPath, Position]):
    """The read-only view `SourceDoc.positions` gets of a document's `_Marks`, built on first use."""

    def __init__(self, marks: _Marks) -> None:
        self._marks: _Marks | None = marks
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


def _construct(loader: Any, node: yaml.Node) -> Any:
    try:
        return _Builder(loader).value(node)
    except _Fallback:
        return loader.construct_document(node)


def _construct_indexed(loader: Any, node: yaml.Node,
                       problems: list[YamlProblem]) -> tuple[Any, Mapping[FieldPath, Position]]:
    marks = _Marks()
    found: list[YamlProblem] = []
    try:
        body = _Builder(loader).indexed(node, marks.add(-1, 0, node.start_mark), marks, found)
    except (_Fallback, yaml.YAMLError):  # SafeConstructor raises the same error, after the same problems
        positions: dict[FieldPath, Position] = {}
        found = []
        _index_positions(node, (), positions, found)
        body = loader.construct_document(node)
        problems.extend(found)
        return body, positions
    problems.extend(found)
    return body, _Positions(marks)


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


def _index_positions(node: yaml.Node, path: FieldPath, positions: dict[FieldPath, Position],
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
        _index_positions(node, path, positions, problems)


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
