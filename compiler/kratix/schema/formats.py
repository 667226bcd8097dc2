"""String formats as Kubernetes reads them, and the draft-07 validator that checks them.

kube-openapi's `duration` is Go's `time.ParseDuration` (plus d and w), not ISO 8601; its `date-time` accepts a
few ISO 8601 relatives of RFC 3339. jsonschema-rs is handed these checks in place of its own.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import ipaddress
import re
from collections.abc import Mapping
from typing import Any

import jsonschema_rs

_DURATION = re.compile(r"[-+]?((\d+(\.\d*)?|\.\d+)\s*(ns|us|µs|μs|ms|s|m|h|d|w)\s*)+")
_DATETIME = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}):(\d{2})(:(\d{2})(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?")


def validator(json_schema: Mapping[str, Any]) -> Any:
    """A jsonschema_rs.Draft7Validator checking formats the Kubernetes way; raises on an invalid schema."""
    # `pattern` with the regex crate, not jsonschema-rs's default fancy-regex, which backtracks on look-around and
    # backreferences: linear-time matching, as RE2 (Go's regexp, the API server's) has it. Patterns RE2 refuses
    # are refused before a validator is built (kratix.schema.structure).
    return jsonschema_rs.Draft7Validator(
        dict(json_schema),
        validate_formats=True,
        ignore_unknown_formats=True,
        formats=dict(_FORMAT_CHECKS),
        pattern_options=jsonschema_rs.RegexOptions(),
    )


def _is_duration(text: str) -> bool:
    # Go's time.ParseDuration plus the d/w units kube-openapi also accepts, not ISO 8601.
    return text == "0" or _DURATION.fullmatch(text) is not None


def _is_datetime(text: str) -> bool:
    # kube-openapi accepts RFC 3339 and a few ISO 8601 relatives (no seconds, no zone, a space for the T).
    found = _DATETIME.fullmatch(text)
    if found is None:
        return False
    try:
        datetime.date.fromisoformat(found.group(1))
    except ValueError:
        return False
    return int(found.group(2)) < 24 and int(found.group(3)) < 60 and int(found.group(5) or 0) < 61


def _is_byte(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


def _is_mac(text: str) -> bool:
    return re.fullmatch(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}", text) is not None


_FORMAT_CHECKS = {
    "duration": _is_duration,
    "date-time": _is_datetime,
    "datetime": _is_datetime,
    "byte": _is_byte,
    "cidr": _is_cidr,
    "mac": _is_mac,
}
# Formats checked on requests: the API server's meaning where it differs from JSON Schema's.
FORMATS = frozenset({*_FORMAT_CHECKS, "date", "email", "hostname", "ipv4", "ipv6", "uuid"})
# Formats an editor reads the way Kubernetes does (`duration` would mean ISO 8601 there).
EDITOR_FORMATS = frozenset({"date", "email", "hostname", "ipv4", "ipv6", "uuid"})
