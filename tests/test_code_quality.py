"""The codebase keeps its own rules: lint (ruff), types (mypy), the layering contracts (import-linter) and a
bound on the cyclomatic complexity of every function (radon)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from radon.complexity import cc_rank, cc_visit

ROOT = Path(__file__).resolve().parent.parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing() -> None:
    result = run(sys.executable, "-m", "ruff", "check", "compiler", "tests", "benchmarks", "tools")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_tree_is_formatted_as_ruff_formats_it() -> None:
    result = run(sys.executable, "-m", "ruff", "format", "--check", "compiler", "tests", "benchmarks", "tools")
    assert result.returncode == 0, (
        "run `ruff format compiler tests benchmarks tools`:\n" + result.stdout + result.stderr
    )


def test_the_projects_own_hooks_run_the_checks_the_tests_run() -> None:
    # .pre-commit-config.yaml is for contributors; it must not drift from what CI enforces.
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    entries = {hook["id"]: hook["entry"] for repo in config["repos"] for hook in repo["hooks"]}
    assert entries["ruff-format"] == "python -m ruff format"
    assert entries["ruff-check"] == "python -m ruff check --fix"
    assert entries["import-linter"] == "lint-imports"
    assert entries["mypy"] == "python -m mypy"
    assert entries["cli-reference"] == "python tools/cli_reference.py --check"


def test_mypy_finds_nothing() -> None:
    result = run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is not installed")
def test_the_layering_contracts_hold() -> None:
    result = run("lint-imports")
    assert result.returncode == 0, result.stdout + result.stderr


# Functions allowed to stay of rank D or worse (cyclomatic complexity over 20), as "module path:name": none. The
# test also fails when a function named here is no longer of rank D or worse, so an entry cannot outlive its cause.
STILL_COMPLEX: frozenset[str] = frozenset()


def complex_functions() -> dict[str, str]:
    """Every function, method and class of the package of rank D or worse, as `radon cc -n D` lists them."""
    package = ROOT / "compiler" / "kratix"
    found = {}
    for path in sorted(package.rglob("*.py")):
        for block in cc_visit(path.read_text(encoding="utf-8")):
            rank = cc_rank(block.complexity)
            if rank in "DEF":
                name = f"{path.relative_to(package).as_posix()}:{block.fullname}"
                found[name] = f"{name} (line {block.lineno}): rank {rank}, complexity {block.complexity}"
    return found


def test_no_function_is_more_complex_than_rank_c() -> None:
    found = complex_functions()
    new = sorted(text for name, text in found.items() if name not in STILL_COMPLEX)
    assert not new, "split these into named steps (rank C or better: cyclomatic complexity 20 or less):\n" + "\n".join(
        new
    )
    simpler = sorted(STILL_COMPLEX - set(found))
    assert not simpler, (
        "no longer of rank D or worse (or gone): take them off STILL_COMPLEX in this file:\n" + "\n".join(simpler)
    )
