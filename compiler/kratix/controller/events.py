"""Kubernetes Events on the objects the controller acts for (`kubectl describe promise x` shows why).

In: the object (its body as observed), a type (Normal or Warning), a reason and a message. Out: one
`events.k8s.io/v1` Event, created once per distinct (object, reason, message): a failure retried every few
seconds is one Event, not thousands. An Event that cannot be created is logged and counted, never fatal.
Events of cluster-scoped objects (Promises) go to the `default` namespace, as Kubernetes' own recorders do.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from kratix.controller.crds import EVENTS
from kratix.controller.kube import Kube, describe
from kratix.controller.metrics import Metrics

log = logging.getLogger(__name__)

REPORTING_CONTROLLER = "kratix.io/controller"
_NOTE_LIMIT = 1024  # the API server's limit on `note`


def micro_time(moment: datetime.datetime | None = None) -> str:
    """RFC 3339 with microseconds, as Kubernetes' MicroTime."""
    moment = moment or datetime.datetime.now(tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_time() -> str:
    """RFC 3339 to the second, as Kubernetes' Time (a condition's lastTransitionTime)."""
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    def __init__(self, kube: Kube, *, identity: str, metrics: Metrics) -> None:
        self._kube, self._identity, self._metrics = kube, identity, metrics
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str, str, str], tuple[str, str]] = {}

    def record(self, regarding: Mapping[str, Any], *, type: str, reason: str, message: str, action: str) -> None:
        metadata = regarding.get("metadata") or {}
        namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
        key = (str(regarding.get("apiVersion")), str(regarding.get("kind")), namespace, name)
        with self._lock:
            if self._last.get(key) == (reason, message):
                return
            self._last[key] = (reason, message)
        body = {
            "apiVersion": EVENTS.api_version,
            "kind": EVENTS.kind,
            "metadata": {"name": f"{name}.{time.time_ns():x}", "namespace": namespace or "default"},
            "eventTime": micro_time(),
            "type": type,
            "reason": reason,
            "action": action,
            "note": message[:_NOTE_LIMIT],
            "reportingController": REPORTING_CONTROLLER,
            "reportingInstance": self._identity[:128],
            "regarding": {
                "apiVersion": regarding.get("apiVersion"),
                "kind": regarding.get("kind"),
                "name": name,
                **({"namespace": namespace} if namespace else {}),
                **({"uid": metadata["uid"]} if metadata.get("uid") else {}),
            },
        }
        try:
            self._kube.create(EVENTS, body, namespace=namespace or "default")
        except Exception as exc:  # an Event is a courtesy: its failure must not stop the work it reports
            self._metrics.errors.labels(operation="event").inc()
            with self._lock:
                self._last.pop(key, None)  # try again next time
            log.warning("cannot record the Event %s on %s %s: %s", reason, regarding.get("kind"), name, describe(exc))
            return
        self._metrics.events.labels(type=type).inc()
