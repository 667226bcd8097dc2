"""Commands that read a platform and write files: `validate`, `compile`, `schema` and `migrate`."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import click

from kratix.cli import common, report
from kratix.cli.group import main
from kratix.model.diagnostics import Severity
from kratix.model.errors import KratixError


@main.command()
@common.path_argument
@common.ref_option
@common.format_option
@common.step_options
@common.kubernetes_version_option
def validate(
    path: Path,
    ref: str | None,
    output_format: str,
    unsandboxed: bool,
    no_step_network: bool,
    kubernetes_version: str | None,
    now: Any = None,
) -> None:
    """Check every Promise, destination and request; render nothing to disk. Exit 1 on any error."""
    from kratix.compile import pipeline

    settings = common.build_settings(
        unsandboxed=unsandboxed, no_step_network=no_step_network, now=now, kubernetes_version=kubernetes_version
    )
    result = pipeline.compile_platform(common.read_source(path, ref), settings=settings)
    report.report(result.diagnostics, output_format, {"summary": report.summary_json(result.summary)})
    if output_format == "text":
        click.echo(report.summary_line(result.summary, None), err=True)
    common.exit_with(result.ok)


@main.command()
@common.path_argument
@common.ref_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the output tree to this directory (replacing what an earlier compile wrote there).",
)
@common.output_repo_option
@common.branch_option
@click.option(
    "--allow-deletions",
    is_flag=True,
    help="Publish even when the mass-deletion guard trips (large deletions, Namespaces, CRDs, PVCs).",
)
@click.option(
    "--rebuild",
    is_flag=True,
    help="Render every request again instead of reusing the output of those that did not change.",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    help="Processes for rendering, validating and writing many requests, and steps run at once [default: every core].",
)
@common.format_option
@click.option("--quiet", "-q", is_flag=True, help="No summary line.")
@click.option(
    "--shard",
    "shard",
    metavar="I/N",
    help="Run only the workflows of shard I of N (I from 0; `auto/N` takes I from JOB_COMPLETION_INDEX) "
    "and store their results in the output repo for the publishing compile; publishes nothing.",
)
@common.step_options
@common.kubernetes_version_option
def compile(
    path: Path,
    ref: str | None,
    out_dir: Path | None,
    output_repo: str | None,
    branch: str,
    allow_deletions: bool,
    rebuild: bool,
    jobs: int | None,
    output_format: str,
    quiet: bool,
    shard: str | None,
    unsandboxed: bool,
    no_step_network: bool,
    kubernetes_version: str | None,
    now: Any = None,
) -> None:
    """Validate, render and schedule the platform; write per-destination directories or publish them as one
    commit to the output repo. A compile that publishes uses the workflow results `--shard` runs stored for
    its input commit, instead of running those workflows again."""
    from kratix.cli import sharding
    from kratix.compile import pipeline
    from kratix.publish import commit as publish

    started = time.monotonic()
    common.spare_collector()
    progress = _ProgressLine(enabled=not quiet and output_format == "text" and sys.stderr.isatty())
    settings = common.build_settings(
        branch=branch,
        allow_deletions=allow_deletions,
        reuse_unchanged=not rebuild,
        unsandboxed=unsandboxed,
        no_step_network=no_step_network,
        now=now,
        kubernetes_version=kubernetes_version,
        parallelism=jobs,
    )
    if shard is not None:
        _run_shard(path, ref, output_repo, branch, out_dir, settings, shard, output_format, quiet)
    leftovers: list[str] = []
    if output_repo is None:
        result = pipeline.compile_platform(common.read_source(path, ref), settings=settings, progress=progress)
        outcome, stored, fast = None, None, None
    else:
        result, outcome, previous, stored, leftovers, fast = _publish(
            path,
            ref,
            publish.open_output_repo(output_repo, branch=branch),
            settings,
            progress,
            why_not_delta="--rebuild asks for it" if rebuild else "--out writes the whole tree" if out_dir else None,
            keep_bytes=out_dir is not None,
        )
    progress.done()
    if out_dir is not None:
        write_tree(out_dir, result.files if outcome is None else previous.resolve(result.files))
    read = (
        {}
        if outcome is None
        else {"read": {"only": "changes"} if fast is None else {"only": "everything", "why": fast}}
    )
    report.report(
        result.diagnostics,
        output_format,
        {
            "summary": report.summary_json(result.summary),
            **report.published_json(outcome),
            **read,
            **sharding.summary_json(stored),
        },
    )
    if not quiet and output_format == "text":
        click.echo(report.summary_line(result.summary, time.monotonic() - started), err=True)
        for line in [*sharding.summary_lines(stored), *leftovers]:
            click.echo(line, err=True)
        if outcome is not None:
            click.echo(report.published_lines(outcome, output_repo or "", branch), err=True)
            click.echo(
                "read only what changed since the last publish" if fast is None else f"read everything: {fast}",
                err=True,
            )
    common.exit_with(result.ok)


def _publish(
    path: Path,
    ref: str | None,
    repo: Any,
    settings: Any,
    progress: Any,
    why_not_delta: str | None,
    *,
    keep_bytes: bool = False,
) -> tuple[Any, Any, Any, Any, list[str], str | None]:
    """Compile and publish: reading only what changed since the last publish when that is known to be enough
    (`publish_delta`), else everything, merging the shard results stored for the input commit. Returns the result,
    the outcome, the previous output, the shard results used, what is left of them, and why everything was read
    (None: only the change was). `keep_bytes`: the result holds every new file's bytes (`--out` writes them)."""
    from kratix import gitio, load
    from kratix.cli import sharding
    from kratix.cli.publishing import publish_delta, publish_platform

    why = why_not_delta or (None if ref else "the input is a work tree, not a commit (--ref)")
    stored = None
    commit = None  # the input commit, once resolved
    if why is None:
        commit = gitio.resolve_commit(path, ref or "")
        stored = sharding.load_stored(repo, commit)
        # Shard results waiting for this commit are merged by the compile that reads everything.
        fast = (
            "shard results for this input commit are waiting to be merged"
            if stored is not None
            else publish_delta(path, ref or "", repo, settings)
        )
        if not isinstance(fast, str):
            return (*fast, None, [], None)
        why = fast
    tree = load.read_commit(path, commit, resolved=True) if commit else common.read_source(path, ref)
    stored = stored if stored is not None else sharding.load_stored(repo, tree.commit)
    result, outcome, previous = publish_platform(
        tree,
        repo,
        settings,
        progress,
        workflows=stored.replayer if stored else None,
        keep_bytes=keep_bytes,
        carried=stored.carried if stored else (),
    )
    return result, outcome, previous, stored, sharding.remove_used(repo, stored), why


def _run_shard(
    path: Path,
    ref: str | None,
    output_repo: str | None,
    branch: str,
    out_dir: Path | None,
    settings: Any,
    shard: str,
    output_format: str,
    quiet: bool,
) -> None:
    """`--shard`: run one shard's workflows, store their results, report, exit."""
    from kratix.cli import sharding
    from kratix.publish import commit as publish

    if output_repo is None or out_dir is not None:
        raise click.UsageError("--shard stores its results in --output-repo, and writes no --out")
    shard_result, shard_ref = sharding.run_shard(
        common.read_source(path, ref), publish.open_output_repo(output_repo, branch=branch), settings, shard
    )
    if output_format == "json":
        click.echo(json.dumps(sharding.shard_json(shard_result, shard_ref), indent=2))
    elif not quiet:
        click.echo(sharding.shard_line(shard_result, shard_ref), err=True)
    common.exit_with(True)


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


def write_tree(out_dir: Path, files: dict[str, bytes] | Any) -> None:
    """Replace the contents of `out_dir` with `files`; refuse a non-empty directory kratix did not write. Every
    path is checked again here, at the edge: nothing is ever written outside `out_dir`."""
    from kratix.model import names, paths

    unsafe = [relative for relative in files if names.relative_path(relative) is not None]
    if unsafe:  # the stages refuse such names first: reaching here is a bug, and it must not write anything
        raise RuntimeError(f"refusing to write unsafe output paths: {unsafe[:3]!r}")
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / paths.BOOKKEEPING).is_dir():
        raise KratixError(
            f"{out_dir}: not empty and not written by kratix (no {paths.BOOKKEEPING}/ folder); "
            "refusing to replace its contents"
        )
    if out_dir.exists():
        shutil.rmtree(out_dir)
    for relative, data in files.items():
        target = out_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


@main.command(name="schema")
@click.argument("promise", required=False)
@common.path_argument
@common.ref_option
@click.option("--all", "all_promises", is_flag=True, help="Write the schema of every Promise API.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="With --all: the directory to write <promise>.schema.json files to.",
)
def schema_command(promise: str | None, path: Path, ref: str | None, all_promises: bool, out_dir: Path | None) -> None:
    """Print the JSON Schema of a Promise's request API (for editors: yaml-language-server)."""
    from kratix import load, schema

    if all_promises and promise is not None and path == Path("."):
        path, promise = Path(promise), None  # `schema --all DIR`: the one argument is the platform's path
    if bool(promise) == all_promises:
        raise click.UsageError("name one PROMISE, or pass --all")
    if all_promises and out_dir is None:
        raise click.UsageError("--all needs --out DIR")
    platform, diagnostics = load.parse_platform(common.read_source(path, ref))
    chosen = sorted(platform.promises) if all_promises else [promise]
    documents = {}
    for name in chosen:
        found = platform.promises.get(name or "")
        if found is None:
            raise KratixError(f"no Promise named {name!r}; Promises: {', '.join(sorted(platform.promises)) or 'none'}")
        crd = found.crd
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
@common.path_argument
@click.option("--check", is_flag=True, help="Change nothing; exit 1 when a file still needs migrating.")
def migrate(path: Path, check: bool) -> None:
    """Rewrite seed-era (2021/2022) Promises and Clusters under PATH to today's format, in place. Documents
    that need no change keep their text byte for byte."""
    from kratix import load
    from kratix.load import migrate as migration

    platform, _ = load.parse_platform(load.read_worktree(path))
    template_folders = {
        f"{p.folder}/{c.template}".rstrip("/") + "/"
        for p in platform.promises.values()
        for pl in (*p.promise_configure, *p.resource_configure)
        for c in pl.containers
        if c.template
    }
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
    common.exit_with(not (check and pending))
