"""YAML in and out, the way Kubernetes reads it.

In: every document of a file with the position of each node (for diagnostics), duplicate keys and syntax errors
reported with libyaml's position. Out: block style, no aliases, no folding, and every string quoted that any
YAML 1.1 (go-yaml, what Kubernetes uses) or YAML 1.2 parser could read as another type: PyYAML alone quotes
`on`, `0755` and `2024-01-01` but leaves `1e3`, `y` and `0o17` bare.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from kratix.documents import FieldPath, Position, SourceDoc

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@dataclass(frozen=True)
class YamlProblem:
    line: int
    column: int
    path: FieldPath
    message: str
    code: str


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


def dump(document: Any) -> bytes:
    return dump_all([document])


def dump_all(documents: Iterable[Any]) -> bytes:
    text = yaml.dump_all(
        list(documents),
        Dumper=_KubeDumper,
        default_flow_style=False,
        sort_keys=False,
        allow_unicode=True,
        width=_WIDE,
        explicit_start=False,
    )
    return text.encode("utf-8")


def dump_sorted(document: Any) -> bytes:
    """For files we generate ourselves (status, provenance): stable regardless of insertion order."""
    text = yaml.dump(document, Dumper=_KubeDumper, default_flow_style=False, sort_keys=True,
                     allow_unicode=True, width=_WIDE)
    return text.encode("utf-8")


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
            positions: dict[FieldPath, Position] = {}
            _index_positions(node, (), positions, problems)
            body = loader.construct_document(node)
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


def load_plain(data: bytes | str) -> Iterator[Any]:
    """Documents without positions, for files we wrote ourselves."""
    for document in yaml.load_all(data, Loader=_Loader):
        if document is not None:
            yield document


def load_transformed(data: str, transform: Callable[[yaml.Node], yaml.Node]) -> list[Any]:
    """Documents of `data`, each node tree passed through `transform` before construction. Raises
    `yaml.MarkedYAMLError` on a syntax error (the caller knows what the text was rendered from)."""
    loader = _Loader(data)
    documents: list[Any] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            document = loader.construct_document(transform(node))
            if document is not None:
                documents.append(document)
    finally:
        loader.dispose()
    return documents
