"""Shards on the engines users have: the publish workflow's matrix (GitHub Actions) and the Indexed Job
followed by the publishing Job (Kubernetes, `deploy/shards/`). The scripts and command lines in them are run
for real against local repos; actionlint checks the workflow (tests/test_ci_workflows.py) and the Kubernetes
schemas check the Jobs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from kratix.compile import shards
from tests.gitrepos import files_at, git, make_repo
from tests.platforms import database, platform_files

ROOT = Path(__file__).resolve().parent.parent
PUBLISH_WORKFLOW = ROOT / ".github" / "workflows" / "platform-publish.yml"
SHARDS_DIR = ROOT / "deploy" / "shards"
KUBERNETES_VERSION = "1.30"


@pytest.fixture(scope="module")
def built() -> dict[str, dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: cannot run `kubectl kustomize deploy/shards/`")
    result = subprocess.run(["kubectl", "kustomize", str(SHARDS_DIR)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(result.stdout) if d}


@pytest.fixture
def platform(tmp_path: Path) -> tuple[Path, str]:
    files = platform_files(**{f"team-a/db-{i}": database(f"db-{i}") for i in range(6)})
    return make_repo(tmp_path / "input", files)


def shim(tmp_path: Path) -> dict[str, str]:
    """`kratix` on PATH running the code under test, and a clean HOME."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "kratix").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m kratix.cli "$@"\n')
    (bin_dir / "kratix").chmod(0o755)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(home),
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }


def run(script: str, env: dict[str, str], cwd: Path, shell: str = "bash") -> subprocess.CompletedProcess[str]:
    args = (
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script] if shell == "bash" else ["sh", "-c", script]
    )
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


def plain_output(tmp_path: Path, repo: Path, env: dict[str, str]) -> dict[str, bytes]:
    done = run(f"kratix compile {repo} --ref HEAD --output-repo {tmp_path / 'plain'}", env, tmp_path)
    assert done.returncode == 0, done.stderr
    return files_at(tmp_path / "plain")


# --- Kubernetes: deploy/shards/ ------------------------------------------------------------------------------


def test_the_shard_jobs_build_and_are_valid_against_the_kubernetes_schemas(built: dict[str, dict[str, Any]]) -> None:
    assert sorted(built) == ["ConfigMap/kratix-shards", "Job/kratix-publish", "Job/kratix-shards"]
    for obj in built.values():
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        assert obj["metadata"]["namespace"] == "kratix-platform"


def test_the_indexed_job_runs_n_shards_and_the_publish_job_none(built: dict[str, dict[str, Any]]) -> None:
    indexed, publish = built["Job/kratix-shards"]["spec"], built["Job/kratix-publish"]["spec"]
    count = int(built["ConfigMap/kratix-shards"]["data"]["shards"])
    assert indexed["completionMode"] == "Indexed"
    assert indexed["completions"] == indexed["parallelism"] == count > 1
    (shard,) = indexed["template"]["spec"]["containers"]
    assert "--shard=auto/$(SHARD_COUNT)" in shard["args"]
    (container,) = publish["template"]["spec"]["containers"]
    assert not any(arg.startswith("--shard") for arg in container["args"])
    assert [c["name"] for c in publish["template"]["spec"]["initContainers"]] == ["clone", "wait-for-shards"]
    for spec in (indexed, publish):
        pod = spec["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False and pod["securityContext"]["runAsNonRoot"] is True
        assert all(c["securityContext"]["readOnlyRootFilesystem"] for c in pod["containers"] + pod["initContainers"])


def test_the_controllers_kustomization_leaves_the_shards_out() -> None:
    resources = yaml.safe_load((ROOT / "deploy" / "kustomization.yaml").read_text())["resources"]
    assert not any("shards" in resource for resource in resources)


def substitute(args: list[str], values: dict[str, str]) -> list[str]:
    """`$(VAR)` in a container's args, as the kubelet expands them."""
    return [re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], arg) for arg in args]


def test_the_jobs_command_lines_publish_what_a_compile_without_shards_does(
    built: dict[str, dict[str, Any]], tmp_path: Path, platform: tuple[Path, str]
) -> None:
    repo, commit = platform
    env = shim(tmp_path)
    output = tmp_path / "output"
    values = {"KRATIX_REF": commit, "KRATIX_OUTPUT_REPO": str(output), "KRATIX_BRANCH": "main", "SHARD_COUNT": "4"}
    input_path = tmp_path / "work-input"
    git(tmp_path, "clone", "--quiet", "--bare", str(repo), str(input_path))  # what the clone init container does
    shard_args = built["Job/kratix-shards"]["spec"]["template"]["spec"]["containers"][0]["args"]
    for index in range(4):  # the Indexed Job's pods, one after another
        args = [a.replace("/work/input", str(input_path)) for a in substitute(shard_args, values)]
        done = subprocess.run(
            ["kratix", *args],
            env={**env, "JOB_COMPLETION_INDEX": str(index)},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    assert len(git(output, "for-each-ref", shards.REF_PREFIX).splitlines()) == 4

    wait = built["Job/kratix-publish"]["spec"]["template"]["spec"]["initContainers"][1]["command"][2]
    waited = run(
        wait.replace("/work/input", str(input_path)), {**env, **values, "SHARD_WAIT_SECONDS": "0"}, tmp_path, shell="sh"
    )
    assert waited.returncode == 0 and "4 of 4" in waited.stdout

    publish_args = built["Job/kratix-publish"]["spec"]["template"]["spec"]["containers"][0]["args"]
    args = [a.replace("/work/input", str(input_path)) for a in substitute(publish_args, values)]
    done = subprocess.run(["kratix", *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "from 4 of 4 shard(s)" in done.stderr
    assert files_at(output) == plain_output(tmp_path, repo, env)
    assert git(output, "for-each-ref", shards.REF_PREFIX) == ""


def test_the_publish_job_stops_waiting_for_a_shard_that_never_comes(
    built: dict[str, dict[str, Any]], tmp_path: Path, platform: tuple[Path, str]
) -> None:
    repo, commit = platform
    output = tmp_path / "output"
    git(tmp_path, "init", "--quiet", "--bare", str(output))
    empty_tree = git(output, "hash-object", "-t", "tree", "-w", "--stdin", input=b"").strip()
    git(
        output,
        "update-ref",
        shards.ref_name(commit, shards.Shard(0, 2)),
        git(output, "commit-tree", empty_tree, "-m", "shard 0 of 2").strip(),
    )
    wait = built["Job/kratix-publish"]["spec"]["template"]["spec"]["initContainers"][1]["command"][2]
    env = {
        **shim(tmp_path),
        "KRATIX_REF": commit,
        "KRATIX_OUTPUT_REPO": str(output),
        "SHARD_COUNT": "2",
        "SHARD_WAIT_SECONDS": "0",
    }
    git(tmp_path, "clone", "--quiet", "--bare", str(repo), str(tmp_path / "work-input"))
    waited = run(wait.replace("/work/input", str(tmp_path / "work-input")), env, tmp_path, shell="sh")
    assert waited.returncode == 0
    assert "1 of 2" in waited.stdout and "not every shard stored its result in time" in waited.stdout


# --- GitHub Actions: the publish workflow's matrix -----------------------------------------------------------


def workflow() -> dict[str, Any]:
    return yaml.load(PUBLISH_WORKFLOW.read_text(), Loader=yaml.BaseLoader)


def step(job: str, name: str) -> dict[str, Any]:
    (found,) = [s for s in workflow()["jobs"][job]["steps"] if s.get("name") == name]
    return found


def test_the_publish_workflow_runs_a_shard_matrix_before_publishing() -> None:
    document = workflow()
    assert document["on"]["workflow_dispatch"]["inputs"]["shards"]["type"] == "number"
    jobs = document["jobs"]
    assert jobs["shard"]["strategy"]["matrix"]["index"] == "${{ fromJSON(needs.setup.outputs.indices) }}"
    assert jobs["shard"]["strategy"]["fail-fast"] == "false"
    assert "fromJSON(needs.setup.outputs.count) > 1" in jobs["shard"]["if"]
    assert jobs["publish"]["needs"] == ["setup", "shard"]
    assert "!cancelled()" in jobs["publish"]["if"]  # a failed or skipped shard still publishes
    assert '--shard "$SHARD_INDEX/$SHARD_COUNT"' in step("shard", "Run one shard's workflows")["run"]


@pytest.mark.parametrize(("given", "indices"), [("4", "[0,1,2,3]"), ("1", "[0]")])
def test_the_setup_job_counts_the_shards(tmp_path: Path, given: str, indices: str) -> None:
    outputs = tmp_path / "output.txt"
    outputs.touch()
    done = run(
        step("setup", "Count the shards")["run"],
        {"PATH": os.environ["PATH"], "KRATIX_SHARDS": given, "GITHUB_OUTPUT": str(outputs)},
        tmp_path,
    )
    assert done.returncode == 0, done.stdout
    assert outputs.read_text().splitlines() == [f"count={given}", f"indices={indices}"]


@pytest.mark.parametrize("given", ["0", "257", "four", ""])
def test_the_setup_job_refuses_a_count_a_matrix_cannot_hold(tmp_path: Path, given: str) -> None:
    done = run(
        step("setup", "Count the shards")["run"],
        {"PATH": os.environ["PATH"], "KRATIX_SHARDS": given, "GITHUB_OUTPUT": str(tmp_path / "out")},
        tmp_path,
    )
    assert done.returncode == 1 and "::error title=kratix shards::" in done.stdout


def test_the_matrix_and_publish_steps_publish_what_a_compile_without_shards_does(
    tmp_path: Path, platform: tuple[Path, str]
) -> None:
    repo, commit = platform
    env = shim(tmp_path)
    output = tmp_path / "output"
    github = {
        **env,
        "GITHUB_SHA": commit,
        "RUNNER_TEMP": str(tmp_path),
        "KRATIX_OUTPUT_REPO": str(output),
        "KRATIX_OUTPUT_BRANCH": "main",
        "GIT_ASKPASS": str(tmp_path / "askpass.sh"),
        "KRATIX_GIT_TOKEN": "t",
    }
    for index in (0, 2):  # shard 1 of 3 failed: the publish job runs its workflows
        done = run(
            step("shard", "Run one shard's workflows")["run"],
            {**github, "SHARD_INDEX": str(index), "SHARD_COUNT": "3"},
            repo,
        )
        assert done.returncode == 0, done.stderr
    done = run(step("publish", "Compile and publish")["run"], github, repo)
    assert done.returncode == 0, done.stderr
    assert "shard 1/3 has no result (missing or failed): its workflows ran here" in done.stderr
    assert files_at(output) == plain_output(tmp_path, repo, env)
