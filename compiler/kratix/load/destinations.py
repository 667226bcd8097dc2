"""Destinations: the documents of `clusters/` → typed `Destination`s, keyed by name.

In: a `SourceTree`. Out: each Destination (or seed-era Cluster, upgraded with a deprecation warning) with its
labels, `strictMatchLabels` and output folder (`spec.path`, else its name).
Its annotations `kratix.io/sops-age-recipients` (age public keys) and `kratix.io/sops-pgp-fingerprints` (PGP key
fingerprints), comma- or space-separated, name the SOPS recipients Secrets bound for it are encrypted for.
Refuses: any other document in `clusters/`, a Destination without metadata.name, a path that leaves the output
repo or lies in `.kratix`, two Destinations with one name or one path, a recipient that is no age key or PGP
fingerprint (the Destination stays, without encryption, so its plaintext Secrets fail their owners).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kratix.diagnostics import Diagnostic, Severity
from kratix.documents import SourceDoc, SourceTree
from kratix.load.shared import escapes, is_platform_kind, mapping, object_name, parse_file, upgraded, yaml_files
from kratix.platform import Destination

AGE_ANNOTATION = "kratix.io/sops-age-recipients"
PGP_ANNOTATION = "kratix.io/sops-pgp-fingerprints"
_AGE_RECIPIENT = re.compile(r"age1[02-9ac-hj-np-z]{58}")  # bech32, as age-keygen prints it
_PGP_FINGERPRINT = re.compile(r"[0-9A-Fa-f]{40}")


def parse_destinations(tree: SourceTree, diagnostics: list[Diagnostic]) -> dict[str, Destination]:
    destinations: dict[str, Destination] = {}
    paths: dict[str, str] = {}
    for path, data in yaml_files(tree, "clusters"):
        for doc in parse_file(path, data, diagnostics):
            if not is_platform_kind(doc.body, "Destination", "Cluster"):
                diagnostics.append(Diagnostic.at(doc, ("kind",), "destination.kind",
                                                 "clusters/ holds only platform.kratix.io Destination documents",
                                                 object=object_name(doc)))
                continue
            destination = _destination(doc, upgraded(doc, "destination.deprecated", diagnostics), diagnostics)
            if destination is None:
                continue
            if destination.name in destinations:
                first = destinations[destination.name].source
                diagnostics.append(Diagnostic.at(doc, ("metadata", "name"), "destination.duplicate",
                                                 f"Destination {destination.name!r} is already defined at "
                                                 f"{first.path}:{first.line}", object=object_name(doc)))
                continue
            if destination.path in paths:
                diagnostics.append(Diagnostic.at(doc, ("spec", "path"), "destination.duplicate-path",
                                                 f"path {destination.path!r} is already used by Destination "
                                                 f"{paths[destination.path]!r}", object=object_name(doc)))
                continue
            destinations[destination.name] = destination
            paths[destination.path] = destination.name
    return destinations


def _destination(doc: SourceDoc, body: Mapping[str, Any], diagnostics: list[Diagnostic]) -> Destination | None:
    metadata = mapping(body.get("metadata"))
    name = metadata.get("name")
    subject = object_name(doc)
    if not isinstance(name, str) or not name:
        diagnostics.append(Diagnostic.at(doc, ("metadata", "name"), "destination.name",
                                         "a Destination needs metadata.name", object=subject))
        return None
    spec = mapping(body.get("spec"))
    path = str(spec.get("path") or name).strip("/")
    if escapes(path) or path.startswith(".kratix") or not path:
        diagnostics.append(Diagnostic.at(doc, ("spec", "path"), "destination.path",
                                         "path must be a relative folder of the output repo (not .kratix)",
                                         object=subject))
        return None
    mode = mapping(spec.get("filepath")).get("mode")
    if mode is not None and mode != "nestedByMetadata":
        diagnostics.append(Diagnostic.at(doc, ("spec", "filepath", "mode"), "destination.filepath-mode",
                                         f"filepath mode {mode!r} is not supported: output is laid out "
                                         "nestedByMetadata (<path>/dependencies/…, <path>/resources/…)",
                                         severity=Severity.WARNING, object=subject))
    labels = mapping(metadata.get("labels"))
    annotations = mapping(metadata.get("annotations"))
    age = _recipients(doc, annotations, AGE_ANNOTATION, _AGE_RECIPIENT, "an age public key (age1...)", diagnostics)
    pgp = _recipients(doc, annotations, PGP_ANNOTATION, _PGP_FINGERPRINT, "a 40-hex-digit PGP fingerprint",
                      diagnostics)
    return Destination(name=name, path=path, labels={str(k): str(v) for k, v in labels.items()},
                       strict_match_labels=bool(spec.get("strictMatchLabels", False)), source=doc,
                       sops_age=age, sops_pgp=pgp)


def _recipients(doc: SourceDoc, annotations: Mapping[str, Any], key: str, pattern: re.Pattern[str], what: str,
                diagnostics: list[Diagnostic]) -> tuple[str, ...]:
    found = tuple(str(annotations.get(key) or "").replace(",", " ").split())
    wrong = [value for value in found if not pattern.fullmatch(value)]
    if wrong:
        diagnostics.append(Diagnostic.at(doc, ("metadata", "annotations", key), "destination.sops-recipient",
                                         f"{wrong[0]!r} is not {what}; no Secret is encrypted for this "
                                         "Destination until it is fixed", object=object_name(doc)))
        return ()
    return found
