"""The shards benchmark runs end to end on a tiny platform, so it cannot rot unnoticed: its own checks (merged
trees equal the unsharded ones, the shards ran every workflow once, the merge ran none) hold, and it prints
every figure with a verdict. Never a timing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "shards.py"


def test_prints_every_figure_and_leaves_no_scratch(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--promises",
            "2",
            "--destinations",
            "2",
            "--requests",
            "6",
            "--sleep",
            "0",
            "--shards",
            "2",
            "--repeat",
            "2",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr
    for figure in (
        "cold: shard 1/2",
        "cold: merge compile+publish",
        "Promise change: merge compile+publish",
        "cold: no-op compile beside each merge",
        "Promise change: no-op compile beside each merge",
        "ratio: Promise change merge / no-op",
        "no-op compile reading everything (branch edited by hand)",
        "ratio: Promise change merge / no-op reading everything",
    ):
        assert re.search(re.escape(figure) + r"\s+\d+\.\d+ ?(s|x)\b", result.stdout), figure
    assert re.search(r"cold: workflows run \(unsharded / merge\)\s+6\s+0\s+0\s+PASS", result.stdout)
    assert list(tmp_path.iterdir()) == []
