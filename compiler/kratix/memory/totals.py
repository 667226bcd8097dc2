"""The platform's totals, kept in `.kratix/totals.json`: what a compile that reads only what changed
(`kratix.compile.delta`) needs to know of everything else.

A full compile writes them; a delta compile updates them by what its scope adds and removes. They are a pure
function of the input and the previous output, as the rest of the bookkeeping, so a delta compile and a cold
`--rebuild` compile write the same bytes. `settled` says that the last compile left nothing to do again: every
request placed cleanly (each one reusable from the request cache) and no error reported. Only then may a compile
read just the change: a failing request is compiled again on every run, so it cannot be left out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

FORMAT = 1
STATES = ("placed", "pending", "misplaced", "failed")


@dataclass(frozen=True)
class Totals:
    context: str = ""  # what the output depends on beyond the input tree (`incremental.context_fingerprint`)
    states: Mapping[str, int] = field(default_factory=dict)  # requests by state
    unchecked: Mapping[str, int] = field(default_factory=dict)  # kind -> requests with output no schema checked
    promise_unchecked: tuple[str, ...] = ()  # kinds of the Promises' own output no schema checked
    files: int = 0  # files of the output tree, this one included
    settled: bool = False

    @property
    def requests(self) -> int:
        return sum(self.states.values())


def encode(totals: Totals) -> bytes:
    document = {
        "format": FORMAT,
        "kratix": "totals",
        "context": totals.context,
        "states": {state: totals.states.get(state, 0) for state in STATES},
        "unchecked": {k: v for k, v in sorted(totals.unchecked.items()) if v},
        "promiseUnchecked": sorted(totals.promise_unchecked),
        "files": totals.files,
        "settled": totals.settled,
    }
    return json.dumps(document, sort_keys=True, indent=0).encode() + b"\n"


def decode(data: bytes) -> Totals:
    """Raises ValueError for anything but totals of this format."""
    document = json.loads(data)
    if not isinstance(document, dict) or document.get("format") != FORMAT or document.get("kratix") != "totals":
        raise ValueError(f"not a totals file of format {FORMAT}")
    try:
        return Totals(
            context=str(document["context"]),
            states={state: int(document["states"].get(state, 0)) for state in STATES},
            unchecked={str(k): int(v) for k, v in document["unchecked"].items()},
            promise_unchecked=tuple(str(k) for k in document["promiseUnchecked"]),
            files=int(document["files"]),
            settled=document["settled"] is True,
        )
    except (KeyError, AttributeError, TypeError, ValueError) as exc:
        raise ValueError(f"unreadable totals: {exc}") from exc
