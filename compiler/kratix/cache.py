"""The request cache: what each request's last compile produced, so that an unchanged request is neither parsed,
validated, rendered nor dumped again. Compile cost then grows with what changed, not with the platform.

Kept in the output repo at `.kratix/cache/<namespace>.jsonl` (one JSON record per request, sorted; a shard per
request namespace, so a change rewrites only the shards it touches), so compile stays a pure
function of (input tree, previous output). A record is reused only when the request's file has the same bytes
and the fingerprint of everything else its output depends on — its Promise's folder, the destinations, the
kinds all Promises serve, the compiler's version and settings, image digests — is the same too. Only cleanly
placed requests are recorded: failures, pending requests and compound parents are compiled every time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from urllib.parse import quote

CACHE_FOLDER = ".kratix/cache"


@dataclass(frozen=True)
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
    line: str = field(default="", compare=False, repr=False)  # as read: re-encoding 10k records costs more

    @property
    def key(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


_FIELDS = tuple(f.name for f in fields(Record) if f.name != "line")


def shard_of(record: Record) -> str:
    return _shard_path(record.namespace)


@lru_cache(maxsize=4096)
def _shard_path(namespace: str) -> str:
    return f"{CACHE_FOLDER}/{quote(namespace, safe='')}.jsonl"


def shards(records: Iterable[Record]) -> dict[str, list[Record]]:
    """Records by shard file, each shard sorted by source file and request."""
    grouped: dict[str, list[Record]] = {}
    for record in records:
        grouped.setdefault(shard_of(record), []).append(record)
    return {path: sorted(group, key=lambda r: (r.file, r.key)) for path, group in grouped.items()}


def encode(records: Iterable[Record]) -> bytes:
    """One shard's text."""
    lines = [r.line or json.dumps({name: getattr(r, name) for name in _FIELDS}, sort_keys=True,
                                  separators=(",", ":"))
             for r in sorted(records, key=lambda r: (r.file, r.key))]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def decode(files: Mapping[str, bytes]) -> dict[str, list[Record]]:
    """Every shard among `files` (an output tree): shard path -> its records, in written (sorted) order."""
    return {path: decode_shard(files[path]) for path in files if path.startswith(CACHE_FOLDER + "/")}


def decode_shard(data: bytes | None) -> list[Record]:
    lines = [line for line in (data or b"").decode().splitlines() if line.strip()]
    records = []
    for line, raw in zip(lines, json.loads("[" + ",".join(lines) + "]"), strict=True):
        raw["outputs"] = tuple(raw.get("outputs") or ())
        raw["unchecked"] = tuple(raw.get("unchecked") or ())
        records.append(Record(**raw, line=line))
    return records


def digest(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def fingerprint(*parts: str | bytes) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        chunk = part.encode() if isinstance(part, str) else part
        hasher.update(len(chunk).to_bytes(8, "big"))
        hasher.update(chunk)
    return hasher.hexdigest()
