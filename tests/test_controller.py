"""The controller end to end: the official Kubernetes client against kmock's API emulator over real HTTP, and
real Git repos (a bare "input" remote, a bare "output" remote) in temporary directories (the harness is
tests/controller_harness.py): mirroring, bursts, watch expiry, restarts, push races, an unreachable remote,
statuses coming back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml
from kubernetes import client

from kratix.controller import repo as controller_repo
from kratix.controller.policy import Timeouts
from tests.controller_harness import (
    GROUP,
    PROMISE_API,
    ApiServer,
    Remote,
    apply_promise,
    crd_installed,
    create_request,
    eventually,
    git,
    kubectl_for,
    promise,
    promise_status_with_condition,
    request,
    running,
    write_kubeconfig,
)
from tests.controller_harness import options_for as harness_options


def options_for(kubeconfig: Path, repo: Remote, tmp_path: Path, **overrides: Any) -> Any:
    return harness_options(kubeconfig, repo, tmp_path / "controller", **overrides)


@pytest.fixture
def api_server() -> Iterator[ApiServer]:
    with ApiServer() as server:
        yield server


@pytest.fixture
def kubeconfig(tmp_path: Path, api_server: ApiServer) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", api_server.url)


@pytest.fixture
def kubectl(api_server: ApiServer) -> client.CustomObjectsApi:
    return kubectl_for(api_server)


@pytest.fixture
def input_repo(tmp_path: Path) -> Remote:
    remote = Remote(tmp_path, "input")
    remote.commit_files({"README.md": "platform\n"}, "Start the platform repo")
    return remote


# --- scenarios --------------------------------------------------------------------------------------------


def test_a_promise_installs_its_api_and_is_mirrored_with_a_destination(
    api_server: ApiServer, kubeconfig: Path, kubectl: client.CustomObjectsApi, input_repo: Remote, tmp_path: Path
) -> None:
    with running(options_for(kubeconfig, input_repo, tmp_path)):
        body = promise()
        body["metadata"].update(
            uid="1234",
            resourceVersion="42",
            annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "dbs"},
        )
        apply_promise(kubectl, body)
        kubectl.create_cluster_custom_object(
            *PROMISE_API,
            "destinations",
            {
                "apiVersion": "platform.kratix.io/v1alpha1",
                "kind": "Destination",
                "metadata": {"name": "worker-1", "labels": {"env": "dev"}},
                "spec": {"path": "worker-1"},
            },
        )

        files = eventually(
            lambda: (
                {
                    p: t
                    for p, t in input_repo.files().items()
                    if p in ("promises/postgresql/promise.yaml", "clusters/worker-1.yaml")
                }
                if len(input_repo.files()) == 3
                else None
            ),
            what="both files mirrored",
        )
        crd = eventually(lambda: crd_installed(api_server, f"postgreses.{GROUP}"), what="the request CRD")

    mirrored = yaml.safe_load(files["promises/postgresql/promise.yaml"])
    assert mirrored["metadata"] == {
        "name": "postgresql",
        "labels": {"kratix.io/promise-version": "v1.0.0"},
        "annotations": {"team": "dbs", "kratix.io/mirrored-from": "platform-cluster"},
    }
    assert mirrored["spec"] == promise()["spec"]
    assert yaml.safe_load(files["clusters/worker-1.yaml"])["spec"] == {"path": "worker-1"}
    assert input_repo.files()["README.md"] == "platform\n"  # the Git-authored content is untouched
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert {"name": "Message", "type": "string", "jsonPath": ".status.message"} in version["additionalPrinterColumns"]
    assert crd_installed(api_server, "promises.platform.kratix.io") is not None
    assert crd_installed(api_server, "destinations.platform.kratix.io") is not None


def test_requests_are_mirrored_updated_and_deleted_one_commit_each(
    kubeconfig: Path, kubectl: client.CustomObjectsApi, input_repo: Remote, tmp_path: Path
) -> None:
    path = "requests/team-a/postgres/db.yaml"
    with running(options_for(kubeconfig, input_repo, tmp_path)):
        apply_promise(kubectl, promise())
        eventually(lambda: "promises/postgresql/promise.yaml" in input_repo.files(), what="the Promise")
        create_request(kubectl, request("db"))
        eventually(lambda: path in input_repo.files(), what="the request")
        assert yaml.safe_load(input_repo.files()[path])["spec"] == {"size": "small"}

        kubectl.patch_namespaced_custom_object(
            GROUP, "v1alpha1", "team-a", "postgreses", "db", {"spec": {"size": "large"}}
        )
        eventually(lambda: "large" in input_repo.files().get(path, ""), what="the update")

        kubectl.delete_namespaced_custom_object(GROUP, "v1alpha1", "team-a", "postgreses", "db")
        eventually(lambda: path not in input_repo.files(), what="the deletion")

    assert input_repo.log()[:3] == [
        f"Mirror from platform cluster: delete {path}",
        f"Mirror from platform cluster: update {path}",
        f"Mirror from platform cluster: add {path}",
    ]


def test_a_burst_of_requests_becomes_far_fewer_commits_and_none_is_lost(
    kubeconfig: Path, kubectl: client.CustomObjectsApi, input_repo: Remote, tmp_path: Path
) -> None:
    """The remote holds the controller's first push of the burst (a pre-receive hook waits for the test) until
    every object is created: how many commits a burst becomes then depends on batching, not on how fast this
    machine creates objects, so the bound cannot be crossed by a slow run."""
    burst = 200
    gate = tmp_path / "gate"
    hook = Path(input_repo.url) / "hooks" / "pre-receive"
    with running(options_for(kubeconfig, input_repo, tmp_path)):
        apply_promise(kubectl, promise())
        eventually(lambda: "promises/postgresql/promise.yaml" in input_repo.files(), what="the Promise")
        commits_before = len(input_repo.log())
        gate.touch()
        hook.write_text(f"#!/bin/sh\nwhile [ -e '{gate}' ]; do sleep 0.05; done\n")
        hook.chmod(0o755)
        for index in range(burst):
            create_request(kubectl, request(f"db-{index:03}", namespace=f"team-{index % 4}"))
        gate.unlink()
        eventually(lambda: len(input_repo.files("requests/")) == burst, what=f"all {burst} requests")

    files = input_repo.files("requests/")
    assert {Path(path).stem for path in files} == {f"db-{index:03}" for index in range(burst)}
    assert all(f"name: {Path(path).stem}" in text for path, text in files.items())
    assert 1 <= len(input_repo.log()) - commits_before <= burst // 4


def test_an_expired_watch_lists_again_and_keeps_mirroring(
    api_server: ApiServer, kubeconfig: Path, kubectl: client.CustomObjectsApi, input_repo: Remote, tmp_path: Path
) -> None:
    promises = "platform.kratix.io/v1alpha1/promises"
    gone = {
        "type": "ERROR",
        "object": {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "code": 410,
            "reason": "Expired",
            "message": "too old resource version: 1 (5)",
        },
    }
    served: list[int] = []

    def expire_first_watch() -> Any:
        served.append(1)
        return (gone,) if len(served) == 1 else NotImplemented  # NotImplemented: kmock serves it as usual

    assert api_server.kmock is not None
    api_server.in_loop(
        lambda: (
            api_server.kmock[kmock.action.WATCH, kmock.resource(promises)]  # type: ignore
            << expire_first_watch
        )
    )
    with running(options_for(kubeconfig, input_repo, tmp_path)):
        eventually(lambda: served, what="the expiring watch")
        eventually(lambda: api_server.requests_to(kmock.action.LIST, promises) >= 2, what="a second list")
        apply_promise(kubectl, promise())
        eventually(lambda: "promises/postgresql/promise.yaml" in input_repo.files(), what="the Promise")


def test_a_restart_converges_deletions_missed_while_down_and_leaves_git_authored_files(
    kubeconfig: Path, kubectl: client.CustomObjectsApi, input_repo: Remote, tmp_path: Path
) -> None:
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
        eventually(lambda: "requests/team-a/postgres/drop.yaml" not in input_repo.files(), what="the deletion")

    assert set(input_repo.files("requests/")) == {"requests/team-a/postgres/keep.yaml", git_authored}


def test_a_push_that_loses_a_race_is_replanned_on_the_new_head_never_forced(input_repo: Remote, tmp_path: Path) -> None:
    """The race is made certain: another clone pushes between the controller's fetch and its push."""
    from kratix.controller import mirror

    clone = controller_repo.BareClone(
        controller_repo.Remote(input_repo.url, "main"), tmp_path / "mine.git", timeouts=Timeouts()
    )
    desired = {"requests/team-a/postgres/db.yaml": mirror.render_object(request("db"))}
    plans: list[str] = []

    def plan(current: dict[str, bytes]) -> mirror.Changes:
        plans.append(git("--git-dir", input_repo.url, "rev-parse", "main").strip())
        if len(plans) == 1:
            input_repo.commit_files({"clusters/by-hand.yaml": "kind: Destination\n"}, "Concurrent writer")
        return mirror.plan_changes(desired, current, authoritative=frozenset()).changes

    result = clone_publish(clone, plan)
    landed = result.changes
    concurrent = git("--git-dir", input_repo.url, "log", "--format=%H", "--grep=Concurrent writer", "main").strip()

    assert landed.added == ("requests/team-a/postgres/db.yaml",)
    assert len(plans) == 2 and result.lost_races == 1
    assert set(input_repo.files()) >= {"clusters/by-hand.yaml", "requests/team-a/postgres/db.yaml", "README.md"}
    git("--git-dir", input_repo.url, "merge-base", "--is-ancestor", concurrent, "main")  # not overwritten


def clone_publish(clone: controller_repo.BareClone, plan: Callable[[Any], Any]) -> Any:
    from kratix.controller import mirror

    return controller_repo.publish(clone, plan, folders=mirror.MIRRORED_FOLDERS, message=mirror.commit_message)


def test_changes_made_while_the_repo_is_unreachable_land_once_it_is_back(
    kubeconfig: Path, kubectl: client.CustomObjectsApi, input_repo: Remote, tmp_path: Path
) -> None:
    hidden = Path(input_repo.url + ".away")
    with running(options_for(kubeconfig, input_repo, tmp_path)):
        apply_promise(kubectl, promise())
        eventually(lambda: "promises/postgresql/promise.yaml" in input_repo.files(), what="the Promise")
        os.rename(input_repo.url, hidden)
        create_request(kubectl, request("while-away"))
        time.sleep(1.5)  # several failed attempts (the debounce is 0.3 s, the backoff at most 0.5 s)
        os.rename(hidden, input_repo.url)
        eventually(lambda: "requests/team-a/postgres/while-away.yaml" in input_repo.files(), what="the request")


def test_statuses_published_in_the_output_repo_appear_on_the_objects(
    kubeconfig: Path, kubectl: client.CustomObjectsApi, input_repo: Remote, tmp_path: Path
) -> None:
    output = Remote(tmp_path, "output")
    request_status = {
        "message": "Resource requested",
        "conditions": [
            {"type": "Reconciled", "status": "True", "reason": "Published", "message": "placed on worker-1"}
        ],
        "placement": {"destination": "worker-1"},
    }
    with running(options_for(kubeconfig, input_repo, tmp_path, output_repo=output.url)):
        apply_promise(kubectl, promise())
        create_request(kubectl, request("db"))
        output.commit_files(
            {
                ".kratix/status/team-a/postgresql/db.yaml": yaml.safe_dump(
                    {
                        "apiVersion": f"{GROUP}/v1alpha1",
                        "kind": "Postgres",
                        "metadata": {"name": "db", "namespace": "team-a"},
                        "status": request_status,
                    }
                ),
                ".kratix/promises/postgresql.yaml": yaml.safe_dump(
                    {
                        "apiVersion": "platform.kratix.io/v1alpha1",
                        "kind": "Promise",
                        "metadata": {"name": "postgresql"},
                        "status": {"message": "Available"},
                    }
                ),
            },
            "Compile",
        )

        def object_status() -> Any:
            return kubectl.get_namespaced_custom_object(GROUP, "v1alpha1", "team-a", "postgreses", "db").get("status")

        eventually(lambda: object_status() == request_status, what="the request's status")
        promise_status = eventually(
            lambda: promise_status_with_condition(kubectl, "postgresql"),
            what="the Promise's status with the controller's condition",
        )
        assert promise_status["message"] == "Available"  # the compiler's, with the controller's merged in
        assert promise_status["conditions"][0]["status"] == "True"

        request_status["message"] = "Deleting"
        del request_status["placement"]
        output.commit_files(
            {
                ".kratix/status/team-a/postgresql/db.yaml": yaml.safe_dump(
                    {
                        "apiVersion": f"{GROUP}/v1alpha1",
                        "kind": "Postgres",
                        "metadata": {"name": "db", "namespace": "team-a"},
                        "status": request_status,
                    }
                )
            },
            "Compile again",
        )
        eventually(lambda: object_status() == request_status, what="the replaced status (placement removed)")

    mirrored = yaml.safe_load(input_repo.files()["requests/team-a/postgres/db.yaml"])
    assert "status" not in mirrored  # the status never travels back into the input repo
