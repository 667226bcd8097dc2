"""What several commands share: their common arguments and options, reading the input, building `Settings`, and
the exit that follows a compile's verdict."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from kratix.cli.group import EXIT_INVALID, EXIT_OK

path_argument = click.argument("path", type=click.Path(file_okay=False, path_type=Path), default=".")
ref_option = click.option("--ref", help="Read the input from this Git commit of PATH instead of the files on disk.")
format_option = click.option(
    "--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True
)
output_repo_option = click.option(
    "--output-repo", "output_repo", help="Publish to this Git repo (a local path, created if missing, or a URL)."
)
branch_option = click.option("--branch", default="main", show_default=True, help="The output repo's branch.")


def _timestamp(context: Any, parameter: Any, value: str | None) -> Any:
    """An RFC 3339 time with its offset (`2026-12-02T10:00:00Z`), as a timezone-aware datetime."""
    from datetime import datetime

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an RFC 3339 time such as 2026-12-02T10:00:00Z") from None
    if parsed.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no time zone: end it with Z or an offset such as +01:00")
    return parsed


def step_options(command: Any) -> Any:
    """How pipeline steps may run: the sandbox opt-out, the network switch and the time they run at."""
    command = click.option(
        "--now",
        callback=_timestamp,
        metavar="RFC3339",
        help="The time this compile runs at (default: the clock): a workflow's retryAfter runs again on the first "
        "compile at or after it is due.",
    )(command)
    command = click.option(
        "--unsandboxed",
        is_flag=True,
        envvar="KRATIX_UNSANDBOXED",
        help="Run command steps directly on this machine, without a sandbox (also KRATIX_UNSANDBOXED=1). Only "
        "where you trust every Promise's code; the summary and provenance say so.",
    )(command)
    return click.option(
        "--no-step-network",
        "no_step_network",
        is_flag=True,
        help="Give no pipeline step a network, even one that asks for it (network: true): such a step fails "
        "its request. For checks of untrusted changes.",
    )(command)


kubernetes_version_option = click.option(
    "--kubernetes-version",
    "kubernetes_version",
    metavar="1.N",
    help="The Kubernetes release whose schemas built-in kinds are checked against (default: the newest the "
    "installed kubernetes-validate ships; the summary says which).",
)


def read_source(path: Path, ref: str | None) -> Any:
    from kratix import load

    return load.read_commit(path, ref) if ref else load.read_worktree(path)


def build_settings(*, no_step_network: bool | None = None, now: Any = None, **overrides: Any) -> Any:
    from kratix.model.settings import PublishSettings, RenderSettings, Settings, ValidateSettings

    if no_step_network is not None:
        overrides["step_network"] = not no_step_network
    if now is not None:
        from datetime import UTC

        overrides["now"] = now.astimezone(UTC)
    render = RenderSettings(
        **{k: v for k, v in overrides.items() if k in RenderSettings.__dataclass_fields__ and v is not None}
    )
    publish = PublishSettings(
        **{k: v for k, v in overrides.items() if k in PublishSettings.__dataclass_fields__ and v is not None}
    )
    validate = ValidateSettings(
        **{k: v for k, v in overrides.items() if k in ValidateSettings.__dataclass_fields__ and v is not None}
    )
    return Settings(render=render, publish=publish, validate=validate)


def exit_with(ok: bool) -> NoReturn:
    sys.exit(EXIT_OK if ok else EXIT_INVALID)


# A young collection every this many new container objects (Python's default is 700), and the full one hardly
# ever (see `spare_collector`).
_YOUNG_EVERY = 100_000
_OLDER_EVERY = 20


def spare_collector() -> None:
    """Keep Python's cyclic garbage collector from rescanning the whole compile, over and over.

    A compile builds millions of long-lived container objects (bodies, rendered documents, statuses, files) that
    hold no reference cycles. With the default thresholds every full collection walks all of them, and there are
    more full collections the larger the platform: at 30,000 requests a quarter of the CPU went to it (7.7 s of
    39 s in one process), and the share grows with the platform. Young collections still run, so the few cycles
    that rendering makes (Jinja contexts, exceptions) are freed; nothing about the output depends on it. For a
    command, which exits when done: the controller keeps Python's defaults. At exit, the interpreter's last
    collection would walk everything still alive once more, for nothing since the process ends (20-30 ms of a
    one-request compile at 100,000 requests): everything is frozen first, and frozen objects are not walked."""
    import atexit
    import gc

    gc.set_threshold(_YOUNG_EVERY, _OLDER_EVERY, _OLDER_EVERY)  # forked workers inherit it
    atexit.unregister(gc.freeze)  # once, however many compiles a process runs (tests run many)
    atexit.register(gc.freeze)
