"""How results reach the user: diagnostics compiler-style on stderr or as JSON, GitHub Actions annotations, and
the one-line summaries of a compile and a publish."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import click

from kratix.model.diagnostics import Diagnostic, Severity


def report(diagnostics: Sequence[Diagnostic], output_format: str, extra: dict[str, Any] | None = None) -> None:
    """Diagnostics compiler-style on stderr, or as JSON on stdout (nothing else goes to stdout then); with
    GITHUB_ACTIONS=true, also as annotations, on stderr."""
    if output_format == "json":
        click.echo(json.dumps({"diagnostics": [d.as_json() for d in diagnostics], **(extra or {})}, indent=2))
    else:
        for diagnostic in diagnostics:
            click.echo(diagnostic.render(), err=True)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for diagnostic in diagnostics:
            click.echo(github_annotation(diagnostic), err=True)


def _escape_data(text: str) -> str:
    """A workflow command's message, escaped as the Actions toolkit escapes it (`escapeData`)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    """A workflow command's property value, escaped as the Actions toolkit escapes it (`escapeProperty`)."""
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(diagnostic: Diagnostic) -> str:
    level = {Severity.ERROR: "error", Severity.WARNING: "warning"}.get(diagnostic.severity, "notice")
    field = f"{diagnostic.path}: " if diagnostic.path else ""
    return (
        f"::{level} file={_escape_property(diagnostic.file)},line={diagnostic.line},col={diagnostic.column},"
        f"title={_escape_property(diagnostic.code)}::{_escape_data(field + diagnostic.message)}"
    )


def summary_json(summary: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(summary).items()}


def summary_line(summary: Any, seconds: float | None) -> str:
    unavailable = f" ({summary.promises_unavailable} unavailable)" if summary.promises_unavailable else ""
    misplaced = f", {summary.misplaced} misplaced" if summary.misplaced else ""
    misplaced += f", {summary.suspended} suspended" if getattr(summary, "suspended", 0) else ""
    took = f"; {seconds:.2f}s" if seconds is not None else ""
    checked = f"; checked against Kubernetes {summary.kubernetes_version}" if summary.kubernetes_version else ""
    unchecked = (
        f"\nnot validated (no CRD delivered with them): {', '.join(summary.not_validated_kinds)}"
        if summary.not_validated_kinds
        else ""
    )
    if summary.unsandboxed:
        unchecked += (
            f"\nUNSANDBOXED (--unsandboxed): command steps ran directly on this machine for "
            f"{', '.join(summary.unsandboxed)}"
        )
    return (
        f"{summary.promises} promises{unavailable}, {summary.destinations} destinations; requests: "
        f"{summary.placed} placed, {summary.pending} pending{misplaced}, {summary.failed} failed; "
        f"{summary.files} files{checked}{took}{unchecked}"
    )


def outcome_json(outcome: Any) -> dict[str, Any]:
    return {
        "commit": outcome.commit,
        "changed": outcome.changed,
        "attempts": outcome.attempts,
        "warnings": list(outcome.warnings),
    }


def published_json(published: Any) -> dict[str, Any]:
    """The default store's outcome under "publish"; every other state store's under "stateStores", by name."""
    if published is None:
        return {}
    found: dict[str, Any] = {}
    if "" in published.outcomes:
        found["publish"] = outcome_json(published.outcomes[""])
    stores: dict[str, Any] = {}
    for target in published.targets:
        if target.prefix == "":
            continue
        outcome = published.outcomes.get(target.prefix)
        entry = outcome_json(outcome) if outcome is not None else {"error": published.failed.get(target.prefix)}
        stores.update((store.name, entry) for store in target.stores)
    if stores:
        found["stateStores"] = stores
    return found


def published_lines(published: Any, output_repo: str, branch: str) -> str:
    """One line per repo and branch published to: the output repo's, then each state store's."""
    lines = []
    for target in sorted(published.targets, key=lambda t: (t.prefix != "", t.prefix)):
        where = (
            f"{output_repo} {branch}"
            if target.prefix == ""
            else f"{target.stores[0].url} {target.stores[0].branch} ({target.name})"
        )
        outcome = published.outcomes.get(target.prefix)
        if outcome is None:
            lines.append(f"{where}: NOT published: {published.failed.get(target.prefix, 'not read')}")
        else:
            lines.append(outcome_line(outcome, where))
    return "\n".join(lines)


def outcome_line(outcome: Any, where: str) -> str:
    warnings = "".join(f"\nwarning: {w}" for w in outcome.warnings)
    if not outcome.changed:
        return f"{where}: up to date at {str(outcome.commit)[:12]} (no commit made){warnings}"
    retried = f" after {outcome.attempts} attempts" if outcome.attempts > 1 else ""
    return f"{where}: published {outcome.commit[:12]}{retried}{warnings}"
