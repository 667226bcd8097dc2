"""Every core for Python work: a function over a range of indexes, run in forked worker processes, slice by
slice, with the results put back in index order.

Rendering templates, validating and dumping YAML is CPU work in Python, so threads would take turns on one core;
processes do not. The workers are forked once the data they read exists, so nothing is sent to them but two
integers per slice, and only results come back (pickled). Output is the same as in one process by construction:
each index is computed by the same function, and results are joined in index order. A small job is run in this
process: starting workers costs more than it saves (`MINIMUM` items). Where `fork` does not exist, or `jobs` is 1,
everything runs here.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
MINIMUM = 400  # items below which the work stays in this process: forking and collecting cost ~0.1 s
SLICES_PER_JOB = 4  # smaller slices even out slices that happen to cost more

# Set in a worker process only, by the pool's initializer, right after the fork: the function its slices run.
_work: Callable[[int, int], Sequence[object]] | None = None


def _start(work: Callable[[int, int], Sequence[object]]) -> None:
    global _work  # noqa: PLW0603 - the forked worker's own copy; the parent never sets it
    _work = work


def _slice(start: int, stop: int) -> list[object]:
    assert _work is not None
    return list(_work(start, stop))


def map_ranges(work: Callable[[int, int], Sequence[T]], count: int, *, jobs: int) -> list[T]:
    """`work(start, stop)` (the results for indexes start..stop-1) over `range(count)`, joined in order."""
    return list(iter_ranges(work, count, jobs=jobs))


def iter_ranges(work: Callable[[int, int], Sequence[T]], count: int, *, jobs: int) -> Iterator[T]:
    """`map_ranges`, yielding the results in order as their slices come in: a caller that keeps less than it gets
    (it writes the bytes away, say) never holds every result at once."""
    minimum = MINIMUM
    jobs = min(jobs, count // max(1, minimum // 2) or 1)
    if jobs <= 1 or count < minimum:
        yield from work(0, count)
        return
    import multiprocessing  # here, not at the top: a small compile never pays for importing it
    from concurrent.futures import ProcessPoolExecutor

    if "fork" not in multiprocessing.get_all_start_methods():
        yield from work(0, count)
        return
    slices = jobs * SLICES_PER_JOB
    bounds = [(count * i // slices, count * (i + 1) // slices) for i in range(slices)]
    context = multiprocessing.get_context("fork")
    start = functools.partial(_start, work)  # forked, not pickled: the workers get the function as it is
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=start) as pool:
        for part in pool.map(_slice, *zip(*bounds, strict=True)):
            yield from part  # type: ignore[misc]


def default_jobs() -> int:
    """Every core this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
