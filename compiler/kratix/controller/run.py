"""The controller's shell: watches feed the store, one loop mirrors it into the input repo, another brings
statuses back. Read top to bottom, `run` is the whole lifecycle.

The mirror loop is level-based: each pass recomputes the repo's desired files from everything observed, so a
change that could not be pushed (remote unreachable, every race lost) is not queued anywhere that could lose
it: the loop keeps retrying, with bounded exponential backoff, until the repo matches the cluster.
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kratix.controller import crds, mirror, repo, status
from kratix.controller.crds import DESTINATIONS, PROMISES, Resource
from kratix.controller.kube import Connection, Kube, connect
from kratix.controller.options import ControllerOptions
from kratix.controller.store import ObservedStore
from kratix.controller.watch import Backoff, Watcher, WatchSettings
from kratix.errors import KratixError

log = logging.getLogger("kratix.controller")

_IDLE_SECONDS = 5.0  # how often an idle loop re-checks Promise APIs whose CRD could not be applied


def run(options: ControllerOptions, *, stop: threading.Event) -> None:
    try:
        connection = connect(kubeconfig=options.kubeconfig, in_cluster=options.in_cluster,
                             context=options.context)
    except Exception as exc:  # the kubernetes config loaders raise several unrelated types
        raise KratixError(f"cannot load the Kubernetes client configuration: {exc}") from exc
    workdir = Path(options.workdir or tempfile.mkdtemp(prefix="kratix-controller-"))
    settings = WatchSettings(watch_timeout_seconds=options.watch_timeout,
                             relist_seconds=options.relist_interval, backoff_max=options.backoff_max)
    controller = _Controller(options, connection=connection, workdir=workdir, settings=settings, stop=stop)
    try:
        controller.install_own_crds()
        controller.start()
        controller.mirror_until_stopped()
    finally:
        controller.shutdown()
        if not options.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


class _Retry:
    """When a failed step may run again: exponential (bounded, jittered) after failures, now after success."""

    def __init__(self, maximum: float) -> None:
        self._maximum, self._delay, self._due = maximum, 0.0, 0.0

    def due(self) -> bool:
        return time.monotonic() >= self._due

    def seconds_left(self) -> float:
        return max(0.0, self._due - time.monotonic())

    def failed(self) -> float:
        self._delay = min(max(self._delay * 2, 0.5), self._maximum)
        delay = self._delay * random.uniform(0.8, 1.2)
        self._due = time.monotonic() + delay
        return delay

    def succeeded(self) -> None:
        self._delay, self._due = 0.0, 0.0


class _Controller:
    def __init__(self, options: ControllerOptions, *, connection: Connection, workdir: Path,
                 settings: WatchSettings, stop: threading.Event) -> None:
        self._options, self._connection, self._settings, self._stop = options, connection, settings, stop
        self._kube = Kube(connection)
        self._store = ObservedStore()
        self._input = repo.BareClone(repo.Remote(options.repo, options.branch), workdir / "input.git")
        self._watchers: dict[Resource, Watcher] = {}
        self._applied_crds: dict[str, dict[str, Any]] = {}  # promise name -> the CRD last applied for it
        self._rejected: dict[str, str] = {}  # promise name -> why its spec.api cannot be installed
        self._api_retry = _Retry(options.backoff_max)
        self._status: _StatusLoop | None = None
        if options.output_repo:
            output = repo.BareClone(repo.Remote(options.output_repo, options.output_branch or options.branch),
                                    workdir / "output.git")
            self._status = _StatusLoop(options, connection=connection, clone=output, store=self._store,
                                       stop=stop)

    def install_own_crds(self) -> None:
        backoff = Backoff(initial=0.5, maximum=self._options.backoff_max, stop=self._stop)
        pending = crds.own_crds()
        while pending and not self._stop.is_set():
            try:
                # Only if missing: a cluster may already run Kratix, whose CRDs carry full schemas.
                outcome = self._kube.apply_crd(pending[0], create_only=True)
                log.info("CRD %s: %s", pending[0]["metadata"]["name"], outcome)
                pending.pop(0)
            except Exception as exc:  # retried until the API server accepts it or we are stopped
                log.warning("cannot apply CRD %s (%s): retrying", pending[0]["metadata"]["name"], exc)
                backoff.wait()

    def start(self) -> None:
        for resource in (PROMISES, DESTINATIONS):
            self._start_watch(resource)
        # The loops wait on the store, not on `stop`: this turns `stop` into a wake-up so shutdown is prompt.
        threading.Thread(target=self._wake_on_stop, name="stop-waker", daemon=True).start()
        if self._status is not None:
            self._status.start()

    def _wake_on_stop(self) -> None:
        self._stop.wait()
        self._store.wake()

    def shutdown(self) -> None:
        self._stop.set()
        for watcher in self._watchers.values():
            watcher.stop()
        for watcher in self._watchers.values():
            watcher.join(timeout=5)
        if self._status is not None:
            self._status.join(timeout=5)

    def mirror_until_stopped(self) -> None:
        seen = -1
        landed: dict[str, bytes] | None = None  # the desired files as of the last pass that converged
        landed_at = 0.0
        mirror_retry = _Retry(self._options.backoff_max)
        while not self._stop.is_set():
            generation = self._store.wait_for_change(seen, timeout=self._idle_timeout(mirror_retry))
            if generation != seen:
                seen = self._debounce(generation)
            apis = self._reconcile_apis()
            if not (self._store.is_synced(PROMISES) and self._store.is_synced(DESTINATIONS)):
                continue  # until both are listed, a missing file could be a deletion or just not listed yet
            if not mirror_retry.due():
                continue
            snapshot = self._store.snapshot(api.resource for api in apis)
            desired = mirror.desired_files(snapshot)
            resync_due = time.monotonic() - landed_at > self._options.resync_interval
            if desired == landed and not snapshot.pending_kinds and not resync_due:
                continue
            try:
                self._publish(desired, snapshot.pending_kinds)
            except repo.RepoError as exc:
                log.warning("input repo not updated (%s): retrying in %.1fs", exc, mirror_retry.failed())
                continue
            mirror_retry.succeeded()
            landed, landed_at = (None if snapshot.pending_kinds else desired), time.monotonic()

    def _idle_timeout(self, mirror_retry: _Retry) -> float:
        left = mirror_retry.seconds_left()
        return min(left, _IDLE_SECONDS) if left > 0 else _IDLE_SECONDS

    def _debounce(self, generation: int) -> int:
        """Wait for changes to stop arriving (quiet for `debounce`, at most 5x that): one commit per burst."""
        debounce = self._options.debounce
        deadline = time.monotonic() + 5 * debounce
        quiet_until = time.monotonic() + debounce
        while not self._stop.is_set():
            left = min(quiet_until, deadline) - time.monotonic()
            if left <= 0:
                break
            newer = self._store.wait_for_change(generation, timeout=left)
            if newer != generation:
                generation, quiet_until = newer, time.monotonic() + debounce
        return generation

    def _publish(self, desired: dict[str, bytes], pending_kinds: frozenset[str]) -> None:
        def plan(current: Mapping[str, bytes]) -> mirror.Changes:
            result = mirror.plan_changes(desired, current, pending_kinds=pending_kinds)
            for path in result.conflicts:
                log.warning("not mirroring %s: the file in the repo has no %s annotation "
                            "(a Git author owns it)", path, mirror.MARKER_ANNOTATION)
            return result.changes

        repo.publish(self._input, plan, folders=mirror.MIRRORED_FOLDERS, message=mirror.commit_message,
                     attempts=self._options.push_attempts)

    def _reconcile_apis(self) -> list[crds.RequestApi]:
        """Install each Promise's request CRD and watch its requests; stop watching deleted Promises' APIs."""
        apis: list[crds.RequestApi] = []
        for (_, name), promise in sorted(self._store.objects(PROMISES).items()):
            api = crds.request_api(promise)
            if isinstance(api, str):
                if self._rejected.get(name) != api:
                    log.warning("not serving requests of Promise %s: %s", name, api)
                self._rejected[name] = api
                continue
            self._rejected.pop(name, None)
            apis.append(api)
            if self._applied_crds.get(name) != api.crd and self._api_retry.due():
                self._apply_request_crd(name, api)
            if name in self._applied_crds and self._applied_crds[name] == api.crd:
                self._start_watch(api.resource)
        self._stop_unused_watches({api.resource for api in apis})
        return apis

    def _apply_request_crd(self, name: str, api: crds.RequestApi) -> None:
        try:
            outcome = self._kube.apply_crd(api.crd)
        except Exception as exc:  # an API error: retried with backoff on a later pass
            log.warning("cannot apply the request CRD of Promise %s (%s): retrying in %.1fs", name, exc,
                        self._api_retry.failed())
            return
        log.info("CRD %s for Promise %s: %s", api.crd["metadata"]["name"], name, outcome)
        self._applied_crds[name] = api.crd
        self._api_retry.succeeded()

    def _start_watch(self, resource: Resource) -> None:
        if resource in self._watchers or self._stop.is_set():
            return
        watcher = Watcher(connection=self._connection, resource=resource, store=self._store,
                          settings=self._settings, stop=self._stop)
        self._watchers[resource] = watcher
        watcher.start()
        log.info("watching %s.%s", resource.plural, resource.group)

    def _stop_unused_watches(self, wanted: set[Resource]) -> None:
        for resource in [r for r in self._watchers if r not in wanted and r not in (PROMISES, DESTINATIONS)]:
            log.info("no Promise serves %s.%s any more: no longer watching it", resource.plural,
                     resource.group)
            self._watchers.pop(resource).stop()
            self._store.forget(resource)


class _StatusLoop:
    """Polls the output repo; patches `.status` of each object whose published status differs."""

    def __init__(self, options: ControllerOptions, *, connection: Connection, clone: repo.BareClone,
                 store: ObservedStore, stop: threading.Event) -> None:
        self._interval, self._clone, self._store, self._stop = options.status_interval, clone, store, stop
        self._kube = Kube(connection)
        self._retry = _Retry(options.backoff_max)
        self._thread = threading.Thread(target=self._run, name="status", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        seen: tuple[str | None, int] | None = None
        published: list[status.PublishedStatus] = []
        while not self._stop.wait(max(self._interval, self._retry.seconds_left()) if seen else 0):
            try:
                head = self._clone.fetch()
            except repo.RepoError as exc:
                log.warning("cannot read statuses (%s): retrying in %.1fs", exc, self._retry.failed())
                seen = seen or (None, -1)
                continue
            self._retry.succeeded()
            current = (head, self._store.generation)
            if current == seen:
                continue
            if seen is None or head != seen[0]:
                files = self._clone.read_files(head, status.STATUS_FOLDERS)
                published = status.parse_status_files(files)
            # A patch that failed is retried on the next poll even when nothing else changed.
            seen = current if self._apply(published) else (head, -1)

    def _apply(self, published: list[status.PublishedStatus]) -> bool:
        resources = {(PROMISES.group, PROMISES.kind): PROMISES}
        for promise in self._store.objects(PROMISES).values():
            api = crds.request_api(promise)
            if not isinstance(api, str):
                resources[(api.resource.group, api.resource.kind)] = api.resource
        observed = {resource: self._store.objects(resource) for resource in resources.values()}
        all_patched = True
        for update in status.plan_status(published, resources=resources, observed=observed):
            try:
                self._kube.patch_status(update.resource, namespace=update.namespace, name=update.name,
                                        status=update.patch)
            except Exception as exc:  # one failing object must not hold back the rest; the next poll retries
                log.warning("cannot patch the status of %s %s/%s: %s", update.resource.kind, update.namespace,
                            update.name, exc)
                all_patched = False
                continue
            log.info("status of %s %s/%s updated", update.resource.kind, update.namespace or "-", update.name)
        return all_patched
