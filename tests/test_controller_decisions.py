"""The controller's pure decisions with literal data: what a cluster object becomes in the repo, which files
the controller may touch, which CRD a Promise installs, which status patches it sends."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from kratix.controller import crds, mirror, status

GROUP = "marketplace.kratix.io"
POSTGRES = crds.Resource(GROUP, "v1alpha1", "postgreses", "Postgres", namespaced=True)
ALL = frozenset({"promises", "clusters", "requests/postgres"})


def request(name: str, *, size: str = "small", **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "Postgres",
        "metadata": {"name": name, "namespace": "team-a", **metadata},
        "spec": {"size": size},
    }


def marked(body: dict[str, Any]) -> bytes:
    return mirror.render_object(body)


def test_a_mirrored_object_keeps_what_the_user_wrote_and_drops_what_the_server_added() -> None:
    body = request(
        "db",
        uid="u-1",
        resourceVersion="7",
        generation=2,
        creationTimestamp="2024-01-01T00:00:00Z",
        managedFields=[{"manager": "kubectl"}],
        selfLink="/x",
        labels={"team": "a"},
        annotations={"kubectl.kubernetes.io/last-applied-configuration": "{...}", "note": "keep"},
    )
    body["status"] = {"message": "Resource requested"}

    cleaned = yaml.safe_load(mirror.render_object(body))

    assert cleaned == {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "Postgres",
        "metadata": {
            "name": "db",
            "namespace": "team-a",
            "labels": {"team": "a"},
            "annotations": {"note": "keep", mirror.MARKER_ANNOTATION: mirror.MARKER_VALUE},
        },
        "spec": {"size": "small"},
    }


def test_objects_map_to_the_input_repo_layout() -> None:
    promise = {"apiVersion": "platform.kratix.io/v1alpha1", "kind": "Promise", "metadata": {"name": "pg"}}
    destination = {"apiVersion": "platform.kratix.io/v1alpha1", "kind": "Destination", "metadata": {"name": "worker-1"}}
    snapshot = mirror.Snapshot(
        promises={("", "pg"): promise},
        destinations={("", "worker-1"): destination},
        requests={POSTGRES: {("team-a", "db"): request("db")}},
    )

    assert sorted(mirror.desired_files(snapshot)) == [
        "clusters/worker-1.yaml",
        "promises/pg/promise.yaml",
        "requests/team-a/postgres/db.yaml",
    ]


def test_git_authored_files_are_never_overwritten_nor_deleted() -> None:
    by_hand = yaml.safe_dump(request("db", size="large")).encode()
    current = {"requests/team-a/postgres/db.yaml": by_hand, "requests/team-a/postgres/other.yaml": by_hand}
    desired = {"requests/team-a/postgres/db.yaml": marked(request("db"))}

    plan = mirror.plan_changes(desired, current, authoritative=ALL)

    assert not plan.changes
    assert plan.conflicts == ("requests/team-a/postgres/db.yaml",)


def test_marked_files_are_added_updated_and_deleted_to_match_the_cluster() -> None:
    current = {
        "requests/team-a/postgres/old.yaml": marked(request("old")),
        "requests/team-a/postgres/db.yaml": marked(request("db")),
        "requests/team-a/postgres/same.yaml": marked(request("same")),
    }
    desired = {
        "requests/team-a/postgres/db.yaml": marked(request("db", size="large")),
        "requests/team-a/postgres/new.yaml": marked(request("new")),
        "requests/team-a/postgres/same.yaml": marked(request("same")),
    }

    changes = mirror.plan_changes(desired, current, authoritative=ALL).changes

    assert changes.added == ("requests/team-a/postgres/new.yaml",)
    assert changes.updated == ("requests/team-a/postgres/db.yaml",)
    assert changes.deleted == ("requests/team-a/postgres/old.yaml",)
    assert changes.contents["requests/team-a/postgres/db.yaml"] == desired["requests/team-a/postgres/db.yaml"]


def test_a_marked_file_is_deleted_only_when_its_scope_is_authoritative() -> None:
    current = {
        "requests/team-a/postgres/db.yaml": marked(request("db")),
        "promises/pg/promise.yaml": marked(
            {"apiVersion": "platform.kratix.io/v1alpha1", "kind": "Promise", "metadata": {"name": "pg"}}
        ),
        "clusters/worker-1.yaml": marked(
            {"apiVersion": "platform.kratix.io/v1alpha1", "kind": "Destination", "metadata": {"name": "worker-1"}}
        ),
    }

    assert not mirror.plan_changes({}, current, authoritative=frozenset()).changes
    assert mirror.plan_changes({}, current, authoritative=frozenset({"requests/redis"})).changes.deleted == ()
    assert mirror.plan_changes({}, current, authoritative=frozenset({"requests/postgres"})).changes.deleted == (
        "requests/team-a/postgres/db.yaml",
    )
    assert mirror.plan_changes({}, current, authoritative=ALL).changes.deleted == tuple(sorted(current))


def test_paths_the_controller_never_writes_have_no_scope() -> None:
    assert mirror.scope_of("requests/team-a/postgres/db.yaml") == "requests/postgres"
    assert mirror.scope_of("promises/pg/promise.yaml") == "promises"
    assert mirror.scope_of("clusters/worker-1.yaml") == "clusters"
    for path in (
        "requests/team-a/db.yaml",
        "promises/pg/templates/a.yaml",
        "clusters/a/b.yaml",
        "requests/team-a/postgres/db.yml",
        "README.md",
    ):
        assert mirror.scope_of(path) is None, path


def test_the_marker_is_read_from_the_annotation_not_from_any_mention() -> None:
    mention = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {k: 'kratix.io/mirrored-from'}\n"

    assert mirror.is_marked(marked(request("db")))
    assert not mirror.is_marked(mention)
    assert not mirror.is_marked(b": not yaml: [")


def test_the_commit_message_names_a_single_change_and_counts_a_batch() -> None:
    one = mirror.Changes(contents={}, deleted=("requests/team-a/postgres/db.yaml",))
    many = mirror.Changes(contents={}, added=("a.yaml", "b.yaml"), deleted=("c.yaml",))

    assert mirror.commit_message(one).splitlines()[0] == (
        "Mirror from platform cluster: delete requests/team-a/postgres/db.yaml"
    )
    assert mirror.commit_message(many).splitlines()[0] == ("Mirror from platform cluster: add 2, delete 1 files")
    assert "- delete c.yaml" in mirror.commit_message(many).splitlines()


def promise_with_api(**spec: Any) -> dict[str, Any]:
    api_spec = {
        "group": GROUP,
        "names": {"plural": "postgreses", "kind": "Postgres"},
        "versions": [
            {"name": "v1", "served": True, "storage": False},
            {
                "name": "v2",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {}}},
            },
        ],
    }
    api_spec.update(spec)
    return {
        "metadata": {"name": "pg"},
        "spec": {
            "api": {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "anything", "uid": "server-set"},
                "spec": api_spec,
            }
        },
    }


def test_a_promise_api_gets_the_status_subresource_and_message_column_it_lacks() -> None:
    api = crds.request_api(promise_with_api())

    assert isinstance(api, crds.RequestApi)
    assert api.resource == crds.Resource(GROUP, "v2", "postgreses", "Postgres", namespaced=True)
    assert api.crd["metadata"] == {"name": f"postgreses.{GROUP}", "labels": {crds.OWNER_LABEL: "pg"}}
    for version in api.crd["spec"]["versions"]:
        assert version["subresources"]["status"] == {}
        assert [c["jsonPath"] for c in version["additionalPrinterColumns"]] == [".status.message"]
    stored = api.crd["spec"]["versions"][1]["schema"]["openAPIV3Schema"]
    assert stored["properties"]["status"]["x-kubernetes-preserve-unknown-fields"] is True


def test_a_promise_api_that_already_has_a_message_column_is_not_given_a_second() -> None:
    column = {"name": "Status", "type": "string", "jsonPath": ".status.message"}
    body = promise_with_api(
        versions=[{"name": "v1", "served": True, "storage": True, "additionalPrinterColumns": [column]}]
    )

    api = crds.request_api(body)

    assert isinstance(api, crds.RequestApi)
    assert api.crd["spec"]["versions"][0]["additionalPrinterColumns"] == [column]


def test_a_cluster_scoped_or_missing_api_is_refused_with_a_reason() -> None:
    cluster_scoped = crds.request_api(promise_with_api(scope="Cluster"))
    missing = crds.request_api({"metadata": {"name": "pg"}, "spec": {}})

    assert isinstance(cluster_scoped, crds.Refusal) and "Namespaced" in cluster_scoped.message
    assert isinstance(missing, crds.Refusal) and "no spec.api" in missing.message


def test_the_status_patch_turns_the_current_status_into_the_published_one() -> None:
    current = {"message": "Pending", "placement": {"destination": "w1", "reason": "old"}, "extra": 1}
    desired = {"message": "Resource requested", "placement": {"destination": "w1"}}

    patch = status.merge_patch(current, desired)

    assert patch == {"extra": None, "message": "Resource requested", "placement": {"reason": None}}


def test_status_updates_only_for_observed_objects_whose_status_differs() -> None:
    files = {
        ".kratix/status/team-a/pg/db.yaml": yaml.safe_dump(
            {
                "apiVersion": f"{GROUP}/v1alpha1",
                "kind": "Postgres",
                "metadata": {"name": "db", "namespace": "team-a"},
                "status": {"message": "Resource requested"},
            }
        ).encode(),
        ".kratix/status/team-a/pg/same.yaml": yaml.safe_dump(
            {
                "apiVersion": f"{GROUP}/v1alpha1",
                "kind": "Postgres",
                "metadata": {"name": "same", "namespace": "team-a"},
                "status": {"message": "ok"},
            }
        ).encode(),
        ".kratix/status/team-a/pg/gone.yaml": yaml.safe_dump(
            {
                "apiVersion": f"{GROUP}/v1alpha1",
                "kind": "Postgres",
                "metadata": {"name": "gone", "namespace": "team-a"},
                "status": {"message": "x"},
            }
        ).encode(),
        ".kratix/status/team-a/pg/broken.yaml": b"status: [",
    }
    same = request("same")
    same["status"] = {"message": "ok"}
    observed = {POSTGRES: {("team-a", "db"): request("db"), ("team-a", "same"): same}}

    updates = status.plan_status(
        status.parse_status_files(files), resources={(GROUP, "Postgres"): POSTGRES}, observed=observed
    )

    assert updates == [status.StatusUpdate(POSTGRES, "team-a", "db", {"message": "Resource requested"})]


# --- ownership of CRDs ------------------------------------------------------------------------------------


def installed(api: crds.RequestApi, *, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    """The CRD as a real API server returns it: defaults added, status set."""
    crd = copy.deepcopy(api.crd)
    crd["metadata"] = {
        "name": api.crd_name,
        "uid": "u",
        "resourceVersion": "9",
        "labels": labels if labels is not None else crd["metadata"]["labels"],
    }
    crd["spec"]["conversion"] = {"strategy": "None"}
    crd["spec"].update(spec)
    crd["status"] = {"conditions": [{"type": "Established", "status": "True"}]}
    return crd


def test_a_missing_crd_is_created_with_the_promises_ownership_label() -> None:
    api = crds.request_api(promise_with_api())
    assert isinstance(api, crds.RequestApi)

    action = crds.crd_action(api, None)

    assert action == crds.CrdAction("create", api.crd)
    assert action.body["metadata"]["labels"] == {crds.OWNER_LABEL: "pg"}


def test_an_owned_crd_is_left_when_it_holds_the_promise_api_and_patched_when_not() -> None:
    api = crds.request_api(promise_with_api())
    assert isinstance(api, crds.RequestApi)

    assert crds.crd_action(api, installed(api)) == crds.CrdAction("keep", {})
    patch = crds.crd_action(api, installed(api, names={"plural": "postgreses", "kind": "Pg"}))
    assert isinstance(patch, crds.CrdAction) and patch.verb == "patch"
    assert patch.body == {"metadata": {"labels": {crds.OWNER_LABEL: "pg"}}, "spec": api.crd["spec"]}


def test_a_crd_nobody_owns_is_never_touched_and_says_how_to_adopt_it() -> None:
    api = crds.request_api(
        promise_with_api(group="cert-manager.io", names={"plural": "certificates", "kind": "Certificate"})
    )
    assert isinstance(api, crds.RequestApi)
    foreign = installed(api, labels={"app.kubernetes.io/name": "cert-manager"})

    refusal = crds.crd_action(api, foreign)

    assert isinstance(refusal, crds.Refusal) and refusal.reason == "CRDNotOwned"
    assert "certificates.cert-manager.io" in refusal.message
    assert f"kubectl label crd certificates.cert-manager.io {crds.OWNER_LABEL}=pg" in refusal.message


def test_a_crd_another_promise_owns_is_refused() -> None:
    api = crds.request_api(promise_with_api())
    assert isinstance(api, crds.RequestApi)

    refusal = crds.crd_action(api, installed(api, labels={crds.OWNER_LABEL: "other"}))

    assert isinstance(refusal, crds.Refusal) and refusal.reason == "APIClaimed" and "'other'" in refusal.message


def named(name: str, **spec: Any) -> crds.RequestApi:
    body = promise_with_api(**spec)
    body["metadata"]["name"] = name
    api = crds.request_api(body)
    assert isinstance(api, crds.RequestApi)
    return api


def test_of_two_promises_claiming_one_api_the_older_keeps_it_unless_the_crd_names_its_owner() -> None:
    later, first = named("a-created-later"), named("z-created-first")
    created = {"a-created-later": "2024-05-01T00:00:00Z", "z-created-first": "2024-01-01T00:00:00Z"}

    refused = crds.claim_refusals([later, first], created=created, owners={})
    by_label = crds.claim_refusals([later, first], created=created, owners={later.crd_name: "a-created-later"})

    assert set(refused) == {"a-created-later"} and refused["a-created-later"].reason == "APIClaimed"
    assert "'z-created-first'" in refused["a-created-later"].message
    assert set(by_label) == {"z-created-first"}


def test_two_promises_with_one_kind_in_different_groups_would_share_a_folder_so_one_is_refused() -> None:
    first = named("first")
    second = named("second", group="other.example.com")

    refused = crds.claim_refusals([first, second], created={}, owners={})

    assert list(refused) == ["second"] and "requests/<namespace>/postgres/" in refused["second"].message


def test_a_crd_is_served_once_established_and_not_while_its_names_are_refused() -> None:
    assert crds.established({"status": {"conditions": [{"type": "Established", "status": "True"}]}}) is True
    assert crds.established({}) is None
    refused = crds.established(
        {
            "status": {
                "conditions": [
                    {"type": "NamesAccepted", "status": "False", "message": "kind Postgres is already in use"}
                ]
            }
        }
    )
    assert isinstance(refused, str) and "already in use" in refused


# --- the controller's conditions in the status ------------------------------------------------------------

PROMISE = crds.PROMISES
AVAILABLE = {"type": status.API_CONDITION, "status": "False", "reason": "CRDNotOwned", "message": "not ours"}


def test_the_controllers_condition_is_merged_into_the_published_status_and_keeps_its_transition_time() -> None:
    published = [
        status.PublishedStatus(
            group="platform.kratix.io",
            kind="Promise",
            namespace="",
            name="pg",
            status={"message": "Available", "conditions": [{"type": "Reconciled", "status": "True"}]},
        )
    ]
    body = {
        "metadata": {"name": "pg"},
        "status": {"conditions": [{**AVAILABLE, "lastTransitionTime": "2024-01-01T00:00:00Z"}]},
    }
    resources = {("platform.kratix.io", "Promise"): PROMISE}

    (update,) = status.plan_status(
        published,
        resources=resources,
        observed={PROMISE: {("", "pg"): body}},
        conditions={(PROMISE, "", "pg"): AVAILABLE},
        now="2025-01-01T00:00:00Z",
    )

    assert update.patch == {
        "message": "Available",
        "conditions": [
            {"type": "Reconciled", "status": "True"},
            {**AVAILABLE, "lastTransitionTime": "2024-01-01T00:00:00Z"},
        ],
    }


def test_a_condition_alone_is_written_and_the_compilers_status_never_erases_it() -> None:
    observed = {PROMISE: {("", "pg"): {"metadata": {"name": "pg"}}}}
    resources = {("platform.kratix.io", "Promise"): PROMISE}

    (first,) = status.plan_status(
        [],
        resources=resources,
        observed=observed,
        conditions={(PROMISE, "", "pg"): AVAILABLE},
        now="2025-01-01T00:00:00Z",
    )
    observed[PROMISE][("", "pg")]["status"] = first.patch
    published = [
        status.PublishedStatus(
            group="platform.kratix.io", kind="Promise", namespace="", name="pg", status={"message": "Available"}
        )
    ]
    (second,) = status.plan_status(published, resources=resources, observed=observed, conditions={}, now="x")

    assert first.patch == {"conditions": [{**AVAILABLE, "lastTransitionTime": "2025-01-01T00:00:00Z"}]}
    assert second.patch == {"message": "Available"}  # the condition stays as it was


def test_a_promise_api_declared_as_v1beta1_is_installed_as_the_v1_crd_kratix_reads() -> None:
    body = promise_with_api()
    body["spec"]["api"]["apiVersion"] = "apiextensions.k8s.io/v1beta1"

    api = crds.request_api(body)

    assert isinstance(api, crds.RequestApi)
    assert (api.crd["apiVersion"], api.crd["kind"]) == ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    assert api.resource == crds.Resource(GROUP, "v2", "postgreses", "Postgres", namespaced=True)


def test_a_promise_api_kratix_cannot_read_is_refused_naming_the_field() -> None:
    body = promise_with_api()
    body["spec"]["api"]["spec"]["versions"][0]["served"] = "yes"

    refused = crds.request_api(body)

    assert isinstance(refused, crds.Refusal)
    assert refused.message == (
        "Promise 'pg': spec.api.spec.versions.0.served: must be a boolean, not a string: "
        "Kratix cannot read spec.api as a CustomResourceDefinition"
    )
