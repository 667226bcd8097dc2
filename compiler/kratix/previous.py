"""The previous output: what the last publish left on the output branch, the compiler's memory between runs.

Sticky placements, the request cache, provenance and last-known-good files are all read from it, so a compile is
a pure function of (input tree, previous output).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from kratix import cache, provenance
from kratix.documents import BlobRef, Content, blob_id
from kratix.manifests import BOOKKEEPING

PLACEMENTS_FILE = "placements.json"  # JSON: tens of thousands of entries parse 20x faster than YAML
STATUS_FOLDER = "status"
PROMISE_STATUS_FOLDER = "promises"


@dataclass(frozen=True)
class PreviousOutput:
    """What the last publish left on the output branch: the compiler's memory between runs."""

    files: Mapping[str, bytes] = field(default_factory=dict)
    commit: str | None = None

    @cached_property
    def placements(self) -> dict[str, str]:
        """Placement record (`Kind/namespace/name#pipeline[/directory]`) -> destination name."""
        data = self.files.get(f"{BOOKKEEPING}/{PLACEMENTS_FILE}")
        document = json.loads(data) if data else None
        return {str(k): str(v) for k, v in document.items()} if isinstance(document, Mapping) else {}

    @cached_property
    def provenance_shards(self) -> dict[str, list[provenance.Entry]]:
        return provenance.decode(self.files)

    @cached_property
    def provenance(self) -> dict[str, provenance.Entry]:
        """Every output file's provenance, by path."""
        return {entry.path: entry for shard in self.provenance_shards.values() for entry in shard}

    @cached_property
    def cache_shards(self) -> dict[str, list[cache.Record]]:
        return cache.decode(self.files)

    @cached_property
    def cache(self) -> list[cache.Record]:
        """Every request cache record."""
        return [record for shard in self.cache_shards.values() for record in shard]

    def content(self, path: str) -> Content:
        """A previously published file, to carry over: a reference to its blob when the files come from a repo
        (nothing is read), else its bytes."""
        oid = self._oid_of
        return BlobRef(oid(path)) if oid is not None else self.files[path]

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
