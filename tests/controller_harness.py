"""What the controller's end-to-end tests run against: kmock's Kubernetes API emulator over real HTTP (with
the few API-server behaviours it lacks added), real Git remotes in temporary directories, the controller in
a thread, and the objects a platform user applies.

kmock has no resourceVersion semantics and does not serve a CRD's resource by itself: `_Emulator` adds both
(a created CRD's resource becomes listable and Established, writes get a resourceVersion, uid and
creationTimestamp, and a write with a stale resourceVersion gets HTTP 409, as from a real API server), and lets
a test make the server refuse chosen writes. Everything else is kmock as shipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kmock
import yaml
from kubernetes import client

from kratix import gitio
from kratix.controller import ControllerOptions, run_controller

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
        # Writes the API server refuses, as a test sets them up: each returns an error, or None to let it pass.
        # (kmock stores a write even when a reaction answers it, so a refusal must come before the write.)
        self.refusals: list[Callable[[kmock.Request], kmock.KubernetesError | None]] = []

    async def _handle(self, request: kmock.Request) -> Any:
        resource = request.resource
        writes = (kmock.action.CREATE, kmock.action.UPDATE)
        if resource is None or request.action not in writes or not isinstance(request.data, dict):
            return await super()._handle(request)
        for refuse in list(self.refusals):
            error = refuse(request)
            if error is not None:
                return await self._render_error(error)
        async with self._writes:  # the check and the write, with no other write in between
            metadata = request.data.setdefault("metadata", {})
            stored = self._stored(
                resource, request.namespace or metadata.get("namespace"), request.name or metadata.get("name")
            )
            wanted = metadata.get("resourceVersion")
            stale = stored is not None and str(stored.get("metadata", {}).get("resourceVersion")) != str(wanted)
            if request.action == kmock.action.UPDATE and wanted is not None and stale:
                return await self._render_error(
                    kmock.KubernetesError(
                        status=409,
                        reason="Conflict",
                        message="the object has been modified; please apply "
                        "your changes to the latest version and try again",
                    )
                )
            metadata["resourceVersion"] = str(next(self._versions))
            if request.action == kmock.action.CREATE:
                metadata.setdefault("uid", str(uuid.uuid4()))
                metadata.setdefault(
                    "creationTimestamp", datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                )
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
                self.resources[key] = kmock.ResourceInfo(
                    kind=spec["names"]["kind"], namespaced=spec.get("scope") == "Namespaced"
                )
            obj["status"] = {
                "conditions": [{"type": "NamesAccepted", "status": "True"}, {"type": "Established", "status": "True"}]
            }


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


# --- Git --------------------------------------------------------------------------------------------------


def git(*args: str, cwd: Path | None = None) -> str:
    env = gitio.clean_env() | {
        "GIT_AUTHOR_NAME": "Tester",
        "GIT_AUTHOR_EMAIL": "tester@example.com",
        "GIT_COMMITTER_NAME": "Tester",
        "GIT_COMMITTER_EMAIL": "tester@example.com",
        "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
    }
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
        git(
            "pull",
            "--quiet",
            "--rebase",
            "origin",
            "main",
            cwd=self.clone,
        ) if self.has_main() else None
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
        return {
            path: git("--git-dir", self.url, "show", f"{head}:{path}") for path in listing if path.startswith(prefix)
        }

    def log(self) -> list[str]:
        if not self.has_main():
            return []
        return git("--git-dir", self.url, "log", "--format=%s", "main").splitlines()


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


def options_for(kubeconfig: Path, repo: Remote, workdir: Path, **overrides: Any) -> ControllerOptions:
    settings: dict[str, Any] = {
        "repo": repo.url,
        "kubeconfig": str(kubeconfig),
        "debounce": 0.3,
        "status_interval": 0.2,
        "workdir": str(workdir),
        "watch_timeout": 2,
        "backoff_max": 0.5,
        "api_check_interval": 1.0,
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


def promise(name: str = "postgresql", *, kind: str = "Postgres", plural: str = "postgreses") -> dict[str, Any]:
    return {
        "apiVersion": "platform.kratix.io/v1alpha1",
        "kind": "Promise",
        "metadata": {"name": name, "labels": {"kratix.io/promise-version": "v1.0.0"}},
        "spec": {
            "api": {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.{GROUP}"},
                "spec": {
                    "group": GROUP,
                    "scope": "Namespaced",
                    "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
                    "versions": [
                        {
                            "name": "v1alpha1",
                            "served": True,
                            "storage": True,
                            "schema": {
                                "openAPIV3Schema": {
                                    "type": "object",
                                    "properties": {
                                        "spec": {"type": "object", "properties": {"size": {"type": "string"}}}
                                    },
                                }
                            },
                        }
                    ],
                },
            }
        },
    }


def request(name: str, namespace: str = "team-a", *, size: str = "small") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "Postgres",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"size": size},
    }


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


def promise_status_with_condition(kubectl: client.CustomObjectsApi, name: str) -> dict[str, Any] | None:
    status = kubectl.get_cluster_custom_object(*PROMISE_API, "promises", name).get("status") or {}
    conditions = [c for c in status.get("conditions") or [] if c.get("type") == "APIAvailable"]
    return status if conditions and set(status) == {"message", "conditions"} else None


def objects_of(api_server: ApiServer, plural: str) -> list[dict[str, Any]]:
    """Every live object of a resource as the API server holds it (bodies, whatever their namespace)."""
    assert api_server.kmock is not None
    return [
        dict(obj.raw)
        for (resource, _, _), obj in list(api_server.kmock.objects.items())
        if resource.plural == plural and not obj.deleted
    ]


def events_about(api_server: ApiServer, kind: str, name: str) -> list[dict[str, Any]]:
    """The events.k8s.io Events regarding one object, oldest first."""
    return [
        event
        for event in objects_of(api_server, "events")
        if event["regarding"]["kind"] == kind and event["regarding"]["name"] == name
    ]


def api_condition(kubectl: client.CustomObjectsApi, promise_name: str) -> dict[str, Any] | None:
    """The controller's APIAvailable condition on a Promise, if it has one."""
    status = kubectl.get_cluster_custom_object(*PROMISE_API, "promises", promise_name).get("status") or {}
    return next((c for c in status.get("conditions") or [] if c.get("type") == "APIAvailable"), None)


def write_kubeconfig(path: Path, url: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "kmock",
                "clusters": [{"name": "kmock", "cluster": {"server": url}}],
                "users": [{"name": "tester", "user": {"token": "unused"}}],
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "tester"}}],
            }
        )
    )
    return path


def kubectl_for(api_server: ApiServer) -> client.CustomObjectsApi:
    """What a platform user does with kubectl: the same client the controller uses, as another caller."""
    configuration = client.Configuration()
    configuration.host = api_server.url
    return client.CustomObjectsApi(client.ApiClient(configuration))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_get(url: str) -> tuple[int, str]:
    """(status, body); (0, why) while nothing listens yet."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except urllib.error.URLError as error:
        return 0, str(error.reason)


class Platform:
    """One emulated platform cluster and one input repo: what most scenarios need, as one context manager."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.api_server = ApiServer()

    def __enter__(self) -> Platform:
        self.api_server.__enter__()
        self.kubeconfig = write_kubeconfig(self.tmp_path / "kubeconfig", self.api_server.url)
        self.kubectl = kubectl_for(self.api_server)
        self.input_repo = Remote(self.tmp_path, "input")
        self.input_repo.commit_files({"README.md": "platform\n"}, "Start the platform repo")
        return self

    def __exit__(self, *exc: object) -> None:
        self.api_server.__exit__(*exc)

    def options(self, name: str = "controller", **overrides: Any) -> ControllerOptions:
        return options_for(self.kubeconfig, self.input_repo, self.tmp_path / name, **overrides)

    def refuse(self, refusal: Callable[[kmock.Request], kmock.KubernetesError | None]) -> None:
        assert self.api_server.kmock is not None
        self.api_server.in_loop(lambda: self.api_server.kmock.refusals.append(refusal))  # type: ignore[union-attr]
