"""What the watches have observed: the latest body of every watched object, per resource, and whether each
resource's last list succeeded.

Watch threads write (`replace` after a list, `put`/`remove` per event, `list_failed` when a list fails); the
mirror loop and the status loop read consistent copies (`snapshot`) and wait for the next change
(`wait_for_change`). The only shared mutable state of a term of leadership, kept behind one lock; the
controller's own conditions for the status writer live in `ConditionBoard`, behind another.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kratix.controller.crds import DESTINATIONS, PROMISES, Resource
from kratix.controller.mirror import DESTINATIONS_SCOPE, PROMISES_SCOPE, Snapshot, request_scope
from kratix.controller.status import ObjectKey

Key = tuple[str, str]  # (namespace or "", name)


def key_of(body: dict[str, Any]) -> Key:
    metadata = body.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


@dataclass(frozen=True)
class Observed:
    """A snapshot plus when its oldest change not yet mirrored arrived (monotonic seconds; None: no change)."""

    snapshot: Snapshot
    generation: int
    changed_since: float | None


class ObservedStore:
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._objects: dict[Resource, dict[Key, dict[str, Any]]] = {}
        self._synced: set[Resource] = set()
        self._list_errors: dict[Resource, str] = {}
        self._generation = 0
        self._unmirrored_since: float | None = None
        self._woken = False

    def replace(self, resource: Resource, items: Iterable[dict[str, Any]]) -> None:
        """A full, successful list: the objects of `resource` are exactly `items` (deletions missed while away
        vanish), and until its next failure the resource is authoritative."""
        with self._lock:
            self._objects[resource] = {key_of(item): item for item in items}
            self._synced.add(resource)
            self._list_errors.pop(resource, None)
            self._changed()

    def list_failed(self, resource: Resource, reason: str) -> None:
        """A list or watch failed: keep what was seen, but stop trusting that it is complete."""
        with self._lock:
            self._synced.discard(resource)
            self._list_errors[resource] = reason
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
            self._list_errors.pop(resource, None)
            self._changed()

    def is_synced(self, resource: Resource) -> bool:
        with self._lock:
            return resource in self._synced

    def list_error(self, resource: Resource) -> str | None:
        with self._lock:
            return self._list_errors.get(resource)

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

    def authoritative(self, request_resources: Iterable[Resource], *, trusted: Iterable[Resource]) -> frozenset[str]:
        """The scopes whose objects are known completely: Promises and Destinations when their last list
        succeeded; a request kind when its resource is `trusted` (its Promise's API is sound) and listed."""
        with self._lock:
            return self._authoritative(list(request_resources), set(trusted))

    def observe(self, request_resources: Iterable[Resource], *, trusted: Iterable[Resource]) -> Observed:
        """The mirror's input: a consistent copy of everything observed, and which scopes are authoritative."""
        with self._lock:
            wanted = list(request_resources)
            snapshot = Snapshot(
                promises=copy.deepcopy(self._objects.get(PROMISES, {})),
                destinations=copy.deepcopy(self._objects.get(DESTINATIONS, {})),
                requests={resource: copy.deepcopy(self._objects.get(resource, {})) for resource in wanted},
                authoritative=self._authoritative(wanted, set(trusted)),
            )
            return Observed(snapshot=snapshot, generation=self._generation, changed_since=self._unmirrored_since)

    def _authoritative(self, wanted: list[Resource], trusted: set[Resource]) -> frozenset[str]:
        scopes = {
            scope
            for scope, resource in ((PROMISES_SCOPE, PROMISES), (DESTINATIONS_SCOPE, DESTINATIONS))
            if resource in self._synced
        }
        kinds: dict[str, bool] = {}
        for resource in wanted:
            scope = request_scope(resource.kind)
            kinds[scope] = kinds.get(scope, True) and resource in trusted and resource in self._synced
        scopes.update(scope for scope, sound in kinds.items() if sound)
        return frozenset(scopes)

    def mirrored(self, observed: Observed, *, at: float) -> None:
        """Everything up to `observed.generation` is in the repo; later changes arrived after `at` at the
        earliest (so the lag measured for them is an upper bound)."""
        with self._lock:
            self._unmirrored_since = None if self._generation == observed.generation else at

    def _changed(self) -> None:
        self._generation += 1
        if self._unmirrored_since is None:
            self._unmirrored_since = time.monotonic()
        self._lock.notify_all()


class ConditionBoard:
    """The conditions the controller itself sets on objects (a Promise whose API it cannot serve), written by
    the mirror loop and merged into `.status` by the status writer, which `wait`s for a change."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._conditions: dict[ObjectKey, dict[str, Any]] = {}
        self._version = 0
        self._woken = False

    def set(self, key: ObjectKey, condition: dict[str, Any]) -> bool:
        """Record `condition` (by type, replacing one of the same type); True when it changed."""
        with self._lock:
            if self._conditions.get(key) == condition:
                return False
            self._conditions[key] = condition
            self._version += 1
            self._lock.notify_all()
            return True

    def drop(self, key: ObjectKey) -> None:
        with self._lock:
            if self._conditions.pop(key, None) is not None:
                self._version += 1
                self._lock.notify_all()

    def all(self) -> dict[ObjectKey, dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._conditions)

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    def wait(self, seen: int, timeout: float) -> int:
        """Block until a condition changes after version `seen`, `timeout` passes or `wake` is called."""
        with self._lock:
            self._lock.wait_for(lambda: self._version != seen or self._woken, timeout=timeout)
            return self._version

    def wake(self) -> None:
        with self._lock:
            self._woken = True
            self._lock.notify_all()
