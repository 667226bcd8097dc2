"""Bootstrap for Argo CD: the objects that make Argo CD sync a destination's folder of its state store, as
`kratix.publish.bootstrap` does for Flux.

A nested destination gets two Applications, `<path>/dependencies` then `<path>/resources`; a destination of
filepath mode none or aggregatedYAML is one folder and one Application. Each folder holds the kustomization.yaml
kratix generates, so Argo CD builds it with Kustomize exactly as Flux does. Sync is automated, with prune (what
disappears from Git is deleted, as Flux's `prune: true`) and selfHeal (drift is undone).

Argo CD has no `dependsOn` between Applications. Dependencies still come first: the Applications carry sync
waves (dependencies 0, resources 1), which order them when an app of apps syncs them; and every Application
skips the dry run of kinds whose CRD is not there yet and retries with backoff, without limit, so the resources
keep trying until the dependencies have installed their CRDs (as Flux's `retryInterval` does).

The ApplicationSet form (`kratix bootstrap --all --for argocd`) makes the same Applications for every
destination from one list generator, for an Argo CD that manages many clusters: each destination's cluster is
the one registered in Argo CD under the destination's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kratix.model import paths

API_VERSION = "argoproj.io/v1alpha1"
IN_CLUSTER = "https://kubernetes.default.svc"
DEFAULT_NAMESPACE = "argocd"
DEFAULT_PROJECT = "default"
SYNC_WAVE = "argocd.argoproj.io/sync-wave"


@dataclass(frozen=True)
class Folder:
    """One Application's worth: a folder of one destination in its repo."""

    name: str  # the Application's name
    destination: str  # the Destination's name (the cluster's name in Argo CD, for an ApplicationSet)
    url: str
    branch: str
    path: str  # in the repo, "" for its root
    wave: int


def folders(destination: str, path: str, *, url: str, branch: str, mode: str = paths.NESTED) -> list[Folder]:
    """`path`: the destination's folder in its repo ("" for the root)."""
    name = f"kratix-{destination}"
    if mode != paths.NESTED:
        return [Folder(name, destination, url, branch, path, 0)]
    return [
        Folder(f"{name}-{area}", destination, url, branch, paths.join(path, area), wave)
        for wave, area in enumerate(paths.AREAS)
    ]


def _spec(*, project: str, url: str, branch: str, path: str, cluster: dict[str, str]) -> dict[str, Any]:
    return {
        "project": project,
        "source": {"repoURL": url, "targetRevision": branch, "path": path},
        # A namespaced object that names no namespace goes to `default`, as with kubectl and Flux.
        "destination": {**cluster, "namespace": "default"},
        "syncPolicy": {
            "automated": {"prune": True, "selfHeal": True},
            # Backoff from 30 s up to 5 min, without limit: Argo CD's way of waiting for what a folder needs
            # (the dependencies' CRDs), as Flux's retryInterval.
            "retry": {"limit": -1, "backoff": {"duration": "30s", "factor": 2, "maxDuration": "5m"}},
            # No dry run for kinds whose CRD is not installed yet; server-side apply as Flux does (a large CRD
            # does not fit the last-applied annotation of a client-side apply).
            "syncOptions": ["SkipDryRunOnMissingResource=true", "ServerSideApply=true"],
        },
    }


def applications(
    folder_list: Sequence[Folder],
    *,
    namespace: str = DEFAULT_NAMESPACE,
    project: str = DEFAULT_PROJECT,
    server: str | None = None,
    cluster: str | None = None,
) -> list[dict[str, Any]]:
    """One Application per folder, for an Argo CD on the destination's own cluster (`server` or `cluster`:
    another cluster registered in Argo CD, by URL or by name)."""
    target = {"name": cluster} if cluster else {"server": server or IN_CLUSTER}
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "Application",
            "metadata": {"name": f.name, "namespace": namespace, "annotations": {SYNC_WAVE: str(f.wave)}},
            "spec": _spec(project=project, url=f.url, branch=f.branch, path=f.path or ".", cluster=target),
        }
        for f in folder_list
    ]


def application_set(
    folder_list: Sequence[Folder],
    *,
    name: str = "kratix",
    namespace: str = DEFAULT_NAMESPACE,
    project: str = DEFAULT_PROJECT,
) -> dict[str, Any]:
    """One ApplicationSet making the Applications of every folder from a list generator; each targets the
    cluster registered in Argo CD under its destination's name."""
    elements = [
        {
            "name": f.name,
            "destination": f.destination,
            "url": f.url,
            "branch": f.branch,
            "path": f.path or ".",
            "wave": str(f.wave),
        }
        for f in folder_list
    ]
    template = {
        "metadata": {
            "name": "{{.name}}",
            "annotations": {SYNC_WAVE: "{{.wave}}"},
            "labels": {"app.kubernetes.io/managed-by": "kratix"},
        },
        "spec": _spec(
            project=project,
            url="{{.url}}",
            branch="{{.branch}}",
            path="{{.path}}",
            cluster={"name": "{{.destination}}"},
        ),
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "ApplicationSet",
        "metadata": {"name": name, "namespace": namespace},
        # Go templates, and a missing key is an error rather than an empty string (a wrong path would prune).
        "spec": {
            "goTemplate": True,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [{"list": {"elements": elements}}],
            "template": template,
        },
    }
