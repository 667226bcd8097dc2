"""The previous output: what the last publish left on the output branch, the compiler's memory between runs.

Sticky placements, the request cache, provenance, the inventory and last-known-good files are all read from it,
so a compile is a pure function of (input tree, previous output).

The memory is read defensively: each file under `.kratix/` carries a format version, and one that cannot be read
(edited by hand, truncated, written by another version of kratix) is a warning, never a crash: placements and
provenance are rebuilt from the output tree itself (`kratix.memory.heal`), the request cache and the inventory start
empty (every request is compiled again, which `--rebuild` also asks for). Entries that contradict the tree (a
provenance entry for a file that is not there) are dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import yaml

from kratix import yamltext
from kratix.memory import cache, heal, inventory, provenance
from kratix.model import paths
from kratix.model.documents import BlobRef, Content, blob_id

PLACEMENTS_FORMAT = 2


def encode_placements(records: Mapping[str, str]) -> bytes:
    # one placement per line, sorted: `git diff` shows placements made and removed
    document = {"format": PLACEMENTS_FORMAT, "placements": dict(records)}
    return json.dumps(document, sort_keys=True, indent=0).encode() + b"\n"


def decode_placements(data: bytes) -> dict[str, str]:
    document = json.loads(data)
    if not isinstance(document, dict) or document.get("format") != PLACEMENTS_FORMAT:
        raise ValueError(f"not a placements file of format {PLACEMENTS_FORMAT}")
    records = document.get("placements")
    if not isinstance(records, dict) or not all(isinstance(v, str) for v in records.values()):
        raise ValueError("placements must map records to destination names")
    return {str(k): v for k, v in records.items()}


@dataclass(frozen=True)
class PreviousOutput:
    """What the last publish left on the output branch: the compiler's memory between runs."""

    files: Mapping[str, bytes] = field(default_factory=dict)
    commit: str | None = None
    # State stores that could not be read, by their prefix in the output tree (`kratix.model.paths`), with why: their
    # files are unknown, so what the bookkeeping says of them stands.
    unreachable: Mapping[str, str] = field(default_factory=dict)
    read: frozenset[str] | None = None  # the prefixes of the stores whose files `files` holds; None: every store
    # What could not be read, and what was done instead: the compile reports each as a warning.
    warnings: list[str] = field(default_factory=list, compare=False)

    def unknown(self, prefix: str) -> bool:
        """Whether the files of the state store at `prefix` of the output tree are unknown (not read)."""
        return prefix in self.unreachable or (self.read is not None and prefix not in self.read and prefix != "")

    def _unreadable(self, path: str, error: Exception, instead: str) -> None:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        self.warnings.append(f"{path} cannot be read ({detail}); {instead}")

    @cached_property
    def placements(self) -> dict[str, str]:
        """Placement record (`Kind/namespace/name#pipeline[/directory]`) -> destination name."""
        path = paths.PLACEMENTS
        if path not in self.files:
            return {}
        try:
            return decode_placements(self.files[path])
        except (ValueError, UnicodeDecodeError) as exc:
            self._unreadable(path, exc, "placements were rebuilt from where each request's files are")
        return heal.rebuild_placements(self.provenance.values())

    @cached_property
    def provenance_shards(self) -> dict[str, list[provenance.Entry]]:
        shards: dict[str, list[provenance.Entry]] = {}
        for path in self.files:
            if not paths.is_provenance_shard(path):
                continue
            try:
                entries = provenance.decode_shard(self._read_once(path), destinations_by_path=self._names_by_path)
            except (ValueError, UnicodeDecodeError) as exc:
                self._unreadable(path, exc, "provenance was rebuilt from the output tree")
                rebuilt = heal.rebuild_provenance(self.files, self.layouts)
                return {path: entries for path, entries in provenance.shards(rebuilt).items()}
            shards[path] = [
                entry
                for entry in entries.values()
                if entry.path in self.files or self.unknown(paths.target_of(entry.path))
            ]
        return shards

    def _read_once(self, path: str) -> bytes:
        """A file decoded once and not read again (a bookkeeping shard): its bytes are not kept by `files`."""
        data = self.files[path]
        release = getattr(self.files, "release", None)  # gitio.LazyBlobs and what combines them
        if release is not None:
            release([path])
        return data

    @cached_property
    def _names_by_path(self) -> dict[str, str]:
        """Destination names by their folder, for provenance written before entries named destinations."""
        return {layout.root: layout.name for layout in self.layouts}

    @cached_property
    def provenance(self) -> dict[str, provenance.Entry]:
        """Every output file's provenance, by path."""
        return {entry.path: entry for shard in self.provenance_shards.values() for entry in shard}

    @cached_property
    def cache_shards(self) -> dict[str, list[cache.Record]]:
        shards: dict[str, list[cache.Record]] = {}
        for path in self.files:
            if not paths.is_cache_shard(path):
                continue
            try:
                shards[path] = cache.decode_shard(self._read_once(path))
            except (ValueError, UnicodeDecodeError) as exc:
                self._unreadable(path, exc, "its requests are compiled again")
        return shards

    @cached_property
    def cache(self) -> list[cache.Record]:
        """Every request cache record."""
        return [record for shard in self.cache_shards.values() for record in shard]

    @cached_property
    def inventory(self) -> inventory.Inventory:
        """What the last compile read, and from which files."""
        path = paths.INVENTORY
        known = inventory.Inventory()
        if path in self.files:
            try:
                known = inventory.decode(self.files[path])
            except (ValueError, UnicodeDecodeError) as exc:
                self._unreadable(path, exc, "a Promise or Destination whose file breaks now cannot stand in")
        requests: dict[str, list[inventory.RequestEntry]] = {}
        for record in self.cache:
            requests.setdefault(record.file, []).append(
                inventory.RequestEntry(record.kind, record.namespace, record.name, record.promise, record.api_version)
            )
        return inventory.Inventory(
            known.promises, known.destinations, {file: tuple(entries) for file, entries in requests.items()}
        )

    @cached_property
    def layouts(self) -> list[paths.Layout]:
        """Where the Destinations the last compile knew put their files."""
        return [
            paths.Layout(
                name,
                entry.root if entry.root is not None else entry.path,
                entry.mode or paths.NESTED,
                entry.filename or paths.AGGREGATED_FILENAME,
                entry.path,
            )
            for name, entry in sorted(self.inventory.destinations.items())
        ]

    def request_status(self, namespace: str, promise: str, name: str) -> dict[str, Any]:
        """The status the last compile gave a request (`{}` if none): its pipelines see it in object.yaml, and
        what they write is merged into it, as Kratix merges into the object's status."""
        return self._status_at(paths.request_status(namespace, promise, name))

    def prefetch_request_statuses(self, requests: Iterable[tuple[str, str, str]]) -> None:
        """Read the statuses of many requests ((namespace, promise, name)) together: a compile that runs thousands
        of requests asks git once, not once for each."""
        prefetch = getattr(self.files, "prefetch", None)
        if prefetch is not None:
            prefetch(paths.request_status(*request) for request in requests)

    def promise_status(self, name: str) -> dict[str, Any]:
        """The status the last compile gave a Promise (`{}` if none), for its promise workflow's object.yaml."""
        return self._status_at(paths.promise_status(name))

    def _status_at(self, path: str) -> dict[str, Any]:
        if path not in self.files:
            return {}
        try:
            document = next(iter(yamltext.load_plain(self.files[path])), None)
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            self._unreadable(path, exc, "its pipelines saw no previous status")
            return {}
        status = document.get("status") if isinstance(document, Mapping) else None
        return dict(status) if isinstance(status, Mapping) else {}

    def content(self, path: str) -> Content:
        """A previously published file, to carry over: a reference to its blob when the files come from a repo
        (nothing is read), else its bytes."""
        oid = self._oid_of
        return BlobRef(oid(path)) if oid is not None else self.files[path]

    def oid(self, path: str) -> str:
        """The blob id of a previously published file (known without reading it when it comes from a repo)."""
        oid = self._oid_of
        return oid(path) if oid is not None else blob_id(self.files[path])

    @cached_property
    def _oid_of(self) -> Callable[[str], str] | None:
        return getattr(self.files, "oid", None)  # gitio.LazyBlobs knows object ids without reading contents

    def resolve(self, files: Mapping[str, Content]) -> dict[str, bytes]:
        """`files` with every carried-over blob read back into bytes (for writing a directory)."""
        prefetch = getattr(self.files, "prefetch", None)
        if prefetch is not None:
            prefetch(path for path, content in files.items() if isinstance(content, BlobRef))
        return {path: self.files[path] if isinstance(content, BlobRef) else content for path, content in files.items()}

    def same(self, path: str, content: Content | None) -> bool:
        """Whether `path` held exactly `content` before (compared by Git object id, so nothing is read)."""
        if content is None or path not in self.files:
            return content is None and path not in self.files
        oid = self._oid_of
        if oid is None:
            return self.files[path] == content
        return bool(oid(path) == blob_id(content))


@dataclass(frozen=True)
class ScopedPrevious(PreviousOutput):
    """The previous output as a compile of a few changed requests reads it (`kratix.compile.delta`): the bookkeeping
    shards it names, read by path when first asked for, and nothing else. Only for a tree kratix wrote itself
    (its commit records its own tree id), so every provenance entry's file is there, and with every request
    settled, so each request's placements are those of its cache record."""

    cache_paths: frozenset[str] = frozenset()
    provenance_paths: frozenset[str] = frozenset()
    decoded: Mapping[str, list[cache.Record]] | None = None  # cache shards an earlier view decoded already

    @cached_property
    def provenance_shards(self) -> dict[str, list[provenance.Entry]]:
        shards: dict[str, list[provenance.Entry]] = {}
        for path in sorted(self.provenance_paths):
            if path not in self.files:
                continue
            try:
                entries = provenance.decode_shard(
                    self.files[path], destinations_by_path=self._names_by_path, share=False
                )
            except (ValueError, UnicodeDecodeError) as exc:
                self._unreadable(path, exc, "the compile reads the whole output instead")
                continue
            shards[path] = list(entries.values())
        return shards

    @cached_property
    def cache_shards(self) -> dict[str, list[cache.Record]]:
        if self.decoded is not None:
            return dict(self.decoded)
        shards: dict[str, list[cache.Record]] = {}
        for path in sorted(self.cache_paths):
            if path not in self.files:
                continue
            try:
                shards[path] = cache.decode_shard(self.files[path], share=False)
            except (ValueError, UnicodeDecodeError) as exc:
                self._unreadable(path, exc, "the compile reads the whole output instead")
        return shards

    @cached_property
    def placements(self) -> dict[str, str]:
        return {record: destination for r in self.cache for record, destination in r.placements.items()}


class OverlaidFiles(Mapping[str, bytes]):
    """`files` with `extra` laid over them: the paths of `extra` are read there, every other one in `files`. Object
    ids and batched reads pass on to whichever holds the path (`gitio.LazyBlobs` and what combines them)."""

    def __init__(self, files: Mapping[str, bytes], extra: Mapping[str, bytes]) -> None:
        self._files = files
        self._extra = extra

    def oid(self, path: str) -> str:
        source = self._extra if path in self._extra else self._files
        oid = getattr(source, "oid", None)
        return oid(path) if oid is not None else blob_id(source[path])

    def prefetch(self, wanted: Iterable[str]) -> None:
        self._pass_on("prefetch", wanted)

    def release(self, wanted: Iterable[str]) -> None:
        self._pass_on("release", wanted)

    def _pass_on(self, method: str, wanted: Iterable[str]) -> None:
        paths_ = list(wanted)
        for source, mine in (
            (self._extra, [p for p in paths_ if p in self._extra]),
            (self._files, [p for p in paths_ if p not in self._extra]),
        ):
            call = getattr(source, method, None)
            if call is not None and mine:
                call(mine)

    def __getitem__(self, path: str) -> bytes:
        return self._extra[path] if path in self._extra else self._files[path]

    def __contains__(self, path: object) -> bool:
        return path in self._extra or path in self._files

    def __iter__(self) -> Iterator[str]:
        yield from self._extra
        yield from (path for path in self._files if path not in self._extra)

    def __len__(self) -> int:
        return len(self._extra) + sum(1 for path in self._files if path not in self._extra)


@dataclass(frozen=True)
class WithCarried(PreviousOutput):
    """The previous output as if it had also published `records` (their files laid over its own, their
    provenance `entries` in place of what their requests published before): what the shards of an input commit
    compiled, so that the publishing compile carries those requests over as it carries over an unchanged one
    (`kratix.compile.shards`). Everything else is `base`'s: statuses a compile reads, placements, the inventory."""

    base: PreviousOutput = field(default_factory=PreviousOutput)
    records: tuple[cache.Record, ...] = ()
    entries: tuple[provenance.Entry, ...] = ()

    @classmethod
    def over(
        cls,
        base: PreviousOutput,
        files: Mapping[str, bytes],
        records: Iterable[cache.Record],
        entries: Iterable[provenance.Entry],
    ) -> WithCarried:
        return cls(
            OverlaidFiles(base.files, files),
            base.commit,
            base.unreachable,
            base.read,
            base.warnings,
            base=base,
            records=tuple(records),
            entries=tuple(entries),
        )

    def content(self, path: str) -> Content:
        """A carried file is new to the output branch: a blob it does not hold yet (`BlobRef.made`)."""
        found = super().content(path)
        if isinstance(found, BlobRef) and path in self._carried_paths:
            return BlobRef(found.oid, made=True)
        return found

    @cached_property
    def _carried_paths(self) -> frozenset[str]:
        return frozenset(path for record in self.records for path in cache.named_files(record))

    @cached_property
    def _keys(self) -> frozenset[str]:
        return frozenset(record.key for record in self.records)

    @cached_property
    def _files_carried(self) -> frozenset[str]:
        return frozenset(record.file for record in self.records)

    @cached_property
    def provenance_shards(self) -> dict[str, list[provenance.Entry]]:
        """The base's shards that hold nothing carried: the others are not what the base holds at their path."""
        keys = self._keys
        touched = {provenance.shard_of(e) for e in self.entries}
        touched.update(provenance.shard_of(e) for e in self.base.provenance.values() if e.owner in keys)
        return {path: entries for path, entries in self.base.provenance_shards.items() if path not in touched}

    @cached_property
    def provenance(self) -> dict[str, provenance.Entry]:
        keys = self._keys
        kept = {path: entry for path, entry in self.base.provenance.items() if entry.owner not in keys}
        kept.update((entry.path, entry) for entry in self.entries)
        return kept

    @cached_property
    def cache_shards(self) -> dict[str, list[cache.Record]]:
        keys, files = self._keys, self._files_carried
        touched = {cache.shard_of(r) for r in self.records}
        touched.update(cache.shard_of(r) for r in self.base.cache if r.key in keys or r.file in files)
        return {path: records for path, records in self.base.cache_shards.items() if path not in touched}

    @cached_property
    def cache(self) -> list[cache.Record]:
        keys, files = self._keys, self._files_carried
        return [r for r in self.base.cache if r.key not in keys and r.file not in files] + list(self.records)

    @cached_property
    def placements(self) -> dict[str, str]:
        return self.base.placements

    @cached_property
    def inventory(self) -> inventory.Inventory:
        return self.base.inventory

    def request_status(self, namespace: str, promise: str, name: str) -> dict[str, Any]:
        return self.base.request_status(namespace, promise, name)

    def prefetch_request_statuses(self, requests: Iterable[tuple[str, str, str]]) -> None:
        self.base.prefetch_request_statuses(requests)

    def promise_status(self, name: str) -> dict[str, Any]:
        return self.base.promise_status(name)
