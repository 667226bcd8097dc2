"""Running the controller as a Kubernetes controller, end to end against the API emulator and real Git remotes
(tests/controller_harness.py): two replicas and a Lease, the probes and metrics over real HTTP, SIGTERM and
JSON logs through the CLI, and timeouts that turn a stalled Git remote into an error instead of a hang.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kmock
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kratix import gitio
from kratix.controller import logs
from kratix.controller import repo as controller_repo
from kratix.controller.policy import Timeouts
from tests.controller_harness import (
    Platform,
    apply_promise,
    create_request,
    eventually,
    free_port,
    http_get,
    objects_of,
    promise,
    request,
    running,
)

LEASE_NAMESPACE = "kratix-platform"


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    with Platform(tmp_path) as emulated:
        yield emulated


def replica(platform: Platform, name: str, port: int, **overrides: Any) -> Any:
    settings: dict[str, Any] = {
        "leader_election": True,
        "lease_namespace": LEASE_NAMESPACE,
        "identity": name,
        "lease_duration": 2.0,
        "renew_deadline": 1.5,
        "retry_period": 0.2,
        "http_address": f"127.0.0.1:{port}",
    }
    settings.update(overrides)
    return platform.options(name, **settings)


def lease(platform: Platform) -> dict[str, Any] | None:
    leases = [
        body for body in objects_of(platform.api_server, "leases") if body["metadata"]["name"] == "kratix-controller"
    ]
    return leases[0] if leases else None


def holder(platform: Platform) -> str:
    found = lease(platform)
    return str(((found or {}).get("spec") or {}).get("holderIdentity") or "")


def metrics(port: int) -> dict[str, float]:
    """Every sample on /metrics by name and labels, e.g. {'kratix_controller_commits_total': 2.0}."""
    status, text = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return samples


def test_of_two_replicas_one_leads_and_writes_and_the_other_takes_over_when_it_stops(platform: Platform) -> None:
    kubectl, repo = platform.kubectl, platform.input_repo
    ports = {"replica-a": free_port(), "replica-b": free_port()}
    stacks = {name: contextlib.ExitStack() for name in ports}
    try:
        for name, port in ports.items():
            stacks[name].enter_context(running(replica(platform, name, port)))
        leader = eventually(lambda: holder(platform), what="a leader")
        follower = next(name for name in ports if name != leader)
        apply_promise(kubectl, promise())
        create_request(kubectl, request("db"))
        eventually(lambda: "requests/team-a/postgres/db.yaml" in repo.files(), what="the leader's mirror")
        before = {name: metrics(port) for name, port in ports.items()}
        follower_cloned = (platform.tmp_path / follower / "input.git").exists()
        ready = {name: http_get(f"http://127.0.0.1:{port}/readyz") for name, port in ports.items()}

        stacks[leader].close()  # a rolling update stops the old pod: it releases the Lease
        eventually(lambda: holder(platform) == follower, what="the follower to take over")
        create_request(kubectl, request("after-takeover"))
        eventually(
            lambda: "requests/team-a/postgres/after-takeover.yaml" in repo.files(), what="the new leader's mirror"
        )
        after = metrics(ports[follower])
    finally:
        for stack in stacks.values():
            stack.close()

    commits = len([line for line in repo.log() if line.startswith("Mirror from platform cluster")])
    assert before[leader]["kratix_controller_leader"] == 1 and before[follower]["kratix_controller_leader"] == 0
    assert before[follower]["kratix_controller_commits_total"] == 0
    assert before[follower]["kratix_controller_status_writes_total"] == 0
    assert before[leader]["kratix_controller_commits_total"] >= 1
    assert not follower_cloned  # a follower does not even fetch
    assert after["kratix_controller_leader"] == 1
    assert before[leader]["kratix_controller_commits_total"] + after["kratix_controller_commits_total"] == commits
    assert ready[leader][0] == 200 and "leading" in ready[leader][1]
    assert ready[follower][0] == 200 and "following" in ready[follower][1]
    final = lease(platform)
    assert final is not None and final["spec"]["leaseTransitions"] >= 1


def test_a_lease_held_by_a_silent_replica_is_taken_over_only_once_it_expires(platform: Platform) -> None:
    kubectl, repo = platform.kubectl, platform.input_repo
    now = datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    kubectl.create_namespaced_custom_object(
        "coordination.k8s.io",
        "v1",
        LEASE_NAMESPACE,
        "leases",
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "kratix-controller", "namespace": LEASE_NAMESPACE},
            "spec": {
                "holderIdentity": "crashed-replica",
                "leaseDurationSeconds": 4,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 3,
            },
        },
    )
    apply_promise(kubectl, promise())
    port = free_port()
    renewing = threading.Event()
    renewing.set()

    def renew_as_the_other_replica() -> None:
        while renewing.is_set():
            stamp = datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            kubectl.patch_namespaced_custom_object(
                "coordination.k8s.io",
                "v1",
                LEASE_NAMESPACE,
                "leases",
                "kratix-controller",
                {"spec": {"renewTime": stamp}},
            )
            time.sleep(0.2)

    other = threading.Thread(target=renew_as_the_other_replica, daemon=True)
    other.start()
    with running(replica(platform, "replica-a", port)):
        time.sleep(6)  # longer than the Lease lasts: only the other replica's renewals keep it
        mirrored_while_held = "promises/postgresql/promise.yaml" in repo.files()
        leader_while_held = metrics(port)["kratix_controller_leader"]
        renewing.clear()
        other.join()
        eventually(lambda: holder(platform) == "replica-a", what="the takeover after expiry")
        eventually(lambda: "promises/postgresql/promise.yaml" in repo.files(), what="the new leader's mirror")

    assert not mirrored_while_held and leader_while_held == 0
    final = lease(platform)
    assert final is not None and final["spec"]["leaseTransitions"] == 4


def test_probes_and_metrics_over_http(platform: Platform) -> None:
    kubectl, repo = platform.kubectl, platform.input_repo
    port = free_port()
    listing = [True]

    def promises_list_fails() -> Any:
        return kmock.Response(status=503, payload={"kind": "Status", "code": 503}) if listing else NotImplemented

    assert platform.api_server.kmock is not None
    platform.api_server.in_loop(
        lambda: (
            platform.api_server.kmock[  # type: ignore[index]
                kmock.action.LIST, kmock.resource("platform.kratix.io/v1alpha1/promises")
            ]
            << promises_list_fails
        )
    )
    with running(platform.options(http_address=f"127.0.0.1:{port}")):
        eventually(lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200, what="the server")
        not_ready = eventually(
            lambda: (r := http_get(f"http://127.0.0.1:{port}/readyz"))[0] == 503 and "not listed" in r[1] and r,
            what="not ready while Promises cannot be listed",
        )
        # "not listed" holds from the start, before the first list fails: wait for the failure to be counted.
        eventually(
            lambda: metrics(port).get("kratix_controller_errors_total{operation=watch}", 0) >= 1,
            what="a failed Promise list counted",
        )
        listing.clear()
        eventually(lambda: http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200, what="ready once listed")
        apply_promise(kubectl, promise())
        create_request(kubectl, request("db"))
        eventually(lambda: "requests/team-a/postgres/db.yaml" in repo.files(), what="the request")
        eventually(lambda: metrics(port)["kratix_controller_status_writes_total"] >= 1, what="a status write")
        samples = metrics(port)
        missing = http_get(f"http://127.0.0.1:{port}/nothing-here")

    commits = len([line for line in repo.log() if line.startswith("Mirror from platform cluster")])
    assert "promises" in not_ready[1] and "not listed yet" in not_ready[1]
    assert samples["kratix_controller_commits_total"] == commits
    assert samples["kratix_controller_mirror_passes_total"] >= commits
    assert samples["kratix_controller_mirror_lag_seconds_count"] == commits
    assert 0 < samples["kratix_controller_mirror_lag_seconds_sum"] < 60
    assert samples["kratix_controller_push_retries_total"] == 0
    assert samples["kratix_controller_errors_total{operation=watch}"] >= 1  # the failed Promise lists
    assert samples["kratix_controller_errors_total{operation=git}"] == 0
    assert samples["kratix_controller_leader"] == 1  # without leader election, the only replica leads
    assert missing[0] == 404


def test_the_cli_stops_on_sigterm_releases_the_lease_and_logs_json_lines(platform: Platform) -> None:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "kratix.cli",
        "controller",
        "--repo",
        platform.input_repo.url,
        "--kubeconfig",
        str(platform.kubeconfig),
        "--leader-elect",
        "--lease-namespace",
        LEASE_NAMESPACE,
        "--http-address",
        f"127.0.0.1:{port}",
        "--log-format",
        "json",
        "--debounce",
        "0.2",
        "--workdir",
        str(platform.tmp_path / "cli"),
    ]
    env = {**os.environ, "POD_NAME": "kratix-controller-7d9f-abcde"}
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            eventually(lambda: holder(platform) == "kratix-controller-7d9f-abcde", what="the CLI to lead")
            apply_promise(platform.kubectl, promise())
            eventually(lambda: "promises/postgresql/promise.yaml" in platform.input_repo.files(), what="a mirror")
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()

    assert process.returncode == 0, stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    assert any(line["message"].startswith("released Lease") for line in lines)
    released = lease(platform)
    assert released is not None and released["spec"]["holderIdentity"] == ""


def test_the_json_formatter_keeps_extra_fields_and_tracebacks() -> None:
    record = logging.makeLogRecord(
        {
            "name": "kratix.controller",
            "levelname": "WARNING",
            "levelno": 30,
            "msg": "Promise %s: %s",
            "args": ("pg", "CRDNotOwned"),
            "promise": "pg",
        }
    )
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()

    entry = json.loads(logs.JsonFormatter().format(record))

    assert entry["message"] == "Promise pg: CRDNotOwned" and entry["level"] == "warning"
    assert entry["promise"] == "pg" and "ValueError: boom" in entry["exception"]
    assert entry["time"].endswith("Z")


def test_a_git_command_that_outlives_its_timeout_is_killed_with_its_children() -> None:
    started = time.monotonic()
    with pytest.raises(gitio.GitCommandError, match="timed out after 1s"):
        gitio.run_git(None, "-c", "alias.stall=!sleep 30", "stall", timeout=1)
    assert time.monotonic() - started < 10  # not the 30 s of the shell git started


def test_a_stalled_remote_fails_the_push_with_a_timeout_instead_of_hanging(tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    gitio.run_git(None, "init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    (remote / "hooks" / "pre-receive").write_text("#!/bin/sh\nsleep 30\n")
    (remote / "hooks" / "pre-receive").chmod(0o755)
    clone = controller_repo.BareClone(
        controller_repo.Remote(str(remote), "main"),
        tmp_path / "mine.git",
        timeouts=Timeouts(git_network=1.0, git_local=10.0),
    )
    from kratix.controller import mirror

    commit = clone.commit(None, mirror.Changes(contents={"a.yaml": b"a: 1\n"}, added=("a.yaml",)), "A commit")
    started = time.monotonic()
    with pytest.raises(controller_repo.RepoError, match="timed out after 1s"):
        clone.push(commit)
    assert time.monotonic() - started < 10
