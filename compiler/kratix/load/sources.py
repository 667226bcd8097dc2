"""The I/O edge of the load stage: the input folders of a work tree or of one Git commit, as bytes.

In: the root of the input repo (and, for `read_commit`, a ref). Out: a `SourceTree` holding every file under
`promises/`, `clusters/` and `requests/`, hidden files and folders left out. Nothing is parsed here.
Refuses: a root that is not a directory (`SourceError`); a ref Git cannot resolve (`kratix.gitio` raises).
"""

from __future__ import annotations

import os
from pathlib import Path

from kratix import gitio
from kratix.documents import SourceTree
from kratix.errors import SourceError

INPUT_FOLDERS = ("promises", "clusters", "requests")


def read_worktree(root: Path) -> SourceTree:
    """The input folders as they are on disk (hidden files and folders skipped)."""
    if not root.is_dir():
        raise SourceError(f"{root}: not a directory")
    files: dict[str, bytes] = {}
    for folder in INPUT_FOLDERS:
        base = root / folder
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in filenames:
                if filename.startswith("."):
                    continue
                full = Path(dirpath) / filename
                files[full.relative_to(root).as_posix()] = full.read_bytes()
    return SourceTree(files=files, commit=None, origin=str(root))


def read_commit(root: Path, ref: str) -> SourceTree:
    """The input folders at one Git commit, read from the object store (no checkout, work tree ignored)."""
    commit = gitio.resolve_commit(root, ref)
    files = gitio.read_tree(root, commit)
    wanted = {path: data for path, data in files.items()
              if path.split("/", 1)[0] in INPUT_FOLDERS and not _hidden(path)}
    return SourceTree(files=wanted, commit=commit, origin=str(root))


def _hidden(path: str) -> bool:
    return any(part.startswith(".") for part in path.split("/"))
