"""Suspended workflows: when a suspension recorded in the last status still holds, and the status entry of a new
one. Kratix (`work-creator`, the request and Promise controllers) labels a suspended object and reconciles it
no more until the label goes, which its `retryAfter` does when due. A compiler has no label: the suspension is
read back from the last status it wrote, and holds until the object changes or the retry is due at the compile's
`now` (`--now`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from kratix.model.manifests import Suspension


def in_force(status_now: Mapping[str, Any], revision: str, now: datetime) -> Mapping[str, Any] | None:
    """The suspended pipeline's entry in the last status, while the suspension holds: the object is unchanged
    (`revision`; a change runs the workflow again, as a new generation clears Kratix's suspension), and its
    retryAfter, if it has one, is not due yet."""
    if status_now.get("observedRevision") != revision:
        return None
    for entry in status_now.get("pipelines") or ():
        if isinstance(entry, Mapping) and entry.get("phase") == "Suspended" and isinstance(entry.get("name"), str):
            due = entry.get("nextRetryAt")
            if due is None:
                return entry
            when = _parse_time(due) if isinstance(due, str) else None
            return entry if when is not None and now < when else None
    return None


def entry(suspension: Suspension, status_now: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The suspended pipeline's status entry, as Kratix's status writer records it: its message and, for a
    retryAfter, when it is due (RFC 3339, to the second) and how many times it has been retried."""
    entry: dict[str, Any] = {"name": suspension.pipeline, "phase": "Suspended"}
    if suspension.message:
        entry["message"] = suspension.message
    if suspension.retry_after is not None:
        due = now.astimezone(UTC) + timedelta(seconds=suspension.retry_after)
        entry["nextRetryAt"] = due.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
        before = [
            p
            for p in status_now.get("pipelines") or ()
            if isinstance(p, Mapping) and p.get("name") == suspension.pipeline and p.get("phase") == "Suspended"
        ]
        attempts = before[0].get("attempts") if before else None
        entry["attempts"] = attempts + 1 if isinstance(attempts, int) and attempts > 0 else 1
    return entry


def _parse_time(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
