"""The I/O edge of the load stage: the input folders of a work tree or of one Git commit, as bytes.

In: the root of the input repo (and, for `read_commit`, a ref). Out: a `SourceTree` holding every regular
file under `promises/`, `clusters/`, `requests/` and `config/` (hidden files and folders left out), and, in
`unread`, the paths that are there but were not read, with why: a symbolic link (in a work tree it is not
followed, so a link cannot bring a file from outside the repo into the output; in a commit a link has no
content of its own), a submodule, a FIFO or device (reading one could block for ever), a file over
`limits.MAX_FILE_BYTES`, a name that is not UTF-8. Nothing is parsed here.
Refuses: a root that is not a directory (`SourceError`); a ref Git cannot resolve (`kratix.gitio` raises).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from kratix import gitio
from kratix.model import limits
from kratix.model.documents import SourceTree
from kratix.model.errors import SourceError

INPUT_FOLDERS = ("promises", "clusters", "requests", "config")
_LINK = "is a symbolic link: kratix reads regular files only, and never follows a link out of the repo"
_SPECIAL = "is not a regular file (a FIFO, socket or device): it is not read"
_SUBMODULE = "is a submodule: kratix reads regular files only"


def _too_large(size: int) -> str:
    return f"is {size:,} bytes: files over {limits.MAX_FILE_BYTES:,} bytes are not read"


def read_worktree(root: Path) -> SourceTree:
    """The input folders as they are on disk (hidden files and folders skipped, links not followed)."""
    if not root.is_dir():
        raise SourceError(f"{root}: not a directory")
    files: dict[str, bytes] = {}
    unread: dict[str, str] = {}
    for folder in INPUT_FOLDERS:
        base = root / folder
        if base.is_symlink():
            unread[folder] = _LINK
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            here = Path(dirpath)
            kept = []
            for name in sorted(d for d in dirnames if not d.startswith(".")):
                if (here / name).is_symlink():
                    unread[_relative(here / name, root)] = _LINK
                else:
                    kept.append(name)
            dirnames[:] = kept
            for filename in filenames:
                if not filename.startswith("."):
                    _read_file(here / filename, root, files, unread)
    return SourceTree(files=files, commit=None, origin=str(root), unread=unread)


def _read_file(full: Path, root: Path, files: dict[str, bytes], unread: dict[str, str]) -> None:
    relative = _relative(full, root)
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        unread[relative.encode("utf-8", "surrogateescape").decode("utf-8", "replace")] = "has a name that is not UTF-8"
        return
    info = full.lstat()
    if stat.S_ISLNK(info.st_mode):
        unread[relative] = _LINK
    elif not stat.S_ISREG(info.st_mode):
        unread[relative] = _SPECIAL
    elif info.st_size > limits.MAX_FILE_BYTES:
        unread[relative] = _too_large(info.st_size)
    else:
        # O_NOFOLLOW: a file swapped for a link since lstat is still not followed.
        descriptor = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(descriptor, "rb") as handle:
            files[relative] = handle.read(limits.MAX_FILE_BYTES + 1)


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def read_commit(root: Path, ref: str, *, only: tuple[str, ...] | None = None, resolved: bool = False) -> SourceTree:
    """The input folders at one Git commit, read from the object store (no checkout, work tree ignored). `only`:
    read just these folders (ending in `/`) and files. `resolved`: `ref` is a commit id `gitio.resolve_commit`
    gave (not asked again: a one-request compile runs about fifteen short git processes, each counts)."""
    commit = ref if resolved else gitio.resolve_commit(root, ref)
    wanted: list[gitio.TreeEntry] = []
    unread: dict[str, str] = {}
    for entry in gitio.list_tree(root, commit, sizes=True, pathspecs=only):
        path = entry.path
        if path.split("/", 1)[0] not in INPUT_FOLDERS or _hidden(path):
            continue
        if entry.mode == "120000":
            unread[path] = _LINK
        elif entry.mode == "160000":
            unread[path] = _SUBMODULE
        elif entry.size is not None and entry.size > limits.MAX_FILE_BYTES:
            unread[path] = _too_large(entry.size)
        else:
            wanted.append(entry)
    blobs = gitio.read_blobs(root, [entry.oid for entry in wanted])
    files = {entry.path: blobs[entry.oid] for entry in wanted}
    return SourceTree(files=files, commit=commit, origin=str(root), unread=unread)


def _hidden(path: str) -> bool:
    return any(part.startswith(".") for part in path.split("/"))
