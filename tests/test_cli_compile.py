"""`kratix validate` / `compile --out` / `schema` end to end through the CLI on real files and Git repos."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.gitrepos import commit_files, make_repo
from tests.platforms import CONFIGMAP_TEMPLATE, PROMISE, database, destination, kratix, platform_files, write_files

REQUEST_DIR = "dev-{}/resources/team-a/database/{}/instance"


def compile_to(tmp_path: Path, files: dict[str, str], *extra: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    root = write_files(tmp_path / "platform", files)
    out = tmp_path / "out"
    return kratix("compile", str(root), "--out", str(out), *extra), out


def read_yaml_all(path: Path) -> list[dict]:
    return list(yaml.safe_load_all(path.read_text()))


def placed_on(out: Path, namespace: str, name: str) -> str:
    status = yaml.safe_load((out / f".kratix/status/{namespace}/database/{name}.yaml").read_text())
    [placement] = status["status"]["placements"]
    return placement["destination"]


def test_compile_renders_requests_with_defaults_labels_and_status(tmp_path: Path) -> None:
    result, out = compile_to(tmp_path, platform_files(**{"team-a/orders": database("orders", replicas=2)}))
    assert result.returncode == 0, result.stderr
    assert "1 placed, 0 pending" in result.stderr
    where = placed_on(out, "team-a", "orders")
    assert where in ("dev-1", "dev-2")
    folder = out / where / "resources/team-a/database/orders/instance"
    [configmap] = read_yaml_all(folder / "configmap.yaml")
    assert configmap["data"] == {"size": "small", "note": ""}  # defaults applied
    assert configmap["metadata"]["labels"] == {
        "kratix.io/promise-name": "database",
        "kratix.io/resource-name": "orders",
        "kratix.io/pipeline-name": "instance",
        "kratix.io/work-type": "resource",
        "app.kubernetes.io/managed-by": "kratix",
    }
    [deployment] = read_yaml_all(folder / "deployment.yaml")
    assert deployment["spec"]["replicas"] == 2
    status = yaml.safe_load((out / ".kratix/status/team-a/database/orders.yaml").read_text())["status"]
    assert status["message"] == "Resource requested"
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "ConfigureWorkflowCompleted": "True",
        "WorksSucceeded": "True",
        "Reconciled": "True",
    }
    # dependencies go to every destination matching the Promise (env=dev), not to prod
    for dev in ("dev-1", "dev-2"):
        [namespace] = read_yaml_all(out / dev / "dependencies/database/static/dependencies.yaml")
        assert namespace["metadata"]["name"] == "db-operator"
    assert not (out / "prod-1/dependencies/database").exists()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_every_destination_area_builds_with_kubectl_kustomize(tmp_path: Path) -> None:
    requests = {f"team-{i % 2}/db-{i}": database(f"db-{i}") for i in range(6)}
    result, out = compile_to(tmp_path, platform_files(**requests))
    assert result.returncode == 0, result.stderr
    built_names = set()
    for name in ("dev-1", "dev-2", "prod-1"):
        for area in ("dependencies", "resources"):
            built = subprocess.run(["kubectl", "kustomize", str(out / name / area)], capture_output=True, text=True)
            assert built.returncode == 0, built.stderr
            built_names |= {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(built.stdout) if d}
    assert {("Deployment", f"db-{i}") for i in range(6)} <= built_names
    assert {("Namespace", "team-0"), ("Namespace", "team-1")} <= built_names  # request namespaces exist


def test_same_input_gives_byte_identical_output(tmp_path: Path) -> None:
    files = platform_files(**{f"team-a/db-{i}": database(f"db-{i}", note="on") for i in range(5)})
    first, out_one = compile_to(tmp_path / "one", files)
    second, out_two = compile_to(tmp_path / "two", files)
    assert first.returncode == second.returncode == 0
    tree_one = {p.relative_to(out_one): p.read_bytes() for p in out_one.rglob("*") if p.is_file()}
    tree_two = {p.relative_to(out_two): p.read_bytes() for p in out_two.rglob("*") if p.is_file()}
    assert tree_one == tree_two
    assert b"note: 'on'" in next(v for k, v in tree_one.items() if k.name == "configmap.yaml")


def test_ref_reads_the_commit_not_the_work_tree(tmp_path: Path) -> None:
    repo, first = make_repo(tmp_path / "platform", platform_files(**{"team-a/orders": database("orders")}))
    commit_files(repo, {"requests/team-a/orders.yaml": database("orders", replicas=3)})
    (repo / "requests/team-a/orders.yaml").write_text(database("orders", replicas=5))  # uncommitted
    (repo / "requests/team-a/scratch.yaml").write_text("not: [valid")  # untracked and broken
    out = tmp_path / "out"
    result = kratix("compile", str(repo), "--ref", first, "--out", str(out))
    assert result.returncode == 0, result.stderr
    deployment = next(out.glob("*/resources/team-a/database/orders/instance/deployment.yaml"))
    assert yaml.safe_load(deployment.read_text())["spec"]["replicas"] == 1
    result = kratix("compile", str(repo), "--ref", "HEAD", "--out", str(out))
    assert (
        yaml.safe_load(next(out.glob("*/resources/team-a/*/orders/instance/deployment.yaml")).read_text())["spec"][
            "replicas"
        ]
        == 3
    )
    unknown = kratix("validate", str(repo), "--ref", "no-such-branch")
    assert unknown.returncode == 1 and "no-such-branch" in unknown.stderr


def test_one_invalid_request_fails_alone_with_file_line_and_field(tmp_path: Path) -> None:
    files = platform_files(**{"team-a/good": database("good"), "team-a/bad": database("bad", size="huge", replicas=0)})
    result, out = compile_to(tmp_path, files)
    assert result.returncode == 1
    assert "requests/team-a/bad.yaml:6:3: spec.size: must be one of: small, large" in result.stderr
    assert "requests/team-a/bad.yaml:7:3: spec.replicas:" in result.stderr
    assert "1 placed, 0 pending, 1 failed" in result.stderr
    assert list(out.glob("*/resources/team-a/database/good/instance/deployment.yaml"))
    assert not list(out.glob("*/resources/team-a/database/bad"))
    status = yaml.safe_load((out / ".kratix/status/team-a/database/bad.yaml").read_text())["status"]
    assert status["message"].startswith("Failed")
    assert "spec.size" in {c["type"]: c for c in status["conditions"]}["Reconciled"]["message"]


def test_cel_rule_message_is_reported(tmp_path: Path) -> None:
    result, _ = compile_to(tmp_path, platform_files(**{"team-a/big": database("big", size="large")}))
    assert result.returncode == 1
    assert "requests/team-a/big.yaml" in result.stderr
    assert "large databases need at least 2 replicas" in result.stderr


BROKEN_INPUTS = {
    "unknown kind": (
        {"requests/team-a/x.yaml": "apiVersion: example.io/v1\nkind: Cache\nmetadata:\n  name: x\n"},
        "requests/team-a/x.yaml:2:1: kind: no Promise serves Cache",
    ),
    "yaml syntax": (
        {"requests/team-a/x.yaml": "apiVersion: example.io/v1\nkind: [Database\n"},
        "requests/team-a/x.yaml:3:1: YAML syntax error",
    ),
    "not an object": (
        {"requests/team-a/x.yaml": "- a\n- b\n"},
        "requests/team-a/x.yaml:1:1: document 1 is a list, not a Kubernetes object",
    ),
    "namespace differs from folder": (
        {"requests/team-a/x.yaml": database("x").replace("name: x", "name: x\n  namespace: team-b")},
        "requests/team-a/x.yaml:5:3: metadata.namespace: namespace 'team-b' differs from its folder",
    ),
    "duplicate request": (
        {"requests/team-a/one.yaml": database("same"), "requests/team-a/two.yaml": database("same")},
        "requests/team-a/two.yaml:4:3: metadata.name: Database team-a/same is already requested",
    ),
    "name too long": (
        {"requests/team-a/x.yaml": database("x" * 64)},
        "requests/team-a/x.yaml:4:3: metadata.name: must be at most 63 characters",
    ),
    "duplicate destination": (
        {"clusters/zz-again.yaml": destination("dev-1", {"env": "dev"})},
        "clusters/zz-again.yaml:4:3: metadata.name: Destination 'dev-1' is already defined",
    ),
    "duplicate destination path": (
        {"clusters/zz-again.yaml": destination("dev-9", {"env": "dev"}).replace("path: dev-9", "path: dev-1")},
        "clusters/zz-again.yaml:8:3: spec.path: path 'dev-1' is already used",
    ),
    "duplicate promise name": (
        {
            "promises/again/promise.yaml": PROMISE.replace("databases.example.io", "things.example.io"),
            "promises/again/templates/configmap.yaml.j2": CONFIGMAP_TEMPLATE,
        },
        "promises/database/promise.yaml:4:3: metadata.name: Promise 'database' is already "
        "defined at promises/again/promise.yaml:1",
    ),
    "duplicate promise api": (
        {
            "promises/zz/promise.yaml": PROMISE.replace("name: database", "name: other"),
            "promises/zz/templates/configmap.yaml.j2": CONFIGMAP_TEMPLATE,
        },
        "promises/zz/promise.yaml:16:3: spec.api: kind Database of group example.io is already "
        "served by Promise 'database'",
    ),
    "unknown field": (
        {"requests/team-a/x.yaml": database("x").replace("spec:", "spec:\n  sise: big")},
        'requests/team-a/x.yaml:6:3: spec.sise: unknown field "sise"',
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_INPUTS))
def test_bad_input_is_reported_with_its_location(tmp_path: Path, case: str) -> None:
    extra, expected = BROKEN_INPUTS[case]
    root = write_files(tmp_path / "platform", {**platform_files(), **extra})
    result = kratix("validate", str(root))
    assert result.returncode == 1, result.stderr
    assert expected in result.stderr


def test_a_cluster_scoped_promise_api_is_refused(tmp_path: Path) -> None:
    files = platform_files(**{"team-a/x": database("x")})
    files["promises/database/promise.yaml"] = files["promises/database/promise.yaml"].replace(
        "scope: Namespaced", "scope: Cluster"
    )
    result = kratix("validate", str(write_files(tmp_path / "p", files)))
    assert result.returncode == 1
    assert "promises/database/promise.yaml" in result.stderr and "Namespaced" in result.stderr
    assert "0 placed, 1 pending" in result.stderr  # its requests wait; they are not failed


def test_a_template_error_names_the_template_and_fails_that_request(tmp_path: Path) -> None:
    files = platform_files(**{"team-a/x": database("x")})
    files["promises/database/templates/configmap.yaml.j2"] += "  broken: {{ request.spec.nothing }}\n"
    result, out = compile_to(tmp_path, files)
    assert result.returncode == 1
    assert "promises/database/templates/configmap.yaml.j2:9:1:" in result.stderr
    assert "instance/render" in result.stderr
    status = yaml.safe_load((out / ".kratix/status/team-a/database/x.yaml").read_text())["status"]
    assert "PipelineFailed" in json.dumps(status)


def test_no_matching_destination_leaves_the_request_pending(tmp_path: Path) -> None:
    files = platform_files(**{"team-a/x": database("x")})
    for name in ("dev-1", "dev-2"):
        files[f"clusters/{name}.yaml"] = destination(name, {"env": "staging"})
    result, out = compile_to(tmp_path, files)
    assert result.returncode == 0, result.stderr  # pending is a state, not an error
    status = yaml.safe_load((out / ".kratix/status/team-a/database/x.yaml").read_text())["status"]
    assert status["message"] == "Pending"
    assert "no destination matches env=dev" in status["placements"][0]["reason"]


def test_strict_destinations_take_nothing_from_an_empty_selector(tmp_path: Path) -> None:
    files = platform_files(**{"team-a/x": database("x")})
    files["promises/database/promise.yaml"] = files["promises/database/promise.yaml"].replace(
        "  destinationSelectors:\n    - matchLabels:\n        env: dev\n", ""
    )
    files["clusters/dev-1.yaml"] = destination("dev-1", {"env": "dev"}, strict=True)
    files["clusters/dev-2.yaml"] = destination("dev-2", {"env": "dev"}, strict=True)
    result, out = compile_to(tmp_path, files)
    assert result.returncode == 0, result.stderr
    assert placed_on(out, "team-a", "x") == "prod-1"
    assert not (out / "dev-1/dependencies/database").exists()


def test_json_format_and_github_annotations(tmp_path: Path) -> None:
    root = write_files(tmp_path / "p", platform_files(**{"team-a/bad": database("bad", replicas=9)}))
    result = kratix("validate", str(root), "--format", "json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    [problem] = [d for d in report["diagnostics"] if d["severity"] == "error"]
    assert (problem["file"], problem["line"], problem["path"]) == ("requests/team-a/bad.yaml", 6, "spec.replicas")
    annotated = kratix("validate", str(root), env={"GITHUB_ACTIONS": "true"})
    assert "::error file=requests/team-a/bad.yaml,line=6,col=3,title=schema.maximum::spec.replicas" in annotated.stderr


def test_out_refuses_a_directory_it_did_not_write(tmp_path: Path) -> None:
    root = write_files(tmp_path / "p", platform_files())
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    result = kratix("compile", str(root), "--out", str(precious))
    assert result.returncode == 1 and "not written by kratix" in result.stderr
    assert (precious / "notes.txt").read_text() == "keep me"


def test_schema_command_prints_an_editor_schema(tmp_path: Path) -> None:
    root = write_files(tmp_path / "p", platform_files())
    result = kratix("schema", "database", str(root))
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    spec = document["properties"]["spec"]["properties"]
    assert spec["size"]["enum"] == ["small", "large"]
    out = tmp_path / "schemas"
    assert kratix("schema", "--all", "--out", str(out), str(root)).returncode == 0
    assert json.loads((out / "database.schema.json").read_text()) == document
    missing = kratix("schema", "nope", str(root))
    assert missing.returncode == 1 and "no Promise named 'nope'" in missing.stderr
    assert kratix("schema").returncode == 2  # neither a PROMISE nor --all


@pytest.mark.skipif(shutil.which("script") is None, reason="script(1) is needed to give the CLI a terminal")
def test_progress_shows_on_a_terminal_only(tmp_path: Path) -> None:
    import shlex
    import sys

    root = write_files(tmp_path / "p", platform_files(**{f"team-a/db-{i}": database(f"db-{i}") for i in range(3)}))
    command = shlex.join([sys.executable, "-m", "kratix.cli", "compile", str(root)])
    on_terminal = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, timeout=120)
    assert on_terminal.returncode == 0, on_terminal.stdout
    assert "rendering requests: 0/3" in on_terminal.stdout  # script(1) merges the terminal's output
    piped = kratix("compile", str(root))
    assert "rendering requests" not in piped.stderr
    quiet = subprocess.run(
        ["script", "-qec", command + " --quiet", "/dev/null"], capture_output=True, text=True, timeout=120
    )
    assert "rendering requests" not in quiet.stdout


def test_a_failing_pipeline_is_named_in_the_phase_list(tmp_path: Path) -> None:
    files = platform_files(**{"team-a/x": database("x")})
    files["promises/database/templates/configmap.yaml.j2"] = "{{ request.spec.missing }}\n"
    result, out = compile_to(tmp_path, files)
    assert result.returncode == 1
    status = yaml.safe_load((out / ".kratix/status/team-a/database/x.yaml").read_text())["status"]
    [phase] = status["pipelines"]
    assert (phase["name"], phase["phase"]) == ("instance", "Failed")
    assert "missing" in phase["message"]


def test_unsupported_kratix_settings_are_said_not_silently_ignored(tmp_path: Path) -> None:
    files = platform_files(**{"team-a/x": database("x")})
    files["promises/database/promise.yaml"] = files["promises/database/promise.yaml"].replace(
        "    resource:\n      configure:",
        "    resource:\n      delete: [{apiVersion: platform.kratix.io/v1alpha1,"
        " kind: Pipeline, metadata: {name: cleanup}, spec: {containers: [{name: c, image: busybox}]}}]\n"
        "      configure:",
    )
    result = kratix("validate", str(write_files(tmp_path / "p", files)))
    assert result.returncode == 0, result.stderr
    assert "info: spec.workflows.resource.delete: delete workflows do not run here" in result.stderr
