"""Plan: what publishing a compile would change on the output branch, and whether it is safe.

In: the previous output tree and the new one (both `{path: bytes}`, with their `.kratix/provenance/` shards),
and the new per-request statuses. Out: a `Plan` — file changes grouped by destination and owner with unified
diffs, placements made or pending, and risk flags — rendered as Markdown for a pull-request comment or JSON.
The mass-deletion guard lives here too: removing more than a share of a destination's objects, or any
Namespace, CustomResourceDefinition or PersistentVolumeClaim, needs `--allow-deletions`.
"""

from __future__ import annotations

import difflib
import html
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from kratix import yamltext
from kratix.memory import provenance
from kratix.memory.previous import PreviousOutput
from kratix.model import manifests, paths
from kratix.model.documents import Content
from kratix.model.placements import PENDING
from kratix.model.statuses import RequestStatus
from kratix.publish import diagrams
from kratix.workflows import secretpolicy

DANGEROUS_KINDS = ("Namespace", "CustomResourceDefinition", "PersistentVolumeClaim")
MAX_DIFF_LINES = 120
MAX_MARKDOWN_CHARS = 60_000  # GitHub refuses comments over 65,536 characters
MAX_DIAGRAM_REQUESTS = 30  # GitHub stops drawing a Mermaid diagram long before 65,536 characters
DELETED = "deleted"


@dataclass(frozen=True)
class FileChange:
    path: str
    change: str  # added | changed | removed
    destination: str
    owner: str
    diff: str  # unified diff ("" for binary or removed files)


@dataclass(frozen=True)
class GuardTrip:
    destination: str
    reason: str
    objects: tuple[str, ...]


@dataclass(frozen=True)
class PlacementChange:
    request: str
    destination: str | None
    state: str
    reason: str


@dataclass(frozen=True)
class PlacementMove:
    """A request whose output changes destinations: placed for the first time, moved, deleted, or left with none
    (pending)."""

    request: str  # "Kind namespace/name"
    before: tuple[str, ...]  # the destinations its output was on
    after: tuple[str, ...]  # the destinations its output goes to now
    state: str  # placed | pending | misplaced | deleted


@dataclass(frozen=True)
class Plan:
    changes: tuple[FileChange, ...]
    trips: tuple[GuardTrip, ...]
    placements: tuple[PlacementChange, ...]
    failed: tuple[str, ...]  # requests failing now, with why
    crd_changes: tuple[str, ...]
    moves: tuple[PlacementMove, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.changes


def unowned_files(
    files: Iterable[str], entries: Mapping[str, provenance.Entry], layouts: Iterable[paths.Layout]
) -> dict[str, list[str]]:
    """Files of the previous output's destinations that the compiler did not write (no provenance): placed there
    by hand. A compile never carries them over, so publishing removes them."""
    known = list(layouts)
    found: dict[str, list[str]] = defaultdict(list)
    for path in files:
        if path in entries or paths.is_bookkeeping(path):
            continue
        destination = paths.destination_at(path, known)
        if destination is not None:
            found[destination].append(path)
    return {destination: sorted(names) for destination, names in found.items()}


def guard(
    previous: Mapping[str, provenance.Entry],
    current: Mapping[str, provenance.Entry],
    *,
    threshold: float,
    unowned: Mapping[str, list[str]] | None = None,
) -> list[GuardTrip]:
    """Deletions Flux would carry out (it prunes what disappears) that are too large or too dangerous, and
    files placed by hand that publishing would remove."""
    before, after = _objects_by_destination(previous), _objects_by_destination(current)
    trips = [
        GuardTrip(
            destination,
            f"removes {len(paths)} file(s) kratix did not write (placed by hand, with no provenance)",
            tuple(paths),
        )
        for destination, paths in sorted((unowned or {}).items())
    ]
    for destination in sorted(before):
        removed = sorted(before[destination] - after.get(destination, set()))
        if not removed:
            continue
        share = len(removed) / len(before[destination])
        if share > threshold:
            trips.append(
                GuardTrip(
                    destination,
                    f"removes {len(removed)} of {len(before[destination])} objects ({share:.0%} > {threshold:.0%})",
                    tuple(removed),
                )
            )
        dangerous = tuple(o for o in removed if manifests.kind_of(o) in DANGEROUS_KINDS)
        if dangerous:
            kinds = ", ".join(sorted({manifests.kind_of(o) for o in dangerous}))
            trips.append(GuardTrip(destination, f"removes {kinds} objects (their contents go with them)", dangerous))
    return trips


def _objects_by_destination(entries: Mapping[str, provenance.Entry]) -> dict[str, set[str]]:
    objects: dict[str, set[str]] = defaultdict(set)
    for entry in entries.values():
        if entry.destination is not None:
            objects[entry.destination].update(entry.objects)
    return {d: o for d, o in objects.items() if o}


def make_plan(
    previous: PreviousOutput,
    files: Mapping[str, Content],
    entries: Mapping[str, provenance.Entry],
    *,
    statuses: Mapping[str, RequestStatus],
    previous_placements: Mapping[str, str],
    threshold: float,
) -> Plan:
    previous_entries = previous.provenance
    changes = file_changes(previous, files, entries)
    before = destinations_before(previous_placements)
    failed = tuple(f"{key}: {s.detail}" for key, s in sorted(statuses.items()) if s.failed_now)
    crd_changes = tuple(
        sorted(
            f"{c.change} {obj}"
            for c in changes
            for obj in _objects_of(c, previous_entries, entries)
            if manifests.kind_of(obj) == "CustomResourceDefinition"
        )
    )
    trips = guard(
        previous_entries,
        entries,
        threshold=threshold,
        unowned=unowned_files(previous.files, previous_entries, previous.layouts),
    )
    return Plan(
        tuple(changes),
        tuple(trips),
        placement_changes(statuses, before),
        failed,
        crd_changes,
        placement_moves(statuses, before),
    )


def file_changes(
    previous: PreviousOutput, files: Mapping[str, Content], entries: Mapping[str, provenance.Entry]
) -> list[FileChange]:
    """Every output file added, changed or removed (bookkeeping aside), with its destination, owner and diff."""
    previous_entries = previous.provenance
    changes = []
    for path in sorted(set(previous.files) | set(files)):
        if paths.is_bookkeeping(path) or previous.same(path, files.get(path)):
            continue
        entry = entries.get(path) or previous_entries.get(path)
        change = "added" if path not in previous.files else "removed" if path not in files else "changed"
        diff = _diff(path, previous.files[path], files[path]) if change == "changed" else ""
        changes.append(
            FileChange(
                path,
                change,
                entry.destination if entry and entry.destination else path.split("/", 1)[0],
                entry.owner if entry else "kratix",
                diff,
            )
        )
    return changes


def destinations_before(previous_placements: Mapping[str, str]) -> dict[str, set[str]]:
    """Request identity ("Kind/namespace/name") → the destinations its published output is on, from the
    placement records (record → destination)."""
    before: dict[str, set[str]] = {}
    for record, destination in previous_placements.items():
        before.setdefault(record.partition("#")[0], set()).add(destination)
    return before


def placement_changes(
    statuses: Mapping[str, RequestStatus], before: Mapping[str, set[str]]
) -> tuple[PlacementChange, ...]:
    """Each placement made now that was not there before, and each that is not a clean placement."""
    placements = []
    for key, status in sorted(statuses.items()):
        was = before.get(_identity(status), set())
        for _pipeline, _directory, placement in status.placements:  # empty for requests carried over unchanged
            name = placement.destination.name if placement.destination else None
            if placement.state != "placed" or name not in was:
                placements.append(PlacementChange(key, name, placement.state, placement.reason))
    return tuple(placements)


def placement_moves(statuses: Mapping[str, RequestStatus], before: Mapping[str, set[str]]) -> tuple[PlacementMove, ...]:
    """Each request whose destinations change, from the last publish's (`before`: request identity → the
    destinations its output was on) to this compile's. A request that keeps its last output (failing now, or
    waiting on an unavailable Promise) moves nowhere; a request that is gone takes its output with it."""
    moves = []
    seen = set()
    for key, status in sorted(statuses.items()):
        identity = _identity(status)
        seen.add(identity)
        was = before.get(identity, set())
        if status.keeps_previous_output:
            continue
        now = (
            {p.destination.name for _, _, p in status.placements if p.destination is not None}
            if status.placements
            else set(status.placement_records.values())
        )
        if now != was:
            moves.append(PlacementMove(key, tuple(sorted(was)), tuple(sorted(now)), status.state))
    for identity, was in sorted(before.items()):
        if identity not in seen:
            kind, namespace, name = identity.split("/", 2)
            moves.append(PlacementMove(f"{kind} {namespace}/{name}", tuple(sorted(was)), (), DELETED))
    return tuple(moves)


def _identity(status: RequestStatus) -> str:
    key = status.request.key
    return f"{key.kind}/{key.namespace}/{key.name}"


def _objects_of(
    change: FileChange, before: Mapping[str, provenance.Entry], after: Mapping[str, provenance.Entry]
) -> set[str]:
    objects: set[str] = set()
    for entries in (before, after):
        if change.path in entries:
            objects.update(entries[change.path].objects)
    return objects


def _diff(path: str, old: bytes, new: Content) -> str:
    if not isinstance(new, bytes):
        return ""  # an unchanged blob carried over: there is nothing to show
    try:
        old, new = _redacted(old or b"", new or b"")
        before = old.decode().splitlines(keepends=True)
        after = new.decode().splitlines(keepends=True)
    except (UnicodeDecodeError, yaml.YAMLError):
        return ""  # nothing is shown of what cannot be read (and so cannot be redacted)
    lines = list(difflib.unified_diff(before, after, f"a/{path}", f"b/{path}"))
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"... {len(lines) - MAX_DIFF_LINES} more lines\n"]
    return "".join(lines)


def _redacted(old: bytes, new: bytes) -> tuple[bytes, bytes]:
    """Both sides of a diff with every Secret's values redacted (a plan is read by everyone who can see the
    pull request; a value that changed says so, not what it was or is). Files without a Secret as they are."""
    if b"Secret" not in old and b"Secret" not in new:
        return old, new
    before, after = list(yamltext.load_plain(old)), list(yamltext.load_plain(new))
    secrets = {manifests.object_id(d): d for d in before if isinstance(d, Mapping) and secretpolicy.is_secret(d)}
    if not secrets and not any(isinstance(d, Mapping) and secretpolicy.is_secret(d) for d in after):
        return old, new
    return (
        yamltext.dump_all(secretpolicy.redact(d) for d in before),
        yamltext.dump_all(
            secretpolicy.redact(d, secrets.get(manifests.object_id(d)) if isinstance(d, Mapping) else None)
            for d in after
        ),
    )


# --- rendering ----------------------------------------------------------------------------------------------


def counts(plan: Plan) -> dict[str, int]:
    tally = {"added": 0, "changed": 0, "removed": 0}
    for change in plan.changes:
        tally[change.change] += 1
    return tally


def to_json(plan: Plan) -> dict[str, Any]:
    return {
        "counts": counts(plan),
        "changes": [vars(c) for c in plan.changes],
        "guard": [{"destination": t.destination, "reason": t.reason, "objects": list(t.objects)} for t in plan.trips],
        "placements": [vars(p) for p in plan.placements],
        "failed": list(plan.failed),
        "crdChanges": list(plan.crd_changes),
        "placementMoves": [
            {"request": m.request, "before": list(m.before), "after": list(m.after), "state": m.state}
            for m in plan.moves
        ],
    }


def to_markdown(plan: Plan, *, title: str = "Kratix plan") -> str:
    """The plan as a pull-request comment. Everything a tenant wrote (paths, names, reasons, a step's stderr,
    diffs) is escaped for where it lands, so no request can restructure the comment; blocks are kept whole when
    the comment is cut to GitHub's size."""
    tally = counts(plan)
    destinations = sorted({c.destination for c in plan.changes})
    head = [f"### {_text(title)}", ""]
    if plan.empty:
        head.append("No change to the output: publishing this would make no commit.")
    else:
        head.append(
            f"**{tally['added']} added, {tally['changed']} changed, {tally['removed']} removed** files "
            f"on {len(destinations)} destination(s): {', '.join(_code(d) for d in destinations)}"
        )
    blocks = ["\n".join([*head, ""])]
    risks = _risk_lines(plan)
    if risks:
        blocks.append("\n".join(["#### Risks", "", *risks, ""]))
    for destination in destinations:
        changes = [c for c in plan.changes if c.destination == destination]
        table = [f"#### Destination {_code(destination)}", "", "| change | file | owner |", "|---|---|---|"]
        table += [
            f"| {change.change} | {_code(change.path, cell=True)} | {_text(change.owner)} |" for change in changes
        ]
        blocks.append("\n".join([*table, ""]))
        for change in (c for c in changes if c.diff):
            fence = "`" * max(3, _longest_run(change.diff, "`") + 1)
            blocks.append(
                "\n".join(
                    [
                        f"<details><summary>diff <code>{html.escape(change.path)}</code></summary>",
                        "",
                        f"{fence}diff",
                        change.diff.rstrip("\n"),
                        fence,
                        "</details>",
                        "",
                    ]
                )
            )
    if plan.moves:
        blocks.append(placement_diagram(plan.moves))
    if plan.placements:
        rows = ["#### Placements", "", "| request | destination | state | why |", "|---|---|---|---|"]
        rows += [
            f"| {_text(p.request)} | {_code(p.destination, cell=True) if p.destination else '—'} | "
            f"{p.state} | {_text(p.reason)} |"
            for p in plan.placements
        ]
        blocks.append("\n".join([*rows, ""]))
    text = ""
    for index, block in enumerate(blocks):
        if len(text) + len(block) > MAX_MARKDOWN_CHARS:
            left = len(blocks) - index
            return text + f"\n… {left} more section(s) cut; run `kratix plan --format json` for all of it.\n"
        text += block + "\n"
    return text


def placement_graph(moves: Sequence[PlacementMove]) -> diagrams.Graph:
    """Requests on the left, destinations on the right: an edge for each destination a request is placed on
    (added) or leaves (removed); the request is marked added, moved, pending or removed."""
    nodes, edges = [], []
    for move in moves:
        request = f"{diagrams.REQUEST}:{move.request}"
        added, removed = sorted(set(move.after) - set(move.before)), sorted(set(move.before) - set(move.after))
        mark = (
            diagrams.PENDING
            if move.state == PENDING
            else diagrams.REMOVED
            if not move.after
            else diagrams.MOVED
            if move.before
            else diagrams.ADDED
        )
        nodes.append(diagrams.Node(request, diagrams.REQUEST, move.request, mark))
        for names, edge_mark in ((added, diagrams.ADDED), (removed, diagrams.REMOVED)):
            for name in names:
                nodes.append(diagrams.Node(f"{diagrams.DESTINATION}:{name}", diagrams.DESTINATION, name))
                edges.append(diagrams.Edge(request, f"{diagrams.DESTINATION}:{name}", edge_mark))
    return diagrams.Graph(diagrams.unique(nodes), tuple(edges))


def placement_diagram(moves: Sequence[PlacementMove], *, limit: int = MAX_DIAGRAM_REQUESTS) -> str:
    """The Markdown section with the Mermaid diagram of the placements that change, at most `limit` requests of
    them (a diagram of thousands would not be drawn at all); it says how many more there are."""
    shown = diagrams.to_mermaid(placement_graph(moves[:limit]))
    more = (
        f"\n… and {len(moves) - limit} more request(s) whose placement changes (not drawn); "
        "`kratix plan --format json` lists them all.\n"
        if len(moves) > limit
        else ""
    )
    return "\n".join(["#### Placement changes", "", "```mermaid", shown.rstrip("\n"), "```", more])


# What Markdown reads inside a line: emphasis, code, links, table cells, strikethrough, mentions (`@team` would
# ping people). Nothing here starts a line, so list and heading markers need no escape.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~@])")


def _text(value: str) -> str:
    """Plain text in Markdown: on one line, HTML and Markdown punctuation escaped (a `|` cannot end a cell)."""
    one_line = " ".join(str(value).split())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(one_line, quote=False))


def _code(value: str, *, cell: bool = False) -> str:
    """An inline code span holding `value` verbatim, whatever backticks it holds; in a table, `|` is escaped
    (GitHub splits cells before it reads code spans)."""
    one_line = " ".join(str(value).split())
    if cell:
        one_line = one_line.replace("|", "\\|")
    ticks = "`" * (_longest_run(one_line, "`") + 1)
    pad = " " if one_line.startswith("`") or one_line.endswith("`") else ""
    return f"{ticks}{pad}{one_line}{pad}{ticks}"


def _longest_run(text: str, char: str) -> int:
    runs = re.findall(f"{re.escape(char)}+", text)
    return max((len(run) for run in runs), default=0)


def _risk_lines(plan: Plan) -> list[str]:
    lines = [f"- :warning: guard: {_code(t.destination)} {_text(t.reason)}: {_sample(t.objects)}" for t in plan.trips]
    lines += [f"- :warning: CRD change: {_text(c)}" for c in plan.crd_changes]
    removed = sum(1 for c in plan.changes if c.change == "removed")
    if removed:
        lines.append(f"- {removed} file(s) removed: Flux prunes their objects")
    lines += [f"- :x: failing (keeps its last published output): {_text(f)}" for f in plan.failed]
    return lines


def _sample(objects: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(_code(o) for o in objects[:limit])
    return shown + (f" and {len(objects) - limit} more" if len(objects) > limit else "")
