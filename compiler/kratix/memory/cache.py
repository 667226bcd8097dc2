"""The request cache: what each request's last compile produced, so that an unchanged request is neither parsed,
validated, rendered nor dumped again. Compile cost then grows with what changed, not with the platform.

Kept in the output repo at `.kratix/cache/<namespace>.jsonl` (a format line, then one JSON record per request,
sorted; a shard per request namespace, so a change rewrites only the shards it touches), so compile stays a pure
function of (input tree, previous output). Every request read from a file is recorded (the inventory of which
file held which request, `kratix.memory.inventory`), but only a cleanly placed one is `reusable`: failures, pending
requests and compound parents are compiled every time. A record is reused only when the request's file has the
same bytes, the fingerprint of everything else its output depends on — its Promise's folder, the destinations,
the kinds all Promises serve, the compiler's version and settings, image digests — is the same too, and its
`check` still matches: a hash of the record and of the blobs it names, so a record or an output edited by hand is
never trusted (the request is compiled again, and its output rewritten).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from kratix.model import paths


@dataclass(frozen=True, slots=True)
class Record:
    file: str  # the request's source file in the input repo
    blob: str  # sha1 of that file's bytes
    fingerprint: str  # of everything else the request's output depends on
    documents: int  # how many requests the file holds (a file is reused whole or not at all)
    kind: str
    namespace: str
    name: str
    api_version: str
    promise: str
    placements: dict[str, str] = field(default_factory=dict)  # placement record -> destination name
    outputs: tuple[str, ...] = ()  # the files it published, under destination folders
    status: str = ""  # its status file
    unchecked: tuple[str, ...] = ()  # kinds of its output no schema could check
    reusable: bool = True  # False: recorded for the inventory only (failed, pending, compound parent)
    # As written: `<check> <json>`, where check hashes the JSON and the blob ids of the outputs and status it
    # names (`seal`). Carried over verbatim: re-encoding 10k records costs more.
    line: str = field(default="", compare=False, repr=False)

    @property
    def key(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


_FIELDS = tuple(f.name for f in fields(Record) if f.name != "line")
FORMAT = 2
_HEADER = json.dumps({"format": FORMAT, "kratix": "cache"}, sort_keys=True, separators=(",", ":"))
# Values many records share (a Promise's kind, name and fingerprint, a namespace): interned as they are decoded, one
# copy each instead of one per record (100,000 records at 100,000 requests). The paths of its outputs and status
# too: the previous output's listing (`gitio.file_oids`) holds them already.
_SHARED = ("fingerprint", "kind", "namespace", "api_version", "promise", "status")


def named_files(record: Record) -> tuple[str, ...]:
    """The output-repo files a record vouches for: its outputs, then its status."""
    return (*record.outputs, *((record.status,) if record.status else ()))


def seal(record: Record, blob_ids: Iterable[str]) -> Record:
    """`record` with its line written: its JSON, and a check over it and the blob ids of `named_files`."""
    text = json.dumps({name: getattr(record, name) for name in _FIELDS}, sort_keys=True, separators=(",", ":"))
    return replace(record, line=f"{fingerprint(text, *blob_ids)} {text}")


def intact(record: Record, blob_ids: Iterable[str]) -> bool:
    """Whether the record and the files it names are as they were written (see `seal`)."""
    check, _, text = record.line.partition(" ")
    return bool(text) and check == fingerprint(text, *blob_ids)


def shard_of(record: Record) -> str:
    return paths.cache_shard(record.namespace)


def shards(records: Iterable[Record]) -> dict[str, list[Record]]:
    """Records by shard file, each shard sorted by source file and request."""
    grouped: dict[str, list[Record]] = {}
    for record in records:
        grouped.setdefault(shard_of(record), []).append(record)
    return {path: sorted(group, key=lambda r: (r.file, r.key)) for path, group in grouped.items()}


def encode(records: Iterable[Record]) -> bytes:
    """One shard's text; every record must be sealed."""
    lines = [r.line for r in sorted(records, key=lambda r: (r.file, r.key))]
    if not all(lines):
        raise ValueError("a cache record was not sealed")
    return ("\n".join([_HEADER, *lines]) + "\n").encode() if lines else b""


def decode_shard(data: bytes, *, share: bool = True) -> list[Record]:
    """Raises ValueError (with why) for anything but a shard of this format. `share`: intern the repeated values
    (`_SHARED`), for a compile that holds every shard; a compile that reads one or two shards saves the time."""
    lines = [line for line in data.decode().splitlines() if line.strip()]
    if not lines or lines[0] != _HEADER:
        raise ValueError("not a request-cache shard of format " + str(FORMAT))
    texts = [line.partition(" ")[2] for line in lines[1:]]
    if not all(texts):
        raise ValueError("a record has no check")
    records = []
    for line, raw in zip(lines[1:], json.loads("[" + ",".join(texts) + "]"), strict=True):
        if not isinstance(raw, dict):
            raise ValueError(f"a record is {type(raw).__name__}, not an object")
        if share:
            _share_values(raw)
        else:
            _as_tuples(raw)
        try:
            record = Record(**raw, line=line)
        except TypeError as exc:
            raise ValueError(f"unreadable record: {exc}") from exc
        if not well_formed(record):
            raise ValueError(f"a record of {record.file!r} holds a value of another type than kratix writes")
        records.append(record)
    return records


def well_formed(record: Record) -> bool:
    """Every field of `record` has the type this module writes: a record edited by hand into valid JSON of
    another shape must fail here, as an unreadable shard, not deep in a compile. (`str.join` checks that every
    item is text in C: a one-request compile decodes a shard of thousands of records.)"""
    placements = record.placements
    if type(record.documents) is not int or type(record.reusable) is not bool or type(placements) is not dict:
        return False
    try:
        "".join((record.file, record.kind, record.namespace, record.name, record.blob, record.fingerprint))
        "".join((record.api_version, record.promise, record.status))
        "".join(record.outputs)
        "".join(record.unchecked)
        "".join(placements)
        "".join(placements.values())
    except TypeError:
        return False
    return True


def _share_values(raw: dict[str, Any]) -> None:
    """A decoded record's repeated values interned (see `_SHARED`), its lists made tuples."""
    _as_tuples(raw)
    raw["outputs"] = tuple(sys.intern(p) if type(p) is str else p for p in raw["outputs"])
    for name in _SHARED:
        value = raw.get(name)
        if type(value) is str:
            raw[name] = sys.intern(value)
    placements = raw.get("placements")
    if type(placements) is dict:  # destination names: a few, for every record
        raw["placements"] = {k: sys.intern(v) if type(v) is str else v for k, v in placements.items()}


def _as_tuples(raw: dict[str, Any]) -> None:
    for name in ("outputs", "unchecked"):
        value = raw.get(name) or ()
        if type(value) is not list and value != ():
            raise ValueError(f"a record's {name} is not a list")
        raw[name] = tuple(value)


def digest(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def fingerprint(*parts: str | bytes) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        chunk = part.encode() if isinstance(part, str) else part
        hasher.update(len(chunk).to_bytes(8, "big"))
        hasher.update(chunk)
    return hasher.hexdigest()
