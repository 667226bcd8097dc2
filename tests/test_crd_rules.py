"""A Promise's API is accepted exactly when Kratix and the API server would accept it: no stricter, no looser.

Each case cites what it follows: Kratix's `Promise.GetAPI` (api/v1alpha1/promise_types.go) decodes `spec.api`
with Go's encoding/json into an apiextensions.k8s.io/v1 CRD and `setStatusFieldsOnCRD` enables the status
subresource; the API server's checks are apiextensions-apiserver's `ValidateCustomResourceDefinition`
(pkg/apis/apiextensions/validation), `ValidateStructural` (pkg/apiserver/schema/validation.go) and
`ValidateDefaults` (pkg/apiserver/schema/defaulting/validation.go), after the v1 defaults (v1/defaults.go).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from kratix import schema
from kratix.model.diagnostics import Severity

CRD = yaml.safe_load("""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: databases.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Database, plural: databases}
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
              size: {type: string}
""")


def crd_with(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    crd = copy.deepcopy(CRD)
    change(crd)
    return crd


def version(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]


def root(crd: dict[str, Any]) -> dict[str, Any]:
    return version(crd)["schema"]["openAPIV3Schema"]


def spec_schema(crd: dict[str, Any]) -> dict[str, Any]:
    return root(crd)["properties"]["spec"]


def found(crd: object, severity: Severity = Severity.ERROR) -> list[tuple[str, str]]:
    """(dotted path, message) of every problem of `severity`."""
    return [(".".join(map(str, v.path)), v.message) for v in schema.check_crd(crd) if v.severity is severity]


def errors_at(crd: object) -> list[str]:
    return [path for path, _ in found(crd)]


def test_the_base_crd_is_accepted_without_a_word():
    assert schema.check_crd(CRD) == []


# --- spec.api read as Kratix reads it (GetAPI: json.Unmarshal into apiextensionsv1.CustomResourceDefinition) ----


@pytest.mark.parametrize("declared", ["apiextensions.k8s.io/v1beta1", "apiextensions.k8s.io/v1alpha1", "something"])
def test_any_declared_api_version_is_read_as_v1_and_said_so(declared):
    crd = crd_with(lambda c: c.update(apiVersion=declared))
    assert found(crd) == []
    assert found(crd, Severity.WARNING) == [
        (
            "apiVersion",
            f"{declared!r} is read as apiextensions.k8s.io/v1: Kratix reads spec.api as an "
            "apiextensions.k8s.io/v1 CustomResourceDefinition whatever it declares",
        )
    ]
    compiled = schema.compile_request_schema(crd)
    assert (compiled.api_version, compiled.kind) == ("example.com/v1", "Database")


def test_a_declared_kind_other_than_crd_is_read_as_one_and_said_so():
    assert found(crd_with(lambda c: c.update(kind="Database")), Severity.WARNING) == [
        (
            "kind",
            "'Database' is read as CustomResourceDefinition: Kratix reads spec.api as an "
            "apiextensions.k8s.io/v1 CustomResourceDefinition whatever it declares",
        )
    ]


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda c: c.pop("apiVersion"), "apiVersion"),  # an embedded resource needs both (objectmeta/validation.go)
        (lambda c: c.update(kind=""), "kind"),
        (lambda c: c.update(apiVersion="a/b/c"), "apiVersion"),
    ],
)
def test_spec_api_is_an_embedded_resource_of_the_promise(change, path):
    assert errors_at(crd_with(change)) == [path]


@pytest.mark.parametrize(
    ("change", "path", "expected"),
    [
        (lambda c: version(c).update(served="true"), "spec.versions.0.served", "a boolean, not a string"),
        (
            lambda c: spec_schema(c).update(required=True),
            "spec.versions.0.schema.openAPIV3Schema.properties.spec.required",
            "a list, not a boolean",
        ),
        (
            lambda c: spec_schema(c)["properties"]["size"].update(maxLength=1.5),
            "spec.versions.0.schema.openAPIV3Schema.properties.spec.properties.size.maxLength",
            "an integer, not a number",
        ),
        (
            lambda c: spec_schema(c).update(exclusiveMinimum=3),
            "spec.versions.0.schema.openAPIV3Schema.properties.spec.exclusiveMinimum",
            "a boolean, not an integer",
        ),
    ],
)
def test_a_value_go_cannot_decode_makes_the_api_unreadable(change, path, expected):
    assert found(crd_with(change)) == [
        (path, f"must be {expected}: Kratix cannot read spec.api as a CustomResourceDefinition")
    ]


def test_an_integral_number_is_an_integer_as_json_has_it():
    assert found(crd_with(lambda c: spec_schema(c)["properties"]["size"].update(maxLength=5.0))) == []


def test_fields_the_v1_types_lack_are_dropped_with_a_warning():
    def v1beta1_leftovers(crd: dict[str, Any]) -> None:
        crd["spec"]["validation"] = {"openAPIV3Schema": {"type": "object"}}
        spec_schema(crd)["properties"]["size"]["const"] = "small"
        spec_schema(crd)["const"] = {}

    crd = crd_with(v1beta1_leftovers)
    assert found(crd) == []
    assert found(crd, Severity.WARNING) == [
        (
            "spec.validation",
            "ignored: a field of apiextensions.k8s.io/v1beta1 that v1 moved or removed "
            "(spec.versions[*] holds schema, subresources and printer columns); Kratix drops it "
            "before the API server sees it",
        ),
        (
            "spec.versions.0.schema.openAPIV3Schema.properties.spec.properties.size.const",
            "ignored: 'const' is not a keyword of a CRD schema (and 1 more place(s)); Kratix drops it before the API "
            "server sees it",
        ),
    ]


def test_a_v1beta1_shaped_crd_has_no_versions_once_read_as_v1():
    crd = yaml.safe_load("""
    apiVersion: apiextensions.k8s.io/v1beta1
    kind: CustomResourceDefinition
    metadata: {name: databases.example.com}
    spec:
      group: example.com
      version: v1
      scope: Namespaced
      names: {kind: Database, plural: databases}
      validation: {openAPIV3Schema: {type: object}}
    """)
    assert found(crd) == [("spec.versions", "must have exactly one version marked as storage version (found 0)")]
    assert [path for path, _ in found(crd, Severity.WARNING)] == ["apiVersion", "spec.validation", "spec.version"]


def test_go_matches_struct_fields_in_any_letter_case():
    crd = crd_with(lambda c: version(c).update(Served=version(c).pop("served")))
    assert found(crd) == []
    assert found(crd, Severity.WARNING) == [
        ("spec.versions.0.Served", "read as 'served': Go matches field names in any letter case, and so does Kratix")
    ]


def test_a_null_default_is_no_default():
    crd = crd_with(lambda c: spec_schema(c)["properties"]["size"].update(default=None))
    compiled = schema.compile_request_schema(crd)
    body = {"apiVersion": "example.com/v1", "kind": "Database", "metadata": {"name": "db"}, "spec": {}}
    assert schema.validate_request(compiled, body) == ({**body, "spec": {}}, [])


# --- names (ValidateCustomResourceDefinitionNames, after SetDefaults_CustomResourceDefinitionSpec) --------------


def names_with(**names: Any) -> dict[str, Any]:
    def change(crd: dict[str, Any]) -> None:
        crd["spec"]["names"].update(names)
        crd["metadata"]["name"] = f"{crd['spec']['names']['plural']}.example.com"

    return crd_with(change)


@pytest.mark.parametrize(
    "kind", ["argocd-application", "Argocd-Application", "paved-path-demo", "kfpipelines", "Database2"]
)
def test_a_kind_is_valid_when_its_lowercase_form_is_a_dns_1035_label(kind):
    assert found(names_with(kind=kind)) == []


@pytest.mark.parametrize(
    ("kind", "also"),
    [
        ("2Database", ["spec.names.listKind"]),
        ("Data_base", ["spec.names.listKind"]),
        ("Data.base", ["spec.names.listKind"]),
        ("Database-", []),
    ],
)
def test_a_kind_whose_lowercase_form_is_no_dns_1035_label_is_refused(kind, also):
    # the singular (the lowercase kind) and the listKind (kind + "List") default from it: refused with it
    assert errors_at(names_with(kind=kind)) == ["spec.names.kind", *also, "spec.names.singular"]


@pytest.mark.parametrize(
    ("names", "path"),
    [
        ({"plural": "1databases"}, "spec.names.plural"),  # a DNS-1035 label, not DNS-1123: a letter first
        ({"singular": "data-base-"}, "spec.names.singular"),
        ({"listKind": "Database"}, "spec.names.listKind"),  # kind and listKind may not be the same
        ({"listKind": "Database_List"}, "spec.names.listKind"),
        ({"shortNames": ["db", "DB"]}, "spec.names.shortNames.1"),
        ({"categories": ["all", "data base"]}, "spec.names.categories.1"),
    ],
)
def test_names_the_api_server_refuses(names, path):
    assert errors_at(names_with(**names)) == [path]


def test_an_uppercase_plural_is_refused_and_so_is_the_name_made_of_it():
    assert errors_at(names_with(plural="Databases")) == ["metadata.name", "spec.names.plural"]


def test_singular_and_list_kind_default_from_the_kind():
    assert found(names_with(kind="Argo-App", plural="argo-apps")) == []
    assert found(names_with(kind="Db", plural="dbs", shortNames=["d"], categories=["data"])) == []


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda c: c["spec"].update(group="example"), "spec.group"),  # at least one dot
        (lambda c: c["spec"].update(group="Example.com"), "spec.group"),
        (lambda c: c["metadata"].update(name="database.example.com"), "metadata.name"),  # plural + "." + group
        (lambda c: c["metadata"].update(labels={"team": "data team"}), "metadata.labels.team"),  # ObjectMeta
        (lambda c: c["metadata"].update(annotations={"-note": "x"}), "metadata.annotations.-note"),
    ],
)
def test_group_and_name(change, path):
    assert path in errors_at(crd_with(change))


def test_a_protected_group_needs_the_api_approval_annotation():
    def protected(crd: dict[str, Any]) -> None:
        crd["spec"]["group"] = "example.k8s.io"
        crd["metadata"]["name"] = "databases.example.k8s.io"

    assert errors_at(crd_with(protected)) == ["metadata.annotations.api-approved.kubernetes.io"]

    def approved(crd: dict[str, Any]) -> None:
        protected(crd)
        crd["metadata"]["annotations"] = {"api-approved.kubernetes.io": "unapproved, experimental"}

    assert found(crd_with(approved)) == []


# --- versions (validateCustomResourceDefinitionSpec) ----------------------------------------------------------


def second_version(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def change(crd: dict[str, Any]) -> None:
        crd["spec"]["versions"].append({**copy.deepcopy(version(crd)), "storage": False, "name": "v2", **fields})

    return change


@pytest.mark.parametrize("name", ["v1.0", "V2", "1v", "v2_beta"])
def test_a_version_name_is_a_dns_1035_label(name):
    assert errors_at(crd_with(second_version(name=name))) == ["spec.versions.1.name"]


def test_version_names_are_unique():
    assert errors_at(crd_with(second_version(name="v1"))) == ["spec.versions.1.name"]


@pytest.mark.parametrize("storage", [0, 2])
def test_exactly_one_version_is_the_storage_version(storage):
    def change(crd: dict[str, Any]) -> None:
        second_version()(crd)
        for index, entry in enumerate(crd["spec"]["versions"]):
            entry["storage"] = index < storage

    assert found(crd_with(change)) == [
        ("spec.versions", f"must have exactly one version marked as storage version (found {storage})")
    ]


def test_no_served_version_is_valid_but_serves_no_request():
    crd = crd_with(lambda c: version(c).update(served=False))
    assert found(crd) == []
    assert found(crd, Severity.WARNING) == [
        ("spec.versions", "no version has served: true: the API accepts no request")
    ]


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"deprecationWarning": "use v1"}, "spec.versions.1.deprecationWarning"),  # only on deprecated versions
        ({"deprecated": True, "deprecationWarning": "x" * 257}, "spec.versions.1.deprecationWarning"),
        (
            {"additionalPrinterColumns": [{"name": "Size", "type": "enum", "jsonPath": ".spec.size"}]},
            "spec.versions.1.additionalPrinterColumns.0.type",
        ),
        (
            {"additionalPrinterColumns": [{"name": "Size", "type": "string", "jsonPath": "spec.size"}]},
            "spec.versions.1.additionalPrinterColumns.0.jsonPath",
        ),
        ({"selectableFields": [{"jsonPath": ".spec"}]}, "spec.versions.1.selectableFields.0.jsonPath"),  # not scalar
        ({"selectableFields": [{"jsonPath": ".spec.colour"}]}, "spec.versions.1.selectableFields.0.jsonPath"),
    ],
)
def test_version_fields_the_api_server_refuses(fields, path):
    assert errors_at(crd_with(second_version(**fields))) == [path]


def test_selectable_fields_and_printer_columns_the_api_server_accepts():
    crd = crd_with(
        second_version(
            deprecated=True,
            deprecationWarning="v2 is going away",
            selectableFields=[{"jsonPath": ".spec.size"}],
            additionalPrinterColumns=[{"name": "Size", "type": "string", "jsonPath": ".spec.size"}],
        )
    )
    assert found(crd) == []


def test_a_scale_subresource_is_dropped_by_kratix_with_a_warning():
    crd = crd_with(
        lambda c: version(c).update(
            subresources={"scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}}
        )
    )
    assert found(crd) == []
    assert [path for path, _ in found(crd, Severity.WARNING)] == ["spec.versions.0.subresources.scale"]


@pytest.mark.parametrize(
    ("conversion", "path"),
    [
        ({"strategy": "Magic"}, "spec.conversion.strategy"),
        (
            {"strategy": "None", "webhook": {"clientConfig": {"url": "https://convert.example.com"}}},
            "spec.conversion.webhook.clientConfig",
        ),
        (
            {
                "strategy": "Webhook",
                "webhook": {"clientConfig": {"url": "http://convert.example.com"}, "conversionReviewVersions": ["v1"]},
            },
            "spec.conversion.webhook.clientConfig.url",
        ),
        (
            {
                "strategy": "Webhook",
                "webhook": {
                    "clientConfig": {"service": {"name": "c", "namespace": "x"}},
                    "conversionReviewVersions": ["v2"],
                },
            },
            "spec.conversion.webhook.conversionReviewVersions",
        ),
    ],
)
def test_conversion_the_api_server_refuses(conversion, path):
    assert errors_at(crd_with(lambda c: c["spec"].update(conversion=conversion))) == [path]


def test_a_webhook_conversion_needs_a_client_and_review_versions():
    assert errors_at(crd_with(lambda c: c["spec"].update(conversion={"strategy": "Webhook"}))) == [
        "spec.conversion.webhook.clientConfig",
        "spec.conversion.webhook.conversionReviewVersions",
    ]


def test_preserve_unknown_fields_at_the_top_is_refused():
    assert errors_at(crd_with(lambda c: c["spec"].update(preserveUnknownFields=True))) == ["spec.preserveUnknownFields"]


# --- structural schemas (ValidateStructural, ValidateCustomResourceDefinitionOpenAPISchema) -------------------

SCHEMA = "spec.versions.0.schema.openAPIV3Schema"
SPEC = f"{SCHEMA}.properties.spec"


def schema_errors(change: Callable[[dict[str, Any]], Any]) -> list[str]:
    return [path.removeprefix(SCHEMA).lstrip(".") for path in errors_at(crd_with(change))]


def size(crd: dict[str, Any]) -> dict[str, Any]:
    return spec_schema(crd)["properties"]["size"]


@pytest.mark.parametrize(
    ("change", "paths"),
    [
        # junctors may only add value checks
        (lambda c: spec_schema(c).update(anyOf=[{"type": "object"}]), ["properties.spec.anyOf.0.type"]),
        (
            lambda c: spec_schema(c).update(allOf=[{"properties": {"size": {"default": "s"}}}]),
            ["properties.spec.allOf.0.properties.size.default"],
        ),
        (
            lambda c: spec_schema(c).update(oneOf=[{"description": "one"}, {"nullable": True}]),
            ["properties.spec.oneOf.0.description", "properties.spec.oneOf.1.nullable"],
        ),
        (
            lambda c: spec_schema(c).update({"not": {"x-kubernetes-validations": [{"rule": "true"}]}}),
            ["properties.spec.not.x-kubernetes-validations"],
        ),
        (
            lambda c: spec_schema(c).update(anyOf=[{"additionalProperties": {"type": "string"}}]),
            ["properties.spec.anyOf.0.additionalProperties"],
        ),
        # the root (where Kratix's status subresource also refuses junctors and additionalProperties: "")
        (lambda c: root(c).update(anyOf=[{"properties": {"colour": {"minLength": 1}}}]), ["", "properties.colour"]),
        (
            lambda c: root(c).update(additionalProperties={"type": "string"}),
            ["", "additionalProperties", "additionalProperties"],
        ),
        (lambda c: root(c).update(type="array", items={"type": "string"}), ["type"]),
        (
            lambda c: root(c)["properties"].update(
                metadata={"type": "object", "properties": {"labels": {"type": "object"}}}
            ),
            ["properties.metadata"],
        ),
        (
            lambda c: root(c)["properties"].update(metadata={"properties": {"name": {"type": "string"}}}),
            ["properties.metadata.type", "properties.metadata.type"],
        ),
        (
            lambda c: root(c)["properties"].update(kind={"type": "string", "default": "Database"}),
            ["properties.kind.default"],
        ),
        # every node of the structure has a type, unless it preserves unknown fields or is int-or-string
        (lambda c: spec_schema(c).pop("type"), ["properties.spec.type"]),
        (lambda c: size(c).update(type="array"), ["properties.spec.properties.size.items"]),
        (lambda c: size(c).update(type="null"), ["properties.spec.properties.size.type"]),
        # embedded resources
        (
            lambda c: size(c).update({"x-kubernetes-embedded-resource": True}),
            ["properties.spec.properties.size.properties", "properties.spec.properties.size.type"],
        ),
        # keywords a CRD may not use
        (
            lambda c: size(c).update(type="array", items={"type": "string"}, uniqueItems=True),
            ["properties.spec.properties.size.uniqueItems"],
        ),
        (lambda c: size(c).update({"$ref": "#/x"}), ["properties.spec.properties.size.$ref"]),
        (lambda c: spec_schema(c).update(additionalProperties=False), ["properties.spec.additionalProperties"]),
        (
            lambda c: size(c).update({"x-kubernetes-preserve-unknown-fields": False}),
            ["properties.spec.properties.size.x-kubernetes-preserve-unknown-fields"],
        ),
        (
            lambda c: size(c).update(
                {"x-kubernetes-int-or-string": True, "x-kubernetes-preserve-unknown-fields": True}
            ),
            ["properties.spec.properties.size.x-kubernetes-preserve-unknown-fields"],
        ),
    ],
)
def test_schemas_the_api_server_refuses(change, paths):
    assert schema_errors(change) == paths


def tags(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda c: spec_schema(c)["properties"].update(tags={"type": "array", **fields})


PORT = {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}, "required": ["name"]}


@pytest.mark.parametrize(
    ("change", "paths"),
    [
        (lambda c: size(c).update({"x-kubernetes-list-type": "set"}), ["type"]),
        (tags(items={"type": "string"}, **{"x-kubernetes-list-type": "bag"}), ["x-kubernetes-list-type"]),
        (tags(items={"type": "object"}, **{"x-kubernetes-list-type": "set"}), ["items.x-kubernetes-map-type"]),
        (tags(items={"type": "string", "nullable": True}, **{"x-kubernetes-list-type": "set"}), ["items.nullable"]),
        (tags(items={"type": "string"}, **{"x-kubernetes-list-map-keys": ["name"]}), ["x-kubernetes-list-type"]),
        (tags(items=PORT, **{"x-kubernetes-list-type": "map"}), ["x-kubernetes-list-map-keys"]),
        (
            tags(
                items={**PORT, "required": []},
                **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
            ),
            ["items.properties.name.default"],
        ),
        (
            tags(items=PORT, **{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["host"]}),
            ["x-kubernetes-list-map-keys"],
        ),
        (lambda c: size(c).update({"x-kubernetes-map-type": "atomic"}), ["type"]),
    ],
)
def test_list_and_map_types_the_api_server_refuses(change, paths):
    where = (
        "properties.spec.properties.size" if "size" in str(schema_errors(change)) else "properties.spec.properties.tags"
    )
    assert schema_errors(change) == [f"{where}.{path}" for path in paths]


@pytest.mark.parametrize(
    ("rule", "path"),
    [
        ({"rule": "self.size != ''", "message": "bad\nsize"}, "message"),
        ({"rule": "self.size != ''\n&& true"}, "message"),
        ({"rule": "self.size != ''", "messageExpression": "  "}, "messageExpression"),
        ({"rule": "self.size != ''", "reason": "FieldValueWrong"}, "reason"),
        ({"rule": "self.size != ''", "fieldPath": ".colour"}, "fieldPath"),
    ],
)
def test_validation_rule_fields_the_api_server_refuses(rule, path):
    def change(crd: dict[str, Any]) -> None:
        spec_schema(crd)["x-kubernetes-validations"] = [rule]

    assert schema_errors(change) == [f"properties.spec.x-kubernetes-validations.0.{path}"]


@pytest.mark.parametrize(
    ("field", "refused"),
    [
        ({"enum": [{}]}, "enum"),
        ({"minProperties": 1}, "minProperties"),
        (
            {"x-kubernetes-embedded-resource": True, "x-kubernetes-preserve-unknown-fields": True},
            "x-kubernetes-embedded-resource",
        ),
    ],
)
def test_kratix_enables_the_status_subresource_so_the_root_allows_fewer_fields(field, refused):
    crd = crd_with(lambda c: root(c).update(field))
    assert [(path, message.split(":")[0]) for path, message in found(crd) if "status subresource" in message] == [
        (SCHEMA, refused)
    ]


@pytest.mark.parametrize(
    "change",
    [
        lambda c: spec_schema(c).update(
            anyOf=[{"type": "integer"}, {"type": "string"}], **{"x-kubernetes-int-or-string": True}, type=None
        ),  # int-or-string spelt out
        lambda c: size(c).update(
            {
                "x-kubernetes-int-or-string": True,
                "type": None,
                "allOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}, {"minLength": 1}],
            }
        ),
        lambda c: spec_schema(c).pop("type") and spec_schema(c).update({"x-kubernetes-preserve-unknown-fields": True}),
        lambda c: spec_schema(c).update(additionalProperties=True),  # with properties: allowed when true
        lambda c: spec_schema(c).update(allOf=[{"properties": {"size": {"minLength": 1}}}]),
        lambda c: root(c)["properties"].update(
            metadata={"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}}}
        ),
        lambda c: spec_schema(c)["properties"].update(
            labels={"type": "object", "additionalProperties": {"type": "string", "default": 5}}
        ),  # defaults under additionalProperties are not checked
    ],
)
def test_schemas_the_api_server_accepts(change):
    def apply(crd: dict[str, Any]) -> None:
        change(crd)
        for node in (spec_schema(crd), size(crd)):
            if node.get("type", "") is None:
                del node["type"]

    assert found(crd_with(apply)) == []


def test_a_default_must_satisfy_its_nodes_cel_rules():
    crd = crd_with(
        lambda c: size(c).update(
            {"default": "tiny", "x-kubernetes-validations": [{"rule": "self != 'tiny'", "message": "too small"}]}
        )
    )
    assert found(crd) == [(f"{SPEC}.properties.size.default", "invalid default: too small")]
