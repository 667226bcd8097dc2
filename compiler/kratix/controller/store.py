"""What the watches have observed: the latest body of every watched object, per resource.

Watch threads write (`replace` after a list, `put`/`remove` per event); the mirror loop and the status loop
read consistent copies (`snapshot`) and wait for the next change (`wait_for_change`). The only shared mutable
state in the controller, kept behind one lock.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable
from typing import Any

from kratix.controller.crds import DESTINATIONS, PROMISES, Resource
from kratix.controller.mirror import Snapshot

Key = tuple[str, str]  # (namespace or "", name)


def key_of(body: dict[str, Any]) -> Key:
    metadata = body.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


class ObservedStore:
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._objects: dict[Resource, dict[Key, dict[str, Any]]] = {}
        self._synced: set[Resource] = set()
        self._generation = 0
        self._woken = False

    def replace(self, resource: Resource, items: Iterable[dict[str, Any]]) -> None:
        """A full list: the objects of `resource` are exactly `items` (deletions missed while away vanish)."""
        with self._lock:
            self._objects[resource] = {key_of(item): item for item in items}
            self._synced.add(resource)
            self._changed()

    def put(self, resource: Resource, body: dict[str, Any]) -> None:
        with self._lock:
            objects = self._objects.setdefault(resource, {})
            key = key_of(body)
            if objects.get(key) != body:
                objects[key] = body
                self._changed()

    def remove(self, resource: Resource, body: dict[str, Any]) -> None:
        with self._lock:
            if self._objects.get(resource, {}).pop(key_of(body), None) is not None:
                self._changed()

    def forget(self, resource: Resource) -> None:
        """Stop tracking a resource (its Promise is gone): its objects no longer map to files."""
        with self._lock:
            self._objects.pop(resource, None)
            self._synced.discard(resource)
            self._changed()

    def is_synced(self, resource: Resource) -> bool:
        with self._lock:
            return resource in self._synced

    def get(self, resource: Resource, key: Key) -> dict[str, Any] | None:
        with self._lock:
            body = self._objects.get(resource, {}).get(key)
            return copy.deepcopy(body) if body is not None else None

    def objects(self, resource: Resource) -> dict[Key, dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._objects.get(resource, {}))

    @property
    def generation(self) -> int:
        with self._lock:
            return self._generation

    def wait_for_change(self, seen: int, timeout: float) -> int:
        """Block until the store changes after generation `seen`, `timeout` passes or `wake` is called;
        the current generation."""
        with self._lock:
            self._lock.wait_for(lambda: self._generation != seen or self._woken, timeout=timeout)
            return self._generation

    def wake(self) -> None:
        """Release every waiter for good (on shutdown)."""
        with self._lock:
            self._woken = True
            self._lock.notify_all()

    def snapshot(self, request_resources: Iterable[Resource]) -> Snapshot:
        """The mirror's input. Request kinds not listed yet are `pending`: their files must be left alone."""
        with self._lock:
            wanted = list(request_resources)
            return Snapshot(
                promises=copy.deepcopy(self._objects.get(PROMISES, {})),
                destinations=copy.deepcopy(self._objects.get(DESTINATIONS, {})),
                requests={resource: copy.deepcopy(self._objects.get(resource, {}))
                          for resource in wanted if resource in self._synced},
                pending_kinds=frozenset(resource.kind.lower() for resource in wanted
                                        if resource not in self._synced),
            )

    def _changed(self) -> None:
        self._generation += 1
        self._lock.notify_all()
