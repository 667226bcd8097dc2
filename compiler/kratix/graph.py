"""The platform as a picture: Promises → destinations → requests (`kratix graph`).

In: the platform's Promises and Destinations, a compile's request statuses and provenance, and the placements
recorded by the last publish. Out: a `diagrams.Graph`, rendered by `kratix.diagrams`. No I/O.

A Promise points at every destination it reaches (its own output, or any of its requests' output, is placed
there); a destination points at each request placed on it. A request that is *misplaced* hangs off the
destination it stays on by a marked edge; a *pending* one (no destination matches) and a *failed* one (invalid,
or its workflow failed) hang off their Promise by a marked edge, since they have no destination now. A failed
request that was published before also keeps a marked edge to where its last output still is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kratix import diagrams, provenance
from kratix.diagrams import Edge, Graph, Node
from kratix.placements import MISPLACED, PENDING
from kratix.platform import Destination, Promise
from kratix.statuses import FAILED, RequestStatus


def _promise(name: str) -> str:
    return f"{diagrams.PROMISE}:{name}"


def _destination(name: str) -> str:
    return f"{diagrams.DESTINATION}:{name}"


def _request(key: str) -> str:
    return f"{diagrams.REQUEST}:{key}"


def platform_graph(promises: Mapping[str, Promise], destinations: Mapping[str, Destination],
                   statuses: Mapping[str, RequestStatus], entries: Iterable[provenance.Entry], *,
                   previous_placements: Mapping[str, str] | None = None) -> Graph:
    """`statuses` by "Kind namespace/name"; `entries`, the provenance of the output; `previous_placements`,
    the last publish's records (record → destination name), for where a failing request's output still is."""
    nodes = [Node(_promise(name), diagrams.PROMISE, name) for name in sorted(promises)]
    nodes += [Node(_destination(name), diagrams.DESTINATION, name) for name in sorted(destinations)]
    reaches: set[tuple[str, str]] = set()  # (promise, destination)
    for entry in entries:
        if entry.destination and entry.owner == f"Promise {entry.promise}":
            reaches.add((entry.promise or "", entry.destination))
    earlier = _earlier_destinations(previous_placements or {})
    request_edges: list[Edge] = []
    for key, status in sorted(statuses.items()):
        placed = _placed_on(status)
        mark = status.state if status.state in (PENDING, FAILED, MISPLACED) else ""
        nodes.append(Node(_request(key), diagrams.REQUEST, key, mark))
        promise = status.request.promise
        for destination, placement_mark in placed:
            reaches.add((promise, destination))
            request_edges.append(Edge(_destination(destination), _request(key), placement_mark))
        if not placed:
            request_edges.append(Edge(_promise(promise), _request(key), mark or PENDING))
        if status.state == FAILED:
            identity = f"{status.request.key.kind}/{status.request.key.namespace}/{status.request.key.name}"
            request_edges += [Edge(_destination(d), _request(key), FAILED) for d in sorted(earlier.get(identity, ()))]
    known = {node.key for node in nodes}
    edges = [Edge(_promise(p), _destination(d)) for p, d in sorted(reaches)]
    edges += request_edges
    # A Promise or destination that is gone from the platform but still named by output (a request carried over
    # while its Promise's file is unreadable) is still drawn, so that no edge points nowhere.
    for edge in edges:
        for key in (edge.source, edge.target):
            if key not in known:
                group, _, name = key.partition(":")
                nodes.append(Node(key, group, name))
                known.add(key)
    return Graph(diagrams.unique(nodes), tuple(dict.fromkeys(edges)))


def _placed_on(status: RequestStatus) -> list[tuple[str, str]]:
    """(destination, edge mark) for each destination the request's output goes to now."""
    if status.state == FAILED:
        return []
    found = [(placement.destination.name, MISPLACED if placement.state == MISPLACED else "")
             for _, _, placement in status.placements if placement.destination is not None]
    if not status.placements:  # carried over unchanged: no Placement was built, only its records (all placed)
        found = [(destination, "") for destination in status.placement_records.values()]
    return sorted(set(found))


def _earlier_destinations(records: Mapping[str, str]) -> dict[str, set[str]]:
    """Request identity ("Kind/namespace/name") → the destinations its last published output is on."""
    found: dict[str, set[str]] = {}
    for record, destination in records.items():
        found.setdefault(record.partition("#")[0], set()).add(destination)
    return found
