"""The platform as a picture: Promises → destinations → requests (`kratix graph`).

In: the platform's Promises and Destinations, a compile's request statuses and provenance, and the placements
recorded by the last publish. Out: a `diagrams.Graph`, rendered by `kratix.publish.diagrams`. No I/O.

A Promise points at every destination it reaches (its own output, or any of its requests' output, is placed
there); a destination points at each request placed on it. A request that is *misplaced* hangs off the
destination it stays on by a marked edge; a *pending* one (no destination matches) and a *failed* one (invalid,
or its workflow failed) hang off their Promise by a marked edge, since they have no destination now. A failed
request that was published before also keeps a marked edge to where its last output still is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kratix.memory import provenance
from kratix.model.placements import MISPLACED, PENDING
from kratix.model.platform import Destination, Promise
from kratix.model.statuses import FAILED, RequestStatus
from kratix.publish import diagrams
from kratix.publish.diagrams import Edge, Graph, Node


def _promise(name: str) -> str:
    return f"{diagrams.PROMISE}:{name}"


def _destination(name: str) -> str:
    return f"{diagrams.DESTINATION}:{name}"


def _request(key: str) -> str:
    return f"{diagrams.REQUEST}:{key}"


def platform_graph(
    promises: Mapping[str, Promise],
    destinations: Mapping[str, Destination],
    statuses: Mapping[str, RequestStatus],
    entries: Iterable[provenance.Entry],
    *,
    published: Mapping[str, set[str]] | None = None,
) -> Graph:
    """`statuses` by "Kind namespace/name"; `entries`, the provenance of the output; `published`, where the last
    publish put each request's output (identity "Kind/namespace/name" → destination names,
    `kratix.publish.plan.destinations_before`), for where a failing request's output still is."""
    nodes = [Node(_promise(name), diagrams.PROMISE, name) for name in sorted(promises)]
    nodes += [Node(_destination(name), diagrams.DESTINATION, name) for name in sorted(destinations)]
    reaches = {
        (entry.promise or "", entry.destination)
        for entry in entries
        if entry.destination and entry.owner == f"Promise {entry.promise}"
    }
    request_edges: list[Edge] = []
    for key, status in sorted(statuses.items()):
        placed = _placed_on(status)
        nodes.append(Node(_request(key), diagrams.REQUEST, key, _mark(status)))
        reaches.update((status.request.promise, destination) for destination, _ in placed)
        request_edges += _request_edges(key, status, placed, (published or {}).get(_identity(status), set()))
    edges = [Edge(_promise(p), _destination(d)) for p, d in sorted(reaches)] + request_edges
    return Graph(diagrams.unique([*nodes, *_named_only_by_edges(nodes, edges)]), tuple(dict.fromkeys(edges)))


def _identity(status: RequestStatus) -> str:
    key = status.request.key
    return f"{key.kind}/{key.namespace}/{key.name}"


def _mark(status: RequestStatus) -> str:
    return status.state if status.state in (PENDING, FAILED, MISPLACED) else ""


def _request_edges(key: str, status: RequestStatus, placed: list[tuple[str, str]], published: set[str]) -> list[Edge]:
    """From each destination the request is placed on; from its Promise when it is on none now; and, when it
    fails, from each destination its last published output is still on."""
    edges = [Edge(_destination(destination), _request(key), mark) for destination, mark in placed]
    if not placed:
        edges.append(Edge(_promise(status.request.promise), _request(key), _mark(status) or PENDING))
    if status.state == FAILED:
        edges += [Edge(_destination(d), _request(key), FAILED) for d in sorted(published)]
    return edges


def _named_only_by_edges(nodes: list[Node], edges: list[Edge]) -> list[Node]:
    """A Promise or destination gone from the platform but still named by output (a request carried over while
    its Promise's file is unreadable) is still drawn, so that no edge points nowhere."""
    known = {node.key for node in nodes}
    missing = dict.fromkeys(key for edge in edges for key in (edge.source, edge.target) if key not in known)
    return [Node(key, key.partition(":")[0], key.partition(":")[2]) for key in missing]


def _placed_on(status: RequestStatus) -> list[tuple[str, str]]:
    """(destination, edge mark) for each destination the request's output goes to now."""
    if status.state == FAILED:
        return []
    found = [
        (placement.destination.name, MISPLACED if placement.state == MISPLACED else "")
        for _, _, placement in status.placements
        if placement.destination is not None
    ]
    if not status.placements:  # carried over unchanged: no Placement was built, only its records (all placed)
        found = [(destination, "") for destination in status.placement_records.values()]
    return sorted(set(found))
