"""The git wrapper against real repos: clean environment, resolving refs, reading trees, writing commits."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from kratix import gitio
from kratix.model.documents import BlobRef
from kratix.model.errors import SourceError
from tests import gitrepos
from tests.gitrepos import commit_files, git, init_repo, make_repo

FILES = {
    "promises/db/promise.yaml": "kind: Promise\n",
    "requests/team-a/db.yaml": "kind: Database\n",
    "clusters/dev.yaml": "kind: Destination\n",
    "docs/with space/ünïcode.md": "# hi\n",
    "bin/blob.dat": bytes(range(256)) * 4,
}


def as_bytes(files: dict[str, str | bytes]) -> dict[str, bytes]:
    return {path: data.encode() if isinstance(data, str) else data for path, data in files.items()}


@pytest.fixture()
def two_commits(tmp_path: Path) -> tuple[Path, str, str]:
    """A repo whose first commit holds FILES, the second changes them, and whose work tree differs again."""
    repo, first = gitrepos.make_repo(tmp_path / "input", FILES)
    second = gitrepos.commit_files(
        repo, {"requests/team-a/db.yaml": "kind: Database\nspec: {}\n"}, remove=["clusters/dev.yaml"]
    )
    (repo / "requests/team-a/db.yaml").write_text("uncommitted edit\n")
    (repo / "untracked.yaml").write_text("not in any commit\n")
    return repo, first, second


def test_run_git_ignores_inherited_git_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, _ = gitrepos.make_repo(tmp_path / "mine", {"a": "1"})
    other, _ = gitrepos.make_repo(tmp_path / "other", {"b": "2"})
    # What a git hook or an IDE terminal may leave behind: without cleaning, git would act on `other`.
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other / ".git" / "index"))
    monkeypatch.setenv("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")

    git_dir = gitio.run_git(repo, "rev-parse", "--absolute-git-dir").decode().strip()

    assert Path(git_dir) == (repo / ".git").resolve()
    assert gitio.clean_env()["GIT_SSH_COMMAND"] == "ssh -o BatchMode=yes"  # how to reach remotes is kept


def test_run_git_failure_carries_gits_message(tmp_path: Path) -> None:
    repo, _ = gitrepos.make_repo(tmp_path / "r", {"a": "1"})
    with pytest.raises(gitio.GitCommandError, match="no-such-subcommand"):
        gitio.run_git(repo, "no-such-subcommand")
    assert gitio.run_git(repo, "cat-file", "-e", "0" * 40, check=False) == b""


@pytest.mark.parametrize(
    "target",
    [
        "https://github.com/org/state.git",
        "http://git.local/state",
        "ssh://git@github.com/org/state.git",
        "git@github.com:org/state.git",
        "github.com:org/state.git",
        "file:///srv/git/state.git",
        "git://git.local/state",
    ],
)
def test_is_git_url_accepts_remotes(target: str) -> None:
    assert gitio.is_git_url(target)


@pytest.mark.parametrize("target", ["./state", "state", "/srv/git/state.git", "../out", "./dir:with:colons", "~/s"])
def test_is_git_url_rejects_local_paths(target: str) -> None:
    assert not gitio.is_git_url(target)


def test_resolve_commit_names_branches_tags_and_short_ids(two_commits: tuple[Path, str, str]) -> None:
    repo, first, second = two_commits
    gitrepos.git(repo, "tag", "v1", first)
    gitrepos.git(repo, "tag", "-a", "-m", "annotated", "v2", second)

    assert gitio.resolve_commit(repo, "main") == second
    assert gitio.resolve_commit(repo, "HEAD~1") == first
    assert gitio.resolve_commit(repo, "v1") == first
    assert gitio.resolve_commit(repo, "v2") == second  # an annotated tag peels to its commit
    assert gitio.resolve_commit(repo, first[:10]) == first


@pytest.mark.parametrize("ref", ["no-such-branch", "v9.9", "--output=/tmp/x", "0123456789abcdef"])
def test_resolve_commit_of_an_unknown_ref_is_a_source_error_naming_it(
    two_commits: tuple[Path, str, str], ref: str
) -> None:
    repo, _, _ = two_commits
    with pytest.raises(SourceError, match=f"'{ref}'"):
        gitio.resolve_commit(repo, ref)


def test_resolve_commit_outside_a_repo_says_so(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a git repository"):
        gitio.resolve_commit(tmp_path, "main")


def test_read_tree_returns_the_commit_not_the_work_tree(two_commits: tuple[Path, str, str]) -> None:
    repo, first, second = two_commits

    assert gitio.read_tree(repo, first) == as_bytes(FILES)
    at_second = gitio.read_tree(repo, "main")
    assert at_second == gitrepos.files_at(repo, second)  # git archive agrees
    assert at_second["requests/team-a/db.yaml"] == b"kind: Database\nspec: {}\n"
    assert "clusters/dev.yaml" not in at_second and "untracked.yaml" not in at_second


def test_read_tree_under_a_prefix_keeps_repo_relative_paths(two_commits: tuple[Path, str, str]) -> None:
    repo, first, _ = two_commits

    assert gitio.read_tree(repo, first, prefix="requests") == {"requests/team-a/db.yaml": b"kind: Database\n"}
    assert gitio.read_tree(repo, first, prefix="docs/with space/") == {"docs/with space/ünïcode.md": b"# hi\n"}
    assert gitio.read_tree(repo, first, prefix="request") == {}  # a folder, not a string prefix


def test_read_tree_includes_executables_and_skips_symlinks(tmp_path: Path) -> None:
    repo, _ = gitrepos.make_repo(tmp_path / "r", {"run.sh": "#!/bin/sh\n", "a.yaml": "a: 1\n"})
    (repo / "run.sh").chmod(0o755)
    (repo / "link.yaml").symlink_to("a.yaml")
    gitrepos.commit_files(repo, {})

    assert gitio.read_tree(repo, "main") == {"run.sh": b"#!/bin/sh\n", "a.yaml": b"a: 1\n"}


def test_read_tree_of_a_bare_repo(tmp_path: Path) -> None:
    bare, commit = gitrepos.make_bare_with(tmp_path / "b.git", FILES)
    assert gitio.read_tree(bare, commit) == as_bytes(FILES)


def signature() -> gitio.Signature:
    return gitio.Signature("Kratix", "kratix@localhost", 1700000000)


def test_write_commit_writes_objects_without_moving_any_ref(tmp_path: Path) -> None:
    repo, first = gitrepos.make_repo(tmp_path / "r", {"keep": "k", "drop": "d", "edit": "old"})
    refs_before = gitrepos.git(repo, "for-each-ref")

    written = gitio.write_commit(
        repo,
        parent=first,
        changes={"drop": None, "edit": b"new", "add/deep/file": b"\x00binary"},
        replace_all=False,
        message="change",
        author=signature(),
    )

    assert gitrepos.git(repo, "for-each-ref") == refs_before  # no branch moved, the temporary ref is gone
    assert gitrepos.git(repo, "rev-parse", f"{written.commit}^").strip() == first
    assert gitrepos.git(repo, "rev-parse", f"{written.commit}^{{tree}}").strip() == written.tree
    assert gitrepos.files_at(repo, written.commit) == {
        "keep": b"k",
        "edit": b"new",
        "add/deep/file": b"\x00binary",
    }
    assert "author Kratix <kratix@localhost> 1700000000 +0000" in gitrepos.git(repo, "cat-file", "-p", written.commit)


def test_write_commit_is_reproducible_byte_for_byte(tmp_path: Path) -> None:
    ids = set()
    for name in ("one", "two"):
        repo = gitrepos.init_repo(tmp_path / name, bare=True)
        written = gitio.write_commit(
            repo,
            parent=None,
            changes={"a/b": b"1", "c": b"2"},
            replace_all=True,
            message="m",
            author=signature(),
        )
        ids.add(written.commit)
    assert len(ids) == 1


def test_write_commit_quotes_awkward_paths(tmp_path: Path) -> None:
    repo = gitrepos.init_repo(tmp_path / "r", bare=True)
    files = {'"quoted" name': b"q", "back\\slash": b"b", "sp ace/tab\there": b"t", "ü/ñ": b"u"}
    written = gitio.write_commit(
        repo, parent=None, changes=dict(files), replace_all=True, message="m", author=signature()
    )
    assert gitrepos.files_at(repo, written.commit) == files


@pytest.mark.parametrize(
    "paths",
    [
        ["/abs"],
        ["a/../b"],
        ["a//b"],
        ["a/"],
        ["./a"],
        [""],
        [".git/config"],
        ["x/.GIT/y"],
        ["a\nb"],
        ["a", "a/b"],
    ],
)
def test_check_paths_rejects_what_cannot_be_a_tree(paths: list[str]) -> None:
    assert gitio.check_paths(paths)


def test_check_paths_accepts_dotfiles_and_nested_folders() -> None:
    assert gitio.check_paths([".kratix/state.json", "a/b/c", "a/bc", "a.b/c", "..hidden"]) == []


def test_delete_stale_temp_refs_keeps_fresh_ones(tmp_path: Path) -> None:
    repo, commit = gitrepos.make_repo(tmp_path / "r", {"a": "1"})
    old = f"{gitio.TEMP_REF_PREFIX}1000000000000000000-1-dead"
    fresh = f"{gitio.TEMP_REF_PREFIX}{time.time_ns()}-2-beef"
    gitrepos.git(repo, "update-ref", old, commit)
    gitrepos.git(repo, "update-ref", fresh, commit)

    gitio.delete_stale_temp_refs(repo, older_than_seconds=3600)

    assert gitrepos.git(repo, "for-each-ref", "--format=%(refname)", gitio.TEMP_REF_PREFIX).split() == [fresh]


def test_delete_stale_temp_refs_finds_packed_ones_too(tmp_path: Path) -> None:
    repo = gitrepos.init_repo(tmp_path / "r.git", bare=True)
    commit = gitio.write_commit(
        repo, parent=None, changes={"a": b"1"}, replace_all=True, message="m", author=signature()
    ).commit
    old = f"{gitio.TEMP_REF_PREFIX}1000000000000000000-1-dead"
    gitrepos.git(repo, "update-ref", old, commit)
    gitrepos.git(repo, "pack-refs", "--all")  # now only in packed-refs, as `git gc` leaves them
    assert not (repo / gitio.TEMP_REF_PREFIX / "1000000000000000000-1-dead").exists()

    gitio.delete_stale_temp_refs(repo, older_than_seconds=3600)

    assert gitrepos.git(repo, "for-each-ref", gitio.TEMP_REF_PREFIX) == ""


def test_a_tree_reader_answers_paths_of_one_commit_as_asked(tmp_path: Path) -> None:
    repo, commit = make_repo(tmp_path / "r", {"a/b.yaml": "x: 1\n", "c d.txt": "c\n"})
    with gitio.TreeReader(repo, commit) as files:
        assert "a/b.yaml" in files and "c d.txt" in files
        assert "a" not in files and "nope.yaml" not in files  # a folder is not a file
        assert files["a/b.yaml"] == b"x: 1\n"
        assert files.oid("c d.txt") == git(repo, "rev-parse", f"{commit}:c d.txt").strip()
        with pytest.raises(KeyError):
            files["a"]
        assert sorted(files) == ["a/b.yaml", "c d.txt"]


def test_changed_paths_are_what_git_diff_tree_says(tmp_path: Path) -> None:
    repo, first = make_repo(tmp_path / "r", {"keep": "k\n", "edit": "1\n", "gone": "g\n"})
    second = commit_files(repo, {"edit": "2\n", "new/file": "n\n"}, remove=["gone"])
    assert sorted(gitio.changed_paths(repo, first, second) or []) == ["edit", "gone", "new/file"]
    assert gitio.changed_paths(repo, second, second) == []
    assert gitio.changed_paths(repo, "0" * 40, second) is None  # not in this repo: nothing to compare with


def test_a_commit_can_carry_its_own_tree_id_as_a_trailer(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "out.git", bare=True)
    written = gitio.write_commit(
        repo,
        parent=None,
        changes={"a": b"1\n"},
        replace_all=False,
        message="title\n\nSource-Commit: abc\n",
        author=gitio.Signature("K", "k@x", 1),
        tree_trailer="Output-Tree",
    )
    message = git(repo, "log", "-1", "--format=%B", written.commit)
    assert (
        gitio.trailer(message, "Output-Tree")
        == written.tree
        == git(repo, "rev-parse", f"{written.commit}^{{tree}}").strip()
    )
    assert gitio.trailer(message, "Source-Commit") == "abc"  # one trailer block
    assert (
        git(repo, "log", "-1", "--format=%(trailers:key=Output-Tree,valueonly)", written.commit).strip() == written.tree
    )


def test_a_commit_with_its_tree_trailer_is_the_commit_git_commit_tree_makes(tmp_path: Path) -> None:
    repo, first = gitrepos.make_repo(tmp_path / "r", {"keep": "k", "edit": "old"})
    refs_before = gitrepos.git(repo, "for-each-ref")
    written = gitio.write_commit(
        repo,
        parent=first,
        changes={"edit": b"new", "add": b"a"},
        replace_all=False,
        message="title\n\nSource-Commit: abc\n",
        author=signature(),
        tree_trailer="Output-Tree",
    )
    assert gitrepos.git(repo, "for-each-ref") == refs_before  # fast-import wrote no ref, not even for a moment
    env = {
        "GIT_AUTHOR_NAME": "Kratix",
        "GIT_AUTHOR_EMAIL": "kratix@localhost",
        "GIT_AUTHOR_DATE": "@1700000000 +0000",
        "GIT_COMMITTER_NAME": "Kratix",
        "GIT_COMMITTER_EMAIL": "kratix@localhost",
        "GIT_COMMITTER_DATE": "@1700000000 +0000",
    }
    message = f"title\n\nSource-Commit: abc\nOutput-Tree: {written.tree}\n"
    expected = subprocess.run(
        ["git", "-C", str(repo), "commit-tree", written.tree, "-p", first],
        input=message.encode(),
        capture_output=True,
        env={**gitrepos.git_env(), **env},
        check=True,
    ).stdout.decode()
    assert written.commit == expected.strip()
    assert gitrepos.files_at(repo, written.commit) == {"keep": b"k", "edit": b"new", "add": b"a"}


def test_write_commit_that_git_refuses_raises_at_once_and_leaves_no_ref(tmp_path: Path) -> None:
    repo, first = gitrepos.make_repo(tmp_path / "r", {"a": "1"})
    refs_before = gitrepos.git(repo, "for-each-ref")
    started = time.monotonic()
    with pytest.raises(gitio.GitCommandError, match="fast-import"):
        gitio.write_commit(
            repo,
            parent=first,
            changes={"b": BlobRef("0" * 40)},  # no such blob
            replace_all=False,
            message="m",
            author=signature(),
            tree_trailer="Output-Tree",
        )
    assert time.monotonic() - started < 10
    assert gitrepos.git(repo, "for-each-ref") == refs_before


def test_a_blob_writer_stores_blobs_a_commit_can_name(tmp_path: Path) -> None:
    repo = gitrepos.init_repo(tmp_path / "out.git", bare=True)
    contents = [b"kind: ConfigMap\n", b"\x00binary", b"kind: ConfigMap\n", b""]  # a repeat, and empty
    with gitio.BlobWriter(repo, hold=0) as writer:
        refs = [writer.store(data) for data in contents]
    assert all(isinstance(r, BlobRef) for r in refs)
    assert [r.oid for r in refs] == [
        gitrepos.git(repo, "hash-object", "--stdin", input=data).strip() for data in contents
    ]
    assert all(r.made for r in refs)
    written = gitio.write_commit(
        repo,
        parent=None,
        changes={f"f{i}": ref for i, ref in enumerate(refs)},
        replace_all=True,
        message="m",
        author=signature(),
    )
    assert gitrepos.files_at(repo, written.commit) == {f"f{i}": data for i, data in enumerate(contents)}
    gitrepos.git(repo, "fsck", "--strict")


def test_a_blob_writer_given_up_on_leaves_the_repo_sound(tmp_path: Path) -> None:
    repo = gitrepos.init_repo(tmp_path / "out.git", bare=True)
    refs_before = gitrepos.git(repo, "for-each-ref")
    with pytest.raises(RuntimeError), gitio.BlobWriter(repo, hold=0) as writer:
        writer.store(b"half of a compile\n")
        raise RuntimeError("the compile failed")
    assert gitrepos.git(repo, "for-each-ref") == refs_before
    gitrepos.git(repo, "fsck", "--strict")


def test_a_blob_writer_that_cannot_write_says_why(tmp_path: Path) -> None:
    (tmp_path / "not-a-repo").mkdir()
    writer = gitio.BlobWriter(tmp_path / "not-a-repo", hold=0)
    for _ in range(3):  # more than a pipe holds would hang if nothing read it
        writer.store(b"x" * 100_000)
    with pytest.raises(gitio.GitCommandError, match="fast-import"):
        writer.close()


def test_a_blob_writer_hands_back_what_it_holds_and_writes_the_rest(tmp_path: Path) -> None:
    repo = gitrepos.init_repo(tmp_path / "out.git", bare=True)
    with gitio.BlobWriter(repo, hold=10) as writer:
        first, second, third = writer.store(b"0123456"), writer.store(b"789ab"), writer.store(b"cd")
    assert (first, second) == (b"0123456", b"789ab")  # a small compile starts no fast-import
    assert isinstance(third, BlobRef)
    assert gitrepos.git(repo, "cat-file", "-p", third.oid) == "cd"


def test_lazy_blobs_let_go_of_what_they_read_and_read_it_again_when_asked(tmp_path: Path) -> None:
    repo, commit = gitrepos.make_repo(tmp_path / "r", {"a": "one", "b": "two"})
    oids, _ = gitio.file_oids(repo, commit)
    files = gitio.LazyBlobs(repo, oids)
    files.prefetch(["a", "b"])
    files.release(["a", "missing"])
    assert (files["a"], files["b"]) == (b"one", b"two")
