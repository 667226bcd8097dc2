"""State stores: the Git repos and branches one compile publishes to, read and written together.

In: the platform's GitStateStores and the default store (`--output-repo`, which also holds the compiler's
bookkeeping), and a `build` callback that compiles against what the stores hold. Out: one commit per store (per
repo and branch: stores sharing one are one target, and a store sharing the default store's is merged into it),
each with publishing's guarantees (`kratix.publish.commit`: fast-import, compare-and-swap, never a force-push).

The compile sees one output tree (`kratix.model.paths`): the default store's files at their paths, another store's under
`@<store>/`, holding only what lies under the paths of the stores writing there (Kratix's `spec.path` is allocated
to Kratix; what lies outside it is left as it is). A store that cannot be read, or that refuses the push, fails
alone: the compile runs again with it marked unreachable, so its Destinations keep what they had and the
bookkeeping keeps what it knew of them, and the others publish. When a branch moved under a publish, every store is
read again and the compile runs again; stores already published then make no second commit.
Refuses (PublishError): a default store that cannot be read or written, and a publish that lost every race.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from kratix import gitio
from kratix.memory.previous import PreviousOutput
from kratix.model import paths
from kratix.model.documents import BlobRef, Content, blob_id
from kratix.model.errors import KratixError, PublishError
from kratix.model.platform import StateStore
from kratix.publish import commit as publish

Build = Callable[[PreviousOutput], "tuple[Mapping[str, Content], Mapping[str, str]]"]  # files, message per prefix


@dataclass(frozen=True)
class Target:
    """One repo and branch a compile publishes to."""

    prefix: str  # its folder in the output tree: "" for the default store's, else `@<store>`
    stores: tuple[StateStore, ...]  # the GitStateStores publishing here (none for the default store alone)
    repo: publish.OutputRepo | None  # None: it could not be opened (see `error`), or does not exist yet (plan)
    error: str | None = None
    identity: publish.Identity = publish.Identity()

    @property
    def owned(self) -> tuple[str, ...]:
        """The folders of the repo the compile owns (`""`: all of it)."""
        if self.prefix == "" or any(store.path == "" for store in self.stores):
            return ("",)
        return tuple(sorted({store.path + "/" for store in self.stores}))

    @property
    def name(self) -> str:
        """What a person calls it: its GitStateStores, or the output repo."""
        names = ", ".join(store.name for store in self.stores)
        return f"GitStateStore {names}" if names and self.prefix else "the output repo"


@dataclass(frozen=True)
class Snapshot:
    """What every target held when read."""

    states: Mapping[str, publish.BranchState]  # by prefix, the targets that could be read
    unreachable: Mapping[str, str]  # by prefix: why it could not be read

    def previous(self, failed: Mapping[str, str] | None = None) -> PreviousOutput:
        default = self.states.get("")
        return PreviousOutput(
            CombinedFiles(self.states),
            default.commit if default else None,
            unreachable={**self.unreachable, **(failed or {})},
            read=frozenset(self.states),
        )


@dataclass(frozen=True)
class Published:
    outcomes: Mapping[str, publish.PublishResult]  # by prefix, what was published (or found up to date)
    failed: Mapping[str, str]  # by prefix: the targets that could not be read or written, and why
    previous: PreviousOutput  # what the last compile ran against
    targets: tuple[Target, ...] = field(default=())


def resolve(
    stores: Mapping[str, StateStore],
    *,
    default: publish.OutputRepo | None,
    create: bool = True,
    cache_dir: Path | None = None,
) -> list[Target]:
    """The targets, the default store's first. A store whose repo and branch are the default store's publishes
    with it (its files lie under its path there); stores sharing another repo and branch share one target."""
    grouped: dict[tuple[str, str], list[StateStore]] = {}
    for store in sorted(stores.values(), key=lambda s: s.name):
        grouped.setdefault((_location(store.url), store.branch), []).append(store)
    home = (_location(default.url or str(default.path)), default.branch) if default is not None else None
    targets = [Target("", tuple(grouped.pop(home, [])) if home else (), default)] if default is not None else []
    for group in grouped.values():
        repo, error = _open(group[0], create=create, cache_dir=cache_dir)
        author = next((store.author for store in group if store.author), None)
        identity = publish.Identity(*author) if author else publish.Identity()
        targets.append(Target(paths.store_prefix(group[0].name), tuple(group), repo, error, identity))
    return targets


def prefixes(targets: Iterable[Target]) -> tuple[tuple[str, str], ...]:
    """(store, prefix) for each store not at `@<store>` of the output tree (for `PublishSettings`)."""
    return tuple(
        (store.name, target.prefix) for target in targets for store in target.stores if target.prefix != store.prefix
    )


def read_all(targets: Iterable[Target], *, skip: Iterable[str] = ()) -> Snapshot:
    """Every target's branch as it is now (`skip`: prefixes not to read, as unreachable)."""
    states: dict[str, publish.BranchState] = {}
    unreachable: dict[str, str] = {}
    skipped = set(skip)
    for target in targets:
        if target.prefix in skipped:
            continue
        if target.repo is None:
            if target.error is None:
                states[target.prefix] = publish.BranchState(commit=None, files={})
            else:
                unreachable[target.prefix] = target.error
            continue
        try:
            states[target.prefix] = publish.read_branch(target.repo)
        except KratixError as exc:
            if target.prefix == "":
                raise
            unreachable[target.prefix] = _first_line(exc)
    return Snapshot(states, unreachable)


def split(files: Mapping[str, Content], targets: Iterable[Target], snapshot: Snapshot) -> dict[str, dict[str, Content]]:
    """The output tree as one tree per target; a store's target keeps what lies outside the stores' paths."""
    trees: dict[str, dict[str, Content]] = {}
    for target in targets:
        state = snapshot.states.get(target.prefix)
        if state is None:
            continue
        tree: dict[str, Content] = {}
        if target.owned != ("",):
            tree.update(
                (path, _content(state.files, path)) for path in state.files if not path.startswith(target.owned)
            )
        trees[target.prefix] = tree
    for path, content in files.items():
        prefix = paths.target_of(path)
        if prefix not in trees:
            raise ValueError(f"{path}: in no state store that was read")  # the compile never lays out such a path
        trees[prefix][paths.in_target(path)] = content
    return trees


def publish_all(
    targets: list[Target],
    build: Build,
    *,
    attempts: int = 5,
    backoff_seconds: float = 0.05,
    date: datetime | None = None,
) -> Published:
    """Compile against every target and publish each, the default store last (it records what the others
    hold); see the module docstring."""
    failed: dict[str, str] = {}
    made: dict[str, publish.PublishResult] = {}
    order = sorted(targets, key=lambda t: (t.prefix == "", t.prefix))
    for attempt in range(1, attempts + 1):
        snapshot = read_all(targets, skip=failed)
        previous = snapshot.previous(failed)
        files, messages = build(previous)
        trees = split(files, targets, snapshot)
        moved = False
        for target in order:
            if target.prefix not in snapshot.states or target.repo is None:
                continue
            expected = snapshot.states[target.prefix].commit
            tree, message = trees[target.prefix], messages.get(target.prefix, messages.get("", ""))

            def same_branch(
                state: publish.BranchState,
                expected: str | None = expected,
                tree: dict[str, Content] = tree,
                message: str = message,
            ) -> tuple[Mapping[str, Content], str] | None:
                return (tree, message) if state.commit == expected else None  # moved: compile again

            try:
                outcome = publish.publish(
                    target.repo,
                    same_branch,
                    attempts=2,
                    identity=target.identity,
                    date=date,
                    known=snapshot.states[target.prefix],
                )
            except PublishError as exc:
                if target.prefix == "":
                    raise
                failed[target.prefix] = _first_line(exc)
                moved = True
                break
            if outcome.aborted:
                moved = True
                break
            if outcome.changed or target.prefix not in made:
                made[target.prefix] = outcome
        if not moved:
            return Published(made, {**snapshot.unreachable, **failed}, previous, tuple(targets))
        if attempt < attempts:
            delay = min(backoff_seconds * 2 ** (attempt - 1), publish.MAX_BACKOFF_SECONDS)
            time.sleep(delay * random.uniform(0.5, 1.5))  # jitter: racing publishers must not retry in step
    raise PublishError(f"the state stores moved {attempts} times while publishing; gave up")


class CombinedFiles(Mapping[str, bytes]):
    """The files of several branches as one output tree (`kratix.model.paths`), read lazily: each target's files under
    its prefix, with their object ids known without reading them (`oid`), and read in batches (`prefetch`)."""

    def __init__(self, states: Mapping[str, publish.BranchState]) -> None:
        self._where: dict[str, tuple[Mapping[str, bytes], str]] = {}  # path in the tree -> (its files, its path)
        for prefix, state in states.items():
            files = state.files
            if prefix:
                self._where.update((f"{prefix}/{path}", (files, path)) for path in files)
            else:
                self._where.update((path, (files, path)) for path in files)

    def oid(self, path: str) -> str:
        files, inner = self._where[path]
        oid = getattr(files, "oid", None)
        return oid(inner) if oid is not None else blob_id(files[inner])

    def prefetch(self, wanted: Iterable[str]) -> None:
        self._pass_on("prefetch", wanted)

    def release(self, wanted: Iterable[str]) -> None:
        self._pass_on("release", wanted)

    def _pass_on(self, method: str, wanted: Iterable[str]) -> None:
        """Call `method` of each branch's files (when they have it) with the paths of `wanted` they hold."""
        by_source: dict[int, tuple[Mapping[str, bytes], list[str]]] = {}
        for path in wanted:
            found = self._where.get(path)
            if found is not None:
                by_source.setdefault(id(found[0]), (found[0], []))[1].append(found[1])
        for files, inner_paths in by_source.values():
            call = getattr(files, method, None)
            if call is not None:
                call(inner_paths)

    def __getitem__(self, path: str) -> bytes:
        files, inner = self._where[path]
        return files[inner]

    def __contains__(self, path: object) -> bool:
        return path in self._where

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


def _content(files: Mapping[str, bytes], path: str) -> Content:
    oid = getattr(files, "oid", None)
    return BlobRef(oid(path)) if oid is not None else files[path]


def _location(url: str) -> str:
    """What tells two repos apart: a URL as written, a local path as the folder it names."""
    if gitio.is_git_url(url):
        return url.rstrip("/")
    return str(Path(url).expanduser().resolve())


def _open(store: StateStore, *, create: bool, cache_dir: Path | None) -> tuple[publish.OutputRepo | None, str | None]:
    try:
        if not create and not gitio.is_git_url(store.url) and not Path(store.url).expanduser().exists():
            return None, None  # nothing published there yet
        return publish.open_output_repo(store.url, branch=store.branch, cache_dir=cache_dir, create=create), None
    except KratixError as exc:
        return None, _first_line(exc)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
