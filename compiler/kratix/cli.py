"""The `kratix` command: thin wrappers over the pipeline, and the one place that prints and picks exit codes.

Exit codes: 0 success, 1 invalid input or failed compile/publish, 2 usage error, 3 a bug in kratix (please
report it; run with --debug for the traceback).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from kratix import __version__
from kratix.diagnostics import Diagnostic, Severity
from kratix.errors import KratixError

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
                click.echo(f"internal error: {sys.exc_info()[1]!r}\nThis is a bug in kratix {__version__}: please "
                           "report it with the output of the same command run with --debug.", err=True)
            ctx.exit(EXIT_BUG)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kratix")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Compile a Kratix platform repo (Promises, resource requests, destinations) into per-cluster directories
    that Flux syncs."""
    ctx.obj = {"debug": debug}


_path_argument = click.argument("path", type=click.Path(file_okay=False, path_type=Path), default=".")
_ref_option = click.option("--ref", help="Read the input from this Git commit of PATH instead of the files on disk.")
_format_option = click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
                              show_default=True)


def _read_source(path: Path, ref: str | None) -> Any:
    from kratix import load

    return load.read_commit(path, ref) if ref else load.read_worktree(path)


def _settings(**overrides: Any) -> Any:
    from kratix.settings import PublishSettings, RenderSettings, Settings

    render = RenderSettings(**{k: v for k, v in overrides.items() if k in RenderSettings.__dataclass_fields__
                               and v is not None})
    publish = PublishSettings(**{k: v for k, v in overrides.items() if k in PublishSettings.__dataclass_fields__
                                 and v is not None})
    return Settings(render=render, publish=publish)


def _report(diagnostics: Sequence[Diagnostic], output_format: str, extra: dict[str, Any] | None = None) -> None:
    if output_format == "json":
        click.echo(json.dumps({"diagnostics": [d.as_json() for d in diagnostics], **(extra or {})}, indent=2))
    else:
        for diagnostic in diagnostics:
            click.echo(diagnostic.render(), err=True)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for diagnostic in diagnostics:
            click.echo(github_annotation(diagnostic))


def github_annotation(diagnostic: Diagnostic) -> str:
    level = {Severity.ERROR: "error", Severity.WARNING: "warning"}.get(diagnostic.severity, "notice")

    def escape(text: str, *, prop: bool = False) -> str:
        text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        return text.replace(":", "%3A").replace(",", "%2C") if prop else text

    field = f"{diagnostic.path}: " if diagnostic.path else ""
    title = escape(diagnostic.code, prop=True)
    return (f"::{level} file={escape(diagnostic.file, prop=True)},line={diagnostic.line},col={diagnostic.column},"
            f"title={title}::{escape(field + diagnostic.message)}")


def _exit(ok: bool) -> NoReturn:
    sys.exit(EXIT_OK if ok else EXIT_INVALID)


@main.command()
@_path_argument
@_ref_option
@_format_option
def validate(path: Path, ref: str | None, output_format: str) -> None:
    """Check every Promise, destination and request; render nothing to disk. Exit 1 on any error."""
    from kratix import pipeline

    result = pipeline.compile_platform(_read_source(path, ref), settings=_settings())
    _report(result.diagnostics, output_format, {"summary": vars(result.summary)})
    if output_format == "text":
        click.echo(_summary_line(result.summary, None), err=True)
    _exit(result.ok)


@main.command()
@_path_argument
@_ref_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the output tree to this directory (replacing what an earlier compile wrote there).")
@_format_option
@click.option("--quiet", "-q", is_flag=True, help="No summary line.")
def compile(path: Path, ref: str | None, out_dir: Path | None, output_format: str, quiet: bool) -> None:
    """Validate, render and schedule the platform; write per-destination directories."""
    from kratix import pipeline

    started = time.monotonic()
    result = pipeline.compile_platform(_read_source(path, ref), settings=_settings())
    if out_dir is not None:
        write_tree(out_dir, result.files)
    _report(result.diagnostics, output_format, {"summary": vars(result.summary)})
    if not quiet and output_format == "text":
        click.echo(_summary_line(result.summary, time.monotonic() - started), err=True)
    _exit(result.ok)


def write_tree(out_dir: Path, files: dict[str, bytes] | Any) -> None:
    """Replace the contents of `out_dir` with `files`; refuse a non-empty directory kratix did not write."""
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / ".kratix").is_dir():
        raise KratixError(f"{out_dir}: not empty and not written by kratix (no .kratix/ folder); refusing to "
                          "replace its contents")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    for relative, data in files.items():
        target = out_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


@main.command(name="schema")
@click.argument("promise", required=False)
@_path_argument
@_ref_option
@click.option("--all", "all_promises", is_flag=True, help="Write the schema of every Promise API.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="With --all: the directory to write <promise>.schema.json files to.")
def schema_command(promise: str | None, path: Path, ref: str | None, all_promises: bool,
                   out_dir: Path | None) -> None:
    """Print the JSON Schema of a Promise's request API (for editors: yaml-language-server)."""
    from kratix import load, schema

    if bool(promise) == all_promises:
        raise click.UsageError("name one PROMISE, or pass --all")
    if all_promises and out_dir is None:
        raise click.UsageError("--all needs --out DIR")
    platform, diagnostics = load.parse_platform(_read_source(path, ref))
    chosen = sorted(platform.promises) if all_promises else [promise]
    documents = {}
    for name in chosen:
        found = platform.promises.get(name or "")
        if found is None:
            raise KratixError(f"no Promise named {name!r}; Promises: {', '.join(sorted(platform.promises)) or 'none'}")
        crd = found.body.get("spec", {}).get("api")
        if crd is None:
            if all_promises:
                continue
            raise KratixError(f"Promise {name!r} has no API (spec.api): it offers dependencies only")
        problems = [v for v in schema.check_crd(crd) if v.severity is Severity.ERROR]
        if problems:
            raise KratixError(f"Promise {name!r}: spec.api is not a valid CRD: {problems[0].message}")
        documents[found.name] = schema.editor_json_schema(schema.compile_request_schema(crd))
    if out_dir is None:
        click.echo(json.dumps(documents[chosen[0] or ""], indent=2, sort_keys=True))
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, document in documents.items():
        (out_dir / f"{name}.schema.json").write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    click.echo(f"wrote {len(documents)} schema(s) to {out_dir}", err=True)


def _summary_line(summary: Any, seconds: float | None) -> str:
    unavailable = f" ({summary.promises_unavailable} unavailable)" if summary.promises_unavailable else ""
    misplaced = f", {summary.misplaced} misplaced" if summary.misplaced else ""
    took = f"; {seconds:.2f}s" if seconds is not None else ""
    return (f"{summary.promises} promises{unavailable}, {summary.destinations} destinations; requests: "
            f"{summary.placed} placed, {summary.pending} pending{misplaced}, {summary.failed} failed; "
            f"{summary.files} files{took}")


if __name__ == "__main__":  # pragma: no cover
    main()
