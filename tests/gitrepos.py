"""Real temporary Git repos for tests, with a pinned author, committer and date (so commit ids are stable).

Everything here runs plain `git` with its own hermetic environment (no global or system config, inherited
`GIT_*` variables dropped), independently of `kratix.gitio`, so tests check our Git edge against git itself.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path

AUTHOR_NAME = "Test Author"
AUTHOR_EMAIL = "author@example.com"
DATE = "1700000000 +0000"  # 2023-11-14T22:13:20Z


def git_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME=AUTHOR_NAME,
        GIT_AUTHOR_EMAIL=AUTHOR_EMAIL,
        GIT_AUTHOR_DATE=DATE,
        GIT_COMMITTER_NAME=AUTHOR_NAME,
        GIT_COMMITTER_EMAIL=AUTHOR_EMAIL,
        GIT_COMMITTER_DATE=DATE,
        LC_ALL="C",
    )
    return env


def git(repo: Path, *args: str, input: bytes | None = None, check: bool = True) -> str:
    """Run git in `repo` and return stdout as text; a failure raises with git's message."""
    result = subprocess.run(["git", "-C", str(repo), *args], input=input, capture_output=True, env=git_env())
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({result.returncode}): {result.stderr.decode()}")
    return result.stdout.decode()


def init_repo(path: Path, *, bare: bool = False, branch: str = "main") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "--quiet", f"--initial-branch={branch}", *(["--bare"] if bare else []))
    return path


def commit_files(
    repo: Path,
    files: Mapping[str, bytes | str],
    *,
    remove: Iterable[str] = (),
    message: str = "test commit",
) -> str:
    """Write `files` into the work tree of `repo`, delete `remove`, commit it all; return the commit id."""
    for name, content in files.items():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
    for name in remove:
        (repo / name).unlink()
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--allow-empty", "-m", message)
    return head(repo, "HEAD")


def make_repo(path: Path, files: Mapping[str, bytes | str], *, branch: str = "main") -> tuple[Path, str]:
    """A non-bare repo at `path` with one commit holding `files`."""
    init_repo(path, branch=branch)
    return path, commit_files(path, files, message="initial")


def make_bare_with(path: Path, files: Mapping[str, bytes | str], *, branch: str = "main") -> tuple[Path, str]:
    """A bare repo whose `branch` holds one commit of `files` (pushed from a scratch clone next to it)."""
    init_repo(path, bare=True, branch=branch)
    scratch, commit = make_repo(path.with_name(path.name + "-scratch"), files, branch=branch)
    git(scratch, "push", "--quiet", str(path), f"{branch}:refs/heads/{branch}")
    return path, commit


def head(repo: Path, ref: str = "refs/heads/main") -> str | None:
    out = git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False).strip()
    return out or None


def files_at(repo: Path, ref: str = "refs/heads/main") -> dict[str, bytes]:
    """Every file of `ref` as git itself exports it (`git archive`), independent of the code under test."""
    if not git(repo, "ls-tree", ref):
        return {}  # git archive writes no valid tar for an empty tree
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", ref],
        capture_output=True,
        env=git_env(),
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def history(repo: Path, ref: str = "refs/heads/main") -> list[str]:
    """`ref`'s commits, newest first, as `<commit> <parents…>` lines."""
    return git(repo, "rev-list", "--parents", ref).splitlines()


def fsck(repo: Path) -> str:
    """Run `git fsck --strict` and fail unless git finds the repo sound; return its report."""
    result = subprocess.run(
        ["git", "-C", str(repo), "fsck", "--strict", "--no-progress"], capture_output=True, env=git_env()
    )
    report = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, f"git fsck failed:\n{report}"
    return report
