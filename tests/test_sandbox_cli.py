"""A Promise's command steps are someone else's code: through the CLI, on real Git repos, a step that reaches
for its parent's environment, a file under $HOME, the network, another pipeline's files, or a path outside its
output fails inside the sandbox, and the compile says which step failed while other requests still publish.
The same compile with `--unsandboxed` shows each attempt would have worked (so the sandbox is what stopped it),
and says so in the summary and in provenance. With no sandbox at all, a command step does not run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from tests.gitrepos import git, init_repo, make_repo
from tests.platforms import crd, database, destination, kratix, platform_files
from tests.sandboxes import require_command_sandbox

TOKEN = "ghp_kratixFakeToken0123456789"

PROBE = """\
set -eu
attempt=$(sed -n 's/^  attempt: *//p' "$KRATIX_INPUT/object.yaml")
target=$(sed -n 's/^  target: *//p' "$KRATIX_INPUT/object.yaml")
case "$attempt" in
  environment) grep -a -l -s KRATIX_TEST_TOKEN /proc/[0-9]*/environ > "$KRATIX_OUTPUT/leak.txt" || true
               test -s "$KRATIX_OUTPUT/leak.txt" ;;
  home) cat "$target" > "$KRATIX_OUTPUT/leak.txt" ;;
  network) sed 1,2d /proc/net/dev | cut -d: -f1 | tr -d ' ' | grep -v '^lo$' > "$KRATIX_OUTPUT/leak.txt" ;;
  pipelines) set -- "$target"/kratix-pipeline-*  # names seen are leaked, even if they are gone a moment later
             [ "$1" != "$target/kratix-pipeline-*" ] || exit 1
             echo "$@" > "$KRATIX_OUTPUT/leak.txt" ;;
  write) echo escaped > "$target" ;;
esac
cat > "$KRATIX_OUTPUT/configmap.yaml" <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: $KRATIX_OBJECT_NAME
  namespace: $KRATIX_OBJECT_NAMESPACE
data:
  reached: "$attempt"
YAML
"""

ATTEMPTS = ("environment", "home", "network", "pipelines", "write")


def probe_promise() -> str:
    api = crd(
        "example.io",
        "Probe",
        "v1",
        {"attempt": {"type": "string", "enum": list(ATTEMPTS)}, "target": {"type": "string", "default": "none"}},
    )
    pipeline = {
        "apiVersion": "platform.kratix.io/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": "probe"},
        "spec": {"containers": [{"name": "reach", "command": ["sh", "scripts/probe.sh"]}]},
    }
    return yaml.safe_dump(
        {
            "apiVersion": "platform.kratix.io/v1alpha1",
            "kind": "Promise",
            "metadata": {"name": "probe"},
            "spec": {
                "api": api,
                "destinationSelectors": [{"matchLabels": {"env": "dev"}}],
                "workflows": {"resource": {"configure": [pipeline]}},
            },
        },
        sort_keys=False,
    )


def probe(attempt: str, target: str = "none") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "example.io/v1",
            "kind": "Probe",
            "metadata": {"name": attempt},
            "spec": {"attempt": attempt, "target": target},
        },
        sort_keys=False,
    )


@pytest.fixture
def platform(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    work = tmp_path / "steps-tmp"
    work.mkdir()
    places = {
        "home": Path.home() / f".kratix-test-credentials-{os.getpid()}-{tmp_path.name}",
        "pipelines": work,
        "write": tmp_path / "escaped.txt",
    }
    files = platform_files(**{"team-a/db": database("db")})
    files["clusters/dev-1.yaml"] = destination("dev-1", {"env": "dev"})
    files["promises/probe/promise.yaml"] = probe_promise()
    files["promises/probe/scripts/probe.sh"] = PROBE
    for attempt in ATTEMPTS:
        files[f"requests/team-b/{attempt}.yaml"] = probe(attempt, str(places.get(attempt, "none")))
    repo, _ = make_repo(tmp_path / "platform", files)
    places["home"].write_text("aws_secret_access_key = fake\n")
    yield repo, places
    places["home"].unlink()


def compile_to(repo: Path, output: Path, *extra: str, env: dict[str, str]) -> tuple[int, str, dict[str, str]]:
    result = kratix("compile", str(repo), "--ref", "HEAD", "--output-repo", str(output), *extra, env=env)
    files = {p: git(output, "show", f"main:{p}") for p in git(output, "ls-tree", "-r", "--name-only", "main").split()}
    return result.returncode, result.stderr, files


def published(files: dict[str, str], path: str) -> bool:
    """Whether `path` (below `<destination>/resources/`) is on some destination."""
    return any(p.endswith(f"/resources/{path}") for p in files)


def status(files: dict[str, str], namespace: str, promise: str, name: str) -> dict:
    return yaml.safe_load(files[f".kratix/status/{namespace}/{promise}/{name}.yaml"])["status"]


def test_every_reach_out_of_the_sandbox_fails_the_step_and_nothing_else(
    tmp_path: Path, platform: tuple[Path, dict[str, Path]]
) -> None:
    require_command_sandbox()
    repo, places = platform
    env = {"KRATIX_TEST_TOKEN": TOKEN, "TMPDIR": str(places["pipelines"])}
    code, stderr, files = compile_to(repo, init_repo(tmp_path / "out.git", bare=True), env=env)

    assert code == 1, stderr
    for attempt in ATTEMPTS:
        state = status(files, "team-b", "probe", attempt)
        assert state["message"] == "Failed: pipeline step probe/reach failed", (attempt, state)
        assert [(p["name"], p["phase"]) for p in state["pipelines"]] == [("probe", "Failed")]
        assert state["pipelines"][0]["message"].startswith("container 'reach' exited "), state
        assert f"Probe team-b/{attempt}" in stderr
    assert not places["write"].exists()
    assert not [p for p in files if "/resources/team-b/" in p]
    everything = "\n".join(files.values())
    assert TOKEN not in everything and "aws_secret_access_key" not in everything
    # the other tenant's request published
    assert published(files, "team-a/database/db/instance/configmap.yaml")
    assert status(files, "team-a", "database", "db")["message"] == "Resource requested"


def test_unsandboxed_each_attempt_works_and_the_summary_and_provenance_say_so(
    tmp_path: Path, platform: tuple[Path, dict[str, Path]]
) -> None:
    repo, places = platform
    env = {"KRATIX_TEST_TOKEN": TOKEN, "TMPDIR": str(places["pipelines"])}
    code, stderr, files = compile_to(repo, init_repo(tmp_path / "out.git", bare=True), "--unsandboxed", env=env)

    # Without a sandbox the same steps reach all of it (the network: where the machine has an interface).
    reached = {a for a in ATTEMPTS if published(files, f"team-b/probe/{a}/probe/configmap.yaml")}
    assert reached >= {"environment", "home", "pipelines", "write"}, stderr
    assert places["write"].read_text() == "escaped\n"
    assert "UNSANDBOXED" in stderr and "Probe team-b/home" in stderr
    entries = {
        e["path"].split("/resources/")[-1]: e
        for path, text in files.items()
        if path.startswith(".kratix/provenance/")
        for e in map(json.loads, text.splitlines())
        if "path" in e
    }
    assert entries["team-b/probe/home/probe/configmap.yaml"]["sandbox"] == "none"
    assert "sandbox" not in entries["team-a/database/db/instance/configmap.yaml"]


def path_without_sandboxes(tmp_path: Path) -> str:
    """A PATH with everything of this machine's but bubblewrap, podman and docker."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for directory in (Path("/usr/bin"), Path("/bin"), Path(sys.executable).parent):
        for program in directory.iterdir() if directory.is_dir() else ():
            link = folder / program.name
            if program.name not in ("bwrap", "podman", "docker") and not link.exists():
                link.symlink_to(program)
    return str(folder)


def test_with_no_sandbox_a_command_step_fails_its_request_alone_and_says_how_to_get_one(
    tmp_path: Path, platform: tuple[Path, dict[str, Path]]
) -> None:
    repo, places = platform
    env = {"PATH": path_without_sandboxes(tmp_path), "TMPDIR": str(places["pipelines"]), "KRATIX_TEST_TOKEN": TOKEN}
    output = init_repo(tmp_path / "out.git", bare=True)
    code, stderr, files = compile_to(repo, output, env=env)

    assert code == 1
    message = json.dumps(status(files, "team-b", "probe", "write"))
    assert "sandbox" in message and "apt-get install bubblewrap" in message
    assert "kernel.apparmor_restrict_unprivileged_userns=0" in message and "--unsandboxed" in message
    assert "apt-get install bubblewrap" in stderr
    assert not places["write"].exists()  # nothing ran
    assert published(files, "team-a/database/db/instance/configmap.yaml")

    code, stderr, files = compile_to(repo, output, env={**env, "KRATIX_UNSANDBOXED": "1"})
    assert code == 0, stderr
    assert places["write"].read_text() == "escaped\n"
    assert "UNSANDBOXED" in stderr


BAD_NAME = """\
set -eu
printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: x}\\n' > "$KRATIX_OUTPUT/$(printf 'evil\\nname.yaml')"
"""


def test_a_file_name_the_output_repo_cannot_hold_fails_its_request_and_others_publish(tmp_path: Path) -> None:
    require_command_sandbox()
    files = platform_files(**{"team-a/db": database("db")})
    files["promises/probe/promise.yaml"] = probe_promise()
    files["promises/probe/scripts/probe.sh"] = BAD_NAME
    files["requests/team-b/names.yaml"] = probe("write")
    repo, _ = make_repo(tmp_path / "platform", files)
    code, stderr, published_files = compile_to(repo, init_repo(tmp_path / "out.git", bare=True), env={})

    assert code == 1
    assert "output/evil\\nname.yaml: the file name holds a control character" in stderr
    state = json.dumps(status(published_files, "team-b", "probe", "write"))
    assert "evil" in state and "control character" in state
    assert published(published_files, "team-a/database/db/instance/configmap.yaml")
