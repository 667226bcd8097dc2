"""The `kratix` command: thin wrappers over the pipeline, and the one place that prints and picks exit codes.

Exit codes: 0 success, 1 invalid input or failed compile/publish, 2 usage error, 3 a bug in kratix (please
report it; run with --debug for the traceback).

`group` holds the click group `main` and its error handler; the commands register on it from their modules,
grouped by theme, which this package imports once so that `kratix.cli:main` knows every command. Commands import
the pipeline and stages inside their functions, so `kratix --help` loads none of them.
"""

from __future__ import annotations

from kratix.cli import compiling, controller, pictures, publishing  # noqa: F401 - imported for the commands they register
from kratix.cli.compiling import write_tree
from kratix.cli.group import EXIT_BUG, EXIT_INVALID, EXIT_OK, EXIT_USAGE, main
from kratix.cli.report import github_annotation

__all__ = ["EXIT_BUG", "EXIT_INVALID", "EXIT_OK", "EXIT_USAGE", "github_annotation", "main", "write_tree"]
