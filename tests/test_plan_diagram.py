"""The plan of a pull request draws the placements that change as a Mermaid diagram: in `kratix plan`'s Markdown,
in its JSON (`placementMoves`), and in the comment the platform-pr-comment.yml workflow writes from that JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kratix.publish import plan as plans
from tests.gitrepos import commit_files, make_repo
from tests.platforms import database, kratix, platform_files
from tests.test_ci_workflows import REPO, github_script, run_script
from tests.test_graph import as_mermaid_sees_it, mermaid_fixture, parse_mermaid  # noqa: F401 - the fixture `mermaid`


def mermaid_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```mermaid\n(.*?)^```$", markdown, re.M | re.S)


@pytest.fixture
def pull_request(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A base commit with four requests on the two dev destinations, and a head commit that adds a request,
    deletes one, and deletes destination dev-2 (so each request on it moves to dev-1). Returns the repo and
    where each request was at the base, read from `kratix graph` of the base."""
    repo, _ = make_repo(
        tmp_path / "platform", platform_files(**{f"team-a/db-{i}": database(f"db-{i}") for i in range(6)})
    )
    base = parse_mermaid(kratix("graph", str(repo), "--ref", "HEAD").stdout)
    was = {request: source for source, request, _ in base.edges if request.startswith("Database ")}
    assert set(was.values()) == {"dev-1", "dev-2"}, "the sample should use both dev destinations"
    commit_files(
        repo, {"requests/team-a/new.yaml": database("new")}, remove=["requests/team-a/db-0.yaml", "clusters/dev-2.yaml"]
    )
    return repo, was


def test_the_markdown_plan_draws_added_removed_and_moved_placements(pull_request) -> None:
    repo, was = pull_request
    done = kratix("plan", str(repo), "--ref", "HEAD", "--base-ref", "HEAD~1")
    assert done.returncode == 0, done.stderr
    blocks = mermaid_blocks(done.stdout)
    assert len(blocks) == 1, done.stdout
    picture = parse_mermaid(blocks[0])
    expected = {
        ("Database team-a/new", "dev-1", "added"),
        ("Database team-a/db-0", was["Database team-a/db-0"], "removed"),
    }
    moved = sorted(r for r, d in was.items() if d == "dev-2" and r != "Database team-a/db-0")
    assert moved, "some request must have been on dev-2"
    expected |= {(r, "dev-1", "added") for r in moved} | {(r, "dev-2", "removed") for r in moved}
    assert picture.edges == expected
    assert picture.marks("Database team-a/new") == {"added"} and picture.marks("Database team-a/db-0") == {"removed"}
    assert all(picture.marks(r) == {"moved"} for r in moved)
    # Requests that stay where they were are not drawn.
    stayed = [r for r, d in was.items() if d == "dev-1" and r != "Database team-a/db-0"]
    assert not any(r in picture.labels.values() or f"{r} (moved)" in picture.labels.values() for r in stayed)


def test_the_json_plan_lists_the_moves_and_the_comment_workflow_draws_them(
    pull_request, tmp_path: Path, mermaid
) -> None:
    repo, was = pull_request
    done = kratix("plan", str(repo), "--ref", "HEAD", "--base-ref", "HEAD~1", "--format", "json")
    moves = {m["request"]: m for m in json.loads(done.stdout)["plan"]["placementMoves"]}
    assert moves["Database team-a/new"] == {
        "request": "Database team-a/new",
        "before": [],
        "after": ["dev-1"],
        "state": "placed",
    }
    assert moves["Database team-a/db-0"]["after"] == [] and moves["Database team-a/db-0"]["state"] == "deleted"
    results = tmp_path / "results"
    results.mkdir()
    (results / "plan.json").write_text(done.stdout)
    (results / "validate.json").write_text(json.dumps({"diagnostics": []}))
    script = github_script(REPO / ".github" / "workflows" / "platform-pr-comment.yml", "comment")
    body = run_script(tmp_path, script, {"RESULTS": str(results)})[-1]["body"]
    from_comment = parse_mermaid(mermaid_blocks(body)[0])
    from_markdown = parse_mermaid(
        mermaid_blocks(kratix("plan", str(repo), "--ref", "HEAD", "--base-ref", "HEAD~1").stdout)[0]
    )
    assert from_comment.edges == from_markdown.edges
    assert sorted(from_comment.labels.values()) == sorted(from_markdown.labels.values())
    # Mermaid itself reads both as the same graph.
    both = mermaid(
        [
            mermaid_blocks(body)[0],
            mermaid_blocks(kratix("plan", str(repo), "--ref", "HEAD", "--base-ref", "HEAD~1").stdout)[0],
        ]
    )
    assert as_mermaid_sees_it(both[0]).edges == as_mermaid_sees_it(both[1]).edges == from_markdown.edges


HOSTILE = 'x"]) --> n0\n```\n</details> `@admin` #35; %%{init}%%'


def test_the_comment_workflow_diagram_is_bounded_and_escapes_every_name(tmp_path: Path, mermaid) -> None:
    moves = [
        {"request": f"{HOSTILE} {i}", "before": [], "after": [f"{HOSTILE} dest"], "state": "placed"} for i in range(45)
    ]
    results = tmp_path / "results"
    results.mkdir()
    (results / "plan.json").write_text(
        json.dumps(
            {
                "plan": {
                    "counts": {"added": 1, "changed": 0, "removed": 0},
                    "guard": [],
                    "failed": [],
                    "placementMoves": moves,
                    "changes": [{"path": "dev-1/x.yaml", "change": "added", "owner": "x", "diff": ""}],
                }
            }
        )
    )
    (results / "validate.json").write_text(json.dumps({"diagnostics": []}))
    script = github_script(REPO / ".github" / "workflows" / "platform-pr-comment.yml", "comment")
    body = run_script(tmp_path, script, {"RESULTS": str(results)})[-1]["body"]
    blocks = mermaid_blocks(body)
    assert len(blocks) == 1
    picture = parse_mermaid(blocks[0])  # every line one statement of the expected forms
    shown = " ".join(HOSTILE.split())
    assert {label for label in picture.labels.values()} == {f"{shown} {i} (added)" for i in range(30)} | {
        f"{shown} dest"
    }
    assert "and 15 more request(s)" in body
    seen = as_mermaid_sees_it(mermaid(blocks)[0])
    assert seen.labels == picture.labels and seen.edges == picture.edges


def test_the_markdown_diagram_is_bounded() -> None:
    moves = [plans.PlacementMove(f"Database team-a/db-{i:03}", (), ("dev-1",), "placed") for i in range(100)]
    section = plans.placement_diagram(moves, limit=30)
    picture = parse_mermaid(mermaid_blocks(section)[0])
    assert len([g for g in picture.groups.values() if g == "request"]) == 30
    assert "and 70 more request(s)" in section
    assert len(section) < 10_000
    every = plans.placement_diagram(moves[:30], limit=30)
    assert "more request" not in every
