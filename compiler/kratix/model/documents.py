"""Source documents: the raw, unvalidated input of a compile.

A `SourceTree` is the input repo at one commit (or the work tree) as `{path: bytes}`; a `SourceDoc` is one
parsed YAML document of it with the position of every node, so that later stages can point at a field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Position = tuple[int, int]  # 1-based (line, column)
FieldPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class BlobRef:
    """File content that is already a blob in the output repo, named by its Git object id. A compile that
    carries a file over unchanged passes this instead of the bytes, so that reading and rewriting the output
    costs what changed, not what exists."""

    oid: str
    # Written into the output repo by this compile (`Store`): new content, where a carried-over blob is not.
    made: bool = field(default=False, compare=False)


Content = bytes | BlobRef  # a value of an output tree
# What the compile hands each output file's bytes to as soon as nothing reads them again, for a path: the bytes
# back (kept in memory until published), or a `BlobRef` to a blob the publish side wrote already (then the compile
# never holds every file's bytes at once).
Store = Callable[[str, bytes], Content]


def keep(path: str, data: bytes) -> Content:
    """The `Store` of a compile that publishes nothing (a plan, a directory): every file stays as its bytes."""
    return data


def blob_id(content: Content) -> str:
    """The Git object id of a file's content, computed for bytes as `git hash-object` would."""
    if isinstance(content, BlobRef):
        return content.oid
    digest = hashlib.sha1(b"blob %d\0" % len(content), usedforsecurity=False)
    digest.update(content)  # not header + content: that would copy every file once more
    return digest.hexdigest()


@dataclass(frozen=True)
class SourceTree:
    files: Mapping[str, bytes]  # posix path relative to the repo root -> content
    commit: str | None = None  # the input commit, when read from Git
    origin: str = ""  # a human name for where it came from (path or URL)
    unread: Mapping[str, str] = field(default_factory=dict)  # paths present but not read -> why (a symlink, ...)

    def under(self, folder: str) -> dict[str, bytes]:
        prefix = folder.rstrip("/") + "/"
        return {path: data for path, data in self.files.items() if path.startswith(prefix)}


@dataclass(frozen=True, slots=True)
class SourceDoc:
    path: str
    index: int  # the document's index in its file (0-based)
    line: int  # 1-based line where the document starts
    body: Any  # whatever YAML held: not yet known to be an object
    positions: Mapping[FieldPath, Position] = field(default_factory=dict, compare=False, repr=False)

    def locate(self, path: FieldPath) -> Position:
        """The position of the deepest node on `path` that exists (a missing field points at its parent)."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(tuple(path[:end]))
            if found is not None:
                return found
        return (self.line, 1)

    def located(self) -> SourceDoc:
        """Where this document was read, without its body or the positions of its fields: what a diagnostic
        about the whole document needs, for a compile that no longer reads the document itself."""
        position = self.locate(())
        return SourceDoc(self.path, self.index, self.line, None, {} if position == (self.line, 1) else {(): position})
