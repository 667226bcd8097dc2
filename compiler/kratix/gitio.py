"""The one door to `git`: every call is a `git` subprocess with an explicit repo path and a clean environment.

In: a repo path and git arguments. Out: git's stdout as bytes, or a `GitCommandError` with git's own message.
Inherited `GIT_*` variables are dropped (a `GIT_DIR` or `GIT_INDEX_FILE` leaking in from a hook or an IDE
would silently point us at another repo), except the few that only say *how* to reach a remote (ssh command,
CA file, `GIT_CONFIG_*` overrides). Messages are forced to English so callers may show them verbatim.
Readers fetch whole trees with one `ls-tree` and one `cat-file --batch`, never through a checkout; writers
feed one `git fast-import` stream, never an index or a work tree (one subprocess per object is 30x slower).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kratix.model.documents import BlobRef, Content, blob_id
from kratix.model.errors import KratixError, SourceError

# Variables that configure transport or credentials, not which repo or index git acts on.
_KEPT_GIT_VARIABLES = frozenset(
    {
        "GIT_ASKPASS",
        "GIT_EXEC_PATH",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_SSH_VARIANT",
        "GIT_SSL_CAINFO",
        "GIT_SSL_NO_VERIFY",
        "GIT_HTTP_PROXY_AUTHMETHOD",
        "GIT_ALLOW_PROTOCOL",
        "GIT_CONFIG_COUNT",
        "GIT_TRACE",
        "GIT_TRACE_PACKET",
        "GIT_CURL_VERBOSE",
    }
)
_KEPT_GIT_PREFIXES = ("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_")

# A sensible bound for commands that talk to a remote (fetch, push, ls-remote): long enough for a large
# first clone over a slow link, short enough that a remote which stopped answering fails instead of hanging.
NETWORK_TIMEOUT_SECONDS = 300.0

# scheme://…  (https, ssh, git, file, and remote helpers such as git+ssh)
_URL_WITH_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# scp-like `[user@]host:path`: a colon before any slash, as git itself decides (`url.c`, `connect.c`).
_SCP_LIKE = re.compile(r"^(?:[^@/:]+@)?[^/:]+:")


class GitCommandError(KratixError):
    """A git command failed; `stderr` is git's own explanation."""

    def __init__(self, args: tuple[str, ...], returncode: int, stderr: str) -> None:
        self.git_args = args
        self.returncode = returncode
        self.stderr = stderr
        detail = stderr.strip() or f"exit status {returncode}"
        super().__init__(f"git {' '.join(args[:2])} failed: {detail}")


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: bytes
    stderr: str


@dataclass(frozen=True)
class TreeEntry:
    mode: str  # "100644", "100755", "120000" (symlink), "160000" (submodule)
    kind: str  # "blob" or "commit"
    oid: str
    path: str
    size: int | None = None  # bytes of a blob, when listed with sizes


def clean_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) without the GIT_* variables that would redirect git."""
    source = os.environ if base is None else base
    env = {
        key: value
        for key, value in source.items()
        if not key.startswith("GIT_") or key in _KEPT_GIT_VARIABLES or key.startswith(_KEPT_GIT_PREFIXES)
    }
    env["LC_ALL"] = "C"  # stable, English messages
    env["LANGUAGE"] = "C"
    env["GIT_TERMINAL_PROMPT"] = "0"  # a compiler in CI must fail, not hang on a password prompt
    return env


def git_result(
    repo: Path | None,
    *args: str,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> GitResult:
    """Run `git -C repo args…` and return everything, whatever the exit status.

    With `timeout` (seconds), git and every process it started (a remote helper, ssh) are killed when it
    passes, and `GitCommandError` says so: a stalled remote never hangs the caller."""
    command = ["git", *(("-C", str(repo)) if repo is not None else ()), *args]
    environment = clean_env() if env is None else dict(env)
    if timeout is None:
        completed = subprocess.run(
            command,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            env=environment,
            check=False,
        )
        return GitResult(completed.returncode, completed.stdout, completed.stderr.decode("utf-8", "replace"))
    return _git_with_timeout(command, args, input=input, env=environment, timeout=timeout)


def _git_with_timeout(
    command: list[str], args: tuple[str, ...], *, input: bytes | None, env: dict[str, str], timeout: float
) -> GitResult:
    # A session of its own, so the whole group (git-remote-https, ssh) can be killed: killing git alone would
    # leave its children holding our pipes open, and reading them would hang exactly as the remote did.
    with subprocess.Popen(
        command,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):  # the group ended on its own meanwhile
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise GitCommandError(args, -signal.SIGKILL, f"timed out after {timeout:g}s (killed)") from None
    return GitResult(process.returncode, stdout, stderr.decode("utf-8", "replace"))


def run_git(
    repo: Path | None, *args: str, input: bytes | None = None, check: bool = True, timeout: float | None = None
) -> bytes:
    """git's stdout; with `check` a non-zero exit raises `GitCommandError` carrying git's stderr. `timeout` as
    for `git_result`."""
    result = git_result(repo, *args, input=input, timeout=timeout)
    if check and result.returncode != 0:
        raise GitCommandError(args, result.returncode, result.stderr)
    return result.stdout


def is_git_url(target: str) -> bool:
    """True for what git would treat as a remote (`https://…`, `ssh://…`, `file://…`, `git@host:path`)."""
    if _URL_WITH_SCHEME.match(target):
        return True
    # `./a:b` and `/a:b` are paths even though they contain a colon, exactly as for git.
    return not target.startswith((".", "/")) and bool(_SCP_LIKE.match(target))


def resolve_commit(repo: Path, ref: str) -> str:
    """The full commit id `ref` names in `repo`; `SourceError` naming the ref when there is none."""
    if not ref or ref.startswith("-"):
        raise SourceError(f"{repo}: {ref!r} is not a valid git revision")
    result = git_result(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    if result.returncode != 0:
        if not _is_repository(repo):
            raise SourceError(f"{repo}: not a git repository")
        raise SourceError(f"{repo}: no commit named {ref!r} (not a branch, tag or commit id in this repo)")
    return result.stdout.decode().strip()


def file_oids(repo: Path, commit: str) -> tuple[dict[str, str], bool]:
    """`{path: object id}` of the regular files of `commit`'s tree, and whether they are all it holds (no
    symlinks, submodules or executables). `list_tree` without an object per entry: trees hold tens of thousands.
    The paths are interned: the bookkeeping read with them (provenance, the request cache) names the same paths,
    and shares these copies (`kratix.memory`)."""
    oids: dict[str, str] = {}
    plain = True
    for record in run_git(repo, "--literal-pathspecs", "ls-tree", "-r", "-z", "--full-tree", commit).split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        if meta.startswith(b"100644 blob "):
            oids[sys.intern(path.decode("utf-8", "surrogateescape"))] = meta[12:].decode()
            continue
        plain = False
        if meta.startswith(b"100755 blob "):
            oids[sys.intern(path.decode("utf-8", "surrogateescape"))] = meta[12:].decode()
    return oids, plain


def list_tree(
    repo: Path,
    commit: str,
    *,
    prefix: str = "",
    sizes: bool = False,
    timeout: float | None = None,
    pathspecs: Iterable[str] | None = None,
) -> list[TreeEntry]:
    """Every file entry of `commit`'s tree (recursively), optionally only under the folder `prefix`; with
    `sizes`, each blob's size too (read from the object store's headers, not its content)."""
    args = [
        "--literal-pathspecs",
        "ls-tree",
        "-r",
        "-z",
        *(["-l"] if sizes else []),
        "--full-tree",
        commit,
    ]  # a folder named `*` is literal
    if prefix.strip("/"):
        args += ["--", prefix.strip("/") + "/"]
    elif pathspecs is not None:
        specs = list(pathspecs)
        if not specs:  # no pathspec at all: nothing, not the whole tree
            return []
        args += ["--", *specs]
    entries = []
    for record in run_git(repo, *args, timeout=timeout).split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        mode, kind, oid, *size = meta.decode().split()
        length = int(size[0]) if size and size[0].isdigit() else None
        entries.append(TreeEntry(mode, kind, oid, path.decode("utf-8", "surrogateescape"), length))
    return entries


def read_blobs(repo: Path, oids: list[str], *, timeout: float | None = None) -> dict[str, bytes]:
    """The contents of the blobs `oids`, read with one `git cat-file --batch`."""
    unique = list(dict.fromkeys(oids))
    if not unique:
        return {}
    output = run_git(repo, "cat-file", "--batch", input="".join(f"{oid}\n" for oid in unique).encode(), timeout=timeout)
    return dict(_parse_batch(output, len(unique)))


class LazyBlobs(Mapping[str, bytes]):
    """A commit's files as a mapping whose contents are read from the object store only when asked for: the
    output branch can hold tens of thousands of files, of which a compile reads a handful. `oid(path)` tells
    a file's object id without reading it; `prefetch` reads many in one `cat-file --batch`."""

    def __init__(self, repo: Path, oids: Mapping[str, str], *, loaded: Mapping[str, bytes] | None = None) -> None:
        self.repo = repo
        self._oids = dict(oids)
        self._loaded: dict[str, bytes] = dict(loaded or {})

    def oid(self, path: str) -> str:
        return self._oids[path]

    def prefetch(self, paths: Iterable[str]) -> None:
        wanted = [p for p in paths if p in self._oids and p not in self._loaded]
        blobs = read_blobs(self.repo, [self._oids[p] for p in wanted])
        self._loaded.update((p, blobs[self._oids[p]]) for p in wanted)

    def release(self, paths: Iterable[str]) -> None:
        """Let go of what was read of `paths` (read again if asked for): for contents decoded once and not read
        again, such as bookkeeping shards of several MB each on a large platform."""
        for path in paths:
            self._loaded.pop(path, None)

    def __getitem__(self, path: str) -> bytes:
        if path not in self._loaded:
            self.prefetch([path])
            if path not in self._loaded:
                raise KeyError(path)
        return self._loaded[path]

    def __contains__(self, path: object) -> bool:
        return path in self._oids

    def __iter__(self) -> Iterator[str]:
        return iter(self._oids)

    def __len__(self) -> int:
        return len(self._oids)


def changed_paths(repo: Path, old: str, new: str) -> list[str] | None:
    """The paths whose entries differ between the trees of commits `old` and `new` (added, changed, removed; no
    rename detection), from `git diff-tree`; None when `old` is not in `repo` (it cannot be compared)."""
    result = git_result(repo, "diff-tree", "-r", "-z", "--no-renames", "--name-only", old, new)
    if result.returncode != 0:
        return None
    return [path.decode("utf-8", "surrogateescape") for path in result.stdout.split(b"\0") if path]


def commit_info(repo: Path, commit: str) -> tuple[str, str]:
    """A commit's tree id and message."""
    tree, _, message = run_git(repo, "log", "-1", "--format=%T%n%B", commit).decode("utf-8", "replace").partition("\n")
    return tree, message


def trailer(message: str, key: str) -> str | None:
    """The value of the last `key: value` line of a commit message's last paragraph (its trailers)."""
    found = None
    for line in message.strip().split("\n\n")[-1].splitlines():
        name, colon, value = line.partition(":")
        if colon and name.strip() == key:
            found = value.strip()
    return found


class TreeReader(Mapping[str, bytes]):
    """One commit's files, looked up by path on demand through one long-lived `git cat-file --batch-command`:
    a compile that reaches a handful of paths of a tree holding hundreds of thousands asks for those alone (no
    listing of the tree). Membership, object ids and contents are cached. Iterating lists the whole tree once
    (`ls-tree`), as a fallback for code that needs every path. Close it (or use it as a context manager)."""

    def __init__(self, repo: Path, commit: str) -> None:
        self.repo = repo
        self.commit = commit
        self._oids: dict[str, str | None] = {}
        self._loaded: dict[str, bytes] = {}
        self._listing: list[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def _git(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            self._process = subprocess.Popen(
                ["git", "-C", str(self.repo), "cat-file", "--batch-command"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=clean_env(),
            )
        return self._process

    def _ask(self, command: str, path: str) -> tuple[str | None, bytes | None]:
        process = self._git()
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(f"{command} {self.commit}:{path}\n".encode("utf-8", "surrogateescape"))
        process.stdin.flush()
        header = process.stdout.readline().decode()
        if not header:  # git is gone: never take that for a missing file
            raise GitCommandError(("cat-file", "--batch-command"), process.poll() or -1, "stopped answering")
        if header.endswith("missing\n") or header.endswith("ambiguous\n"):
            return None, None
        oid, kind, size = header.split()
        if command == "info":
            return (oid if kind == "blob" else None), None
        data = process.stdout.read(int(size) + 1)[:-1]
        return (oid if kind == "blob" else None), data

    def oid(self, path: str) -> str:
        found = self._oid(path)
        if found is None:
            raise KeyError(path)
        return found

    def _oid(self, path: str) -> str | None:
        if path not in self._oids:
            self._oids[path] = self._ask("info", path)[0] if path and not path.endswith("/") else None
        return self._oids[path]

    def prefetch(self, paths: Iterable[str]) -> None:
        for path in paths:
            if path in self:
                self[path]

    def __getitem__(self, path: str) -> bytes:
        if path not in self._loaded:
            if self._oid(path) is None:
                raise KeyError(path)
            self._loaded[path] = self._ask("contents", path)[1] or b""
        return self._loaded[path]

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self._oid(path) is not None

    def __iter__(self) -> Iterator[str]:
        if self._listing is None:
            oids, _ = file_oids(self.repo, self.commit)
            self._oids.update(oids)
            self._listing = list(oids)
        return iter(self._listing)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def close(self) -> None:
        if self._process is not None:
            with contextlib.suppress(OSError):
                assert self._process.stdin is not None
                self._process.stdin.close()
            self._process.wait()
            self._process = None

    def __enter__(self) -> TreeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_tree(repo: Path, ref: str, *, prefix: str = "") -> dict[str, bytes]:
    """Every regular file of `ref`'s tree as `{posix path from the repo root: bytes}`, without a checkout.

    `prefix` keeps only files under that folder (paths stay relative to the repo root, so messages can name
    the real file). Symlinks and submodules are not files with content of their own and are left out.
    """
    commit = resolve_commit(repo, ref)
    files = [entry for entry in list_tree(repo, commit, prefix=prefix) if entry.mode in ("100644", "100755")]
    blobs = read_blobs(repo, [entry.oid for entry in files])
    return {entry.path: blobs[entry.oid] for entry in files}


def _parse_batch(output: bytes, count: int) -> Iterator[tuple[str, bytes]]:
    # Each answer is "<oid> <type> <size>\n<content>\n"; sizes make the stream self-delimiting.
    position = 0
    for _ in range(count):
        header_end = output.index(b"\n", position)
        header = output[position:header_end].decode()
        oid, _, rest = header.partition(" ")
        if rest == "missing" or rest.endswith(" missing"):
            raise GitCommandError(("cat-file", "--batch"), 128, f"object {oid} is missing")
        size = int(rest.rsplit(" ", 1)[1])
        start = header_end + 1
        yield oid, output[start : start + size]
        position = start + size + 1


def _is_repository(repo: Path) -> bool:
    return git_result(repo, "rev-parse", "--git-dir").returncode == 0


# Writing: objects go in through `git fast-import` (one process, one pack).

TEMP_REF_PREFIX = "refs/kratix/tmp/"


@dataclass(frozen=True)
class Signature:
    """Who and when, as git writes it: `Name <email> <epoch seconds> <+hhmm>`."""

    name: str
    email: str
    seconds: int
    offset: str = "+0000"

    def __post_init__(self) -> None:
        if any(c in self.name + self.email for c in "<>\n") or not re.fullmatch(r"[+-]\d{4}", self.offset):
            raise ValueError(f"invalid git identity {self.name!r} <{self.email!r}> {self.offset}")

    def line(self) -> str:
        return f"{self.name} <{self.email}> {self.seconds} {self.offset}"


@dataclass(frozen=True)
class WrittenCommit:
    commit: str
    tree: str


_BAD_COMPONENT = re.compile(r"(?:^|/)(?:|\.|\.\.|\.git)(?:/|$)", re.IGNORECASE)
_CONTROL = re.compile(r"[\0\n\r]")


def check_paths(paths: list[str], *, known: Container[str] = frozenset()) -> list[str]:
    """The problems that keep `paths` from being files of one valid Git tree (empty when none). Written to stay
    cheap for tens of thousands of paths: one regex per new path (`known` ones are in a valid tree already),
    and each folder visited once (a file and a folder may clash between any two paths)."""
    problems = []
    folders: set[str] = set()
    for path in paths:
        if path in known:
            pass
        elif not path or path.startswith("/"):
            problems.append(f"{path!r}: must be a relative posix path")
        elif _CONTROL.search(path):
            problems.append(f"{path!r}: contains a control character")
        elif _BAD_COMPONENT.search(path):
            problems.append(f"{path!r}: empty, '.', '..' or '.git' component")
        cut = path.rfind("/")
        while cut > 0 and path[:cut] not in folders:  # a folder seen before has had its parents added too
            folders.add(path[:cut])
            cut = path.rfind("/", 0, cut)
    clashes = folders.intersection(paths)
    for path in paths:
        folder = next((f for f in _folders(path.split("/")) if f in clashes), None) if clashes else None
        if folder is not None:
            problems.append(f"{path!r}: {folder!r} is a file, so it cannot also be a folder")
    return problems


# The longest delta chain in what kratix writes (fast-import) and repacks (gc). Bookkeeping shards are read back
# by every compile, and fast-import deltifies each blob against the one written before it: at git's default of 50,
# a cold publish chained its 50 provenance shards up to depth 45, and reading one 2 MB shard of a 100,000-request
# platform took 200 ms. At 4, reading a shard of the 10,000-request benchmark took 5.5 ms instead of 19 ms on
# average, for a pack 7.5% larger.
DELTA_DEPTH = 4
# The largest blob fast-import tries a delta for. It deltifies a blob against the one written just before it in the
# stream, never against the file's previous version, and the blobs over 1 MiB kratix writes are bookkeeping shards
# of other namespaces and destinations, which share too little: at 100,000 requests, deltas for the 100 shards
# took 2.7 s and made the pack 0.6% larger, and a one-request change spent 30 ms on them. `git gc` finds the real
# deltas (a shard against its own previous version) when it repacks.
NO_DELTA_OVER = "1m"


def collect_garbage(repo: Path) -> None:
    """`git gc --auto`, in the foreground (no process outlives the compile) and keeping delta chains short."""
    run_git(
        repo, "-c", "gc.autoDetach=false", "-c", f"pack.depth={DELTA_DEPTH}", "gc", "--auto", "--quiet", check=False
    )


def write_commit(
    repo: Path,
    *,
    parent: str | None,
    changes: Mapping[str, Content | None],
    replace_all: bool,
    message: str,
    author: Signature,
    committer: Signature | None = None,
    timeout: float | None = None,
    tree_trailer: str | None = None,
) -> WrittenCommit:
    """Write a commit with one `git fast-import` without moving or making any ref; return its id and tree id.

    The new tree is the parent's tree (empty with `replace_all` or no parent) with `changes` applied: bytes
    write a plain 100644 file, a `BlobRef` reuses a blob the repo already holds, None deletes. fast-import
    names the commit by a ref of its own, which a `reset` without a commit removes before fast-import writes
    any ref: the objects stay unreferenced until the caller moves a branch (a kill before then leaves garbage
    for `git gc`, never a ref). With `tree_trailer`, the message ends with the trailer `<tree_trailer>: <tree
    id>`, so that a reader can tell the commit's tree is still the one its writer made (an amended commit is
    not): fast-import tells the tree it built (`ls`), and a second commit of that tree carries the trailer.
    """
    name = f"{TEMP_REF_PREFIX}{time.time_ns()}-{os.getpid()}-{secrets.token_hex(4)}"
    stream = _import_stream(name, parent, changes, replace_all, message, author, committer or author)
    with _Importer(repo, timeout=timeout) as importer:
        importer.send(stream)
        tree = importer.ask(b'ls :1 ""\n').split()[2]
        mark = b":1"
        if tree_trailer:
            final = with_trailer(message, tree_trailer, tree).encode()
            importer.send(
                [
                    b"reset %s\n" % name.encode(),  # the second commit's parent is `parent`, not the first
                    b"commit %s\nmark :2\n" % name.encode(),
                    f"author {author.line()}\ncommitter {(committer or author).line()}\n".encode(),
                    b"data %d\n" % len(final),
                    final,
                    *([f"from {parent}\n".encode()] if parent is not None else []),
                    b'M 040000 %s ""\n\n' % tree.encode(),
                ]
            )
            mark = b":2"
        commit = importer.ask(b"get-mark %s\n" % mark).strip()
        importer.send([b"reset %s\n\n" % name.encode()])  # fast-import writes no ref for it
    return WrittenCommit(commit, tree)


class _Importer:
    """One `git fast-import` fed a stream and asked questions (`ls`, `get-mark`) whose answers come back on a
    pipe of their own (`--cat-blob-fd`). Leaving the `with` block finishes the import (`done`); an exception
    inside stops fast-import instead, and nothing is written. Its stderr goes to a file, so git never blocks on
    it; with `timeout`, its process group is killed when it passes."""

    def __init__(self, repo: Path, *, timeout: float | None) -> None:
        self.args = (
            "fast-import",
            "--quiet",
            f"--depth={DELTA_DEPTH}",
            f"--big-file-threshold={NO_DELTA_OVER}",
        )
        self.repo = repo
        self.timeout = timeout

    def __enter__(self) -> _Importer:
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__
        answers, self._answers_in = os.pipe()
        try:
            self._process = subprocess.Popen(
                ["git", "-C", str(self.repo), *self.args, f"--cat-blob-fd={self._answers_in}"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=self._err,
                env=clean_env(),
                start_new_session=True,
                pass_fds=(self._answers_in,),
            )
        finally:
            os.close(self._answers_in)
        self._answers = os.fdopen(answers, "rb")
        self._killer = threading.Timer(self.timeout, _kill_group, (self._process.pid,)) if self.timeout else None
        if self._killer is not None:
            self._killer.start()
        # `feature done`: a stream cut short (this process killed) is refused, not taken for a whole one.
        self.send([b"feature done\n"])
        return self

    def send(self, chunks: Iterable[bytes]) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        try:
            stdin.writelines(chunks)
        except BrokenPipeError:  # fast-import stopped: its exit status and stderr say why
            self._failed()

    def ask(self, question: bytes) -> str:
        self.send([question])
        assert self._process.stdin is not None
        try:
            self._process.stdin.flush()
        except BrokenPipeError:
            self._failed()
        answer = self._answers.readline()
        if not answer.endswith(b"\n") or answer.startswith(b"missing"):
            self._failed()
        return answer.decode()

    def _failed(self) -> None:
        with contextlib.suppress(OSError):
            self._process.stdin.close()  # type: ignore[union-attr]
        self._process.wait()
        self._raise()

    def _raise(self) -> None:
        if self._process.returncode == -signal.SIGKILL and self._killer is not None:
            raise GitCommandError(self.args, -signal.SIGKILL, f"timed out after {self.timeout:g}s (killed)")
        self._err.seek(0)
        detail = self._err.read().decode("utf-8", "replace")
        raise GitCommandError(self.args, self._process.returncode, detail or "fast-import gave no answer")

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        try:
            stdin = self._process.stdin
            assert stdin is not None
            if error is None:
                with contextlib.suppress(BrokenPipeError):
                    stdin.write(b"done\n")
            with contextlib.suppress(BrokenPipeError):
                stdin.close()
            if error is not None:
                self._process.kill()
            self._process.wait()
            if error is None and self._process.returncode != 0:
                self._raise()
        finally:
            if self._killer is not None:
                self._killer.cancel()
            self._answers.close()
            self._err.close()


class BlobWriter:
    """Blobs written into a repo's object store while a compile runs, through one `git fast-import` beside it.
    `store` returns a `BlobRef` at once (the object id is computed here), so a compile that hands each output
    file over as it is made (`kratix.model.documents.Store`) never holds every file's bytes: at 100,000
    requests those were a third of its memory. The commit then names the blobs as it names carried-over ones.
    The first `hold` bytes are handed back as they are: a small compile starts no process for them.

    A thread feeds fast-import from a queue, so the compile goes on while fast-import compresses; when
    `QUEUED_BYTES` wait, `store` waits for fast-import. The blobs are in the repo once `close` returns
    (fast-import stores each distinct blob once). Until a commit names them they are unreferenced: a publish
    that does not happen (a refused deletion, a lost race, an error) leaves garbage that `git gc` prunes like
    any other, never a changed branch. Use it as a context manager: an exception inside stops fast-import
    instead of finishing the pack."""

    QUEUED_BYTES = 32 << 20
    _ARGS = ("fast-import", "--quiet", f"--depth={DELTA_DEPTH}", f"--big-file-threshold={NO_DELTA_OVER}")

    def __init__(self, repo: Path, *, hold: int = 16 << 20, timeout: float | None = None) -> None:
        self.repo = repo
        self.timeout = timeout
        self._hold = hold  # bytes still to hand back before writing begins
        self._process: subprocess.Popen[bytes] | None = None
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._room = threading.Condition()
        self._queued = 0  # bytes in the queue
        self._feeder: threading.Thread | None = None
        self._stderr: Any = None

    def store(self, data: bytes) -> Content:
        if self._hold > 0:
            self._hold -= len(data)
            return data
        if self._process is None:
            self._start()
        with self._room:
            self._room.wait_for(lambda: self._queued < self.QUEUED_BYTES)
            self._queued += len(data)
        self._queue.put(data)
        return BlobRef(blob_id(data), made=True)

    def close(self) -> None:
        """Finish the pack: every blob written is in the repo when this returns."""
        if self._process is not None:
            self._finish(abandon=False)

    def _start(self) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as fast-import; closed with it
        self._process = subprocess.Popen(
            ["git", "-C", str(self.repo), *self._ARGS],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env=clean_env(),
            start_new_session=True,
        )
        self._feeder = threading.Thread(target=self._feed, args=(self._process,), name="kratix-blobs", daemon=True)
        self._feeder.start()

    def _feed(self, process: subprocess.Popen[bytes]) -> None:
        stdin = process.stdin
        assert stdin is not None
        data: bytes | None = b""
        with contextlib.suppress(OSError):  # fast-import stopped: its exit status and stderr say why
            # `feature done`: a stream cut short (this process killed) is refused, not taken for a whole one.
            stdin.write(b"feature done\n")
            while (data := self._queue.get()) is not None:
                stdin.writelines((b"blob\ndata %d\n" % len(data), data, b"\n"))
                self._taken(len(data))
            stdin.write(b"done\n")
        while data is not None:  # fast-import is gone: drain, so that `store` never waits for room
            self._taken(len(data))
            data = self._queue.get()
        with contextlib.suppress(OSError):
            stdin.close()

    def _taken(self, size: int) -> None:
        with self._room:
            self._queued -= size
            self._room.notify()

    def _finish(self, *, abandon: bool) -> None:
        process, feeder, self._process = self._process, self._feeder, None
        assert process is not None and feeder is not None
        if abandon:
            _kill_group(process.pid)
        self._queue.put(None)
        feeder.join()
        try:
            process.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process.pid)
            process.wait()
            raise GitCommandError(self._ARGS, -signal.SIGKILL, f"timed out after {self.timeout:g}s (killed)") from None
        finally:
            self._stderr.seek(0)
            stderr = self._stderr.read().decode("utf-8", "replace")
            self._stderr.close()
        if process.returncode != 0 and not abandon:
            raise GitCommandError(self._ARGS, process.returncode, stderr)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, kind: object, *rest: object) -> None:
        if self._process is not None:
            self._finish(abandon=kind is not None)


def with_trailer(message: str, key: str, value: str) -> str:
    """`message` with the trailer `key: value` added to its trailers (a last paragraph of `Key: value` lines)."""
    text = message.rstrip("\n")
    last = text.split("\n\n")[-1].splitlines()
    joined = (
        "\n" if "\n\n" in text and all(":" in line and " " not in line.split(":", 1)[0] for line in last) else "\n\n"
    )
    return f"{text}{joined}{key}: {value}\n"


def delete_stale_temp_refs(repo: Path, *, older_than_seconds: float) -> None:
    """Remove temporary refs left by runs killed between fast-import and cleanup (`write_commit` writes none
    now; earlier releases did). Asks git only when the ref files may hold one: this runs on every publish."""
    if _surely_no_refs_under(repo, TEMP_REF_PREFIX):
        return
    cutoff = time.time_ns() - int(older_than_seconds * 1e9)
    refs = run_git(repo, "for-each-ref", "--format=%(refname)", TEMP_REF_PREFIX).decode().split()
    stale = [ref for ref in refs if _temp_ref_time(ref) < cutoff]
    if stale:
        # Housekeeping only: a leftover ref merely keeps some objects alive, and the next run tries again.
        commands = "".join(f"delete {ref}\n" for ref in stale).encode()
        run_git(repo, "update-ref", "--stdin", input=commands, check=False)


def _surely_no_refs_under(repo: Path, prefix: str) -> bool:
    """Whether `repo`'s refs, stored as files (loose and packed), hold none under `prefix`; False when unsure
    (another ref store, a linked work tree)."""
    git_dir = repo / ".git" if (repo / ".git").is_dir() else repo
    if not (git_dir / "HEAD").is_file() or (git_dir / "reftable").exists():
        return False
    loose = git_dir / prefix
    if loose.is_dir() and any(loose.iterdir()):
        return False
    try:
        return prefix.encode() not in (git_dir / "packed-refs").read_bytes()
    except FileNotFoundError:
        return True


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group ended on its own meanwhile
        os.killpg(pid, signal.SIGKILL)


def _import_stream(
    ref: str,
    parent: str | None,
    changes: Mapping[str, Content | None],
    replace_all: bool,
    message: str,
    author: Signature,
    committer: Signature,
) -> list[bytes]:
    text = message if message.endswith("\n") else message + "\n"
    encoded = text.encode()
    chunks = [
        f"commit {ref}\nmark :1\nauthor {author.line()}\ncommitter {committer.line()}\n".encode(),
        b"data %d\n" % len(encoded),
        encoded,
    ]
    if parent is not None:
        chunks.append(f"from {parent}\n".encode())
    if replace_all:
        chunks.append(b"deleteall\n")
    ordered = sorted(changes.items(), key=lambda item: (item[1] is not None, item[0]))  # deletions first
    for path, content in ordered:
        quoted = _quote(path)
        if content is None:
            chunks.append(b"D " + quoted + b"\n")
        elif isinstance(content, BlobRef):
            chunks.append(b"M 100644 " + content.oid.encode() + b" " + quoted + b"\n")
        else:
            chunks += [b"M 100644 inline " + quoted + b"\n", b"data %d\n" % len(content), content, b"\n"]
    chunks.append(b"\n")
    return chunks


def _quote(path: str) -> bytes:
    # Always C-quote, so paths with spaces or a leading '"' reach fast-import unchanged.
    escaped = path.encode("utf-8", "surrogateescape").replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b'"' + escaped + b'"'


def _folders(parts: list[str]) -> Iterator[str]:
    for end in range(1, len(parts)):
        yield "/".join(parts[:end])


def _temp_ref_time(ref: str) -> int:
    stamp = ref[len(TEMP_REF_PREFIX) :].split("-", 1)[0]
    return int(stamp) if stamp.isdigit() else 0


# Refs beside the branches (shard results, `kratix.compile.shards`): listed, set and deleted locally, or on a remote
# `url` through the local mirror `repo`.


def list_refs(repo: Path, prefix: str, *, url: str | None = None, timeout: float | None = None) -> dict[str, str]:
    """`{ref: commit}` of the refs under the folder `prefix` (ending in `/`): in `repo`, or on the remote `url`."""
    if url is None:
        output = run_git(repo, "for-each-ref", "--format=%(objectname) %(refname)", prefix, timeout=timeout)
    else:
        output = run_git(repo, "ls-remote", "--refs", url, f"{prefix}*", timeout=timeout or NETWORK_TIMEOUT_SECONDS)
    found = {}
    for line in output.decode().splitlines():
        oid, _, ref = line.replace("\t", " ").partition(" ")
        if ref.startswith(prefix):
            found[ref] = oid
    return found


def fetch_refs(repo: Path, url: str, refs: Iterable[str], *, timeout: float | None = None) -> None:
    """Copy `refs` (and their objects) from the remote `url` into `repo` under the same names."""
    specs = [f"+{ref}:{ref}" for ref in refs]
    if specs:
        run_git(
            repo,
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            url,
            *specs,
            timeout=timeout or NETWORK_TIMEOUT_SECONDS,
        )


def set_ref(repo: Path, ref: str, commit: str, *, url: str | None = None, timeout: float | None = None) -> None:
    """Point `ref` at `commit` (written in `repo`), replacing what it held: in `repo`, and on the remote `url`."""
    if url is not None:
        run_git(
            repo, "push", "--quiet", "--no-verify", url, f"+{commit}:{ref}", timeout=timeout or NETWORK_TIMEOUT_SECONDS
        )
    run_git(repo, "update-ref", ref, commit, timeout=timeout)


def delete_refs(repo: Path, refs: Iterable[str], *, url: str | None = None, timeout: float | None = None) -> None:
    """Remove `refs` from the remote `url` (when given) and from `repo`; a ref already gone is no error."""
    names = sorted(set(refs))
    if not names:
        return
    if url is not None:
        run_git(
            repo,
            "push",
            "--quiet",
            "--no-verify",
            url,
            *(f":{ref}" for ref in names),
            timeout=timeout or NETWORK_TIMEOUT_SECONDS,
        )
    run_git(repo, "update-ref", "--stdin", input="".join(f"delete {ref}\n" for ref in names).encode(), timeout=timeout)


def read_named(repo: Path, names: list[str], *, timeout: float | None = None) -> list[bytes | None]:
    """The blobs `names` give (`<commit>:<path>`), in order, with one `git cat-file --batch`; None for a name
    that gives none (a path the commit does not hold)."""
    if not names:
        return []
    output = run_git(
        repo, "cat-file", "--batch", input="".join(f"{name}\n" for name in names).encode(), timeout=timeout
    )
    found: list[bytes | None] = []
    position = 0
    for _ in names:
        header_end = output.index(b"\n", position)
        header = output[position:header_end].decode("utf-8", "replace")
        position = header_end + 1
        if header.endswith(" missing") or header.endswith(" ambiguous"):
            found.append(None)
            continue
        size = int(header.rsplit(" ", 1)[1])
        found.append(output[position : position + size] if header.split(" ")[1] == "blob" else None)
        position += size + 1
    return found
