"""The whole pipeline contract, through the CLI on real Git repos: what a step sees (variables, the object with
its previous status, ConfigMaps and Secrets) and how what it writes to /kratix/metadata is honoured
(status.yaml, destination-selectors.yaml, workflow-control.yaml), as Kratix does it. Steps are shell scripts
run as command steps in the sandbox (skipped where this machine has none)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gitrepos import commit_files, git, init_repo, make_repo
from tests.platforms import crd, kratix
from tests.sandboxes import require_command_sandbox

CRD = crd("test.kratix.io", "App", "v1alpha1", {"size": {"type": "string", "default": "small"}})

# Every container writes what it saw of the contract: its KRATIX_* variables.
ENV_SCRIPT = (
    "env | grep '^KRATIX_' | grep -v '^KRATIX_\\(INPUT\\|OUTPUT\\|METADATA\\|PROMISE\\)=' | sort "
    "> /kratix/output/env.txt\n"
)


@pytest.fixture(autouse=True)
def _sandbox() -> None:
    require_command_sandbox()


def pipeline(name: str, *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "platform.kratix.io/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": name},
        "spec": {"containers": list(containers), **spec},
    }


def step(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "command": ["sh", f"scripts/{script}"], **extra}


def promise(
    resource: list[dict[str, Any]],
    promise_workflow: list[dict[str, Any]] | None = None,
    crd: dict[str, Any] | None = None,
) -> str:
    workflows: dict[str, Any] = {"resource": {"configure": resource}}
    if promise_workflow:
        workflows["promise"] = {"configure": promise_workflow}
    document = {
        "apiVersion": "platform.kratix.io/v1alpha1",
        "kind": "Promise",
        "metadata": {"name": "app", "labels": {"kratix.io/promise-version": "v1.0.0"}},
        "spec": {"api": crd or CRD, "workflows": workflows},
    }
    return yaml.safe_dump(document, sort_keys=False)


def app(name: str = "web", size: str = "small") -> str:
    return yaml.safe_dump(
        {"apiVersion": "test.kratix.io/v1alpha1", "kind": "App", "metadata": {"name": name}, "spec": {"size": size}},
        sort_keys=False,
    )


def platform(promise_text: str, scripts: dict[str, str], **extra: str) -> dict[str, str]:
    destination = {
        "apiVersion": "platform.kratix.io/v1alpha1",
        "kind": "Destination",
        "metadata": {"name": "worker-1", "labels": {"env": "dev"}},
    }
    return {
        "promises/app/promise.yaml": promise_text,
        **{f"promises/app/scripts/{name}": text for name, text in scripts.items()},
        "clusters/worker-1.yaml": yaml.safe_dump(destination),
        "requests/team-a/web.yaml": app(),
        **extra,
    }


class Platform:
    """An input repo and an output repo; `compile` publishes and returns the CLI's result."""

    def __init__(self, tmp_path: Path, files: dict[str, str]) -> None:
        self.repo, _ = make_repo(tmp_path / "platform", files)
        self.output = init_repo(tmp_path / "output.git", bare=True)

    def compile(self, *extra: str, env: dict[str, str] | None = None) -> Any:
        return kratix("compile", str(self.repo), "--ref", "HEAD", "--output-repo", str(self.output), *extra, env=env)

    def commit(self, files: dict[str, str], remove: list[str] | None = None) -> None:
        commit_files(self.repo, files, remove=remove or [])

    def files(self) -> dict[str, str]:
        names = git(self.output, "ls-tree", "-r", "--name-only", "main").split()
        return {name: git(self.output, "show", f"main:{name}") for name in names}

    def file(self, path: str) -> str:
        return git(self.output, "show", f"main:{path}")

    def status(self, name: str = "web") -> dict[str, Any]:
        return yaml.safe_load(self.file(f".kratix/status/team-a/app/{name}.yaml"))["status"]


def variables(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_every_kratix_variable_for_both_workflow_types(tmp_path: Path) -> None:
    files = platform(
        promise([pipeline("instance", step("env", "env.sh"))], [pipeline("setup", step("env", "env.sh"))]),
        {"env.sh": ENV_SCRIPT},
    )
    repo = Platform(tmp_path, files)
    result = repo.compile()
    assert result.returncode == 0, result.stderr
    resource = variables(repo.file("worker-1/resources/team-a/app/web/instance/env.txt"))
    assert resource == {
        "KRATIX_WORKFLOW_ACTION": "configure",
        "KRATIX_WORKFLOW_TYPE": "resource",
        "KRATIX_PROMISE_NAME": "app",
        "KRATIX_PIPELINE_NAME": "instance",
        "KRATIX_OBJECT_KIND": "App",
        "KRATIX_OBJECT_GROUP": "test.kratix.io",
        "KRATIX_OBJECT_VERSION": "v1alpha1",
        "KRATIX_OBJECT_NAME": "web",
        "KRATIX_OBJECT_NAMESPACE": "team-a",
        "KRATIX_CRD_PLURAL": "apps",
        "KRATIX_CLUSTER_SCOPED": "false",
    }
    promise_env = variables(repo.file("worker-1/dependencies/app/setup/env.txt"))
    assert promise_env == {
        "KRATIX_WORKFLOW_ACTION": "configure",
        "KRATIX_WORKFLOW_TYPE": "promise",
        "KRATIX_PROMISE_NAME": "app",
        "KRATIX_PIPELINE_NAME": "setup",
        "KRATIX_OBJECT_KIND": "Promise",
        "KRATIX_OBJECT_GROUP": "platform.kratix.io",
        "KRATIX_OBJECT_VERSION": "v1alpha1",
        "KRATIX_OBJECT_NAME": "app",
        "KRATIX_OBJECT_NAMESPACE": "",
        "KRATIX_CRD_PLURAL": "promises",
        "KRATIX_CLUSTER_SCOPED": "true",
    }


COUNT_SCRIPT = """\
set -eu
runs=$(sed -n 's/^  runs: *//p' /kratix/input/object.yaml)
printf 'runs: %s\\n' $(( ${runs:-0} + 1 )) > /kratix/metadata/status.yaml
cp /kratix/input/object.yaml /kratix/output/object.txt
"""


def test_a_step_sees_the_status_of_the_last_compile_in_object_yaml(tmp_path: Path) -> None:
    files = platform(
        promise([pipeline("instance", step("count", "count.sh"))], [pipeline("setup", step("count", "count.sh"))]),
        {"count.sh": COUNT_SCRIPT},
    )
    repo = Platform(tmp_path, files)
    assert repo.compile().returncode == 0
    first = yaml.safe_load(repo.file("worker-1/resources/team-a/app/web/instance/object.txt"))
    assert first["status"] == {"message": "Pending"} and repo.status()["runs"] == 1  # Kratix's, while it runs
    repo.commit({"requests/team-a/web.yaml": app(size="large")})
    result = repo.compile("--rebuild")
    assert result.returncode == 0, result.stderr
    seen = yaml.safe_load(repo.file("worker-1/resources/team-a/app/web/instance/object.txt"))
    assert seen["spec"] == {"size": "large"}
    assert seen["status"]["runs"] == 1 and seen["status"]["message"] == "Pending"
    assert {c["type"]: c["status"] for c in seen["status"]["conditions"]}["Reconciled"] == "True"
    assert repo.status()["runs"] == 2
    promise_seen = yaml.safe_load(repo.file("worker-1/dependencies/app/setup/object.txt"))
    assert promise_seen["kind"] == "Promise" and promise_seen["status"]["status"] == "Available"


FIRST_SCRIPT = """\
set -eu
size=$(sed -n 's/^  size: *//p' /kratix/input/object.yaml | head -n 1)
printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: first, namespace: default}\\ndata: {size: %s}\\n' \\
  "$size" > /kratix/output/first.yaml
"""

# Suspends when the request asks for a large app, unless the Promise's folder holds `approved`.
SECOND_SCRIPT = """\
set -eu
size=$(sed -n 's/^  size: *//p' /kratix/input/object.yaml | head -n 1)
printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: second, namespace: default}\\ndata: {size: %s}\\n' \\
  "$size" > /kratix/output/second.yaml
printf 'note: from second\\n' > /kratix/metadata/status.yaml
if [ "$size" = large ] && [ ! -e scripts/approved ]; then
  cat scripts/control.yaml > /kratix/metadata/workflow-control.yaml
fi
"""

FIRST = "worker-1/resources/team-a/app/web/first/first.yaml"
SECOND = "worker-1/resources/team-a/app/web/second/second.yaml"


def two_pipelines(control: str) -> dict[str, str]:
    return platform(
        promise([pipeline("first", step("first", "first.sh")), pipeline("second", step("second", "second.sh"))]),
        {"first.sh": FIRST_SCRIPT, "second.sh": SECOND_SCRIPT, "control.yaml": control},
    )


def size_in(text: str) -> str:
    return yaml.safe_load(text)["data"]["size"]


def test_a_suspended_workflow_keeps_its_last_output_until_its_request_changes(tmp_path: Path) -> None:
    repo = Platform(tmp_path, two_pipelines("suspend: true\nmessage: waiting for approval\n"))
    assert repo.compile().returncode == 0
    assert size_in(repo.file(SECOND)) == "small"

    repo.commit({"requests/team-a/web.yaml": app(size="large")})
    result = repo.compile()
    assert result.returncode == 0, result.stderr
    assert "1 suspended" in result.stderr
    assert size_in(repo.file(FIRST)) == "large"  # the pipeline before the suspended one is delivered
    assert size_in(repo.file(SECOND)) == "small"  # the suspended one's last output stays
    status = repo.status()
    assert status["message"] == "Suspended: waiting for approval"
    assert status["note"] == "from second"  # its status.yaml is merged all the same
    assert status["pipelines"] == [
        {"name": "first", "phase": "Succeeded"},
        {"name": "second", "phase": "Suspended", "message": "waiting for approval"},
    ]
    reconciled = {c["type"]: c for c in status["conditions"]}["Reconciled"]
    assert (reconciled["status"], reconciled["reason"], reconciled["message"]) == (
        "Unknown",
        "WorkflowSuspended",
        "Suspended",
    )

    repo.commit({"promises/app/scripts/approved": "yes\n"})  # the request is unchanged: it stays suspended
    assert repo.compile().returncode == 0
    assert size_in(repo.file(SECOND)) == "small" and repo.status()["pipelines"][1]["phase"] == "Suspended"

    repo.commit(
        {
            "requests/team-a/web.yaml": yaml.safe_dump(
                {**yaml.safe_load(app(size="large")), "metadata": {"name": "web", "labels": {"approved": "yes"}}}
            )
        }
    )
    result = repo.compile()
    assert result.returncode == 0, result.stderr
    status = repo.status()
    assert size_in(repo.file(SECOND)) == "large", (status, result.stderr)
    assert status["message"] == "Resource requested"
    assert [p["phase"] for p in status["pipelines"]] == ["Succeeded", "Succeeded"]


def test_retry_after_runs_the_workflow_again_on_the_first_compile_after_it_is_due(tmp_path: Path) -> None:
    repo = Platform(tmp_path, two_pipelines("retryAfter: 10m\nmessage: waiting for the database\n"))
    repo.commit({"requests/team-a/web.yaml": app(size="large")})
    result = repo.compile("--now", "2026-01-01T10:00:00Z")
    assert result.returncode == 0, result.stderr
    suspended = repo.status()["pipelines"][1]
    assert suspended == {
        "name": "second",
        "phase": "Suspended",
        "message": "waiting for the database",
        "nextRetryAt": "2026-01-01T10:10:00Z",
        "attempts": 1,
    }
    assert SECOND not in repo.files()

    repo.commit({"promises/app/scripts/approved": "yes\n"})  # would succeed now, but the retry is not due
    assert repo.compile("--now", "2026-01-01T10:09:59Z").returncode == 0
    assert SECOND not in repo.files() and repo.status()["pipelines"][1] == suspended

    repo.commit({}, remove=["promises/app/scripts/approved"])
    assert repo.compile("--now", "2026-01-01T10:10:00Z").returncode == 0  # due: it runs, and asks again
    assert repo.status()["pipelines"][1]["nextRetryAt"] == "2026-01-01T10:20:00Z"
    assert repo.status()["pipelines"][1]["attempts"] == 2

    repo.commit({"promises/app/scripts/approved": "yes\n"})
    assert repo.compile("--now", "2026-01-01T11:00:00+01:00").returncode == 0  # 10:00Z: not due
    assert SECOND not in repo.files()
    assert repo.compile("--now", "2026-01-01T10:30:00Z").returncode == 0
    assert size_in(repo.file(SECOND)) == "large"
    assert repo.status()["pipelines"][1] == {"name": "second", "phase": "Succeeded"}


def test_a_workflow_control_file_kratix_cannot_read_fails_its_request_alone(tmp_path: Path) -> None:
    files = two_pipelines("retryAfter: whale\n")
    files["requests/team-a/other.yaml"] = app(name="other")
    repo = Platform(tmp_path, files)
    repo.commit({"requests/team-a/web.yaml": app(size="large")})
    result = repo.compile()
    assert result.returncode == 1
    assert "workflow-control.yaml" in result.stderr and "'whale' is not a duration" in result.stderr
    assert "1 failed" in result.stderr
    assert size_in(repo.file("worker-1/resources/team-a/app/other/second/second.yaml")) == "small"


def test_now_must_be_an_rfc3339_time_with_a_zone(tmp_path: Path) -> None:
    repo = Platform(tmp_path, two_pipelines("suspend: true\n"))
    result = repo.compile("--now", "2026-01-01T10:00:00")
    assert result.returncode == 2 and "no time zone" in result.stderr


def test_durations_read_as_go_reads_them() -> None:
    from kratix.workflows import contract

    assert contract.parse_duration("10m").total_seconds() == 600
    assert contract.parse_duration("1h30m").total_seconds() == 5400
    assert contract.parse_duration("1.5h").total_seconds() == 5400
    assert contract.parse_duration("500ms").total_seconds() == 0.5
    for bad in ("whale", "10", "", "m", "10 m"):
        with pytest.raises(contract.ContractError):
            contract.parse_duration(bad)


def test_workflow_control_as_kratix_reads_it() -> None:
    from kratix.workflows import contract

    assert contract.read_workflow_control(None) is None
    assert contract.read_workflow_control(b"suspend: false\nmessage: nothing to do\n") is None
    suspended = contract.read_workflow_control(b"suspend: true\nmessage: wait\n")
    assert suspended is not None and (suspended.message, suspended.retry_after) == ("wait", None)
    retry = contract.read_workflow_control(b"retryAfter: 90s\n")
    assert retry is not None and retry.retry_after == 90
    for bad in (b"- suspend\n", b"suspend: 'yes'\n", b"message: [a]\n", b"retryAfter: whale\n"):
        with pytest.raises(contract.ContractError):
            contract.read_workflow_control(bad)


PROMISE_SCRIPT = """\
set -eu
printf 'apiVersion: v1\\nkind: Namespace\\nmetadata: {name: app-system}\\n' > /kratix/output/namespace.yaml
if [ -e scripts/hold ]; then
  printf 'retryAfter: 5m\\nmessage: operator not ready\\n' > /kratix/metadata/workflow-control.yaml
fi
"""


def test_a_suspended_promise_workflow_makes_the_promise_wait_and_keeps_its_output(tmp_path: Path) -> None:
    files = platform(
        promise([pipeline("instance", step("env", "env.sh"))], [pipeline("setup", step("setup", "setup.sh"))]),
        {"env.sh": ENV_SCRIPT, "setup.sh": PROMISE_SCRIPT},
    )
    repo = Platform(tmp_path, files)
    assert repo.compile().returncode == 0
    namespace = "worker-1/dependencies/app/setup/namespace.yaml"
    request_file = "worker-1/resources/team-a/app/web/instance/env.txt"
    assert namespace in repo.files() and request_file in repo.files()

    repo.commit({"promises/app/scripts/hold": "", "requests/team-a/web.yaml": app(size="large")})
    result = repo.compile("--now", "2026-03-01T08:00:00Z")
    assert result.returncode == 0, result.stderr
    promise_status = yaml.safe_load(repo.file(".kratix/promises/app.yaml"))["status"]
    assert promise_status["status"] == "Unavailable"
    assert promise_status["pipelines"] == [
        {
            "name": "setup",
            "phase": "Suspended",
            "message": "operator not ready",
            "nextRetryAt": "2026-03-01T08:05:00Z",
            "attempts": 1,
        }
    ]
    reconciled = {c["type"]: c for c in promise_status["conditions"]}["Reconciled"]
    assert (reconciled["status"], reconciled["reason"], reconciled["message"]) == (
        "Unknown",
        "WorkflowSuspended",
        "Suspended",
    )
    assert namespace in repo.files() and request_file in repo.files()  # what was published stays
    assert repo.status()["message"] == "Pending"

    repo.commit({}, remove=["promises/app/scripts/hold"])
    assert repo.compile("--now", "2026-03-01T08:04:00Z").returncode == 0  # not due: nothing runs
    assert yaml.safe_load(repo.file(".kratix/promises/app.yaml"))["status"]["status"] == "Unavailable"
    assert repo.compile("--now", "2026-03-01T08:05:00Z").returncode == 0
    assert yaml.safe_load(repo.file(".kratix/promises/app.yaml"))["status"]["status"] == "Available"
    assert repo.status()["message"] == "Resource requested"


STATUS_SCRIPT = """\
set -eu
size=$(sed -n 's/^  size: *//p' /kratix/input/object.yaml | head -n 1)
out=/kratix/metadata/status.yaml
case "$size" in
  list) printf -- '- not\\n- a mapping\\n' > $out ;;
  kratix) printf 'kratix: {workflows: {}}\\n' > $out ;;
  small) printf 'message: database is up\\nfirst: small\\nconditions:\\n- {type: DatabaseReady, status: "True"}\\n'\\
'- {status: "True"}\\n' > $out ;;
  *) printf 'message: database is up\\n' > $out ;;
esac
"""

SECOND_STATUS_SCRIPT = """\
printf 'second: done\\nconditions:\\n- {type: DatabaseReady, status: "False", reason: Degraded}\\n'\\
'- {type: BackupReady, status: "True", reason: Done}\\n' > /kratix/metadata/status.yaml
"""


def test_status_yaml_is_merged_as_kratix_merges_it(tmp_path: Path) -> None:
    files = platform(
        promise([pipeline("first", step("status", "status.sh")), pipeline("second", step("status", "second.sh"))]),
        {"status.sh": STATUS_SCRIPT, "second.sh": SECOND_STATUS_SCRIPT},
    )
    repo = Platform(tmp_path, files)
    result = repo.compile()
    assert result.returncode == 0, result.stderr
    status = repo.status()
    assert status["message"] == "database is up"  # a pipeline's message stands
    assert (status["first"], status["second"]) == ("small", "done")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["DatabaseReady"] == {"type": "DatabaseReady", "status": "False", "reason": "Degraded"}
    assert conditions["BackupReady"]["status"] == "True"
    assert conditions["Reconciled"]["status"] == "True"  # Kratix's own conditions stay the compiler's
    assert len(status["conditions"]) == 5  # the condition without a type is dropped

    repo.commit({"requests/team-a/web.yaml": app(size="medium")})
    assert repo.compile().returncode == 0
    status = repo.status()
    assert status["first"] == "small"  # written by an earlier run, and never removed: statuses accumulate
    assert {c["type"] for c in status["conditions"]} >= {"DatabaseReady", "BackupReady"}


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ("list", "status.yaml must be a mapping of status fields, not a list"),
        ("kratix", "'kratix' is a status field the compiler manages"),
    ],
)
def test_a_status_yaml_kratix_refuses_fails_its_request_alone(tmp_path: Path, size: str, message: str) -> None:
    files = platform(
        promise([pipeline("first", step("status", "status.sh"))]),
        {"status.sh": STATUS_SCRIPT},
        **{"requests/team-a/other.yaml": app(name="other", size="small")},
    )
    files["requests/team-a/web.yaml"] = app(size=size)
    repo = Platform(tmp_path, files)
    result = repo.compile()
    assert result.returncode == 1
    assert message in result.stderr and "App team-a/web" in result.stderr
    assert "1 failed" in result.stderr and repo.status("other")["message"] == "database is up"


def test_a_promise_workflow_may_set_only_the_message_of_its_promise(tmp_path: Path) -> None:
    script = "printf 'message: operator installed\\nversion: 2\\n' > /kratix/metadata/status.yaml\n"
    files = platform(
        promise([pipeline("instance", step("env", "env.sh"))], [pipeline("setup", step("setup", "setup.sh"))]),
        {"env.sh": ENV_SCRIPT, "setup.sh": script},
    )
    repo = Platform(tmp_path, files)
    result = repo.compile()
    assert result.returncode == 0, result.stderr
    assert "wrote version to status.yaml; only 'message' can be set" in result.stdout + result.stderr
    promise_status = yaml.safe_load(repo.file(".kratix/promises/app.yaml"))["status"]
    assert promise_status["message"] == "operator installed" and promise_status["status"] == "Available"


SELECTORS_SCRIPT = """\
set -eu
mkdir -p /kratix/output/db
printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: db, namespace: default}\\n' > /kratix/output/db/db.yaml
printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: app, namespace: default}\\n' > /kratix/output/app.yaml
cp scripts/selectors.txt /kratix/metadata/destination-selectors.yaml
"""


def selectors_platform(selectors: str) -> dict[str, str]:
    prod = {
        "apiVersion": "platform.kratix.io/v1alpha1",
        "kind": "Destination",
        "metadata": {"name": "worker-2", "labels": {"env": "prod"}},
    }
    return platform(
        promise([pipeline("instance", step("selectors", "selectors.sh"))]),
        {"selectors.sh": SELECTORS_SCRIPT, "selectors.txt": selectors},
        **{"clusters/worker-2.yaml": yaml.safe_dump(prod)},
    )


def test_destination_selectors_directories_are_read_as_kratix_cleans_them(tmp_path: Path) -> None:
    repo = Platform(
        tmp_path,
        selectors_platform(
            "- directory: ./db/\n  matchLabels: {env: prod}\n- directory: .\n  matchLabels: {env: dev}\n"
        ),
    )
    result = repo.compile()
    assert result.returncode == 0, result.stderr
    files = repo.files()
    assert "worker-2/resources/team-a/app/web/instance/db/db.yaml" in files
    assert "worker-1/resources/team-a/app/web/instance/app.yaml" in files
    assert not [p for p in files if p.startswith("worker-1/") and "db.yaml" in p]


@pytest.mark.parametrize(
    ("selectors", "message"),
    [
        ("env: prod\n", "destination-selectors.yaml must be a list of {directory, matchLabels} entries, not a dict"),
        ("- matchLabels: {}\n", "entry 0 has no selectors"),
        ("- directory: db\n", "entry 0 has no selectors"),
        ("- matchLabels: {env: prod}\n- matchLabels: {env: dev}\n", "entry 1: directory '.' has an entry already"),
        ("- matchLabels: {replicas: 3}\n", "entry 0: matchLabels.replicas must be a string, not 3"),
        ("- matchLabels: [env]\n", "entry 0: matchLabels must be a map"),
        ("- directory: db/nested\n  matchLabels: {env: prod}\n", "sub-directories are not allowed"),
        ("- prod\n", "entry 0 must be a mapping with matchLabels, not a str"),
    ],
)
def test_a_destination_selectors_file_kratix_refuses_fails_its_request(
    tmp_path: Path, selectors: str, message: str
) -> None:
    repo = Platform(tmp_path, selectors_platform(selectors))
    result = repo.compile()
    assert result.returncode == 1
    assert message in result.stderr and "App team-a/web" in result.stderr
    assert repo.status()["message"].startswith("Failed")


INPUTS_SCRIPT = """\
set -eu
{
  echo "LOG_LEVEL=$LOG_LEVEL"
  echo "APP_mode=$APP_mode"
  echo "NAMESPACE=$POD_NAMESPACE"
  echo "ACCOUNT=$ACCOUNT"
  echo "PASSWORD=$(printf %s "$DB_PASSWORD" | sha256sum | cut -d' ' -f1)"
  echo "OPTIONAL=${MISSING_OPTIONAL-unset}"
  echo "SETTINGS=$(cat /config/settings.ini)"
  echo "CERT=$(sha256sum < /secrets/tls.crt | cut -d' ' -f1)"
} > /kratix/output/seen.txt
"""

INPUTS_CONTAINER = {
    "name": "inputs",
    "command": ["sh", "scripts/inputs.sh"],
    "env": [
        {"name": "LOG_LEVEL", "valueFrom": {"configMapKeyRef": {"name": "app-settings", "key": "level"}}},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "password"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "ACCOUNT", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        {
            "name": "MISSING_OPTIONAL",
            "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "x", "optional": True}},
        },
    ],
    "envFrom": [{"configMapRef": {"name": "app-settings"}, "prefix": "APP_"}],
    "volumeMounts": [{"name": "settings", "mountPath": "/config"}, {"name": "tls", "mountPath": "/secrets"}],
}
VOLUMES = [
    {
        "name": "settings",
        "configMap": {"name": "app-settings", "items": [{"key": "settings.ini", "path": "settings.ini"}]},
    },
    {"name": "tls", "secret": {"secretName": "db-creds"}},
]
SETTINGS = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "app-settings"},
    "data": {"level": "debug", "mode": "fast", "settings.ini": "threads=4"},
}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def age_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    if shutil.which("sops") is None or shutil.which("age-keygen") is None:
        pytest.skip("needs sops and age-keygen (.ci/run installs both)")
    key = tmp_path_factory.mktemp("age") / "key.txt"
    made = subprocess.run(["age-keygen", "-o", str(key)], capture_output=True, text=True, check=True)
    return made.stderr.split("Public key: ")[1].strip(), key


def encrypted_secret(recipient: str, **values: str) -> str:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-creds"}, "stringData": values}
    done = subprocess.run(
        [
            "sops",
            "--encrypt",
            "--age",
            recipient,
            "--encrypted-regex",
            "^(data|stringData)$",
            "--input-type",
            "yaml",
            "--output-type",
            "yaml",
            "/dev/stdin",
        ],
        input=yaml.safe_dump(secret),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "SOPS_AGE_KEY_FILE": "/dev/null"},
    )
    return done.stdout


def inputs_platform(secret: str, settings: dict[str, Any] | None = None) -> dict[str, str]:
    files = platform(promise([pipeline("instance", INPUTS_CONTAINER, volumes=VOLUMES)]), {"inputs.sh": INPUTS_SCRIPT})
    files["config/team-a/db-creds.yaml"] = secret
    files["config/team-a/app-settings.yaml"] = yaml.safe_dump(settings or SETTINGS)
    return files


def test_env_envfrom_and_volumes_read_configmaps_and_sops_secrets_of_the_repo(
    tmp_path: Path, age_key: tuple[str, Path]
) -> None:
    recipient, key = age_key
    repo = Platform(tmp_path, inputs_platform(encrypted_secret(recipient, password="hunter2", **{"tls.crt": "CERT"})))
    result = repo.compile(env={"SOPS_AGE_KEY_FILE": str(key)})
    assert result.returncode == 0, result.stderr
    seen = variables(repo.file("worker-1/resources/team-a/app/web/instance/seen.txt"))
    assert seen == {
        "LOG_LEVEL": "debug",
        "APP_mode": "fast",
        "NAMESPACE": "team-a",
        "ACCOUNT": "app-resource-configure-instance",
        "PASSWORD": sha("hunter2"),
        "OPTIONAL": "unset",
        "SETTINGS": "threads=4",
        "CERT": sha("CERT"),
    }
    assert not [path for path, text in repo.files().items() if "hunter2" in text]  # decrypted at use only

    no_key = repo.compile("--rebuild", env={"SOPS_AGE_KEY_FILE": str(tmp_path / "absent")})
    assert no_key.returncode == 1
    assert "Secret team-a/db-creds (config/team-a/db-creds.yaml): sops cannot decrypt it here" in no_key.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no-key", "env DB_PASSWORD: Secret team-a/db-creds has no key 'password'"),
        ("no-configmap", "envFrom[0]: ConfigMap team-a/app-settings does not exist: put it in config/team-a/"),
        ("plaintext", "Secret team-a/db-creds is in plaintext: Secrets in the repo must be SOPS-encrypted"),
        ("not-a-string", "config/team-a/app-settings.yaml:3:3: data.retries: data.retries must be a string, not list"),
    ],
)
def test_a_missing_configmap_secret_or_key_fails_the_request_naming_it(
    tmp_path: Path, age_key: tuple[str, Path], change: str, message: str
) -> None:
    recipient, key = age_key
    files = inputs_platform(
        encrypted_secret(
            recipient, **{"tls.crt": "CERT"} if change == "no-key" else {"password": "hunter2", "tls.crt": "CERT"}
        )
    )
    if change == "no-configmap":
        del files["config/team-a/app-settings.yaml"]
    if change == "plaintext":
        files["config/team-a/db-creds.yaml"] = yaml.safe_dump(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-creds"}, "stringData": {"password": "x"}}
        )
    if change == "not-a-string":  # the API server refuses it; so does the loader, naming the field
        files["config/team-a/app-settings.yaml"] = yaml.safe_dump(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-settings"}, "data": {"retries": [1]}}
        )
    repo = Platform(tmp_path, files)
    result = repo.compile(env={"SOPS_AGE_KEY_FILE": str(key)})
    assert result.returncode == 1
    assert message in result.stderr
    assert repo.status()["message"].startswith("Failed")
    assert "worker-1/resources/team-a/app/web/instance/seen.txt" not in repo.files()


def test_resolve_step_follows_the_kubelet() -> None:
    from kratix.workflows import contract

    data = {("ConfigMap", "a"): {"k": b"v", "x": b"y"}}

    def lookup(kind: str, name: str) -> dict[str, bytes] | None:
        return data.get((kind, name))

    pipeline_body = {
        "spec": {
            "volumes": [
                {"name": "a", "configMap": {"name": "a"}},
                {"name": "gone", "secret": {"secretName": "s", "optional": True}},
                {"name": "scratch", "emptyDir": {}},
                {"name": "pvc", "persistentVolumeClaim": {"claimName": "data"}},
            ]
        }
    }
    container = {
        "name": "c",
        "env": [{"name": "k", "value": "own"}],
        "envFrom": [{"configMapRef": {"name": "a"}}],
        "volumeMounts": [
            {"name": "a", "mountPath": "/one/k", "subPath": "k"},
            {"name": "gone", "mountPath": "/secret"},
            {"name": "scratch", "mountPath": "/work"},
        ],
    }
    inputs = contract.resolve_step(container, pipeline_body, namespace="ns", account="sa", lookup=lookup)
    assert dict(inputs.env) == {"k": "own", "x": "y"}  # env after envFrom: the container's own value wins
    assert inputs.mounts == (
        contract.Mount("/one/k", {"": b"v"}, single=True),
        contract.Mount("/secret", {}),
        contract.Mount("/work", None),
    )
    claim = {"name": "c", "volumeMounts": [{"name": "pvc", "mountPath": "/data"}]}
    with pytest.raises(contract.ContractError, match="persistentVolumeClaim, which a compiler cannot provide"):
        contract.resolve_step(claim, pipeline_body, namespace="ns", account="sa", lookup=lookup)
    node = {"name": "c", "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}
    with pytest.raises(contract.ContractError, match="fieldRef 'spec.nodeName' has no value in a compiler"):
        contract.resolve_step(node, pipeline_body, namespace="ns", account="sa", lookup=lookup)


def test_a_command_step_cannot_mount_over_the_hosts_programs(tmp_path: Path, age_key: tuple[str, Path]) -> None:
    recipient, key = age_key
    files = inputs_platform(encrypted_secret(recipient, password="x", **{"tls.crt": "CERT"}))
    files["promises/app/promise.yaml"] = files["promises/app/promise.yaml"].replace(
        "mountPath: /config", "mountPath: /etc/app"
    )
    repo = Platform(tmp_path, files)
    result = repo.compile(env={"SOPS_AGE_KEY_FILE": str(key)})
    assert result.returncode == 1
    assert "mounts a volume at /etc/app, inside /etc, where a command step cannot take one" in result.stderr


def test_cluster_access_a_pipeline_asks_for_is_reported_once_per_promise(tmp_path: Path) -> None:
    asking = pipeline(
        "instance",
        step("env", "env.sh", resources={"limits": {"cpu": "1"}}),
        rbac={
            "serviceAccount": "deployer",
            "permissions": [{"apiGroups": [""], "verbs": ["get"], "resources": ["secrets"]}],
        },
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "cache"}}],
        nodeSelector={"disk": "ssd"},
    )
    files = platform(
        promise([asking], [pipeline("setup", step("env", "env.sh"), imagePullSecrets=[{"name": "r"}])]),
        {"env.sh": ENV_SCRIPT},
        **{"requests/team-a/other.yaml": app(name="other")},
    )
    result = Platform(tmp_path, files).compile()
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    warnings = [line for line in output.splitlines() if "cluster access a compiler cannot give" in line]
    assert len(warnings) == 1, output  # once for the Promise, not per request or pipeline
    for asked in (
        "resource/instance: RBAC permissions",
        "resource/instance: an existing ServiceAccount",
        "promise/setup: image pull Secrets",
        "resource/instance: volume 'data' (persistentVolumeClaim)",
    ):
        assert asked in warnings[0]
    assert "warning" in warnings[0]
    notes = [line for line in output.splitlines() if "pod settings have no effect here" in line]
    assert len(notes) == 1 and "resource/instance: nodeSelector" in notes[0] and "instance/env: resources" in notes[0]


def test_a_suspended_result_replayed_from_a_shard_keeps_the_suspension() -> None:
    from kratix.compile import shards
    from kratix.model.manifests import Suspension, WorkflowResult

    result = WorkflowResult((), {"note": "x"}, None, Suspension("second", "wait", 600.0), ("note",))
    assert shards.decode_result(shards.encode_result(result)) == result


def test_a_workflow_suspended_in_a_shard_keeps_its_output_when_published(tmp_path: Path) -> None:
    repo = Platform(tmp_path, two_pipelines("suspend: true\nmessage: waiting for approval\n"))
    assert repo.compile().returncode == 0
    repo.commit({"requests/team-a/web.yaml": app(size="large")})
    assert repo.compile("--shard", "0/1").returncode == 0
    result = repo.compile()
    assert result.returncode == 0, result.stderr
    assert "shards: 1 workflow result(s) reused" in result.stderr  # replayed, not run again
    assert size_in(repo.file(FIRST)) == "large" and size_in(repo.file(SECOND)) == "small"
    assert repo.status()["pipelines"][1] == {"name": "second", "phase": "Suspended", "message": "waiting for approval"}


@pytest.mark.parametrize(
    "command", [["compile", "--out", "{out}"], ["validate"], ["graph"], ["plan", "--output-repo", "{repo}"]]
)
def test_every_command_that_runs_workflows_takes_now(tmp_path: Path, command: list[str]) -> None:
    repo, _ = make_repo(tmp_path / "platform", platform(promise([pipeline("build", step("s", "true"))]), {}))
    output = init_repo(tmp_path / "output.git", bare=True)
    args = [a.format(out=tmp_path / "out", repo=output) for a in command]
    result = kratix(*args, "--now", "2026-01-01T10:00:00Z", "--unsandboxed", cwd=repo)
    assert result.returncode in (0, 1), result.stdout + result.stderr  # never 3: the option reaches the command


def test_what_kratix_reads_from_a_cluster_object_and_kratix_here_does_not_is_said(tmp_path: Path) -> None:
    # Never ignored silently: a Destination's cleanup, a state store's authMethod, a reconciliation timer.
    document = yaml.safe_load(promise([pipeline("instance", step("env", "env.sh"))]))
    document["spec"]["workflows"]["config"] = {"reconciliationInterval": "10m"}
    destination = {
        "apiVersion": "platform.kratix.io/v1alpha1",
        "kind": "Destination",
        "metadata": {"name": "worker-1", "labels": {"env": "dev"}},
        "spec": {"cleanup": "none", "stateStoreRef": {"kind": "GitStateStore", "name": "store"}},
    }
    store = {
        "apiVersion": "platform.kratix.io/v1alpha1",
        "kind": "GitStateStore",
        "metadata": {"name": "store"},
        "spec": {"url": str(tmp_path / "store.git"), "authMethod": "basicAuth"},
    }
    files = platform(yaml.safe_dump(document), {"env.sh": ENV_SCRIPT})
    files["clusters/worker-1.yaml"] = yaml.safe_dump(destination)
    files["clusters/store.yaml"] = yaml.safe_dump(store)
    repo, _ = make_repo(tmp_path / "platform", files)
    result = kratix("validate", str(repo))
    assert result.returncode == 0, result.stderr
    said = result.stdout + result.stderr
    assert "clusters/worker-1.yaml" in said and "cleanup: none is not kept here" in said
    assert "clusters/store.yaml" in said and "authMethod is not read" in said
    assert "config.reconciliationInterval (workflows run again when their inputs change" in said
