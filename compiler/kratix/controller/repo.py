"""The controller's Git edge: commit the mirror's changes to the input repo, read status files from the output
repo.

In: a remote (URL, branch), a planner and `Timeouts`. Out: what landed, or `RepoError` when the remote cannot
be read or written now. Each repo gets a private bare clone in the controller's work directory; commits are
written with `git fast-import` on top of the remote branch as just fetched, so there is no work tree or index
to get out of step. A push is never forced: when another writer moved the branch first, `publish` fetches
again, asks the caller's planner for the changes against the new head and pushes that. Every git call goes
through `kratix.gitio` (explicit repo, clean environment) with a timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kratix import gitio
from kratix.controller.mirror import Changes
from kratix.controller.policy import Timeouts
from kratix.model.errors import KratixError

log = logging.getLogger(__name__)

AUTHOR_NAME = "Kratix controller"
AUTHOR_EMAIL = "kratix-controller@kratix.invalid"
_REJECTED_RACE = ("fetch first", "non-fast-forward", "stale info")


class RepoError(KratixError):
    """A Git remote cannot be read or written now (unreachable, refused, timed out, or every race lost)."""


@dataclass(frozen=True)
class Remote:
    url: str
    branch: str


@dataclass(frozen=True)
class Landed:
    """What `publish` did: the changes and the commit pushed (none when the repo already matched)."""

    changes: Changes
    commit: str | None
    lost_races: int = 0


class BareClone:
    """A private bare repository that fetches one branch of `remote` into `refs/remotes/origin/<branch>`."""

    def __init__(self, remote: Remote, git_dir: Path, *, timeouts: Timeouts) -> None:
        self.remote = remote
        self.git_dir = git_dir
        self._timeouts = timeouts
        try:
            if not (git_dir / "HEAD").exists():
                git_dir.mkdir(parents=True, exist_ok=True)
                gitio.run_git(None, "init", "--quiet", "--bare", str(git_dir), timeout=timeouts.git_local)
                gitio.run_git(git_dir, "remote", "add", "origin", remote.url, timeout=timeouts.git_local)
            # Left behind only by a kill mid-commit; each keeps some unreferenced objects alive.
            gitio.delete_stale_temp_refs(git_dir, older_than_seconds=3600)
        except gitio.GitCommandError as exc:
            raise RepoError(f"cannot set up a clone of {remote.url} in {git_dir}: {exc}") from exc

    @property
    def _tracking(self) -> str:
        return f"refs/remotes/origin/{self.remote.branch}"

    def fetch(self) -> str | None:
        """The remote branch's head after fetching it, or None when the branch does not exist yet."""
        try:
            result = gitio.git_result(
                self.git_dir,
                "fetch",
                "--quiet",
                "--no-tags",
                "origin",
                f"+refs/heads/{self.remote.branch}:{self._tracking}",
                timeout=self._timeouts.git_network,
            )
            if result.returncode != 0:
                if "couldn't find remote ref" in result.stderr:
                    gitio.run_git(
                        self.git_dir, "update-ref", "-d", self._tracking, check=False, timeout=self._timeouts.git_local
                    )
                    return None
                raise RepoError(f"cannot fetch {self.remote.url} {self.remote.branch}: {result.stderr.strip()}")
            return (
                gitio.run_git(self.git_dir, "rev-parse", "--verify", self._tracking, timeout=self._timeouts.git_local)
                .decode()
                .strip()
            )
        except gitio.GitCommandError as exc:
            raise RepoError(f"cannot fetch {self.remote.url} {self.remote.branch}: {exc}") from exc

    def read_files(self, commit: str | None, folders: tuple[str, ...]) -> dict[str, bytes]:
        """{path: bytes} of every regular file under `folders` (e.g. "requests/") at `commit`."""
        if commit is None:
            return {}
        try:
            entries = [
                entry
                for folder in folders
                for entry in gitio.list_tree(self.git_dir, commit, prefix=folder, timeout=self._timeouts.git_local)
                if entry.kind == "blob" and entry.mode in ("100644", "100755")
            ]
            blobs = gitio.read_blobs(self.git_dir, [entry.oid for entry in entries], timeout=self._timeouts.git_local)
        except gitio.GitCommandError as exc:
            raise RepoError(f"cannot read {commit[:12]} of {self.remote.url}: {exc}") from exc
        return {entry.path: blobs[entry.oid] for entry in entries}

    def commit(self, parent: str | None, changes: Changes, message: str) -> str:
        """A commit of `parent`'s tree with `changes` applied; `parent` None starts the branch."""
        delta: dict[str, gitio.Content | None] = {
            path: changes.contents[path] for path in (*changes.added, *changes.updated)
        }
        delta.update((path, None) for path in changes.deleted)
        author = gitio.Signature(AUTHOR_NAME, AUTHOR_EMAIL, int(time.time()))
        try:
            written = gitio.write_commit(
                self.git_dir,
                parent=parent,
                changes=delta,
                replace_all=False,
                message=message,
                author=author,
                timeout=self._timeouts.git_local,
            )
        except gitio.GitCommandError as exc:
            raise RepoError(f"cannot write a commit in {self.git_dir}: {exc}") from exc
        return written.commit

    def push(self, commit: str) -> bool:
        """Push without force. False when the branch moved since the fetch (the caller replans on it)."""
        refspec = f"{commit}:refs/heads/{self.remote.branch}"
        try:
            result = gitio.git_result(
                self.git_dir, "push", "--porcelain", "origin", refspec, timeout=self._timeouts.git_network
            )
        except gitio.GitCommandError as exc:
            raise RepoError(f"cannot push to {self.remote.url} {self.remote.branch}: {exc}") from exc
        if result.returncode == 0:
            return True
        output = result.stdout.decode(errors="replace") + result.stderr
        if any(reason in output for reason in _REJECTED_RACE):
            return False
        raise RepoError(f"cannot push to {self.remote.url} {self.remote.branch}: {output.strip()}")


def publish(
    clone: BareClone,
    plan: Callable[[Mapping[str, bytes]], Changes],
    *,
    folders: tuple[str, ...],
    message: Callable[[Changes], str],
    attempts: int = 5,
    on_attempt: Callable[[], None] = lambda: None,
) -> Landed:
    """Fetch, plan against the fetched head, commit, push; replan on the new head when a push loses a race.
    `on_attempt` is called before each attempt (the caller's sign of progress for its liveness probe)."""
    for attempt in range(1, attempts + 1):
        on_attempt()
        head = clone.fetch()
        changes = plan(clone.read_files(head, folders))
        if not changes:
            return Landed(changes=changes, commit=None, lost_races=attempt - 1)
        commit = clone.commit(head, changes, message(changes))
        if clone.push(commit):
            log.info(
                "pushed %s to %s %s: %s",
                commit[:12],
                clone.remote.url,
                clone.remote.branch,
                message(changes).splitlines()[0],
            )
            return Landed(changes=changes, commit=commit, lost_races=attempt - 1)
        log.info(
            "push to %s lost a race (attempt %d/%d); replanning on the new head", clone.remote.url, attempt, attempts
        )
    raise RepoError(f"every push to {clone.remote.url} {clone.remote.branch} lost a race ({attempts} attempts)")
