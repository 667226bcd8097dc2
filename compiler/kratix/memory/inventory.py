"""The inventory: what the last compile read, and from which file, so that a file that is broken now is not taken
for a deletion.

A Promise, Destination or request disappears from the output only when its file is removed (or no longer holds
it while reading cleanly). When its file is still there but cannot be read — it stops parsing, a field has the
wrong shape, a name is invalid — the load stage puts in its place what the inventory remembers of it: a Promise
by its name and API (its dependencies and its requests' output stay published, its requests wait), a Destination
by its name, path and labels (what is placed there stays placed), a request by its identity (its output and
status stay, the status saying why).

Kept in the output repo at `.kratix/inventory.json` (Promises and Destinations, a handful of entries); what
each request file held comes from the request cache (`kratix.memory.cache`), which records every request it compiled.
A Destination's entry also records its filepath mode, which Kratix makes immutable: a Destination whose mode
changes is refused, and stands in as it was.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

FORMAT = 1


@dataclass(frozen=True)
class PromiseEntry:
    file: str
    group: str | None = None
    kind: str | None = None
    version: str | None = None
    plural: str | None = None


@dataclass(frozen=True)
class DestinationEntry:
    file: str
    path: str  # its spec.path, "" for the root of its store
    labels: Mapping[str, str] = field(default_factory=dict)
    strict_match_labels: bool = False
    mode: str | None = None  # its filepath mode; None: written before modes were recorded (any mode is taken)
    filename: str | None = None  # aggregatedYAML's file
    store: str | None = None  # its GitStateStore; None: the default store
    root: str | None = None  # its folder in the output tree (`kratix.model.paths`); None: `path`
    init_workloads: bool | None = None


@dataclass(frozen=True)
class RequestEntry:
    kind: str
    namespace: str
    name: str
    promise: str
    api_version: str


@dataclass(frozen=True)
class Inventory:
    promises: Mapping[str, PromiseEntry] = field(default_factory=dict)  # by name
    destinations: Mapping[str, DestinationEntry] = field(default_factory=dict)  # by name
    requests: Mapping[str, tuple[RequestEntry, ...]] = field(default_factory=dict)  # by request file


def encode(promises: Mapping[str, PromiseEntry], destinations: Mapping[str, DestinationEntry]) -> bytes:
    document = {
        "format": FORMAT,
        "promises": {name: _compact(asdict(entry)) for name, entry in sorted(promises.items())},
        "destinations": {name: _compact(asdict(entry)) for name, entry in sorted(destinations.items())},
    }
    return json.dumps(document, sort_keys=True, indent=1).encode() + b"\n"


def decode(data: bytes) -> Inventory:
    """Raises ValueError (with why) for anything but this format's inventory."""
    document = json.loads(data)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else None
        raise ValueError(f"format {found!r} is not {FORMAT}")
    try:
        promises = {str(name): PromiseEntry(**entry) for name, entry in document["promises"].items()}
        destinations = {str(name): DestinationEntry(**entry) for name, entry in document["destinations"].items()}
    except (AttributeError, KeyError, TypeError) as exc:
        raise ValueError(f"unreadable entry: {exc}") from exc
    entries: list[PromiseEntry | DestinationEntry] = [*promises.values(), *destinations.values()]
    if not all(isinstance(entry.file, str) for entry in entries):
        raise ValueError("an entry names no file")
    if not all(map(_well_formed, promises.values())) or not all(map(_well_formed, destinations.values())):
        raise ValueError("an entry holds a value of another type than kratix writes")
    return Inventory(promises=promises, destinations=destinations)


def _well_formed(entry: PromiseEntry | DestinationEntry) -> bool:
    """Every field has the type `encode` writes (valid JSON of another shape, edited by hand, fails here)."""
    flags = ("strict_match_labels", "init_workloads")
    for name, value in vars(entry).items():
        if name == "labels":
            if not isinstance(value, dict) or not all(type(k) is str and type(v) is str for k, v in value.items()):
                return False
        elif name in flags:
            if value is not None and type(value) is not bool:
                return False
        elif value is not None and type(value) is not str:
            return False
    return True


def _compact(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        key: dict(value) if isinstance(value, Mapping) else value for key, value in entry.items() if value is not None
    }
