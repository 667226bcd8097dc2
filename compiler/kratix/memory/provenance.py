"""Provenance: why every file of the output exists, kept in `.kratix/provenance/<destination>.jsonl`.

One shard per destination, so a change rewrites the shards of the destinations it touches, not a file that
grows with the whole platform. A format line, then one JSON object per line, sorted by path, so that `git diff`
reads like the change it records: `{"path", "owner", "destination", "promise", "request", "pipeline", "source",
"commit", "objects"}`, plus `"sandbox": "none"` on a file a command step wrote unsandboxed (`--unsandboxed`) and
`"images"` (`{image: content id}`) on a file image steps wrote. `path` is the file's path in the output tree
(`kratix.model.paths`), `destination` the name of the Destination it was written for, and `objects` the Kubernetes
objects it holds (none for a file delivered as written). `commit` is the input commit that produced the file's
current content: a file whose bytes did not change keeps the commit it had, so re-publishing an unchanged output
at a newer input commit changes nothing. Format 2 named destinations by their folder; its shards are read, and
`destinations_by_path` turns those folders into names.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from kratix.model import paths

GENERATED = "kratix"  # the owner of files the layout generates itself (kustomizations, request namespaces)


@dataclass(frozen=True, slots=True)
class Entry:
    path: str
    owner: str  # "Promise <name>", "<Kind> <namespace>/<name>" or "kratix"
    destination: str | None = None  # the name of the Destination it was written for
    promise: str | None = None
    request: str | None = None
    pipeline: str | None = None
    source: str | None = None  # the template or file it was rendered from
    commit: str | None = None  # the input commit that produced this content; None: an uncommitted work tree
    objects: tuple[str, ...] = field(default=())  # Kind[.group]/[namespace/]name of each object in the file
    sandbox: str | None = None  # "none": a command step that wrote it ran without a sandbox
    images: tuple[tuple[str, str], ...] = ()  # (image, content id) of the images that ran to write it
    line: str = field(default="", compare=False, repr=False)  # as read, reused when nothing changed


_FIELDS = ("path", "owner", "destination", "promise", "request", "pipeline", "source", "commit", "sandbox")
FORMAT = 3
_HEADER = json.dumps({"format": FORMAT, "kratix": "provenance"}, sort_keys=True, separators=(",", ":"))
_HEADER_2 = json.dumps({"format": 2, "kratix": "provenance"}, sort_keys=True, separators=(",", ":"))
# Values many entries share (every entry its commit, a request's files their owner, a destination's files its name):
# read once per entry, they are interned as they are decoded, one copy each (200,000 entries at 100,000 requests).
# The path too: the previous output's listing (`gitio.file_oids`) holds it already.
_SHARED = ("path", "owner", "destination", "promise", "request", "pipeline", "source", "commit", "sandbox")


def shard_of(entry: Entry) -> str:
    return paths.provenance_shard(entry.destination or "")


def shards(entries: Iterable[Entry]) -> dict[str, list[Entry]]:
    """Entries by shard file, each shard sorted by path."""
    grouped: dict[str, list[Entry]] = {}
    for entry in entries:
        grouped.setdefault(shard_of(entry), []).append(entry)
    return {path: sorted(group, key=lambda e: e.path) for path, group in grouped.items()}


def encode(entries: Iterable[Entry]) -> bytes:
    """One shard's text."""
    lines = []
    for entry in sorted(entries, key=lambda e: e.path):
        if entry.line:
            lines.append(entry.line)
            continue
        record: dict[str, Any] = {k: v for k in _FIELDS if (v := getattr(entry, k)) is not None}
        record["objects"] = list(entry.objects)
        if entry.images:
            record["images"] = dict(entry.images)
        lines.append(json.dumps(record, sort_keys=True, separators=(",", ":")))
    return ("\n".join([_HEADER, *lines]) + "\n").encode() if lines else b""


def decode_shard(
    data: bytes, *, destinations_by_path: Mapping[str, str] | None = None, share: bool = True
) -> dict[str, Entry]:
    """Raises ValueError (with why) for anything but a shard of this format (or of format 2, whose destination
    folders `destinations_by_path` names). `share`: intern the repeated values (`_SHARED`), for a compile that
    holds every shard; interning costs a third more time, which a compile that reads one or two shards saves."""
    lines = [line for line in data.decode().splitlines() if line.strip()]
    if lines and lines[0] == _HEADER_2:
        older = decode_shard(("\n".join([_HEADER, *lines[1:]]) + "\n").encode())
        names = destinations_by_path or {}
        return {
            path: replace(entry, line="", destination=names.get(entry.destination or "", entry.destination))
            for path, entry in older.items()
        }
    if not lines or lines[0] != _HEADER:
        raise ValueError("not a provenance shard of format " + str(FORMAT))
    records = json.loads("[" + ",".join(lines[1:]) + "]")  # one parse for all lines: tens of thousands of them
    entries = (_entry(line, record, share) for line, record in zip(lines[1:], records, strict=True))
    return {entry.path: entry for entry in entries}


def _entry(line: str, record: Any, share: bool) -> Entry:
    """One decoded line as an entry; ValueError for what kratix does not write."""
    if (
        not isinstance(record, dict)
        or not isinstance(record.get("path"), str)
        or not isinstance(record.get("owner"), str)
    ):
        raise ValueError("an entry is not an object with a path and an owner")
    objects, images = record.get("objects") or [], record.get("images") or {}
    # Valid JSON of another shape (edited by hand) fails here, as an unreadable shard, not deep in a compile
    # (`str.join` checks that every item is text, in C: a one-request compile decodes thousands of entries).
    if not _texts_where_kratix_writes_text(record, objects, images):
        raise ValueError(f"{record['path']}: a value of another type than kratix writes")
    record["objects"] = tuple(objects)
    record["images"] = tuple(sorted(images.items()))
    for key in _SHARED if share else ():
        value = record.get(key)
        if type(value) is str:
            record[key] = sys.intern(value)
    try:
        return Entry(**record, line=line)
    except TypeError as exc:
        raise ValueError(f"unreadable entry: {exc}") from exc


def _texts_where_kratix_writes_text(record: dict[str, Any], objects: Any, images: Any) -> bool:
    try:
        "".join(objects if type(objects) is list else [None])  # type: ignore[list-item]
        "".join(images.values() if type(images) is dict else [None])  # type: ignore[list-item]
        "".join([value for value in map(record.get, _SHARED) if value is not None])
    except TypeError:
        return False
    return True


def settle_commits(
    entries: Iterable[Entry], *, unchanged: Callable[[str], bool], previous: Mapping[str, Entry], commit: str | None
) -> list[Entry]:
    """Stamp each entry with the commit that produced its bytes: the previous one when `unchanged(path)`."""
    settled = []
    for entry in entries:
        before = previous.get(entry.path)
        if entry is before:  # carried over as it was
            settled.append(before)
        elif before is not None and unchanged(entry.path):
            same = replace(entry, commit=before.commit)
            settled.append(before if same == before else replace(same, line=""))  # `line` is not compared
        else:
            settled.append(replace(entry, commit=commit, line=""))
    return settled
