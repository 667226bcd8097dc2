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
    _report(result.diagnostics, output_format, {"summary": _summary_json(result.summary)})
    if output_format == "text":
        click.echo(_summary_line(result.summary, None), err=True)
    _exit(result.ok)


_output_repo_option = click.option("--output-repo", "output_repo",
                                   help="Publish to this Git repo (a local path, created if missing, or a URL).")
_branch_option = click.option("--branch", default="main", show_default=True, help="The output repo's branch.")


@main.command()
@_path_argument
@_ref_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the output tree to this directory (replacing what an earlier compile wrote there).")
@_output_repo_option
@_branch_option
@click.option("--allow-deletions", is_flag=True,
              help="Publish even when the mass-deletion guard trips (large deletions, Namespaces, CRDs, PVCs).")
@click.option("--rebuild", is_flag=True,
              help="Render every request again instead of reusing the output of those that did not change.")
@_format_option
@click.option("--quiet", "-q", is_flag=True, help="No summary line.")
def compile(path: Path, ref: str | None, out_dir: Path | None, output_repo: str | None, branch: str,
            allow_deletions: bool, rebuild: bool, output_format: str, quiet: bool) -> None:
    """Validate, render and schedule the platform; write per-destination directories or publish them as one
    commit to the output repo."""
    from kratix import pipeline, publish

    started = time.monotonic()
    progress = _ProgressLine(enabled=not quiet and output_format == "text" and sys.stderr.isatty())
    tree = _read_source(path, ref)
    settings = _settings(branch=branch, allow_deletions=allow_deletions, reuse_unchanged=not rebuild)
    if output_repo is None:
        result = pipeline.compile_platform(tree, settings=settings, progress=progress)
        outcome = None
    else:
        result, outcome, previous = _publish(tree, publish.open_output_repo(output_repo, branch=branch), settings,
                                             progress)
    progress.done()
    if out_dir is not None:
        write_tree(out_dir, result.files if outcome is None else previous.resolve(result.files))
    _report(result.diagnostics, output_format, {"summary": _summary_json(result.summary), **_outcome_json(outcome)})
    if not quiet and output_format == "text":
        click.echo(_summary_line(result.summary, time.monotonic() - started), err=True)
        if outcome is not None:
            click.echo(_outcome_line(outcome, output_repo or "", branch), err=True)
    _exit(result.ok)


class _ProgressLine:
    """One line on a terminal's stderr, rewritten in place, at most ten times a second."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.shown = 0.0

    def __call__(self, what: str, done: int, total: int) -> None:
        now = time.monotonic()
        if self.enabled and total and now - self.shown > 0.1:
            self.shown = now
            click.echo(f"\r\x1b[K{what}: {done}/{total}", err=True, nl=False)

    def done(self) -> None:
        if self.enabled and self.shown:
            click.echo("\r\x1b[K", err=True, nl=False)


def _publish(tree: Any, repo: Any, settings: Any, progress: Any = None) -> tuple[Any, Any, Any]:
    """Compile against the branch as it is, guard, commit; on a lost race the branch is re-read and all of it
    runs again (the previous output is an input of the compile)."""
    from kratix import pipeline, publish
    from kratix.errors import PublishError

    compiled: list[Any] = []

    def build(state: Any) -> tuple[Any, str]:
        previous = pipeline.PreviousOutput(state.files, state.commit)
        result, message, trips = pipeline.prepare_publish(tree, previous, settings=settings,
                                                          **({"progress": progress} if progress else {}))
        compiled.append((result, previous))
        if trips and not settings.publish.allow_deletions:
            lines = [f"  {t.destination}: {t.reason}: {', '.join(t.objects[:20])}"
                     + (f" and {len(t.objects) - 20} more" if len(t.objects) > 20 else "") for t in trips]
            raise PublishError("refusing to publish: the mass-deletion guard tripped\n" + "\n".join(lines)
                               + "\nre-run with --allow-deletions if these deletions are intended")
        return result.files, message

    outcome = publish.publish(repo, build, attempts=settings.publish.attempts)
    result, previous = compiled[-1]
    return result, outcome, previous


def _summary_json(summary: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(summary).items()}


def _outcome_json(outcome: Any) -> dict[str, Any]:
    if outcome is None:
        return {}
    return {"publish": {"commit": outcome.commit, "changed": outcome.changed, "attempts": outcome.attempts,
                        "warnings": list(outcome.warnings)}}


def _outcome_line(outcome: Any, target: str, branch: str) -> str:
    warnings = "".join(f"\nwarning: {w}" for w in outcome.warnings)
    if not outcome.changed:
        return f"{target} {branch}: up to date at {str(outcome.commit)[:12]} (no commit made){warnings}"
    retried = f" after {outcome.attempts} attempts" if outcome.attempts > 1 else ""
    return f"{target} {branch}: published {outcome.commit[:12]}{retried}{warnings}"


@main.command()
@_path_argument
@_ref_option
@_output_repo_option
@_branch_option
@click.option("--format", "output_format", type=click.Choice(["markdown", "json"]), default="markdown",
              show_default=True)
def plan(path: Path, ref: str | None, output_repo: str | None, branch: str, output_format: str) -> None:
    """Show what publishing would change on the output branch: files per destination with diffs, placements
    and risks. Publishes nothing. Exit 1 when the input is invalid."""
    from kratix import pipeline, publish
    from kratix import plan as plans

    if output_repo is None:
        raise click.UsageError("plan needs --output-repo (the repo whose branch it compares against)")
    settings = _settings(branch=branch)
    repo = publish.open_output_repo(output_repo, branch=branch, create=False)
    state = publish.read_branch(repo)
    result, changes = pipeline.plan_platform(_read_source(path, ref),
                                             pipeline.PreviousOutput(state.files, state.commit), settings=settings)
    for diagnostic in result.diagnostics:
        click.echo(diagnostic.render(), err=True)
    if output_format == "json":
        click.echo(json.dumps({"plan": plans.to_json(changes), "summary": _summary_json(result.summary),
                               "diagnostics": [d.as_json() for d in result.diagnostics]}, indent=2))
    else:
        click.echo(plans.to_markdown(changes))
    _exit(result.ok)


@main.command()
@click.argument("file")
@_output_repo_option
@_branch_option
def explain(file: str, output_repo: str | None, branch: str) -> None:
    """Say why FILE of the output repo exists: its Promise, request, pipeline, source template and commit."""
    from kratix import provenance, publish, yamltext

    if output_repo is None:
        raise click.UsageError("explain needs --output-repo")
    state = publish.read_branch(publish.open_output_repo(output_repo, branch=branch, create=False))
    entries = provenance.decode(state.files.get(provenance.PROVENANCE_PATH))
    wanted = file.removeprefix("./")
    entry = entries.get(wanted)
    if entry is None:
        close = [p for p in entries if wanted in p][:5]
        hint = f"; did you mean: {', '.join(close)}" if close else ""
        raise KratixError(f"{wanted}: not in the output of {output_repo} {branch}{hint}")
    lines = [f"{entry.path}", f"  {'owner:':<14}{entry.owner}"]
    for label, value in (("promise", entry.promise), ("request", entry.request), ("pipeline", entry.pipeline),
                         ("source", entry.source), ("destination", entry.destination),
                         ("input commit", entry.commit or "(an uncommitted work tree)")):
        if value:
            lines.append(f"  {label + ':':<14}{value}")
    if entry.objects:
        lines.append("  objects:      " + ", ".join(entry.objects))
    if entry.request and entry.promise:
        kind, where = entry.request.split(" ", 1)
        namespace, name = where.split("/", 1)
        status_file = state.files.get(f".kratix/status/{namespace}/{entry.promise}/{name}.yaml")
        if status_file:
            document: Any = next(iter(yamltext.load_plain(status_file)), None) or {}
            status = document.get("status") or {}
            lines.append(f"  status:       {status.get('message')}")
            for placement in status.get("placements", []):
                lines.append(f"  placement:    {placement.get('reason')}")
    click.echo("\n".join(lines))


@main.command()
@click.argument("destination")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--url", required=True, help="The output repo's URL as the worker's Flux reaches it.")
@_branch_option
@click.option("--secret", help="A Secret in flux-system with Git credentials for the URL.")
@click.option("--namespace", default="flux-system", show_default=True)
@click.option("--interval", default="1m", show_default=True, help="How often Flux polls (at least 1m).")
def bootstrap(destination: str, path: Path, url: str, branch: str, secret: str | None, namespace: str,
              interval: str) -> None:
    """Print the Flux objects to apply once on DESTINATION's cluster (`kubectl apply -f -`)."""
    from kratix import bootstrap as flux
    from kratix import load, yamltext

    if not _at_least_a_minute(interval):
        raise click.BadParameter("must be at least 1m (e.g. 1m, 5m, 1h)", param_hint="--interval")
    platform, _ = load.parse_platform(load.read_worktree(path))
    found = platform.destinations.get(destination)
    if found is None:
        names = ", ".join(sorted(platform.destinations)) or "none"
        raise KratixError(f"no Destination named {destination!r} in {path}/clusters (destinations: {names})")
    documents = flux.flux_objects(found.name, found.path, url=url, branch=branch, namespace=namespace,
                                  secret=secret, interval=interval)
    click.echo(yamltext.dump_all(documents).decode(), nl=False)


def _at_least_a_minute(interval: str) -> bool:
    import re

    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", interval)
    if not match or not interval:
        return False
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds >= 60


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

    if all_promises and promise is not None and path == Path("."):
        path, promise = Path(promise), None  # `schema --all DIR`: the one argument is the platform's path
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


@main.command()
@_path_argument
@click.option("--check", is_flag=True, help="Change nothing; exit 1 when a file still needs migrating.")
def migrate(path: Path, check: bool) -> None:
    """Rewrite seed-era (2021/2022) Promises and Clusters under PATH to today's format, in place. Documents
    that need no change keep their text byte for byte."""
    from kratix import load
    from kratix import migrate as migration

    platform, _ = load.parse_platform(load.read_worktree(path))
    template_folders = {f"{p.folder}/{c.template}".rstrip("/") + "/" for p in platform.promises.values()
                        for pl in (*p.promise_configure, *p.resource_configure) for c in pl.containers
                        if c.template}
    pending = 0
    for folder in ("promises", "clusters"):
        for file in sorted((path / folder).rglob("*")):
            relative = file.relative_to(path).as_posix()
            if file.suffix not in (".yaml", ".yml") or any(relative.startswith(t) for t in template_folders):
                continue
            text, changed = migration.migrate_file(file.read_text(), path=relative)
            if changed:
                pending += 1
                click.echo(f"{relative}: {changed} document(s) {'to migrate' if check else 'migrated'}", err=True)
                if not check:
                    file.write_text(text)
    if not pending:
        click.echo("nothing to migrate", err=True)
    _exit(not (check and pending))


@main.command()
@click.option("--repo", required=True, help="The input repo (URL or path) to mirror cluster objects into.")
@click.option("--branch", default="main", show_default=True)
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Default: $KUBECONFIG or ~/.kube/config.")
@click.option("--context", help="The kubeconfig context to use.")
@click.option("--in-cluster", is_flag=True, help="Use the pod's service account.")
@click.option("--output-repo", help="The output repo to read .kratix/status from (statuses go back to objects).")
@click.option("--output-branch", help="Default: --branch.")
@click.option("--debounce", type=float, default=1.0, show_default=True,
              help="Seconds to wait for more changes before committing.")
@click.option("--status-interval", type=float, default=10.0, show_default=True,
              help="Seconds between reads of the output repo's statuses.")
@click.option("--workdir", type=click.Path(file_okay=False), help="Where private clones live (default: a temp dir).")
def controller(repo: str, branch: str, kubeconfig: str | None, context: str | None, in_cluster: bool,
               output_repo: str | None, output_branch: str | None, debounce: float, status_interval: float,
               workdir: str | None) -> None:
    """Mirror platform-cluster Promises, Destinations and requests into the input repo, and bring statuses from
    the output repo back to the objects. Runs until interrupted."""
    import logging

    from kratix.controller import ControllerOptions, run_controller  # keeps `kubernetes` out of other commands

    if in_cluster and kubeconfig:
        raise click.UsageError("--kubeconfig and --in-cluster exclude each other")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run_controller(ControllerOptions(repo=repo, branch=branch, kubeconfig=kubeconfig, context=context,
                                         in_cluster=in_cluster, output_repo=output_repo, output_branch=output_branch,
                                         debounce=debounce, status_interval=status_interval, workdir=workdir))
    except KeyboardInterrupt:
        click.echo("stopped", err=True)


def _summary_line(summary: Any, seconds: float | None) -> str:
    unavailable = f" ({summary.promises_unavailable} unavailable)" if summary.promises_unavailable else ""
    misplaced = f", {summary.misplaced} misplaced" if summary.misplaced else ""
    took = f"; {seconds:.2f}s" if seconds is not None else ""
    unchecked = (f"\nnot validated (no CRD delivered with them): {', '.join(summary.not_validated_kinds)}"
                 if summary.not_validated_kinds else "")
    return (f"{summary.promises} promises{unavailable}, {summary.destinations} destinations; requests: "
            f"{summary.placed} placed, {summary.pending} pending{misplaced}, {summary.failed} failed; "
            f"{summary.files} files{took}{unchecked}")


if __name__ == "__main__":  # pragma: no cover
    main()
