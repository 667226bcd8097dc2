"""The controller's shell. Read top to bottom, `run` is the whole lifecycle: connect; serve `/healthz`,
`/readyz` and `/metrics`; with leader election, wait for the Lease; then, for each term of leadership, install
the Promise and Destination CRDs, watch, mirror into the input repo and write statuses back, until the term
ends (the Lease is lost, or `stop`); stop everything of that term, and only then release the Lease.

The mirror loop is level-based: each pass recomputes the repo's desired files from everything observed, so a
change that could not be pushed (remote unreachable, every race lost) is not queued anywhere that could lose
it: the loop keeps retrying, with bounded exponential backoff, until the repo matches the cluster. A Promise
whose request API cannot be served (invalid, foreign or claimed CRD, rejected update, failed list) gets a
`APIAvailable=False` condition and an Event, and its requests' files are kept, never deleted by inference.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kratix.controller import crds, mirror, repo, status
from kratix.controller.crds import CRDS, DESTINATIONS, PROMISES, Resource
from kratix.controller.events import EventRecorder, utc_time
from kratix.controller.kube import Connection, Kube, connect, describe, is_temporary
from kratix.controller.leader import LeaderElector, LeaseSettings
from kratix.controller.metrics import Metrics
from kratix.controller.options import ControllerOptions
from kratix.controller.policy import Backoff, RetryPolicy, RetryTimer, Timeouts
from kratix.controller.serve import ProbeServer
from kratix.controller.store import ConditionBoard, Observed, ObservedStore
from kratix.controller.watch import Watcher, WatchSettings
from kratix.model import paths
from kratix.model.errors import KratixError

log = logging.getLogger("kratix.controller")

_IDLE_SECONDS = 2.0  # how often an idle loop re-checks Promise APIs that are failing or not established yet


def run(options: ControllerOptions, *, stop: threading.Event) -> None:
    try:
        connection = connect(kubeconfig=options.kubeconfig, in_cluster=options.in_cluster, context=options.context)
    except Exception as exc:  # the kubernetes config loaders raise several unrelated types
        raise KratixError(f"cannot load the Kubernetes client configuration: {exc}") from exc
    timeouts, retry = Timeouts.of(options), RetryPolicy.of(options)
    metrics = Metrics()
    identity = options.identity or os.environ.get("POD_NAME") or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    workdir = Path(options.workdir or tempfile.mkdtemp(prefix="kratix-controller-"))
    elector = None
    if options.leader_election:
        lease = LeaseSettings(
            namespace=options.lease_namespace or os.environ.get("POD_NAMESPACE") or "default",
            name=options.lease_name,
            identity=identity,
            lease_seconds=options.lease_duration,
            renew_deadline=options.renew_deadline,
            retry_period=options.retry_period,
        )
        elector = LeaderElector(Kube(connection, timeouts=timeouts), lease, metrics=metrics)
    # Liveness allows the longest step between two heartbeats (a fetch, a read, a commit and a push), plus slack.
    lifecycle = _Lifecycle(
        elector=elector,
        liveness_seconds=2 * timeouts.git_network + 3 * timeouts.git_local + 60,
        contact_seconds=max(30.0, 2 * options.lease_duration),
    )
    server = None
    if options.http_address:
        server = ProbeServer(options.http_address, metrics=metrics, alive=lifecycle.alive, ready=lifecycle.ready)
        server.start()
    try:
        while not stop.is_set():
            if elector is not None and not elector.campaign(stop):
                break
            term = stop if elector is None else threading.Event()
            keeper = None
            if elector is not None:
                keeper = threading.Thread(
                    target=elector.keep, kwargs={"stop": stop, "lost": term}, name="lease", daemon=True
                )
                keeper.start()
            controller = _Controller(
                options,
                connection=connection,
                workdir=workdir,
                timeouts=timeouts,
                retry=retry,
                metrics=metrics,
                identity=identity,
                stop=term,
            )
            lifecycle.leading(controller)
            metrics.leader.set(1)
            try:
                controller.run()
            finally:
                term.set()  # a term that ended by an error ends the renewals too
                controller.shutdown()
                metrics.leader.set(0)
                lifecycle.leading(None)
                if keeper is not None:
                    keeper.join(timeout=options.retry_period + timeouts.api_connect + timeouts.api_read)
            if elector is None:
                break
    finally:
        if elector is not None:
            elector.release()  # after this term's work stopped: the next leader never overlaps it
        if server is not None:
            server.close()
        if not options.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


class _Lifecycle:
    """What the probes read: whether this replica leads, and the leading controller's progress."""

    def __init__(self, *, elector: LeaderElector | None, liveness_seconds: float, contact_seconds: float) -> None:
        self._elector, self._liveness, self._contact = elector, liveness_seconds, contact_seconds
        self._lock = threading.Lock()
        self._controller: _Controller | None = None

    def leading(self, controller: _Controller | None) -> None:
        with self._lock:
            self._controller = controller

    def alive(self) -> tuple[bool, str]:
        with self._lock:
            controller = self._controller
        if controller is None:
            return True, "ok"
        silent = time.monotonic() - controller.heartbeat
        if silent > self._liveness:
            return False, f"the mirror loop has not made progress for {silent:.0f}s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        with self._lock:
            controller = self._controller
        if controller is not None:
            return controller.ready()
        if self._elector is None:
            return False, "starting"
        contact = time.monotonic() - self._elector.last_contact
        if self._elector.last_contact and contact < self._contact:
            return True, "ok: following, standing by to lead"
        return False, "cannot reach the API server to follow the Lease"


@dataclass
class _ApiState:
    """What the mirror loop knows of one Promise's request API (private to that loop's thread)."""

    retry: RetryTimer
    wanted: crds.RequestApi | crds.Refusal | None = None
    served: Resource | None = None  # the resource watched for it (the CRD in the cluster, even when stale)
    owner: str | None = None  # the owner label of the CRD under the wanted name, as last read
    up_to_date: bool = False  # the cluster's CRD is this Promise's, matches it, and is established
    checked_at: float = 0.0
    problem: crds.Refusal | None = field(default=None)


class _Controller:
    def __init__(
        self,
        options: ControllerOptions,
        *,
        connection: Connection,
        workdir: Path,
        timeouts: Timeouts,
        retry: RetryPolicy,
        metrics: Metrics,
        identity: str,
        stop: threading.Event,
    ) -> None:
        self._options, self._connection, self._stop = options, connection, stop
        self._timeouts, self._retry, self._metrics = timeouts, retry, metrics
        self._settings = WatchSettings(
            watch_timeout_seconds=options.watch_timeout,
            relist_seconds=options.relist_interval,
            retry=retry,
            timeouts=timeouts,
        )
        self._kube = Kube(connection, timeouts=timeouts)
        self._store = ObservedStore()
        self._board = ConditionBoard()
        self._events = EventRecorder(self._kube, identity=identity, metrics=metrics)
        self._workdir = workdir
        self._input: repo.BareClone | None = None  # the input repo's private clone, made on first use
        self._watchers: dict[Resource, Watcher] = {}
        self._apis: dict[str, _ApiState] = {}
        self._own_crds_installed = False
        self.heartbeat = time.monotonic()
        self._status = _StatusWriter(
            options,
            connection=connection,
            workdir=workdir,
            timeouts=timeouts,
            retry=retry,
            store=self._store,
            board=self._board,
            metrics=metrics,
            stop=stop,
        )

    def run(self) -> None:
        self.install_own_crds()
        self.start()
        self.mirror_until_stopped()

    def ready(self) -> tuple[bool, str]:
        if not self._own_crds_installed:
            return False, "leading: installing the Promise and Destination CRDs"
        missing = [r.plural for r in (PROMISES, DESTINATIONS) if not self._store.is_synced(r)]
        if missing:
            return False, f"leading: {' and '.join(missing)} not listed yet"
        return True, "ok: leading"

    def install_own_crds(self) -> None:
        backoff = Backoff(self._retry, stop=self._stop)
        pending = crds.own_crds()
        while pending and not self._stop.is_set():
            self.heartbeat = time.monotonic()
            name = pending[0]["metadata"]["name"]
            try:
                # Only if missing: a cluster may already run Kratix, whose CRDs carry full schemas.
                if self._kube.get_crd(name) is None:
                    self._kube.create(CRDS, pending[0])
                    log.info("CRD %s: created", name)
                pending.pop(0)
            except Exception as exc:  # retried until the API server accepts it or we are stopped
                self._metrics.errors.labels(operation="crd").inc()
                log.warning("cannot install CRD %s (%s): retrying in %.1fs", name, describe(exc), backoff.wait())
        self._own_crds_installed = not pending

    def start(self) -> None:
        for resource in (PROMISES, DESTINATIONS):
            self._start_watch(resource)
        # The loops wait on the store and the board, not on `stop`: turn `stop` into their wake-up.
        threading.Thread(target=self._wake_on_stop, name="stop-waker", daemon=True).start()
        self._status.start()

    def _wake_on_stop(self) -> None:
        self._stop.wait()
        self._store.wake()
        self._board.wake()

    def shutdown(self) -> None:
        self._stop.set()
        for watcher in self._watchers.values():
            watcher.stop()
        for watcher in self._watchers.values():
            watcher.join(timeout=5)
        self._status.join(timeout=5 + self._timeouts.git_network)

    # --- mirroring ---------------------------------------------------------------------------------------

    def mirror_until_stopped(self) -> None:
        seen = -1
        landed: tuple[int, frozenset[str]] | None = None  # (generation, authoritative) of the last converged pass
        landed_files: dict[str, bytes] | None = None
        landed_at = 0.0
        mirror_retry = RetryTimer(self._retry)
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            generation = self._store.wait_for_change(seen, timeout=self._idle_timeout(mirror_retry))
            if generation != seen:
                seen = self._debounce(generation)
            resources, trusted = self._reconcile_apis()
            if self._stop.is_set() or not mirror_retry.due():
                continue
            resync_due = time.monotonic() - landed_at > self._options.resync_interval
            scopes = self._store.authoritative(resources, trusted=trusted)
            if landed == (self._store.generation, scopes) and not resync_due:
                continue  # nothing observed since the last pass that converged
            observed = self._store.observe(resources, trusted=trusted)
            authoritative = observed.snapshot.authoritative
            desired = mirror.desired_files(observed.snapshot)
            if desired == landed_files and landed is not None and landed[1] == authoritative and not resync_due:
                self._store.mirrored(observed, at=time.monotonic())  # changes that touch no file (a status)
                landed = (observed.generation, authoritative)
                continue
            started = time.monotonic()
            try:
                result = self._publish(desired, observed)
            except repo.RepoError as exc:
                self._metrics.errors.labels(operation="git").inc()
                log.warning("input repo not updated (%s): retrying in %.1fs", exc, mirror_retry.failed())
                continue
            mirror_retry.succeeded()
            self._metrics.passes.inc()
            self._metrics.push_retries.inc(result.lost_races)
            if result.commit is not None:
                self._metrics.commits.inc()
                if observed.changed_since is not None:
                    self._metrics.lag.observe(time.monotonic() - observed.changed_since)
            self._store.mirrored(observed, at=started)
            landed, landed_files, landed_at = (observed.generation, authoritative), desired, time.monotonic()

    def _idle_timeout(self, mirror_retry: RetryTimer) -> float:
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

    def _publish(self, desired: dict[str, bytes], observed: Observed) -> repo.Landed:
        sources = mirror.objects_by_path(observed.snapshot)
        authoritative = observed.snapshot.authoritative

        def plan(current: Mapping[str, bytes]) -> mirror.Changes:
            result = mirror.plan_changes(desired, current, authoritative=authoritative)
            for path in result.conflicts:
                message = (
                    f"not mirrored to {path}: that file has no {mirror.MARKER_ANNOTATION} annotation, so "
                    "a Git author owns it (delete the file in Git to hand it to the controller)"
                )
                log.warning("%s", message, extra={"path": path})
                self._events.record(
                    sources[path], type="Warning", reason="NotMirrored", message=message, action="Mirror"
                )
            return result.changes

        def beat() -> None:
            self.heartbeat = time.monotonic()

        if self._input is None:
            self._input = repo.BareClone(
                repo.Remote(self._options.repo, self._options.branch),
                self._workdir / "input.git",
                timeouts=self._timeouts,
            )
        return repo.publish(
            self._input,
            plan,
            folders=mirror.MIRRORED_FOLDERS,
            message=mirror.commit_message,
            attempts=self._options.push_attempts,
            on_attempt=beat,
        )

    # --- request APIs ------------------------------------------------------------------------------------

    def _reconcile_apis(self) -> tuple[list[Resource], set[Resource]]:
        """Install or update each Promise's CRD where it may, watch what each serves, and set each Promise's
        condition. Returns the request resources watched and those whose files the snapshot may trust."""
        promises = {name: body for (_, name), body in self._store.objects(PROMISES).items()}
        wanted = {name: crds.request_api(body) for name, body in sorted(promises.items())}
        states = {name: self._apis.get(name) or _ApiState(retry=RetryTimer(self._retry)) for name in wanted}
        claims = _claims(promises, wanted, states)
        for name, api in wanted.items():
            self._settle_api(states[name], api, claim=claims.get(name))
            self._report(name, promises[name], states[name])
        for name in set(self._apis) - set(wanted):
            log.info("Promise %s is gone: no longer watching its requests (their files stay)", name)
            self._board.drop((PROMISES, "", name))
        self._apis = states
        served = {state.served for state in states.values() if state.served is not None}
        for resource in served:
            self._start_watch(resource)
        self._stop_unused_watches(served)
        self._metrics.failing_apis.set(sum(1 for state in states.values() if state.problem is not None))
        return sorted(served), _trusted(states.values())

    def _settle_api(self, state: _ApiState, api: crds.RequestApi | crds.Refusal, *, claim: crds.Refusal | None) -> None:
        """One Promise's API: refused (its CRD cannot be made, or another Promise holds its name or kind), or
        checked against the cluster when a check is due."""
        changed, state.wanted = state.wanted != api, api
        refusal = api if isinstance(api, crds.Refusal) else claim
        if refusal is not None:
            state.up_to_date, state.problem = False, refusal
        elif isinstance(api, crds.RequestApi) and self._api_check_due(state, changed):
            self._check_api(state, api)

    def _api_check_due(self, state: _ApiState, changed: bool) -> bool:
        if changed or (not state.up_to_date and state.retry.due()):
            return True
        if state.served is not None and self._store.list_error(state.served) and state.retry.due():
            return True
        return time.monotonic() - state.checked_at > self._options.api_check_interval

    def _check_api(self, state: _ApiState, api: crds.RequestApi) -> None:
        """Read the CRD named by the Promise and create, patch or leave it, as `crds.crd_action` decides."""
        state.checked_at = time.monotonic()
        current: dict[str, Any] | None = None
        try:
            current = self._kube.get_crd(api.crd_name)
            state.owner = crds.owner_of(current) if current is not None else None
            action = crds.crd_action(api, current)
            if isinstance(action, crds.Refusal):
                state.up_to_date, state.problem = False, action
                state.served = None  # someone else's CRD: its objects are not this Promise's requests
                state.retry.failed()  # read again now and then: someone may adopt it for this Promise
                return
            if action.verb == "create":
                current = self._kube.create(CRDS, action.body)
                log.info("CRD %s for Promise %s: created", api.crd_name, api.promise)
            elif action.verb == "patch":
                current = self._kube.patch(CRDS, api.crd_name, action.body)
                log.info("CRD %s for Promise %s: updated", api.crd_name, api.promise)
            state.owner, state.served = api.promise, api.resource
            established = crds.established(current or {})
            if established is not True:
                state.up_to_date = False
                state.problem = (
                    None
                    if established is None
                    else crds.Refusal(
                        "CRDNotEstablished", f"CustomResourceDefinition {api.crd_name} is not served: {established}"
                    )
                )
                state.retry.failed()  # read it again soon: the API server establishes a CRD within seconds
                return
        except Exception as exc:  # refused or unreachable: the Promise says why; retried with backoff
            self._metrics.errors.labels(operation="crd").inc()
            state.up_to_date = False
            verb = "update" if current is not None else "install"
            reason = (
                "APIServerUnavailable"
                if is_temporary(exc)
                else ("CRDUpdateRejected" if current is not None else "CRDInstallRejected")
            )
            state.problem = crds.Refusal(
                reason, f"cannot {verb} CustomResourceDefinition {api.crd_name}: {describe(exc)}"
            )
            if current is not None and crds.owner_of(current) == api.promise:
                state.served = crds.served_resource(current)  # keep mirroring what the cluster still serves
            state.retry.failed()
            return
        state.up_to_date, state.problem = True, None
        state.retry.succeeded()

    def _report(self, name: str, promise: dict[str, Any], state: _ApiState) -> None:
        """Turn the state into the Promise's `APIAvailable` condition, and each new failure into an Event."""
        problem = state.problem
        list_error = self._store.list_error(state.served) if state.served is not None else None
        if problem is None and list_error:
            problem = crds.Refusal("RequestsNotListed", list_error)
        if problem is not None:
            condition = {
                "type": status.API_CONDITION,
                "status": "False",
                "reason": problem.reason,
                "message": f"{problem.message}. Requests of this Promise in the input repo are kept, "
                "never deleted, until this is resolved",
            }
        elif state.up_to_date and state.served is not None and self._store.is_synced(state.served):
            resource = state.served
            condition = {
                "type": status.API_CONDITION,
                "status": "True",
                "reason": "Served",
                "message": f"{resource.plural}.{resource.group}/{resource.version} is served; requests "
                f"are mirrored to requests/<namespace>/{resource.kind.lower()}/",
            }
        else:
            return  # being established, or its first list is under way
        if not self._board.set((PROMISES, "", name), condition):
            return
        if problem is not None:
            log.warning(
                "Promise %s: %s: %s",
                name,
                problem.reason,
                problem.message,
                extra={"promise": name, "reason": problem.reason},
            )
            self._events.record(
                promise, type="Warning", reason=problem.reason, message=condition["message"], action="ServeAPI"
            )
        else:
            log.info("Promise %s: %s", name, condition["message"], extra={"promise": name})
            self._events.record(
                promise, type="Normal", reason="Served", message=condition["message"], action="ServeAPI"
            )

    def _start_watch(self, resource: Resource) -> None:
        if resource in self._watchers or self._stop.is_set():
            return
        watcher = Watcher(
            connection=self._connection,
            resource=resource,
            store=self._store,
            settings=self._settings,
            stop=self._stop,
            on_error=lambda operation: self._metrics.errors.labels(operation=operation).inc(),
        )
        self._watchers[resource] = watcher
        watcher.start()
        log.info("watching %s.%s", resource.plural, resource.group)

    def _stop_unused_watches(self, wanted: set[Resource]) -> None:
        for resource in [r for r in self._watchers if r not in wanted and r not in (PROMISES, DESTINATIONS)]:
            log.info("no Promise serves %s.%s any more: no longer watching it", resource.plural, resource.group)
            self._watchers.pop(resource).stop()
            self._store.forget(resource)


def _claims(
    promises: Mapping[str, dict[str, Any]],
    wanted: Mapping[str, crds.RequestApi | crds.Refusal],
    states: Mapping[str, _ApiState],
) -> dict[str, crds.Refusal]:
    """The Promises refused because another claims the same CRD or kind, ranked on what was known before this
    round (each CRD's owner as last read, each Promise's creation time)."""
    apis = [api for api in wanted.values() if isinstance(api, crds.RequestApi)]
    owners = {
        state.wanted.crd_name: state.owner for state in states.values() if isinstance(state.wanted, crds.RequestApi)
    }
    created = {
        name: str((body.get("metadata") or {}).get("creationTimestamp") or "") for name, body in promises.items()
    }
    return crds.claim_refusals(apis, owners=owners, created=created)


def _trusted(states: Iterable[_ApiState]) -> set[Resource]:
    """The resources whose files the snapshot may trust: served by an up-to-date CRD with no problem."""
    return {state.served for state in states if state.up_to_date and state.problem is None and state.served is not None}


class _StatusWriter:
    """Writes `.status` of Promises and requests: what the compiler published in the output repo (polled every
    `status_interval`, when there is one) with the controller's own conditions merged in (at once)."""

    def __init__(
        self,
        options: ControllerOptions,
        *,
        connection: Connection,
        workdir: Path,
        timeouts: Timeouts,
        retry: RetryPolicy,
        store: ObservedStore,
        board: ConditionBoard,
        metrics: Metrics,
        stop: threading.Event,
    ) -> None:
        self._options, self._workdir, self._timeouts = options, workdir, timeouts
        self._interval, self._store, self._board, self._stop = options.status_interval, store, board, stop
        self._metrics = metrics
        self._kube = Kube(connection, timeouts=timeouts)
        self._retry = RetryTimer(retry)
        self._thread = threading.Thread(target=self._run, name="status", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        clone: repo.BareClone | None = None
        head: str | None = None
        published: list[status.PublishedStatus] = []
        seen: tuple[str | None, int, int] | None = None
        polled_at: float | None = None
        while not self._stop.is_set():
            output = self._options.output_repo
            if output and self._retry.due() and (polled_at is None or time.monotonic() - polled_at >= self._interval):
                polled_at = time.monotonic()
                try:
                    if clone is None:
                        clone = repo.BareClone(
                            repo.Remote(output, self._options.output_branch or self._options.branch),
                            self._workdir / "output.git",
                            timeouts=self._timeouts,
                        )
                    fetched = clone.fetch()
                    if fetched != head or not published:
                        published = status.parse_status_files(clone.read_files(fetched, paths.STATUS_FOLDERS))
                        head = fetched
                    self._retry.succeeded()
                except repo.RepoError as exc:
                    self._metrics.errors.labels(operation="git").inc()
                    log.warning("cannot read statuses (%s): retrying in %.1fs", exc, self._retry.failed())
            current = (head, self._store.generation, self._board.version)
            if current != seen:
                # A patch that failed is retried on the next round even when nothing else changed.
                seen = current if self._apply(published) else None
            timeout = self._interval if self._retry.due() else min(self._interval, self._retry.seconds_left())
            self._board.wait(current[2], timeout=max(timeout, 0.05))  # a new condition is written at once

    def _apply(self, published: list[status.PublishedStatus]) -> bool:
        resources = {(PROMISES.group, PROMISES.kind): PROMISES}
        for promise in self._store.objects(PROMISES).values():
            api = crds.request_api(promise)
            if isinstance(api, crds.RequestApi):
                resources[(api.resource.group, api.resource.kind)] = api.resource
        observed = {resource: self._store.objects(resource) for resource in resources.values()}
        all_patched = True
        updates = status.plan_status(
            published, resources=resources, observed=observed, conditions=self._board.all(), now=utc_time()
        )
        for update in updates:
            try:
                self._kube.patch_status(
                    update.resource, namespace=update.namespace, name=update.name, status=update.patch
                )
            except Exception as exc:  # one failing object must not hold back the rest; the next round retries
                self._metrics.errors.labels(operation="status").inc()
                log.warning(
                    "cannot patch the status of %s %s/%s: %s",
                    update.resource.kind,
                    update.namespace,
                    update.name,
                    describe(exc),
                )
                all_patched = False
                continue
            self._metrics.status_writes.inc()
            log.info("status of %s %s/%s updated", update.resource.kind, update.namespace or "-", update.name)
        return all_patched
