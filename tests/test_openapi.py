"""The shared OpenAPI v3 -> JSON Schema translation, checked by what the result accepts and refuses."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from kratix.apiserver import openapi

REQUESTS = openapi.Reading(formats=frozenset({"date"}), int_ranges=True)
OUTPUT = openapi.Reading(null_fields=True, defaulted_optional=True)
PLAIN = openapi.Reading()


def accepts(raw: dict[str, Any], value: Any, reading: openapi.Reading = PLAIN) -> bool:
    return bool(jsonschema_rs.Draft7Validator(openapi.translate(raw, reading), validate_formats=True).is_valid(value))


def spec(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


@pytest.mark.parametrize("reading", [REQUESTS, OUTPUT])
def test_kubernetes_extensions_mean_the_same_in_every_reading(reading: openapi.Reading) -> None:
    raw = spec(
        port={"x-kubernetes-int-or-string": True},
        tags={"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
        replicas={"type": "integer", "maximum": 5, "exclusiveMaximum": True},
        backup={"type": "string", "nullable": True, "enum": ["daily"]},
    )
    assert accepts(raw, {"port": 80, "tags": ["a", "b"], "replicas": 4, "backup": None}, reading)
    assert accepts(raw, {"port": "http"}, reading)
    assert not accepts(raw, {"port": 1.5}, reading)
    assert not accepts(raw, {"tags": ["a", "a"]}, reading)
    assert not accepts(raw, {"replicas": 5}, reading)
    assert not accepts(raw, {"backup": "weekly"}, reading)


@pytest.mark.parametrize("reading", [REQUESTS, OUTPUT])
def test_objects_are_closed_unless_they_preserve_unknown_fields(reading: openapi.Reading) -> None:
    raw = spec(
        config={"type": "object"},
        values={"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        size={"type": "string"},
    )
    assert accepts(raw, {"config": {}, "values": {"any": {"thing": 1}}}, reading)
    assert not accepts(raw, {"sise": "small"}, reading)
    assert not accepts(raw, {"config": {"key": "value"}}, reading)  # no properties declared: nothing allowed


def test_junctor_branches_only_add_checks() -> None:
    raw = {
        **spec(a={"type": "string"}, b={"type": "string"}),
        "anyOf": [{"required": ["a"], "properties": {"a": {"minLength": 2}}}, {"required": ["b"]}],
    }
    assert accepts(raw, {"a": "xy", "b": "z"})
    assert not accepts(raw, {"a": "x"})
    assert not accepts(raw, {})


@pytest.mark.parametrize("reading", [REQUESTS, OUTPUT])
def test_an_embedded_resource_needs_api_version_and_kind(reading: openapi.Reading) -> None:
    raw = spec(
        manifest={
            "type": "object",
            "x-kubernetes-embedded-resource": True,
            "x-kubernetes-preserve-unknown-fields": True,
        }
    )
    assert accepts(raw, {"manifest": {"apiVersion": "v1", "kind": "ConfigMap", "data": {}}}, reading)
    for bad in ({"data": {}}, {"apiVersion": "v1", "kind": ""}, {"apiVersion": 1, "kind": "ConfigMap"}):
        assert not accepts(raw, {"manifest": bad}, reading)


def test_output_is_read_after_the_apiserver_dropped_nulls_and_filled_defaults() -> None:
    raw = {
        **spec(engine={"type": "string", "default": "postgres"}, size={"type": "string"}),
        "required": ["engine", "size"],
    }
    assert not accepts(raw, {"engine": "mysql"}, OUTPUT)  # size stays required...
    assert accepts(raw, {"size": "small"}, OUTPUT)  # ...engine has a default
    assert accepts(raw, {"size": "small", "engine": None}, OUTPUT)
    assert not accepts(raw, {"size": "small"}, REQUESTS)  # requests are checked after the stage's defaulting
    assert not accepts(raw, {"size": None, "engine": "x"}, REQUESTS)


def test_formats_and_integer_ranges_only_where_the_reading_asks() -> None:
    raw = spec(day={"type": "string", "format": "date"}, count={"type": "integer", "format": "int32"})
    assert not accepts(raw, {"day": "someday"}, REQUESTS)
    assert not accepts(raw, {"count": 2**31}, REQUESTS)
    assert accepts(raw, {"day": "someday", "count": 2**31}, OUTPUT)


def test_what_is_not_a_schema_is_skipped_not_raised_on() -> None:
    junk: dict[str, Any] = {
        "type": "thing",
        "properties": [],
        "items": 3,
        "required": "a",
        "enum": "x",
        "allOf": "y",
        "additionalProperties": "z",
        "patternProperties": {"a": {}},
    }
    translated = openapi.translate(junk, REQUESTS)
    assert "type" not in translated and "patternProperties" not in translated
    assert translated["items"] == {} and translated["additionalProperties"] == {}
