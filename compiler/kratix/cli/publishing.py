"""Commands about the output repo: `plan` (what publishing would change), `explain` (why a file exists),
`bootstrap` (the Flux objects a worker applies once), and the publish loop `compile --output-repo` runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from kratix.cli import common, report
from kratix.cli.group import main
from kratix.model.errors import KratixError


def publish_platform(
    tree: Any,
    repo: Any,
    settings: Any,
    progress: Any = None,
    workflows: Any = None,
    *,
    keep_bytes: bool = False,
    carried: Any = (),
) -> tuple[Any, Any, Any]:
    """Compile against the branches as they are, guard, commit to every state store (`kratix.publish.stores`); on a lost
    race the branches are re-read and all of it runs again (the previous output is an input of the compile).
    `keep_bytes`: every new file stays bytes in the result, for a caller that writes them out too (`--out`).
    `carried`: the finished output shards stored for this input commit (`shards.Carried`, one per shard)."""
    from kratix import gitio, load
    from kratix.compile import pipeline, shards
    from kratix.model import paths
    from kratix.model.documents import keep
    from kratix.publish import stores

    targets = stores.resolve(load.parse_state_stores(tree), default=repo)
    settings = with_store_prefixes(settings, targets)
    compiled: list[Any] = []

    def build(previous: Any) -> tuple[Any, dict[str, str]]:
        # What shards carry was compiled against the output branch as they read it: only for that same head. A
        # compile that writes its files out too (`keep_bytes`) compiles them here: `--out` reads each file back
        # from the output it compiled against, which holds no carried file.
        usable = carried and len(targets) == 1 and not keep_bytes
        finished = shards.combine(carried, previous.commit) if usable else None
        # The default store's files are written as blobs while the compile makes them, so that a large compile
        # never holds them all (`gitio.BlobWriter`); the other stores' stay bytes until their own publish.
        with gitio.BlobWriter(repo.path) as writer:
            result, message, trips = pipeline.prepare_publish(
                tree,
                previous,
                settings=settings,
                workflows=workflows,
                store=keep
                if keep_bytes
                else (lambda path, data: writer.store(data) if paths.target_of(path) == "" else data),
                **({"progress": progress} if progress else {}),
                carried=finished,
                carried_blobs=gitio.LazyBlobs(repo.path, finished.files) if finished is not None else None,
            )
        compiled.append((result, previous))
        refuse_deletions(trips, settings)
        # The default store's message is made already (it compares every new file with the branch: not twice).
        return result.files, {
            t.prefix: message if t.prefix == "" else pipeline.commit_message(tree, result, previous, target=t.prefix)
            for t in targets
        }

    published = stores.publish_all(targets, build, attempts=settings.publish.attempts)
    result, previous = compiled[-1]
    return result, published, previous


def refuse_deletions(trips: Any, settings: Any) -> None:
    """The mass-deletion guard: refuse to publish what it tripped on, unless deletions are allowed."""
    from kratix.model.errors import PublishError

    if trips and not settings.publish.allow_deletions:
        lines = [
            f"  {t.destination}: {t.reason}: {', '.join(t.objects[:20])}"
            + (f" and {len(t.objects) - 20} more" if len(t.objects) > 20 else "")
            for t in trips
        ]
        raise PublishError(
            "refusing to publish: the mass-deletion guard tripped\n"
            + "\n".join(lines)
            + "\nre-run with --allow-deletions if these deletions are intended"
        )


def publish_delta(path: Path, ref: str, repo: Any, settings: Any) -> tuple[Any, Any, Any] | str:
    """Compile and publish reading only what changed since the output branch's last publish (`kratix.compile.delta`):
    the input paths that differ from its `Source-Commit` (git diff-tree), the bookkeeping they reach (by path, from
    the branch), one commit of the changed paths on top of the branch. When this cannot be done (anything but
    request files changed, the branch holds what kratix did not write, the last compile left requests to compile
    again, ...), why: the caller then compiles everything, as it always may."""
    from kratix import gitio
    from kratix.publish import commit as publish
    from kratix.publish import stores

    found = _changed_since_published(path, ref, repo)
    if isinstance(found, str):
        return found
    head, tree_id, commit, scope = found
    with gitio.TreeReader(repo.path, head) as files:
        outcome, previous = _compile_scope(path, commit, scope, files, head, settings)
        if isinstance(outcome, str):
            return outcome
        refuse_deletions(outcome.trips, settings)
        published = publish.publish_changes(repo, head, tree_id, outcome.changes, outcome.message)
    if published is None:
        return "the output branch moved while compiling"
    target = stores.resolve({}, default=repo)[0]
    return outcome.result, stores.Published({"": published}, {}, previous, (target,)), previous


def _changed_since_published(path: Path, ref: str, repo: Any) -> tuple[str, str, str, frozenset[str]] | str:
    """The output branch's head and tree, the input commit and the request files changed since the head's
    `Source-Commit`; or why that is not known."""
    from kratix import gitio
    from kratix.compile import delta
    from kratix.model import paths
    from kratix.publish import commit as publish

    head = publish.read_head(repo)
    if head is None:
        return "nothing was published yet"
    tree_id, message = gitio.commit_info(repo.path, head)
    source = gitio.trailer(message, "Source-Commit")
    if not source or gitio.trailer(message, paths.OUTPUT_TREE_TRAILER) != tree_id:
        return "the output branch's last commit is not a compile's, as kratix wrote it"
    commit = gitio.resolve_commit(path, ref)
    changed = gitio.changed_paths(path, source, commit)
    scope = delta.scope_of(changed) if changed is not None else "the last published input commit is unknown"
    return scope if isinstance(scope, str) else (head, tree_id, commit, scope)


def _compile_scope(path: Path, commit: str, scope: Any, files: Any, head: str, settings: Any) -> tuple[Any, Any]:
    """The delta compile of `scope` against the branch's files (read by path), or why it cannot be done."""
    from kratix import load
    from kratix.compile import delta
    from kratix.memory import totals
    from kratix.memory.previous import ScopedPrevious
    from kratix.model import paths

    try:
        before = totals.decode(files[paths.TOTALS])
    except (KeyError, ValueError, UnicodeDecodeError):
        return f"no readable {paths.TOTALS} (written once by a full compile)", None
    if not before.settled:
        return "the last compile left requests to compile again (failed, pending or compound)", None
    tree = load.read_commit(
        path,
        commit,
        only=(*(f"{folder}/" for folder in load.INPUT_FOLDERS if folder != delta.REQUESTS), *sorted(scope)),
        resolved=True,
    )
    if load.parse_state_stores(tree):
        return "the platform publishes to GitStateStores, which are read whole", None
    shards = delta.shards_for(scope)
    first = ScopedPrevious(files, head, read=frozenset({""}), cache_paths=shards)
    reached = frozenset(d for r in first.cache if r.file in scope for d in r.placements.values())
    for _ in range(3):  # the scope's output may land on destinations its old output was not on
        previous = ScopedPrevious(
            files,
            head,
            read=frozenset({""}),
            cache_paths=shards,
            decoded=first.cache_shards if not first.warnings else None,
            provenance_paths=frozenset(paths.provenance_shard(d) for d in reached),
        )
        outcome = delta.compile_delta(tree, previous, before, scope, settings=settings)
        if not isinstance(outcome, delta.MoreShards):
            return outcome, previous
        reached = outcome.destinations | reached
    return "the change reaches more destinations at each try", None


def with_store_prefixes(settings: Any, targets: Any) -> Any:
    """`settings` knowing which state stores publish with another (`kratix.publish.stores.resolve`)."""
    from dataclasses import replace

    from kratix.publish import stores

    return replace(settings, publish=replace(settings.publish, store_prefixes=stores.prefixes(targets)))


@main.command()
@common.path_argument
@common.ref_option
@common.output_repo_option
@common.branch_option
@click.option(
    "--format", "output_format", type=click.Choice(["markdown", "json"]), default="markdown", show_default=True
)
@click.option(
    "--base-ref",
    help="Compare with the output this Git commit of PATH compiles to, instead of an output "
    "repo (for pull requests: needs no access to the output repo).",
)
@common.step_options
@common.kubernetes_version_option
def plan(
    path: Path,
    ref: str | None,
    output_repo: str | None,
    branch: str,
    output_format: str,
    base_ref: str | None,
    unsandboxed: bool,
    no_step_network: bool,
    kubernetes_version: str | None,
    now: Any = None,
) -> None:
    """Show what publishing would change on the output branch (or compared with the output of --base-ref):
    files per destination with diffs (Secret values redacted), placements and risks. Publishes nothing. Exit 1
    when the input is invalid."""
    from kratix.compile import pipeline
    from kratix.publish import commit as publish
    from kratix.publish import plan as plans

    if (output_repo is None) == (base_ref is None):
        raise click.UsageError(
            "plan needs --output-repo (the repo whose branch it compares against) or --base-ref "
            "(the commit whose output it compares against), not both"
        )
    settings = common.build_settings(
        branch=branch,
        unsandboxed=unsandboxed,
        no_step_network=no_step_network,
        now=now,
        kubernetes_version=kubernetes_version,
    )
    if base_ref is not None:
        base = pipeline.compile_platform(common.read_source(path, base_ref), settings=settings)
        previous = pipeline.PreviousOutput({p: c for p, c in base.files.items() if isinstance(c, bytes)})
    else:
        from kratix import load
        from kratix.publish import stores

        tree = common.read_source(path, ref)
        targets = stores.resolve(
            load.parse_state_stores(tree),
            create=False,
            default=publish.open_output_repo(output_repo or "", branch=branch, create=False),
        )
        settings = with_store_prefixes(settings, targets)
        previous = stores.read_all(targets).previous()
    result, changes = pipeline.plan_platform(common.read_source(path, ref), previous, settings=settings)
    for diagnostic in result.diagnostics:
        click.echo(diagnostic.render(), err=True)
    if output_format == "json":
        click.echo(
            json.dumps(
                {
                    "plan": plans.to_json(changes),
                    "summary": report.summary_json(result.summary),
                    "diagnostics": [d.as_json() for d in result.diagnostics],
                },
                indent=2,
            )
        )
    else:
        click.echo(plans.to_markdown(changes))
    common.exit_with(result.ok)


@main.command()
@click.argument("file")
@common.output_repo_option
@common.branch_option
def explain(file: str, output_repo: str | None, branch: str) -> None:
    """Say why FILE of the output repo exists: its Promise, request, pipeline, source template and commit."""
    import yaml

    from kratix import yamltext
    from kratix.memory.previous import PreviousOutput
    from kratix.model import paths
    from kratix.publish import commit as publish

    if output_repo is None:
        raise click.UsageError("explain needs --output-repo")
    state = publish.read_branch(publish.open_output_repo(output_repo, branch=branch, create=False))
    previous = PreviousOutput(state.files, state.commit, read=frozenset({""}))  # other stores: as recorded
    entries = previous.provenance
    for warning in previous.warnings:
        click.echo(f"warning: {warning}", err=True)
    wanted = file.removeprefix("./")
    entry = entries.get(wanted)
    if entry is None:
        close = [p for p in entries if wanted in p][:5]
        hint = f"; did you mean: {', '.join(close)}" if close else ""
        raise KratixError(f"{wanted}: not in the output of {output_repo} {branch}{hint}")
    lines = [f"{entry.path}", f"  {'owner:':<14}{entry.owner}"]
    for label, value in (
        ("promise", entry.promise),
        ("request", entry.request),
        ("pipeline", entry.pipeline),
        ("source", entry.source),
        ("destination", entry.destination),
        ("input commit", entry.commit or "(an uncommitted work tree)"),
    ):
        if value:
            lines.append(f"  {label + ':':<14}{value}")
    if entry.objects:
        lines.append("  objects:      " + ", ".join(entry.objects))
    if entry.request and entry.promise:
        kind, where = entry.request.split(" ", 1)
        namespace, name = where.split("/", 1)
        status_file = state.files.get(paths.request_status(namespace, entry.promise, name))
        try:
            document: Any = next(iter(yamltext.load_plain(status_file or b"")), None)
        except yaml.YAMLError:
            document = None
        status = document.get("status") if isinstance(document, dict) else None
        if isinstance(status, dict):
            lines.append(f"  status:       {status.get('message')}")
            for placement in status.get("placements") or []:
                if isinstance(placement, dict):
                    lines.append(f"  placement:    {placement.get('reason')}")
    click.echo("\n".join(lines))


@main.command()
@click.argument("destination", required=False)
@click.argument("path", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option(
    "--for",
    "tool",
    type=click.Choice(["flux", "argocd"]),
    default="flux",
    show_default=True,
    help="The GitOps tool on the worker: Flux (GitRepository and Kustomizations) or Argo CD (Applications).",
)
@click.option(
    "--all",
    "all_destinations",
    is_flag=True,
    help="With --for argocd: one ApplicationSet for every destination, for an Argo CD that manages "
    "their clusters (each registered in Argo CD under its destination's name).",
)
@click.option(
    "--url",
    help="The URL of the destination's repo as the worker's Flux or Argo CD reaches it "
    "(default: its GitStateStore's spec.url, when that is a URL). With --all: the URL of "
    "the output repo, for destinations without a GitStateStore of their own.",
)
@click.option(
    "--branch",
    help="The branch (default: its GitStateStore's spec.branch, else main). With --all: the "
    "output repo's, for destinations without a GitStateStore of their own.",
)
@click.option("--secret", help="Flux: a Secret in flux-system with Git credentials for the URL.")
@click.option("--namespace", help="Where the objects go (default: flux-system for Flux, argocd for Argo CD).")
@click.option("--interval", default="1m", show_default=True, help="Flux: how often it polls (at least 1m).")
@click.option(
    "--sops-secret",
    help="Flux: decrypt SOPS-encrypted Secrets with the key in this Secret of the "
    "namespace (adds decryption: {provider: sops} to its Kustomizations).",
)
@click.option("--project", default="default", show_default=True, help="Argo CD: the AppProject.")
@click.option(
    "--cluster",
    help="Argo CD: sync to this cluster registered in Argo CD, by name (default: the cluster Argo CD runs on).",
)
@click.pass_context
def bootstrap(
    ctx: click.Context,
    destination: str | None,
    path: Path,
    tool: str,
    all_destinations: bool,
    url: str | None,
    branch: str | None,
    secret: str | None,
    namespace: str | None,
    interval: str,
    sops_secret: str | None,
    project: str,
    cluster: str | None,
) -> None:
    """Print the objects to apply once so that DESTINATION's cluster syncs its folder (`kubectl apply -f -`):
    Flux's by default, Argo CD's with --for argocd; with --all --for argocd, one ApplicationSet for every
    destination."""
    from kratix import load, yamltext
    from kratix.publish import argocd
    from kratix.publish import bootstrap as flux

    if all_destinations and destination is not None and path == Path("."):
        path, destination = Path(destination), None  # `bootstrap --all DIR`: the one argument is the platform
    if all_destinations == (destination is not None):
        raise click.UsageError("name one DESTINATION, or pass --all (with --for argocd)")
    _check_bootstrap_options(ctx, tool, all_destinations, interval)
    platform, _ = load.parse_platform(load.read_worktree(path))
    targets = [
        (d, *_bootstrap_source(platform, d, url, branch, override=not all_destinations))
        for d in _bootstrap_destinations(platform, destination, path)
    ]
    namespace = namespace or ("argocd" if tool == "argocd" else "flux-system")
    if tool == "flux":
        found, repo_url, repo_branch, folder = targets[0]
        documents = flux.flux_objects(
            found.name,
            folder,
            url=repo_url,
            branch=repo_branch,
            namespace=namespace,
            secret=secret,
            interval=interval,
            sops_secret=sops_secret,
            mode=found.mode,
        )
    else:
        for found in (t[0] for t in targets if t[0].encrypts_secrets):
            click.echo(
                f"warning: Destination {found.name} gets SOPS-encrypted Secrets: Argo CD applies them as "
                "they are unless a decryption plugin (such as KSOPS) is set up",
                err=True,
            )
        folders = [
            f
            for found, repo_url, repo_branch, folder in targets
            for f in argocd.folders(found.name, folder, url=repo_url, branch=repo_branch, mode=found.mode)
        ]
        documents = (
            [argocd.application_set(folders, namespace=namespace, project=project)]
            if all_destinations
            else argocd.applications(folders, namespace=namespace, project=project, cluster=cluster)
        )
    click.echo(yamltext.dump_all(documents).decode(), nl=False)


def _check_bootstrap_options(ctx: click.Context, tool: str, all_destinations: bool, interval: str) -> None:
    """Refuse the options of one tool given with the other, rather than ignore them."""

    def given(*names: str) -> list[str]:
        return [
            f"--{name.replace('_', '-')}"
            for name in names
            if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
        ]

    if tool == "argocd":
        flux_only = given("secret", "sops_secret", "interval")
        if flux_only:
            raise click.UsageError(
                f"{', '.join(flux_only)}: Flux only. Argo CD finds Git credentials by the repo's "
                "URL (argocd repo add), polls on its own schedule, and needs a plugin for SOPS"
            )
    elif all_destinations or given("cluster", "project"):
        raise click.UsageError(
            "--all, --cluster and --project are for --for argocd (Flux runs on each "
            "destination's cluster: bootstrap each one)"
        )
    elif not _at_least_a_minute(interval):
        raise click.BadParameter("must be at least 1m (e.g. 1m, 5m, 1h)", param_hint="--interval")


def _bootstrap_destinations(platform: Any, destination: str | None, path: Path) -> list[Any]:
    """The one destination named, or every destination (None: `--all`)."""
    if destination is None:
        if not platform.destinations:
            raise KratixError(f"no Destination in {path}/clusters")
        return [platform.destinations[name] for name in sorted(platform.destinations)]
    found = platform.destinations.get(destination)
    if found is None:
        names = ", ".join(sorted(platform.destinations)) or "none"
        raise KratixError(f"no Destination named {destination!r} in {path}/clusters (destinations: {names})")
    return [found]


def _bootstrap_source(
    platform: Any, found: Any, url: str | None, branch: str | None, *, override: bool
) -> tuple[str, str, str]:
    """The repo URL, branch and folder a destination's GitOps tool syncs: its GitStateStore's, or the default
    store's (`url`, which must be given then, and `branch`). With `override`, `url` and `branch` win over the
    store's."""
    from kratix import gitio
    from kratix.model import paths

    store = platform.stores.get(found.store or "")
    store_url = store.url if store is not None and gitio.is_git_url(store.url) else None
    repo_url = url if url is not None and (override or store_url is None) else store_url
    if repo_url is None:
        raise click.UsageError(
            f"--url is needed (for Destination {found.name}): the URL of its repo as the "
            "worker's GitOps tool reaches it"
        )
    folder = paths.join(store.path, found.path) if store is not None else found.path
    repo_branch = branch if branch is not None and (override or store is None) else None
    return repo_url, repo_branch or (store.branch if store else "main"), folder


def _at_least_a_minute(interval: str) -> bool:
    import re

    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", interval)
    if not match or not interval:
        return False
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds >= 60
