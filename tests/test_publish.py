"""Publishing output trees to real repos: one commit per change, compare-and-swap, races, kills, mirrors."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kratix import gitio
from kratix.model.errors import PublishError
from kratix.publish import commit as publish
from tests import gitrepos

DATE = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TREE = {
    "dev/dependencies/postgres/static/operator.yaml": b"kind: Deployment\n",
    "dev/dependencies/postgres/kustomization.yaml": b"resources: []\n",
    "dev/resources/team-a/postgres/db/instance/db.yaml": b"kind: Postgres\n",
    "prod/resources/team-b/redis/cache/instance/cache.yaml": b"kind: Redis\n",
    ".kratix/placements.json": b"{}\n",
}

# A publisher in its own process: each round adds its own file to whatever the branch holds at that moment.
# argv: target, name, rounds, file count (for big trees), start time (a crude barrier so processes overlap).
PUBLISHER = """
import sys, time
from kratix.publish import commit as publish
target, name = sys.argv[1], sys.argv[2]
rounds, count, start = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
repo = publish.open_output_repo(target, branch="main", create=False)
time.sleep(max(0.0, start - time.time()))
for round in range(rounds):
    def build(state, round=round):
        files = dict(state.files)
        files[f"{name}/{round}.txt"] = f"{name} round {round}\\n".encode()
        files.update((f"big/d{i % 40}/f{i}.yaml", f"{name}: {i}\\n".encode()) for i in range(count))
        return files, f"{name} round {round}"
    publish.publish(repo, build, attempts=200, backoff_seconds=0.005, stale_lock_seconds=1.0)
"""


def fixed(files: Mapping[str, bytes], message: str = "publish") -> publish.Build:
    return lambda _state: (files, message)


def test_nested_tree_to_a_new_bare_repo(tmp_path: Path) -> None:
    repo = publish.open_output_repo(str(tmp_path / "state"), branch="main")

    result = publish.publish(repo, fixed(TREE), date=DATE)

    assert result.changed and result.attempts == 1
    assert gitrepos.git(tmp_path / "state", "rev-parse", "--is-bare-repository").strip() == "true"
    assert gitrepos.head(tmp_path / "state") == result.commit
    assert gitrepos.files_at(tmp_path / "state") == TREE
    modes = gitrepos.git(tmp_path / "state", "ls-tree", "-r", "--format=%(objectmode)", "main").split()
    assert set(modes) == {"100644"}
    header = gitrepos.git(tmp_path / "state", "cat-file", "-p", "main")
    assert "author Kratix <kratix@localhost> 1714564800 +0000" in header
    assert "committer Kratix <kratix@localhost> 1714564800 +0000" in header
    gitrepos.fsck(tmp_path / "state")


def test_same_input_same_commit_id(tmp_path: Path) -> None:
    commits = {
        publish.publish(publish.open_output_repo(str(tmp_path / name), branch="main"), fixed(TREE), date=DATE).commit
        for name in ("a", "b")
    }
    assert len(commits) == 1


def test_republishing_the_same_tree_makes_no_commit(tmp_path: Path) -> None:
    repo = publish.open_output_repo(str(tmp_path / "state"), branch="main")
    first = publish.publish(repo, fixed(TREE))

    again = publish.publish(repo, fixed(dict(TREE), "nothing changed"))

    assert again == publish.PublishResult(commit=first.commit, changed=False, attempts=1)
    assert len(gitrepos.history(tmp_path / "state")) == 1


def test_a_changed_tree_is_one_commit_on_top_and_removed_files_disappear(tmp_path: Path) -> None:
    repo = publish.open_output_repo(str(tmp_path / "state"), branch="main")
    first = publish.publish(repo, fixed(TREE))
    changed = {path: data for path, data in TREE.items() if not path.startswith("prod/")}
    changed["dev/resources/team-a/postgres/db/instance/db.yaml"] = b"kind: Postgres\nspec: {}\n"
    changed["staging/new.yaml"] = b"kind: New\n"

    second = publish.publish(repo, fixed(changed, "second"))

    assert second.changed
    assert gitrepos.history(tmp_path / "state") == [f"{second.commit} {first.commit}", f"{first.commit}"]
    assert gitrepos.files_at(tmp_path / "state") == changed
    top_level = gitrepos.git(tmp_path / "state", "ls-tree", "--name-only", "main").split()
    assert "prod" not in top_level  # an emptied folder goes with its last file
    assert gitrepos.git(tmp_path / "state", "log", "-1", "--format=%s", "main").strip() == "second"


def test_a_file_can_become_a_folder_and_back(tmp_path: Path) -> None:
    repo = publish.open_output_repo(str(tmp_path / "state"), branch="main")
    publish.publish(repo, fixed({"x": b"file", "y/z": b"nested"}))
    publish.publish(repo, fixed({"x/inner": b"now a folder", "y": b"now a file"}))
    assert gitrepos.files_at(tmp_path / "state") == {"x/inner": b"now a folder", "y": b"now a file"}
    publish.publish(repo, fixed({}))
    assert gitrepos.files_at(tmp_path / "state") == {}
    gitrepos.fsck(tmp_path / "state")


def test_build_sees_the_previous_output(tmp_path: Path) -> None:
    repo = publish.open_output_repo(str(tmp_path / "state"), branch="main")
    seen: list[publish.BranchState] = []

    def build(state: publish.BranchState) -> tuple[Mapping[str, bytes], str]:
        seen.append(state)
        return {**state.files, f"n{len(state.files)}": b"x"}, "grow"

    first = publish.publish(repo, build)
    publish.publish(repo, build)

    assert seen[0] == publish.BranchState(commit=None, files={})
    assert seen[1].commit == first.commit and seen[1].files == {"n0": b"x"}
    assert publish.read_branch(repo).files == {"n0": b"x", "n1": b"x"}


def test_a_tree_git_did_not_write_is_rewritten_whole(tmp_path: Path) -> None:
    """An output branch holding an executable or a symlink (edited by hand) still ends up exactly as built."""
    target, _ = gitrepos.make_repo(tmp_path / "state", {"run.sh": "#!/bin/sh\n", "keep.yaml": "k\n"})
    (target / "run.sh").chmod(0o755)
    (target / "link").symlink_to("keep.yaml")
    gitrepos.commit_files(target, {})
    gitrepos.git(target, "checkout", "--quiet", "--detach")  # not checked out: only the branch matters here
    repo = publish.open_output_repo(str(target), branch="main")

    state = publish.read_branch(repo)
    assert not state.plain and state.files == {"run.sh": b"#!/bin/sh\n", "keep.yaml": b"k\n"}
    publish.publish(repo, lambda s: (dict(s.files), "normalise"))

    assert gitrepos.git(target, "ls-tree", "-r", "--format=%(objectmode) %(path)", "main").splitlines() == [
        "100644 keep.yaml",
        "100644 run.sh",
    ]


@pytest.mark.parametrize("bad", ["../escape.yaml", "/etc/passwd", "a//b.yaml", "dev/.git/config", "dev/./x"])
def test_invalid_paths_are_refused_and_the_branch_stays(tmp_path: Path, bad: str) -> None:
    repo = publish.open_output_repo(str(tmp_path / "state"), branch="main")
    first = publish.publish(repo, fixed(TREE))

    with pytest.raises(PublishError, match="invalid tree"):
        publish.publish(repo, fixed({**TREE, bad: b"x"}))
    assert gitrepos.head(tmp_path / "state") == first.commit


def test_build_returning_none_aborts_without_a_commit(tmp_path: Path) -> None:
    repo = publish.open_output_repo(str(tmp_path / "state"), branch="main")
    first = publish.publish(repo, fixed(TREE))

    result = publish.publish(repo, lambda _state: None)

    assert result.aborted and not result.changed and result.commit == first.commit
    assert len(gitrepos.history(tmp_path / "state")) == 1


def test_a_concurrent_commit_is_kept_and_build_reruns_on_it(tmp_path: Path) -> None:
    repo = publish.open_output_repo(str(tmp_path / "state"), branch="main")
    publish.publish(repo, fixed({"base": b"0"}))
    calls: list[str | None] = []

    def build(state: publish.BranchState) -> tuple[Mapping[str, bytes], str]:
        calls.append(state.commit)
        if len(calls) == 1:  # someone else publishes while we are computing
            publish.publish(repo, lambda s: ({**s.files, "theirs": b"t"}, "theirs"))
        return {**state.files, "ours": b"o"}, "ours"

    result = publish.publish(repo, build, backoff_seconds=0)

    assert result.attempts == 2 and calls[0] != calls[1]
    assert gitrepos.files_at(tmp_path / "state") == {"base": b"0", "theirs": b"t", "ours": b"o"}
    assert [len(line.split()) for line in gitrepos.history(tmp_path / "state")] == [2, 2, 1]  # linear


def test_gives_up_clearly_when_the_branch_keeps_moving(tmp_path: Path) -> None:
    repo = publish.open_output_repo(str(tmp_path / "state"), branch="main")

    def build(state: publish.BranchState) -> tuple[Mapping[str, bytes], str]:
        publish.publish(repo, lambda s: ({**s.files, f"other{len(s.files)}": b"x"}, "other"))
        return {**state.files, "mine": b"m"}, "mine"

    with pytest.raises(PublishError, match="branch main of .* moved 3 times while publishing; gave up"):
        publish.publish(repo, build, attempts=3, backoff_seconds=0)
    assert "mine" not in gitrepos.files_at(tmp_path / "state")
    assert len(gitrepos.history(tmp_path / "state")) == 3  # every concurrent commit kept


def test_leftovers_of_a_killed_run_do_not_block_the_next(tmp_path: Path) -> None:
    target = tmp_path / "state"
    repo = publish.open_output_repo(str(target), branch="main")
    first = publish.publish(repo, fixed(TREE))
    # What `kill -9` can leave: a ref lock, a packed-refs lock, a temporary ref, a half-written pack.
    long_ago = time.time() - 3 * 3600
    for lock in (target / "refs/heads/main.lock", target / "packed-refs.lock"):
        lock.write_text(f"{first.commit}\n")
        os.utime(lock, (long_ago, long_ago))
    temp_ref = f"{gitio.TEMP_REF_PREFIX}{int(long_ago * 1e9)}-99999-abcd"
    gitrepos.git(target, "update-ref", temp_ref, first.commit)
    (target / "objects/pack/tmp_pack_killed").write_bytes(b"PACK\x00\x00")
    os.utime(target / "objects/pack/tmp_pack_killed", (long_ago, long_ago))
    (target / f"{temp_ref}.lock").write_text(f"{first.commit}\n")
    os.utime(target / f"{temp_ref}.lock", (long_ago, long_ago))

    result = publish.publish(repo, fixed({**TREE, "more": b"1"}))

    assert result.changed and gitrepos.files_at(target)["more"] == b"1"
    assert gitrepos.git(target, "for-each-ref", gitio.TEMP_REF_PREFIX) == ""
    assert list(target.rglob("*.lock")) == [] and list(target.glob("objects/pack/tmp_*")) == []
    gitrepos.fsck(target)


def test_a_lock_left_moments_ago_is_waited_out_then_broken(tmp_path: Path) -> None:
    target = tmp_path / "state"
    repo = publish.open_output_repo(str(target), branch="main")
    first = publish.publish(repo, fixed(TREE))
    (target / "refs/heads/main.lock").write_text(f"{first.commit}\n")  # its owner was just killed
    started = time.monotonic()

    result = publish.publish(repo, fixed({**TREE, "more": b"1"}), stale_lock_seconds=0.5)

    assert result.changed and gitrepos.head(target) == result.commit
    assert time.monotonic() - started >= 0.5  # a lock younger than that may belong to a live git


def test_publish_to_a_remote_url_through_the_mirror(tmp_path: Path) -> None:
    remote = gitrepos.init_repo(tmp_path / "remote.git", bare=True)
    url = remote.as_uri()  # file:///…
    repo = publish.open_output_repo(url, branch="main", cache_dir=tmp_path / "cache")
    assert repo.url == url and repo.path.is_relative_to(tmp_path / "cache")

    first = publish.publish(repo, fixed(TREE))
    assert gitrepos.head(remote) == first.commit and gitrepos.files_at(remote) == TREE

    # Someone else pushes to the remote: our next publish builds on their commit, never over it.
    clone = tmp_path / "clone"
    gitrepos.git(tmp_path, "clone", "--quiet", url, str(clone))
    theirs = gitrepos.commit_files(clone, {"hand-edit.yaml": "by hand\n"})
    gitrepos.git(clone, "push", "--quiet", "origin", "main")

    second = publish.publish(repo, lambda s: ({**s.files, "ours.yaml": b"o\n"}, "ours"))

    assert gitrepos.history(remote)[0] == f"{second.commit} {theirs}"
    assert gitrepos.files_at(remote) == {**TREE, "hand-edit.yaml": b"by hand\n", "ours.yaml": b"o\n"}
    assert publish.publish(repo, lambda s: (dict(s.files), "same")).changed is False
    gitrepos.fsck(remote)


def test_a_remote_race_between_machines_loses_nothing(tmp_path: Path) -> None:
    remote = gitrepos.init_repo(tmp_path / "remote.git", bare=True)
    ours = publish.open_output_repo(remote.as_uri(), branch="main", cache_dir=tmp_path / "cache-a")
    theirs = publish.open_output_repo(remote.as_uri(), branch="main", cache_dir=tmp_path / "cache-b")
    calls = []

    def build(state: publish.BranchState) -> tuple[Mapping[str, bytes], str]:
        calls.append(state.commit)
        if len(calls) == 1:
            publish.publish(theirs, lambda s: ({**s.files, "theirs": b"t"}, "theirs"))
        return {**state.files, "ours": b"o"}, "ours"

    result = publish.publish(ours, build, backoff_seconds=0)

    assert result.attempts == 2
    assert gitrepos.files_at(remote) == {"theirs": b"t", "ours": b"o"}
    assert len(gitrepos.history(remote)) == 2


def test_a_refused_push_is_reported_not_retried(tmp_path: Path) -> None:
    remote = gitrepos.init_repo(tmp_path / "remote.git", bare=True)
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'branch is protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    repo = publish.open_output_repo(remote.as_uri(), branch="main", cache_dir=tmp_path / "cache")
    calls = []

    with pytest.raises(PublishError, match="refused: .*branch is protected"):
        publish.publish(repo, lambda s: calls.append(1) or (TREE, "x"))
    assert calls == [1] and gitrepos.head(remote) is None


def test_non_bare_target_with_the_branch_checked_out_gets_its_work_tree_updated(tmp_path: Path) -> None:
    target = gitrepos.init_repo(tmp_path / "state")  # `main` checked out, no commit yet
    repo = publish.open_output_repo(str(target), branch="main")
    assert repo.work_tree == target

    publish.publish(repo, fixed(TREE))
    assert (target / "dev/resources/team-a/postgres/db/instance/db.yaml").read_bytes() == b"kind: Postgres\n"
    smaller = {k: v for k, v in TREE.items() if not k.startswith("prod/")}
    result = publish.publish(repo, fixed({**smaller, "dev/new.yaml": b"new\n"}))

    assert result.warnings == ()
    assert (target / "dev/new.yaml").read_bytes() == b"new\n" and not (target / "prod").exists()
    assert gitrepos.git(target, "status", "--porcelain", "--untracked-files=all") == ""


def test_non_bare_target_with_local_changes_is_left_alone_with_a_warning(tmp_path: Path) -> None:
    target = gitrepos.init_repo(tmp_path / "state")
    repo = publish.open_output_repo(str(target), branch="main")
    publish.publish(repo, fixed(TREE))
    (target / ".kratix/placements.json").write_text("edited by hand\n")

    result = publish.publish(repo, fixed({**TREE, "dev/new.yaml": b"new\n"}))

    assert result.changed and len(result.warnings) == 1 and "local changes" in result.warnings[0]
    assert gitrepos.files_at(target)["dev/new.yaml"] == b"new\n"  # the branch moved
    assert (target / ".kratix/placements.json").read_text() == "edited by hand\n"  # the edit survived
    assert not (target / "dev/new.yaml").exists()


def test_a_folder_inside_another_repo_is_not_an_output_repo(tmp_path: Path) -> None:
    outer, _ = gitrepos.make_repo(tmp_path / "platform", {"README": "x"})
    (outer / "state").mkdir()
    (outer / "state" / "file").write_text("not empty")
    with pytest.raises(PublishError, match="inside the git repository"):
        publish.open_output_repo(str(outer / "state"), branch="main")


def test_the_quickstart_state_folder_inside_the_input_repo_is_its_own_repo(tmp_path: Path) -> None:
    platform, input_commit = gitrepos.make_repo(tmp_path / "platform", {"promises/p.yaml": "kind: Promise\n"})
    state = str(platform / "state")  # `kratix compile --output-repo ./state`, run from the platform repo

    first = publish.publish(publish.open_output_repo(state, branch="main"), fixed(TREE))
    again = publish.publish(publish.open_output_repo(state, branch="main"), fixed({**TREE, "b": b"2"}))

    assert gitrepos.history(platform / "state")[0] == f"{again.commit} {first.commit}"
    assert gitrepos.head(platform) == input_commit  # the platform repo's branch is untouched


def test_an_invalid_branch_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PublishError, match="not a valid branch name"):
        publish.open_output_repo(str(tmp_path / "s"), branch="bad..name")


def run_publishers(target: Path, script: Path, names: list[str], *, rounds: int, count: int) -> None:
    start = time.time() + 1.0  # every process is up and importing by then, so their publishes overlap
    procs = [
        subprocess.Popen([sys.executable, str(script), str(target), name, str(rounds), str(count), str(start)])
        for name in names
    ]
    assert [proc.wait(timeout=60) for proc in procs] == [0] * len(names)


def test_racing_publisher_processes_lose_nothing(tmp_path: Path) -> None:
    target = tmp_path / "state"
    publish.publish(publish.open_output_repo(str(target), branch="main"), fixed({"seed": b"0"}))
    script = tmp_path / "publisher.py"
    script.write_text(PUBLISHER)
    names, rounds = [f"p{i}" for i in range(4)], 4

    run_publishers(target, script, names, rounds=rounds, count=0)

    files = gitrepos.files_at(target)
    expected = {f"{name}/{r}.txt" for name in names for r in range(rounds)} | {"seed"}
    assert set(files) == expected
    history = gitrepos.history(target)
    assert len(history) == 1 + len(names) * rounds
    assert all(len(line.split()) <= 2 for line in history)  # linear: no merges, nothing rewritten
    gitrepos.fsck(target)


def test_a_publisher_killed_at_any_moment_leaves_old_or_new_and_fsck_clean(tmp_path: Path) -> None:
    target = tmp_path / "state"
    repo = publish.open_output_repo(str(target), branch="main")
    publish.publish(repo, fixed({"seed": b"0"}))
    script = tmp_path / "publisher.py"
    script.write_text(PUBLISHER)
    count, rng = 4000, random.Random(7)

    for generation in range(5):
        before = gitrepos.head(target)
        before_files = gitrepos.files_at(target)
        proc = subprocess.Popen(
            [sys.executable, str(script), str(target), f"g{generation}", "1", str(count), "0"],
            start_new_session=True,  # kill its git children too, mid-write
        )
        time.sleep(rng.uniform(0.05, 0.3))  # a whole run takes about 0.25 s here: land anywhere in it
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

        after = gitrepos.head(target)
        if after == before:
            assert gitrepos.files_at(target) == before_files
        else:
            name = f"g{generation}"
            expected = {**before_files, f"{name}/0.txt": f"{name} round 0\n".encode()}
            expected.update((f"big/d{i % 40}/f{i}.yaml", f"{name}: {i}\n".encode()) for i in range(count))
            assert gitrepos.history(target)[0] == f"{after} {before}"
            assert gitrepos.files_at(target) == expected
        gitrepos.fsck(target)

    result = publish.publish(
        repo, lambda s: ({**s.files, "after-kills": b"ok"}, "after the kills"), stale_lock_seconds=1.0
    )
    assert result.changed and gitrepos.files_at(target)["after-kills"] == b"ok"
    gitrepos.fsck(target)


def test_similar_files_written_together_are_not_chained_into_long_deltas(tmp_path: Path) -> None:
    """Bookkeeping shards look alike and are written one after another; a compile reads them back, and each delta
    in a blob's chain is applied on every read. So a publish chains them no deeper than `gitio.DELTA_DEPTH`."""
    common = "".join(
        f'{{"path":"resources/team-{j % 7}/app-{j}/configmap.yaml","owner":"App {j}"}}\n' for j in range(400)
    )
    # 120 files: fast-import writes fewer than 100 objects loose, without deltas.
    shards = {f".kratix/provenance/worker-{i:02}.jsonl": f'{{"worker":{i}}}\n{common}'.encode() for i in range(120)}
    repo = publish.open_output_repo(str(tmp_path / "state"), branch="main")
    publish.publish(repo, fixed(shards), date=DATE)

    deepest = 0
    for index in (tmp_path / "state" / "objects" / "pack").glob("*.idx"):
        for line in gitrepos.git(tmp_path / "state", "verify-pack", "-v", str(index)).splitlines():
            if line.startswith("chain length = "):
                deepest = max(deepest, int(line.split()[3].rstrip(":")))
    assert 0 < deepest <= gitio.DELTA_DEPTH  # deltas are made (the pack stays small), and their chains stay short


def test_a_compile_that_hands_its_files_to_git_as_it_makes_them_writes_the_same_tree(tmp_path: Path) -> None:
    # What `compile --output-repo` does on a large platform (`gitio.BlobWriter`): every file becomes a blob as
    # soon as nothing reads it again, except those of an aggregated Destination, whose one file is made of them.
    from kratix.compile import pipeline
    from kratix.model.documents import BlobRef, SourceTree, blob_id
    from kratix.model.settings import Settings
    from tests.platforms import database, platform_files

    files = platform_files(**{f"team-{i % 2}/db-{i}": database(f"db-{i}", replicas=1 + i % 3) for i in range(6)})
    files["clusters/dev-2.yaml"] += "  filepath:\n    mode: aggregatedYAML\n"
    tree = SourceTree({path: text.encode() for path, text in files.items()}, commit="c" * 40)
    kept = pipeline.compile_platform(tree, settings=Settings())
    repo = gitrepos.init_repo(tmp_path / "out.git", bare=True)
    with gitio.BlobWriter(repo, hold=0) as writer:
        streamed = pipeline.compile_platform(tree, settings=Settings(), store=lambda path, data: writer.store(data))

    assert {p: blob_id(c) for p, c in streamed.files.items()} == {p: blob_id(c) for p, c in kept.files.items()}
    blobs = {p: c for p, c in streamed.files.items() if isinstance(c, BlobRef)}
    assert any(p.startswith(".kratix/status/") for p in blobs) and any(p.startswith("dev-1/") for p in blobs)
    assert any(p.startswith("dev-2/") for p in streamed.files)
    assert not any(p.startswith("dev-2/") for p in blobs)  # the aggregated Destination's parts stay bytes
    listed = gitrepos.git(
        repo, "cat-file", "--batch-check", input="".join(c.oid + "\n" for c in blobs.values()).encode()
    )
    assert "missing" not in listed and listed.count(" blob ") == len(blobs)
    previous = pipeline.PreviousOutput()
    assert pipeline.commit_message(tree, streamed, previous) == pipeline.commit_message(tree, kept, previous)
