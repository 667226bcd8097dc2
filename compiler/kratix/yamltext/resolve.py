"""What a scalar means to Kubernetes: go-yaml v2's resolution (sigs.k8s.io/yaml, kubectl's and the API server's
YAML reader), then the JSON round trip every object makes on its way to the API server.

In: a scalar's text and its tag (none for a plain scalar, `str` for a quoted one, or an explicit `!!tag`). Out:
a `str`, `bool`, `None`, `int` (within int64) or finite `float` — exactly what the API server ends up holding —
or a `ScalarProblem` saying why Kubernetes would refuse it. Mapping keys become strings the way sigs.k8s.io/yaml
turns them into JSON object keys (`1:` is "1", `yes:` is "true", `1.5:` is "1.5"; a null key is refused).

Where this differs from PyYAML (YAML 1.1 as PyYAML reads it), on purpose, because Kubernetes differs:
`y`/`n` are booleans; `1e3` and `08` are numbers; sexagesimal `1:30` is a string; timestamps stay strings; a
number with an integral value is an integer (`1.0` is 1: JSON has one number type, and the API server reads
`1` back as an integer); `.nan` and `.inf` are refused (JSON cannot carry them).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct
from dataclasses import dataclass
from typing import Any

STR = "tag:yaml.org,2002:str"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
BOOL = "tag:yaml.org,2002:bool"
NULL = "tag:yaml.org,2002:null"
BINARY = "tag:yaml.org,2002:binary"
TIMESTAMP = "tag:yaml.org,2002:timestamp"
MAP = "tag:yaml.org,2002:map"
SEQ = "tag:yaml.org,2002:seq"
# The tag our loader gives a plain scalar with no tag of its own: resolution is this module's job, not PyYAML's.
PLAIN = "tag:kratix.io,2024:plain"
SCALAR_TAGS = frozenset({STR, INT, FLOAT, BOOL, NULL, BINARY, TIMESTAMP, PLAIN})

_INT64 = (-(2**63), 2**63 - 1)
_UINT64_MAX = 2**64 - 1
_FLOAT32_MAX = 3.4028234663852886e38


@dataclass(frozen=True)
class ScalarProblem:
    message: str


_TABLE: dict[str, Any] = {}
for _value, _words in (
    (True, "y Y yes Yes YES true True TRUE on On ON"),
    (False, "n N no No NO false False FALSE off Off OFF"),
    (None, "~ null Null NULL"),
    (math.nan, ".nan .NaN .NAN"),
    (math.inf, ".inf .Inf .INF +.inf +.Inf +.INF"),
    (-math.inf, "-.inf -.Inf -.INF"),
):
    for _word in _words.split():
        _TABLE[_word] = _value
_TABLE[""] = None
_MISSING = object()
_MAP_HINTS = frozenset("yYnNtTfFoO~")
_NUMBER_HINTS = frozenset("+-0123456789")
_YAML_STYLE_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_DOT_FLOAT = re.compile(r"\.[0-9]+(?:[eE][-+]?[0-9]+)?")
_GO_INT = re.compile(r"([-+]?)(0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+|0[0-7]*|[1-9][0-9]*)")


def go_value(text: str) -> Any:
    """go-yaml v2's value for a plain scalar into `interface{}`: bool, None, int, float (maybe inf/nan) or str."""
    if not text:
        return None
    hint = text[0]
    if hint in _MAP_HINTS or hint in _NUMBER_HINTS or hint == ".":
        found = _TABLE.get(text, _MISSING)
        if found is not _MISSING:
            return found
    if hint == ".":
        return float(text) if _DOT_FLOAT.fullmatch(text) else text
    if hint not in _NUMBER_HINTS:
        return text
    plain = text.replace("_", "")
    number = _go_int(plain)
    if number is not None:
        return number
    if _YAML_STYLE_FLOAT.fullmatch(plain):
        value = float(plain)
        return value if math.isfinite(value) else text  # Go's ParseFloat fails on overflow: a string then
    return text


def _go_int(text: str) -> int | None:
    """`strconv.ParseInt(text, 0, 64)`, else `ParseUint(text, 0, 64)`; None when neither parses."""
    match = _GO_INT.fullmatch(text)
    if match is None:
        return None
    sign, digits = match.groups()
    if len(digits) > 1 and digits[0] == "0":
        base = {"x": 16, "b": 2, "o": 8}.get(digits[1].lower(), 8)
        body = digits[2:] if base != 8 or digits[1] in "oO" else digits[1:]
        value = int(body, base)
    else:
        value = int(digits)
    value = -value if sign == "-" else value
    if _INT64[0] <= value <= _INT64[1] or (not sign and value <= _UINT64_MAX):
        return value
    return None


def tagged_value(tag: str, text: str) -> Any:
    """go-yaml v2's value of a scalar with an explicit standard tag (`!!int "7"`), or a ScalarProblem."""
    if tag == STR:
        return text
    if tag == BINARY:
        try:
            return base64.b64encode(base64.b64decode("".join(text.split()), validate=True)).decode("ascii")
        except (binascii.Error, ValueError):
            return ScalarProblem(f"!!binary value {_short(text)} is not base64")
    if tag == TIMESTAMP:
        return text  # into interface{}, go-yaml v2 keeps a timestamp's text
    value = go_value(text)
    if tag == NULL and value is None:
        return None
    if tag == BOOL and isinstance(value, bool):
        return value
    if tag == INT and type(value) is int:
        return value
    if tag == FLOAT and type(value) in (int, float):
        return float(value)
    return ScalarProblem(f"cannot read {_short(text)} as {tag.rsplit(':', 1)[1]}")


def json_value(value: Any) -> Any:
    """What the API server holds after the JSON round trip, or a ScalarProblem: integral numbers are integers,
    numbers beyond int64 are floats, NaN and infinities are refused."""
    kind = type(value)
    if kind is int:
        return value if _INT64[0] <= value <= _INT64[1] else float(value)
    if kind is float:
        if not math.isfinite(value):
            return ScalarProblem(
                f"{_float_name(value)} is not a number JSON can carry; Kubernetes refuses it "
                "(quote it to mean the text)"
            )
        if value.is_integer() and -9.2e18 < value < 9.2e18:
            return int(value)
    return value


def key_text(value: Any) -> str | ScalarProblem:
    """The JSON object key sigs.k8s.io/yaml makes of a mapping key go-yaml read as `value`."""
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        if value > _INT64[1]:
            return ScalarProblem(f"unsupported map key {value} (beyond int64): quote it")
        return str(value)
    if kind is float:
        return _go_float32_g(value)
    return ScalarProblem("a null mapping key is not supported by Kubernetes: quote it or remove it")


def _go_float32_g(value: float) -> str:
    """`strconv.FormatFloat(value, 'g', -1, 32)` with go-yaml's names for infinities and NaN."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value) or abs(value) > _FLOAT32_MAX:
        return ".inf" if value > 0 else "-.inf"
    single = struct.unpack("f", struct.pack("f", value))[0]
    if single == 0:
        return "-0" if math.copysign(1, single) < 0 else "0"
    for precision in range(1, 10):  # the shortest decimal that reads back as the same float32
        text = f"{single:.{precision - 1}e}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == single:
            break
    mantissa, exponent_text = text.split("e")
    negative = mantissa.startswith("-")
    digits = mantissa.lstrip("-").replace(".", "").rstrip("0") or "0"
    exponent = int(exponent_text)
    sign = "-" if negative else ""
    if exponent < -4 or exponent >= 6:  # Go's %e choice for the shortest form
        fraction = f".{digits[1:]}" if len(digits) > 1 else ""
        return f"{sign}{digits[0]}{fraction}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if exponent < 0:
        return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
    whole, fraction = digits[: exponent + 1].ljust(exponent + 1, "0"), digits[exponent + 1 :]
    return f"{sign}{whole}" + (f".{fraction}" if fraction else "")


def _float_name(value: float) -> str:
    return ".nan" if math.isnan(value) else ".inf" if value > 0 else "-.inf"


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")
