"""The click group every command registers on, and the one handler that picks exit codes.

Exit codes: 0 success, 1 invalid input or failed compile/publish, 2 usage error, 3 a bug in kratix (please
report it; run with --debug for the traceback). Commands live in sibling modules and import `main` from here, so
this module imports none of them (no cycle).
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

import click

from kratix import __version__
from kratix.model.errors import KratixError

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_BUG = 0, 1, 2, 3


class _Group(click.Group):
    """Maps expected failures to exit 1 and unexpected ones to exit 3, tracebacks only with --debug."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KratixError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_INVALID)
        except Exception:  # noqa: BLE001 - the one handler that turns a crash into a report
            if ctx.obj and ctx.obj.get("debug"):
                traceback.print_exc()
            else:
                click.echo(
                    f"internal error: {sys.exc_info()[1]!r}\nThis is a bug in kratix {__version__}: please "
                    "report it with the output of the same command run with --debug.",
                    err=True,
                )
            ctx.exit(EXIT_BUG)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kratix")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Compile a Kratix platform repo (Promises, resource requests, destinations) into per-cluster directories
    that Flux syncs."""
    ctx.obj = {"debug": debug}
