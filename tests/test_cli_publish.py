"""`kratix compile --output-repo`, `plan`, `explain` and `bootstrap` end to end on real Git repos."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.gitrepos import commit_files, files_at, git, init_repo, make_repo
from tests.platforms import database, destination, kratix, platform_files

STATUS = ".kratix/status/team-a/database/{}.yaml"


def show(repo: Path, path: str, ref: str = "main") -> str:
    return git(repo, "show", f"{ref}:{path}")


def files_on(repo: Path, ref: str = "main") -> list[str]:
    return git(repo, "ls-tree", "-r", "--name-only", ref).split()


def commits(repo: Path, ref: str = "main") -> list[str]:
    return git(repo, "rev-list", ref).split()


def status_of(repo: Path, name: str) -> dict:
    return yaml.safe_load(show(repo, STATUS.format(name)))["status"]


@pytest.fixture
def platform(tmp_path: Path) -> Path:
    repo, _ = make_repo(
        tmp_path / "platform", platform_files(**{f"team-a/db-{i}": database(f"db-{i}") for i in range(5)})
    )
    return repo


@pytest.fixture
def output(tmp_path: Path) -> Path:
    return init_repo(tmp_path / "output.git", bare=True)


def publish(platform: Path, output: Path, *extra: str, ref: str = "HEAD") -> subprocess.CompletedProcess[str]:
    return kratix("compile", str(platform), "--ref", ref, "--output-repo", str(output), *extra)


def test_one_commit_per_change_and_none_when_up_to_date(platform: Path, output: Path) -> None:
    first = publish(platform, output)
    assert first.returncode == 0, first.stderr
    assert "published" in first.stderr
    assert len(commits(output)) == 1
    message = git(output, "log", "-1", "--format=%B", "main")
    assert f"Source-Commit: {git(platform, 'rev-parse', 'HEAD').strip()}" in message
    again = publish(platform, output)
    assert again.returncode == 0 and "up to date" in again.stderr
    assert len(commits(output)) == 1
    # a commit to the platform repo that changes no output makes no output commit either
    commit_files(platform, {"README.md": "docs only\n"})
    assert "up to date" in publish(platform, output).stderr
    commit_files(platform, {"requests/team-a/db-0.yaml": database("db-0", replicas=3)})
    changed = publish(platform, output)
    assert "published" in changed.stderr
    assert len(commits(output)) == 2
    changed_files = git(output, "diff", "--name-only", "main~1", "main").split()
    where = status_of(output, "db-0")["placements"][0]["destination"]
    assert [f for f in changed_files if not f.startswith(".kratix/")] == [
        f"{where}/resources/team-a/database/db-0/instance/deployment.yaml"
    ]
    # the bookkeeping a small change rewrites is small too: its own status and the shards it touches
    assert [f for f in changed_files if f.startswith(".kratix/")] == [
        ".kratix/cache/team-a.jsonl",
        f".kratix/provenance/{where}.jsonl",
        ".kratix/status/team-a/database/db-0.yaml",
    ]
    assert subprocess.run(["git", "-C", str(output), "fsck", "--strict"], capture_output=True).returncode == 0


def test_a_local_output_path_is_created_as_a_repo(platform: Path, tmp_path: Path) -> None:
    target = tmp_path / "state"
    result = kratix("compile", str(platform), "--output-repo", str(target))
    assert result.returncode == 0, result.stderr
    assert any(f.endswith("deployment.yaml") for f in files_on(target))


def test_explain_names_promise_request_pipeline_template_and_commit(platform: Path, output: Path) -> None:
    publish(platform, output)
    where = status_of(output, "db-1")["placements"][0]["destination"]
    path = f"{where}/resources/team-a/database/db-1/instance/configmap.yaml"
    result = kratix("explain", path, "--output-repo", str(output))
    assert result.returncode == 0, result.stderr
    head = git(platform, "rev-parse", "HEAD").strip()
    for expected in (
        "Database team-a/db-1",
        "promise:      database",
        "pipeline:     instance",
        "promises/database/templates/configmap.yaml.j2",
        head,
        "ConfigMap/team-a/db-1-config",
        "Resource requested",
    ):
        assert expected in result.stdout
    missing = kratix("explain", "nope.yaml", "--output-repo", str(output))
    assert missing.returncode == 1 and "not in the output" in missing.stderr


def test_placements_are_sticky_when_a_destination_is_added_or_relabelled(platform: Path, output: Path) -> None:
    publish(platform, output)
    before = {f"db-{i}": status_of(output, f"db-{i}")["placements"][0]["destination"] for i in range(5)}
    commit_files(platform, {f"clusters/dev-{n}.yaml": destination(f"dev-{n}", {"env": "dev"}) for n in (3, 4, 5)})
    assert publish(platform, output).returncode == 0
    after = {f"db-{i}": status_of(output, f"db-{i}")["placements"][0]["destination"] for i in range(5)}
    assert after == before
    # relabel the destination holding db-0: its requests stay put and say they are misplaced
    holder = before["db-0"]
    commit_files(platform, {f"clusters/{holder}.yaml": destination(holder, {"env": "retired"})})
    result = publish(platform, output, "--allow-deletions")  # the Promise's dependencies leave that cluster
    assert result.returncode == 0, result.stderr
    status = status_of(output, "db-0")
    assert status["placements"][0]["destination"] == holder
    assert status["placements"][0]["state"] == "misplaced"
    assert "no longer matches env=dev" in status["placements"][0]["reason"]
    assert f"{holder}/resources/team-a/database/db-0/instance/deployment.yaml" in files_on(output)


def test_a_broken_request_keeps_its_last_published_output(platform: Path, output: Path) -> None:
    publish(platform, output)
    where = status_of(output, "db-2")["placements"][0]["destination"]
    deployment = f"{where}/resources/team-a/database/db-2/instance/deployment.yaml"
    published = show(output, deployment)
    commit_files(
        platform,
        {
            "requests/team-a/db-2.yaml": database("db-2", replicas=99),
            "requests/team-a/db-3.yaml": database("db-3", replicas=2),
        },
    )
    result = publish(platform, output)
    assert result.returncode == 1  # the failure is reported...
    assert "requests/team-a/db-2.yaml" in result.stderr and "spec.replicas" in result.stderr
    assert show(output, deployment) == published  # ...and what runs stays
    status = status_of(output, "db-2")
    assert status["message"].startswith("Failed")
    assert "spec.replicas" in {c["type"]: c for c in status["conditions"]}["Reconciled"]["message"]
    where_3 = status_of(output, "db-3")["placements"][0]["destination"]
    assert "replicas: 2" in show(output, f"{where_3}/resources/team-a/database/db-3/instance/deployment.yaml")
    # a broken template keeps every request's output too
    commit_files(
        platform,
        {
            "requests/team-a/db-2.yaml": database("db-2"),
            "promises/database/templates/configmap.yaml.j2": "{{ nope }}\n",
        },
    )
    publish(platform, output)
    assert show(output, deployment) == published


def test_the_deletion_guard_refuses_mass_deletions_unless_allowed(platform: Path, output: Path) -> None:
    publish(platform, output)
    head = commits(output)[0]
    commit_files(platform, {}, remove=[f"requests/team-a/db-{i}.yaml" for i in range(4)])
    refused = publish(platform, output)
    assert refused.returncode == 1
    assert "mass-deletion guard" in refused.stderr and "--allow-deletions" in refused.stderr
    assert "Deployment.apps/team-a/db-0" in refused.stderr
    assert commits(output)[0] == head
    allowed = publish(platform, output, "--allow-deletions")
    assert allowed.returncode == 0, allowed.stderr
    remaining = [f for f in files_on(output) if "/resources/team-a/database/" in f]
    assert {f.split("/")[4] for f in remaining} == {"db-4"}
    assert not any(f.startswith(".kratix/status/team-a/database/db-0") for f in files_on(output))


def test_deleting_one_request_of_many_needs_no_override(tmp_path: Path, output: Path) -> None:
    repo, _ = make_repo(tmp_path / "big", platform_files(**{f"team-a/db-{i}": database(f"db-{i}") for i in range(12)}))
    publish(repo, output)
    commit_files(repo, {}, remove=["requests/team-a/db-0.yaml"])
    result = publish(repo, output)
    assert result.returncode == 0, result.stderr
    assert not [f for f in files_on(output) if "/database/db-0/" in f]


def test_plan_shows_changes_diffs_placements_and_risks(platform: Path, output: Path) -> None:
    publish(platform, output)
    git(platform, "checkout", "-q", "-b", "change")
    commit_files(
        platform,
        {"requests/team-a/db-1.yaml": database("db-1", replicas=4), "requests/team-a/new.yaml": database("new")},
        remove=["requests/team-a/db-4.yaml"],
    )
    result = kratix("plan", str(platform), "--ref", "change", "--output-repo", str(output))
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "### Kratix plan" in text
    assert "| changed |" in text and "database/db-1/instance/deployment.yaml" in text
    assert "-  replicas: 1" in text and "+  replicas: 4" in text
    assert "| added |" in text and "database/new/instance/configmap.yaml" in text
    assert "| removed |" in text and "database/db-4/instance" in text
    assert "Database team-a/new" in text  # its new placement
    assert "Flux prunes" in text
    assert commits(output) == commits(output)[:1]  # plan publishes nothing
    unchanged = kratix("plan", str(platform), "--ref", "main", "--output-repo", str(output))
    assert "No change to the output" in unchanged.stdout


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_bootstrap_prints_flux_objects_kustomize_accepts(platform: Path, tmp_path: Path) -> None:
    result = kratix("bootstrap", "dev-1", str(platform), "--url", "https://git.example.com/platform-state.git")
    assert result.returncode == 0, result.stderr
    documents = list(yaml.safe_load_all(result.stdout))
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in documents}
    source = by_kind[("GitRepository", "kratix-dev-1")]
    assert source["spec"]["ref"] == {"branch": "main"}
    dependencies = by_kind[("Kustomization", "kratix-dev-1-dependencies")]["spec"]
    resources = by_kind[("Kustomization", "kratix-dev-1-resources")]["spec"]
    assert (dependencies["path"], resources["path"]) == ("./dev-1/dependencies", "./dev-1/resources")
    assert dependencies["prune"] is resources["prune"] is True
    assert resources["dependsOn"] == [{"name": "kratix-dev-1-dependencies"}]
    folder = tmp_path / "flux"
    folder.mkdir()
    (folder / "flux.yaml").write_text(result.stdout)
    (folder / "kustomization.yaml").write_text("resources:\n- flux.yaml\n")
    built = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    assert kratix("bootstrap", "dev-1", str(platform), "--url", "x", "--interval", "30s").returncode == 2
    assert "no Destination named 'nope'" in kratix("bootstrap", "nope", str(platform), "--url", "x").stderr


RACER = """
import subprocess, sys
sys.exit(subprocess.run([sys.executable, "-m", "kratix.cli", "compile", sys.argv[1], "--ref", sys.argv[2],
                         "--output-repo", sys.argv[3], "-q"]).returncode)
"""


def test_racing_publishers_lose_no_commit(tmp_path: Path, output: Path) -> None:
    repo, base = make_repo(
        tmp_path / "racing", platform_files(**{f"team-a/db-{i}": database(f"db-{i}") for i in range(3)})
    )
    publish(repo, output)
    inputs = []
    for i in range(4):  # four input states, each a different change on its own branch
        git(repo, "checkout", "-q", "-b", f"racer-{i}", base)
        inputs.append(commit_files(repo, {f"requests/team-a/db-{i % 3}.yaml": database(f"db-{i % 3}", note=f"r{i}")}))
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(repo), commit, str(output)]) for commit in inputs]
    assert [r.wait(timeout=120) for r in racers] == [0, 0, 0, 0]
    trailers = git(output, "log", "--format=%(trailers:key=Source-Commit,valueonly)", "main").split()
    assert set(inputs) <= set(trailers)  # every input state was published, none lost
    assert git(output, "rev-list", "--merges", "main").strip() == ""  # a straight line: nothing forced or merged
    assert subprocess.run(["git", "-C", str(output), "fsck", "--strict"], capture_output=True).returncode == 0


def test_plan_against_a_base_commit_needs_no_output_repo(platform: Path) -> None:
    base = git(platform, "rev-parse", "HEAD").strip()
    commit_files(platform, {"requests/team-a/db-1.yaml": database("db-1", replicas=3)})
    result = kratix("plan", str(platform), "--ref", "HEAD", "--base-ref", base, "--format", "json")

    assert result.returncode == 0, result.stderr
    changes = json.loads(result.stdout)["plan"]["changes"]
    assert [(c["change"], c["path"].split("/resources/")[1]) for c in changes] == [
        ("changed", "team-a/database/db-1/instance/deployment.yaml")
    ]
    assert "+  replicas: 3" in changes[0]["diff"]
    both = kratix("plan", str(platform), "--base-ref", base, "--output-repo", str(platform))
    assert both.returncode == 2 and "not both" in both.stderr


def test_a_publish_writes_what_a_compile_into_a_folder_writes(platform: Path, output: Path, tmp_path: Path) -> None:
    # A publish hands each file to git as the compile makes it (the compile never holds them all); a compile
    # into a folder keeps them as bytes. Both must write the same files, and the commit must count them all.
    folder = tmp_path / "folder"
    assert kratix("compile", str(platform), "--ref", "HEAD", "--out", str(folder)).returncode == 0
    result = publish(platform, output)
    assert result.returncode == 0, result.stderr
    written = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert files_at(output, "main") == written
    shown = [p for p in written if not p.startswith(".kratix/")]
    assert f"{len(shown)} file(s) changed on " in git(output, "log", "-1", "--format=%B", "main")
    git(output, "fsck", "--strict")


def test_a_publish_that_also_writes_a_folder_gets_every_file_there(
    platform: Path, output: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A large publish hands its files to git as it makes them (`gitio.BlobWriter` keeps the first 16 MiB as
    # bytes, here none): `--out` must still get every file's bytes, not a blob id it cannot read.
    from click.testing import CliRunner

    from kratix import gitio
    from kratix.cli import main

    monkeypatch.setitem(gitio.BlobWriter.__init__.__kwdefaults__, "hold", 0)
    folder = tmp_path / "folder"
    args = ["compile", str(platform), "--ref", "HEAD", "--output-repo", str(output), "--out", str(folder), "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    written = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert written and files_at(output, "main") == written
