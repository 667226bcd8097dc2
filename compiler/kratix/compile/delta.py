"""A compile that costs what changed: only the changed request files are read and compiled, and only the
bookkeeping and destinations they reach are read and written.

In: the input tree holding the Promises, Destinations and the changed request files alone (the `scope`), the
previous output as `previous.ScopedPrevious` (the cache shards of the scope's namespaces and the provenance shards
of the destinations its requests had or get output on, read by path), and the previous `Totals`. Out: a `Delta`
(the changed paths of the output tree, deletions included, and what to report), or why this compile must read
everything (a `str`: the caller then runs the full compile, which is always correct), or `MoreShards` when the
scope's output reaches destinations whose provenance was not read yet.

Why the result is the full compile's, byte for byte: with nothing but request files changed, the same compiler,
settings and images (`incremental.context_fingerprint`) and every request settled (`kratix.memory.totals`), a full
compile
reuses every request outside the scope from the cache, unchanged. What it computes from all requests together is
recomputed here from the bookkeeping that holds it: a destination's generated files and provenance from its
provenance shard, a namespace's cache shard from its records, placements from the cache records, the totals from
the totals. Anything this does not model (a compound request, a request whose output clashes with another's, a
Promise whose output changes) falls back to the full compile.
No I/O: the caller reads and publishes (`kratix.cli.publishing`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from kratix.compile import pipeline
from kratix.compile.pipeline import CompileResult
from kratix.layout import tree as layout
from kratix.load import INPUT_FOLDERS
from kratix.load.requests import folder_namespace_of
from kratix.memory import cache, provenance, totals
from kratix.memory.previous import ScopedPrevious, decode_placements, encode_placements
from kratix.model import paths
from kratix.model.documents import BlobRef, Content, SourceTree
from kratix.model.platform import Destination
from kratix.model.settings import Settings
from kratix.publish import plan as plans

REQUESTS = "requests"
UNCHANGED = BlobRef("")  # a file of the destination kept as it is: its content is not needed


@dataclass(frozen=True)
class Delta:
    result: CompileResult  # diagnostics and summary as a full compile reports them (`files`: the changed ones)
    changes: Mapping[str, Content | None]  # path -> new content, None: removed
    message: str
    trips: Sequence[plans.GuardTrip]


@dataclass(frozen=True)
class MoreShards:
    destinations: frozenset[str]  # every destination whose provenance the scope needs


def scope_of(changed: Sequence[str]) -> frozenset[str] | str:
    """The request files among the changed paths of the input, or why a change is not one of request files
    alone (a Promise, a Destination, a request file outside a namespace folder)."""
    scope = set()
    for path in changed:
        top = path.split("/", 1)[0]
        if top not in INPUT_FOLDERS or any(part.startswith(".") for part in path.split("/")):
            continue  # not read by a compile
        if top != REQUESTS:
            return f"{path} changed"
        if folder_namespace_of(path) is None:
            return f"{path} is directly under {REQUESTS}/"
        scope.add(path)
    return frozenset(scope)


def shards_for(scope: frozenset[str]) -> frozenset[str]:
    """The cache shards the scope's request files have their records in (a request's namespace is its folder)."""
    return frozenset(paths.cache_shard(folder_namespace_of(path) or "") for path in scope)


def compile_delta(
    tree: SourceTree, previous: ScopedPrevious, before: totals.Totals, scope: frozenset[str], *, settings: Settings
) -> Delta | MoreShards | str:
    """See the module docstring."""
    result = pipeline.compile_platform(tree, settings=settings, previous=previous)
    now = totals.decode(_read(result, paths.TOTALS, previous))
    old = [r for shard in previous.cache_shards.values() for r in shard]
    mine = [r for r in old if r.file in scope]
    why = _unmodelled(result, previous, before, now, {r.key for r in old if r.file not in scope})
    if why:
        return why
    owners = {r.key for r in mine} | set(result.requests)
    fresh = [e for e in result.provenance.values() if e.owner in owners]
    destinations = _reached(mine, fresh)
    if not {paths.provenance_shard(d) for d in destinations} <= previous.provenance_paths:
        return MoreShards(destinations)
    found = _destinations(sorted(destinations), result, previous, owners, fresh, tree.commit)
    if isinstance(found, str):
        return found
    changes, before_entries, after_entries = found
    changes.update(_statuses(result, previous, mine))
    changes.update(_cache_shards(result, previous, scope))
    changes.update(_placements(result, previous, mine))
    summary, counted = _totals(result, previous, before, now, mine, changes)
    changes.update({paths.TOTALS: counted} if not previous.same(paths.TOTALS, counted) else {})
    trips = plans.guard(before_entries, after_entries, threshold=settings.publish.deletion_threshold)
    reported = replace(
        result, files={p: c for p, c in changes.items() if c is not None}, summary=summary, provenance=after_entries
    )
    return Delta(reported, changes, _message(tree, summary, changes, before_entries, after_entries), trips)


def _message(
    tree: SourceTree,
    summary: pipeline.Summary,
    changes: Mapping[str, Content | None],
    before: Mapping[str, provenance.Entry],
    after: Mapping[str, provenance.Entry],
) -> str:
    """The commit message a full compile writes for these changes."""
    visible = [p for p in changes if not paths.is_bookkeeping(p)]
    entries = [after.get(p) or before.get(p) for p in visible]
    return pipeline.message(tree, summary, len(visible), [e.destination for e in entries if e is not None])


def _reached(mine: Sequence[cache.Record], fresh: Sequence[provenance.Entry]) -> frozenset[str]:
    """The destinations the scope's requests had output on, and those they have output on now."""
    had = {d for r in mine for d in r.placements.values()}
    return frozenset(had | {e.destination for e in fresh if e.destination})


def _destinations(
    names: Sequence[str],
    result: CompileResult,
    previous: ScopedPrevious,
    owners: set[str],
    fresh: Sequence[provenance.Entry],
    commit: str | None,
) -> tuple[dict[str, Content | None], dict[str, provenance.Entry], dict[str, provenance.Entry]] | str:
    """Every destination the scope reaches: the changes to its files, its provenance before and after."""
    changes: dict[str, Content | None] = {}
    before: dict[str, provenance.Entry] = {}
    after: dict[str, provenance.Entry] = {}
    for name in names:
        outcome = _destination(name, result, previous, owners, fresh, commit)
        if isinstance(outcome, str):
            return outcome
        gone, new_entries, files = outcome
        before.update((e.path, e) for e in previous.provenance_shards.get(paths.provenance_shard(name), ()))
        after.update(new_entries)
        changes.update((path, None) for path in gone)
        changes.update((path, content) for path, content in files.items() if not previous.same(path, content))
    return changes, before, after


def _unmodelled(
    result: CompileResult, previous: ScopedPrevious, before: totals.Totals, now: totals.Totals, others: set[str]
) -> str | None:
    """Why the full compile could decide differently than the scope alone, or None."""
    if previous.warnings:
        return previous.warnings[0]
    if now.context != before.context:
        return "a setting, the compiler or an image a Promise runs changed since the last compile"
    if any(key in others for key in result.requests):
        return "a changed file requests what an unchanged file requests"
    if any(s.children for s in result.requests.values()):
        return "a compound Promise's request changed"
    if any(paths.is_cache_shard(p) and p not in previous.cache_paths for p in result.files):
        return "a request's namespace is not its folder's"
    for path, content in result.files.items():
        promise_level = path.startswith(paths.PROMISE_STATUS_FOLDER + "/") or path == paths.INVENTORY
        if promise_level and not previous.same(path, content):
            return f"{path} changes"
    return None


def _destination(
    name: str,
    result: CompileResult,
    previous: ScopedPrevious,
    owners: set[str],
    fresh: Sequence[provenance.Entry],
    commit: str | None,
) -> tuple[dict[str, provenance.Entry], dict[str, provenance.Entry], dict[str, Content]] | str:
    """One destination the scope reaches: its files and provenance before and after (workloads of requests
    outside the scope carried over, generated files made again)."""
    platform = result.platform
    destination = platform.destinations.get(name) if platform is not None else None
    if destination is None or destination.broken is not None:
        return f"Destination {name} is not as the last compile read it"
    shard = paths.provenance_shard(name)
    before = {e.path: e for e in previous.provenance_shards.get(shard, [])}
    kept = [e for e in before.values() if e.owner not in owners and e.owner != provenance.GENERATED]
    mine = [e for e in fresh if e.destination == name]
    why = _kept_apart(name, result, kept, mine)
    if why:
        return why
    made = _generated(destination, result, previous, kept, mine)
    files: dict[str, Content] = {e.path: result.files[e.path] for e in mine}
    files.update(made)
    entries = {e.path: e for e in kept}
    entries.update((e.path, e) for e in mine)
    for path in made:
        entries.setdefault(path, provenance.Entry(path=path, owner=provenance.GENERATED, destination=name))
    settled = provenance.settle_commits(
        entries.values(), unchanged=lambda p: previous.same(p, files.get(p)), previous=before, commit=commit
    )
    files[shard] = provenance.encode(settled)
    gone = {path: e for path, e in before.items() if path not in entries}
    return gone, {e.path: e for e in settled}, files


def _kept_apart(
    name: str, result: CompileResult, kept: Sequence[provenance.Entry], mine: Sequence[provenance.Entry]
) -> str | None:
    """Why the scope's output cannot simply sit beside what others keep on the destination, or None."""
    promised = {e.path for e in result.provenance.values() if e.destination == name and e.owner.startswith("Promise ")}
    if promised != {e.path for e in kept if e.owner.startswith("Promise ")}:
        return f"the Promises' output on Destination {name} changes"
    if _clash(kept, mine):
        return f"a changed request's output on Destination {name} clashes with another request's"
    return None


def _generated(
    destination: Destination,
    result: CompileResult,
    previous: ScopedPrevious,
    kept: Sequence[provenance.Entry],
    mine: Sequence[provenance.Entry],
) -> dict[str, bytes]:
    """The destination's generated files, made again from everything on it."""
    # What others keep is unchanged by definition: neither looked up nor compared, only listed (and read when an
    # aggregated file joins it).
    workloads: list[tuple[str, Content, bool]] = [(e.path, UNCHANGED, bool(e.objects)) for e in kept]
    workloads += [(e.path, result.files[e.path], bool(e.objects)) for e in mine]
    emitted = {o for e in (*kept, *mine) for o in e.objects}
    return layout.generated_files(destination, workloads, emitted, previous.files.__getitem__)


def _clash(kept: Sequence[provenance.Entry], mine: Sequence[provenance.Entry]) -> bool:
    """Whether the scope's output takes a path or an object another owner's output on the destination has (a
    full compile would fail the changed request; this compile leaves that to it)."""
    objects = {o for e in kept for o in e.objects}
    taken = {e.path for e in kept}
    folders = {f for e in kept for f in paths.folders(e.path)}
    return any(
        e.path in taken
        or e.path in folders
        or any(f in taken for f in paths.folders(e.path))
        or any(o in objects for o in e.objects)
        for e in mine
    )


def _statuses(
    result: CompileResult, previous: ScopedPrevious, mine: Sequence[cache.Record]
) -> dict[str, Content | None]:
    changes: dict[str, Content | None] = {r.status: None for r in mine if r.status and r.status not in result.files}
    changes.update(
        (path, content)
        for path, content in result.files.items()
        if path.startswith(paths.STATUS_FOLDER + "/") and not previous.same(path, content)
    )
    return changes


def _cache_shards(result: CompileResult, previous: ScopedPrevious, scope: frozenset[str]) -> dict[str, Content | None]:
    changes: dict[str, Content | None] = {}
    for path in sorted(previous.cache_paths):
        records = [r for r in previous.cache_shards.get(path, []) if r.file not in scope]
        if path in result.files:
            records += cache.decode_shard(_read(result, path, previous))
        data = cache.encode(records)
        if not records:
            if path in previous.files:
                changes[path] = None
        elif not previous.same(path, data):
            changes[path] = data
    return changes


def _placements(
    result: CompileResult, previous: ScopedPrevious, mine: Sequence[cache.Record]
) -> dict[str, Content | None]:
    """placements.json holds every request's: read and written only when the scope's change."""
    was = {k: v for r in mine for k, v in r.placements.items()}
    now = decode_placements(_read(result, paths.PLACEMENTS, previous))
    if was == now:
        return {}
    merged = decode_placements(previous.files[paths.PLACEMENTS]) if paths.PLACEMENTS in previous.files else {}
    for key in was:
        merged.pop(key, None)
    merged.update(now)
    data = encode_placements(merged)
    return {} if previous.same(paths.PLACEMENTS, data) else {paths.PLACEMENTS: data}


def _totals(
    result: CompileResult,
    previous: ScopedPrevious,
    before: totals.Totals,
    now: totals.Totals,
    mine: Sequence[cache.Record],
    changes: Mapping[str, Content | None],
) -> tuple[pipeline.Summary, bytes]:
    states = {state: before.states.get(state, 0) + now.states.get(state, 0) for state in totals.STATES}
    states["placed"] -= len(mine)  # settled: every request of the scope's files was placed
    unchecked = dict(before.unchecked)
    for record in mine:
        for kind in record.unchecked:
            unchecked[kind] = unchecked.get(kind, 0) - 1
    for kind, count in now.unchecked.items():
        unchecked[kind] = unchecked.get(kind, 0) + count
    added = sum(1 for p, c in changes.items() if c is not None and p not in previous.files)
    removed = sum(1 for c in changes.values() if c is None)
    counted = totals.Totals(
        context=now.context,
        states=states,
        unchecked=unchecked,
        promise_unchecked=now.promise_unchecked,
        files=before.files + added - removed,
        settled=now.settled,
    )
    kinds = {*now.promise_unchecked, *(k for k, v in unchecked.items() if v)}
    summary = replace(
        result.summary,
        requests=sum(states.values()),
        placed=states["placed"],
        pending=states["pending"],
        misplaced=states["misplaced"],
        failed=states["failed"],
        files=counted.files,
        not_validated_kinds=tuple(sorted(kinds)),
    )
    return summary, totals.encode(counted)


def _read(result: CompileResult, path: str, previous: ScopedPrevious) -> bytes:
    """A file of the scope's output: its bytes, or the previous file's when it was carried over as it was."""
    content = result.files[path]
    return content if isinstance(content, bytes) else previous.files[path]
