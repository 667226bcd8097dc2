"""ConfigMaps and Secrets that pipeline steps read: `config/<namespace>/*.yaml` → `ConfigObject`s.

Kratix runs a resource workflow's pods in the request's namespace (a promise workflow's in
`kratix-platform-system`, either in `spec.workflows.config.pipelineNamespace` when set), where a step's
`env.valueFrom`, `envFrom` and `volumes` find their ConfigMaps and Secrets. Here those objects live in the input
repo, one folder per namespace, as requests do. A Secret must be SOPS-encrypted (a `sops` block, its `data` or
`stringData` encrypted): it is decrypted only when a step uses it, and never written anywhere.
Refused, each object alone with an error: a document that is not a v1 ConfigMap or Secret, a namespace that
disagrees with its folder, a name that is not a DNS subdomain, a Secret in plaintext, one defined twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kratix.load.shared import mapping, parse_file, yaml_files
from kratix.model import names
from kratix.model.diagnostics import Diagnostic, Severity
from kratix.model.documents import SourceDoc, SourceTree
from kratix.model.platform import ConfigObject

FOLDER = "config"
KINDS = ("ConfigMap", "Secret")
_ENCRYPT = (
    "encrypt it: sops --encrypt --encrypted-regex '^(data|stringData)$' --age <recipient> --in-place "
    "<file> (the compile decrypts it with the key in SOPS_AGE_KEY_FILE, SOPS_AGE_KEY or your PGP keyring)"
)


def parse_configs(tree: SourceTree, diagnostics: list[Diagnostic]) -> dict[tuple[str, str, str], ConfigObject]:
    """Every ConfigMap and Secret under `config/<namespace>/`, by (kind, namespace, name)."""
    found: dict[tuple[str, str, str], ConfigObject] = {}
    for path, data in yaml_files(tree, FOLDER):
        parts = path.split("/")
        if len(parts) < 3 or names.dns_label(parts[1]) is not None:
            diagnostics.append(
                Diagnostic(
                    path,
                    1,
                    1,
                    "",
                    "config.namespace",
                    f"{path} is not in a namespace folder: ConfigMaps and Secrets live in {FOLDER}/<namespace>/",
                    Severity.ERROR,
                )
            )
            continue
        folder = parts[1]
        for doc in parse_file(path, data, diagnostics):
            outcome = _config(doc, path, folder, found)
            if isinstance(outcome, ConfigObject):
                found[(outcome.kind, outcome.namespace, outcome.name)] = outcome
            else:
                field, message, code = outcome
                metadata = mapping(doc.body.get("metadata"))
                diagnostics.append(
                    Diagnostic.at(
                        doc, field, code, message, object=f"{doc.body.get('kind')} {folder}/{metadata.get('name')}"
                    )
                )
    return found


def _config(
    doc: SourceDoc, path: str, folder: str, found: Mapping[tuple[str, str, str], ConfigObject]
) -> ConfigObject | tuple[tuple[str, ...], str, str]:
    """The object, or (field, message, code) of why it is refused."""
    body = doc.body
    metadata = mapping(body.get("metadata"))
    name, namespace, kind = metadata.get("name"), metadata.get("namespace", folder), body.get("kind")
    if body.get("apiVersion") != "v1" or kind not in KINDS:
        return (
            ("kind",),
            f"{FOLDER}/ holds v1 ConfigMaps and Secrets only, not {body.get('apiVersion')} {kind}",
            "config.invalid",
        )
    if not isinstance(name, str) or names.dns_subdomain(name) is not None:
        return ("metadata", "name"), f"a {kind} name {names.dns_subdomain(name) or 'is required'}", "config.invalid"
    if namespace != folder:
        return ("metadata", "namespace"), f"namespace {namespace!r} is not its folder's ({folder!r})", "config.invalid"
    if kind == "Secret" and not isinstance(body.get("sops"), Mapping):
        return (
            (),
            (f"Secret {folder}/{name} is in plaintext: Secrets in the repo must be SOPS-encrypted; {_ENCRYPT}"),
            "config.plaintext-secret",
        )
    if kind == "ConfigMap" and (refused := _not_a_string_map(body)) is not None:
        return refused
    if (kind, folder, name) in found:
        first = found[(kind, folder, name)].source
        return ("metadata", "name"), f"{kind} {folder}/{name} is already defined in {first}", "config.duplicate"
    return ConfigObject(kind, folder, name, path, body)


def _not_a_string_map(body: Mapping[str, Any]) -> tuple[tuple[str, ...], str, str] | None:
    """A ConfigMap's `data` and `binaryData` map keys to strings, as the API server requires."""
    for field in ("data", "binaryData"):
        values = body.get(field)
        if values is None:
            continue
        if not isinstance(values, Mapping):
            return (field,), f"{field} must be a mapping of keys to strings", "config.invalid"
        for key, value in values.items():
            if not isinstance(value, str):
                return (
                    (field, str(key)),
                    f"{field}.{key} must be a string, not {type(value).__name__}",
                    "config.invalid",
                )
    return None
