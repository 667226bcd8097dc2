"""Shards carry their requests' finished output: a shard stores what its own compile made of each request whose
workflow it ran (files, status, provenance, cache record), and the publishing compile carries those requests over
as it carries over an unchanged request, compiling none of them. What only the whole platform decides is checked
again, and when a check fails the publishing compile compiles those requests itself from their stored workflow
results. Either way it publishes the tree and commit message a compile without shards publishes: each test here
compares the two, through the CLI on real repos, in a case where carrying blindly would publish something else."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kratix.compile import shards
from kratix.memory import cache
from tests.gitrepos import commit_files, files_at, fsck, git, git_env, make_repo
from tests.platforms import PROMISE, database, destination, kratix
from tests.test_shards import PROMISE_STEP, PROMISE_WORKFLOW, REQUEST_STEP, platform, runs

ENV = {"KRATIX_UNSANDBOXED": "1"}


def compile_json(*args: str) -> dict:
    result = kratix("compile", *args, "--format", "json", env=ENV)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def shard_all(input_repo: Path, output: Path, count: int) -> list[dict]:
    return [
        compile_json(str(input_repo), "--ref", "HEAD", "--output-repo", str(output), "--shard", f"{i}/{count}")["shard"]
        for i in range(count)
    ]


def merge_and_compare(tmp_path: Path, input_repo: Path, sharded: Path, plain: Path) -> dict:
    """The publishing compile of the shards, then the same compile without shards; both must publish the same
    tree and message, and report the same summary. Returns the merge's report."""
    merged = compile_json(str(input_repo), "--ref", "HEAD", "--output-repo", str(sharded))
    assert runs(tmp_path) == []  # the stored workflows cover everything: nothing ran in the merge
    unsharded = compile_json(str(input_repo), "--ref", "HEAD", "--output-repo", str(plain))
    runs(tmp_path)
    assert merged["summary"] == unsharded["summary"]  # counts, files, the owners whose steps ran unsandboxed
    assert files_at(sharded) == files_at(plain)
    assert git(sharded, "log", "-1", "--format=%B", "main") == git(plain, "log", "-1", "--format=%B", "main")
    assert git(sharded, "for-each-ref", shards.REF_PREFIX) == ""
    return merged


def new_step(tmp_path: Path) -> str:
    """The request step, changed: a change of the Promise, so every request's workflow runs again."""
    return REQUEST_STEP.replace("a step", "the new step").format(
        counter=tmp_path / "counter", fail_flag=tmp_path / "fail-db-3"
    )


def names_in_two_shards(prefix: str = "db", count: int = 2) -> tuple[str, str]:
    """Two request names whose workflows fall in different shards."""

    def shard(name: str) -> int:
        return shards.assigned(f"Database team-a/{name}", count)

    first = f"{prefix}-0"
    return first, next(f"{prefix}-{i}" for i in range(1, 100) if shard(f"{prefix}-{i}") != shard(first))


def test_the_merge_carries_every_finished_request_and_publishes_the_unsharded_commit(tmp_path: Path) -> None:
    repo, _ = make_repo(tmp_path / "input", platform(tmp_path, 8))
    sharded, plain = tmp_path / "sharded", tmp_path / "plain"
    stored = shard_all(repo, sharded, 4)
    assert sum(s["finished"] for s in stored) == 8  # every request, each by the shard that ran it
    runs(tmp_path)
    merged = merge_and_compare(tmp_path, repo, sharded, plain)
    assert merged["shards"]["finished"] == 8 and merged["shards"]["reused"] == 9 and merged["shards"]["ran"] == 0
    assert len(merged["summary"]["unsandboxed"]) == 9  # named as the unsharded compile names them, though carried
    assert "missing" not in fsck(sharded)  # the carried blobs are the published commit's own now

    # A change of the Promise's step: every request runs again, in the shards, and is carried over finished.
    commit_files(repo, {"promises/database/scripts/request.sh": new_step(tmp_path)})
    shard_all(repo, sharded, 4)
    runs(tmp_path)
    assert merge_and_compare(tmp_path, repo, sharded, plain)["shards"]["finished"] == 8
    assert (
        sum(b"written by the new step" in text for text in files_at(sharded).values()) == 8
    )  # one file each, on the destination it was placed on


def shared_namespace_step(tmp_path: Path, *names: str) -> str:
    """The request step, with the requests `names` also rendering one cluster-scoped Namespace."""
    step = REQUEST_STEP.replace(
        'mkdir -p "$KRATIX_METADATA"',
        f'case "$KRATIX_OBJECT_NAME" in {"|".join(names)}) printf "apiVersion: v1\\nkind: Namespace\\n'
        'metadata:\\n  name: shared\\n" > "$KRATIX_OUTPUT/namespace.yaml";; esac\nmkdir -p "$KRATIX_METADATA"',
    )
    return step.format(counter=tmp_path / "counter", fail_flag=tmp_path / "fail-db-3")


def conflicts(repo: Path) -> list[str]:
    return sorted(path for path, text in files_at(repo).items() if b"ObjectConflict" in text and "status" in path)


def test_two_requests_of_different_shards_claiming_one_object_are_decided_as_without_shards(tmp_path: Path) -> None:
    first, other = names_in_two_shards()
    # Both render the same cluster-scoped Namespace: each shard alone sees no clash; the platform has one.
    files = platform(tmp_path, 4)
    files.pop("clusters/dev-2.yaml")  # one destination: the two Namespaces land side by side
    files["promises/database/scripts/request.sh"] = shared_namespace_step(tmp_path, first, other)
    files.update({f"requests/team-a/{name}.yaml": database(name) for name in (first, other)})
    repo, _ = make_repo(tmp_path / "input", files)
    sharded, plain = tmp_path / "sharded", tmp_path / "plain"
    shard_all(repo, sharded, 2)
    runs(tmp_path)
    merged = merge_and_compare(tmp_path, repo, sharded, plain)["shards"]
    assert merged["finished"] == 0  # compiled in the merge, from the stored workflow results
    assert len(conflicts(plain)) == 1  # one of them lost the Namespace, as without shards


def test_a_request_compiled_in_the_merge_that_claims_a_carried_object_is_decided_as_without_shards(
    tmp_path: Path,
) -> None:
    # db-3's workflow fails in its shard (the registry is down), so the merge runs it: its Namespace is new there,
    # beside the same Namespace in a request another shard finished. Without shards, db-3 keeps it (first in
    # order, neither published before) and the other request fails; carrying the other's output would turn it round.
    home = shards.assigned("Database team-a/db-3", 2)
    later = next(f"db-{i}" for i in range(4, 100) if shards.assigned(f"Database team-a/db-{i}", 2) != home)
    files = platform(tmp_path, 4)
    files.pop("clusters/dev-2.yaml")  # one destination: the two Namespaces land side by side
    files["promises/database/scripts/request.sh"] = shared_namespace_step(tmp_path, "db-3", later)
    files[f"requests/team-a/{later}.yaml"] = database(later)
    repo, _ = make_repo(tmp_path / "input", files)
    sharded, plain = tmp_path / "sharded", tmp_path / "plain"
    (tmp_path / "fail-db-3").touch()
    stored = shard_all(repo, sharded, 2)
    (tmp_path / "fail-db-3").unlink()
    assert stored[home]["failed"] == ["Database team-a/db-3"] and stored[1 - home]["finished"] >= 1
    runs(tmp_path)
    merged = compile_json(str(repo), "--ref", "HEAD", "--output-repo", str(sharded))
    assert runs(tmp_path) == ["resource db-3"]  # once, though the merge compiled twice
    compile_json(str(repo), "--ref", "HEAD", "--output-repo", str(plain))
    runs(tmp_path)
    assert files_at(sharded) == files_at(plain)
    assert conflicts(plain) == [next(p for p in files_at(plain) if p.endswith(f"/{later}.yaml") and "status" in p)]
    assert merged["shards"]["finished"] == 0


def test_a_request_file_split_over_two_shards_is_compiled_by_the_merge(tmp_path: Path) -> None:
    first, other = names_in_two_shards("pair")
    files = platform(tmp_path, 3)
    files["requests/team-a/pair.yaml"] = database(first) + "---\n" + database(other)
    repo, _ = make_repo(tmp_path / "input", files)
    sharded, plain = tmp_path / "sharded", tmp_path / "plain"
    stored = shard_all(repo, sharded, 2)
    runs(tmp_path)
    merged = merge_and_compare(tmp_path, repo, sharded, plain)["shards"]
    # A request file is carried whole or not at all: the pair's two requests are compiled in the merge.
    assert sum(s["finished"] for s in stored) == merged["finished"] == 3
    assert merged["ran"] == 0


def test_a_request_in_two_files_is_decided_as_without_shards(tmp_path: Path) -> None:
    files = platform(tmp_path, 4)
    files["requests/team-a/copy.yaml"] = database("db-2", note="the copy")  # db-2 again, in another file
    repo, _ = make_repo(tmp_path / "input", files)
    sharded, plain = tmp_path / "sharded", tmp_path / "plain"
    shard_all(repo, sharded, 2)
    runs(tmp_path)
    merge_and_compare(tmp_path, repo, sharded, plain)


def test_a_promise_workflow_that_places_requests_is_seen_by_every_shards_requests(tmp_path: Path) -> None:
    # The Promise workflow sends the Promise's requests to zone a only. A shard that did not run it compiled its
    # requests for both destinations: what it finished cannot be carried.
    promise_step = PROMISE_STEP + (
        'mkdir -p "$KRATIX_METADATA"\nprintf -- "- matchLabels:\\n    zone: a\\n" > '
        '"$KRATIX_METADATA/destination-selectors.yaml"\n'
    )
    files = platform(tmp_path, 6)
    files["promises/database/scripts/promise.sh"] = promise_step.format(counter=tmp_path / "counter")
    files["clusters/dev-1.yaml"] = destination("dev-1", {"env": "dev", "zone": "a"})
    files["clusters/dev-2.yaml"] = destination("dev-2", {"env": "dev", "zone": "b"})
    repo, _ = make_repo(tmp_path / "input", files)
    sharded, plain = tmp_path / "sharded", tmp_path / "plain"
    shard_all(repo, sharded, 3)
    runs(tmp_path)
    merge_and_compare(tmp_path, repo, sharded, plain)
    published = files_at(plain)
    assert any(p.startswith("dev-1/") and "db-" in p for p in published)
    assert not any(p.startswith("dev-2/") and "db-" in p for p in published)


def test_shards_that_read_an_older_output_branch_are_not_carried(tmp_path: Path) -> None:
    repo, _ = make_repo(tmp_path / "input", platform(tmp_path, 6))
    sharded, plain = tmp_path / "sharded", tmp_path / "plain"
    for output in (sharded, plain):
        compile_json(str(repo), "--ref", "HEAD", "--output-repo", str(output))
    runs(tmp_path)
    commit_files(repo, {"promises/database/scripts/request.sh": new_step(tmp_path)})
    shard_all(repo, sharded, 2)
    runs(tmp_path)
    # Then the output branch moves (here by hand, in both repos): a status the requests' workflows merge into
    # gains a field. What the shards finished was merged into the status they read, which is no longer there.
    for output in (sharded, plain):
        status = next(p for p in files_at(output) if p.endswith("/db-1.yaml") and "status" in p)
        edited = files_at(output)[status].decode().replace("status:\n", "status:\n  note: kept\n", 1)
        assert "note: kept" in edited
        _replace_in_ref(output, "refs/heads/main", status, edited.encode(), parent=True)
    merged = compile_json(str(repo), "--ref", "HEAD", "--output-repo", str(sharded))
    assert merged["shards"]["finished"] == 0
    compile_json(str(repo), "--ref", "HEAD", "--output-repo", str(plain))
    runs(tmp_path)
    assert files_at(sharded) == files_at(plain)
    assert b"note: kept" in next(t for p, t in files_at(sharded).items() if p.endswith("/db-1.yaml") and "status" in p)


def _without_files(index: bytes, records: bytes) -> tuple[bytes, bytes]:
    loaded = json.loads(index)
    loaded["files"] = {}
    return json.dumps(loaded).encode(), records


def _odd_record(index: bytes, records: bytes) -> tuple[bytes, bytes]:
    """A record sealed as kratix seals one, but holding what no compile writes (placements as a list)."""
    header, first, *rest = records.decode().splitlines()
    record = json.loads(first.partition(" ")[2])
    record["placements"] = [["Database/team-a/x#instance", "dev-1"]]
    text = json.dumps(record, sort_keys=True, separators=(",", ":"))
    oids = json.loads(index)["files"]
    named = [*record["outputs"], *([record["status"]] if record["status"] else [])]
    sealed = f"{cache.fingerprint(text, *(oids[path] for path in named))} {text}"
    return index, "\n".join([header, sealed, *rest, ""]).encode()


@pytest.mark.parametrize("spoil", [_without_files, _odd_record])
def test_finished_output_that_does_not_hold_together_is_reported_and_compiled_here(tmp_path: Path, spoil) -> None:
    repo, _ = make_repo(tmp_path / "input", platform(tmp_path, 4))
    sharded, plain = tmp_path / "sharded", tmp_path / "plain"
    stored = shard_all(repo, sharded, 2)
    runs(tmp_path)
    commit = git(repo, "rev-parse", "HEAD").strip()
    spoilt = next(i for i in range(2) if stored[i]["finished"])
    ref = shards.ref_name(commit, shards.Shard(spoilt, 2))
    index, records = spoil(
        git(sharded, "cat-file", "blob", f"{ref}:{shards.CARRIED_INDEX}").encode(),
        git(sharded, "cat-file", "blob", f"{ref}:{shards.CARRIED_CACHE}").encode(),
    )
    _replace_in_ref(sharded, ref, shards.CARRIED_INDEX, index)
    _replace_in_ref(sharded, ref, shards.CARRIED_CACHE, records)
    merged = merge_and_compare(tmp_path, repo, sharded, plain)["shards"]
    assert any(f"shard {spoilt}/2: its finished output" in problem for problem in merged["problems"])
    assert merged["finished"] == sum(s["finished"] for s in stored) - stored[spoilt]["finished"]


def _replace_in_ref(repo: Path, ref: str, path: str, data: bytes, *, parent: bool = False) -> None:
    """A commit of `ref`'s tree with `path` holding `data`, made with plumbing (the repos are bare); `ref` moves
    to it (with `parent`, on top of the commit it was at)."""

    def plumbing(*args: str, input: bytes | None = None) -> str:
        env = {**git_env(), "GIT_INDEX_FILE": str(repo / "kratix-test-index")}
        done = subprocess.run(["git", "-C", str(repo), *args], input=input, capture_output=True, env=env, check=True)
        return done.stdout.decode().strip()

    blob = plumbing("hash-object", "-w", "--stdin", input=data)
    plumbing("read-tree", ref)
    plumbing("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}")
    tree = plumbing("write-tree")
    (repo / "kratix-test-index").unlink()
    commit = plumbing("commit-tree", tree, *(["-p", ref] if parent else []), "-m", "edited by hand")
    plumbing("update-ref", ref, commit)


def test_a_promise_without_a_workflow_still_carries(tmp_path: Path) -> None:
    files = platform(tmp_path, 5)
    files["promises/database/promise.yaml"] = PROMISE.replace(
        "                template: templates\n", "                command: [sh, scripts/request.sh]\n"
    )
    assert PROMISE_WORKFLOW not in files["promises/database/promise.yaml"]
    repo, _ = make_repo(tmp_path / "input", files)
    sharded, plain = tmp_path / "sharded", tmp_path / "plain"
    shard_all(repo, sharded, 2)
    runs(tmp_path)
    assert merge_and_compare(tmp_path, repo, sharded, plain)["shards"]["finished"] == 5


def test_a_merge_that_also_writes_out_writes_the_published_tree(tmp_path: Path) -> None:
    repo, _ = make_repo(tmp_path / "input", platform(tmp_path, 4))
    sharded, out = tmp_path / "sharded", tmp_path / "out"
    shard_all(repo, sharded, 2)
    runs(tmp_path)
    compile_json(str(repo), "--ref", "HEAD", "--output-repo", str(sharded), "--out", str(out))
    assert runs(tmp_path) == []
    written = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert written == files_at(sharded)
