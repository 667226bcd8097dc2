"""The APIs the controller serves: our own Promise and Destination CRDs, and each Promise's request API.

In: a Promise body, and the CRD the cluster holds under that name. Out: the `Resource` (group, version,
plural, kind, scope) its requests are served under, the CRD to install for it (with the status subresource
and a `.status.message` printer column added when the Promise author left them out: the compiler's statuses
land there, and `kubectl get` should show them), and what to do about the cluster's CRD: create it, patch it,
leave it, or refuse.

Ownership: a CRD the controller creates carries the label `kratix.io/promise-name: <promise>`. It creates a
CRD only where none exists and patches only one labelled with the Promise that declares it; any other CRD
(cert-manager's, another Promise's) is left untouched and the Promise is refused with the reason. Two Promises
claiming one CRD, or one kind (both would mirror to `requests/<namespace>/<kind>/`): the older one keeps it.
`spec.api` is read as Kratix reads it (`kratix.apiserver.crdtypes`): an apiextensions.k8s.io/v1 CRD whatever apiVersion
and kind it declares, installed as one. Refuses (returns a `Refusal`): a `spec.api` Kratix cannot read as a CRD,
or that is not Namespaced. Pure: nothing here talks to a cluster.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kratix.apiserver import crdtypes
from kratix.model.diagnostics import Severity
from kratix.model.platform import API_GROUP

CRD_GROUP = "apiextensions.k8s.io"
CRD_VERSION = "v1"
CRD_PLURAL = "customresourcedefinitions"
OUR_VERSION = "v1alpha1"
MESSAGE_COLUMN = {"name": "Message", "type": "string", "jsonPath": ".status.message"}
OWNER_LABEL = "kratix.io/promise-name"  # on a request CRD: the Promise that created it and may change it


@dataclass(frozen=True, order=True)
class Resource:
    """One served API resource: what a list/watch/patch URL is made of."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


PROMISES = Resource(API_GROUP, OUR_VERSION, "promises", "Promise", namespaced=False)
DESTINATIONS = Resource(API_GROUP, OUR_VERSION, "destinations", "Destination", namespaced=False)
CRDS = Resource(CRD_GROUP, CRD_VERSION, CRD_PLURAL, "CustomResourceDefinition", namespaced=False)
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease", namespaced=True)
EVENTS = Resource("events.k8s.io", "v1", "events", "Event", namespaced=True)


@dataclass(frozen=True)
class Refusal:
    """Why a Promise's request API is not served: a condition reason (CamelCase) and a message for people."""

    reason: str
    message: str


@dataclass(frozen=True)
class RequestApi:
    """What a Promise's `spec.api` installs: the CRD body and the resource its requests are watched under."""

    promise: str
    resource: Resource
    crd: dict[str, Any]

    @property
    def crd_name(self) -> str:
        return str(self.crd["metadata"]["name"])


def own_crds() -> list[dict[str, Any]]:
    """The Promise and Destination CRDs: cluster-scoped, any spec (the compiler validates it), with status."""
    return [_own_crd(PROMISES, "promise"), _own_crd(DESTINATIONS, "destination")]


def _own_crd(resource: Resource, singular: str) -> dict[str, Any]:
    names = {
        "plural": resource.plural,
        "singular": singular,
        "kind": resource.kind,
        "listKind": f"{resource.kind}List",
        "categories": ["kratix"],
    }
    return {
        "apiVersion": f"{CRD_GROUP}/{CRD_VERSION}",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{resource.plural}.{resource.group}"},
        "spec": {
            "group": resource.group,
            "scope": "Cluster",
            "names": names,
            "versions": [
                {
                    "name": resource.version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(MESSAGE_COLUMN)],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                            },
                        }
                    },
                }
            ],
        },
    }


def request_api(promise: Mapping[str, Any]) -> RequestApi | Refusal:
    """The request API a Promise declares, or why it cannot be installed."""
    name = str((promise.get("metadata") or {}).get("name", ""))
    api = _request_api(promise, name)
    return Refusal("InvalidAPI", api) if isinstance(api, str) else api


def _request_api(promise: Mapping[str, Any], name: str) -> RequestApi | str:
    raw = (promise.get("spec") or {}).get("api")
    if not isinstance(raw, dict):
        return f"Promise {name!r} has no spec.api"
    decoded = crdtypes.decode(raw)  # as Kratix reads it: a v1 CRD whatever apiVersion and kind it declares
    if not decoded.readable or decoded.crd is None:
        first = next(p for p in decoded.problems if p.severity is Severity.ERROR)
        where = ".".join(map(str, ("spec", "api", *first.path)))
        return f"Promise {name!r}: {where}: {first.message}"
    api = {**decoded.crd, "apiVersion": f"{CRD_GROUP}/{CRD_VERSION}", "kind": "CustomResourceDefinition"}
    spec = api.get("spec")
    if not isinstance(spec, dict):
        return f"Promise {name!r}: spec.api has no spec"
    if spec.get("scope", "Namespaced") != "Namespaced":
        return f"Promise {name!r}: spec.api must be Namespaced (requests live in namespaces)"
    group, names, versions = spec.get("group"), spec.get("names"), spec.get("versions")
    if not (isinstance(group, str) and isinstance(names, dict) and isinstance(versions, list) and versions):
        return f"Promise {name!r}: spec.api needs spec.group, spec.names and spec.versions"
    plural, kind = names.get("plural"), names.get("kind")
    if not isinstance(plural, str) or not isinstance(kind, str):
        return f"Promise {name!r}: spec.api needs spec.names.plural and spec.names.kind"
    version = _storage_version(versions)
    if version is None:
        return f"Promise {name!r}: spec.api has no named version"
    resource = Resource(group, version, plural, kind, namespaced=True)
    return RequestApi(promise=name, resource=resource, crd=_owned(_with_status(api, f"{plural}.{group}"), name))


def _owned(crd: dict[str, Any], promise: str) -> dict[str, Any]:
    crd["metadata"].setdefault("labels", {})[OWNER_LABEL] = promise
    return crd


@dataclass(frozen=True)
class CrdAction:
    """What to do to the cluster's CRD: `create` the body, merge-`patch` it, or nothing (`keep`)."""

    verb: Literal["create", "patch", "keep"]
    body: dict[str, Any]


def crd_action(api: RequestApi, current: Mapping[str, Any] | None) -> CrdAction | Refusal:
    """Create the CRD when none exists, patch it when it is this Promise's and differs, else refuse."""
    if current is None:
        return CrdAction("create", api.crd)
    owner = owner_of(current)
    adopt = f"kubectl label crd {api.crd_name} {OWNER_LABEL}={api.promise}"
    if owner is None:
        return Refusal(
            "CRDNotOwned",
            f"CustomResourceDefinition {api.crd_name} already exists and no Promise "
            f"owns it (it has no {OWNER_LABEL} label): it is left untouched. To let "
            f"Promise {api.promise!r} take it over on purpose: {adopt}",
        )
    if owner != api.promise:
        return Refusal(
            "APIClaimed",
            f"CustomResourceDefinition {api.crd_name} belongs to Promise {owner!r} "
            f"(label {OWNER_LABEL}={owner}): it is left untouched",
        )
    if _contains(current.get("spec"), api.crd["spec"]) and _contains(
        (current.get("metadata") or {}).get("labels"), api.crd["metadata"]["labels"]
    ):
        return CrdAction("keep", {})
    return CrdAction("patch", {"metadata": {"labels": api.crd["metadata"]["labels"]}, "spec": api.crd["spec"]})


def owner_of(crd: Mapping[str, Any]) -> str | None:
    labels = (crd.get("metadata") or {}).get("labels") or {}
    owner = labels.get(OWNER_LABEL)
    return owner if isinstance(owner, str) and owner else None


def claim_refusals(
    apis: Sequence[RequestApi], *, created: Mapping[str, str], owners: Mapping[str, str | None]
) -> dict[str, Refusal]:
    """The Promises that lose a claim: for each CRD name and each kind claimed by more than one Promise, the
    CRD's owner (by label) keeps it, else the Promise created first (`created`: name -> creationTimestamp),
    then by name; every other claimant is refused."""
    refusals: dict[str, Refusal] = {}
    for what, key in (("CustomResourceDefinition", lambda a: a.crd_name), ("kind", lambda a: a.resource.kind.lower())):
        claimants: dict[str, list[RequestApi]] = {}
        for api in apis:
            if api.promise not in refusals:
                claimants.setdefault(key(api), []).append(api)
        for claimed, group in claimants.items():
            if len(group) < 2:
                continue
            owner = owners.get(group[0].crd_name) if what != "kind" else None
            ranked = sorted(group, key=lambda a: (a.promise != owner, created.get(a.promise, ""), a.promise))
            winner = ranked[0].promise
            for loser in ranked[1:]:
                subject = (
                    f"CustomResourceDefinition {claimed}"
                    if what != "kind"
                    else (f"kind {loser.resource.kind} (requests/<namespace>/{claimed}/ in the input repo)")
                )
                refusals[loser.promise] = Refusal(
                    "APIClaimed", f"{subject} is already the API of Promise {winner!r}: this Promise is not served"
                )
    return refusals


def served_resource(crd: Mapping[str, Any]) -> Resource | None:
    """The resource a CRD in the cluster serves requests under (its storage version), if it is well formed."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    version = _storage_version(spec.get("versions") or [])
    if not (
        isinstance(spec.get("group"), str)
        and isinstance(names.get("plural"), str)
        and isinstance(names.get("kind"), str)
        and version
    ):
        return None
    return Resource(
        spec["group"],
        version,
        names["plural"],
        names["kind"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
    )


def established(crd: Mapping[str, Any]) -> bool | None | str:
    """Whether the API server serves the CRD: True; None while it has not said yet (just created or
    updated); or why it refuses to (its `Established` or `NamesAccepted` condition is False)."""
    conditions = [c for c in (crd.get("status") or {}).get("conditions") or [] if isinstance(c, dict)]
    for kind in ("Established", "NamesAccepted"):
        condition = next((c for c in conditions if c.get("type") == kind), None)
        if condition is not None and condition.get("status") == "True" and kind == "Established":
            return True
        if condition is not None and condition.get("status") == "False":
            return f"{kind} is False: {condition.get('message') or condition.get('reason') or 'no reason given'}"
    return None


def _contains(current: Any, desired: Any) -> bool:
    """Whether `current` already holds everything `desired` says (the API server adds defaults of its own)."""
    if isinstance(desired, dict):
        return isinstance(current, dict) and all(_contains(current.get(k), v) for k, v in desired.items())
    if isinstance(desired, list):
        return (
            isinstance(current, list)
            and len(current) == len(desired)
            and all(_contains(c, d) for c, d in zip(current, desired, strict=True))
        )
    return bool(current == desired)


def _storage_version(versions: list[Any]) -> str | None:
    named = [v for v in versions if isinstance(v, dict) and isinstance(v.get("name"), str)]
    stored = [v for v in named if v.get("storage")] or named
    return str(stored[0]["name"]) if stored else None


def _with_status(api: dict[str, Any], crd_name: str) -> dict[str, Any]:
    """The CRD as installed: server-owned metadata dropped, status subresource and message column ensured."""
    crd = copy.deepcopy(api)
    metadata: dict[str, Any] = crd["metadata"] if isinstance(crd.get("metadata"), dict) else {}
    crd["metadata"] = {key: value for key, value in metadata.items() if key in ("labels", "annotations")}
    crd["metadata"]["name"] = crd_name
    crd["spec"]["scope"] = "Namespaced"
    for version in crd["spec"]["versions"]:
        if not isinstance(version, dict):
            continue
        subresources = version.setdefault("subresources", {})
        subresources.setdefault("status", {})
        columns = version.setdefault("additionalPrinterColumns", [])
        if not any(column.get("jsonPath") == MESSAGE_COLUMN["jsonPath"] for column in columns):
            columns.append(dict(MESSAGE_COLUMN))
        _allow_status(version)
    return crd


def _allow_status(version: dict[str, Any]) -> None:
    # A structural schema prunes fields it does not declare: a status the Promise author did not describe
    # would be silently dropped by the API server, so declare it as free-form when it is missing.
    schema = version.get("schema", {}).get("openAPIV3Schema")
    if not isinstance(schema, dict):
        return
    properties = schema.setdefault("properties", {})
    if isinstance(properties, dict) and "status" not in properties:
        properties["status"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
