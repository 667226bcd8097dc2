"""Pipeline containers run for real: shell scripts under bubblewrap (or the env-var fallback) and a busybox
image under podman, over the shared /kratix directories."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from kratix import steps
from kratix.errors import StepError
from kratix.platform import Container, Pipeline
from kratix.settings import RenderSettings
from tests import images

OBJECT = b"""apiVersion: example.org/v1
kind: Database
metadata: {name: orders, namespace: team-a}
spec: {size: small}
"""

ENV = {
    "KRATIX_WORKFLOW_TYPE": "resource", "KRATIX_WORKFLOW_ACTION": "configure",
    "KRATIX_PROMISE_NAME": "database", "KRATIX_PIPELINE_NAME": "instance-configure",
    "KRATIX_OBJECT_KIND": "Database", "KRATIX_OBJECT_GROUP": "example.org", "KRATIX_OBJECT_VERSION": "v1",
    "KRATIX_OBJECT_NAME": "orders", "KRATIX_OBJECT_NAMESPACE": "team-a", "KRATIX_CRD_PLURAL": "databases",
}

# A Kratix-style configure script. It reads the paths from KRATIX_* with the real paths as defaults, so the
# same script runs in the sandbox, in the env-var fallback and in an image.
CONFIGURE = b"""#!/bin/sh
set -eu
in="${KRATIX_INPUT:-/kratix/input}"; out="${KRATIX_OUTPUT:-/kratix/output}"
meta="${KRATIX_METADATA:-/kratix/metadata}"
size=$(sed -n 's/^spec: {size: \\(.*\\)}$/\\1/p' "$in/object.yaml")
mkdir -p "$out/db"
printf 'apiVersion: v1\\nkind: Namespace\\nmetadata:\\n  name: %s-%s\\n' "$KRATIX_OBJECT_NAME" "$size" \\
  > "$out/ns.yaml"
printf 'kind: ConfigMap\\nmetadata: {name: %s}\\n' "$KRATIX_PIPELINE_NAME" > "$out/db/config.yaml"
printf -- '- matchLabels: {env: dev}\\n' > "$meta/destination-selectors.yaml"
printf 'message: configured %s\\n' "$KRATIX_OBJECT_NAMESPACE" > "$meta/status.yaml"
"""

PROMISE_FILES = {"scripts/configure.sh": CONFIGURE, "values/default.txt": b"small\n"}


def container(name: str, *command: str, **fields: Any) -> Container:
    body = {"name": name, **fields}
    image = fields.get("image")
    return Container(name=name, command=tuple(command), image=image, body=body,
                     env=tuple((k, v) for k, v in fields.get("env", {}).items()))


def run(*containers: Container, sandbox: str | None = None, timeout: float = 30.0,
        promise_files: Mapping[str, bytes] = PROMISE_FILES, native: steps.NativeStep | None = None,
        runtime: str | None = None) -> steps.PipelineRun:
    def no_native(step: Container, output: Path) -> str | None:
        raise AssertionError("no template container in this pipeline")

    return steps.run_pipeline(
        Pipeline(name="instance-configure", containers=containers), object_yaml=OBJECT,
        promise_files=promise_files, env=ENV, settings=RenderSettings(step_timeout_seconds=timeout),
        native_step=native or no_native, sandbox=sandbox, runtime=runtime)


@pytest.fixture(scope="session")
def bwrap() -> str:
    if not steps.sandbox_available():
        pytest.skip("bubblewrap cannot create a sandbox here (not installed, or user namespaces disabled)")
    return "bwrap"


@pytest.fixture(scope="session")
def busybox() -> tuple[str, str]:
    runtime = steps.detect_runtime("podman")
    if runtime is None:
        pytest.skip("podman is not installed or does not answer `podman info`")
    try:
        return runtime, images.busybox_image(runtime)
    except images.ImageUnavailable as exc:
        pytest.skip(f"cannot build or run the busybox test image: {exc}")


def expect_configured(result: steps.PipelineRun) -> None:
    assert result.error is None and result.failed_step is None
    assert yaml.safe_load(result.output_files["ns.yaml"]) == {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "orders-small"}}
    assert yaml.safe_load(result.output_files["db/config.yaml"])["metadata"]["name"] == "instance-configure"
    selectors = yaml.safe_load(result.metadata_files["destination-selectors.yaml"])
    assert selectors == [{"matchLabels": {"env": "dev"}}]
    assert yaml.safe_load(result.metadata_files["status.yaml"]) == {"message": "configured team-a"}


def test_a_kratix_script_runs_in_the_sandbox_from_the_promise_folder(bwrap: str) -> None:
    result = run(container("configure", "./scripts/configure.sh"), sandbox=bwrap)

    expect_configured(result)
    assert result.sandbox == "bwrap"
    assert sorted(result.output_files) == ["db/config.yaml", "ns.yaml"]


def test_the_sandbox_is_probed_when_not_given(bwrap: str) -> None:
    assert run(container("configure", "sh", "scripts/configure.sh")).sandbox == "bwrap"


def test_the_env_fallback_runs_the_same_script_with_directories_in_variables() -> None:
    result = run(container("configure", "./scripts/configure.sh"), sandbox="env")

    expect_configured(result)
    assert result.sandbox == "env"


def test_containers_share_output_and_metadata_in_order(bwrap: str) -> None:
    def native(step: Container, output: Path) -> str | None:
        (output / "from-template.yaml").write_text("kind: ConfigMap\nmetadata: {name: native}\n")
        return None

    first = container("first", "sh", "-c", "echo 'kind: A' > /kratix/output/a.yaml; echo 'phase: one' "
                      "> /kratix/metadata/status.yaml")
    template = Container(name="render", template="templates")
    second = container("second", "sh", "-c", "set -e; cd /kratix/output; cat a.yaml from-template.yaml"
                       " > b.yaml; cat /kratix/metadata/status.yaml >> b.yaml")
    result = run(first, template, second, sandbox=bwrap, native=native)

    assert result.error is None
    expected = b"kind: A\nkind: ConfigMap\nmetadata: {name: native}\nphase: one\n"
    assert result.output_files["b.yaml"] == expected
    assert result.sandbox == "bwrap+native"
    assert [name for name, _ in result.step_seconds] == ["first", "render", "second"]


def test_a_failing_container_stops_the_pipeline_with_its_stderr_tail(bwrap: str) -> None:
    failing = container("render", "sh", "-c", "i=0; while [ $i -lt 30 ]; do echo \"line $i\" >&2; "
                        "i=$((i+1)); done; echo 'kind: A' > /kratix/output/a.yaml; exit 3")
    after = container("after", "sh", "-c", "echo ran > /kratix/output/after.yaml")
    result = run(failing, after, sandbox=bwrap)

    assert result.failed_step == "render"
    assert result.error is not None and result.error.startswith("container 'render' exited 3: ")
    assert "line 29" in result.error and "line 10" in result.error and "line 9\n" not in result.error
    assert result.output_files == {} and result.metadata_files == {}  # half a pipeline is never published
    assert [name for name, _ in result.step_seconds] == ["render"]


def test_a_failing_native_step_stops_the_pipeline(bwrap: str) -> None:
    after = container("after", "sh", "-c", "echo ran > /kratix/output/after.yaml")
    result = run(Container(name="render", template="t"), after, sandbox=bwrap,
                 native=lambda step, output: "templates/ns.yaml:3: undefined variable 'size'")

    assert (result.failed_step, result.error) == ("render", "templates/ns.yaml:3: undefined variable 'size'")


def test_a_container_that_runs_too_long_is_killed(bwrap: str) -> None:
    started = time.monotonic()
    result = run(container("slow", "sleep", "30"), sandbox=bwrap, timeout=0.3)

    assert (result.failed_step, result.error) == ("slow", "container 'slow' timed out after 0.3s")
    assert time.monotonic() - started < 10


def test_a_timeout_kills_the_whole_process_group_in_the_fallback(tmp_path: Path) -> None:
    marker = tmp_path / "still-running"
    script = f"(sleep 1; touch {marker}) & sleep 30"
    result = run(container("slow", "sh", "-c", script), sandbox="env", timeout=0.3)

    assert result.error == "container 'slow' timed out after 0.3s"
    time.sleep(1.5)
    assert not marker.exists()


def test_a_step_cannot_write_outside_its_directories(bwrap: str) -> None:
    attempts = {
        "etc": "/etc/kratix-escape", "usr": "/usr/kratix-escape", "promise": "scripts/configure.sh",
        "input": "/kratix/input/object.yaml", "root": "/kratix-escape",
    }
    script = "; ".join(f"if echo x >> {target} 2>/dev/null; then echo '{key}: wrote'; else echo '{key}: "
                       f"refused'; fi >> /kratix/output/r.yaml" for key, target in attempts.items())
    result = run(container("escape", "sh", "-c", script), sandbox=bwrap)

    assert result.error is None
    assert yaml.safe_load(result.output_files["r.yaml"]) == {key: "refused" for key in attempts}
    assert not Path("/etc/kratix-escape").exists() and not Path("/usr/kratix-escape").exists()


def test_the_sandbox_has_no_network_and_a_cleared_environment(bwrap: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRATIX_TEST_SECRET", "leaked")
    script = ("env | sort > /kratix/output/env.txt; "
              "if cat /proc/net/dev | grep -q eth; then echo net > /kratix/output/net.txt; fi")
    own_env = {"MODE": "fast", "KRATIX_OBJECT_NAME": "spoofed"}
    result = run(container("probe", "sh", "-c", script, env=own_env), sandbox=bwrap)

    variables = dict(line.split("=", 1) for line in result.output_files["env.txt"].decode().splitlines())
    assert "KRATIX_TEST_SECRET" not in variables
    assert variables["MODE"] == "fast"
    assert variables["KRATIX_OBJECT_NAME"] == "orders"  # the contract's variables win over the container's
    assert variables["KRATIX_OUTPUT"] == "/kratix/output"
    assert "net.txt" not in result.output_files


def test_a_symlink_in_the_output_is_refused_before_the_next_step_can_follow_it() -> None:
    after = container("after", "sh", "-c", "cat $KRATIX_OUTPUT/passwd.yaml > $KRATIX_OUTPUT/copy.yaml")
    result = run(container("link", "sh", "-c", "ln -s /etc/passwd $KRATIX_OUTPUT/passwd.yaml"), after,
                 sandbox="env")

    assert result.failed_step == "link"
    assert result.error == "output/passwd.yaml is a symlink; write regular files only"


def test_a_missing_program_is_an_error_of_the_step() -> None:
    result = run(container("missing", "./scripts/absent.sh"), sandbox="env")

    assert result.failed_step == "missing"
    assert result.error is not None and result.error.startswith("container 'missing' cannot start")


def test_promise_files_must_stay_inside_the_promise_folder() -> None:
    with pytest.raises(StepError, match="outside the Promise's folder"):
        run(container("configure", "true"), sandbox="env", promise_files={"../../etc/x": b""})


def test_an_image_step_without_a_runtime_names_promise_pipeline_and_container() -> None:
    image_step = container("render", image="ghcr.io/example/render:1")
    with pytest.raises(StepError) as raised:
        steps.run_pipeline(
            Pipeline(name="instance-configure", containers=(image_step,)), object_yaml=OBJECT,
            promise_files={}, env=ENV, settings=RenderSettings(container_runtime="no-such-runtime"),
            native_step=lambda step, output: None)

    message = str(raised.value)
    assert "'database'" in message and "'instance-configure'" in message and "'render'" in message
    assert "ghcr.io/example/render:1" in message


def test_an_image_runs_the_kratix_contract(busybox: tuple[str, str]) -> None:
    runtime, image = busybox
    step = container("configure", "sh", "/kratix/promise/scripts/configure.sh", image=image)
    result = run(step, runtime=runtime)

    expect_configured(result)
    assert result.sandbox == runtime


def test_an_image_step_fails_with_its_stderr(busybox: tuple[str, str]) -> None:
    runtime, image = busybox
    result = run(container("broken", "sh", "-c", "echo 'no size given' >&2; exit 4", image=image),
                 runtime=runtime)

    assert (result.failed_step, result.error) == ("broken", "container 'broken' exited 4: no size given")


def test_a_seed_era_image_writes_to_the_old_paths(busybox: tuple[str, str]) -> None:
    runtime, image = busybox
    script = ("cat /input/object.yaml > /output/object.yaml; "
              "printf 'pci: \"true\"\\n' > /metadata/cluster-selectors.yaml")
    result = run(container("legacy", "sh", "-c", script, image=image, legacyPaths=True), runtime=runtime)

    assert result.error is None
    assert result.output_files["object.yaml"] == OBJECT
    assert yaml.safe_load(result.metadata_files["destination-selectors.yaml"]) == [
        {"matchLabels": {"pci": "true"}}]


def test_image_digest_identifies_local_images_only(busybox: tuple[str, str]) -> None:
    runtime, image = busybox
    digest = steps.image_digest(image, runtime)

    assert digest is not None and digest.startswith("sha256:") and len(digest) == len("sha256:") + 64
    assert steps.image_digest("localhost/kratix-no-such-image:0", runtime) is None


def test_an_image_that_runs_too_long_is_stopped_and_removed(busybox: tuple[str, str]) -> None:
    runtime, image = busybox
    result = run(container("slow", "sleep", "30", image=image), runtime=runtime, timeout=1.5)

    assert (result.failed_step, result.error) == ("slow", "container 'slow' timed out after 1.5s")
    listed = subprocess.run([runtime, "ps", "-a", "--format", "{{.Names}} {{.Image}}"], capture_output=True,
                            text=True, check=True).stdout
    assert image not in listed
