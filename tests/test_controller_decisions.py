"""The controller's pure decisions with literal data: what a cluster object becomes in the repo, which files
the controller may touch, which CRD a Promise installs, which status patches it sends."""

from __future__ import annotations

from typing import Any

import yaml

from kratix.controller import crds, mirror, status

GROUP = "marketplace.kratix.io"
POSTGRES = crds.Resource(GROUP, "v1alpha1", "postgreses", "Postgres", namespaced=True)


def request(name: str, *, size: str = "small", **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1alpha1", "kind": "Postgres",
            "metadata": {"name": name, "namespace": "team-a", **metadata}, "spec": {"size": size}}


def marked(body: dict[str, Any]) -> bytes:
    return mirror.render_object(body)


def test_a_mirrored_object_keeps_what_the_user_wrote_and_drops_what_the_server_added() -> None:
    body = request("db", uid="u-1", resourceVersion="7", generation=2,
                   creationTimestamp="2024-01-01T00:00:00Z", managedFields=[{"manager": "kubectl"}],
                   selfLink="/x", labels={"team": "a"},
                   annotations={"kubectl.kubernetes.io/last-applied-configuration": "{...}", "note": "keep"})
    body["status"] = {"message": "Resource requested"}

    cleaned = yaml.safe_load(mirror.render_object(body))

    assert cleaned == {
        "apiVersion": f"{GROUP}/v1alpha1", "kind": "Postgres",
        "metadata": {"name": "db", "namespace": "team-a", "labels": {"team": "a"},
                     "annotations": {"note": "keep", mirror.MARKER_ANNOTATION: mirror.MARKER_VALUE}},
        "spec": {"size": "small"}}


def test_objects_map_to_the_input_repo_layout() -> None:
    promise = {"apiVersion": "platform.kratix.io/v1alpha1", "kind": "Promise", "metadata": {"name": "pg"}}
    destination = {"apiVersion": "platform.kratix.io/v1alpha1", "kind": "Destination",
                   "metadata": {"name": "worker-1"}}
    snapshot = mirror.Snapshot(promises={("", "pg"): promise}, destinations={("", "worker-1"): destination},
                               requests={POSTGRES: {("team-a", "db"): request("db")}})

    assert sorted(mirror.desired_files(snapshot)) == [
        "clusters/worker-1.yaml", "promises/pg/promise.yaml", "requests/team-a/postgres/db.yaml"]


def test_git_authored_files_are_never_overwritten_nor_deleted() -> None:
    by_hand = yaml.safe_dump(request("db", size="large")).encode()
    current = {"requests/team-a/postgres/db.yaml": by_hand, "requests/team-a/postgres/other.yaml": by_hand}
    desired = {"requests/team-a/postgres/db.yaml": marked(request("db"))}

    plan = mirror.plan_changes(desired, current)

    assert not plan.changes
    assert plan.conflicts == ("requests/team-a/postgres/db.yaml",)


def test_marked_files_are_added_updated_and_deleted_to_match_the_cluster() -> None:
    current = {"requests/team-a/postgres/old.yaml": marked(request("old")),
               "requests/team-a/postgres/db.yaml": marked(request("db")),
               "requests/team-a/postgres/same.yaml": marked(request("same"))}
    desired = {"requests/team-a/postgres/db.yaml": marked(request("db", size="large")),
               "requests/team-a/postgres/new.yaml": marked(request("new")),
               "requests/team-a/postgres/same.yaml": marked(request("same"))}

    changes = mirror.plan_changes(desired, current).changes

    assert changes.added == ("requests/team-a/postgres/new.yaml",)
    assert changes.updated == ("requests/team-a/postgres/db.yaml",)
    assert changes.deleted == ("requests/team-a/postgres/old.yaml",)
    assert changes.contents["requests/team-a/postgres/db.yaml"] == desired["requests/team-a/postgres/db.yaml"]


def test_files_of_a_kind_not_listed_yet_are_left_alone() -> None:
    current = {"requests/team-a/postgres/db.yaml": marked(request("db"))}

    assert not mirror.plan_changes({}, current, pending_kinds=frozenset({"postgres"})).changes
    assert mirror.plan_changes({}, current).changes.deleted == ("requests/team-a/postgres/db.yaml",)


def test_the_marker_is_read_from_the_annotation_not_from_any_mention() -> None:
    mention = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {k: 'kratix.io/mirrored-from'}\n"

    assert mirror.is_marked(marked(request("db")))
    assert not mirror.is_marked(mention)
    assert not mirror.is_marked(b": not yaml: [")


def test_the_commit_message_names_a_single_change_and_counts_a_batch() -> None:
    one = mirror.Changes(contents={}, deleted=("requests/team-a/postgres/db.yaml",))
    many = mirror.Changes(contents={}, added=("a.yaml", "b.yaml"), deleted=("c.yaml",))

    assert mirror.commit_message(one).splitlines()[0] == (
        "Mirror from platform cluster: delete requests/team-a/postgres/db.yaml")
    assert mirror.commit_message(many).splitlines()[0] == (
        "Mirror from platform cluster: add 2, delete 1 files")
    assert "- delete c.yaml" in mirror.commit_message(many).splitlines()


def promise_with_api(**spec: Any) -> dict[str, Any]:
    api_spec = {"group": GROUP, "names": {"plural": "postgreses", "kind": "Postgres"},
                "versions": [{"name": "v1", "served": True, "storage": False},
                             {"name": "v2", "served": True, "storage": True,
                              "schema": {"openAPIV3Schema": {"type": "object", "properties": {}}}}]}
    api_spec.update(spec)
    return {"metadata": {"name": "pg"}, "spec": {"api": {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "anything", "uid": "server-set"}, "spec": api_spec}}}


def test_a_promise_api_gets_the_status_subresource_and_message_column_it_lacks() -> None:
    api = crds.request_api(promise_with_api())

    assert isinstance(api, crds.RequestApi)
    assert api.resource == crds.Resource(GROUP, "v2", "postgreses", "Postgres", namespaced=True)
    assert api.crd["metadata"] == {"name": f"postgreses.{GROUP}"}
    for version in api.crd["spec"]["versions"]:
        assert version["subresources"]["status"] == {}
        assert [c["jsonPath"] for c in version["additionalPrinterColumns"]] == [".status.message"]
    stored = api.crd["spec"]["versions"][1]["schema"]["openAPIV3Schema"]
    assert stored["properties"]["status"]["x-kubernetes-preserve-unknown-fields"] is True


def test_a_promise_api_that_already_has_a_message_column_is_not_given_a_second() -> None:
    column = {"name": "Status", "type": "string", "jsonPath": ".status.message"}
    body = promise_with_api(versions=[{"name": "v1", "served": True, "storage": True,
                                       "additionalPrinterColumns": [column]}])

    api = crds.request_api(body)

    assert isinstance(api, crds.RequestApi)
    assert api.crd["spec"]["versions"][0]["additionalPrinterColumns"] == [column]


def test_a_cluster_scoped_or_missing_api_is_refused_with_a_reason() -> None:
    assert "Namespaced" in str(crds.request_api(promise_with_api(scope="Cluster")))
    assert "no spec.api" in str(crds.request_api({"metadata": {"name": "pg"}, "spec": {}}))


def test_the_status_patch_turns_the_current_status_into_the_published_one() -> None:
    current = {"message": "Pending", "placement": {"destination": "w1", "reason": "old"}, "extra": 1}
    desired = {"message": "Resource requested", "placement": {"destination": "w1"}}

    patch = status.merge_patch(current, desired)

    assert patch == {"extra": None, "message": "Resource requested", "placement": {"reason": None}}


def test_status_updates_only_for_observed_objects_whose_status_differs() -> None:
    files = {
        ".kratix/status/team-a/pg/db.yaml": yaml.safe_dump({
            "apiVersion": f"{GROUP}/v1alpha1", "kind": "Postgres",
            "metadata": {"name": "db", "namespace": "team-a"},
            "status": {"message": "Resource requested"}}).encode(),
        ".kratix/status/team-a/pg/same.yaml": yaml.safe_dump({
            "apiVersion": f"{GROUP}/v1alpha1", "kind": "Postgres",
            "metadata": {"name": "same", "namespace": "team-a"}, "status": {"message": "ok"}}).encode(),
        ".kratix/status/team-a/pg/gone.yaml": yaml.safe_dump({
            "apiVersion": f"{GROUP}/v1alpha1", "kind": "Postgres",
            "metadata": {"name": "gone", "namespace": "team-a"}, "status": {"message": "x"}}).encode(),
        ".kratix/status/team-a/pg/broken.yaml": b"status: [",
    }
    same = request("same")
    same["status"] = {"message": "ok"}
    observed = {POSTGRES: {("team-a", "db"): request("db"), ("team-a", "same"): same}}

    updates = status.plan_status(status.parse_status_files(files), resources={(GROUP, "Postgres"): POSTGRES},
                                 observed=observed)

    assert updates == [status.StatusUpdate(POSTGRES, "team-a", "db", {"message": "Resource requested"})]
