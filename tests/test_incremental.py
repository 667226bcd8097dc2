"""The request cache changes how much work a compile does, never what it produces: compiling against a previous
output with its cache gives the same bytes as compiling against it with the cache removed."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kratix.compile import pipeline
from kratix.model import paths
from kratix.model.documents import SourceTree
from kratix.model.settings import Settings
from tests.gitrepos import commit_files, files_at, git, make_repo
from tests.platforms import database, destination, kratix, platform_files

SETTINGS = Settings()


def first_output(files: dict[str, str]) -> pipeline.PreviousOutput:
    tree = SourceTree({k: v.encode() for k, v in files.items()}, commit="a" * 40)
    result = pipeline.compile_platform(tree, settings=SETTINGS)
    return pipeline.PreviousOutput(result.files, "c" * 40)


def both_ways(
    files: dict[str, str], previous: pipeline.PreviousOutput
) -> tuple[pipeline.CompileResult, pipeline.CompileResult]:
    tree = SourceTree({k: v.encode() for k, v in files.items()}, commit="b" * 40)
    with_cache = pipeline.compile_platform(tree, settings=SETTINGS, previous=previous)
    no_cache = pipeline.PreviousOutput(
        {k: v for k, v in previous.files.items() if not paths.is_cache_shard(k)}, previous.commit
    )
    without = pipeline.compile_platform(tree, settings=SETTINGS, previous=no_cache)
    return with_cache, without


def base() -> dict[str, str]:
    return platform_files(**{f"team-{i % 3}/db-{i}": database(f"db-{i}") for i in range(12)})


CHANGES: dict[str, Callable[[dict[str, str]], None]] = {
    "nothing": lambda f: None,
    "one request changed": lambda f: f.update({"requests/team-1/db-4.yaml": database("db-4", replicas=3)}),
    "one request added": lambda f: f.update({"requests/team-0/new.yaml": database("new")}),
    "one request removed": lambda f: f.pop("requests/team-2/db-5.yaml"),
    "one request broken": lambda f: f.update({"requests/team-0/db-0.yaml": database("db-0", replicas=77)}),
    "template changed": lambda f: f.update(
        {
            "promises/database/templates/configmap.yaml.j2": f["promises/database/templates/configmap.yaml.j2"]
            + "  extra: x\n"
        }
    ),
    "destination added": lambda f: f.update({"clusters/dev-3.yaml": destination("dev-3", {"env": "dev"})}),
    "destination relabelled": lambda f: f.update({"clusters/dev-1.yaml": destination("dev-1", {"env": "gone"})}),
    "duplicate of a cached request": lambda f: f.update({"requests/team-1/aaa.yaml": database("db-1")}),
    "two requests in one file": lambda f: f.update(
        {"requests/team-2/db-2.yaml": database("db-2") + "---\n" + database("db-2b")}
    ),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_the_cache_never_changes_the_output(change: str) -> None:
    previous = first_output(base())
    files = base()
    CHANGES[change](files)
    with_cache, without = both_ways(files, previous)
    assert with_cache.files == without.files
    assert with_cache.diagnostics == without.diagnostics
    assert with_cache.summary == without.summary


def test_unchanged_requests_are_reused_and_changed_ones_are_not() -> None:
    previous = first_output(base())
    files = base()
    CHANGES["one request changed"](files)
    tree = SourceTree({k: v.encode() for k, v in files.items()}, commit="b" * 40)
    result = pipeline.compile_platform(tree, settings=SETTINGS, previous=previous)
    reused = {key for key, status in result.requests.items() if status.reused}
    assert reused == {f"Database team-{i % 3}/db-{i}" for i in range(12)} - {"Database team-1/db-4"}
    again = pipeline.compile_platform(tree, settings=SETTINGS, previous=pipeline.PreviousOutput(result.files, "d" * 40))
    assert all(status.reused for status in again.requests.values())
    assert again.files == result.files


def test_a_template_change_invalidates_every_request_of_that_promise() -> None:
    previous = first_output(base())
    files = base()
    CHANGES["template changed"](files)
    tree = SourceTree({k: v.encode() for k, v in files.items()}, commit="b" * 40)
    result = pipeline.compile_platform(tree, settings=SETTINGS, previous=previous)
    assert not any(status.reused for status in result.requests.values())


def test_rebuild_renders_everything_again_and_changes_nothing() -> None:
    from kratix.model.settings import RenderSettings

    previous = first_output(base())
    tree = SourceTree({k: v.encode() for k, v in base().items()}, commit="b" * 40)
    rebuilt = pipeline.compile_platform(
        tree, settings=Settings(render=RenderSettings(reuse_unchanged=False)), previous=previous
    )
    assert not any(status.reused for status in rebuilt.requests.values())
    reused = pipeline.compile_platform(tree, settings=SETTINGS, previous=previous)
    assert rebuilt.files == reused.files


def test_a_new_request_clashing_with_a_reused_one_fails_as_it_would_without_the_cache() -> None:
    files = platform_files(**{"team-a/a": database("a")})
    files["promises/database/templates/shared.yaml.j2"] = (
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shared-{{ request.spec.size }}\n"
    )
    files["clusters/dev-2.yaml"] = destination("dev-2", {"env": "elsewhere"})  # one destination for all
    previous = first_output(files)
    files["requests/team-a/b.yaml"] = database("b")
    with_cache, without = both_ways(files, previous)
    assert with_cache.requests["Database team-a/a"].reused
    assert with_cache.files == without.files and with_cache.diagnostics == without.diagnostics
    assert with_cache.requests["Database team-a/b"].failed_now
    assert any("Namespace/shared-small" in d.message for d in with_cache.diagnostics)


# --- through the CLI: a compile that reads only what changed since the last publish --------------------------


def _compile(platform: Path, output: Path, *extra: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = kratix(
        "compile",
        str(platform),
        "--ref",
        "HEAD",
        "--output-repo",
        str(output),
        "--format",
        "json",
        "--quiet",
        "--allow-deletions",
        *extra,
        env=env,
    )
    assert result.returncode in (0, 1) and result.stdout, result.stderr
    return json.loads(result.stdout)


def _tree(repo: Path) -> str:
    return git(repo, "rev-parse", "main^{tree}").strip()


DELTA_STEPS: list[tuple[str, Callable[[Path], None], str]] = [
    ("edit a request", lambda r: _write(r, {"requests/team-1/db-4.yaml": database("db-4", replicas=3)}), "changes"),
    (
        "add a request",
        lambda r: _write(r, {"requests/team-0/new.yaml": database("new", size="large", replicas=2)}),
        "changes",
    ),
    ("add a namespace", lambda r: _write(r, {"requests/team-9/solo.yaml": database("solo")}), "changes"),
    ("delete a request", lambda r: _remove(r, "requests/team-2/db-5.yaml"), "changes"),
    ("delete a namespace's last request", lambda r: _remove(r, "requests/team-9/solo.yaml"), "changes"),
    ("change nothing", lambda r: None, "changes"),
    (
        "two requests in one file",
        lambda r: _write(r, {"requests/team-2/db-2.yaml": database("db-2") + "---\n" + database("db-2b")}),
        "changes",
    ),
    (
        "move a request to another file",
        lambda r: _move(r, "requests/team-1/db-10.yaml", "requests/team-1/z.yaml"),
        "changes",
    ),
    (
        "move a request to another namespace",
        lambda r: _move(r, "requests/team-1/z.yaml", "requests/team-0/db-10.yaml"),
        "changes",
    ),
    (
        "break a file's YAML (its request is held as it was)",
        lambda r: _write(r, {"requests/team-2/db-8.yaml": "kind: [oops\n"}),
        "changes",
    ),
    (
        "fix the YAML (a held request is compiled again: everything is read)",
        lambda r: _write(r, {"requests/team-2/db-8.yaml": database("db-8")}),
        "everything",
    ),
    ("break a request", lambda r: _write(r, {"requests/team-0/db-0.yaml": database("db-0", replicas=77)}), "changes"),
    (
        "fix it (the broken request is compiled again: everything is read)",
        lambda r: _write(r, {"requests/team-0/db-0.yaml": database("db-0", replicas=2)}),
        "everything",
    ),
    (
        "change a Promise",
        lambda r: _write(
            r,
            {
                "promises/database/templates/configmap.yaml.j2": (
                    r / "promises/database/templates/configmap.yaml.j2"
                ).read_text()
                + "  extra: x\n"
            },
        ),
        "everything",
    ),
    (
        "edit a request after the Promise changed",
        lambda r: _write(r, {"requests/team-1/db-1.yaml": database("db-1", size="large", replicas=3)}),
        "changes",
    ),
    (
        "change a destination",
        lambda r: _write(r, {"clusters/dev-1.yaml": destination("dev-1", {"env": "gone"})}),
        "everything",
    ),
    (
        "relabel it back (requests left misplaced are compiled again: everything is read)",
        lambda r: _write(r, {"clusters/dev-1.yaml": destination("dev-1", {"env": "dev"})}),
        "everything",
    ),
    (
        "add a destination",
        lambda r: _write(r, {"clusters/dev-3.yaml": destination("dev-3", {"env": "dev"})}),
        "everything",
    ),
    (
        "request what an unchanged file requests",
        lambda r: _write(r, {"requests/team-1/aaa.yaml": database("db-7")}),
        "everything",
    ),
    (
        "delete the duplicate (compiled again: everything is read)",
        lambda r: _remove(r, "requests/team-1/aaa.yaml"),
        "everything",
    ),
    (
        "edit two requests in two namespaces",
        lambda r: _write(
            r,
            {
                "requests/team-0/db-3.yaml": database("db-3", note="x"),
                "requests/team-2/db-8.yaml": database("db-8", replicas=4),
            },
        ),
        "changes",
    ),
]


def _write(repo: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)


def _remove(repo: Path, name: str) -> None:
    (repo / name).unlink()


def _move(repo: Path, source: str, target: str) -> None:
    (repo / source).rename(repo / target)


def test_reading_only_the_change_publishes_what_a_rebuild_publishes(tmp_path: Path) -> None:
    """Over a sequence of changes, each compile publishes the very tree (and reports the very summary and
    diagnostics) that `--rebuild` publishes on a copy of the same branch; request-only changes are read alone."""
    files = base()
    # One file holding every workload: what a change leaves of others' output is read back into it.
    files["clusters/agg-1.yaml"] = destination("agg-1", {"env": "dev"}).replace(
        "spec:\n", "spec:\n  filepath:\n    mode: aggregatedYAML\n"
    )
    platform, _ = make_repo(tmp_path / "platform", files)
    output = tmp_path / "output.git"
    first = _compile(platform, output)
    assert "agg-1/aggregated.yaml" in files_at(output)
    assert first["read"]["only"] == "everything"
    assert _compile(platform, output)["read"] == {"only": "changes"}  # nothing changed: nothing more to read
    for step, (name, change, expected) in enumerate(DELTA_STEPS):
        change(platform)
        git(platform, "add", "--all")
        git(platform, "commit", "--quiet", "--allow-empty", "-m", name)
        rebuilt = tmp_path / f"rebuilt-{step}.git"
        shutil.copytree(output, rebuilt)
        fast, slow = _compile(platform, output), _compile(platform, rebuilt, "--rebuild")
        assert fast["read"]["only"] == expected, (name, fast["read"])
        assert _tree(output) == _tree(rebuilt), name
        assert fast["summary"] == slow["summary"], name
        assert fast["diagnostics"] == slow["diagnostics"], name
        assert fast["publish"]["changed"] == slow["publish"]["changed"], name
    assert "db-2b" in files_at(output)[".kratix/cache/team-2.jsonl"].decode()


def test_an_output_branch_edited_by_hand_or_from_before_totals_is_read_whole_once(tmp_path: Path) -> None:
    platform, _ = make_repo(tmp_path / "platform", base())
    output = tmp_path / "output.git"
    _compile(platform, output)
    # As an older kratix left it: no totals, no Output-Tree trailer.
    scratch = tmp_path / "scratch"
    git(tmp_path, "clone", "--quiet", str(output), str(scratch))
    git(scratch, "rm", "--quiet", ".kratix/totals.json")
    git(scratch, "commit", "--quiet", "-m", "as before totals")
    git(scratch, "push", "--quiet", "origin", "main")
    _write(platform, {"requests/team-1/db-4.yaml": database("db-4", replicas=3)})
    commit_files(platform, {})
    again = _compile(platform, output)
    assert again["read"]["only"] == "everything"
    assert ".kratix/totals.json" in files_at(output)
    _write(platform, {"requests/team-1/db-4.yaml": database("db-4", replicas=4)})
    commit_files(platform, {})
    assert _compile(platform, output)["read"] == {"only": "changes"}


def test_a_one_request_change_reads_only_what_it_reaches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kratix import gitio, load
    from kratix.cli import publishing
    from kratix.publish import commit as publish

    platform, _ = make_repo(tmp_path / "platform", base())
    output = tmp_path / "output.git"
    _compile(platform, output)
    _write(platform, {"requests/team-1/db-4.yaml": database("db-4", replicas=3)})
    commit_files(platform, {})
    read: list[str] = []
    listed: list[bool] = []
    inputs: list[tuple[str, ...] | None] = []
    real_get, real_iter, real_read = gitio.TreeReader.__getitem__, gitio.TreeReader.__iter__, publishing_read()
    monkeypatch.setattr(gitio.TreeReader, "__getitem__", lambda self, p: read.append(p) or real_get(self, p))
    monkeypatch.setattr(gitio.TreeReader, "__iter__", lambda self: listed.append(True) or real_iter(self))
    monkeypatch.setattr(
        "kratix.load.read_commit",
        lambda root, ref, only=None, **rest: inputs.append(only) or real_read(root, ref, only=only, **rest),
    )
    outcome = publishing.publish_delta(
        platform, "HEAD", publish.open_output_repo(str(output), branch="main"), Settings()
    )
    assert not isinstance(outcome, str), outcome
    assert not listed  # the output tree is never listed
    folders = tuple(f"{folder}/" for folder in load.INPUT_FOLDERS if folder != "requests")  # promises/, clusters/...
    assert inputs == [(*folders, "requests/team-1/db-4.yaml")]  # ...and not the other request files
    shards = {p for p in read if paths.is_cache_shard(p) or paths.is_provenance_shard(p)}
    reached = {e.destination for e in outcome[0].provenance.values()}
    assert len(reached) == 1  # of three destinations: the one the request is placed on
    assert shards == {".kratix/cache/team-1.jsonl", *(paths.provenance_shard(d) for d in reached)}
    assert paths.PLACEMENTS not in read  # the edit keeps its placement: the platform-wide file is not read
    assert not any(p.startswith(".kratix/status/") and "db-4" not in p for p in read)


def publishing_read() -> Callable[..., SourceTree]:
    from kratix import load

    return load.read_commit


def test_changes_are_published_only_on_the_commit_they_were_computed_against(tmp_path: Path) -> None:
    from kratix.publish import commit as publish

    platform, _ = make_repo(tmp_path / "platform", base())
    output = tmp_path / "output.git"
    _compile(platform, output)
    before = git(output, "rev-parse", "main").strip()
    tree = _tree(output)
    assert f"Output-Tree: {tree}" in git(output, "log", "-1", "--format=%B", "main")  # what kratix wrote
    repo = publish.open_output_repo(str(output), branch="main")
    scratch = tmp_path / "scratch"
    git(tmp_path, "clone", "--quiet", str(output), str(scratch))
    commit_files(scratch, {"README.md": "placed by hand\n"})
    git(scratch, "push", "--quiet", "origin", "main")
    moved = git(output, "rev-parse", "main").strip()
    assert publish.publish_changes(repo, before, tree, {"x.yaml": b"a: 1\n"}, "m\n") is None
    assert git(output, "rev-parse", "main").strip() == moved
    written = publish.publish_changes(
        repo, moved, git(output, "rev-parse", "main^{tree}").strip(), {"x.yaml": b"a: 1\n", "README.md": None}, "m\n"
    )
    assert written is not None and written.changed
    assert set(files_at(output)) == set(files_at(output, f"{before}")) | {"x.yaml"}


def test_the_git_processes_a_promise_change_starts_do_not_grow_with_its_requests(tmp_path: Path) -> None:
    """Every request of a changed Promise runs again and sees its previous status in object.yaml; git is asked for
    all of those statuses at once, so 24 requests start exactly as many git processes as 4 (one each: thousands)."""
    real_git = shutil.which("git")
    assert real_git is not None
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "git").write_text(f'#!/bin/sh\necho "$*" >> "$KRATIX_TEST_GIT_LOG"\nexec {real_git} "$@"\n')
    (shim / "git").chmod(0o755)

    def processes(count: int) -> list[str]:
        files = platform_files(**{f"team-{i % 3}/db-{i}": database(f"db-{i}") for i in range(count)})
        platform, _ = make_repo(tmp_path / f"platform-{count}", files)
        output = tmp_path / f"output-{count}.git"
        _compile(platform, output)
        template = platform / "promises/database/templates/configmap.yaml.j2"
        template.write_text(template.read_text() + "  extra: x\n")
        commit_files(platform, {})
        log = tmp_path / f"git-{count}.log"
        log.touch()
        path = f"{shim}{os.pathsep}{os.environ['PATH']}"
        report = _compile(platform, output, env={"PATH": path, "KRATIX_TEST_GIT_LOG": str(log)})
        assert report["summary"]["placed"] == count and report["publish"]["changed"]
        return log.read_text().splitlines()

    few, many = processes(4), processes(24)
    assert len(many) == len(few), (few, many)
