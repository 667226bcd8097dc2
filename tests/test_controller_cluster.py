"""The controller against a real API server: runs only when KUBECONFIG names one (kind, k3d, a dev cluster).

It creates a uniquely named Promise (API group `<id>.test.kratix.io`) and one request, checks both are
mirrored into a temporary bare repo and that the request's deletion is mirrored too, then deletes what it
created. What kmock cannot show is what this checks: real resourceVersions, CRD establishment delays, pruning
by a structural schema, merge-patch of a CRD and of a status subresource.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kratix.controller import ControllerOptions, run_controller

pytestmark = pytest.mark.skipif(
    not os.environ.get("KUBECONFIG"), reason="needs a real cluster: set KUBECONFIG to run it"
)


def eventually(check: Callable[[], Any], what: str, seconds: float = 60.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)
    return result


def files(bare: Path) -> set[str]:
    listing = subprocess.run(
        ["git", "--git-dir", str(bare), "ls-tree", "-r", "--name-only", "main"],
        capture_output=True,
        text=True,
        check=False,
    )
    return set(listing.stdout.split()) if listing.returncode == 0 else set()


@contextlib.contextmanager
def controller(options: ControllerOptions) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=run_controller, args=(options,), kwargs={"stop": stop}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


def test_promise_and_request_round_trip_through_a_real_api_server(tmp_path: Path) -> None:
    from kubernetes import client, config

    ident = f"t{uuid.uuid4().hex[:8]}"
    group, plural = f"{ident}.test.kratix.io", "widgets"
    config.load_kube_config()
    api = client.CustomObjectsApi()
    extensions = client.ApiextensionsV1Api()
    bare = tmp_path / "input.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(bare)], check=True)
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    api_spec = {
        "group": group,
        "scope": "Namespaced",
        "names": {"plural": plural, "singular": "widget", "kind": "Widget"},
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": schema}],
    }
    promise = {
        "apiVersion": "platform.kratix.io/v1alpha1",
        "kind": "Promise",
        "metadata": {"name": ident},
        "spec": {
            "api": {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.{group}"},
                "spec": api_spec,
            }
        },
    }
    options = ControllerOptions(
        repo=str(bare),
        kubeconfig=os.environ["KUBECONFIG"],
        debounce=0.5,
        workdir=str(tmp_path / "work"),
        watch_timeout=30,
    )
    try:
        with controller(options):
            eventually(lambda: _served(extensions, "promises.platform.kratix.io"), "the Promise CRD")
            api.create_cluster_custom_object("platform.kratix.io", "v1alpha1", "promises", promise)
            eventually(lambda: _served(extensions, f"{plural}.{group}"), "the request CRD")
            request = {
                "apiVersion": f"{group}/v1",
                "kind": "Widget",
                "metadata": {"name": "w1", "namespace": "default"},
                "spec": {"size": 1},
            }
            eventually(lambda: _create(api, group, plural, request), "the request API to be served")
            wanted = {f"promises/{ident}/promise.yaml", "requests/default/widget/w1.yaml"}
            eventually(lambda: wanted <= files(bare), "both files mirrored")
            api.delete_namespaced_custom_object(group, "v1", "default", plural, "w1")
            eventually(lambda: "requests/default/widget/w1.yaml" not in files(bare), "the deletion mirrored")
    finally:
        with contextlib.suppress(client.ApiException):
            api.delete_cluster_custom_object("platform.kratix.io", "v1alpha1", "promises", ident)
        with contextlib.suppress(client.ApiException):
            extensions.delete_custom_resource_definition(f"{plural}.{group}")


def _served(extensions: Any, name: str) -> bool:
    from kubernetes import client

    try:
        crd = extensions.read_custom_resource_definition(name)
    except client.ApiException:
        return False
    return any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or []))


def _create(api: Any, group: str, plural: str, body: dict[str, Any]) -> bool:
    from kubernetes import client

    try:
        api.create_namespaced_custom_object(group, "v1", "default", plural, body)
    except client.ApiException as exc:
        if exc.status == 404:  # not served yet
            return False
        raise
    return True
