"""Kratix's own end-to-end scenario, ported: a Promise with a promise workflow and two resource pipelines that
schedule directories to different destinations and pass status along, through its whole lifecycle (request
updated, Promise updated, request deleted, Promise deleted), published to a real output repo each step.

It runs once with command steps (in a sandbox: bubblewrap, else podman; skipped where neither runs) and once
with image steps in podman.

One deliberate difference from the scenario as written for us: `worker-1` carries `environment: dev` as well as
`target: worker-1`. The second pipeline sends its Namespace to the root group with `target: worker-1`, and
Kratix merges the Promise's `environment: dev` into the root group's selectors (the Promise wins a conflict),
so with `target: worker-1` alone on worker-1 the Namespace would match no destination at all.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests import images
from tests.gitrepos import commit_files, git, init_repo, make_repo
from tests.platforms import crd, kratix
from tests.sandboxes import require_command_sandbox

PROMISE_SCRIPT = """\
set -eu
version=$(cat /kratix/promise/scripts/version)
cat > /kratix/output/namespace.yaml <<YAML
apiVersion: v1
kind: Namespace
metadata:
  name: scenario-system
YAML
cat > /kratix/output/configmap.yaml <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: scenario-config
  namespace: scenario-system
data:
  version: "$version"
YAML
"""

FIRST_SCRIPT = """\
set -eu
name=$KRATIX_OBJECT_NAME
namespace=$KRATIX_OBJECT_NAMESPACE
message=$(sed -n 's/^  message: *//p' /kratix/input/object.yaml | head -n 1)
version=$(cat /kratix/promise/scripts/version)
for dest in dest1 dest2; do
  mkdir -p /kratix/output/$dest
  cat > /kratix/output/$dest/configmap.yaml <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: $name-$dest
  namespace: $namespace
data:
  message: "$message"
  version: "$version"
YAML
done
cat > /kratix/metadata/destination-selectors.yaml <<YAML
- directory: dest1
  matchLabels:
    target: worker-1
- directory: dest2
  matchLabels:
    target: worker-2
YAML
printf 'stage: one\\n' > /kratix/metadata/status.yaml
"""

SECOND_SCRIPT = """\
set -eu
if ! grep -q 'stage: one' /kratix/input/object.yaml; then
  echo "the second pipeline did not see the first one's status" >&2
  exit 1
fi
cat > /kratix/output/namespace.yaml <<YAML
apiVersion: v1
kind: Namespace
metadata:
  name: $KRATIX_OBJECT_NAME-ns
YAML
cat > /kratix/metadata/destination-selectors.yaml <<YAML
- matchLabels:
    target: worker-1
YAML
printf 'stage: two\\ncompleted: true\\n' > /kratix/metadata/status.yaml
"""


def container(name: str, script: str, image: str | None) -> dict:
    if image is None:
        return {"name": name, "command": ["sh", f"scripts/{script}"]}
    return {"name": name, "image": image, "command": ["sh", f"/kratix/promise/scripts/{script}"]}


def pipeline(name: str, *containers: dict) -> dict:
    return {
        "apiVersion": "platform.kratix.io/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": name},
        "spec": {"containers": list(containers)},
    }


def promise(image: str | None, version: str = "v1.0.0") -> str:
    api = crd("test.kratix.io", "Scenario", "v1alpha1", {"message": {"type": "string", "default": "hello"}})
    document = {
        "apiVersion": "platform.kratix.io/v1alpha1",
        "kind": "Promise",
        "metadata": {"name": "scenario", "labels": {"kratix.io/promise-version": version}},
        "spec": {
            "api": api,
            "destinationSelectors": [{"matchLabels": {"environment": "dev"}}],
            "workflows": {
                "promise": {"configure": [pipeline("promise-configure", container("deps", "promise.sh", image))]},
                "resource": {
                    "configure": [
                        pipeline("first", container("dirs", "first.sh", image)),
                        pipeline("second", container("namespace", "second.sh", image)),
                    ]
                },
            },
        },
    }
    return yaml.safe_dump(document, sort_keys=False)


def destination(name: str, labels: dict[str, str]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "platform.kratix.io/v1alpha1",
            "kind": "Destination",
            "metadata": {"name": name, "labels": labels},
        },
        sort_keys=False,
    )


def request(message: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "test.kratix.io/v1alpha1",
            "kind": "Scenario",
            "metadata": {"name": "my-request"},
            "spec": {"message": message},
        },
        sort_keys=False,
    )


def platform(image: str | None) -> dict[str, str]:
    return {
        "promises/scenario/promise.yaml": promise(image),
        "promises/scenario/scripts/promise.sh": PROMISE_SCRIPT,
        "promises/scenario/scripts/first.sh": FIRST_SCRIPT,
        "promises/scenario/scripts/second.sh": SECOND_SCRIPT,
        "promises/scenario/scripts/version": "one\n",
        "clusters/worker-1.yaml": destination("worker-1", {"target": "worker-1", "environment": "dev"}),
        "clusters/worker-2.yaml": destination("worker-2", {"environment": "dev", "target": "worker-2"}),
        "requests/default/my-request.yaml": request("hello"),
    }


def tree(output: Path) -> dict[str, str]:
    paths = git(output, "ls-tree", "-r", "--name-only", "main").split()
    return {path: git(output, "show", f"main:{path}") for path in paths if not path.endswith("kustomization.yaml")}


def objects(files: dict[str, str], destination: str) -> dict[tuple[str, str], dict]:
    found = {}
    for path, text in files.items():
        if path.startswith(f"{destination}/"):
            for document in yaml.safe_load_all(text):
                found[(document["kind"], document["metadata"]["name"])] = document
    return found


def run_scenario(tmp_path: Path, image: str | None) -> None:
    repo, _ = make_repo(tmp_path / "platform", platform(image))
    output = init_repo(tmp_path / "output.git", bare=True)

    def publish(*extra: str) -> dict[str, str]:
        result = kratix("compile", str(repo), "--ref", "HEAD", "--output-repo", str(output), *extra)
        assert result.returncode == 0, result.stderr
        return tree(output)

    files = publish()
    worker_1, worker_2 = objects(files, "worker-1"), objects(files, "worker-2")
    # promise workflow output goes to every destination matching environment=dev
    for worker in (worker_1, worker_2):
        assert worker[("ConfigMap", "scenario-config")]["data"] == {"version": "one"}
        assert ("Namespace", "scenario-system") in worker
    # each directory went where its own selector said; the root Namespace followed target=worker-1
    assert worker_1[("ConfigMap", "my-request-dest1")]["data"] == {"message": "hello", "version": "one"}
    assert ("ConfigMap", "my-request-dest2") not in worker_1
    assert ("ConfigMap", "my-request-dest2") in worker_2 and ("ConfigMap", "my-request-dest1") not in worker_2
    assert ("Namespace", "my-request-ns") in worker_1 and ("Namespace", "my-request-ns") not in worker_2
    status = yaml.safe_load(files[".kratix/status/default/scenario/my-request.yaml"])["status"]
    assert (status["stage"], status["completed"], status["message"]) == ("two", True, "Resource requested")
    assert {c["type"]: c["status"] for c in status["conditions"]}["ConfigureWorkflowCompleted"] == "True"
    assert status["pipelines"] == [{"name": "first", "phase": "Succeeded"}, {"name": "second", "phase": "Succeeded"}]
    revision = status["observedRevision"]
    promise_status = yaml.safe_load(files[".kratix/promises/scenario.yaml"])["status"]
    assert promise_status["pipelines"] == [{"name": "promise-configure", "phase": "Succeeded"}]

    commit_files(repo, {"requests/default/my-request.yaml": request("updated")})
    files = publish()
    assert objects(files, "worker-1")[("ConfigMap", "my-request-dest1")]["data"]["message"] == "updated"
    assert objects(files, "worker-2")[("ConfigMap", "my-request-dest2")]["data"]["message"] == "updated"
    assert (
        yaml.safe_load(files[".kratix/status/default/scenario/my-request.yaml"])["status"]["observedRevision"]
        != revision
    )

    commit_files(
        repo,
        {
            "promises/scenario/scripts/version": "two\n",
            "promises/scenario/promise.yaml": promise(image, version="v1.1.0"),
        },
    )
    files = publish()
    for worker in ("worker-1", "worker-2"):
        assert objects(files, worker)[("ConfigMap", "scenario-config")]["data"] == {"version": "two"}
    assert objects(files, "worker-1")[("ConfigMap", "my-request-dest1")]["data"]["version"] == "two"

    commit_files(repo, {}, remove=["requests/default/my-request.yaml"])
    files = publish("--allow-deletions")
    assert not [p for p in files if "/resources/default/scenario/" in p]
    assert not [p for p in files if p.startswith(".kratix/status/default/")]
    assert ("ConfigMap", "scenario-config") in objects(files, "worker-1")

    git(repo, "rm", "-q", "-r", "promises/scenario")
    git(repo, "commit", "-q", "-m", "delete the Promise")
    files = publish("--allow-deletions")
    assert not [p for p in files if "scenario" in p]


def test_kratix_scenario_with_command_steps(tmp_path: Path) -> None:
    require_command_sandbox()
    run_scenario(tmp_path, image=None)


def test_kratix_scenario_with_image_steps(tmp_path: Path) -> None:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (CI installs it with apt)")
    try:
        image = images.busybox_image("podman")
    except images.ImageUnavailable as exc:
        pytest.skip(str(exc))
    run_scenario(tmp_path, image=image)
