"""The controller end to end: the official Kubernetes client against kmock's API emulator over real HTTP, and
real Git repos (a bare "input" remote, a bare "output" remote) in temporary directories.

kmock has no resourceVersion semantics and does not serve a CRD's resource by itself: `_Emulator` adds the
latter (a created CRD's resource becomes listable, as on a real API server). Everything else is kmock as
shipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml
from kubernetes import client

from kratix import gitio
from kratix.controller import ControllerOptions, run_controller
from kratix.controller import repo as controller_repo
from kratix.controller.policy import Timeouts

GROUP = "marketplace.kratix.io"
PROMISE_API = ("platform.kratix.io", "v1alpha1")
WAIT_SECONDS = 15.0


# --- the API server ---------------------------------------------------------------------------------------


class _Emulator(kmock.KubernetesEmulator):
    """kmock's emulator, plus what an API server does that kmock does not: serve the resource a created CRD
    defines and report it Established; stamp `uid`, `creationTimestamp` and a fresh `resourceVersion` on every
    write; and refuse (HTTP 409) a write carrying a stale `resourceVersion`, the compare-and-swap a Lease relies
    on."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._versions = itertools.count(1)
        self._writes = asyncio.Lock()

    async def _handle(self, request: kmock.Request) -> Any:
        resource = request.resource
        writes = (kmock.action.CREATE, kmock.action.UPDATE)
        if resource is None or request.action not in writes or not isinstance(request.data, dict):
            return await super()._handle(request)
        async with self._writes:  # the check and the write, with no other write in between
            metadata = request.data.setdefault("metadata", {})
            stored = self._stored(resource, request.namespace or metadata.get("namespace"),
                                  request.name or metadata.get("name"))
            wanted = metadata.get("resourceVersion")
            stale = stored is not None and str(stored.get("metadata", {}).get("resourceVersion")) != str(wanted)
            if request.action == kmock.action.UPDATE and wanted is not None and stale:
                return await self._render_error(kmock.KubernetesError(
                    status=409, reason="Conflict", message="the object has been modified; please apply "
                                                           "your changes to the latest version and try again"))
            metadata["resourceVersion"] = str(next(self._versions))
            if request.action == kmock.action.CREATE:
                metadata.setdefault("uid", str(uuid.uuid4()))
                metadata.setdefault("creationTimestamp",
                                    datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            response = await super()._handle(request)
        if resource.plural == "customresourcedefinitions" and response.status < 300:
            self._serve_crd(request)
        return response

    def _stored(self, resource: Any, namespace: str | None, name: str | None) -> dict[str, Any] | None:
        for (stored_resource, stored_namespace, stored_name), obj in list(self.objects.items()):
            same_namespace = (stored_namespace or None) == (namespace or None)
            if stored_resource == resource and stored_name == name and same_namespace and not obj.deleted:
                return dict(obj.raw)
        return None

    def _serve_crd(self, request: kmock.Request) -> None:
        name = request.name or request.data["metadata"]["name"]
        for (resource, _, object_name), obj in list(self.objects.items()):
            if resource.plural != "customresourcedefinitions" or object_name != name or obj.deleted:
                continue
            spec = obj.raw.get("spec") or {}
            for version in spec.get("versions") or []:
                key = f"{spec['group']}/{version['name']}/{spec['names']['plural']}"
                self.resources[key] = kmock.ResourceInfo(kind=spec["names"]["kind"],
                                                         namespaced=spec.get("scope") == "Namespaced")
            obj["status"] = {"conditions": [{"type": "NamesAccepted", "status": "True"},
                                            {"type": "Established", "status": "True"}]}


class ApiServer:
    def __init__(self) -> None:
        self.url = ""
        self.kmock: _Emulator | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _serve(self) -> None:
        async with _Emulator() as emulator, kmock.Server(emulator) as server:
            self.kmock, self.url = emulator, str(server.url).rstrip("/")
            self._loop, self._done = asyncio.get_running_loop(), asyncio.Event()
            self._ready.set()
            await self._done.wait()

    def __enter__(self) -> ApiServer:
        self._thread.start()
        assert self._ready.wait(10), "kmock did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._done is not None
        self._loop.call_soon_threadsafe(self._done.set)
        self._thread.join(10)

    def in_loop(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` in kmock's event loop (reactions are registered where requests are served)."""
        assert self._loop is not None

        async def call() -> Any:
            return fn()
        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(10)

    def requests_to(self, action: kmock.action, resource: str) -> int:
        assert self.kmock is not None
        return self.in_loop(lambda: len(self.kmock[action, kmock.resource(resource)]))  # type: ignore[index]


@pytest.fixture
def api_server() -> Iterator[ApiServer]:
    with ApiServer() as server:
        yield server


@pytest.fixture
def kubeconfig(tmp_path: Path, api_server: ApiServer) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
        "clusters": [{"name": "kmock", "cluster": {"server": api_server.url}}],
        "users": [{"name": "tester", "user": {"token": "unused"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "tester"}}],
    }))
    return path


@pytest.fixture
def kubectl(api_server: ApiServer) -> client.CustomObjectsApi:
    """What a platform user does with kubectl: the same client the controller uses, as another caller."""
    configuration = client.Configuration()
    configuration.host = api_server.url
    return client.CustomObjectsApi(client.ApiClient(configuration))


# --- Git --------------------------------------------------------------------------------------------------


def git(*args: str, cwd: Path | None = None) -> str:
    env = gitio.clean_env() | {
        "GIT_AUTHOR_NAME": "Tester", "GIT_AUTHOR_EMAIL": "tester@example.com",
        "GIT_COMMITTER_NAME": "Tester", "GIT_COMMITTER_EMAIL": "tester@example.com",
        "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, check=True, text=True).stdout


class Remote:
    """A bare remote and a scratch clone to write to it or read from it like any other Git user."""

    def __init__(self, root: Path, name: str) -> None:
        self.url = str(root / f"{name}.git")
        self.clone = root / f"{name}-clone"
        git("init", "--quiet", "--bare", "--initial-branch=main", self.url)
        git("clone", "--quiet", self.url, str(self.clone))
        git("checkout", "--quiet", "-B", "main", cwd=self.clone)

    def commit_files(self, files: dict[str, str], message: str) -> str:
        git("pull", "--quiet", "--rebase", "origin", "main", cwd=self.clone, ) if self.has_main() else None
        for path, text in files.items():
            target = self.clone / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            git("add", path, cwd=self.clone)
        git("commit", "--quiet", "-m", message, cwd=self.clone)
        git("push", "--quiet", "origin", "HEAD:main", cwd=self.clone)
        return git("rev-parse", "HEAD", cwd=self.clone).strip()

    def has_main(self) -> bool:
        return bool(git("ls-remote", self.url, "refs/heads/main").strip())

    def files(self, prefix: str = "") -> dict[str, str]:
        if not self.has_main():
            return {}
        head = git("--git-dir", self.url, "rev-parse", "main").strip()  # one commit: the controller may push
        listing = git("--git-dir", self.url, "ls-tree", "-r", "--name-only", head).split()
        return {path: git("--git-dir", self.url, "show", f"{head}:{path}") for path in listing
                if path.startswith(prefix)}

    def log(self) -> list[str]:
        if not self.has_main():
            return []
        return git("--git-dir", self.url, "log", "--format=%s", "main").splitlines()


@pytest.fixture
def input_repo(tmp_path: Path) -> Remote:
    remote = Remote(tmp_path, "input")
    remote.commit_files({"README.md": "platform\n"}, "Start the platform repo")
    return remote


# --- the controller ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def running(options: ControllerOptions) -> Iterator[threading.Thread]:
    stop = threading.Event()
    failures: list[BaseException] = []

    def target() -> None:
        try:
            run_controller(options, stop=stop)
        except BaseException as exc:  # surfaced in the test thread below
            failures.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive(), "the controller did not stop"
    assert not failures, failures


def options_for(kubeconfig: Path, repo: Remote, tmp_path: Path, **overrides: Any) -> ControllerOptions:
    settings: dict[str, Any] = {
        "repo": repo.url, "kubeconfig": str(kubeconfig), "debounce": 0.3, "status_interval": 0.2,
        "workdir": str(tmp_path / "controller"), "watch_timeout": 2, "backoff_max": 0.5,
    }
    settings.update(overrides)
    return ControllerOptions(**settings)


def eventually(check: Callable[[], Any], *, what: str) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# --- objects ----------------------------------------------------------------------------------------------


def promise(name: str = "postgresql", *, kind: str = "Postgres",
            plural: str = "postgreses") -> dict[str, Any]:
    return {
        "apiVersion": "platform.kratix.io/v1alpha1", "kind": "Promise",
        "metadata": {"name": name, "labels": {"kratix.io/promise-version": "v1.0.0"}},
        "spec": {"api": {
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{GROUP}"},
            "spec": {"group": GROUP, "scope": "Namespaced",
                     "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
                     "versions": [{"name": "v1alpha1", "served": True, "storage": True, "schema": {
                         "openAPIV3Schema": {"type": "object", "properties": {"spec": {
                             "type": "object", "properties": {"size": {"type": "string"}}}}}}}]}}},
    }


def request(name: str, namespace: str = "team-a", *, size: str = "small") -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1alpha1", "kind": "Postgres",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"size": size}}


def apply_promise(kubectl: client.CustomObjectsApi, body: dict[str, Any]) -> None:
    kubectl.create_cluster_custom_object(*PROMISE_API, "promises", body)


def create_request(kubectl: client.CustomObjectsApi, body: dict[str, Any]) -> None:
    namespace = body["metadata"]["namespace"]
    kubectl.create_namespaced_custom_object(GROUP, "v1alpha1", namespace, "postgreses", body)


def crd_installed(api_server: ApiServer, name: str) -> dict[str, Any] | None:
    assert api_server.kmock is not None
    for (resource, _, object_name), obj in list(api_server.kmock.objects.items()):
        if resource.plural == "customresourcedefinitions" and object_name == name and not obj.deleted:
            return dict(obj.raw)
    return None


# --- scenarios --------------------------------------------------------------------------------------------


def test_a_promise_installs_its_api_and_is_mirrored_with_a_destination(
        api_server: ApiServer, kubeconfig: Path, kubectl: client.CustomObjectsApi, input_repo: Remote,
        tmp_path: Path) -> None:
    with running(options_for(kubeconfig, input_repo, tmp_path)):
        body = promise()
        body["metadata"].update(uid="1234", resourceVersion="42", annotations={
            "kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "dbs"})
        apply_promise(kubectl, body)
        kubectl.create_cluster_custom_object(*PROMISE_API, "destinations", {
            "apiVersion": "platform.kratix.io/v1alpha1", "kind": "Destination",
            "metadata": {"name": "worker-1", "labels": {"env": "dev"}}, "spec": {"path": "worker-1"}})

        files = eventually(lambda: {p: t for p, t in input_repo.files().items()
                                    if p in ("promises/postgresql/promise.yaml", "clusters/worker-1.yaml")
                                    } if len(input_repo.files()) == 3 else None, what="both files mirrored")
        crd = eventually(lambda: crd_installed(api_server, f"postgreses.{GROUP}"), what="the request CRD")

    mirrored = yaml.safe_load(files["promises/postgresql/promise.yaml"])
    assert mirrored["metadata"] == {
        "name": "postgresql", "labels": {"kratix.io/promise-version": "v1.0.0"},
        "annotations": {"team": "dbs", "kratix.io/mirrored-from": "platform-cluster"}}
    assert mirrored["spec"] == promise()["spec"]
    assert yaml.safe_load(files["clusters/worker-1.yaml"])["spec"] == {"path": "worker-1"}
    assert input_repo.files()["README.md"] == "platform\n"  # the Git-authored content is untouched
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert {"name": "Message", "type": "string", "jsonPath": ".status.message"} in version[
        "additionalPrinterColumns"]
    assert crd_installed(api_server, "promises.platform.kratix.io") is not None
    assert crd_installed(api_server, "destinations.platform.kratix.io") is not None


def test_requests_are_mirrored_updated_and_deleted_one_commit_each(
        kubeconfig: Path, kubectl: client.CustomObjectsApi, input_repo: Remote, tmp_path: Path) -> None:
    path = "requests/team-a/postgres/db.yaml"
    with running(options_for(kubeconfig, input_repo, tmp_path)):
        apply_promise(kubectl, promise())
        eventually(lambda: "promises/postgresql/promise.yaml" in input_repo.files(), what="the Promise")
        create_request(kubectl, request("db"))
        eventually(lambda: path in input_repo.files(), what="the request")
        assert yaml.safe_load(input_repo.files()[path])["spec"] == {"size": "small"}

        kubectl.patch_namespaced_custom_object(GROUP, "v1alpha1", "team-a", "postgreses", "db",
                                               {"spec": {"size": "large"}})
        eventually(lambda: "large" in input_repo.files().get(path, ""), what="the update")

        kubectl.delete_namespaced_custom_object(GROUP, "v1alpha1", "team-a", "postgreses", "db")
        eventually(lambda: path not in input_repo.files(), what="the deletion")

    assert input_repo.log()[:3] == [f"Mirror from platform cluster: delete {path}",
                                    f"Mirror from platform cluster: update {path}",
                                    f"Mirror from platform cluster: add {path}"]


def test_a_burst_of_200_requests_lands_in_a_handful_of_commits_with_none_lost(
        kubeconfig: Path, kubectl: client.CustomObjectsApi, input_repo: Remote, tmp_path: Path) -> None:
    with running(options_for(kubeconfig, input_repo, tmp_path)):
        apply_promise(kubectl, promise())
        eventually(lambda: "promises/postgresql/promise.yaml" in input_repo.files(), what="the Promise")
        commits_before = len(input_repo.log())
        for index in range(200):
            create_request(kubectl, request(f"db-{index:03}", namespace=f"team-{index % 4}"))
        eventually(lambda: len(input_repo.files("requests/")) == 200, what="all 200 requests")

    names = {Path(path).stem for path in input_repo.files("requests/")}
    assert names == {f"db-{index:03}" for index in range(200)}
    assert 1 <= len(input_repo.log()) - commits_before <= 10


def test_an_expired_watch_lists_again_and_keeps_mirroring(
        api_server: ApiServer, kubeconfig: Path, kubectl: client.CustomObjectsApi, input_repo: Remote,
        tmp_path: Path) -> None:
    promises = "platform.kratix.io/v1alpha1/promises"
    gone = {"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                        "code": 410, "reason": "Expired",
                                        "message": "too old resource version: 1 (5)"}}
    served: list[int] = []

    def expire_first_watch() -> Any:
        served.append(1)
        return (gone,) if len(served) == 1 else NotImplemented  # NotImplemented: kmock serves it as usual

    assert api_server.kmock is not None
    api_server.in_loop(lambda: api_server.kmock[kmock.action.WATCH, kmock.resource(promises)]  # type: ignore
                       << expire_first_watch)
    with running(options_for(kubeconfig, input_repo, tmp_path)):
        eventually(lambda: served, what="the expiring watch")
        eventually(lambda: api_server.requests_to(kmock.action.LIST, promises) >= 2, what="a second list")
        apply_promise(kubectl, promise())
        eventually(lambda: "promises/postgresql/promise.yaml" in input_repo.files(), what="the Promise")


def test_a_restart_converges_deletions_missed_while_down_and_leaves_git_authored_files(
        kubeconfig: Path, kubectl: client.CustomObjectsApi, input_repo: Remote, tmp_path: Path) -> None:
    git_authored = "requests/team-a/postgres/by-hand.yaml"
    input_repo.commit_files({git_authored: yaml.safe_dump(request("by-hand"))}, "A request written in Git")
    options = options_for(kubeconfig, input_repo, tmp_path)
    with running(options):
        apply_promise(kubectl, promise())
        create_request(kubectl, request("keep"))
        create_request(kubectl, request("drop"))
        eventually(lambda: len(input_repo.files("requests/")) == 3, what="both requests")

    kubectl.delete_namespaced_custom_object(GROUP, "v1alpha1", "team-a", "postgreses", "drop")
    with running(options):
        eventually(lambda: "requests/team-a/postgres/drop.yaml" not in input_repo.files(),
                   what="the deletion")

    assert set(input_repo.files("requests/")) == {"requests/team-a/postgres/keep.yaml", git_authored}


def test_a_push_that_loses_a_race_is_replanned_on_the_new_head_never_forced(
        input_repo: Remote, tmp_path: Path) -> None:
    """The race is made certain: another clone pushes between the controller's fetch and its push."""
    from kratix.controller import mirror

    clone = controller_repo.BareClone(controller_repo.Remote(input_repo.url, "main"), tmp_path / "mine.git",
                                      timeouts=Timeouts())
    desired = {"requests/team-a/postgres/db.yaml": mirror.render_object(request("db"))}
    plans: list[str] = []

    def plan(current: dict[str, bytes]) -> mirror.Changes:
        plans.append(git("--git-dir", input_repo.url, "rev-parse", "main").strip())
        if len(plans) == 1:
            input_repo.commit_files({"clusters/by-hand.yaml": "kind: Destination\n"}, "Concurrent writer")
        return mirror.plan_changes(desired, current, authoritative=frozenset()).changes

    landed = clone_publish(clone, plan).changes
    concurrent = git("--git-dir", input_repo.url, "log", "--format=%H", "--grep=Concurrent writer",
                     "main").strip()

    assert landed.added == ("requests/team-a/postgres/db.yaml",)
    assert len(plans) == 2
    assert set(input_repo.files()) >= {"clusters/by-hand.yaml", "requests/team-a/postgres/db.yaml",
                                       "README.md"}
    git("--git-dir", input_repo.url, "merge-base", "--is-ancestor", concurrent, "main")  # not overwritten


def clone_publish(clone: controller_repo.BareClone, plan: Callable[[Any], Any]) -> Any:
    from kratix.controller import mirror

    return controller_repo.publish(clone, plan, folders=mirror.MIRRORED_FOLDERS,
                                   message=mirror.commit_message)


def test_changes_made_while_the_repo_is_unreachable_land_once_it_is_back(
        kubeconfig: Path, kubectl: client.CustomObjectsApi, input_repo: Remote, tmp_path: Path) -> None:
    hidden = Path(input_repo.url + ".away")
    with running(options_for(kubeconfig, input_repo, tmp_path)):
        apply_promise(kubectl, promise())
        eventually(lambda: "promises/postgresql/promise.yaml" in input_repo.files(), what="the Promise")
        os.rename(input_repo.url, hidden)
        create_request(kubectl, request("while-away"))
        time.sleep(1.5)  # several failed attempts (the debounce is 0.3 s, the backoff at most 0.5 s)
        os.rename(hidden, input_repo.url)
        eventually(lambda: "requests/team-a/postgres/while-away.yaml" in input_repo.files(),
                   what="the request")


def test_statuses_published_in_the_output_repo_appear_on_the_objects(
        kubeconfig: Path, kubectl: client.CustomObjectsApi, input_repo: Remote, tmp_path: Path) -> None:
    output = Remote(tmp_path, "output")
    request_status = {"message": "Resource requested", "conditions": [
        {"type": "Reconciled", "status": "True", "reason": "Published", "message": "placed on worker-1"}],
        "placement": {"destination": "worker-1"}}
    with running(options_for(kubeconfig, input_repo, tmp_path, output_repo=output.url)):
        apply_promise(kubectl, promise())
        create_request(kubectl, request("db"))
        output.commit_files({
            ".kratix/status/team-a/postgresql/db.yaml": yaml.safe_dump({
                "apiVersion": f"{GROUP}/v1alpha1", "kind": "Postgres",
                "metadata": {"name": "db", "namespace": "team-a"}, "status": request_status}),
            ".kratix/promises/postgresql.yaml": yaml.safe_dump({
                "apiVersion": "platform.kratix.io/v1alpha1", "kind": "Promise",
                "metadata": {"name": "postgresql"}, "status": {"message": "Available"}}),
        }, "Compile")

        def object_status() -> Any:
            return kubectl.get_namespaced_custom_object(GROUP, "v1alpha1", "team-a", "postgreses", "db").get(
                "status")
        eventually(lambda: object_status() == request_status, what="the request's status")
        promise_status = eventually(lambda: promise_status_with_condition(kubectl, "postgresql"),
                                    what="the Promise's status with the controller's condition")
        assert promise_status["message"] == "Available"  # the compiler's, with the controller's merged in
        assert promise_status["conditions"][0]["status"] == "True"

        request_status["message"] = "Deleting"
        del request_status["placement"]
        output.commit_files({".kratix/status/team-a/postgresql/db.yaml": yaml.safe_dump({
            "apiVersion": f"{GROUP}/v1alpha1", "kind": "Postgres",
            "metadata": {"name": "db", "namespace": "team-a"}, "status": request_status})}, "Compile again")
        eventually(lambda: object_status() == request_status, what="the replaced status (placement removed)")

    mirrored = yaml.safe_load(input_repo.files()["requests/team-a/postgres/db.yaml"])
    assert "status" not in mirrored  # the status never travels back into the input repo


def promise_status_with_condition(kubectl: client.CustomObjectsApi, name: str) -> dict[str, Any] | None:
    status = kubectl.get_cluster_custom_object(*PROMISE_API, "promises", name).get("status") or {}
    conditions = [c for c in status.get("conditions") or [] if c.get("type") == "APIAvailable"]
    return status if conditions and set(status) == {"message", "conditions"} else None
