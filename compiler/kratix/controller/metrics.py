"""What the controller counts, for Prometheus: one registry per controller (no process-global state), served
in the Prometheus text format on `/metrics`.

In: calls from the loops (`passes.inc()`, `lag.observe(seconds)`, ...). Out: `exposition()`, the text a
Prometheus server scrapes. Refuses nothing.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
ERROR_OPERATIONS = ("git", "crd", "watch", "status", "event", "lease")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.passes = Counter(
            "kratix_controller_mirror_passes",
            "Mirror passes: the repo recomputed from the observed cluster.",
            registry=registry,
        )
        self.commits = Counter("kratix_controller_commits", "Commits pushed to the input repo.", registry=registry)
        self.push_retries = Counter(
            "kratix_controller_push_retries",
            "Pushes that lost a race to another writer and were replanned on the new head.",
            registry=registry,
        )
        self.errors = Counter(
            "kratix_controller_errors",
            "Failed operations, each retried: git (fetch, commit, "
            "push), crd (install or update a request API), watch, status, event, lease.",
            ["operation"],
            registry=registry,
        )
        for operation in ERROR_OPERATIONS:
            self.errors.labels(operation=operation)  # every series exists from the start, at 0
        self.lag = Histogram(
            "kratix_controller_mirror_lag_seconds",
            "From a cluster change being observed to the commit that holds it being pushed.",
            registry=registry,
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
        )
        self.status_writes = Counter(
            "kratix_controller_status_writes",
            "Status patches written back onto Promises and requests.",
            registry=registry,
        )
        self.events = Counter("kratix_controller_events", "Kubernetes Events emitted.", ["type"], registry=registry)
        self.leader = Gauge(
            "kratix_controller_leader", "1 while this replica leads (mirrors and writes), else 0.", registry=registry
        )
        self.failing_apis = Gauge(
            "kratix_controller_promise_apis_failing",
            "Promises whose request API is not served (their requests' files are kept, not mirrored for deletion).",
            registry=registry,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
