"""Regular expressions as Kubernetes runs them: RE2's syntax and linear-time matching (Go's regexp is RE2).

In: a pattern, from a CRD's `pattern` keyword or a CEL rule's `matches`/`find`/`findAll`. Out: the compiled
pattern, or `RegexError` saying why RE2 refuses it: backreferences, look-around, a repetition count over 1000,
a pattern too large to compile. Whatever the pattern, matching takes time linear in the text, so `(a+)+$`
against a long string cannot backtrack.

Texts and patterns are matched as UTF-8 bytes: RE2 reads them as UTF-8 (`.` is one code point), and bytes spare
the module's conversion between character and byte offsets at each match.
"""

from __future__ import annotations

from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is reported to the author, not logged to stderr


class RegexError(ValueError):
    pass


def compile_pattern(pattern: str) -> Any:
    """The compiled pattern (re2's, cached by the module), or RegexError with RE2's reason."""
    try:
        return re2.compile(pattern.encode("utf-8", "surrogatepass"), _OPTIONS)
    except re2.error as error:
        reason = error.args[0] if error.args else "refused"
        raise RegexError(reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)) from None


def problem(pattern: str) -> str | None:
    """Why RE2 refuses `pattern`, or None."""
    try:
        compile_pattern(pattern)
    except RegexError as error:
        return str(error)
    return None


def find(text: str, pattern: str) -> str:
    """The first match of `pattern` in `text`, or "" (CEL's `find`)."""
    found = compile_pattern(pattern).search(text.encode("utf-8", "surrogatepass"))
    return found.group(0).decode("utf-8", "surrogatepass") if found else ""


def find_all(text: str, pattern: str, limit: int = -1) -> list[str]:
    """Every match of `pattern` in `text`, at most `limit` of them when it is not negative (CEL's `findAll`)."""
    if limit == 0:
        return []
    matches: list[str] = []
    for found in compile_pattern(pattern).finditer(text.encode("utf-8", "surrogatepass")):
        matches.append(found.group(0).decode("utf-8", "surrogatepass"))
        if len(matches) == limit:
            break
    return matches
