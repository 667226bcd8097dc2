"""Placement: a compile's destinations work out which of them match a selector once per selector, and place every
request exactly where testing each destination for each request would."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kratix.model.documents import SourceDoc
from kratix.model.platform import Destination
from kratix.schedule import scheduler

LABELS = st.dictionaries(st.sampled_from(["env", "region", "tier"]), st.sampled_from(["a", "b", "c"]), max_size=3)


def destination(name: str, labels: dict[str, str], strict: bool) -> Destination:
    return Destination(name, name, labels, strict, SourceDoc(f"clusters/{name}.yaml", 0, 1, {}))


@given(
    st.lists(st.tuples(LABELS, st.booleans()), max_size=8),
    st.lists(st.tuples(LABELS, st.integers(min_value=-1, max_value=8)), min_size=1, max_size=12),
)
@settings(max_examples=200, deadline=None)
def test_destinations_place_every_request_as_testing_each_destination_does(
    clusters: list[tuple[dict[str, str], bool]], requests: list[tuple[dict[str, str], int]]
) -> None:
    plain = {f"worker-{i}": destination(f"worker-{i}", labels, strict) for i, (labels, strict) in enumerate(clusters)}
    remembered = scheduler.Destinations(plain)
    for _ in range(2):  # the second time from what was worked out the first
        for index, (labels, before) in enumerate(requests):
            previous = f"worker-{before}" if before >= 0 else None
            identity = f"Database team-a/db-{index}"
            expected = scheduler.place_one(identity, labels, plain, previous=previous)
            assert scheduler.place_one(identity, labels, remembered, previous=previous) == expected
