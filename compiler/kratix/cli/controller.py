"""The `controller` command: a thin shell that starts `kratix.controller` and stops on Ctrl-C."""

from __future__ import annotations

import click

from kratix.cli.group import main


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
