"""Seed-era Promises and Clusters upgraded to today's format, field by field and as whole files."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from kratix.load import migrate
from kratix.model.errors import SourceError

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "postgreses.example.org"},
    "spec": {
        "group": "example.org",
        "scope": "Namespaced",
        "names": {"kind": "Postgres", "plural": "postgreses", "singular": "postgres"},
        "versions": [
            {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {"type": "object"}}}
        ],
    },
}
NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "postgres-operator"}}


def promise(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "platform.kratix.io/v1alpha1",
        "kind": "Promise",
        "metadata": {"name": "postgres"},
        "spec": spec,
    }


def pipeline(name: str, *containers: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "platform.kratix.io/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": name},
        "spec": {"containers": list(containers)},
    }


def test_xaas_crd_becomes_the_api() -> None:
    upgrade = migrate.upgrade_document(promise(xaasCrd=CRD))

    assert upgrade.body["spec"] == {"api": CRD}
    assert upgrade.notes == (
        (("spec", "xaasCrd"), "spec.xaasCrd is deprecated: use spec.api (kratix migrate rewrites it)"),
    )


def test_xaas_crd_is_dropped_when_the_api_is_already_set() -> None:
    upgrade = migrate.upgrade_document(promise(api=CRD, xaasCrd={"kind": "Other"}))

    assert upgrade.body["spec"] == {"api": CRD}
    assert upgrade.notes[0][0] == ("spec", "xaasCrd") and "spec.api is set" in upgrade.notes[0][1]


def test_the_request_pipeline_becomes_the_first_resource_configure_pipeline() -> None:
    existing = pipeline("notify", {"name": "slack", "image": "example/notify:1"})
    images = [
        "ghcr.io/acme/postgres-request-pipeline:v0.1.0",
        "acme/Cost_Centre@sha256:abc",
        "ghcr.io/other/postgres-request-pipeline",
    ]
    body = promise(xaasRequestPipeline=images, workflows={"resource": {"configure": [existing]}})
    upgrade = migrate.upgrade_document(body)

    assert upgrade.body["spec"] == {
        "workflows": {
            "resource": {
                "configure": [
                    pipeline(
                        "instance-configure",
                        {"name": "postgres-request-pipeline", "image": images[0], "legacyPaths": True},
                        {"name": "cost-centre", "image": images[1], "legacyPaths": True},
                        {"name": "postgres-request-pipeline-2", "image": images[2], "legacyPaths": True},
                    ),
                    existing,
                ]
            }
        }
    }
    assert [path for path, _ in upgrade.notes] == [("spec", "xaasRequestPipeline")]
    assert "spec.workflows.resource.configure" in upgrade.notes[0][1]


def test_the_request_pipeline_does_not_take_an_existing_pipeline_name() -> None:
    existing = pipeline("instance-configure", {"name": "render", "template": "templates"})
    upgrade = migrate.upgrade_document(
        promise(xaasRequestPipeline=["acme/render:1"], workflows={"resource": {"configure": [existing]}})
    )

    names = [p["metadata"]["name"] for p in upgrade.body["spec"]["workflows"]["resource"]["configure"]]
    assert names == ["instance-configure-seed", "instance-configure"]


@pytest.mark.parametrize("old", ["clusterWorkerResources", "workerClusterResources"])
def test_worker_resources_become_dependencies(old: str) -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "operator"}}
    upgrade = migrate.upgrade_document(promise(dependencies=[CRD], **{old: [NAMESPACE, {"unstructured": deployment}]}))

    assert upgrade.body["spec"] == {"dependencies": [CRD, NAMESPACE, deployment]}
    assert upgrade.notes == (
        (("spec", old), f"spec.{old} is deprecated: use spec.dependencies (kratix migrate rewrites it)"),
    )


def test_both_spellings_of_worker_resources_are_kept_in_order() -> None:
    other = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "operator"}}
    upgrade = migrate.upgrade_document(promise(clusterWorkerResources=[NAMESPACE], workerClusterResources=[other]))

    assert upgrade.body["spec"] == {"dependencies": [NAMESPACE, other]}
    assert len(upgrade.notes) == 2


def test_the_cluster_selector_becomes_a_destination_selector() -> None:
    upgrade = migrate.upgrade_document(
        promise(destinationSelectors=[{"matchLabels": {"zone": "eu"}}], clusterSelector={"env": "dev"})
    )

    assert upgrade.body["spec"] == {
        "destinationSelectors": [{"matchLabels": {"zone": "eu"}}, {"matchLabels": {"env": "dev"}}]
    }
    assert upgrade.notes[0][0] == ("spec", "clusterSelector")


def test_new_fields_take_the_place_of_the_old_ones() -> None:
    body = promise(
        clusterSelector={"env": "dev"},
        xaasCrd=CRD,
        requiredPromises=[{"name": "operator"}],
        workerClusterResources=[NAMESPACE],
    )

    upgraded = migrate.upgrade_document(body).body

    assert list(upgraded["spec"]) == ["destinationSelectors", "api", "requiredPromises", "dependencies"]


def test_a_namespaced_seed_promise_loses_its_namespace() -> None:
    body = promise(api=CRD)
    body["metadata"]["namespace"] = "default"

    upgrade = migrate.upgrade_document(body)

    assert upgrade.body["metadata"] == {"name": "postgres"}
    assert upgrade.notes[0][0] == ("metadata", "namespace")


def test_a_2021_cluster_becomes_a_destination() -> None:
    cluster = {
        "apiVersion": "platform.kratix.io/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": "worker-1", "namespace": "default", "labels": {"env": "dev"}},
        "spec": {
            "id": "worker-1",
            "bucketPath": "worker-1-bucket",
            "stateStoreRef": {"name": "default", "kind": "BucketStateStore"},
        },
    }
    upgrade = migrate.upgrade_document(cluster)

    assert upgrade.body == {
        "apiVersion": "platform.kratix.io/v1alpha1",
        "kind": "Destination",
        "metadata": {"name": "worker-1", "labels": {"env": "dev"}},
        "spec": {"path": "worker-1-bucket", "stateStoreRef": {"name": "default", "kind": "BucketStateStore"}},
    }
    assert dict(upgrade.notes) == {
        ("kind",): "kind: Cluster is deprecated: use kind: Destination (kratix migrate rewrites it)",
        ("metadata", "namespace"): "metadata.namespace is obsolete and ignored: a Destination is "
        "cluster-scoped (kratix migrate removes it)",
        ("spec", "id"): "spec.id is obsolete and ignored: a Destination is identified by its name "
        "(kratix migrate removes it)",
        ("spec", "bucketPath"): "spec.bucketPath is deprecated: use spec.path (kratix migrate rewrites it)",
    }


SEED_POSTGRES = """\
# The 2021 Postgres Promise, as the seed's README applied it.
apiVersion: platform.kratix.io/v1alpha1
kind: Promise
metadata:
  name: postgres-promise
  namespace: default
spec:
  clusterWorkerResources:
  - apiVersion: v1
    kind: Namespace
    metadata:
      name: postgres-operator
  - apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: postgres-operator
      namespace: postgres-operator
    spec:
      replicas: 1
  xaasRequestPipeline:
  - syntasso/postgres-request-pipeline
  xaasCrd:
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: postgreses.example.org
    spec:
      group: example.org
      scope: Namespaced
      names: {kind: Postgres, plural: postgreses, singular: postgres}
      versions:
      - name: v1
        served: true
        storage: true
        schema:
          openAPIV3Schema:
            type: object
            properties:
              spec:
                type: object
                properties:
                  teamId: {type: string}
"""

TODAY_POSTGRES = """\
# The 2021 Postgres Promise, as the seed's README applied it.
apiVersion: platform.kratix.io/v1alpha1
kind: Promise
metadata:
  name: postgres-promise
spec:
  dependencies:
  - apiVersion: v1
    kind: Namespace
    metadata:
      name: postgres-operator
  - apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: postgres-operator
      namespace: postgres-operator
    spec:
      replicas: 1
  workflows:
    resource:
      configure:
      - apiVersion: platform.kratix.io/v1alpha1
        kind: Pipeline
        metadata:
          name: instance-configure
        spec:
          containers:
          - name: postgres-request-pipeline
            image: syntasso/postgres-request-pipeline
            legacyPaths: true
  api:
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: postgreses.example.org
    spec:
      group: example.org
      scope: Namespaced
      names:
        kind: Postgres
        plural: postgreses
        singular: postgres
      versions:
      - name: v1
        served: true
        storage: true
        schema:
          openAPIV3Schema:
            type: object
            properties:
              spec:
                type: object
                properties:
                  teamId:
                    type: string
"""


def test_a_whole_2021_postgres_promise_is_upgraded() -> None:
    text, changed = migrate.migrate_file(SEED_POSTGRES)

    assert changed == 1
    assert text == TODAY_POSTGRES
    notes = migrate.upgrade_document(yaml.safe_load(SEED_POSTGRES)).notes
    assert sorted(path for path, _ in notes) == [
        ("metadata", "namespace"),
        ("spec", "clusterWorkerResources"),
        ("spec", "xaasCrd"),
        ("spec", "xaasRequestPipeline"),
    ]


@pytest.mark.parametrize(
    "body",
    [
        yaml.safe_load(TODAY_POSTGRES),
        {
            "apiVersion": "platform.kratix.io/v1alpha1",
            "kind": "Destination",
            "metadata": {"name": "w"},
            "spec": {"path": "w"},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "xaasCrd", "namespace": "default"},
            "data": {"bucketPath": "x"},
        },
        {"apiVersion": "example.org/v1", "kind": "Cluster", "metadata": {"name": "not-kratix"}},
        ["not", "an", "object"],
        None,
    ],
)
def test_current_and_unrelated_documents_are_left_alone(body: Any) -> None:
    before = copy.deepcopy(body)

    upgrade = migrate.upgrade_document(body)

    assert upgrade.body == before and upgrade.notes == () and not upgrade.changed
    assert body == before


def test_upgrading_never_mutates_its_input_and_is_idempotent() -> None:
    body = yaml.safe_load(SEED_POSTGRES)
    before = copy.deepcopy(body)

    once = migrate.upgrade_document(body)
    twice = migrate.upgrade_document(once.body)

    assert body == before
    assert twice.body == once.body and twice.notes == ()
    assert migrate.migrate_file(TODAY_POSTGRES) == (TODAY_POSTGRES, 0)


MIXED = """\
# platform inventory: do not reorder
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}   # flow style and a comment: kept as written
data:
  on: 'yes'
---
apiVersion: platform.kratix.io/v1alpha1
kind: Cluster
metadata:
  name: worker-1
  namespace: default
spec:
  bucketPath: worker-1
--- # a current destination
apiVersion: platform.kratix.io/v1alpha1
kind: Destination
metadata: {name: worker-2, labels: {env: prod}}
spec: {path: worker-2}
"""


def test_migrate_file_rewrites_only_seed_era_documents() -> None:
    text, changed = migrate.migrate_file(MIXED)

    assert changed == 1
    first, cluster, current = text.split("---")
    assert first == MIXED.split("---")[0]  # byte for byte, comments and flow style included
    assert current == MIXED.split("---")[2]
    assert yaml.safe_load(cluster) == {
        "apiVersion": "platform.kratix.io/v1alpha1",
        "kind": "Destination",
        "metadata": {"name": "worker-1"},
        "spec": {"path": "worker-1"},
    }
    assert migrate.migrate_file(text) == (text, 0)


def test_a_file_without_seed_era_documents_is_returned_as_is() -> None:
    text = "# nothing here\n---\n---\nkind: ConfigMap\r\nmetadata: {name: a}\r\n...\n"

    assert migrate.migrate_file(text) == (text, 0)


def test_a_file_that_is_not_yaml_is_refused_by_name() -> None:
    with pytest.raises(SourceError, match="promises/broken.yaml"):
        migrate.migrate_file("kind: Promise\nspec: [unclosed\n", path="promises/broken.yaml")
