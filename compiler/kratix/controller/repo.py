"""The controller's Git edge: commit the mirror's changes to the input repo, read status files from the output
repo.

Each repo gets a private bare clone in the controller's work directory; commits are built with plumbing (a
temporary index, `commit-tree`) on top of the remote branch as just fetched, so there is no work tree to get
out of step. A push is never forced: when another writer moved the branch first, `publish` fetches again, asks
the caller's planner for the changes against the new head and pushes that. Every git call goes through `_git`
with explicit paths and an environment stripped of inherited `GIT_*` variables (except credentials and SSH
settings, which the deployment passes that way).
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kratix.controller.mirror import Changes
from kratix.errors import KratixError

log = logging.getLogger(__name__)

AUTHOR_NAME = "Kratix controller"
AUTHOR_EMAIL = "kratix-controller@kratix.invalid"
_KEPT_GIT_VARIABLES = ("GIT_SSH", "GIT_SSH_COMMAND", "GIT_ASKPASS", "GIT_SSL_CAINFO", "GIT_SSL_NO_VERIFY",
                       "GIT_HTTP_PROXY_AUTHMETHOD", "GIT_CONFIG_COUNT", "GIT_TERMINAL_PROMPT")
_REJECTED_RACE = ("fetch first", "non-fast-forward", "stale info")


class RepoError(KratixError):
    """A Git remote cannot be read or written now (unreachable, refused, or every attempt lost a race)."""


@dataclass(frozen=True)
class Remote:
    url: str
    branch: str


def clean_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("GIT_") or key in _KEPT_GIT_VARIABLES
           or key.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))}
    env.setdefault("GIT_TERMINAL_PROMPT", "0")  # a missing credential must fail, not wait for a keyboard
    return env


def _git(git_dir: Path, *args: str, stdin: bytes | None = None, env: Mapping[str, str] | None = None,
         check: bool = True) -> subprocess.CompletedProcess[bytes]:
    command = ["git", f"--git-dir={git_dir}", "-c", f"user.name={AUTHOR_NAME}",
               "-c", f"user.email={AUTHOR_EMAIL}", *args]
    result = subprocess.run(command, input=stdin, capture_output=True, env=dict(env or clean_env()),
                            check=False)
    if check and result.returncode != 0:
        raise RepoError(f"git {args[0]} failed: {result.stderr.decode(errors='replace').strip()}")
    return result


class BareClone:
    """A private bare repository that fetches one branch of `remote` into `refs/remotes/origin/<branch>`."""

    def __init__(self, remote: Remote, git_dir: Path) -> None:
        self.remote = remote
        self.git_dir = git_dir
        if not (git_dir / "HEAD").exists():
            git_dir.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "init", "--quiet", "--bare", str(git_dir)], env=clean_env(),
                           capture_output=True, check=True)
            _git(git_dir, "remote", "add", "origin", remote.url)

    @property
    def _tracking(self) -> str:
        return f"refs/remotes/origin/{self.remote.branch}"

    def fetch(self) -> str | None:
        """The remote branch's head after fetching it, or None when the branch does not exist yet."""
        result = _git(self.git_dir, "fetch", "--quiet", "--no-tags", "origin",
                      f"+refs/heads/{self.remote.branch}:{self._tracking}", check=False)
        if result.returncode != 0:
            stderr = result.stderr.decode(errors="replace")
            if "couldn't find remote ref" in stderr:
                _git(self.git_dir, "update-ref", "-d", self._tracking, check=False)
                return None
            raise RepoError(f"cannot fetch {self.remote.url} {self.remote.branch}: {stderr.strip()}")
        return _git(self.git_dir, "rev-parse", "--verify", self._tracking).stdout.decode().strip()

    def read_files(self, commit: str | None, folders: tuple[str, ...]) -> dict[str, bytes]:
        """{path: bytes} of every file under `folders` (e.g. "requests/") at `commit`."""
        if commit is None:
            return {}
        listing = _git(self.git_dir, "ls-tree", "-r", "-z", commit, "--",
                       *(folder.rstrip("/") for folder in folders)).stdout
        entries = [line.split(b"\t", 1) for line in listing.split(b"\0") if line]
        blobs = [(path.decode(), meta.split()[2].decode()) for meta, path in entries
                 if meta.split()[1] == b"blob"]
        if not blobs:
            return {}
        wanted = "".join(f"{sha}\n" for _, sha in blobs).encode()
        batch = _git(self.git_dir, "cat-file", "--batch", stdin=wanted)
        return dict(zip([path for path, _ in blobs], _split_batch(batch.stdout), strict=True))

    def commit(self, parent: str | None, changes: Changes, message: str) -> str:
        """A commit of `parent`'s tree with `changes` applied; `parent` None starts the branch."""
        with tempfile.TemporaryDirectory(prefix="kratix-index-") as scratch:
            env = clean_env()
            env["GIT_INDEX_FILE"] = str(Path(scratch) / "index")
            if parent is not None:
                _git(self.git_dir, "read-tree", parent, env=env)
            index_lines = []
            for path in (*changes.added, *changes.updated):
                sha = _git(self.git_dir, "hash-object", "-w", "--stdin", stdin=changes.contents[path]).stdout
                index_lines.append(f"100644 {sha.decode().strip()}\t{path}")
            for path in changes.deleted:
                index_lines.append(f"0 {'0' * 40}\t{path}")
            _git(self.git_dir, "update-index", "--index-info", stdin="\n".join(index_lines).encode() + b"\n",
                 env=env)
            tree = _git(self.git_dir, "write-tree", env=env).stdout.decode().strip()
        parents = ["-p", parent] if parent else []
        commit = _git(self.git_dir, "commit-tree", tree, *parents, stdin=message.encode())
        return commit.stdout.decode().strip()

    def push(self, commit: str) -> bool:
        """Push without force. False when the branch moved since the fetch (the caller replans on it)."""
        refspec = f"{commit}:refs/heads/{self.remote.branch}"
        result = _git(self.git_dir, "push", "--porcelain", "origin", refspec, check=False)
        if result.returncode == 0:
            return True
        output = (result.stdout + result.stderr).decode(errors="replace")
        if any(reason in output for reason in _REJECTED_RACE):
            return False
        raise RepoError(f"cannot push to {self.remote.url} {self.remote.branch}: {output.strip()}")


def publish(clone: BareClone, plan: Callable[[Mapping[str, bytes]], Changes], *,
            folders: tuple[str, ...], message: Callable[[Changes], str], attempts: int = 5) -> Changes:
    """Fetch, plan against the fetched head, commit, push; replan on the new head when a push loses a race.
    Returns what landed (empty when the repo already matched)."""
    for attempt in range(1, attempts + 1):
        head = clone.fetch()
        changes = plan(clone.read_files(head, folders))
        if not changes:
            return changes
        commit = clone.commit(head, changes, message(changes))
        if clone.push(commit):
            log.info("pushed %s to %s %s: %s", commit[:12], clone.remote.url, clone.remote.branch,
                     message(changes).splitlines()[0])
            return changes
        log.info("push to %s lost a race (attempt %d/%d); replanning on the new head", clone.remote.url,
                 attempt, attempts)
    raise RepoError(f"every push to {clone.remote.url} {clone.remote.branch} lost a race "
                    f"({attempts} attempts)")


def _split_batch(output: bytes) -> list[bytes]:
    """The contents out of `git cat-file --batch` output (`<sha> <type> <size>\\n<content>\\n` per object)."""
    contents: list[bytes] = []
    position = 0
    while position < len(output):
        header_end = output.index(b"\n", position)
        size = int(output[position:header_end].split()[2])
        contents.append(output[header_end + 1:header_end + 1 + size])
        position = header_end + 1 + size + 1
    return contents
