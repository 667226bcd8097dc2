"""The compile, top to bottom: load → schema → render → schedule → layout.

No I/O of its own: the input tree and the previous output come in as data, the output tree goes out as data
(command and image steps, when a Promise has them, run through `kratix.workflows.steps`; Secrets bound for a destination
with SOPS recipients are encrypted through `kratix.workflows.sops`).

`compile_platform(tree, previous=...)` is a pure function of the input tree and the previous output tree
(sticky placements and last-known-good output are read from it). One invalid request or failing template fails
that request alone: everything valid is rendered, every failure becomes a diagnostic and a status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from kratix.compile import promise_compile, request_compile, shards
from kratix.compile.request_compile import Progress
from kratix.layout import assemble
from kratix.layout import tree as layout
from kratix.memory import incremental, provenance, totals
from kratix.memory.previous import PreviousOutput
from kratix.model import paths
from kratix.model.diagnostics import Diagnostic, Severity
from kratix.model.documents import Content, SourceTree, Store, keep
from kratix.model.platform import Platform
from kratix.model.settings import Settings
from kratix.model.statuses import PromiseStatus, RequestStatus
from kratix.publish import plan as plans
from kratix.schema import conformance
from kratix.workflows import render, sops

__all__ = [
    "CompileResult",
    "PreviousOutput",
    "Summary",
    "commit_message",
    "compile_platform",
    "plan_platform",
    "prepare_publish",
]


@dataclass(frozen=True)
class Summary:
    promises: int
    promises_unavailable: int
    destinations: int
    requests: int
    placed: int
    pending: int
    misplaced: int
    failed: int
    files: int
    suspended: int = 0  # requests whose workflow a pipeline's workflow-control.yaml suspended
    not_validated_kinds: tuple[str, ...] = ()
    unsandboxed: tuple[str, ...] = ()  # the owners (requests, "Promise <name>") whose command steps ran unsandboxed
    kubernetes_version: str = ""  # the release built-in kinds were checked against ("": output not checked)


@dataclass(frozen=True)
class CompileResult:
    files: Mapping[str, Content]  # bytes, or a blob carried over from the previous output
    diagnostics: tuple[Diagnostic, ...]
    summary: Summary
    requests: Mapping[str, RequestStatus]  # by "Kind namespace/name"
    provenance: Mapping[str, provenance.Entry] = field(default_factory=dict)  # by output path
    platform: Platform | None = field(default=None, compare=False, repr=False)  # what was loaded
    promises: Mapping[str, PromiseStatus] = field(default_factory=dict, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return not any(d.severity is Severity.ERROR for d in self.diagnostics)


def _no_progress(what: str, done: int, total: int) -> None:
    return None


def compile_platform(
    tree: SourceTree,
    *,
    settings: Settings,
    previous: PreviousOutput | None = None,
    progress: Progress = _no_progress,
    workflows: shards.Workflows | None = None,
    store: Store = keep,
) -> CompileResult:
    """`workflows`: record the workflows of one shard, or replay what shards recorded (`kratix.compile.shards`).
    `store`: what takes each output file's bytes once nothing reads them again (a publish writes them as blobs)."""
    previous = previous or PreviousOutput()
    platform, diagnostics, reused, fingerprints = incremental.load_reusing(tree, previous, settings)
    schemas, unavailable = promise_compile.check_promises(platform, diagnostics)
    renderer = render.Renderer(tree, settings=settings.render, configs=platform.configs, sealer=sops.Sealer())
    if workflows is not None:
        renderer = workflows.wrap(renderer, fingerprints)
    promises = promise_compile.compile_promises(
        platform, renderer, unavailable, diagnostics, previous_status=previous.promise_status, now=settings.render.now
    )
    # Made before the requests are compiled: the workers check the output they can settle themselves (see
    # `request_compile._packed_if_settled`).
    checker = (
        conformance.Conformance.for_kubernetes(settings.validate.kubernetes_version)
        if settings.validate.validate_output
        else None
    )
    joined = frozenset(n for n, d in platform.destinations.items() if d.layout.mode == paths.AGGREGATED)
    keeper = layout.Keeper(store, joined)
    previous.prefetch_request_statuses((r.key.namespace, r.promise, r.key.name) for r in platform.requests)
    requests = request_compile.compile_requests(
        platform,
        schemas,
        promises,
        renderer,
        previous.placements,
        diagnostics,
        progress,
        taken=reused.keys(),
        parallelism=settings.render.parallelism,
        previous_status=previous.request_status,
        now=settings.render.now,
        checker=checker,
        keeper=keeper,
    )
    # From here on a request is known by its identity and where it was read: its body and the positions of its
    # fields, the largest part of what the loader built, are let go (a 100,000-request compile held 140 MB of them).
    platform = _located(platform, requests)
    requests.update(reused)
    assemble.reject_unfit_files(platform, promises, requests, diagnostics)
    assemble.reject_conflicts(promises, requests, diagnostics, previous)
    not_validated: tuple[str, ...] = ()
    kubernetes_version = ""
    if checker is not None:
        not_validated = assemble.validate_output(
            checker, promises, requests, diagnostics, jobs=settings.render.parallelism
        )
        kubernetes_version = checker.kubernetes_version
    assemble.check_secrets(platform, promises, requests, diagnostics, previous, sealer=sops.Sealer())
    assemble.reject_conflicts_with_published(promises, requests, diagnostics, previous)
    assemble.pack(promises, requests, jobs=settings.render.parallelism, keeper=keeper)
    files, entries = assemble.lay_out(
        platform,
        promises,
        requests,
        previous,
        commit=tree.commit,
        fingerprints=fingerprints,
        diagnostics=diagnostics,
        tree_files=tree.files,
        jobs=settings.render.parallelism,
        store=store,
    )
    diagnostics += [
        Diagnostic(paths.BOOKKEEPING, 1, 1, "", "bookkeeping.unreadable", warning, Severity.WARNING)
        for warning in previous.warnings
    ]
    diagnostics += _unreachable_stores(platform, previous)
    diagnostics.sort()
    context = incremental.context_fingerprint(platform.promises, settings)
    files[paths.TOTALS] = totals.encode(_totals(requests, diagnostics, context, not_validated, files))
    return CompileResult(
        files=files,
        diagnostics=tuple(diagnostics),
        summary=_summary(platform, requests, promises, files, not_validated, kubernetes_version),
        requests=requests,
        provenance=entries,
        platform=platform,
        promises=promises,
    )


def _located(platform: Platform, requests: Mapping[str, RequestStatus]) -> Platform:
    """`platform` holding its requests as their statuses do (`ResourceRequest.located`)."""
    return replace(
        platform,
        requests=tuple(
            requests[str(r.key)].request if str(r.key) in requests else r.located() for r in platform.requests
        ),
    )


def _totals(
    requests: Mapping[str, RequestStatus],
    diagnostics: list[Diagnostic],
    context: str,
    promise_unchecked: tuple[str, ...],
    files: Mapping[str, Content],
) -> totals.Totals:
    states: dict[str, int] = {}
    unchecked: dict[str, int] = {}
    for status in requests.values():
        states[status.state] = states.get(status.state, 0) + 1
        for kind in status.unchecked_kinds:
            unchecked[kind] = unchecked.get(kind, 0) + 1
    settled = not any(d.severity is Severity.ERROR for d in diagnostics) and all(
        s.state == "placed" and not s.children for s in requests.values()
    )
    return totals.Totals(
        context=context,
        states=states,
        unchecked=unchecked,
        promise_unchecked=promise_unchecked,
        files=len(files) + (paths.TOTALS not in files),
        settled=settled,
    )


def _unreachable_stores(platform: Platform, previous: PreviousOutput) -> list[Diagnostic]:
    """A state store that cannot be read or written fails its own destinations' publish, and says so."""
    found = []
    for prefix, why in sorted(previous.unreachable.items()):
        stores = sorted((s for s in platform.stores.values() if s.prefix == prefix), key=lambda s: s.name)
        names = sorted(d.name for d in platform.destinations.values() if paths.target_of(d.layout.root) == prefix)
        where = stores[0].source if stores else None
        message = (
            f"GitStateStore {', '.join(s.name for s in stores) or prefix} was not published: {why}; "
            f"Destination(s) {', '.join(names) or '(none)'} keep what they had until a compile publishes it"
        )
        found.append(
            Diagnostic(
                where.path if where else paths.BOOKKEEPING,
                where.line if where else 1,
                1,
                "",
                "statestore.unreachable",
                message,
                Severity.ERROR,
                f"GitStateStore {stores[0].name}" if stores else "",
            )
        )
    return found


def prepare_publish(
    tree: SourceTree,
    previous: PreviousOutput,
    *,
    settings: Settings,
    progress: Progress = _no_progress,
    workflows: shards.Workflows | None = None,
    store: Store = keep,
    carried: shards.Carried | None = None,
    carried_blobs: Mapping[str, bytes] | None = None,
) -> tuple[CompileResult, str, list[plans.GuardTrip]]:
    """Compile against what the output branches hold now; the default store's commit message and the guard's
    verdict. `carried`: the finished output shards stored for this input commit (`carried_blobs`: its files),
    carried over when it fits (`kratix.compile.shards`); else those requests are compiled here."""
    view = shards.carry(previous, carried, carried_blobs or {}) if carried is not None else None
    result = compile_platform(
        tree, settings=settings, previous=view or previous, progress=progress, workflows=workflows, store=store
    )
    if view is not None and carried is not None:
        if shards.carried_fits(carried, result.requests, result.promises, result.diagnostics):
            if isinstance(workflows, shards.Replayer):
                workflows.carried = carried.keys
            # Their steps ran in the shards, this compile's own run: the summary names them as if they ran here.
            unsandboxed = {e.owner for e in carried.entries if e.sandbox == "none"}
            if unsandboxed - set(result.summary.unsandboxed):
                named = tuple(sorted({*result.summary.unsandboxed, *unsandboxed}))
                result = replace(result, summary=replace(result.summary, unsandboxed=named))
        else:
            result = compile_platform(
                tree, settings=settings, previous=previous, progress=progress, workflows=workflows, store=store
            )
    trips = plans.guard(
        previous.provenance,
        result.provenance,
        threshold=settings.publish.deletion_threshold,
        unowned=plans.unowned_files(previous.files, previous.provenance, previous.layouts),
    )
    return result, commit_message(tree, result, previous), trips


def plan_platform(
    tree: SourceTree, previous: PreviousOutput, *, settings: Settings
) -> tuple[CompileResult, plans.Plan]:
    result = compile_platform(tree, settings=settings, previous=previous)
    return result, plans.make_plan(
        previous,
        result.files,
        result.provenance,
        statuses=result.requests,
        previous_placements=previous.placements,
        threshold=settings.publish.deletion_threshold,
    )


def commit_message(tree: SourceTree, result: CompileResult, previous: PreviousOutput, *, target: str = "") -> str:
    """The message of the commit to one state store (`target`: its prefix in the output tree, "" for the
    default store)."""
    # A carried-over blob is unchanged by construction: only new content and removed paths need a look.
    changed = [
        p
        for p, content in result.files.items()
        if (isinstance(content, bytes) or content.made)
        and paths.target_of(p) == target
        and not paths.is_bookkeeping(p)
        and not previous.same(p, content)
    ]
    changed += [
        p
        for p in set(previous.files).difference(result.files)
        if paths.target_of(p) == target and not paths.is_bookkeeping(p)
    ]
    entries = [result.provenance.get(p) or previous.provenance.get(p) for p in changed]
    return message(tree, result.summary, len(changed), [e.destination for e in entries if e is not None])


def message(tree: SourceTree, s: Summary, changed: int, destinations: Iterable[str | None]) -> str:
    """A commit message: the input commit, how many files changed on which destinations, the request counts."""
    named = sorted({d for d in destinations if d})
    source = f"{tree.origin} @ {tree.commit[:12]}" if tree.commit else f"{tree.origin} (work tree)"
    lines = [
        f"kratix: compile {source}",
        "",
        f"{changed} file(s) changed on {', '.join(named) or 'no destination'}.",
        f"Requests: {s.placed} placed, {s.pending} pending, {s.misplaced} misplaced, {s.failed} failed; "
        f"{s.promises} promises, {s.destinations} destinations.",
    ]
    if tree.commit:
        lines += ["", f"Source-Commit: {tree.commit}"]
    return "\n".join(lines) + "\n"


def _summary(
    platform: Platform,
    statuses: Mapping[str, RequestStatus],
    promise_statuses: Mapping[str, PromiseStatus],
    files: Mapping[str, Content],
    not_validated: tuple[str, ...],
    kubernetes_version: str,
) -> Summary:
    states = [s.state for s in statuses.values()]
    return Summary(
        promises=len(platform.promises),
        promises_unavailable=sum(1 for s in promise_statuses.values() if not s.available),
        destinations=len(platform.destinations),
        requests=len(statuses),
        placed=states.count("placed"),
        pending=states.count("pending"),
        misplaced=states.count("misplaced"),
        failed=states.count("failed"),
        suspended=states.count("suspended"),
        files=len(files),
        not_validated_kinds=tuple(sorted({*not_validated, *(k for s in statuses.values() for k in s.unchecked_kinds)})),
        unsandboxed=tuple(
            sorted(
                {
                    f.owner
                    for f in [
                        *(f for s in statuses.values() for f in s.files),
                        *(f for s in promise_statuses.values() for f in s.files),
                    ]
                    if f.file.sandbox == "none"
                }
            )
        ),
        kubernetes_version=kubernetes_version,
    )
