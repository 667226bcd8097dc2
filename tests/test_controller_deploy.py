"""The controller's deployment: `deploy/` builds with kustomize, every object is valid against the Kubernetes
OpenAPI schemas (from the kubernetes-validate package), and the parts a reviewer checks hold."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from kratix.controller import crds

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
KUBERNETES_VERSION = "1.30"


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: cannot run `kubectl kustomize deploy/`")
    result = subprocess.run(["kubectl", "kustomize", str(DEPLOY)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def test_every_built_object_is_valid_against_the_kubernetes_schemas(built: list[dict[str, Any]]) -> None:
    assert sorted({obj["kind"] for obj in built}) == [
        "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "Namespace", "ServiceAccount"]
    for obj in built:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_controllers_own_crds_are_valid_custom_resource_definitions() -> None:
    for crd in crds.own_crds():
        kubernetes_validate.validate(crd, KUBERNETES_VERSION, strict=True)


def test_the_deployment_runs_one_in_cluster_controller_replaced_not_rolled(
        built: list[dict[str, Any]]) -> None:
    (deployment,) = by_kind(built, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]

    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert container["args"][:2] == ["controller", "--in-cluster"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    secret_volumes = [v["secret"]["secretName"] for v in deployment["spec"]["template"]["spec"]["volumes"]
                      if "secret" in v]
    assert secret_volumes == ["kratix-controller-git"]


def test_the_role_grants_no_wildcard_verbs_nor_secrets(built: list[dict[str, Any]]) -> None:
    rules = [rule for role in by_kind(built, "ClusterRole") for rule in role.get("rules") or []]

    assert rules
    assert all("*" not in rule["verbs"] for rule in rules)
    assert all("*" not in rule["apiGroups"] and "" not in rule["apiGroups"] for rule in rules)
    (binding,) = by_kind(built, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kratix-controller",
                                    "namespace": "kratix-platform"}]
