"""Schedule: rendered output → destinations.

In: label selectors (from the Promise, its workflows and the pipelines' destination-selectors.yaml), the
Destinations, and the placements recorded by the previous publish. Out: where each piece of output goes.

Kratix's rules: selectors merge into one label map (resource workflow < promise workflow < Promise: the
Promise wins a key conflict); an empty selector matches every destination but those with strictMatchLabels.
Promise-level output goes to every matching destination; a request's output goes to exactly one. Kratix picks
that one at random; here it is rendezvous hashing over (request identity, destination name), so the choice is
stable across machines and adding a destination moves only the requests it wins. A placement is sticky: once
made it stays while its destination still matches; when the destination stops matching the output stays and
the placement says *misplaced* (moving a database is an outage, so only a person should do it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kratix import yamltext
from kratix.model import paths
from kratix.model.manifests import STATIC_PIPELINE, PipelineOutput, PlacedFile, RenderedFile
from kratix.model.placements import MISPLACED, PENDING, PLACED, Placement
from kratix.model.platform import Destination, Selector


def merge_labels(*selector_maps: Mapping[str, str]) -> dict[str, str]:
    """Merge selectors lowest priority first: a later map wins a key conflict."""
    merged: dict[str, str] = {}
    for labels in selector_maps:
        merged.update(labels)
    return merged


def selector_labels(selectors: Iterable[Selector]) -> dict[str, str]:
    return merge_labels(*(s.match_labels for s in selectors))


def matches(destination: Destination, labels: Mapping[str, str]) -> bool:
    """Kratix's scheduler: an empty selector matches every destination except a strict one with labels (a strict
    destination without labels takes work without labels too); otherwise every label must match."""
    if not labels:
        return not (destination.strict_match_labels and destination.labels)
    return all(destination.labels.get(key) == value for key, value in labels.items())


def matching(destinations: Iterable[Destination], labels: Mapping[str, str]) -> list[Destination]:
    return sorted((d for d in destinations if matches(d, labels)), key=lambda d: d.name)


class Destinations(dict[str, Destination]):
    """A compile's destinations, with the ones a selector matches worked out once per selector: the requests of a
    platform share a handful of selectors, and testing every destination for each request was 46 of the 58 µs
    its placement took at 50 destinations (4.6 s of CPU for 100,000 requests)."""

    def __init__(self, destinations: Mapping[str, Destination]) -> None:
        super().__init__(destinations)
        self._matching: dict[tuple[tuple[str, str], ...], list[Destination]] = {}

    def matching(self, labels: Mapping[str, str]) -> list[Destination]:
        """`matching(self.values(), labels)`; the list is shared: read it, never change it."""
        key = tuple(sorted(labels.items()))
        found = self._matching.get(key)
        if found is None:
            found = self._matching[key] = matching(self.values(), labels)
        return found


def describe(labels: Mapping[str, str]) -> str:
    return (
        ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
        or "(no labels: any destination but a strict one with labels)"
    )


def place_one(
    identity: str, labels: Mapping[str, str], destinations: Mapping[str, Destination], *, previous: str | None
) -> Placement:
    """Where one request's output goes. `previous` is the destination name it was published to before. The
    reason only changes when the placement's situation does, so statuses do not churn between compiles."""
    candidates = (
        destinations.matching(labels)
        if isinstance(destinations, Destinations)
        else matching(destinations.values(), labels)
    )
    chosen = _rendezvous(identity, candidates) if candidates else None
    fresh = (
        (
            f"placed on {chosen.name}: chosen by rendezvous hash among {len(candidates)} destination(s) "
            f"matching {describe(labels)}"
        )
        if chosen
        else ""
    )
    if previous is not None and previous in destinations:
        kept = destinations[previous]
        if kept is chosen:
            return Placement(kept, PLACED, fresh, labels)
        if kept in candidates:
            return Placement(
                kept,
                PLACED,
                f"placed on {previous}: placed there before and still matching "
                f"{describe(labels)} (placements are sticky)",
                labels,
            )
        return Placement(
            kept,
            MISPLACED,
            f"stays on {previous}, which no longer matches {describe(labels)}; "
            "move it by hand (delete and re-request) if that is intended",
            labels,
        )
    if chosen is None:
        return Placement(None, PENDING, f"no destination matches {describe(labels)}", labels)
    moved = f" (its previous destination {previous} was deleted)" if previous is not None else ""
    return Placement(chosen, PLACED, fresh + moved, labels)


def place_all(labels: Mapping[str, str], destinations: Mapping[str, Destination]) -> list[Destination]:
    """Promise-level output: every matching destination."""
    return matching(destinations.values(), labels)


def _rendezvous(identity: str, candidates: Sequence[Destination]) -> Destination:
    def score(destination: Destination) -> bytes:
        return hashlib.sha256(f"{identity}\0{destination.name}".encode()).digest()

    return max(candidates, key=score)


def split_groups(output: PipelineOutput) -> list[tuple[str | None, list[Any]]]:
    """Files by destination-selector group: each `directory` group, then the rest (the root group)."""
    directories = sorted({g.directory for g in output.groups if g.directory is not None})
    grouped: dict[str | None, list[Any]] = {d: [] for d in directories}
    grouped[None] = []
    for file in output.files:
        top = file.path.split("/", 1)[0] if "/" in file.path else None
        grouped[top if top in grouped else None].append(file)
    return [(d, grouped[d]) for d in directories if grouped[d]] + [(None, grouped[None])]


def group_labels(output: PipelineOutput, directory: str | None) -> dict[str, str]:
    return merge_labels(*(g.match_labels for g in output.groups if g.directory == directory))


def place_files(
    destination: Destination,
    files: Sequence[RenderedFile],
    *,
    area: str,
    base: str,
    labels: Mapping[str, str],
    owner: str,
    promise: str,
    pipeline: str,
    request: tuple[str, str] | None,
    directory: str | None,
) -> list[PlacedFile]:
    """One work placement: the files of one pipeline's output group (`directory`, None for the root group) on one
    destination, each where the destination's filepath mode puts it (`kratix.model.paths`). `base` is their folder
    inside the area when nested; `request` is (namespace, name), None for a Promise's output. In mode `none`,
    the placement also carries the state file Kratix keeps for it: the files it wrote."""
    layout = destination.layout
    static = request is None and pipeline == STATIC_PIPELINE
    placed, flats = [], []
    for file in files:
        flat = paths.static_flat_path(promise, file.path) if static else file.path
        inner = f"{base}/{file.path}"
        flats.append(flat)
        placed.append(
            PlacedFile(
                destination=destination.name,
                area=area,
                path=inner,
                file=file,
                labels=labels,
                owner=owner,
                promise=promise,
                pipeline=pipeline,
                output_path=layout.workload(area, inner, flat),
            )
        )
    if layout.mode == paths.FLAT and placed:
        listing = sorted(layout.state_listing(flat) for flat in flats)
        identifier = paths.work_identifier(promise, pipeline, request, static=static)
        namespace = request[0] if request else paths.SYSTEM_NAMESPACE
        state = layout.state_file(namespace, paths.work_placement_name(identifier, destination.name, directory))
        content = yamltext.dump({"files": listing})
        placed.append(
            PlacedFile(
                destination=destination.name,
                area=area,
                path=f"{base}/{paths.STATE_FOLDER}",
                file=RenderedFile(state.rsplit("/", 1)[-1], (), paths.GENERATED_SOURCE, raw=content),
                labels=labels,
                owner=owner,
                promise=promise,
                pipeline=pipeline,
                output_path=state,
            )
        )
    return placed
