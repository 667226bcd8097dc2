"""The whole pipeline contract, through the CLI on real Git repos: what a step sees (variables, the object with
its previous status, ConfigMaps and Secrets) and how what it writes to /kratix/metadata is honoured
(status.yaml, destination-selectors.yaml, workflow-control.yaml), as Kratix does it. Steps are shell scripts
run as command steps in the sandbox (skipped where this machine has none)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gitrepos import commit_files, git, init_repo, make_repo
from tests.platforms import kratix
from tests.sandboxes import require_command_sandbox

CRD = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
       "metadata": {"name": "apps.test.kratix.io"},
       "spec": {"group": "test.kratix.io", "scope": "Namespaced",
                "names": {"kind": "App", "plural": "apps", "singular": "app"},
                "versions": [{"name": "v1alpha1", "served": True, "storage": True, "schema": {
                    "openAPIV3Schema": {"type": "object", "properties": {"spec": {
                        "type": "object", "properties": {"size": {"type": "string", "default": "small"}}}}}}}]}}

# Every container writes what it saw of the contract: its KRATIX_* variables.
ENV_SCRIPT = "env | grep '^KRATIX_' | grep -v '^KRATIX_\\(INPUT\\|OUTPUT\\|METADATA\\|PROMISE\\)=' | sort " \
             "> /kratix/output/env.txt\n"


@pytest.fixture(autouse=True)
def _sandbox() -> None:
    require_command_sandbox()


def pipeline(name: str, *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "platform.kratix.io/v1alpha1", "kind": "Pipeline", "metadata": {"name": name},
            "spec": {"containers": list(containers), **spec}}


def step(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "command": ["sh", f"scripts/{script}"], **extra}


def promise(resource: list[dict[str, Any]], promise_workflow: list[dict[str, Any]] | None = None,
            crd: dict[str, Any] | None = None) -> str:
    workflows: dict[str, Any] = {"resource": {"configure": resource}}
    if promise_workflow:
        workflows["promise"] = {"configure": promise_workflow}
    document = {"apiVersion": "platform.kratix.io/v1alpha1", "kind": "Promise",
                "metadata": {"name": "app", "labels": {"kratix.io/promise-version": "v1.0.0"}},
                "spec": {"api": crd or CRD, "workflows": workflows}}
    return yaml.safe_dump(document, sort_keys=False)


def app(name: str = "web", size: str = "small") -> str:
    return yaml.safe_dump({"apiVersion": "test.kratix.io/v1alpha1", "kind": "App", "metadata": {"name": name},
                           "spec": {"size": size}}, sort_keys=False)


def platform(promise_text: str, scripts: dict[str, str], **extra: str) -> dict[str, str]:
    destination = {"apiVersion": "platform.kratix.io/v1alpha1", "kind": "Destination",
                   "metadata": {"name": "worker-1", "labels": {"env": "dev"}}}
    return {"promises/app/promise.yaml": promise_text,
            **{f"promises/app/scripts/{name}": text for name, text in scripts.items()},
            "clusters/worker-1.yaml": yaml.safe_dump(destination),
            "requests/team-a/web.yaml": app(), **extra}


class Platform:
    """An input repo and an output repo; `compile` publishes and returns the CLI's result."""

    def __init__(self, tmp_path: Path, files: dict[str, str]) -> None:
        self.repo, _ = make_repo(tmp_path / "platform", files)
        self.output = init_repo(tmp_path / "output.git", bare=True)

    def compile(self, *extra: str) -> Any:
        return kratix("compile", str(self.repo), "--ref", "HEAD", "--output-repo", str(self.output), *extra)

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
    files = platform(promise([pipeline("instance", step("env", "env.sh"))],
                             [pipeline("setup", step("env", "env.sh"))]), {"env.sh": ENV_SCRIPT})
    repo = Platform(tmp_path, files)
    result = repo.compile()
    assert result.returncode == 0, result.stderr
    resource = variables(repo.file("worker-1/resources/team-a/app/web/instance/env.txt"))
    assert resource == {
        "KRATIX_WORKFLOW_ACTION": "configure", "KRATIX_WORKFLOW_TYPE": "resource", "KRATIX_PROMISE_NAME": "app",
        "KRATIX_PIPELINE_NAME": "instance", "KRATIX_OBJECT_KIND": "App", "KRATIX_OBJECT_GROUP": "test.kratix.io",
        "KRATIX_OBJECT_VERSION": "v1alpha1", "KRATIX_OBJECT_NAME": "web", "KRATIX_OBJECT_NAMESPACE": "team-a",
        "KRATIX_CRD_PLURAL": "apps", "KRATIX_CLUSTER_SCOPED": "false"}
    promise_env = variables(repo.file("worker-1/dependencies/app/setup/env.txt"))
    assert promise_env == {
        "KRATIX_WORKFLOW_ACTION": "configure", "KRATIX_WORKFLOW_TYPE": "promise", "KRATIX_PROMISE_NAME": "app",
        "KRATIX_PIPELINE_NAME": "setup", "KRATIX_OBJECT_KIND": "Promise",
        "KRATIX_OBJECT_GROUP": "platform.kratix.io", "KRATIX_OBJECT_VERSION": "v1alpha1",
        "KRATIX_OBJECT_NAME": "app", "KRATIX_OBJECT_NAMESPACE": "", "KRATIX_CRD_PLURAL": "promises",
        "KRATIX_CLUSTER_SCOPED": "true"}


COUNT_SCRIPT = """\
set -eu
runs=$(sed -n 's/^  runs: *//p' /kratix/input/object.yaml)
printf 'runs: %s\\n' $(( ${runs:-0} + 1 )) > /kratix/metadata/status.yaml
cp /kratix/input/object.yaml /kratix/output/object.txt
"""


def test_a_step_sees_the_status_of_the_last_compile_in_object_yaml(tmp_path: Path) -> None:
    files = platform(promise([pipeline("instance", step("count", "count.sh"))],
                             [pipeline("setup", step("count", "count.sh"))]), {"count.sh": COUNT_SCRIPT})
    repo = Platform(tmp_path, files)
    assert repo.compile().returncode == 0
    first = yaml.safe_load(repo.file("worker-1/resources/team-a/app/web/instance/object.txt"))
    assert "status" not in first and repo.status()["runs"] == 1
    repo.commit({"requests/team-a/web.yaml": app(size="large")})
    result = repo.compile("--rebuild")
    assert result.returncode == 0, result.stderr
    seen = yaml.safe_load(repo.file("worker-1/resources/team-a/app/web/instance/object.txt"))
    assert seen["spec"] == {"size": "large"}
    assert seen["status"]["runs"] == 1 and seen["status"]["message"] == "Resource requested"
    assert repo.status()["runs"] == 2
    promise_seen = yaml.safe_load(repo.file("worker-1/dependencies/app/setup/object.txt"))
    assert promise_seen["kind"] == "Promise" and promise_seen["status"]["status"] == "Available"
