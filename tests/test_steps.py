"""Pipeline containers run for real: shell scripts under bubblewrap, in podman's host-root sandbox or (only when
asked) unsandboxed, and a busybox image under podman, over the shared /kratix directories."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from kratix.model import names
from kratix.model.errors import StepError
from kratix.model.platform import Container, Pipeline
from kratix.model.settings import RenderSettings
from kratix.workflows import steps
from tests import images

OBJECT = b"""apiVersion: example.org/v1
kind: Database
metadata: {name: orders, namespace: team-a}
spec: {size: small}
"""

ENV = {
    "KRATIX_WORKFLOW_TYPE": "resource",
    "KRATIX_WORKFLOW_ACTION": "configure",
    "KRATIX_PROMISE_NAME": "database",
    "KRATIX_PIPELINE_NAME": "instance-configure",
    "KRATIX_OBJECT_KIND": "Database",
    "KRATIX_OBJECT_GROUP": "example.org",
    "KRATIX_OBJECT_VERSION": "v1",
    "KRATIX_OBJECT_NAME": "orders",
    "KRATIX_OBJECT_NAMESPACE": "team-a",
    "KRATIX_CRD_PLURAL": "databases",
}

# A Kratix-style configure script. It reads the paths from KRATIX_* with the real paths as defaults, so the
# same script runs in a sandbox, unsandboxed (--unsandboxed) and in an image.
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
    return Container(
        name=name,
        command=tuple(command),
        image=image,
        body=body,
        env=tuple((k, v) for k, v in fields.get("env", {}).items()),
    )


def run(
    *containers: Container,
    sandbox: str | None = None,
    timeout: float = 30.0,
    promise_files: Mapping[str, bytes] = PROMISE_FILES,
    native: steps.NativeStep | None = None,
    runtime: str | None = None,
) -> steps.PipelineRun:
    def no_native(step: Container, output: Path) -> str | None:
        raise AssertionError("no template container in this pipeline")

    return steps.run_pipeline(
        Pipeline(name="instance-configure", containers=containers),
        object_yaml=OBJECT,
        promise_files=promise_files,
        env=ENV,
        settings=RenderSettings(step_timeout_seconds=timeout),
        native_step=native or no_native,
        sandbox=sandbox,
        runtime=runtime,
    )


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
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "orders-small"},
    }
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


def test_unsandboxed_runs_the_same_script_with_directories_in_variables() -> None:
    result = run(container("configure", "./scripts/configure.sh"), sandbox=steps.UNSANDBOXED)

    expect_configured(result)
    assert result.sandbox == "none" and result.unsandboxed


def test_containers_share_output_and_metadata_in_order(bwrap: str) -> None:
    def native(step: Container, output: Path) -> str | None:
        (output / "from-template.yaml").write_text("kind: ConfigMap\nmetadata: {name: native}\n")
        return None

    first = container(
        "first", "sh", "-c", "echo 'kind: A' > /kratix/output/a.yaml; echo 'phase: one' > /kratix/metadata/status.yaml"
    )
    template = Container(name="render", template="templates")
    second = container(
        "second",
        "sh",
        "-c",
        "set -e; cd /kratix/output; cat a.yaml from-template.yaml > b.yaml; cat /kratix/metadata/status.yaml >> b.yaml",
    )
    result = run(first, template, second, sandbox=bwrap, native=native)

    assert result.error is None
    expected = b"kind: A\nkind: ConfigMap\nmetadata: {name: native}\nphase: one\n"
    assert result.output_files["b.yaml"] == expected
    assert result.sandbox == "bwrap+native"
    assert [name for name, _ in result.step_seconds] == ["first", "render", "second"]


def test_a_failing_container_stops_the_pipeline_with_its_stderr_tail(bwrap: str) -> None:
    failing = container(
        "render",
        "sh",
        "-c",
        'i=0; while [ $i -lt 30 ]; do echo "line $i" >&2; '
        "i=$((i+1)); done; echo 'kind: A' > /kratix/output/a.yaml; exit 3",
    )
    after = container("after", "sh", "-c", "echo ran > /kratix/output/after.yaml")
    result = run(failing, after, sandbox=bwrap)

    assert result.failed_step == "render"
    assert result.error is not None and result.error.startswith("container 'render' exited 3: ")
    assert "line 29" in result.error and "line 10" in result.error and "line 9\n" not in result.error
    assert result.output_files == {} and result.metadata_files == {}  # half a pipeline is never published
    assert [name for name, _ in result.step_seconds] == ["render"]


def test_a_failing_native_step_stops_the_pipeline(bwrap: str) -> None:
    after = container("after", "sh", "-c", "echo ran > /kratix/output/after.yaml")
    result = run(
        Container(name="render", template="t"),
        after,
        sandbox=bwrap,
        native=lambda step, output: "templates/ns.yaml:3: undefined variable 'size'",
    )

    assert (result.failed_step, result.error) == ("render", "templates/ns.yaml:3: undefined variable 'size'")


def test_a_container_that_runs_too_long_is_killed(bwrap: str) -> None:
    started = time.monotonic()
    result = run(container("slow", "sleep", "30"), sandbox=bwrap, timeout=0.3)

    assert (result.failed_step, result.error) == ("slow", "container 'slow' timed out after 0.3s")
    assert time.monotonic() - started < 10


def test_a_timeout_kills_the_whole_process_group_unsandboxed(tmp_path: Path) -> None:
    marker = tmp_path / "still-running"
    script = f"(sleep 1; touch {marker}) & sleep 30"
    result = run(container("slow", "sh", "-c", script), sandbox=steps.UNSANDBOXED, timeout=0.3)

    assert result.error == "container 'slow' timed out after 0.3s"
    time.sleep(1.5)
    assert not marker.exists()


def test_a_step_cannot_write_outside_its_directories(bwrap: str) -> None:
    attempts = {
        "etc": "/etc/kratix-escape",
        "usr": "/usr/kratix-escape",
        "promise": "scripts/configure.sh",
        "input": "/kratix/input/object.yaml",
        "root": "/kratix-escape",
    }
    script = "; ".join(
        f"if echo x >> {target} 2>/dev/null; then echo '{key}: wrote'; else echo '{key}: "
        f"refused'; fi >> /kratix/output/r.yaml"
        for key, target in attempts.items()
    )
    result = run(container("escape", "sh", "-c", script), sandbox=bwrap)

    assert result.error is None
    assert yaml.safe_load(result.output_files["r.yaml"]) == {key: "refused" for key in attempts}
    assert not Path("/etc/kratix-escape").exists() and not Path("/usr/kratix-escape").exists()


def test_the_sandbox_has_no_network_and_a_cleared_environment(bwrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRATIX_TEST_SECRET", "leaked")
    script = (
        "env | sort > /kratix/output/env.txt; "
        "if cat /proc/net/dev | grep -q eth; then echo net > /kratix/output/net.txt; fi"
    )
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
    result = run(
        container("link", "sh", "-c", "ln -s /etc/passwd $KRATIX_OUTPUT/passwd.yaml"), after, sandbox=steps.UNSANDBOXED
    )

    assert result.failed_step == "link"
    assert result.error == "output/passwd.yaml is a symlink; write regular files only"


def test_a_missing_program_is_an_error_of_the_step() -> None:
    result = run(container("missing", "./scripts/absent.sh"), sandbox=steps.UNSANDBOXED)

    assert result.failed_step == "missing"
    assert result.error is not None and "absent.sh" in result.error


def test_promise_files_must_stay_inside_the_promise_folder() -> None:
    with pytest.raises(StepError, match="outside the Promise's folder"):
        run(container("configure", "true"), sandbox=steps.UNSANDBOXED, promise_files={"../../etc/x": b""})


def test_an_image_step_without_a_runtime_names_promise_pipeline_and_container() -> None:
    image_step = container("render", image="ghcr.io/example/render:1")
    with pytest.raises(StepError) as raised:
        steps.run_pipeline(
            Pipeline(name="instance-configure", containers=(image_step,)),
            object_yaml=OBJECT,
            promise_files={},
            env=ENV,
            settings=RenderSettings(container_runtime="no-such-runtime"),
            native_step=lambda step, output: None,
        )

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
    result = run(container("broken", "sh", "-c", "echo 'no size given' >&2; exit 4", image=image), runtime=runtime)

    assert (result.failed_step, result.error) == ("broken", "container 'broken' exited 4: no size given")


def test_a_seed_era_image_writes_to_the_old_paths(busybox: tuple[str, str]) -> None:
    runtime, image = busybox
    script = (
        "cat /input/object.yaml > /output/object.yaml; printf 'pci: \"true\"\\n' > /metadata/cluster-selectors.yaml"
    )
    result = run(container("legacy", "sh", "-c", script, image=image, legacyPaths=True), runtime=runtime)

    assert result.error is None
    assert result.output_files["object.yaml"] == OBJECT
    assert yaml.safe_load(result.metadata_files["destination-selectors.yaml"]) == [{"matchLabels": {"pci": "true"}}]


def test_image_digest_identifies_local_images_only(busybox: tuple[str, str]) -> None:
    runtime, image = busybox
    digest = steps.image_digest(image, runtime)

    assert digest is not None and digest.startswith("sha256:") and len(digest) == len("sha256:") + 64
    assert steps.image_digest("localhost/kratix-no-such-image:0", runtime) is None


def test_an_image_that_runs_too_long_is_stopped_and_removed(busybox: tuple[str, str]) -> None:
    runtime, image = busybox
    result = run(container("slow", "sleep", "30", image=image), runtime=runtime, timeout=1.5)

    assert (result.failed_step, result.error) == ("slow", "container 'slow' timed out after 1.5s")
    listed = subprocess.run(
        [runtime, "ps", "-a", "--format", "{{.Names}} {{.Image}}"], capture_output=True, text=True, check=True
    ).stdout
    assert image not in listed


# --- the sandbox, whichever runs it: bubblewrap, or podman's host-root image where bubblewrap cannot ---------


@pytest.fixture(scope="session", params=["bwrap", "podman"])
def sandbox(request: pytest.FixtureRequest) -> str:
    if request.param == "bwrap":
        return str(request.getfixturevalue("bwrap"))
    if steps.detect_runtime("podman") is None or steps.host_root_image("podman") is None:
        pytest.skip("podman is not installed here, or cannot build its host-root sandbox image")
    return "podman"


def test_a_kratix_script_runs_in_either_sandbox(sandbox: str) -> None:
    result = run(container("configure", "./scripts/configure.sh"), sandbox=sandbox)

    expect_configured(result)
    assert result.sandbox == sandbox and not result.unsandboxed


def test_a_step_sees_nothing_of_its_parent(sandbox: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The parent's environment (also through /proc), files under $HOME and the network are out of reach."""
    monkeypatch.setenv("KRATIX_TEST_TOKEN", "ghs_faketoken0123456789")
    home_file = Path.home() / f".kratix-test-{tmp_path.name}"
    home_file.write_text("home secret\n")
    try:
        script = (
            "out=/kratix/output; env > $out/env.txt; "
            "cat /proc/[0-9]*/environ > $out/proc-environ.txt 2>/dev/null || true; "
            "ls /proc | grep -c '^[0-9]' > $out/processes.txt; "
            f"cat {home_file} > $out/home.txt 2>&1 || true; "
            "cat /proc/net/dev | sed 1,2d | cut -d: -f1 | tr -d ' ' > $out/interfaces.txt"
        )
        result = run(container("probe", "sh", "-c", script), sandbox=sandbox)
    finally:
        home_file.unlink()

    assert result.error is None, result.error
    seen = b"".join(result.output_files.values())
    assert b"ghs_faketoken" not in seen and b"KRATIX_TEST_TOKEN" not in seen
    assert b"home secret" not in seen
    assert result.output_files["interfaces.txt"].split() in ([], [b"lo"])  # loopback at most: no way out
    assert int(result.output_files["processes.txt"]) <= 5  # its own PID namespace: the host's are not there


def test_a_step_cannot_write_outside_its_output(sandbox: str) -> None:
    targets = ["/etc/kratix-escape", "/usr/kratix-escape", "/kratix/promise/x", "/kratix/input/x", "/x"]
    script = "; ".join(f"if touch {t} 2>/dev/null; then echo 'wrote {t}'; fi" for t in targets)
    result = run(container("escape", "sh", "-c", f"({script}) > /kratix/output/r.txt"), sandbox=sandbox)

    assert result.error is None and result.output_files["r.txt"] == b""
    assert not any(Path(t).exists() for t in ("/etc/kratix-escape", "/usr/kratix-escape", "/x"))


def test_a_container_asking_for_a_network_is_refused_when_the_compile_forbids_one() -> None:
    online = container("fetch", "sh", "-c", "true", network=True)
    with pytest.raises(StepError, match=r"'fetch' asks for a network .*--no-step-network"):
        steps.run_pipeline(
            Pipeline(name="instance-configure", containers=(online,)),
            object_yaml=OBJECT,
            promise_files={},
            env=ENV,
            settings=RenderSettings(step_network=False),
            native_step=lambda step, output: None,
            sandbox=steps.UNSANDBOXED,
        )


def test_without_any_sandbox_a_command_step_is_refused_with_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither bwrap nor podman is found
    assert steps.command_sandbox(RenderSettings()) == ""
    with pytest.raises(StepError) as raised:
        run(container("configure", "./scripts/configure.sh"))

    message = str(raised.value)
    assert "'database'" in message and "'configure'" in message and "sandbox" in message
    assert "apt-get install bubblewrap" in message and "apparmor_restrict_unprivileged_userns=0" in message
    assert "--unsandboxed" in message
    assert steps.command_sandbox(RenderSettings(unsandboxed=True)) == steps.UNSANDBOXED


# --- limits ---------------------------------------------------------------------------------------------------


def limited(*containers: Container, sandbox: str, **limits: Any) -> steps.PipelineRun:
    return steps.run_pipeline(
        Pipeline(name="instance-configure", containers=containers),
        object_yaml=OBJECT,
        promise_files={},
        env=ENV,
        settings=RenderSettings(step_timeout_seconds=30, **limits),
        native_step=lambda step, output: None,
        sandbox=sandbox,
    )


def test_a_step_over_its_cpu_time_is_stopped(bwrap: str) -> None:
    result = limited(container("spin", "sh", "-c", "while :; do :; done"), sandbox=bwrap, step_cpu_seconds=1)

    assert result.failed_step == "spin"
    assert result.error is not None and "CPU-time limit" in result.error


def test_a_step_cannot_write_a_file_over_the_output_limit(bwrap: str) -> None:
    result = limited(
        container("big", "sh", "-c", "head -c 200000 /dev/zero > /kratix/output/big.bin"),
        sandbox=bwrap,
        step_output_bytes=100_000,
    )

    assert result.failed_step == "big"
    assert result.error is not None and "file-size limit" in result.error


def test_output_over_the_size_or_file_limits_fails_the_run() -> None:
    many = limited(
        container("many", "sh", "-c", "for i in 1 2 3 4; do : > $KRATIX_OUTPUT/$i.yaml; done"),
        sandbox=steps.UNSANDBOXED,
        step_output_files=3,
    )
    assert many.error == "output/ holds 4 files, more than the limit of 3"
    large = limited(
        container(
            "large", "sh", "-c", "head -c 600 /dev/zero > $KRATIX_OUTPUT/a; head -c 600 /dev/zero > $KRATIX_OUTPUT/b"
        ),
        sandbox=steps.UNSANDBOXED,
        step_output_bytes=1000,
    )
    assert large.error == "output/ holds 1200 bytes, more than the limit of 1000"


# --- file names a step writes ------------------------------------------------------------------------------


DEEP = "/".join(["n" * 250] * 5)


@pytest.mark.parametrize(
    ("script", "shown", "problem"),
    [
        ("printf 'kind: A' > \"$KRATIX_OUTPUT/$(printf 'a\\nb.yaml')\"", "output/a\\nb.yaml", "control character"),
        ("printf 'kind: A' > \"$KRATIX_OUTPUT/$(printf 'a\\rb.yaml')\"", "output/a\\rb.yaml", "control character"),
        ("mkdir -p $KRATIX_OUTPUT/.git && : > $KRATIX_OUTPUT/.git/config", "output/.git/config", ".git component"),
        ("mkdir -p $KRATIX_OUTPUT/x/.GIT && : > $KRATIX_OUTPUT/x/.GIT/c", "output/x/.GIT/c", ".git component"),
        ("printf 'kind: A' > \"$KRATIX_OUTPUT/$(printf 'caf\\351.yaml')\"", "output/caf\\xe9.yaml", "not valid UTF-8"),
        (f"d=$KRATIX_OUTPUT/{DEEP} && mkdir -p $d && : > $d/f", f"output/{DEEP}/f", "longer than 1024 bytes"),
    ],
    ids=["newline", "carriage-return", "dot-git", "dot-git-upper", "latin-1", "too-long"],
)
def test_a_file_name_the_output_repo_cannot_hold_fails_the_run_naming_it(script: str, shown: str, problem: str) -> None:
    result = run(container("names", "sh", "-c", script), sandbox=steps.UNSANDBOXED)

    assert result.failed_step == "names"
    assert result.error is not None and result.error.startswith(f"{shown}: the file name ")
    assert problem in result.error and "\n" not in result.error and "\r" not in result.error


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("a/b.yaml", True),
        ("ünïcode/ok.yaml", True),
        ("a/../b", False),
        ("/abs", False),
        ("a//b", False),
        ("a\tb", False),
        ("a\x7fb", False),
        ("x/.git", False),
        (".gitignore", True),
        ("a/" * 600 + "b", False),
    ],
)
def test_path_problem(name: str, ok: bool) -> None:
    assert (names.relative_path(name) is None) is ok


# --- images ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "pulled"),
    [
        ("postgres", "docker.io/library/postgres"),
        ("postgres:16", "docker.io/library/postgres:16"),
        ("bitnami/postgresql:16", "docker.io/bitnami/postgresql:16"),
        ("docker.io/busybox", "docker.io/library/busybox"),
        ("ghcr.io/syntasso/kratix-pipeline-utility:v0.0.1", "ghcr.io/syntasso/kratix-pipeline-utility:v0.0.1"),
        ("localhost/kratix-test-busybox:1", "localhost/kratix-test-busybox:1"),
        ("registry:5000/team/app", "registry:5000/team/app"),
        ("postgres@sha256:" + "a" * 64, "docker.io/library/postgres@sha256:" + "a" * 64),
    ],
)
def test_image_names_resolve_as_kubernetes_does(given: str, pulled: str) -> None:
    assert steps.qualified_image(given) == pulled


def test_an_image_runs_confined_and_is_recorded_by_content_id(busybox: tuple[str, str]) -> None:
    runtime, image = busybox
    script = (
        "out=/kratix/output; if touch /probe 2>/dev/null; then echo root-writable > $out/root.txt; fi; "
        "grep CapEff /proc/self/status > $out/caps.txt; "
        "cat /proc/net/dev | sed 1,2d | cut -d: -f1 | tr -d ' ' > $out/interfaces.txt"
    )
    result = run(container("probe", "sh", "-c", script, image=image), runtime=runtime)

    assert result.error is None, result.error
    assert "root.txt" not in result.output_files
    assert result.output_files["caps.txt"].split()[1].strip(b"0") == b""  # no capability at all
    assert result.output_files["interfaces.txt"].split() in ([], [b"lo"])
    assert result.images == ((image, steps.image_digest(image, runtime)),)
