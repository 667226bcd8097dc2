"""The text of one scalar on output: which strings may stand bare, how the others are quoted.

In: a str or a float. Out: its YAML text, plain where no YAML 1.1 (go-yaml, what Kubernetes uses) or YAML 1.2
parser could read it as another type, single-quoted where libyaml prints every character verbatim, else
double-quoted with escapes; a multi-line string as a literal block only when `block_ok` says the block holds it
exactly. Refuses nothing: any str gets some quoting; the emitter decides what it cannot write at all.
"""

from __future__ import annotations

import functools
import json
import re

# A plain scalar is emitted only when it matches this allow-list: printable, no `#`, no flow indicators, a `:`
# only when another non-space character follows, single words separated by spaces. The first character and the
# reserved/number-like checks below are applied on top.
_PLAIN_WORD = r"(?:[!-\"$-9;-Z\\^-z|~\u00a1-\ufffd]|:(?=[!-\"$-Z\\^-z|~\u00a1-\ufffd]))+"
# The same for ASCII text, where the classes' Unicode ranges match nothing anyway: compiled in 0.3 ms, where the
# Unicode classes take about 10 ms, more than a one-request compile spends emitting.
_PLAIN_ASCII_WORD = r"(?:[!-\"$-9;-Z\\^-z|~]|:(?=[!-\"$-Z\\^-z|~]))+"
_PLAIN_ASCII = re.compile(rf"{_PLAIN_ASCII_WORD}(?: +{_PLAIN_ASCII_WORD})*")


@functools.cache
def _plain() -> re.Pattern[str]:
    return re.compile(rf"{_PLAIN_WORD}(?: +{_PLAIN_WORD})*")  # compiled when text that is not ASCII comes


# The common case in one match (a subset of the above, written to match fast): ASCII, starts with a letter,
# `_`, `/` or `$`, colons only between word characters, not a reserved word.
_SIMPLE_CHAR = r"[!-\"$-9;-Z\\^-z|~]"
# Or a quantity like `100m`, `128Mi` or `30s`: a letter no number syntax uses follows the digits.
SIMPLE = re.compile(
    rf"(?!(?i:y|n|yes|no|true|false|on|off|null)\Z)[A-Za-z_/$]{_SIMPLE_CHAR}*"
    rf"(?::+{_SIMPLE_CHAR}+)*(?: +{_SIMPLE_CHAR}+(?::+{_SIMPLE_CHAR}+)*)*"
    r"|[0-9][0-9.]*[g-hj-mp-su-wyG-HJ-MP-SU-WY][A-Za-z0-9]*"
)
# Every word any parser we care about reads as a bool or null, in any letter case.
_RESERVED = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null"})
# Characters that can make up an int, float, timestamp, sexagesimal, `.inf` or `.nan` in YAML 1.1 (spec,
# PyYAML, go-yaml v2) or YAML 1.2: a string that starts like a number and holds nothing else is quoted.
_NUMBERISH = frozenset("0123456789abcdefABCDEFxXoObB_.:+- tTzZiInN")
_SIGNS = frozenset(".+-_")
# What libyaml (and so YAML) prints verbatim inside quotes; a line break other than \n ends single-line text.
# (Compiled when text that is not ASCII comes: for ASCII, that is the printable characters.)
_QUOTABLE = "[\x20-\x7e\u00a0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]*"
# Needs an escape in double quotes beyond JSON's: C1 controls, YAML 1.1 line breaks, BOM, surrogates.
_ESCAPE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff\ufffe\uffff]")


def plain_ok(text: str) -> bool:
    """Whether `text` may stand bare: no YAML 1.1 or 1.2 parser (go-yaml, PyYAML) reads it as another type."""
    ascii_only = text.isascii()
    if not (_PLAIN_ASCII if ascii_only else _plain()).fullmatch(text) or not (ascii_only or text.isprintable()):
        return False
    first = text[0]
    if first.isalpha() or first in "_/$":
        return text.lower() not in _RESERVED
    if first not in "0123456789.+-" or text.startswith(("---", "...")) or text[:2] == "- ":
        return False
    if text == "-":
        return False
    if _NUMBERISH.issuperset(text):
        lowered = text.lower()
        numeric = any(c.isdigit() for c in text) or "inf" in lowered or "nan" in lowered
        return not (numeric or _SIGNS.issuperset(text))
    return True


@functools.cache
def _quotable() -> re.Pattern[str]:
    return re.compile(_QUOTABLE)


def _verbatim(text: str) -> bool:
    """Whether libyaml prints every character of one line of `text` as it is (`_QUOTABLE`)."""
    return text.isprintable() if text.isascii() else bool(_quotable().fullmatch(text))


def _quoted(text: str) -> str:
    if _verbatim(text):
        return "'" + text.replace("'", "''") + "'"
    escaped = json.dumps(text, ensure_ascii=False)
    return _ESCAPE.sub(lambda m: f"\\u{ord(m.group()):04x}", escaped)


def inline_str(text: str) -> str:
    return text if plain_ok(text) else _quoted(text)


def block_ok(text: str) -> bool:
    # A literal block holds text exactly only when its indentation and line ends are unambiguous: no leading
    # space or break (would need an indentation indicator), no trailing spaces, nothing YAML cannot print raw.
    return (
        text[0] not in " \n"
        and " \n" not in text
        and not text.endswith(" ")
        and "\t" not in text
        and all(_verbatim(line) for line in text.split("\n"))
    )


def float_text(value: float) -> str:
    if value != value:
        return ".nan"
    if value in (float("inf"), float("-inf")):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value).lower()
    # `1e+16` is an int or a string to YAML 1.1 parsers; `1.0e+16` is a float everywhere.
    return text.replace("e", ".0e", 1) if "." not in text and "e" in text else text
