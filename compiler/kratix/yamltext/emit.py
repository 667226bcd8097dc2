"""Out: Python data to YAML text, the way Kubernetes reads it.

In: the documents of one file. Out: UTF-8 bytes in block style, no aliases, no folding, every string quoted that
any YAML 1.1 (go-yaml, what Kubernetes uses) or YAML 1.2 parser could read as another type: PyYAML alone quotes
`on`, `0755` and `2024-01-01` but leaves `1e3`, `y` and `0o17` bare.

Our own emitter writes dict (str, int, float, bool or None keys), list, str, int, float, bool and None.
PyYAML's representer, serializer and resolver are Python even with libyaml's emitter and cost ~150 us per small
manifest. A document holding anything else (dates, bytes, subclasses, keys longer than 128 bytes or spanning
lines, a scalar root) makes the whole call go through PyYAML (`_KubeDumper`) instead, so that the fast path never
changes what a document means. Refuses only what PyYAML refuses: an object it cannot represent raises
`yaml.representer.RepresenterError`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from operator import itemgetter
from typing import Any

import yaml

from kratix.yamltext.scalars import SIMPLE, block_ok, float_text, inline_str, plain_ok

_BaseDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


# --- out: the PyYAML path, for documents the fast emitter does not take -------------------------------------


class _KubeDumper(_BaseDumper):  # type: ignore[misc, valid-type]
    def ignore_aliases(self, data: Any) -> bool:
        return True

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        # Asked whether `value` may stand plain: only where no parser we care about (go-yaml v2 and v3, PyYAML,
        # YAML 1.2) reads it as anything but this string; PyYAML's own resolvers know only YAML 1.1 as it reads it.
        tag = super().resolve(kind, value, implicit)
        if kind is yaml.ScalarNode and implicit[0] and tag == _STR and not plain_ok(value):
            return _NOT_PLAIN
        return tag


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Multi-line text (scripts, config files) reads best as a literal block; libyaml falls back to quoting
    # where a block cannot hold the value exactly (trailing spaces, special characters).
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_KubeDumper.add_representer(str, _represent_str)
_STR = "tag:yaml.org,2002:str"
_NOT_PLAIN = "tag:kratix.io,2024:not-plain"

_WIDE = 1 << 30


def _dump_with_pyyaml(documents: list[Any], *, sort_keys: bool) -> str:
    return yaml.dump_all(
        documents,
        Dumper=_KubeDumper,
        default_flow_style=False,
        sort_keys=sort_keys,
        allow_unicode=True,
        width=_WIDE,
        explicit_start=False,
    )


# --- out: the fast emitter ---------------------------------------------------------------------------------

_MAX_SIMPLE_KEY = 128  # bytes: longer keys are written as `? key` by libyaml; leave those to PyYAML
_LINE_BREAKS = ("\n", "\r", "\x85", "\u2028", "\u2029")


class _Unsupported(Exception):
    """The fast emitter cannot write this data exactly as PyYAML would mean it."""


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
            self.parts.append(
                ("{}\n" if kind is dict else "[]\n") if first else ("--- {}\n" if kind is dict else "--- []\n")
            )
            return
        if not first:
            self.parts.append("---\n")
        if kind is dict:
            self.mapping(root, "", "")
        else:
            self.sequence(root, "", "")

    def mapping(self, mapping: dict[Any, Any], lead: str, indent: str) -> None:
        # The hot loop of a dump: common keys and values take one regex match and one append.
        parts, inner, simple = self.parts, indent + "  ", SIMPLE.fullmatch
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
        parts, inner, simple = self.parts, indent + "  ", SIMPLE.fullmatch
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
        if "\n" not in text or not block_ok(text):
            return inline_str(text)
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
        text = inline_str(key)
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
        return float_text(value)
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
