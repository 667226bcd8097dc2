"""The schema stage: CRD checks, defaulting, validation and CEL rules, on literal CRDs and requests."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import jsonschema_rs
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kratix import schema
from kratix.model.diagnostics import Severity

DATABASE = yaml.safe_load("""
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
            default: {}
            properties:
              size: {type: string, enum: [small, medium, large], default: small}
              replicas: {type: integer, minimum: 1, maximum: 9, default: 1}
              backup:
                type: object
                default: {}
                properties:
                  enabled: {type: boolean, default: true}
                  schedule: {type: string, default: "0 3 * * *"}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
""")


def make_crd(spec_schema: dict[str, Any], **changes: Any) -> dict[str, Any]:
    crd = copy.deepcopy(DATABASE)
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] = spec_schema
    crd["spec"].update(changes)
    return crd


def compile_spec(spec_schema: dict[str, Any]) -> schema.RequestSchema:
    crd = make_crd(spec_schema)
    assert codes(crd) == []
    return schema.compile_request_schema(crd)


def request(spec: Any = None, *, name: str = "db", **top: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": "example.com/v1", "kind": "Database", "metadata": {"name": name}}
    if spec is not None:
        body["spec"] = spec
    body.update(top)
    return body


def validate(compiled: schema.RequestSchema, body: dict[str, Any]) -> tuple[dict[str, Any], list[tuple]]:
    result, violations = schema.validate_request(compiled, body)
    return result, [(schema_path(v.path), v.code, v.message) for v in violations]


def schema_path(path: tuple) -> str:
    return ".".join(str(part) for part in path)


def obj(properties: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, **more}


@pytest.fixture(scope="module")
def database() -> schema.RequestSchema:
    return schema.compile_request_schema(DATABASE)


# ------------------------------------------------------------------------------------------- defaults


def test_a_valid_request_comes_back_with_its_defaults(database):
    result, problems = validate(database, request({"size": "large"}))
    assert problems == []
    assert result == request({"size": "large", "replicas": 1, "backup": {"enabled": True, "schedule": "0 3 * * *"}})


def test_an_absent_defaulted_object_gets_its_childrens_defaults(database):
    result, problems = validate(database, request())
    assert problems == []
    backup = {"enabled": True, "schedule": "0 3 * * *"}
    assert result["spec"] == {"size": "small", "replicas": 1, "backup": backup}


def test_a_present_object_gets_defaults_for_its_missing_fields_only(database):
    result, _ = validate(database, request({"backup": {"enabled": False}}))
    assert result["spec"]["backup"] == {"enabled": False, "schedule": "0 3 * * *"}


def test_defaults_apply_inside_array_items_and_map_values():
    member = obj({"name": {"type": "string"}, "role": {"type": "string", "default": "reader"}})
    compiled = compile_spec(
        obj(
            {
                "users": {"type": "array", "items": member},
                "quotas": {"type": "object", "additionalProperties": obj({"cpu": {"type": "string", "default": "1"}})},
            }
        )
    )
    users = [{"name": "ann"}, {"name": "bob", "role": "admin"}]
    result, problems = validate(compiled, request({"users": users, "quotas": {"team-a": {}, "team-b": {"cpu": "4"}}}))
    assert problems == []
    assert result["spec"]["users"] == [{"name": "ann", "role": "reader"}, {"name": "bob", "role": "admin"}]
    assert result["spec"]["quotas"] == {"team-a": {"cpu": "1"}, "team-b": {"cpu": "4"}}


def test_defaulting_is_checked_against_the_schema_after_applying(database):
    # A default is applied before validation: a defaulted field that is then valid raises nothing.
    compiled = compile_spec(
        obj({"tier": {"type": "string", "default": "gold", "enum": ["gold", "silver"]}}, required=["tier"])
    )
    result, problems = validate(compiled, request({}))
    assert (result["spec"], problems) == ({"tier": "gold"}, [])


# -------------------------------------------------------------------------------------------- nulls


def test_a_null_for_a_non_nullable_field_takes_the_default(database):
    result, problems = validate(database, request({"size": None}))
    assert (result["spec"]["size"], problems) == ("small", [])


def test_a_null_without_a_default_is_dropped_like_the_api_server_does():
    compiled = compile_spec(obj({"owner": {"type": "string"}}))
    result, problems = validate(compiled, request({"owner": None}))
    assert (result["spec"], problems) == ({}, [])


def test_a_null_for_a_required_field_is_reported_missing():
    compiled = compile_spec(obj({"owner": {"type": "string"}}, required=["owner"]))
    _, problems = validate(compiled, request({"owner": None}))
    assert problems == [("spec.owner", "schema.required", "required field missing")]


def test_a_nullable_field_keeps_its_null_and_no_default():
    compiled = compile_spec(obj({"note": {"type": "string", "nullable": True, "default": "x", "enum": ["x", "y"]}}))
    result, problems = validate(compiled, request({"note": None}))
    assert (result["spec"], problems) == ({"note": None}, [])


# ------------------------------------------------------------------------------------------ values


def test_enum(database):
    _, problems = validate(database, request({"size": "huge"}))
    assert problems == [("spec.size", "schema.enum", 'must be one of: small, medium, large (got "huge")')]


def test_pattern():
    compiled = compile_spec(obj({"bucket": {"type": "string", "pattern": "^[a-z]+$"}}))
    assert validate(compiled, request({"bucket": "abc"}))[1] == []
    assert validate(compiled, request({"bucket": "ABC"}))[1] == [
        ("spec.bucket", "schema.pattern", 'must match ^[a-z]+$ (got "ABC")')
    ]


@pytest.mark.parametrize(
    ("replicas", "expected"),
    [
        (0, [("spec.replicas", "schema.minimum", "must be >= 1 (got 0)")]),
        (10, [("spec.replicas", "schema.maximum", "must be <= 9 (got 10)")]),
        (1, []),
        (9, []),
        ("3", [("spec.replicas", "schema.type", "must be integer (got string)")]),
        (True, [("spec.replicas", "schema.type", "must be integer (got boolean)")]),
    ],
)
def test_minimum_and_maximum(database, replicas, expected):
    assert validate(database, request({"replicas": replicas}))[1] == expected


def test_openapi_boolean_exclusive_bounds():
    compiled = compile_spec(
        obj(
            {
                "ratio": {
                    "type": "number",
                    "minimum": 0,
                    "exclusiveMinimum": True,
                    "maximum": 1,
                    "exclusiveMaximum": True,
                }
            }
        )
    )
    assert validate(compiled, request({"ratio": 0.5}))[1] == []
    assert validate(compiled, request({"ratio": 0}))[1] == [("spec.ratio", "schema.minimum", "must be > 0 (got 0)")]
    assert validate(compiled, request({"ratio": 1}))[1] == [("spec.ratio", "schema.maximum", "must be < 1 (got 1)")]


def test_string_and_array_lengths():
    compiled = compile_spec(
        obj(
            {
                "code": {"type": "string", "minLength": 2, "maxLength": 3},
                "zones": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            }
        )
    )
    assert validate(compiled, request({"code": "abcd", "zones": []}))[1] == [
        ("spec.code", "schema.max-length", "must be at most 3 characters long (got 4)"),
        ("spec.zones", "schema.min-items", "must have at least 1 items (got 0)"),
    ]


def test_required_field_missing_points_at_the_field():
    compiled = compile_spec(obj({"owner": {"type": "string"}, "team": {"type": "string"}}, required=["owner", "team"]))
    assert validate(compiled, request({"team": "a"}))[1] == [
        ("spec.owner", "schema.required", "required field missing")
    ]


def test_unknown_fields_are_errors_with_a_suggestion(database):
    _, problems = validate(database, request({"sise": "large", "backup": {"enabeld": True}}, extra=1))
    assert problems == [
        ("extra", "schema.unknown-field", 'unknown field "extra"'),
        ("spec.backup.enabeld", "schema.unknown-field", 'unknown field "enabeld" (did you mean "enabled"?)'),
        ("spec.sise", "schema.unknown-field", 'unknown field "sise" (did you mean "size"?)'),
    ]


def test_int_or_string():
    compiled = compile_spec(obj({"port": {"x-kubernetes-int-or-string": True}}))
    assert validate(compiled, request({"port": 8080}))[1] == []
    assert validate(compiled, request({"port": "http"}))[1] == []
    assert validate(compiled, request({"port": [1]}))[1] == [
        ("spec.port", "schema.type", "must be integer or string (got array)")
    ]


def test_preserve_unknown_fields_accepts_anything_below():
    compiled = compile_spec(obj({"values": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}))
    body = request({"values": {"anything": {"nested": [1, "two", None]}}})
    result, problems = validate(compiled, body)
    assert (result["spec"], problems) == (body["spec"], [])


def test_embedded_resource_needs_api_version_and_kind():
    compiled = compile_spec(
        obj(
            {
                "manifest": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "x-kubernetes-preserve-unknown-fields": True,
                }
            }
        )
    )
    good = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}}
    assert validate(compiled, request({"manifest": good}))[1] == []
    assert validate(compiled, request({"manifest": {"data": {}}}))[1] == [
        ("spec.manifest.apiVersion", "schema.required", "required field missing"),
        ("spec.manifest.kind", "schema.required", "required field missing"),
    ]


def test_formats_follow_kubernetes():
    compiled = compile_spec(
        obj(
            {
                "every": {"type": "string", "format": "duration"},
                "at": {"type": "string", "format": "date-time"},
                "count": {"type": "integer", "format": "int32"},
            }
        )
    )
    assert validate(compiled, request({"every": "1h30m", "at": "2024-05-01T10:00:00Z", "count": 5}))[1] == []
    _, problems = validate(compiled, request({"every": "P1D", "at": "May 1st", "count": 2**31}))
    assert [p[:2] for p in problems] == [
        ("spec.at", "schema.format"),
        ("spec.count", "schema.maximum"),
        ("spec.every", "schema.format"),
    ]


def test_yaml_timestamps_are_strings_as_in_kubernetes():
    compiled = compile_spec(obj({"since": {"type": "string", "format": "date"}}))
    result, problems = validate(compiled, request({"since": datetime.date(2024, 1, 31)}))
    assert (result["spec"], problems) == ({"since": "2024-01-31"}, [])


def test_list_type_set_and_map_reject_duplicates():
    compiled = compile_spec(
        obj(
            {
                "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                "ports": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": obj({"name": {"type": "string"}, "port": {"type": "integer"}}, required=["name"]),
                },
            }
        )
    )
    _, problems = validate(
        compiled, request({"tags": ["a", "a"], "ports": [{"name": "http", "port": 80}, {"name": "http", "port": 8080}]})
    )
    assert problems == [
        ("spec.ports.1", "schema.duplicate", 'duplicate entry with name="http"'),
        ("spec.tags", "schema.unique", "must not contain duplicate items"),
    ]


def test_every_problem_at_once_sorted_by_path(database):
    _, problems = validate(
        database, request({"size": "huge", "replicas": 0, "backup": {"enabled": "yes"}}, name="Bad_Name")
    )
    assert [p[0] for p in problems] == ["metadata.name", "spec.backup.enabled", "spec.replicas", "spec.size"]


# ---------------------------------------------------------------------------------------- envelope


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("a" * 63, True),
        ("a" * 64, False),
        ("db-1", True),
        ("Db", False),
        ("db_1", False),
        ("-db", False),
        ("db-", False),
        ("1db", True),
        ("db.a", False),
    ],
)
def test_name_must_be_a_dns_label_of_at_most_63(database, name, ok):
    problems = validate(database, request(name=name))[1]
    assert (problems == []) is ok
    assert all(code == "schema.name" for _, code, _ in problems)


def test_name_is_required(database):
    body = request()
    del body["metadata"]["name"]
    assert validate(database, body)[1] == [("metadata.name", "schema.name", "required field missing")]


def test_api_version_and_kind_must_match_the_crd(database):
    assert validate(database, request(apiVersion="example.com/v2", kind="Db"))[1] == [
        ("apiVersion", "schema.api-version", '"example.com/v2" is not a version of this API; served: example.com/v1'),
        ("kind", "schema.kind", 'must be Database (got "Db")'),
    ]


def test_labels_must_be_strings(database):
    body = request()
    body["metadata"]["labels"] = {"team": "a", "tier": 1}
    assert validate(database, body)[1] == [
        ("metadata.labels.tier", "schema.labels", "must be a string, not int (quote it)")
    ]


def test_status_in_a_request_is_ignored_with_a_warning(database):
    result, violations = schema.validate_request(database, request(status={"message": "hand-written"}))
    assert "status" not in result
    assert [(v.path, v.code, v.severity) for v in violations] == [
        (("status",), "schema.status-ignored", Severity.WARNING)
    ]


def test_the_storage_version_is_the_request_schema():
    crd = copy.deepcopy(DATABASE)
    old = copy.deepcopy(crd["spec"]["versions"][0])
    old.update(name="v1alpha1", storage=False)
    crd["spec"]["versions"].insert(0, old)
    assert schema.compile_request_schema(crd).api_version == "example.com/v1"


# --------------------------------------------------------------------------------------------- CEL


def rule_schema(*rules: dict[str, Any], **properties: Any) -> dict[str, Any]:
    props = properties or {"min": {"type": "integer"}, "max": {"type": "integer"}}
    return obj(props, **{"x-kubernetes-validations": list(rules)})


def test_cel_rule_with_its_message():
    compiled = compile_spec(rule_schema({"rule": "self.min <= self.max", "message": "min exceeds max"}))
    assert validate(compiled, request({"min": 1, "max": 2}))[1] == []
    assert validate(compiled, request({"min": 3, "max": 2}))[1] == [("spec", "schema.cel", "min exceeds max")]


def test_cel_rule_without_a_message_names_the_rule():
    compiled = compile_spec(rule_schema({"rule": "self.min <= self.max"}))
    assert validate(compiled, request({"min": 3, "max": 2}))[1] == [
        ("spec", "schema.cel", "failed rule: self.min <= self.max")
    ]


def test_cel_message_expression_may_read_fields_the_rule_does_not():
    compiled = compile_spec(
        rule_schema(
            {
                "rule": "self.min <= self.max",
                "message": "fallback",
                "messageExpression": "self.unit + ': min exceeds max'",
            },
            min={"type": "integer"},
            max={"type": "integer"},
            unit={"type": "string", "default": "GiB", "maxLength": 8},
        )
    )
    assert validate(compiled, request({"min": 3, "max": 2}))[1] == [("spec", "schema.cel", "GiB: min exceeds max")]


def test_cel_message_expression_that_fails_falls_back_to_the_message():
    compiled = compile_spec(
        rule_schema({"rule": "self.min <= self.max", "message": "fallback", "messageExpression": "self.nothing + 'x'"})
    )
    assert validate(compiled, request({"min": 3, "max": 2}))[1] == [("spec", "schema.cel", "fallback")]


@pytest.mark.parametrize(("spec", "holds"), [({}, True), ({"min": 1}, False), ({"min": 1, "max": 1}, True)])
def test_cel_has_sees_exactly_the_fields_present(spec, holds):
    compiled = compile_spec(rule_schema({"rule": "has(self.min) == has(self.max)"}))
    assert (validate(compiled, request(spec))[1] == []) is holds


def test_cel_runs_after_defaulting_with_has_size_and_macros():
    items = {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 16, "default": ["a"]}
    compiled = compile_spec(
        rule_schema(
            {
                "rule": "has(self.zones) && size(self.zones) > 0 && self.zones.all(z, z.matches('^[a-z]$'))",
                "message": "zones must be single letters",
                "fieldPath": ".zones",
            },
            zones=items,
        )
    )
    assert validate(compiled, request({}))[1] == []
    assert validate(compiled, request({"zones": ["a", "bb"]}))[1] == [
        ("spec.zones", "schema.cel", "zones must be single letters")
    ]


def test_cel_rules_on_array_items_report_each_item():
    item = rule_schema({"rule": "self.min <= self.max", "message": "bad range"})
    compiled = compile_spec(obj({"ranges": {"type": "array", "items": item}}))
    _, problems = validate(compiled, request({"ranges": [{"min": 1, "max": 2}, {"min": 5, "max": 2}]}))
    assert problems == [("spec.ranges.1", "schema.cel", "bad range")]


def test_a_cel_rule_that_cannot_evaluate_is_a_violation():
    compiled = compile_spec(rule_schema({"rule": "self.min <= self.max"}))
    assert validate(compiled, request({"min": 1}))[1] == [
        ("spec", "schema.cel", "rule 'self.min <= self.max' could not be evaluated: no such key: max")
    ]


def test_a_cel_error_explained_by_a_type_error_is_not_repeated():
    compiled = compile_spec(rule_schema({"rule": "self.min <= self.max"}))
    assert validate(compiled, request({"min": "one", "max": 2}))[1] == [
        ("spec.min", "schema.type", "must be integer (got string)")
    ]


def test_cel_extension_functions_and_escaped_names():
    lowercase = "self.team__dash__name.lowerAscii() == self.team__dash__name"
    compiled = compile_spec(rule_schema({"rule": lowercase}, **{"team-name": {"type": "string"}}))
    assert validate(compiled, request({"team-name": "ops"}))[1] == []
    assert [p[1] for p in validate(compiled, request({"team-name": "Ops"}))[1]] == ["schema.cel"]


def test_cel_namespaced_extension_functions():
    compiled = compile_spec(
        rule_schema(
            {"rule": "sets.contains(['a', 'b'], self.tags) && math.greatest([1, 2]) == 2"},
            tags={"type": "array", "maxItems": 4, "items": {"type": "string", "maxLength": 8}},
        )
    )
    assert validate(compiled, request({"tags": ["a"]}))[1] == []
    assert [p[1] for p in validate(compiled, request({"tags": ["c"]}))[1]] == ["schema.cel"]


def test_transition_rules_are_skipped_and_reported_once_as_info():
    crd = make_crd(rule_schema({"rule": "self.min == oldSelf.min", "message": "min is immutable"}))
    assert [(v.code, v.severity) for v in schema.check_crd(crd)] == [("crd.cel-transition", Severity.INFO)]
    assert validate(schema.compile_request_schema(crd), request({"min": 1, "max": 2}))[1] == []


def test_unsupported_cel_functions_are_a_warning_and_skipped():
    crd = make_crd(rule_schema({"rule": "quantity(self.size).isGreaterThan(quantity('1Gi'))"}, size={"type": "string"}))
    assert [(v.code, v.severity) for v in schema.check_crd(crd)] == [("crd.cel-unsupported", Severity.WARNING)]
    assert validate(schema.compile_request_schema(crd), request({"size": "1Mi"}))[1] == []


def test_a_cel_syntax_error_is_a_crd_error():
    crd = make_crd(rule_schema({"rule": "self.min <="}))
    [problem] = schema.check_crd(crd)
    assert (problem.code, problem.severity, problem.path[-2:]) == (
        "crd.cel",
        Severity.ERROR,
        ("x-kubernetes-validations", 0),
    )


# -------------------------------------------------------------------------------------- bad CRDs


def codes(crd: object) -> list[str]:
    return [v.code for v in schema.check_crd(crd) if v.severity is Severity.ERROR]


def test_a_good_crd_has_no_problems():
    assert schema.check_crd(DATABASE) == []


def test_a_cluster_scoped_crd_is_refused():
    [problem] = schema.check_crd(
        make_crd(DATABASE["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"], scope="Cluster")
    )
    assert (problem.path, problem.code, problem.message) == (
        ("spec", "scope"),
        "crd.not-namespaced",
        'must be Namespaced (got "Cluster"): requests live in a namespace, and Kratix refuses other APIs',
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda crd: crd["spec"].pop("group"), ["crd.name", "crd.group"]),
        (lambda crd: crd["spec"]["names"].pop("kind"), ["crd.names", "crd.names", "crd.names"]),  # and its defaults
        (lambda crd: crd["spec"]["names"].pop("plural"), ["crd.name", "crd.names"]),
        (lambda crd: crd["metadata"].update(name="dbs.example.com"), ["crd.name"]),
        (lambda crd: crd["spec"].pop("scope"), ["crd.scope"]),
        (lambda crd: crd["spec"].update(scope="Cluster"), ["crd.not-namespaced"]),
        (lambda crd: crd["spec"].update(versions=[]), ["crd.storage-version"]),
        (
            lambda crd: crd["spec"]["versions"].append({**crd["spec"]["versions"][0], "name": "v2"}),
            ["crd.storage-version"],
        ),
        (lambda crd: crd["spec"]["versions"][0].pop("schema"), ["crd.schema"]),
    ],
)
def test_bad_crds(change, expected):
    crd = copy.deepcopy(DATABASE)
    change(crd)
    assert codes(crd) == expected


def test_a_crd_that_is_not_a_mapping():
    assert codes(["not", "a", "crd"]) == ["crd.not-a-mapping"]


@pytest.mark.parametrize(
    ("spec_schema", "expected"),
    [
        ({"properties": {"a": {"type": "string"}}}, ["crd.schema"]),  # no type: not structural
        (obj({"a": {"type": "text"}}), ["crd.schema"]),
        (obj({"a": {"type": "array"}}), ["crd.schema"]),  # no items
        (obj({"a": {"type": "string", "pattern": "(unclosed"}}), ["crd.pattern"]),
        (obj({"a": {"type": "integer", "minimum": 1, "default": 0}}), ["crd.default"]),
        (obj({"a": {"$ref": "#/definitions/x"}}), ["crd.schema", "crd.schema"]),
    ],
)
def test_invalid_schemas(spec_schema, expected):
    assert codes(make_crd(spec_schema)) == expected


def test_a_default_is_checked_as_written_not_after_its_own_nested_defaults():
    # apiextensions' ValidateDefaults validates each default as written: the API server would refuse `default: {}`
    # for an object whose required field only has a default of its own.
    nested = obj({"level": {"type": "string", "default": "info"}}, required=["level"], default={})
    problems = [(v.path[-1], v.code, v.message) for v in schema.check_crd(make_crd(obj({"logging": nested})))]
    assert problems == [("default", "crd.default", "invalid default: level: required field missing")]
    nested["default"] = {"level": "debug"}
    assert codes(make_crd(obj({"logging": nested}))) == []


# -------------------------------------------------------------------------------------- editor schema


def test_the_editor_schema_describes_a_whole_request_file(database):
    editor = schema.editor_json_schema(database)
    assert editor["$schema"] == "http://json-schema.org/draft-07/schema#"
    validator = jsonschema_rs.Draft7Validator(editor)
    assert validator.is_valid(request({"size": "small"}))
    for bad in (
        request({"size": "huge"}),
        request(name="A" * 70),
        request(kind="Other"),
        {"apiVersion": "example.com/v1", "kind": "Database", "metadata": {}},
    ):
        assert not validator.is_valid(bad)
    assert editor["properties"]["spec"]["properties"]["size"]["default"] == "small"


# -------------------------------------------------------------------------------------- properties

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 20) | st.sampled_from(["small", "huge", "", "x"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["size", "replicas", "backup", "enabled", "schedule", "sise"]), children, max_size=4
        )
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(spec=json_values)
def test_validation_never_mutates_its_input_and_defaulting_is_idempotent(database, spec):
    body = request(spec)
    before = copy.deepcopy(body)
    result, _ = schema.validate_request(database, body)
    assert body == before
    assert schema.validate_request(database, result)[0] == result


schema_words = st.sampled_from(
    [
        "type",
        "properties",
        "items",
        "default",
        "nullable",
        "enum",
        "required",
        "additionalProperties",
        "x-kubernetes-int-or-string",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-validations",
        "rule",
        "pattern",
        "minimum",
        "format",
        "anyOf",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "a",
    ]
)
schema_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from(["object", "string", "array", "integer", "self.a > 1", "int32", "map", "set", "("])
)
schema_like = st.recursive(
    schema_leaves,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(schema_words, children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(spec_schema=schema_like, spec=json_values)
def test_any_crd_is_reported_on_and_an_accepted_one_compiles(spec_schema, spec):
    crd = make_crd(spec_schema)
    if codes(crd):  # check_crd never raises: whatever is wrong is a violation
        return
    compiled = schema.compile_request_schema(crd)
    result, _ = schema.validate_request(compiled, request(spec))
    assert schema.validate_request(compiled, result)[0] == result
