"""Leader election over a `coordination.k8s.io/v1` Lease, so that several replicas give high availability and
only one of them mirrors and writes at a time.

In: a `Kube`, the Lease's namespace and name, this replica's identity and the timings. Out: `campaign` blocks
until this replica holds the Lease (or `stop` is set); `keep` renews it and sets `lost` when it could not for
`renew_deadline` or someone else took it; `release` hands it back on shutdown so a follower takes over at once.

The algorithm is client-go's: every change of the Lease is written with a compare-and-swap (a merge patch
carrying the `resourceVersion` it was read at, so a concurrent writer gets HTTP 409 and loses); a follower
takes over a Lease whose record it has seen unchanged for `lease_seconds` by its own clock (never by comparing
clocks across machines). A leader that cannot renew stops leading before `lease_seconds` have passed, so two
replicas never both believe they lead for longer than clock drift allows.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from kratix.controller.crds import LEASES
from kratix.controller.events import micro_time
from kratix.controller.kube import Kube, describe
from kratix.controller.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str
    name: str
    identity: str
    lease_seconds: float = 15.0  # how long a silent leader keeps the Lease
    renew_deadline: float = 10.0  # a leader that could not renew for this long steps down (< lease_seconds)
    retry_period: float = 2.0  # how often leaders renew and followers look


class LeaderElector:
    def __init__(self, kube: Kube, settings: LeaseSettings, *, metrics: Metrics) -> None:
        self._kube, self._settings, self._metrics = kube, settings, metrics
        self._observed_spec: dict[str, Any] | None = None
        self._observed_at = 0.0
        self._leading = False
        self.last_contact = 0.0  # monotonic time of the last answer from the API server

    @property
    def identity(self) -> str:
        return self._settings.identity

    def campaign(self, stop: threading.Event) -> bool:
        """Block until this replica leads (True) or `stop` is set (False)."""
        logged = False
        while not stop.is_set():
            if self._try_acquire_or_renew():
                log.info("leading: %s holds Lease %s/%s", self.identity, self._settings.namespace, self._settings.name)
                return True
            if not logged:
                holder = (self._observed_spec or {}).get("holderIdentity")
                log.info(
                    "following %s: waiting for Lease %s/%s",
                    holder or "nobody",
                    self._settings.namespace,
                    self._settings.name,
                )
                logged = True
            stop.wait(self._settings.retry_period)
        return False

    def keep(self, *, stop: threading.Event, lost: threading.Event) -> None:
        """Renew until `stop` is set, leadership is lost, or the term's work ended (`lost` set by the caller);
        `lost` ends up set."""
        renewed = time.monotonic()
        while not stop.wait(self._settings.retry_period) and not lost.is_set():
            if self._try_acquire_or_renew():
                renewed = time.monotonic()
            elif not self._leading or time.monotonic() - renewed > self._settings.renew_deadline:
                log.warning("lost the Lease %s/%s: stopping work", self._settings.namespace, self._settings.name)
                self._leading = False
                break
        lost.set()

    def release(self) -> None:
        """Hand the Lease back (holder cleared, 1 s duration) so a follower need not wait for it to expire."""
        if not self._leading:
            return
        self._leading = False
        try:
            current = self._kube.get(LEASES, self._settings.name, namespace=self._settings.namespace)
            spec = (current or {}).get("spec") or {}
            if current is None or spec.get("holderIdentity") != self.identity:
                return
            now = micro_time()
            self._kube.patch(
                LEASES,
                self._settings.name,
                {
                    "metadata": {"resourceVersion": current["metadata"].get("resourceVersion")},
                    "spec": {"holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": now, "renewTime": now},
                },
                namespace=self._settings.namespace,
            )
            log.info("released Lease %s/%s", self._settings.namespace, self._settings.name)
        except Exception as exc:  # the Lease then expires by itself
            self._metrics.errors.labels(operation="lease").inc()
            log.warning(
                "cannot release Lease %s/%s (%s): it expires in %gs",
                self._settings.namespace,
                self._settings.name,
                describe(exc),
                self._settings.lease_seconds,
            )

    def _try_acquire_or_renew(self) -> bool:
        settings = self._settings
        now = micro_time(datetime.datetime.now(tz=datetime.UTC))
        try:
            current = self._kube.get(LEASES, settings.name, namespace=settings.namespace)
            self.last_contact = time.monotonic()
            if current is None:
                self._kube.create(
                    LEASES,
                    {
                        "apiVersion": LEASES.api_version,
                        "kind": LEASES.kind,
                        "metadata": {"name": settings.name, "namespace": settings.namespace},
                        "spec": self._spec(now, acquired=now, transitions=0),
                    },
                    namespace=settings.namespace,
                )
                self._observe(self._spec(now, acquired=now, transitions=0))
                self._leading = True
                return True
            spec = current.get("spec") or {}
            self._observe(spec)
            holder = spec.get("holderIdentity") or ""
            duration = float(spec.get("leaseDurationSeconds") or settings.lease_seconds)
            if holder and holder != self.identity and time.monotonic() < self._observed_at + duration:
                self._leading = False
                return False  # held by someone else, who renewed within its lease
            transitions = int(spec.get("leaseTransitions") or 0)
            if holder == self.identity:
                wanted = self._spec(now, acquired=spec.get("acquireTime") or now, transitions=transitions)
            else:
                wanted = self._spec(now, acquired=now, transitions=transitions + 1)
            self._kube.patch(
                LEASES,
                settings.name,
                {
                    "metadata": {"resourceVersion": (current.get("metadata") or {}).get("resourceVersion")},
                    "spec": wanted,
                },
                namespace=settings.namespace,
            )
            self._observe(wanted)
            self._leading = True
            return True
        except Exception as exc:  # 409: another replica wrote first; anything else: try again next period
            if getattr(exc, "status", None) != 409:
                self._metrics.errors.labels(operation="lease").inc()
                log.info("cannot acquire or renew Lease %s/%s: %s", settings.namespace, settings.name, describe(exc))
            return False

    def _spec(self, now: str, *, acquired: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self._settings.lease_seconds)),
            "acquireTime": acquired,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    def _observe(self, spec: dict[str, Any]) -> None:
        if spec != self._observed_spec:
            self._observed_spec, self._observed_at = dict(spec), time.monotonic()
