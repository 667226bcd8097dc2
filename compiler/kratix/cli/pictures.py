"""`kratix graph`: the platform as a Mermaid or DOT diagram (Promises → destinations → requests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from kratix.cli import common
from kratix.cli.group import main


@main.command()
@common.path_argument
@common.ref_option
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["mermaid", "dot"]),
    default="mermaid",
    show_default=True,
    help="Mermaid (GitHub and most Markdown viewers draw it) or Graphviz DOT.",
)
@click.option(
    "--output-repo",
    "output_repo",
    help="Read the placements the last publish made from this output repo (without it, the graph shows "
    "where a first publish would place each request, and nothing can be misplaced).",
)
@common.branch_option
@common.step_options
@common.kubernetes_version_option
def graph(
    path: Path,
    ref: str | None,
    output_format: str,
    output_repo: str | None,
    branch: str,
    unsandboxed: bool,
    no_step_network: bool,
    kubernetes_version: str | None,
    now: Any = None,
) -> None:
    """Draw which Promise reaches which destination and which request is placed where, with pending, failed and
    misplaced requests marked. Compiles the platform as `compile` does and publishes nothing. The diagram goes
    to stdout, diagnostics to stderr; exit 1 when the input is invalid (the diagram still shows it)."""
    from kratix import load
    from kratix.cli.publishing import with_store_prefixes
    from kratix.compile import pipeline
    from kratix.publish import commit as publish
    from kratix.publish import diagrams
    from kratix.publish import graph as graphs
    from kratix.publish import plan as plans

    settings = common.build_settings(
        branch=branch,
        unsandboxed=unsandboxed,
        no_step_network=no_step_network,
        kubernetes_version=kubernetes_version,
        now=now,
    )
    tree = common.read_source(path, ref)
    previous = pipeline.PreviousOutput()
    if output_repo is not None:
        from kratix.publish import stores

        targets = stores.resolve(
            load.parse_state_stores(tree),
            create=False,
            default=publish.open_output_repo(output_repo, branch=branch, create=False),
        )
        settings = with_store_prefixes(settings, targets)
        previous = stores.read_all(targets).previous()
    result = pipeline.compile_platform(tree, settings=settings, previous=previous)
    for diagnostic in result.diagnostics:
        click.echo(diagnostic.render(), err=True)
    platform, _ = load.parse_platform(tree)
    picture = graphs.platform_graph(
        platform.promises,
        platform.destinations,
        result.requests,
        result.provenance.values(),
        published=plans.destinations_before(previous.placements),
    )
    click.echo(diagrams.render(picture, output_format), nl=False)
    common.exit_with(result.ok)
