"""How long the controller waits for the outside world and how it tries again: the one place for both.

In: the operator's settings (`ControllerOptions`). Out: `Timeouts` for every Git and Kubernetes API call,
`RetryPolicy` (bounded exponential backoff with jitter), `Backoff` (a blocking wait that a stop event cuts
short) and `RetryTimer` (a non-blocking "may I try again yet?" for loops that must keep serving other work).
Nothing here talks to Git or to a cluster.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

from kratix.controller.options import ControllerOptions
from kratix.gitio import NETWORK_TIMEOUT_SECONDS


@dataclass(frozen=True)
class Timeouts:
    """Seconds. A call that outlives its timeout fails like any other error and is retried: never a hang."""

    git_network: float = NETWORK_TIMEOUT_SECONDS  # fetch and push: a slow first fetch, not a stalled remote
    git_local: float = 60.0  # plumbing on the private clone (ls-tree, cat-file, fast-import)
    api_connect: float = 10.0
    api_read: float = 30.0  # one API request; watches get their own server-side timeout plus this margin

    @property
    def api(self) -> tuple[float, float]:
        """The Kubernetes client's `_request_timeout`: (connect, read)."""
        return (self.api_connect, self.api_read)

    def watch(self, server_seconds: int) -> tuple[float, float]:
        # A server that ignores timeoutSeconds must not hold the thread forever: the read times out too.
        return (self.api_connect, server_seconds + self.api_read)

    @staticmethod
    def of(options: ControllerOptions) -> Timeouts:
        return Timeouts(
            git_network=options.git_timeout, git_local=min(options.git_timeout, 60.0), api_read=options.api_timeout
        )


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: `initial`, doubling up to `maximum`, each delay jittered by ±`jitter` so that
    replicas and watch threads that failed together do not retry together."""

    initial: float = 0.5
    maximum: float = 30.0
    jitter: float = 0.2

    def delay(self, failures: int) -> float:
        """The wait after the `failures`-th failure in a row (1 for the first)."""
        base = min(self.initial * 2 ** max(failures - 1, 0), self.maximum)
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)

    @staticmethod
    def of(options: ControllerOptions) -> RetryPolicy:
        return RetryPolicy(initial=min(0.5, options.backoff_max), maximum=options.backoff_max)


class Backoff:
    """Blocking: `wait` sleeps the next delay (returning early when `stop` is set); `reset` after a success."""

    def __init__(self, policy: RetryPolicy, *, stop: threading.Event) -> None:
        self._policy, self._stop, self._failures = policy, stop, 0

    def reset(self) -> None:
        self._failures = 0

    def wait(self) -> float:
        self._failures += 1
        delay = self._policy.delay(self._failures)
        self._stop.wait(delay)
        return delay


class RetryTimer:
    """Non-blocking: after `failed`, `due` is False until the next delay has passed; `succeeded` clears it."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy, self._failures, self._due = policy, 0, 0.0

    def due(self) -> bool:
        return time.monotonic() >= self._due

    def seconds_left(self) -> float:
        return max(0.0, self._due - time.monotonic())

    def failed(self) -> float:
        self._failures += 1
        delay = self._policy.delay(self._failures)
        self._due = time.monotonic() + delay
        return delay

    def succeeded(self) -> None:
        self._failures, self._due = 0, 0.0
