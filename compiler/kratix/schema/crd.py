"""What the API server would refuse in a Promise's request API (`spec.api`, a whole CRD) as Kratix hands it over,
plus what this compiler cannot evaluate (notes and warnings, e.g. CEL rules it skips).

`spec.api` is first decoded as Kratix decodes it (`kratix.apiserver.crdtypes`: a v1 CRD whatever apiVersion it declares;
a value Go cannot decode is an error, a field Go drops a warning), then checked as apiextensions'
`ValidateCustomResourceDefinition` checks a created CRD after v1 defaulting: here the CRD's name, labels and
annotations, group, names
and scope, its conversion and the API-approval annotation of protected groups; `kratix.schema.versions` checks
its versions and their schemas. Beside the API server, Kratix refuses an API that is not Namespaced.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

from kratix.apiserver import crdtypes
from kratix.model import names
from kratix.model.diagnostics import Severity
from kratix.schema.versions import check_versions
from kratix.schema.violations import Violation, show, sort_violations

CRD_API_VERSION = crdtypes.CRD_API_VERSION
_APPROVAL = "api-approved.kubernetes.io"


def check_crd(raw: object) -> list[Violation]:
    decoded = crdtypes.decode(raw)
    found = [Violation(p.path, p.code, p.message, p.severity) for p in decoded.problems]
    if not decoded.readable or decoded.crd is None:  # what Kratix cannot read, it never hands over
        return sort_violations(found)
    crd = decoded.crd
    spec = crd.get("spec") or {}
    found += _check_group(spec.get("group", ""))
    found += _check_name(crd, spec)
    found += _check_names(spec.get("names") or {})
    found += _check_scope(spec.get("scope", ""))
    found += check_versions(spec)
    found += _check_conversion(spec.get("conversion") or {})
    if spec.get("preserveUnknownFields") is True:
        found.append(
            Violation(
                ("spec", "preserveUnknownFields"),
                "crd.preserve-unknown-fields",
                "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in "
                "spec.versions[*].schema instead",
            )
        )
    found += _check_approval(crd, spec.get("group", ""))
    return sort_violations(found)


def _check_group(group: str) -> list[Violation]:
    path = ("spec", "group")
    if not group:
        return [Violation(path, "crd.group", "Required value")]
    problem = names.dns_subdomain(group)
    if problem is None and "." not in group:
        problem = f"should be a domain with at least one dot (got {show(group)})"
    return [Violation(path, "crd.group", problem)] if problem else []


def _check_name(crd: Mapping[str, Any], spec: Mapping[str, Any]) -> list[Violation]:
    name = (crd.get("metadata") or {}).get("name", "")
    expected = f"{(spec.get('names') or {}).get('plural', '')}.{spec.get('group', '')}"
    problem = names.dns_subdomain(name) if name else "Required value: name or generateName is required"
    if name != expected:
        problem = f'must be spec.names.plural+"."+spec.group: {expected} (got {show(name)})'
    found = [Violation(("metadata", "name"), "crd.name", problem)] if problem else []
    metadata = crd.get("metadata") or {}
    for key in ("labels", "annotations"):
        for label, value in (metadata.get(key) or {}).items():
            problem = names.qualified_name(label) or (names.label_value(value) if key == "labels" else None)
            if problem:
                found.append(Violation(("metadata", key, label), "crd.metadata", problem))
    return found


def _check_names(declared: Mapping[str, Any]) -> list[Violation]:
    """plural, singular, shortNames and categories are DNS-1035 labels; kind and listKind are too once
    lowercased (so `argocd-application` is a kind); kind and listKind differ."""
    found = []
    for key in ("plural", "singular", "kind", "listKind"):
        if not declared.get(key):
            found.append(Violation(("spec", "names", key), "crd.names", "Required value"))
    for key in ("plural", "singular", "kind", "listKind"):
        value = declared.get(key, "")
        problem = names.dns1035_label(value.lower() if key in ("kind", "listKind") else value) if value else None
        if problem:
            mixed = "may have mixed case, but should otherwise match: " if key in ("kind", "listKind") else ""
            found.append(Violation(("spec", "names", key), "crd.names", f"{mixed}{problem}"))
    for key in ("shortNames", "categories"):
        for index, value in enumerate(declared.get(key) or ()):
            problem = names.dns1035_label(value)
            if problem:
                found.append(Violation(("spec", "names", key, index), "crd.names", problem))
    if declared.get("kind") and declared.get("kind") == declared.get("listKind"):
        found.append(Violation(("spec", "names", "listKind"), "crd.names", "kind and listKind may not be the same"))
    return found


def _check_scope(scope: str) -> list[Violation]:
    path = ("spec", "scope")
    if not scope:
        return [Violation(path, "crd.scope", "Required value: Namespaced (requests live in a namespace)")]
    if scope not in ("Cluster", "Namespaced"):
        return [
            Violation(path, "crd.scope", f'Unsupported value: {show(scope)}: supported values: "Cluster", "Namespaced"')
        ]
    if scope != "Namespaced":
        return [
            Violation(
                path,
                "crd.not-namespaced",
                f"must be Namespaced (got {show(scope)}): requests live in a namespace, and Kratix refuses other APIs",
            )
        ]
    return []


def _check_conversion(conversion: Mapping[str, Any]) -> list[Violation]:
    path = ("spec", "conversion")
    strategy = conversion.get("strategy", "")
    webhook = conversion.get("webhook") or {}
    client, reviews = webhook.get("clientConfig"), webhook.get("conversionReviewVersions") or []
    if strategy not in ("None", "Webhook"):
        reason = "Required value" if not strategy else f"Unsupported value: {show(strategy)}"
        return [Violation((*path, "strategy"), "crd.conversion", f'{reason}: supported values: "None", "Webhook"')]
    if strategy == "None":
        found = []
        if client is not None:
            found.append(
                Violation(
                    (*path, "webhook", "clientConfig"),
                    "crd.conversion",
                    "should not be set when strategy is not set to Webhook",
                )
            )
        if reviews:
            found.append(
                Violation(
                    (*path, "webhook", "conversionReviewVersions"),
                    "crd.conversion",
                    "should not be set when strategy is not set to Webhook",
                )
            )
        return found
    found = _check_webhook(client, (*path, "webhook", "clientConfig"))
    where = (*path, "webhook", "conversionReviewVersions")
    if not reviews:
        found.append(Violation(where, "crd.conversion", "Required value"))
    elif not {"v1", "v1beta1"} & set(reviews):
        found.append(Violation(where, "crd.conversion", "must include at least one of v1, v1beta1"))
    for index, version in enumerate(reviews):
        if version in reviews[:index]:
            found.append(Violation((*where, index), "crd.conversion", "duplicate version"))
        elif names.dns1035_label(version):
            found.append(Violation((*where, index), "crd.conversion", names.dns1035_label(version) or ""))
    return found


def _check_webhook(client: Mapping[str, Any] | None, path: tuple[str, ...]) -> list[Violation]:
    if client is None:
        return [Violation(path, "crd.conversion", "Required value: required when strategy is set to Webhook")]
    if ("url" in client) == ("service" in client):
        return [Violation(path, "crd.conversion", "Required value: exactly one of url or service is required")]
    if "url" in client:
        url = urllib.parse.urlsplit(client["url"])
        if url.scheme != "https" or not url.hostname or url.username or url.query or url.fragment:
            return [
                Violation(
                    (*path, "url"), "crd.conversion", "must be an https URL with a host, and no user, query or fragment"
                )
            ]
        return []
    service = client["service"]
    return [
        Violation((*path, "service", key), "crd.conversion", "Required value")
        for key in ("namespace", "name")
        if not service.get(key)
    ]


def _check_approval(crd: Mapping[str, Any], group: str) -> list[Violation]:
    """Groups under k8s.io and kubernetes.io belong to the Kubernetes project: a CRD there carries the annotation
    recording its approval (a URL), or says it is unapproved."""
    protected = any(group == domain or group.endswith("." + domain) for domain in ("k8s.io", "kubernetes.io"))
    if not protected:
        return []
    value = ((crd.get("metadata") or {}).get("annotations") or {}).get(_APPROVAL, "")
    url = urllib.parse.urlsplit(value)
    if value.startswith("unapproved") or (url.scheme and url.netloc):
        return []
    return [
        Violation(
            ("metadata", "annotations", _APPROVAL),
            "crd.approval",
            f"protected groups must have approval annotation {_APPROVAL!r} with either a URL or a reason "
            'starting with "unapproved", see https://github.com/kubernetes/enhancements/pull/1111',
            Severity.ERROR,
        )
    ]
