"""The documentation stays true: the site builds with `mkdocs build --strict` (no broken link, anchor or nav
entry), the CLI reference is what the click commands say, and the README's front door still holds the two
commands that CI runs and links only to pages that exist."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

# The README's two commands: one compiles the sample platform, one runs the tests (.ci/run runs it exactly).
MAIN_COMMAND = "pip install . && kratix compile --output-repo ./state"
TEST_COMMAND = 'pip install -e ".[test]" && python -m pytest'


def _cli_reference():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "tools" / "cli_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
    reason="mkdocs and mkdocs-material are not installed (the `docs` extra)",
)
def test_the_site_builds_strictly_with_every_page_and_the_generated_reference(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(site),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    cli = (site / "cli" / "index.html").read_text(encoding="utf-8")
    from kratix.cli import main

    for command in main.commands:
        assert f'id="kratix-{command}"' in cli, command
    # benchmarks/README.md is included into the performance page, not copied into it.
    performance = (site / "performance" / "index.html").read_text(encoding="utf-8")
    assert "compile_publish.py" in performance


def test_the_cli_reference_is_what_the_commands_say() -> None:
    from kratix.cli import main

    expected = _cli_reference().render(main)
    written = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert written == expected, "docs/cli.md is stale: run `python tools/cli_reference.py`"
    for name, command in main.commands.items():
        for param in command.params:
            for opt in getattr(param, "opts", ()):
                if opt.startswith("-"):
                    assert opt in expected, f"kratix {name} {opt} is missing from the reference"


def test_the_reference_check_fails_on_a_stale_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = _cli_reference()
    page = tmp_path / "cli.md"
    monkeypatch.setattr(module, "PAGE", page)
    monkeypatch.setattr(module, "ROOT", tmp_path)
    assert module.main(["--check"]) == 1  # missing
    assert module.main([]) == 0
    assert module.main(["--check"]) == 0
    page.write_text(page.read_text(encoding="utf-8").replace("--output-repo", "--output-rpeo", 1), encoding="utf-8")
    assert module.main(["--check"]) == 1


def test_the_readme_keeps_the_two_commands_that_ci_runs() -> None:
    readme = README.read_text(encoding="utf-8")
    assert MAIN_COMMAND in readme
    assert TEST_COMMAND in readme
    run_script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert TEST_COMMAND in (line.strip() for line in run_script.splitlines()), ".ci/run no longer runs it exactly"


def test_the_readme_links_only_to_files_that_exist() -> None:
    readme = README.read_text(encoding="utf-8")
    links = [target for target in re.findall(r"\]\(([^)\s]+)\)", readme) if "://" not in target]
    assert any(target.startswith("docs/") for target in links)
    for target in links:
        assert (ROOT / target.split("#")[0]).exists(), f"README links to {target}, which does not exist"
