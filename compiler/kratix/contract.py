"""The pipeline contract: the `KRATIX_*` variables every container of a workflow sees, built in one place.

In: the Promise, the request (None for a promise workflow), the pipeline's name. Out: the variables, as Kratix's
pipeline factory sets them (`api/v1alpha1/pipeline_factory.go`, `pipeline_types.go`): for a promise workflow the
object is the Promise itself (`Promise`, `platform.kratix.io`, `v1alpha1`, no namespace, plural `promises`,
cluster-scoped); for a resource workflow it is the request, at the version it is stored at, with its CRD's plural
and scope. Only the configure action runs here (delete workflows are not run: see `kratix.load.pipelines`).
`KRATIX_DRY_RUN` is not set: Kratix's dry run (a request labelled `kratix.io/dry-run`) has no counterpart in a
compiler, whose every run writes nothing until it is published.
"""

from __future__ import annotations

from collections.abc import Mapping

from kratix.platform import API_VERSION, Promise, ResourceRequest

PROMISE_WORKFLOW = "promise"
RESOURCE_WORKFLOW = "resource"
CONFIGURE = "configure"


def kratix_variables(promise: Promise, request: ResourceRequest | None, *, pipeline: str,
                     action: str = CONFIGURE) -> dict[str, str]:
    """The `KRATIX_*` variables of every container of `pipeline`, for `request`'s resource workflow or (with
    None) the Promise's own."""
    if request is None:
        group, _, version = API_VERSION.rpartition("/")
        kind, name, namespace, plural, cluster_scoped = "Promise", promise.name, "", "promises", True
        workflow = PROMISE_WORKFLOW
    else:
        # The object as the API server returns it: at the storage version, whichever version it was written at.
        group, _, version = request.api_version.rpartition("/")
        if promise.api is not None:
            group, version = promise.api.group, promise.api.version
        kind, name, namespace = request.key.kind, request.key.name, request.key.namespace
        plural = promise.api.plural if promise.api else ""
        spec = (promise.crd or {}).get("spec")
        cluster_scoped = isinstance(spec, Mapping) and spec.get("scope") == "Cluster"
        workflow = RESOURCE_WORKFLOW
    return {
        "KRATIX_WORKFLOW_ACTION": action,
        "KRATIX_WORKFLOW_TYPE": workflow,
        "KRATIX_PROMISE_NAME": promise.name,
        "KRATIX_PIPELINE_NAME": pipeline,
        "KRATIX_OBJECT_KIND": kind,
        "KRATIX_OBJECT_GROUP": group,
        "KRATIX_OBJECT_VERSION": version,
        "KRATIX_OBJECT_NAME": name,
        "KRATIX_OBJECT_NAMESPACE": namespace,
        "KRATIX_CRD_PLURAL": plural,
        "KRATIX_CLUSTER_SCOPED": "true" if cluster_scoped else "false",
    }
