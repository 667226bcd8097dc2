"""Secrets in the output: no readable secret value is ever committed to the output repo.

Git keeps every version of every file for every reader of the repo, forever; a compiler that commits rendered
manifests must refuse to commit a plaintext `Secret`. This module decides, for one rendered object, and does no
I/O (the encryption itself runs in `kratix.workflows.sops`, an edge).

In: a rendered object, the Secret names its Promise allows in plaintext, whether its destination encrypts
Secrets. Out: a `Verdict`: pass, encrypt (the destination names SOPS recipients), or refuse with why.
- A `v1 Secret` with no `data`/`stringData` values passes (nothing to leak).
- A SOPS-encrypted Secret passes: a `sops` metadata field and every value `ENC[...]` (Flux decrypts it on the
  worker).
- A Secret bound for a destination with SOPS recipients is encrypted before it is written.
- A Secret whose name matches a glob of its Promise's `kratix.io/plaintext-secrets` annotation passes in
  plaintext: the Promise's author said so, in the one file a platform team reviews (a CODEOWNERS rule on
  `promises/`), and not in a template or a step's output, which tenants' input can shape.
- Any other Secret with values is refused: its owner fails, naming the Secret and the ways out.
`SealedSecret` and `ExternalSecret` (and every other kind) are not Secrets here: they hold no readable value.

Also here: the stand-in that output validation checks for a SOPS-encrypted Secret (its values are ciphertext,
not base64, and `sops` is no field of a Secret), and the redaction `kratix plan` applies to every Secret it
shows.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PLAINTEXT_ANNOTATION = "kratix.io/plaintext-secrets"
VALUE_FIELDS = ("data", "stringData")
REDACTED = "<redacted>"
REDACTED_CHANGED = "<redacted: changed>"

PASS, ENCRYPT, REFUSE = "pass", "encrypt", "refuse"


@dataclass(frozen=True)
class Verdict:
    action: str  # PASS, ENCRYPT or REFUSE
    reason: str = ""


def is_secret(document: Mapping[str, Any]) -> bool:
    return document.get("apiVersion") == "v1" and document.get("kind") == "Secret"


def _values(document: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    found = []
    for field in VALUE_FIELDS:
        section = document.get(field)
        if isinstance(section, Mapping):
            found += [(field, str(key), value) for key, value in section.items()]
    return found


def is_sops_encrypted(document: Mapping[str, Any]) -> bool:
    """A `sops` metadata block with a MAC, and every value of `data` and `stringData` SOPS ciphertext."""
    metadata = document.get("sops")
    if not isinstance(metadata, Mapping) or not metadata.get("mac"):
        return False
    return all(
        isinstance(value, str) and value.startswith("ENC[") and value.endswith("]") for _, _, value in _values(document)
    )


def plaintext_allowed(promise_body: Mapping[str, Any]) -> tuple[str, ...]:
    """The globs of Secret names a Promise allows in plaintext (its `kratix.io/plaintext-secrets` annotation:
    names or globs separated by commas or whitespace)."""
    annotations = (promise_body.get("metadata") or {}).get("annotations") or {}
    text = annotations.get(PLAINTEXT_ANNOTATION) if isinstance(annotations, Mapping) else None
    return tuple(part for part in str(text or "").replace(",", " ").split() if part)


def verdict(document: Mapping[str, Any], *, allowed: Sequence[str], encrypts: bool) -> Verdict:
    if not is_secret(document):
        return Verdict(PASS)
    values = _values(document)
    if not values:
        return Verdict(PASS)
    if is_sops_encrypted(document):
        return Verdict(PASS, "SOPS-encrypted")
    if encrypts:
        return Verdict(ENCRYPT)
    name = str((document.get("metadata") or {}).get("name") or "")
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in allowed):
        return Verdict(PASS, f"allowed in plaintext by its Promise's {PLAINTEXT_ANNOTATION} annotation")
    fields = ", ".join(sorted({f"{field}.{key}" for field, key, _ in values}))
    return Verdict(
        REFUSE,
        f"{subject(document)} holds plaintext values ({fields}); the output repo would keep "
        "them readable forever. Encrypt it with SOPS (or give its Destination SOPS recipients, "
        "kratix.io/sops-age-recipients or kratix.io/sops-pgp-fingerprints, and kratix "
        "encrypts it), deliver it as a SealedSecret or ExternalSecret, or allow it by name "
        f"in its Promise's {PLAINTEXT_ANNOTATION} annotation",
    )


def subject(document: Mapping[str, Any]) -> str:
    metadata = document.get("metadata") or {}
    where = f"{metadata['namespace']}/" if metadata.get("namespace") else ""
    return f"Secret {where}{metadata.get('name')}"


def for_schema_check(document: Mapping[str, Any]) -> Mapping[str, Any]:
    """What output validation checks in place of a SOPS-encrypted Secret: the object Flux applies after
    decrypting it (no `sops` field; values of the right type, their content unknown)."""
    if not (is_secret(document) and "sops" in document and is_sops_encrypted(document)):
        return document
    stand_in = {key: value for key, value in document.items() if key != "sops"}
    for field in VALUE_FIELDS:
        if isinstance(document.get(field), Mapping):
            stand_in[field] = dict.fromkeys(document[field], "")
    return stand_in


def redact(document: Any, before: Any = None) -> Any:
    """A Secret with every value replaced (by `<redacted: changed>` where it differs from `before`'s), and its
    SOPS metadata dropped; any other document as it is."""
    if not isinstance(document, Mapping) or not is_secret(document):
        return document
    old = {(field, key): value for field, key, value in _values(before)} if isinstance(before, Mapping) else {}
    redacted = {key: value for key, value in document.items() if key != "sops"}
    for field in VALUE_FIELDS:
        section = document.get(field)
        if isinstance(section, Mapping):
            redacted[field] = {
                key: REDACTED if old.get((field, str(key)), value) == value else REDACTED_CHANGED
                for key, value in section.items()
            }
    return redacted
