"""What makes the controller safe on a shared platform cluster, end to end against the API emulator and real
Git remotes (tests/controller_harness.py): a request's file goes only when its object was deleted, never
because an API could not be served or listed; and the controller writes only CRDs its Promises own.

"A pass happened" is shown by mirroring a Destination applied after the event under test: each pass
recomputes the whole repo, so the pass that adds it has also decided about every other file.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kmock
import pytest

from tests.controller_harness import (
    GROUP,
    PROMISE_API,
    Platform,
    api_condition,
    apply_promise,
    crd_installed,
    create_request,
    events_about,
    eventually,
    promise,
    request,
    running,
)

CRDS = "apiextensions.k8s.io/v1/customresourcedefinitions"
POSTGRES_FILE = "requests/team-a/postgres/{}.yaml"


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    with Platform(tmp_path) as emulated:
        yield emulated


def a_pass_happens(platform: Platform, name: str) -> None:
    """Apply a Destination and wait until it is mirrored: every file was decided on since this call."""
    platform.kubectl.create_cluster_custom_object(
        *PROMISE_API,
        "destinations",
        {
            "apiVersion": "platform.kratix.io/v1alpha1",
            "kind": "Destination",
            "metadata": {"name": name},
            "spec": {"path": name},
        },
    )
    eventually(lambda: f"clusters/{name}.yaml" in platform.input_repo.files(), what=f"a pass ({name})")


def condition(platform: Platform, promise_name: str, status: str, reason: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found = api_condition(platform.kubectl, promise_name)
        return found if found and found["status"] == status and found["reason"] == reason else None

    return eventually(check, what=f"Promise {promise_name} APIAvailable={status} ({reason})")


def warning_event(platform: Platform, promise_name: str, reason: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        events = [e for e in events_about(platform.api_server, "Promise", promise_name) if e["reason"] == reason]
        return events[0] if events else None

    event = eventually(check, what=f"a {reason} Event on Promise {promise_name}")
    assert event["type"] == "Warning" and event["metadata"]["namespace"] == "default"
    return event


def refuse_crd_writes(*, action: kmock.action, status: int, reason: str, message: str) -> Any:
    def refusal(request: kmock.Request) -> kmock.KubernetesError | None:
        resource = request.resource
        if request.action == action and resource is not None and resource.plural == "customresourcedefinitions":
            return kmock.KubernetesError(status=status, reason=reason, message=message)
        return None

    return refusal


def test_a_rejected_crd_update_keeps_every_mirrored_request_until_the_promise_is_fixed(platform: Platform) -> None:
    kubectl, repo = platform.kubectl, platform.input_repo
    with running(platform.options()):
        apply_promise(kubectl, promise())
        for name in ("db-1", "db-2", "db-3"):
            create_request(kubectl, request(name))
        eventually(lambda: len(repo.files("requests/")) == 3, what="three requests mirrored")
        platform.refuse(
            refuse_crd_writes(
                action=kmock.action.UPDATE,
                status=422,
                reason="Invalid",
                message='CustomResourceDefinition.apiextensions.k8s.io "postgreses.marketplace.kratix.io" is '
                'invalid: status.storedVersions[0]: Invalid value: "v1alpha1": must appear in spec.versions',
            )
        )
        renamed = promise()["spec"]["api"]
        renamed["spec"]["versions"][0]["name"] = "v1"
        kubectl.patch_cluster_custom_object(*PROMISE_API, "promises", "postgresql", {"spec": {"api": renamed}})

        refused = condition(platform, "postgresql", "False", "CRDUpdateRejected")
        event = warning_event(platform, "postgresql", "CRDUpdateRejected")
        kubectl.delete_namespaced_custom_object(GROUP, "v1alpha1", "team-a", "postgreses", "db-1")
        create_request(kubectl, request("db-4"))  # the CRD the cluster still serves is still mirrored
        eventually(lambda: POSTGRES_FILE.format("db-4") in repo.files(), what="a request added meanwhile")
        a_pass_happens(platform, "worker-1")
        kept = set(repo.files("requests/"))

        kubectl.patch_cluster_custom_object(
            *PROMISE_API, "promises", "postgresql", {"spec": {"api": promise()["spec"]["api"]}}
        )
        condition(platform, "postgresql", "True", "Served")
        eventually(lambda: POSTGRES_FILE.format("db-1") not in repo.files(), what="the deletion, once fixed")

    assert kept == {POSTGRES_FILE.format(name) for name in ("db-1", "db-2", "db-3", "db-4")}
    assert "must appear in spec.versions" in refused["message"] and "kept" in refused["message"]
    assert "must appear in spec.versions" in event["note"]
    crd = crd_installed(platform.api_server, f"postgreses.{GROUP}")
    assert crd is not None and [v["name"] for v in crd["spec"]["versions"]] == ["v1alpha1"]


def test_a_failed_list_keeps_the_files_says_why_and_deletions_follow_once_it_lists(platform: Platform) -> None:
    kubectl, repo = platform.kubectl, platform.input_repo
    options = platform.options()
    with running(options):
        apply_promise(kubectl, promise())
        create_request(kubectl, request("keep"))
        create_request(kubectl, request("deleted-while-down"))
        eventually(lambda: len(repo.files("requests/")) == 2, what="both requests")
    kubectl.delete_namespaced_custom_object(GROUP, "v1alpha1", "team-a", "postgreses", "deleted-while-down")
    failing = [True]

    def list_fails() -> Any:
        if not failing:
            return NotImplemented  # served as usual
        return kmock.Response(
            status=500,
            payload={
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "code": 500,
                "message": "etcdserver: request timed out",
            },
        )

    assert platform.api_server.kmock is not None
    platform.api_server.in_loop(
        lambda: (
            platform.api_server.kmock[  # type: ignore[index]
                kmock.action.LIST, kmock.resource(f"{GROUP}/v1alpha1/postgreses")
            ]
            << list_fails
        )
    )

    with running(options):
        refused = condition(platform, "postgresql", "False", "RequestsNotListed")
        warning_event(platform, "postgresql", "RequestsNotListed")
        a_pass_happens(platform, "worker-1")
        kept = set(repo.files("requests/"))
        failing.clear()
        condition(platform, "postgresql", "True", "Served")
        eventually(lambda: POSTGRES_FILE.format("deleted-while-down") not in repo.files(), what="the deletion")

    assert kept == {POSTGRES_FILE.format("keep"), POSTGRES_FILE.format("deleted-while-down")}
    assert "etcdserver: request timed out" in refused["message"]
    assert set(repo.files("requests/")) == {POSTGRES_FILE.format("keep")}


def test_a_missing_crd_the_server_will_not_install_keeps_the_files(platform: Platform) -> None:
    kubectl, repo = platform.kubectl, platform.input_repo
    options = platform.options()
    with running(options):
        apply_promise(kubectl, promise())
        create_request(kubectl, request("db"))
        eventually(lambda: POSTGRES_FILE.format("db") in repo.files(), what="the request")
    # Someone deleted the CRD, and the controller may no longer create CRDs.
    kubectl.delete_cluster_custom_object(
        "apiextensions.k8s.io", "v1", "customresourcedefinitions", f"postgreses.{GROUP}"
    )
    platform.refuse(
        refuse_crd_writes(
            action=kmock.action.CREATE,
            status=403,
            reason="Forbidden",
            message="customresourcedefinitions.apiextensions.k8s.io is forbidden: User "
            '"system:serviceaccount:kratix-platform:kratix-controller" cannot '
            'create resource "customresourcedefinitions"',
        )
    )

    with running(options):
        refused = condition(platform, "postgresql", "False", "CRDInstallRejected")
        warning_event(platform, "postgresql", "CRDInstallRejected")
        a_pass_happens(platform, "worker-1")

    assert "forbidden" in refused["message"]
    assert POSTGRES_FILE.format("db") in repo.files()


def cert_manager_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "certificates.cert-manager.io", "labels": {"app.kubernetes.io/name": "cert-manager"}},
        "spec": {
            "group": "cert-manager.io",
            "scope": "Namespaced",
            "names": {"plural": "certificates", "singular": "certificate", "kind": "Certificate"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }


def certificates_promise() -> dict[str, Any]:
    body = promise("certificates", kind="Certificate", plural="certificates")
    api = body["spec"]["api"]
    api["metadata"]["name"] = "certificates.cert-manager.io"
    api["spec"]["group"] = "cert-manager.io"
    api["spec"]["versions"][0]["name"] = "v1"
    return body


def test_a_promise_naming_a_foreign_crd_leaves_it_untouched_until_it_is_adopted_on_purpose(platform: Platform) -> None:
    kubectl, repo, api_server = platform.kubectl, platform.input_repo, platform.api_server
    kubectl.create_cluster_custom_object("apiextensions.k8s.io", "v1", "customresourcedefinitions", cert_manager_crd())
    original = copy.deepcopy(crd_installed(api_server, "certificates.cert-manager.io"))
    certificate = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "web", "namespace": "team-a"},
        "spec": {"secretName": "web-tls"},
    }
    kubectl.create_namespaced_custom_object("cert-manager.io", "v1", "team-a", "certificates", certificate)
    with running(platform.options()):
        apply_promise(kubectl, certificates_promise())
        refused = condition(platform, "certificates", "False", "CRDNotOwned")
        event = warning_event(platform, "certificates", "CRDNotOwned")
        a_pass_happens(platform, "worker-1")
        untouched = crd_installed(api_server, "certificates.cert-manager.io")
        patches = api_server.requests_to(kmock.action.UPDATE, CRDS)
        not_mirrored = set(repo.files("requests/"))

        # Adopting it on purpose, as the message says: label the CRD with the Promise's name.
        kubectl.patch_cluster_custom_object(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "certificates.cert-manager.io",
            {"metadata": {"labels": {"kratix.io/promise-name": "certificates"}}},
        )
        condition(platform, "certificates", "True", "Served")
        eventually(lambda: "requests/team-a/certificate/web.yaml" in repo.files(), what="the adopted API")

    assert untouched == original and patches == 0
    assert not_mirrored == set()
    expected = "kubectl label crd certificates.cert-manager.io kratix.io/promise-name=certificates"
    assert expected in refused["message"] and expected in event["note"]
    assert "already exists and no Promise owns it" in refused["message"]
    adopted = crd_installed(api_server, "certificates.cert-manager.io")
    assert adopted is not None and adopted["metadata"]["labels"]["kratix.io/promise-name"] == "certificates"


def test_of_two_promises_claiming_one_api_the_second_fails_and_the_first_keeps_serving(platform: Platform) -> None:
    kubectl, repo = platform.kubectl, platform.input_repo
    with running(platform.options()):
        apply_promise(kubectl, promise())
        condition(platform, "postgresql", "True", "Served")
        apply_promise(kubectl, promise("postgresql-again"))
        refused = condition(platform, "postgresql-again", "False", "APIClaimed")
        warning_event(platform, "postgresql-again", "APIClaimed")
        create_request(kubectl, request("db"))
        eventually(lambda: POSTGRES_FILE.format("db") in repo.files(), what="requests still mirrored")
        first = api_condition(kubectl, "postgresql")

    assert "already the API of Promise 'postgresql'" in refused["message"]
    assert first is not None and first["status"] == "True"
    crd = crd_installed(platform.api_server, f"postgreses.{GROUP}")
    assert crd is not None and crd["metadata"]["labels"]["kratix.io/promise-name"] == "postgresql"
