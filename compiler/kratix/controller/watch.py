"""List + watch one resource into the `ObservedStore`, in a thread of its own.

The loop: list (the store's view of the resource becomes exactly the list), remember the resourceVersion,
watch from it, and keep watching from the last version seen (bookmarks included) each time the server ends the
watch. A 410 Gone, or `relist_seconds` passing, lists again; an API error backs off exponentially (bounded)
and lists again, so nothing missed while disconnected is kept. A failed list (a 404: the CRD is not served; a
403, a timeout, a paged answer) is reported to the store, which then no longer treats the resource as
complete: its files are kept until a list succeeds again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kratix.controller.crds import Resource
from kratix.controller.kube import Connection, Gone, Kube, describe, is_temporary
from kratix.controller.policy import Backoff, RetryPolicy, Timeouts
from kratix.controller.store import ObservedStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchSettings:
    watch_timeout_seconds: int = 300
    relist_seconds: float = 900.0  # a periodic full list: insurance against events a server never sent
    retry: RetryPolicy = RetryPolicy()
    timeouts: Timeouts = Timeouts()


class Watcher:
    def __init__(
        self,
        *,
        connection: Connection,
        resource: Resource,
        store: ObservedStore,
        settings: WatchSettings,
        stop: threading.Event,
        on_error: Callable[[str], None] = lambda operation: None,
    ) -> None:
        self.resource = resource
        self._kube = Kube(connection, timeouts=settings.timeouts)
        self._store = store
        self._settings = settings
        self._stop = threading.Event()
        self._global_stop = stop
        self._on_error = on_error
        self._backoff = Backoff(settings.retry, stop=self._stop)
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
                self._on_error("watch")
                level = logging.INFO if is_temporary(exc) else logging.WARNING
                log.log(
                    level,
                    "watch of %s.%s failed (%s): retrying in %.1fs",
                    self.resource.plural,
                    self.resource.group,
                    describe(exc),
                    self._backoff.wait(),
                )
                resource_version = None

    def _list(self) -> str:
        try:
            items, resource_version = self._kube.list(self.resource)
        except Exception as exc:
            self._store.list_failed(
                self.resource, f"cannot list {self.resource.plural}.{self.resource.group}: {describe(exc)}"
            )
            raise
        self._store.replace(self.resource, items)
        log.info("listed %d %s", len(items), self.resource.plural)
        return resource_version or ""

    def _watch(self, resource_version: str) -> str:
        for kind, body in self._kube.watch(
            self.resource,
            resource_version=resource_version or None,
            timeout_seconds=self._settings.watch_timeout_seconds,
        ):
            if self._stopping():
                break
            resource_version = (body.get("metadata") or {}).get("resourceVersion") or resource_version
            if kind == "DELETED":
                self._store.remove(self.resource, body)
            elif kind in ("ADDED", "MODIFIED"):
                self._store.put(self.resource, body)
        return resource_version
