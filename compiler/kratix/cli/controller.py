"""The `controller` command: a thin shell that starts `kratix.controller` and stops on Ctrl-C."""

from __future__ import annotations

import click

from kratix.cli.group import main
from kratix.gitio import NETWORK_TIMEOUT_SECONDS


@main.command()
@click.option("--repo", required=True, help="The input repo (URL or path) to mirror cluster objects into.")
@click.option("--branch", default="main", show_default=True)
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Default: $KUBECONFIG or ~/.kube/config.")
@click.option("--context", help="The kubeconfig context to use.")
@click.option("--in-cluster", is_flag=True, help="Use the pod's service account.")
@click.option("--output-repo", help="The output repo to read .kratix/status from (statuses go back to objects).")
@click.option("--output-branch", help="Default: --branch.")
@click.option(
    "--debounce", type=float, default=1.0, show_default=True, help="Seconds to wait for more changes before committing."
)
@click.option(
    "--status-interval",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds between reads of the output repo's statuses.",
)
@click.option("--workdir", type=click.Path(file_okay=False), help="Where private clones live (default: a temp dir).")
@click.option(
    "--leader-elect",
    is_flag=True,
    help="Hold a coordination.k8s.io Lease before working, so that several replicas take turns.",
)
@click.option("--lease-namespace", help="The Lease's namespace (default: $POD_NAMESPACE, else default).")
@click.option("--lease-name", default="kratix-controller", show_default=True)
@click.option(
    "--http-address",
    metavar="HOST:PORT",
    help="Serve /healthz, /readyz and /metrics (Prometheus) here, e.g. :8080 (default: not served).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object per line, for a log pipeline.",
)
@click.option(
    "--git-timeout",
    type=float,
    default=NETWORK_TIMEOUT_SECONDS,
    show_default=True,
    help="Seconds a fetch or push may take before it is killed and retried.",
)
@click.option(
    "--api-timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds a Kubernetes API request may wait for an answer.",
)
def controller(
    repo: str,
    branch: str,
    kubeconfig: str | None,
    context: str | None,
    in_cluster: bool,
    output_repo: str | None,
    output_branch: str | None,
    debounce: float,
    status_interval: float,
    workdir: str | None,
    leader_elect: bool,
    lease_namespace: str | None,
    lease_name: str,
    http_address: str | None,
    log_format: str,
    git_timeout: float,
    api_timeout: float,
) -> None:
    """Mirror platform-cluster Promises, Destinations and requests into the input repo, and bring statuses from
    the output repo back to the objects. Runs until interrupted (SIGINT or SIGTERM)."""
    import signal
    import threading

    from kratix.controller import ControllerOptions, logs, run_controller  # keeps `kubernetes` out of others

    if in_cluster and kubeconfig:
        raise click.UsageError("--kubeconfig and --in-cluster exclude each other")
    if http_address is not None and not http_address.rpartition(":")[2].isdigit():
        raise click.UsageError(f"--http-address {http_address!r}: expected HOST:PORT, e.g. :8080")
    logs.configure(json_lines=log_format == "json")
    stop = threading.Event()
    # Kubernetes stops a pod with SIGTERM: finish the step under way, release the Lease, exit 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    options = ControllerOptions(
        repo=repo,
        branch=branch,
        kubeconfig=kubeconfig,
        context=context,
        in_cluster=in_cluster,
        output_repo=output_repo,
        output_branch=output_branch,
        debounce=debounce,
        status_interval=status_interval,
        workdir=workdir,
        leader_election=leader_elect,
        lease_namespace=lease_namespace,
        lease_name=lease_name,
        http_address=http_address,
        git_timeout=git_timeout,
        api_timeout=api_timeout,
    )
    try:
        run_controller(options, stop=stop)
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
