"""Output conformance: what a worker cluster would refuse is caught before the commit is published."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest

from kratix.model.errors import KratixError
from kratix.schema import conformance
from kratix.schema.conformance import Conformance, ObjectProblem


@pytest.fixture(scope="module")
def k8s() -> Conformance:
    return Conformance.for_kubernetes("1.30")


def deployment(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "team-a", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.25",
                            "ports": [{"containerPort": 80}],
                            "resources": {"limits": {"cpu": "500m", "memory": 128}},
                        }
                    ]
                },
            },
            **spec,
        },
    }


def config_map(name: str = "settings", **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "b"}, **fields}


def codes(problems: tuple[ObjectProblem, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    return [(p.path, p.code) for p in problems]


# --- built-in kinds -----------------------------------------------------------------------------------------


def test_a_valid_deployment_passes(k8s: Conformance) -> None:
    report = k8s.check([deployment()])
    assert report.problems == {}
    assert report.validated == 1 and report.not_validated == 0


def test_a_wrong_type_is_reported_at_its_path(k8s: Conformance) -> None:
    report = k8s.check([config_map(), deployment(replicas="two")])
    assert list(report.problems) == [1]
    [problem] = report.problems[1]
    assert (problem.path, problem.code) == (("spec", "replicas"), "k8s.schema")
    assert "integer" in problem.message and '"two"' in problem.message


def test_unknown_fields_are_errors_as_with_validate_strict(k8s: Conformance) -> None:
    typo = deployment()
    typo["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    report = k8s.check([config_map(extra="x"), typo])
    assert codes(report.problems[0]) == [(("extra",), "k8s.unknown-field")]
    assert codes(report.problems[1]) == [
        (("spec", "template", "spec", "containers", 0, "imagePullPolicyy"), "k8s.unknown-field")
    ]


def test_a_missing_required_field_points_at_it(k8s: Conformance) -> None:
    no_image_name = deployment()
    del no_image_name["spec"]["template"]["spec"]["containers"][0]["name"]
    report = k8s.check([no_image_name])
    container = ("spec", "template", "spec", "containers", 0)
    assert codes(report.problems[0]) == [((*container, "name"), "k8s.schema")]


def test_null_and_both_forms_of_int_or_string_are_accepted(k8s: Conformance) -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {
            "ports": [
                {"port": 80, "targetPort": "http"},
                {"port": 81, "targetPort": 8081},
                {"port": 82, "targetPort": None},
                {"port": 83, "targetPort": {"no": 1}},
            ]
        },
    }
    report = k8s.check([service])
    assert codes(report.problems[0]) == [(("spec", "ports", 3, "targetPort"), "k8s.schema")]
    message = report.problems[0][0].message
    assert "integer" in message and "string" in message and "null" not in message


def test_an_api_the_cluster_no_longer_serves_is_an_error(k8s: Conformance) -> None:
    old = deployment()
    old["apiVersion"] = "apps/v1beta1"
    report = k8s.check([old])
    [problem] = report.problems[0]
    assert (problem.path, problem.code) == (("apiVersion",), "k8s.unknown-kind")
    assert "apps/v1" in problem.message and report.validated == 0


def test_the_kubernetes_version_decides_which_apis_exist() -> None:
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "replicas"},
        "spec": {"validations": [{"expression": "object.spec.replicas <= 5"}]},
    }
    assert Conformance.for_kubernetes("1.30").check([policy]).problems == {}  # GA in 1.30
    older = Conformance.for_kubernetes("1.29").check([policy])
    assert codes(older.problems[0]) == [(("apiVersion",), "k8s.unknown-kind")]
    assert older.problems[0][0].message.endswith("; choose --kubernetes-version 1.30 or later")


def test_a_field_from_a_newer_release_names_the_release_to_choose() -> None:
    sidecar = deployment()
    sidecar["spec"]["template"]["spec"]["initContainers"] = [
        {"name": "proxy", "image": "envoy", "restartPolicy": "Always"}
    ]  # sidecars: 1.28
    assert Conformance.for_kubernetes("1.28").check([sidecar]).problems == {}
    [problem] = Conformance.for_kubernetes("1.27").check([sidecar]).problems[0]
    assert (problem.code, problem.message) == (
        "k8s.unknown-field",
        "unknown field 'restartPolicy': not in Kubernetes 1.27; choose --kubernetes-version 1.28 or later",
    )


def test_a_problem_no_release_fixes_says_nothing_of_releases(k8s: Conformance) -> None:
    typo = deployment()
    typo["spec"]["replicass"] = 2
    [problem] = k8s.check([typo]).problems[0]
    assert problem.message == "unknown field 'replicass'"


def test_a_kubernetes_group_the_release_lacks_is_refused_not_left_unchecked() -> None:
    slice_ = {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass", "metadata": {"name": "gpu"}, "spec": {}}
    report = Conformance.for_kubernetes("1.30").check([slice_])
    [problem] = report.problems[0]
    assert (problem.code, report.not_validated) == ("k8s.unknown-kind", 0)
    assert problem.message.startswith("resource.k8s.io/v1 DeviceClass is not served by Kubernetes 1.30")
    assert problem.message.endswith("choose --kubernetes-version 1.34 or later")


# --- object shape and names -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Web", "web_1", "-web", "web.", "a" * 254])
def test_a_name_that_is_not_a_dns_subdomain_fails(k8s: Conformance, name: str) -> None:
    report = k8s.check([config_map(name)])
    assert codes(report.problems[0]) == [(("metadata", "name"), "object.name")]


def test_names_follow_the_rule_of_their_kind(k8s: Conformance) -> None:
    def named(api_version: str, kind: str, name: str) -> dict[str, Any]:
        return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}

    objects = [
        config_map("db.config"),  # subdomain: dots allowed
        named("v1", "Namespace", "team.a"),  # label: no dots
        named("v1", "Service", "1web"),  # DNS-1035: a letter first
        named("rbac.authorization.k8s.io/v1", "ClusterRole", "system:aggregate-to-view"),  # path segment
        named("rbac.authorization.k8s.io/v1", "Role", "a/b"),
    ]
    report = k8s.check(objects)
    assert sorted(report.problems) == [1, 2, 4]
    assert all(codes(report.problems[i]) == [(("metadata", "name"), "object.name")] for i in (1, 2, 4))


def test_an_invalid_namespace_fails(k8s: Conformance) -> None:
    cm = config_map()
    cm["metadata"]["namespace"] = "Team_A"
    assert codes(k8s.check([cm]).problems[0]) == [(("metadata", "namespace"), "object.name")]


def test_objects_without_their_identity_fail_and_are_not_validated(k8s: Conformance) -> None:
    nameless = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}
    report = k8s.check([nameless, {"kind": "ConfigMap"}, "text"])
    assert codes(report.problems[0]) == [(("metadata", "name"), "object.shape")]
    assert codes(report.problems[1]) == [(("apiVersion",), "object.shape"), (("metadata",), "object.shape")]
    assert codes(report.problems[2]) == [((), "object.shape")]
    assert report.validated == 0


def test_yaml_values_json_cannot_hold_are_reported_not_crashed_on(k8s: Conformance) -> None:
    cm = config_map()
    cm["metadata"]["annotations"] = {"released": datetime.date(2024, 1, 1)}  # an unquoted date in a template
    cm["data"] = {8080: "port"}
    report = k8s.check([cm])
    assert sorted(codes(report.problems[0])) == [
        (("data", "8080"), "object.not-json"),
        (("metadata", "annotations", "released"), "object.not-json"),
    ]


# --- sizes ------------------------------------------------------------------------------------------------


def test_an_object_over_256_kib_cannot_be_applied_client_side(k8s: Conformance) -> None:
    big = config_map(data={"blob": "x" * (300 * 1024)})
    report = k8s.check([big, config_map()])
    assert codes(report.problems[0]) == [((), "object.too-large-for-apply")]
    assert 1 not in report.problems


def test_an_object_over_1_5_mib_is_refused_by_etcd(k8s: Conformance) -> None:
    huge = config_map(data={"blob": "x" * (2 * 1024 * 1024)})
    assert codes(k8s.check([huge]).problems[0]) == [((), "object.too-large")]


def test_sizes_given_by_the_caller_are_used(k8s: Conformance) -> None:
    report = k8s.check([config_map(), config_map()], sizes=[100, conformance.APPLY_LIMIT + 1])
    assert list(report.problems) == [1]
    assert codes(report.problems[1]) == [((), "object.too-large-for-apply")]


# --- custom kinds -----------------------------------------------------------------------------------------


def database_crd() -> dict[str, Any]:
    v1 = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["size", "engine"],
                "properties": {
                    "size": {"type": "string", "enum": ["small", "large"]},
                    "engine": {"type": "string", "default": "postgres"},  # required, but defaulted
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 5, "exclusiveMaximum": True},
                    "port": {"x-kubernetes-int-or-string": True},
                    "backup": {"type": "string", "nullable": True},
                    "extensions": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "users": {
                        "type": "array",
                        "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
                    },
                },
            },
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "databases.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"kind": "Database", "plural": "databases", "singular": "database", "listKind": "DatabaseList"},
            "versions": [
                {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": v1}},
                {
                    "name": "v1alpha1",
                    "served": False,
                    "storage": False,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                },
            ],
        },
    }


def database(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Database",
        "metadata": {"name": "orders", "namespace": "team-a", "labels": {"tier": "gold"}},
        "spec": {"size": "small", **spec},
    }


def test_the_crd_itself_is_a_valid_built_in_object(k8s: Conformance) -> None:
    assert k8s.check([database_crd()]).problems == {}


def test_a_custom_object_is_validated_against_the_crd_delivered(k8s: Conformance) -> None:
    valid = database(
        replicas=4, port="pg", backup=None, extensions={"anything": {"goes": [1]}}, users=[{"name": "app"}]
    )
    unset = database(port=5432, replicas=None)  # the apiserver drops a null field, nullable or not
    report = k8s.check([valid, unset], crds=[database_crd()])
    assert report.problems == {}
    assert report.validated == 2 and report.not_validated == 0


def test_a_custom_object_breaking_its_crd_fails(k8s: Conformance) -> None:
    invalid = database(size="huge", replicas=5, port=[1], users=[{"nme": "app"}], colour="blue")
    invalid["spec"]["extensions"] = {"free": "form"}
    report = k8s.check([invalid], crds=[database_crd()])
    assert sorted(codes(report.problems[0])) == [
        (("spec", "colour"), "k8s.unknown-field"),
        (("spec", "port"), "k8s.schema"),
        (("spec", "replicas"), "k8s.schema"),  # exclusiveMaximum: 5 is out
        (("spec", "size"), "k8s.schema"),
        (("spec", "users", 0, "name"), "k8s.schema"),
        (("spec", "users", 0, "nme"), "k8s.unknown-field"),
    ]


def test_a_custom_object_metadata_is_checked_as_object_metadata(k8s: Conformance) -> None:
    obj = database()
    obj["metadata"]["labels"] = {"tier": 3}
    obj["metadata"]["owner"] = "me"
    report = k8s.check([obj], crds=[database_crd()])
    assert sorted(codes(report.problems[0])) == [
        (("metadata", "labels", "tier"), "k8s.schema"),
        (("metadata", "owner"), "k8s.unknown-field"),
    ]


def test_a_version_the_crd_does_not_serve_is_an_error(k8s: Conformance) -> None:
    obj = database()
    obj["apiVersion"] = "example.com/v1alpha1"
    report = k8s.check([obj], crds=[database_crd()])
    [problem] = report.problems[0]
    assert (problem.path, problem.code) == (("apiVersion",), "crd.unknown-version")
    assert "serves v1" in problem.message


def test_a_custom_object_without_a_delivered_crd_is_counted_not_validated(k8s: Conformance) -> None:
    other = {
        "apiVersion": "cache.example.org/v1beta1",
        "kind": "Redis",
        "metadata": {"name": "r"},
        "spec": {"anything": True},
    }
    report = k8s.check([database(colour="any"), other, copy.deepcopy(other), config_map()])
    assert report.problems == {}
    assert (report.validated, report.not_validated) == (1, 3)
    assert report.not_validated_kinds == ("cache.example.org/v1beta1 Redis", "example.com/v1 Database")


def test_a_changed_crd_is_not_served_from_an_earlier_run(k8s: Conformance) -> None:
    loose = database_crd()
    loose["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    assert k8s.check([database(colour="blue")], crds=[loose]).problems == {}
    assert k8s.check([database(colour="blue")], crds=[database_crd()]).problems != {}


# --- Kubernetes versions ----------------------------------------------------------------------------------


def test_the_requested_release_is_used_and_none_means_the_newest_shipped() -> None:
    shipped = ("1.25", "1.26", "1.30", "1.37")
    assert conformance.select_version("1.30", shipped) == "1.30"
    assert conformance.select_version("v1.26.3", shipped) == "1.26"
    assert conformance.select_version(None, shipped) == "1.37"


@pytest.mark.parametrize(
    ("requested", "why"),
    [
        ("1.29", r"no Kubernetes 1\.29 schemas are installed; "),
        ("1.40", r"1\.40 schemas are installed \(a newer kubernetes-validate"),
    ],
)
def test_a_release_whose_schemas_are_not_shipped_is_refused_never_replaced(requested: str, why: str) -> None:
    with pytest.raises(KratixError, match=why + r".*schemas ship for 1\.25, 1\.26, 1\.30, 1\.37"):
        conformance.select_version(requested, ("1.25", "1.26", "1.30", "1.37"))


def test_the_shipped_versions_are_found_in_the_installed_package() -> None:
    shipped = conformance.shipped_versions()
    assert "1.30" in shipped
    assert list(shipped) == sorted(shipped, key=lambda v: tuple(map(int, v.split("."))))
    assert Conformance.for_kubernetes("v1.30.2").kubernetes_version == "1.30"


@pytest.mark.parametrize("requested", ["1.10", "latest", "1"])
def test_an_unusable_version_is_refused_listing_the_shipped_ones(requested: str) -> None:
    with pytest.raises(KratixError, match=r"1\.25.*1\.30"):
        Conformance.for_kubernetes(requested)
