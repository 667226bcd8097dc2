"""The compile-and-publish benchmark runs end to end on a tiny platform, so it cannot rot unnoticed.

Only that it runs, checks its own runs (a cold publish commits, a re-run does not, a one-request change does,
the fast-import floor stores the very same tree) and prints every figure; never a timing.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "compile_publish.py"
FIGURES = (
    "cold compile+publish (CLI)",
    "idempotent re-run, no commit (CLI)",
    "one-request change (CLI)",
    "floor A: git fast-import of the output",
    "floor B: PyYAML C load+dump of manifests",
    "ratio: publish git side / floor A",
    "ratio: cold compile (in-process) / floor B",
    "compile (prepare_publish)",
    "publish, git side",
)


def run_benchmark(*args: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        str(SCRIPT),
        "--promises",
        "2",
        "--destinations",
        "3",
        "--requests",
        "30",
        "--repeat",
        "1",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def test_prints_every_figure_with_a_verdict_and_leaves_no_scratch(tmp_path: Path) -> None:
    result = run_benchmark("--workdir", str(tmp_path))

    assert result.returncode == 0, result.stderr
    assert "2 promises, 3 destinations, 30 requests" in result.stdout
    for figure in FIGURES:
        assert re.search(re.escape(figure) + r"\s+\d+\.\d+ ?(s|x)\b", result.stdout), figure
    assert len(re.findall(r"\b(PASS|MISS)\b", result.stdout)) == 3  # one verdict per target
    assert list(tmp_path.iterdir()) == []


def test_profile_lists_hot_spots_and_keep_keeps_the_repos(tmp_path: Path) -> None:
    result = run_benchmark("--workdir", str(tmp_path), "--profile", "--keep")

    assert result.returncode == 0, result.stderr
    assert "profile of one in-process cold compile" in result.stdout
    assert "profile of one in-process one-request-change compile" in result.stdout
    assert result.stdout.count("Ordered by: cumulative time") == 2
    assert "prepare_publish" in result.stdout
    (kept,) = tmp_path.iterdir()
    assert (kept / "cold-compile.prof").is_file() and (kept / "change-compile.prof").is_file()
    for repo in ("input.git", "output.git", "floor-0.git"):
        has_main = subprocess.run(
            ["git", "-C", str(kept / repo), "rev-parse", "--verify", "--quiet", "main"], capture_output=True
        )
        assert has_main.returncode == 0, repo


def test_scaling_reports_each_size_and_which_runs_read_only_the_change(tmp_path: Path) -> None:
    command = [
        sys.executable,
        str(SCRIPT),
        "--promises",
        "2",
        "--destinations",
        "3",
        "--scaling",
        "20,40",
        "--repeat",
        "1",
        "--workdir",
        str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stderr
    for size in ("20", "40"):
        rows = {
            figure: re.search(
                rf"^{size}\s+{re.escape(figure)}\s+\d+\.\d+ s\s+\d+\.\d+ s\s+\d+ MB\s+(\w+)",
                result.stdout,
                re.MULTILINE,
            )
            for figure in (
                "cold compile+publish",
                "no-op (nothing changed)",
                "one-request change",
                "one-Promise change",
            )
        }
        assert all(rows.values()), result.stdout
        read = {figure: match.group(1) for figure, match in rows.items() if match}
        assert read == {
            "cold compile+publish": "everything",
            "no-op (nothing changed)": "changes",
            "one-request change": "changes",
            "one-Promise change": "everything",
        }
    assert list(tmp_path.iterdir()) == []
