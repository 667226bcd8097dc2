"""Requests on any served version, as the API server takes them with no conversion webhook: checked and defaulted
against their own version's schema, then stored at the storage version (only apiVersion changes; fields the
storage schema lacks are pruned, said so; its defaults apply). Kratix's pipelines read the request at the
storage version (`Promise.GetAPI`'s GVK), which is what `validate_request` returns."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema_rs
import yaml

from kratix import schema
from kratix.model.diagnostics import Severity

CRD = yaml.safe_load("""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: caches.data.example.org}
spec:
  group: data.example.org
  scope: Namespaced
  names: {kind: Cache, plural: caches}
  versions:
  - name: v1alpha1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              memory: {type: string, enum: [256Mi, 1Gi], default: 256Mi}
              legacyMode: {type: boolean}
              tags:
                type: array
                items:
                  type: object
                  properties:
                    name: {type: string}
                    colour: {type: string}
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
              memory: {type: string, default: 1Gi}
              evictionPolicy: {type: string, default: allkeys-lru}
              tags:
                type: array
                items:
                  type: object
                  properties:
                    name: {type: string}
  - name: v0
    served: false
    storage: false
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
""")


def request(version: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"data.example.org/{version}",
        "kind": "Cache",
        "metadata": {"name": "sessions", "namespace": "default"},
        "spec": spec,
    }


def validate(body: dict[str, Any], crd: dict[str, Any] = CRD) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    stored, violations = schema.validate_request(schema.compile_request_schema(crd), body)
    return stored, [(".".join(map(str, v.path)), v.severity.name, v.message) for v in violations]


def test_the_crd_is_valid_and_its_storage_version_is_what_requests_become():
    assert [v for v in schema.check_crd(CRD) if v.severity is Severity.ERROR] == []
    compiled = schema.compile_request_schema(CRD)
    assert (compiled.api_version, compiled.served) == ("data.example.org/v1", ("v1alpha1", "v1"))


def test_a_request_on_the_storage_version_is_stored_as_written_with_its_defaults():
    assert validate(request("v1", {"memory": "2Gi"})) == (
        request("v1", {"memory": "2Gi", "evictionPolicy": "allkeys-lru"}),
        [],
    )


def test_a_request_on_a_served_version_is_checked_against_that_versions_schema():
    _, problems = validate(request("v1alpha1", {"memory": "2Gi", "evictionPolicy": "lfu"}))
    assert problems == [
        ("spec.evictionPolicy", "ERROR", 'unknown field "evictionPolicy"'),  # v1's field, not v1alpha1's
        ("spec.memory", "ERROR", 'must be one of: 256Mi, 1Gi (got "2Gi")'),
    ]


def test_a_request_on_a_served_version_is_stored_at_the_storage_version():
    stored, problems = validate(request("v1alpha1", {"legacyMode": True, "tags": [{"name": "a", "colour": "red"}]}))
    # its own defaults first (memory: 256Mi, kept), then the storage version's (evictionPolicy)
    assert stored == request("v1", {"memory": "256Mi", "tags": [{"name": "a"}], "evictionPolicy": "allkeys-lru"})
    assert problems == [
        (
            "spec.legacyMode",
            "WARNING",
            "dropped in conversion to data.example.org/v1: its schema has no such field (the API server prunes it)",
        ),
        (
            "spec.tags.0.colour",
            "WARNING",
            "dropped in conversion to data.example.org/v1: its schema has no such field (the API server prunes it)",
        ),
    ]


def test_a_version_that_is_not_served_or_not_declared_names_the_served_ones():
    served = "served: data.example.org/v1alpha1, data.example.org/v1"
    assert validate(request("v0", {}))[1] == [("apiVersion", "ERROR", f'"data.example.org/v0" is not served; {served}')]
    assert validate(request("v2", {}))[1] == [
        ("apiVersion", "ERROR", f'"data.example.org/v2" is not a version of this API; {served}')
    ]


def test_a_conversion_webhook_cannot_be_called_so_only_the_storage_version_is_accepted():
    crd = copy.deepcopy(CRD)
    crd["spec"]["conversion"] = {
        "strategy": "Webhook",
        "webhook": {
            "clientConfig": {"service": {"name": "convert", "namespace": "data"}},
            "conversionReviewVersions": ["v1"],
        },
    }
    warnings = [v.message for v in schema.check_crd(crd) if v.severity is Severity.WARNING]
    assert warnings == [
        "requests on v1alpha1 need the conversion webhook, which a compile cannot call: such "
        "requests fail (write them at the storage version)"
    ]
    assert validate(request("v1alpha1", {}), crd)[1] == [
        (
            "apiVersion",
            "ERROR",
            '"data.example.org/v1alpha1" needs the Promise\'s conversion webhook to reach the '
            "storage version data.example.org/v1, which a compile cannot call: write the request "
            "as data.example.org/v1",
        )
    ]
    assert validate(request("v1", {}), crd)[1] == []


def test_the_editor_schema_applies_each_versions_schema_to_its_requests():
    editor = jsonschema_rs.Draft7Validator(schema.editor_json_schema(schema.compile_request_schema(CRD)))
    assert editor.is_valid(request("v1alpha1", {"legacyMode": True}))
    assert editor.is_valid(request("v1", {"evictionPolicy": "lfu"}))
    assert not editor.is_valid(request("v1", {"legacyMode": True}))
    assert not editor.is_valid(request("v1alpha1", {"evictionPolicy": "lfu"}))
    assert not editor.is_valid(request("v0", {}))
