"""Shards: `compile --shard I/N` runs one shard's workflows and stores their results in the output repo; the
publishing compile replays them, runs what no shard stored, and publishes the tree a compile without shards
publishes, byte for byte. Through the CLI, on real repos; every step appends a line to a counter file, so a
test can tell which workflows ran where."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kratix import workers
from kratix.compile import pipeline, shards
from kratix.model.documents import SourceTree
from kratix.model.manifests import OutputGroup, PipelineOutput, RenderedFile, RenderFailure, WorkflowResult
from kratix.model.settings import Settings
from tests.gitrepos import commit_files, files_at, git, make_repo
from tests.platforms import PROMISE, database, destination, kratix, platform_files

REQUEST_STEP = """\
set -eu
echo "resource $KRATIX_OBJECT_NAME" >> {counter}
if [ -e {fail_flag} ] && [ "$KRATIX_OBJECT_NAME" = db-3 ]; then echo "registry down" >&2; exit 1; fi
cat > "$KRATIX_OUTPUT/configmap.yaml" <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: $KRATIX_OBJECT_NAME-config
  namespace: $KRATIX_OBJECT_NAMESPACE
data:
  note: "written by a step"
  "on": "yes"
YAML
mkdir -p "$KRATIX_METADATA"
printf 'message: rendered %s\\n' "$KRATIX_OBJECT_NAME" > "$KRATIX_METADATA/status.yaml"
"""

PROMISE_STEP = """\
set -eu
echo "promise $KRATIX_PROMISE_NAME" >> {counter}
printf 'apiVersion: v1\\nkind: Namespace\\nmetadata:\\n  name: db-system\\n' > "$KRATIX_OUTPUT/namespace.yaml"
"""

PROMISE_WORKFLOW = """\
  workflows:
    promise:
      configure:
        - apiVersion: platform.kratix.io/v1alpha1
          kind: Pipeline
          metadata:
            name: setup
          spec:
            containers:
              - name: setup
                command: [sh, scripts/promise.sh]
    resource:
"""

ENV = {"KRATIX_UNSANDBOXED": "1"}


def platform(tmp_path: Path, requests: int) -> dict[str, str]:
    counter, flag = tmp_path / "counter", tmp_path / "fail-db-3"
    promise = PROMISE.replace("  workflows:\n    resource:\n", PROMISE_WORKFLOW).replace(
        "                template: templates\n", "                command: [sh, scripts/request.sh]\n"
    )
    files = {
        "promises/database/promise.yaml": promise,
        "promises/database/scripts/request.sh": REQUEST_STEP.format(counter=counter, fail_flag=flag),
        "promises/database/scripts/promise.sh": PROMISE_STEP.format(counter=counter),
        "clusters/dev-1.yaml": destination("dev-1", {"env": "dev"}),
        "clusters/dev-2.yaml": destination("dev-2", {"env": "dev"}),
    }
    files.update({f"requests/team-a/db-{i}.yaml": database(f"db-{i}") for i in range(requests)})
    return files


def runs(tmp_path: Path) -> list[str]:
    """The workflows that ran since the last call (and forget them)."""
    counter = tmp_path / "counter"
    lines = counter.read_text().splitlines() if counter.exists() else []
    counter.unlink(missing_ok=True)
    return sorted(lines)


def compile_(*args: str, env: dict[str, str] | None = None) -> str:
    result = kratix("compile", *args, env={**ENV, **(env or {})})
    assert result.returncode == 0, result.stderr
    return result.stderr


def shard_refs(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname)", shards.REF_PREFIX).split()


def run_shards(input_repo: Path, output: str, count: int, indices: list[int] | None = None) -> None:
    for index in range(count) if indices is None else indices:
        compile_(str(input_repo), "--ref", "HEAD", "--output-repo", output, "--shard", f"{index}/{count}")


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    repo, _ = make_repo(tmp_path / "input", platform(tmp_path, 8))
    return repo


def test_merged_shards_publish_the_unsharded_tree_and_run_no_workflow(tmp_path: Path, inputs: Path) -> None:
    compile_(str(inputs), "--ref", "HEAD", "--output-repo", str(tmp_path / "plain"))
    everything = runs(tmp_path)
    assert len(everything) == 9  # 8 requests and the Promise

    sharded = tmp_path / "sharded"
    run_shards(inputs, str(sharded), 4)
    assert runs(tmp_path) == everything  # each workflow ran in exactly one shard
    assert len(shard_refs(sharded)) == 4
    assert git(sharded, "for-each-ref", "refs/heads/") == ""  # a shard publishes nothing

    summary = compile_(str(inputs), "--ref", "HEAD", "--output-repo", str(sharded))
    assert runs(tmp_path) == []  # the publishing compile ran no workflow
    assert "9 workflow result(s) reused from 4 of 4 shard(s)" in summary and "0 workflow(s) ran here" in summary
    published = files_at(sharded)
    assert any(p.startswith(".kratix/") for p in published) and any("status" in p for p in published)
    assert published == files_at(tmp_path / "plain")  # statuses, provenance, cache and outputs alike
    assert shard_refs(sharded) == []  # used, then removed


def test_a_missing_shard_runs_in_the_publishing_compile(tmp_path: Path, inputs: Path) -> None:
    compile_(str(inputs), "--ref", "HEAD", "--output-repo", str(tmp_path / "plain"))
    runs(tmp_path)
    sharded = tmp_path / "sharded"
    run_shards(inputs, str(sharded), 4, indices=[0, 1, 3])
    in_shards = runs(tmp_path)

    summary = compile_(str(inputs), "--ref", "HEAD", "--output-repo", str(sharded))
    here = runs(tmp_path)
    assert here and not set(here) & set(in_shards)  # what shard 2 holds ran here, and nothing else
    assert all(
        shards.assigned(
            f"Database team-a/{line.split()[1]}" if line.startswith("resource") else f"Promise {line.split()[1]}", 4
        )
        == 2
        for line in here
    )
    assert f"shard 2/4 has no result (missing or failed): its workflows ran here ({len(here)} workflow(s))" in summary
    assert files_at(sharded) == files_at(tmp_path / "plain")
    assert shard_refs(sharded) == []


def test_a_workflow_that_failed_in_its_shard_runs_again(tmp_path: Path, inputs: Path) -> None:
    compile_(str(inputs), "--ref", "HEAD", "--output-repo", str(tmp_path / "plain"))
    runs(tmp_path)
    sharded = tmp_path / "sharded"
    (tmp_path / "fail-db-3").touch()  # the registry is down while the shards run
    result = kratix(
        "compile",
        str(inputs),
        "--ref",
        "HEAD",
        "--output-repo",
        str(sharded),
        "--shard",
        f"{shards.assigned('Database team-a/db-3', 2)}/2",
        env=ENV,
    )
    assert result.returncode == 0, result.stderr
    assert "1 failed (not stored: the publishing compile runs them again)" in result.stderr
    run_shards(inputs, str(sharded), 2, indices=[1 - shards.assigned("Database team-a/db-3", 2)])
    runs(tmp_path)
    (tmp_path / "fail-db-3").unlink()

    summary = compile_(str(inputs), "--ref", "HEAD", "--output-repo", str(sharded))
    assert runs(tmp_path) == ["resource db-3"]
    assert "1 workflow(s) failed in their shard and ran again here: Database team-a/db-3" in summary
    assert files_at(sharded) == files_at(tmp_path / "plain")


def test_a_shard_result_for_another_input_commit_is_never_used(tmp_path: Path, inputs: Path) -> None:
    sharded = tmp_path / "sharded"
    run_shards(inputs, str(sharded), 2)
    runs(tmp_path)
    old = git(inputs, "rev-parse", "HEAD").strip()
    new = commit_files(inputs, {"requests/team-a/db-0.yaml": database("db-0", size="large", replicas=2)})
    # A result of the old commit under the new commit's name too: its manifest names the commit it holds.
    forged = shards.ref_name(new, shards.Shard(0, 2))
    git(sharded, "update-ref", forged, shards.ref_name(old, shards.Shard(0, 2)))

    summary = compile_(str(inputs), "--ref", "HEAD", "--output-repo", str(sharded))
    assert len(runs(tmp_path)) == 9  # every workflow ran here
    assert f"holds the result for input commit '{old}', not {new}" in summary
    assert sorted(shard_refs(sharded)) == sorted([shards.ref_name(old, shards.Shard(i, 2)) for i in range(2)])
    compile_(str(inputs), "--ref", "HEAD", "--output-repo", str(tmp_path / "plain"))
    runs(tmp_path)
    assert files_at(sharded) == files_at(tmp_path / "plain")


def test_shards_skip_what_the_publishing_compile_carries_over(tmp_path: Path, inputs: Path) -> None:
    sharded = tmp_path / "sharded"
    compile_(str(inputs), "--ref", "HEAD", "--output-repo", str(sharded))
    runs(tmp_path)
    commit_files(inputs, {"requests/team-a/db-5.yaml": database("db-5", note="changed")})
    run_shards(inputs, str(sharded), 3)
    # Only the changed request ran, in its shard; Promise workflows run on every compile, sharded or not.
    assert runs(tmp_path) == ["promise database", "resource db-5"]
    summary = compile_(str(inputs), "--ref", "HEAD", "--output-repo", str(sharded))
    assert runs(tmp_path) == [] and "2 workflow result(s) reused" in summary


def test_assignment_is_stable_when_requests_are_added() -> None:
    def ran_by_shard(files: dict[str, str]) -> dict[int, set[str]]:
        tree = SourceTree({path: text.encode() for path, text in files.items()}, commit="0" * 40)
        found = {}
        for index in range(3):
            recorder = shards.Recorder(shards.Shard(index, 3))
            pipeline.compile_platform(tree, settings=Settings(), workflows=recorder)
            found[index] = {entry.identity for entry in recorder.entries.values()}
        return found

    files = platform_files(**{f"team-a/db-{i}": database(f"db-{i}") for i in range(12)})
    before = ran_by_shard(files)
    added = {f"team-b/db-{i}": database(f"db-{i}") for i in range(20, 30)}
    after = ran_by_shard({**files, **platform_files(**added)})
    new = {f"Database team-b/db-{i}" for i in range(20, 30)}
    assert all(before.values()) and set().union(*before.values()) == {f"Database team-a/db-{i}" for i in range(12)}
    for index in range(3):
        assert before[index] <= after[index]  # nothing moved away
        assert after[index] - before[index] <= new  # only new requests came
    assert set().union(*after.values()) == set().union(*before.values()) | new


def test_shards_go_through_a_remote_output_repo(tmp_path: Path, inputs: Path) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", str(remote))
    url = f"file://{remote}"
    cache = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    for index in range(2):
        compile_(
            str(inputs),
            "--ref",
            "HEAD",
            "--output-repo",
            url,
            "--shard",
            f"{index}/2",
            env={**cache, "XDG_CACHE_HOME": str(tmp_path / f"cache-{index}")},
        )  # one machine each
    assert len(shard_refs(remote)) == 2
    runs(tmp_path)
    summary = compile_(str(inputs), "--ref", "HEAD", "--output-repo", url, env=cache)
    assert runs(tmp_path) == [] and "reused from 2 of 2 shard(s)" in summary
    assert shard_refs(remote) == []
    compile_(str(inputs), "--ref", "HEAD", "--output-repo", str(tmp_path / "plain"))
    assert files_at(remote) == files_at(tmp_path / "plain")


def test_auto_takes_the_index_from_job_completion_index(tmp_path: Path, inputs: Path) -> None:
    out = tmp_path / "out"
    compile_(
        str(inputs), "--ref", "HEAD", "--output-repo", str(out), "--shard", "auto/4", env={"JOB_COMPLETION_INDEX": "3"}
    )
    commit = git(inputs, "rev-parse", "HEAD").strip()
    assert shard_refs(out) == [shards.ref_name(commit, shards.Shard(3, 4))]
    bad = kratix("compile", str(inputs), "--ref", "HEAD", "--output-repo", str(out), "--shard", "4/4", env=ENV)
    assert bad.returncode == 2 and "from 0 to 3" in bad.stderr
    no_ref = kratix("compile", str(inputs), "--output-repo", str(out), "--shard", "0/4", env=ENV)
    assert no_ref.returncode == 2 and "--shard needs --ref" in no_ref.stderr


def test_a_result_keeps_every_type_a_document_can_hold() -> None:
    document = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x"},
        "data": {
            1: "int key",
            "f": 1.0,
            "t": (1, [2]),
            "b": b"\x00bytes",
            "n": None,
            "yes": True,
            shards._TAG: "looks like a tag",
        },
    }
    result = WorkflowResult(
        (
            PipelineOutput(
                "p",
                (
                    RenderedFile("a.yaml", (document,), "container:x", "none", (("img", "sha256:1"),)),
                    RenderedFile("raw.tf", (), "container:x", raw=b"raw\n"),
                ),
                (OutputGroup("sub", {"env": "dev"}),),
            ),
        ),
        {"message": "ok", "n": float("inf")},
    )
    back = shards.decode_result(shards.encode_result(result))
    assert back == result
    assert [type(v) for v in back.outputs[0].files[0].documents[0]["data"].values()] == [
        type(v) for v in document["data"].values()
    ]
    with pytest.raises(shards.Unstorable):
        shards.encode_result(WorkflowResult(failure=RenderFailure("f", 1, 1, "c", "m", "s")))


def test_a_ref_that_holds_no_shard_result_is_reported_and_its_shard_runs_here(tmp_path: Path, inputs: Path) -> None:
    sharded = tmp_path / "sharded"
    run_shards(inputs, str(sharded), 2, indices=[1])
    in_shard = runs(tmp_path)
    commit = git(inputs, "rev-parse", "HEAD").strip()
    empty_tree = git(sharded, "hash-object", "-t", "tree", "-w", "--stdin", input=b"").strip()
    git(
        sharded,
        "update-ref",
        shards.ref_name(commit, shards.Shard(0, 2)),
        git(sharded, "commit-tree", empty_tree, "-m", "not a shard result").strip(),
    )

    summary = compile_(str(inputs), "--ref", "HEAD", "--output-repo", str(sharded))
    assert "shards: not used: shard 0/2: no shard.json and workflows.jsonl in its commit" in summary
    assert "shard 0/2 has no result (missing or failed)" in summary
    here = runs(tmp_path)
    assert sorted(here + in_shard) == sorted(set(here + in_shard)) and len(here + in_shard) == 9
    assert shard_refs(sharded) == []


def test_template_workflows_of_a_platform_large_enough_for_worker_processes_are_stored_and_reused(
    tmp_path: Path,
) -> None:
    # Templates render in forked worker processes once a compile has workers.MINIMUM requests; what a shard
    # records of its workflows must not stay behind in those workers.
    count = workers.MINIMUM + 20
    files = platform_files(**{f"team-{i % 3}/db-{i}": database(f"db-{i}", replicas=1 + i % 5) for i in range(count)})
    repo, _ = make_repo(tmp_path / "input", files)
    sharded = tmp_path / "sharded"
    stored = [
        json.loads(
            kratix(
                "compile",
                str(repo),
                "--ref",
                "HEAD",
                "--output-repo",
                str(sharded),
                "--shard",
                f"{i}/2",
                "--format",
                "json",
                env=ENV,
            ).stdout
        )["shard"]["stored"]
        for i in range(2)
    ]
    assert sum(stored) == count  # every request's workflow, in one shard or the other
    summary = compile_(str(repo), "--ref", "HEAD", "--output-repo", str(sharded))
    assert f"{count} workflow result(s) reused from 2 of 2 shard(s)" in summary
    assert "; 0 workflow(s) ran here" in summary
    compile_(str(repo), "--ref", "HEAD", "--output-repo", str(tmp_path / "plain"))
    assert files_at(sharded) == files_at(tmp_path / "plain")
