"""CEL rules as the API server bounds them: the cel package as pinned, cost limits, RE2 regular expressions."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import cel

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------ the cel package


def test_the_cel_package_is_the_exact_version_pinned_for_the_shell_stand_in():
    """kratix.celrules keeps the package's interactive shell from loading by standing in for `cel.cli`; that
    leans on how the package's __init__ is written, so the version is pinned and this test fails when the
    installed package is another one or its __init__ no longer imports `cli` as a bare module."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [pin] = [d for d in dependencies if d.startswith("common-expression-language")]
    assert re.fullmatch(r"common-expression-language==[0-9.]+", pin), pin
    assert importlib.metadata.version("common-expression-language") == pin.split("==")[1]

    init = ast.parse(Path(cel.__file__).read_text())
    relative_imports = [(node.module, sorted(alias.name for alias in node.names))
                        for node in init.body if isinstance(node, ast.ImportFrom) and node.level == 1]
    assert (None, ["cli", "stdlib"]) in relative_imports  # `from . import cli, stdlib`: a module, nothing from it
    assert "cli" not in {name.id for node in init.body for name in ast.walk(node) if isinstance(name, ast.Name)}


def test_loading_the_rules_module_does_not_load_the_interactive_shell():
    probe = ("import sys, kratix.celrules; "
             "print(sorted(m for m in ('prompt_toolkit', 'typer', 'rich') if m in sys.modules))")
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "[]"
