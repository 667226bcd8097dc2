"""Names as Kubernetes validates them, and relative paths safe to write: each check returns None when the value is
fine, else a sentence saying what is wrong (to follow "must be ...", or stand alone).

Every name a tenant or Promise author writes is checked here before it is used to build a path or an object:
request names and namespaces, Promise, pipeline and container names, Destination paths, file paths steps and
templates write, and the metadata of every object the compiler emits. The rules are apimachinery's (DNS-1123
labels and subdomains, DNS-1035 labels, qualified names for label and annotation keys, label values); patterns are
matched in full (`re.fullmatch`: a trailing newline never slips through as `$` would let it).
"""

from __future__ import annotations

import re

from kratix.model import limits

_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
DNS_LABEL_PATTERN = rf"^{_LABEL}$"  # for JSON Schemas (editors), which anchor with ^ and $
_DNS_LABEL = re.compile(_LABEL)
_DNS_SUBDOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_DNS1035_LABEL = re.compile(r"[a-z](?:[-a-z0-9]*[a-z0-9])?")
_QUALIFIED_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?")
_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _shown(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def dns_label(value: object) -> str | None:
    """A DNS-1123 label: namespaces, request names, Promise, pipeline and container names."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if len(value) > limits.DNS_LABEL_MAX:
        return f"must be at most {limits.DNS_LABEL_MAX} characters (got {len(value)})"
    if not _DNS_LABEL.fullmatch(value):
        return (
            "must be a DNS-1123 label: lowercase letters, digits and '-', alphanumeric at both ends "
            f"(got {_shown(value)})"
        )
    return None


def dns_subdomain(value: object) -> str | None:
    """A DNS-1123 subdomain: most object names, API groups."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if len(value) > limits.DNS_SUBDOMAIN_MAX:
        return f"must be at most {limits.DNS_SUBDOMAIN_MAX} characters (got {len(value)})"
    if not _DNS_SUBDOMAIN.fullmatch(value):
        return (
            "must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', alphanumeric at both ends "
            f"(got {_shown(value)})"
        )
    return None


def dns1035_label(value: object) -> str | None:
    """A DNS-1035 label: Service names, and a CRD kind in lowercase."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if len(value) > limits.DNS_LABEL_MAX:
        return f"must be at most {limits.DNS_LABEL_MAX} characters (got {len(value)})"
    if not _DNS1035_LABEL.fullmatch(value):
        return (
            f"must be a DNS-1035 label: lowercase letters, digits and '-', starting with a letter (got {_shown(value)})"
        )
    return None


def qualified_name(value: object) -> str | None:
    """A label or annotation key: an optional DNS subdomain prefix and '/', then a name of at most 63 characters."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    prefix, slash, name = value.rpartition("/")
    if slash and (not prefix or dns_subdomain(prefix) is not None):
        return f"{_shown(value)}: the prefix before '/' must be a DNS-1123 subdomain"
    if not name or len(name) > limits.QUALIFIED_NAME_MAX or not _QUALIFIED_NAME.fullmatch(name):
        return (
            f"{_shown(value)}: the name must be at most {limits.QUALIFIED_NAME_MAX} letters, digits, '-', '_' "
            "or '.', alphanumeric at both ends, with an optional DNS-subdomain prefix and '/'"
        )
    return None


def label_value(value: object) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__} (quote it)"
    if len(value) > limits.LABEL_VALUE_MAX or not _LABEL_VALUE.fullmatch(value):
        return (
            f"must be a label value: at most {limits.LABEL_VALUE_MAX} letters, digits, '-', '_' or '.', "
            f"alphanumeric at both ends, or empty (got {_shown(value)})"
        )
    return None


def relative_path(value: object) -> str | None:
    """A relative path that stays where it is written: no absolute path, no empty, '.', '..' or '.git' component
    (Git refuses `.git` in any letter case), no control character (a newline or carriage return would split a
    fast-import command or a diff line), valid UTF-8, and bounded lengths. The sentence does not repeat the path:
    the caller shows it (escaped)."""
    if not isinstance(value, str) or not value:
        return "must be a non-empty relative path"
    if _CONTROL.search(value):
        return "holds a control character (a newline, carriage return, tab, ...)"
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if size > limits.PATH_MAX_BYTES:
        return f"is longer than {limits.PATH_MAX_BYTES} bytes"
    if value.startswith("/"):
        return "is absolute; it must be relative"
    for part in value.split("/"):
        if part in ("", ".", ".."):
            return "has an empty, '.' or '..' component"
        if part.lower() == ".git":
            return "has a .git component, which Git refuses to store"
        if len(part.encode("utf-8")) > limits.PATH_COMPONENT_MAX_BYTES:
            return f"has a component longer than {limits.PATH_COMPONENT_MAX_BYTES} bytes"
    return None
