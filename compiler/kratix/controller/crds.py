"""The APIs the controller serves: our own Promise and Destination CRDs, and each Promise's request API.

In: a Promise body. Out: the `Resource` (group, version, plural, kind, scope) its requests are served under
and the CRD to install for it, with the status subresource and a `.status.message` printer column added when
the Promise author left them out (the compiler's statuses land there, and `kubectl get` should show them).
Refuses (returns None with a reason): a `spec.api` that is not a Namespaced apiextensions.k8s.io/v1 CRD. Pure:
nothing here talks to a cluster.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from kratix.platform import API_GROUP

CRD_GROUP = "apiextensions.k8s.io"
CRD_VERSION = "v1"
CRD_PLURAL = "customresourcedefinitions"
OUR_VERSION = "v1alpha1"
MESSAGE_COLUMN = {"name": "Message", "type": "string", "jsonPath": ".status.message"}


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


@dataclass(frozen=True)
class RequestApi:
    """What a Promise's `spec.api` installs: the CRD body and the resource its requests are watched under."""

    promise: str
    resource: Resource
    crd: dict[str, Any]


def own_crds() -> list[dict[str, Any]]:
    """The Promise and Destination CRDs: cluster-scoped, any spec (the compiler validates it), with status."""
    return [_own_crd(PROMISES, "promise"), _own_crd(DESTINATIONS, "destination")]


def _own_crd(resource: Resource, singular: str) -> dict[str, Any]:
    names = {"plural": resource.plural, "singular": singular, "kind": resource.kind,
             "listKind": f"{resource.kind}List", "categories": ["kratix"]}
    return {
        "apiVersion": f"{CRD_GROUP}/{CRD_VERSION}",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{resource.plural}.{resource.group}"},
        "spec": {
            "group": resource.group,
            "scope": "Cluster",
            "names": names,
            "versions": [{
                "name": resource.version,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [dict(MESSAGE_COLUMN)],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    },
                }},
            }],
        },
    }


def request_api(promise: dict[str, Any]) -> RequestApi | str:
    """The request API a Promise declares, or why it cannot be installed."""
    name = str((promise.get("metadata") or {}).get("name", ""))
    api = (promise.get("spec") or {}).get("api")
    if not isinstance(api, dict):
        return f"Promise {name!r} has no spec.api"
    if api.get("apiVersion") != f"{CRD_GROUP}/{CRD_VERSION}" or api.get("kind") != "CustomResourceDefinition":
        return f"Promise {name!r}: spec.api is not an {CRD_GROUP}/{CRD_VERSION} CustomResourceDefinition"
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
    return RequestApi(promise=name, resource=resource, crd=_with_status(api, f"{plural}.{group}"))


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
