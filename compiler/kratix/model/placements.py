"""Placements as data: where the schedule stage sent one piece of a request's output, and why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kratix.model.platform import Destination

PLACED = "placed"
PENDING = "pending"
MISPLACED = "misplaced"


@dataclass(frozen=True, slots=True)
class Placement:
    destination: Destination | None  # None while pending
    state: str  # placed | pending | misplaced
    reason: str
    labels: Mapping[str, str]
