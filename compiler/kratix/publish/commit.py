"""Publish: an output tree `{path: bytes}` → ONE commit on a branch of the output repo, moved atomically.

In: an `OutputRepo` (a local repo, bare or not, or a URL reached through a local bare mirror) and a `build`
callback that computes the tree and message from the branch's current state. Out: a `PublishResult`.
The commit is written with `git fast-import` while the branch stays where it is; the branch then moves by
compare-and-swap (`update-ref NEW OLD` locally, `push --force-with-lease=B:OLD` of a child of OLD remotely).
When another publisher got there first, the branch is re-read, `build` runs again on the new state, and the
swap is retried with backoff; nothing is ever force-pushed or lost. A kill at any moment leaves the branch at
its old or its new commit; leftovers (unreferenced objects, a temporary ref, a stale ref lock) are harmless
to and cleaned by the next run. Refused: invalid paths (`..`, absolute, empty components, `.git`), a target
that lies inside some other repo, a branch name git would not accept.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from kratix import gitio
from kratix.model import paths
from kratix.model.documents import BlobRef, Content, blob_id
from kratix.model.errors import PublishError

# git holds a ref lock for milliseconds; one this old was left by a killed process and would block the branch.
STALE_LOCK_SECONDS = 10.0
STALE_TEMP_REF_SECONDS = 3600.0
MAX_BACKOFF_SECONDS = 2.0


@dataclass(frozen=True)
class Identity:
    name: str = "Kratix"
    email: str = "kratix@localhost"


@dataclass(frozen=True)
class OutputRepo:
    target: str  # as the user gave it
    branch: str
    path: Path  # where git runs: the local repo, or the bare mirror of `url`
    git_dir: Path  # the repo's common git dir (refs and locks live there)
    url: str | None = None  # set when the target is remote
    work_tree: Path | None = None  # set when the local target is a non-bare repo

    @property
    def ref(self) -> str:
        return f"refs/heads/{self.branch}"


@dataclass(frozen=True)
class BranchState:
    commit: str | None  # None when the branch does not exist yet
    files: Mapping[str, bytes]  # its tree ({} when it does not exist), read lazily from a repo (gitio.LazyBlobs)
    tree: str | None = None
    plain: bool = True  # the tree holds only 100644 files, so `files` describes it completely


@dataclass(frozen=True)
class PublishResult:
    commit: str | None  # the new commit, or the unchanged head when up to date or aborted
    changed: bool  # False: the tree equalled the branch's tree (or build aborted), no commit made
    attempts: int
    warnings: tuple[str, ...] = ()
    aborted: bool = False  # build() returned None: it chose not to publish


Build = Callable[[BranchState], "tuple[Mapping[str, Content], str] | None"]


@dataclass(frozen=True)
class _Lost:
    """The swap failed: the branch moved under us (`moved`), or git refused for another reason."""

    moved: bool
    detail: str = field(default="")


def open_output_repo(target: str, *, branch: str, cache_dir: Path | None = None, create: bool = True) -> OutputRepo:
    """Open (or with `create`, initialise) the output repo `target`: a local path or a git URL."""
    if branch.startswith("-") or gitio.git_result(None, "check-ref-format", f"refs/heads/{branch}").returncode:
        raise PublishError(f"{branch!r} is not a valid branch name")
    if gitio.is_git_url(target):
        mirror = _mirror_path(target, cache_dir)
        if not (mirror / "HEAD").exists():
            _init_bare(mirror, branch)
        return OutputRepo(target, branch, path=mirror, git_dir=mirror, url=target)
    path = Path(target).expanduser().absolute()
    if create and (not path.exists() or (path.is_dir() and not any(path.iterdir()))):
        _init_bare(path, branch)
    if path.exists() and not path.is_dir():
        raise PublishError(f"output repo {target}: a file, not a Git repository or a folder for one")
    if not path.is_dir():
        raise PublishError(f"output repo {target}: no such directory (and not creating it)")
    return _open_local(target, path, branch)


def read_branch(repo: OutputRepo) -> BranchState:
    """The branch's head commit and files (for a URL: as fetched now into the mirror)."""
    with _mirror_lock(repo):
        _fetch_mirror(repo)
        return _read_local(repo)


def publish(
    repo: OutputRepo,
    build: Build,
    *,
    attempts: int = 5,
    backoff_seconds: float = 0.05,
    identity: Identity = Identity(),  # noqa: B008 - frozen, so sharing the default is safe
    date: datetime | None = None,
    stale_lock_seconds: float = STALE_LOCK_SECONDS,
    known: BranchState | None = None,
) -> PublishResult:
    """Commit `build(current state)` on the branch, retrying `build` on a race; see the module docstring.
    `known`: the branch as the caller read it, used as the current state while the branch is still at its commit
    (the branch is not read twice)."""
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts}")
    _wait_for_locks(repo, stale_after=stale_lock_seconds, wait=False)
    _remove_stale_leftovers(repo)
    lost: list[_Lost] = []
    for attempt in range(1, attempts + 1):
        outcome = _attempt(repo, build, _signature(identity, date), known)
        if isinstance(outcome, PublishResult):
            return replace(outcome, attempts=attempt)
        lost.append(outcome)
        if not outcome.moved:  # most likely a ref lock: held for milliseconds, or forever if its owner died
            _wait_for_locks(repo, stale_after=stale_lock_seconds, wait=True)
        if attempt < attempts:
            delay = min(backoff_seconds * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
            time.sleep(delay * random.uniform(0.5, 1.5))  # jitter: racing publishers must not retry in step
    raise PublishError(_give_up_message(repo, lost))


def _attempt(
    repo: OutputRepo, build: Build, signature: gitio.Signature, known: BranchState | None = None
) -> PublishResult | _Lost:
    with _mirror_lock(repo):
        _fetch_mirror(repo)
        state = known if known is not None and known.commit == _head(repo) else _read_local(repo)
        built = build(state)
        if built is None:
            return PublishResult(state.commit, changed=False, attempts=0, aborted=True)
        files, message = built
        _check_paths(files, known=state.files)
        # Lengths first: a cold publish (an empty branch) need not hash every file to know it changes.
        if state.plain and len(files) == len(state.files) and _ids(files) == _state_ids(state):
            return PublishResult(state.commit, changed=False, attempts=0)
        was_clean = _work_tree_clean_at(repo, state)
        written = _write(repo, state, files, message, signature)
        if written.tree == state.tree:
            return PublishResult(state.commit, changed=False, attempts=0)
        lost = _swap(repo, new=written.commit, old=state.commit)
        if lost is not None:
            return lost
        warnings = _update_work_tree(repo, state, written.commit, was_clean)
    gitio.collect_garbage(repo.path)
    return PublishResult(written.commit, changed=True, attempts=0, warnings=warnings)


def _write(
    repo: OutputRepo, state: BranchState, files: Mapping[str, Content], message: str, signature: gitio.Signature
) -> gitio.WrittenCommit:
    if state.plain:  # only the difference goes through fast-import: a one-file change writes one blob
        before = _state_ids(state)
        changes: dict[str, Content | None] = {p: None for p in state.files if p not in files}
        changes.update((p, data) for p, data in files.items() if p not in before or before[p] != blob_id(data))
    else:  # the tree holds entries `files` cannot show (symlinks, executables): rewrite it whole
        changes = dict(files)
    return gitio.write_commit(
        repo.path,
        parent=state.commit,
        changes=changes,
        replace_all=not state.plain,
        message=message,
        author=signature,
        tree_trailer=paths.OUTPUT_TREE_TRAILER,
    )


def read_head(repo: OutputRepo) -> str | None:
    """The branch's head commit (for a URL: as fetched now into the mirror), without reading its tree."""
    with _mirror_lock(repo):
        _fetch_mirror(repo)
        return _head(repo)


def publish_changes(
    repo: OutputRepo,
    head: str,
    head_tree: str,
    changes: Mapping[str, Content | None],
    message: str,
    *,
    identity: Identity = Identity(),  # noqa: B008 - frozen, so sharing the default is safe
    date: datetime | None = None,
) -> PublishResult | None:
    """Commit `changes` (path -> content, None deletes) on top of `head` (whose tree is `head_tree`), which they
    were computed against: one fast-import `from head` of the changed paths alone, then the same compare-and-swap
    as `publish`. None when the branch is no longer at `head` (the caller computes again against what it holds
    now)."""
    _wait_for_locks(repo, stale_after=STALE_LOCK_SECONDS, wait=False)
    problems = gitio.check_paths([path for path, content in changes.items() if content is not None])
    if problems:
        raise PublishError(f"refusing to publish an invalid tree: {'; '.join(problems[:5])}")
    with _mirror_lock(repo):
        _fetch_mirror(repo)
        if _head(repo) != head:
            return None
        if not changes:
            return PublishResult(head, changed=False, attempts=1)
        before = BranchState(commit=head, files={})
        was_clean = _work_tree_clean_at(repo, before)
        written = gitio.write_commit(
            repo.path,
            parent=head,
            changes=changes,
            replace_all=False,
            message=message,
            author=_signature(identity, date),
            tree_trailer=paths.OUTPUT_TREE_TRAILER,
        )
        if written.tree == head_tree:
            return PublishResult(head, changed=False, attempts=1)
        if _swap(repo, new=written.commit, old=head) is not None:
            return None
        warnings = _update_work_tree(repo, before, written.commit, was_clean)
    gitio.collect_garbage(repo.path)
    return PublishResult(written.commit, changed=True, attempts=1, warnings=warnings)


def _swap(repo: OutputRepo, *, new: str, old: str | None) -> _Lost | None:
    """Move the branch from `old` to `new` only if it is still at `old`; None on success."""
    if repo.url is None:
        result = gitio.git_result(repo.path, "update-ref", "-m", "kratix publish", repo.ref, new, old or "")
    else:
        lease = f"--force-with-lease={repo.ref}:{old or ''}"  # a CAS on the server, not a force
        push = ("push", "--porcelain", "--no-verify", lease, repo.url, f"{new}:{repo.ref}")
        result = gitio.git_result(repo.path, *push)
        if result.returncode == 0:
            gitio.run_git(repo.path, "update-ref", repo.ref, new)
    if result.returncode == 0:
        return None
    _fetch_mirror(repo)
    now = _head(repo)
    if now == new:  # the update landed although git reported an error (e.g. a dropped connection after it)
        return None
    detail = (result.stderr + result.stdout.decode("utf-8", "replace")).strip()
    if now == old and repo.url is not None:  # the remote refused for a reason other than a race
        raise PublishError(f"pushing {repo.branch} to {repo.url} was refused: {detail}")
    return _Lost(moved=now != old, detail=detail)


def _read_local(repo: OutputRepo) -> BranchState:
    # The head and its tree in one process (no branch: git fails).
    named = gitio.git_result(repo.path, "rev-parse", f"{repo.ref}^{{commit}}", f"{repo.ref}^{{tree}}")
    if named.returncode != 0:
        return BranchState(commit=None, files={})
    head, tree = named.stdout.decode().split()
    oids, plain = gitio.file_oids(repo.path, head)
    files = gitio.LazyBlobs(repo.path, oids)
    # The compiler's own bookkeeping files are read on every compile; per-request status files only for what changed.
    files.prefetch(
        path
        for path in files
        if paths.is_bookkeeping(path) and not path.startswith((paths.STATUS_FOLDER + "/", paths.WORKLOADS_FOLDER + "/"))
    )
    return BranchState(
        commit=head,
        files=files,
        tree=tree,
        plain=plain,
    )


def _ids(files: Mapping[str, Content]) -> dict[str, str]:
    return {path: blob_id(content) for path, content in files.items()}


def _state_ids(state: BranchState) -> dict[str, str]:
    if isinstance(state.files, gitio.LazyBlobs):
        return {path: state.files.oid(path) for path in state.files}
    return _ids(state.files)


def _head(repo: OutputRepo) -> str | None:
    result = gitio.git_result(repo.path, "rev-parse", "--verify", "--quiet", f"{repo.ref}^{{commit}}")
    return result.stdout.decode().strip() if result.returncode == 0 else None


def _fetch_mirror(repo: OutputRepo) -> None:
    """Make the mirror's branch equal the remote's (deleting it when the remote has none)."""
    if repo.url is None:
        return
    refspec = f"+{repo.ref}:{repo.ref}"
    result = gitio.git_result(repo.path, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", repo.url, refspec)
    if result.returncode == 0:
        return
    if "couldn't find remote ref" in result.stderr:
        gitio.run_git(repo.path, "update-ref", "-d", repo.ref)
        return
    raise PublishError(f"cannot fetch {repo.branch} from {repo.url}: {result.stderr.strip()}")


@contextlib.contextmanager
def _mirror_lock(repo: OutputRepo) -> Iterator[None]:
    """Serialise this machine's runs on one mirror; the kernel drops the lock when a holder dies."""
    if repo.url is None:
        yield
        return
    with open(repo.git_dir / "kratix.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _wait_for_locks(repo: OutputRepo, *, stale_after: float, wait: bool) -> None:
    """Remove the ref locks older than `stale_after`; with `wait`, first wait for younger ones to go or age.

    git never clears a lock file itself, so one left by a `kill -9` would block the branch for good; a live
    git holds one for milliseconds, so a lock seconds old has no owner left.
    """
    blocking = [repo.git_dir / f"{repo.ref}.lock", repo.git_dir / "packed-refs.lock"]
    harmless = [] if wait else list((repo.git_dir / gitio.TEMP_REF_PREFIX).glob("*.lock"))  # unique names
    for lock in blocking + harmless:
        while True:
            try:
                age = time.time() - lock.stat().st_mtime
            except FileNotFoundError:
                break
            if age >= stale_after:
                lock.unlink(missing_ok=True)
                break
            if not wait:
                break
            time.sleep(min(0.05, stale_after - age))


def _remove_stale_leftovers(repo: OutputRepo) -> None:
    """Temporary refs and half-written packs of runs killed long ago (nothing live is ever that old)."""
    gitio.delete_stale_temp_refs(repo.path, older_than_seconds=STALE_TEMP_REF_SECONDS)
    cutoff = time.time() - STALE_TEMP_REF_SECONDS
    for leftover in (repo.git_dir / "objects" / "pack").glob("tmp_*"):
        with contextlib.suppress(FileNotFoundError):
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()


def _work_tree_clean_at(repo: OutputRepo, state: BranchState) -> bool | None:
    """For a non-bare target with the branch checked out: are index and work tree exactly `state.commit`?"""
    if repo.work_tree is None:
        return None
    head = gitio.git_result(repo.work_tree, "symbolic-ref", "--quiet", "HEAD")
    if head.stdout.decode().strip() != repo.ref:
        return None
    gitio.run_git(repo.work_tree, "update-index", "-q", "--refresh", check=False)
    if state.commit is None:
        index_clean = not gitio.run_git(repo.work_tree, "ls-files", "--cached")
    else:
        index_clean = (
            gitio.git_result(repo.work_tree, "diff-index", "--cached", "--quiet", state.commit).returncode == 0
        )
    return index_clean and gitio.git_result(repo.work_tree, "diff-files", "--quiet").returncode == 0


def _update_work_tree(repo: OutputRepo, state: BranchState, new: str, was_clean: bool | None) -> tuple[str, ...]:
    if was_clean is None:
        return ()
    if not was_clean:
        return (f"{repo.work_tree}: has local changes; its checkout stays at the old commit of {repo.branch}",)
    trees = (state.commit, new) if state.commit else (new,)
    result = gitio.git_result(repo.work_tree, "read-tree", "-m", "-u", *trees)
    if result.returncode != 0:
        return (f"{repo.work_tree}: could not update the checkout: {result.stderr.strip()}",)
    return ()


def _open_local(target: str, path: Path, branch: str) -> OutputRepo:
    bare_result = gitio.git_result(path, "rev-parse", "--is-bare-repository", "--git-common-dir")
    if bare_result.returncode != 0:
        raise PublishError(f"output repo {target}: not a git repository")
    is_bare, common = bare_result.stdout.decode().split("\n")[:2]
    git_dir = (path / common).resolve()
    if is_bare == "true":
        top = git_dir
    else:
        top = Path(gitio.run_git(path, "rev-parse", "--show-toplevel").decode().strip()).resolve()
    if top != path.resolve():
        raise PublishError(f"output repo {target}: is inside the git repository {top}, not a repository itself")
    work_tree = None if is_bare == "true" else path
    return OutputRepo(target, branch, path=path, git_dir=git_dir, work_tree=work_tree)


def _init_bare(path: Path, branch: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    gitio.run_git(path, "init", "--quiet", "--bare", f"--initial-branch={branch}")


def _mirror_path(url: str, cache_dir: Path | None) -> Path:
    if cache_dir is None:
        cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        cache_dir = Path(cache_home) / "kratix"
    name = hashlib.sha256(url.encode()).hexdigest()[:24] + ".git"  # no credentials or odd characters in paths
    return cache_dir.expanduser().absolute() / "mirrors" / name


def _check_paths(files: Mapping[str, Content], *, known: Mapping[str, bytes]) -> None:
    problems = gitio.check_paths(list(files), known=known)
    problems += [
        f"{path!r}: content is neither bytes nor a blob reference"
        for path, data in files.items()
        if not isinstance(data, bytes | BlobRef)
    ]
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise PublishError(f"refusing to publish an invalid tree: {shown}")


def _signature(identity: Identity, date: datetime | None) -> gitio.Signature:
    if date is None:
        return gitio.Signature(identity.name, identity.email, int(time.time()))
    if date.tzinfo is None:  # a naive date means UTC, never this machine's zone (reproducible bytes)
        date = date.replace(tzinfo=UTC)
    minutes = int(date.utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
    offset = f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    return gitio.Signature(identity.name, identity.email, int(date.timestamp()), offset)


def _give_up_message(repo: OutputRepo, lost: list[_Lost]) -> str:
    moved = sum(1 for outcome in lost if outcome.moved)
    where = repo.url or repo.target
    message = f"branch {repo.branch} of {where} moved {moved} times while publishing; gave up"
    other = [outcome.detail for outcome in lost if not outcome.moved]
    tail = f" after {len(lost)} attempts" + (f" (last git error: {other[-1]})" if other else "")
    return message + tail
