"""Bootstrap: the Flux objects to apply once on a worker so that it syncs its folder of its state store.

A GitRepository for the repo and, for a nested destination, two Kustomizations, `./<path>/dependencies` then
`./<path>/resources` (which `dependsOn` the first and so waits until operators and CRDs are ready), both pruning
what disappears from Git: the same shape as Kratix's own worker setup. A destination of filepath mode none or
aggregatedYAML is one folder, and one Kustomization over it (its kustomization.yaml lists what it applies).
"""

from __future__ import annotations

from typing import Any

from kratix.model import paths

DEFAULT_INTERVAL = "1m"  # Flux polls no faster than this; lower values only add load to the Git host


def flux_objects(
    destination: str,
    path: str,
    *,
    url: str,
    branch: str = "main",
    namespace: str = "flux-system",
    secret: str | None = None,
    interval: str = DEFAULT_INTERVAL,
    sops_secret: str | None = None,
    mode: str = paths.NESTED,
) -> list[dict[str, Any]]:
    """`path`: the destination's folder in its repo ("" for the root)."""
    name = f"kratix-{destination}"
    source: dict[str, Any] = {"interval": interval, "url": url, "ref": {"branch": branch}}
    if secret:
        source["secretRef"] = {"name": secret}
    if mode == paths.NESTED:
        dependencies = f"{name}-dependencies"
        resources = _kustomization(
            f"{name}-resources", namespace, name, _folder(path, paths.RESOURCES), interval, wait=False
        )
        resources["spec"]["dependsOn"] = [{"name": dependencies}]
        kustomizations = [
            _kustomization(dependencies, namespace, name, _folder(path, paths.DEPENDENCIES), interval, wait=True),
            resources,
        ]
    else:
        kustomizations = [_kustomization(name, namespace, name, _folder(path), interval, wait=False)]
    if sops_secret:
        for kustomization in kustomizations:
            kustomization["spec"]["decryption"] = {"provider": "sops", "secretRef": {"name": sops_secret}}
    return [
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "GitRepository",
            "metadata": {"name": name, "namespace": namespace},
            "spec": source,
        },
        *kustomizations,
    ]


def _folder(*parts: str) -> str:
    return "./" + paths.join(*parts)


def _kustomization(name: str, namespace: str, source: str, path: str, interval: str, *, wait: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "interval": interval,
        "retryInterval": interval,
        "path": path,
        "prune": True,
        "sourceRef": {"kind": "GitRepository", "name": source},
    }
    if wait:
        # `dependsOn` only waits for Ready; with `wait`, Ready means every operator and CRD it applied is healthy.
        spec["wait"] = True
        spec["timeout"] = "10m"
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
