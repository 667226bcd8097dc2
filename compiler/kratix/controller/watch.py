"""List + watch one resource into the `ObservedStore`, in a thread of its own.

The loop: list (the store's view of the resource becomes exactly the list), remember the resourceVersion,
watch from it, and keep watching from the last version seen (bookmarks included) each time the server ends the
watch. A 410 Gone, or `relist_seconds` passing, lists again; an API error backs off exponentially (bounded)
and lists again, so nothing missed while disconnected is kept. A 404 on the list means the CRD is not served
yet.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass

from kratix.controller.crds import Resource
from kratix.controller.kube import Connection, Gone, Kube, is_temporary
from kratix.controller.store import ObservedStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchSettings:
    watch_timeout_seconds: int = 300
    relist_seconds: float = 900.0  # a periodic full list: insurance against events a server never sent
    backoff_initial: float = 0.5
    backoff_max: float = 30.0


class Backoff:
    """Exponential delays with jitter, reset after a success; waits on `stop` so shutdown is prompt."""

    def __init__(self, *, initial: float, maximum: float, stop: threading.Event) -> None:
        self._initial, self._maximum, self._stop = initial, maximum, stop
        self._next = initial

    def reset(self) -> None:
        self._next = self._initial

    def wait(self) -> float:
        delay = self._next * random.uniform(0.8, 1.2)
        self._next = min(self._next * 2, self._maximum)
        self._stop.wait(delay)
        return delay


class Watcher:
    def __init__(self, *, connection: Connection, resource: Resource, store: ObservedStore,
                 settings: WatchSettings, stop: threading.Event) -> None:
        self.resource = resource
        self._kube = Kube(connection)
        self._store = store
        self._settings = settings
        self._stop = threading.Event()
        self._global_stop = stop
        self._backoff = Backoff(initial=settings.backoff_initial, maximum=settings.backoff_max,
                                stop=self._stop)
        self._thread = threading.Thread(target=self._run, name=f"watch-{resource.plural}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._kube.interrupt()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _stopping(self) -> bool:
        return self._stop.is_set() or self._global_stop.is_set()

    def _run(self) -> None:
        resource_version: str | None = None
        listed_at = 0.0
        while not self._stopping():
            try:
                if resource_version is None or time.monotonic() - listed_at > self._settings.relist_seconds:
                    resource_version = self._list()
                    listed_at = time.monotonic()
                resource_version = self._watch(resource_version)
                self._backoff.reset()
            except Gone as exc:
                log.info("watch of %s expired (%s): listing again", self.resource.plural, exc)
                resource_version = None
            except Exception as exc:  # every failure of a watch thread is retried, never fatal
                level = logging.INFO if is_temporary(exc) else logging.WARNING
                log.log(level, "watch of %s failed (%s): retrying in %.1fs", self.resource.plural,
                        _describe(exc), self._backoff.wait())
                resource_version = None

    def _list(self) -> str:
        items, resource_version = self._kube.list(self.resource)
        self._store.replace(self.resource, items)
        log.info("listed %d %s", len(items), self.resource.plural)
        return resource_version or ""

    def _watch(self, resource_version: str) -> str:
        for kind, body in self._kube.watch(self.resource, resource_version=resource_version or None,
                                           timeout_seconds=self._settings.watch_timeout_seconds):
            if self._stopping():
                break
            resource_version = (body.get("metadata") or {}).get("resourceVersion") or resource_version
            if kind == "DELETED":
                self._store.remove(self.resource, body)
            elif kind in ("ADDED", "MODIFIED"):
                self._store.put(self.resource, body)
        return resource_version


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    return f"HTTP {status} {reason}" if status is not None else f"{type(exc).__name__}: {exc}"
