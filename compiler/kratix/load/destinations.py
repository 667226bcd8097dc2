"""Destinations: the documents of `clusters/` → typed `Destination`s, keyed by name.

In: a `SourceTree`. Out: each Destination (or seed-era Cluster, upgraded with a deprecation warning) with its
labels, `strictMatchLabels` and output folder (`spec.path`, else its name). A Destination is read whole or not
at all: one that cannot be read is reported and left out, and the caller treats its file as broken
(`kratix.inventory`).
Refuses: any other document in `clusters/`; a Destination of the wrong shape (`kratix.load.shapes.DESTINATION`);
a name that is not a DNS-1123 subdomain; labels Kubernetes would refuse; a path that is not a plain relative
folder of the output repo (no `..`, `.git` or control character) or that lies in `.kratix`; two Destinations
with one name or one path, or a path inside another's.
Its annotations `kratix.io/sops-age-recipients` (age public keys) and `kratix.io/sops-pgp-fingerprints` (PGP key
fingerprints), comma- or space-separated, name the SOPS recipients Secrets bound for it are encrypted for; a
recipient that is no age key or PGP fingerprint is an error, and the Destination stays without encryption (so its
plaintext Secrets fail their owners).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kratix import names
from kratix.diagnostics import Diagnostic, Severity
from kratix.documents import SourceDoc, SourceTree
from kratix.load import shapes
from kratix.load.shared import (
    check_name,
    check_shape,
    is_platform_kind,
    mapping,
    object_name,
    parse_file,
    upgraded,
    yaml_files,
)
from kratix.manifests import BOOKKEEPING
from kratix.platform import Destination

AGE_ANNOTATION = "kratix.io/sops-age-recipients"
PGP_ANNOTATION = "kratix.io/sops-pgp-fingerprints"
_AGE_RECIPIENT = re.compile(r"age1[02-9ac-hj-np-z]{58}")  # bech32, as age-keygen prints it
_PGP_FINGERPRINT = re.compile(r"[0-9A-Fa-f]{40}")


def parse_destinations(tree: SourceTree, diagnostics: list[Diagnostic]) -> dict[str, Destination]:
    destinations: dict[str, Destination] = {}
    for path, data in yaml_files(tree, "clusters"):
        for doc in parse_file(path, data, diagnostics):
            if not is_platform_kind(doc.body, "Destination", "Cluster"):
                diagnostics.append(Diagnostic.at(doc, ("kind",), "destination.kind",
                                                 "clusters/ holds only platform.kratix.io Destination documents",
                                                 object=object_name(doc)))
                continue
            destination = _destination(doc, upgraded(doc, "destination.deprecated", diagnostics), diagnostics)
            if destination is not None and _distinct(destination, destinations, diagnostics):
                destinations[destination.name] = destination
    return destinations


def _distinct(destination: Destination, destinations: Mapping[str, Destination],
              diagnostics: list[Diagnostic]) -> bool:
    doc = destination.source
    if destination.name in destinations:
        first = destinations[destination.name].source
        diagnostics.append(Diagnostic.at(doc, ("metadata", "name"), "destination.duplicate",
                                         f"Destination {destination.name!r} is already defined at "
                                         f"{first.path}:{first.line}", object=object_name(doc)))
        return False
    for other in destinations.values():
        if _overlaps(destination.path, other.path):
            how = "is already used by" if destination.path == other.path else f"overlaps the path {other.path!r} of"
            diagnostics.append(Diagnostic.at(doc, ("spec", "path"), "destination.duplicate-path",
                                             f"path {destination.path!r} {how} Destination {other.name!r}",
                                             object=object_name(doc)))
            return False
    return True


def _overlaps(one: str, other: str) -> bool:
    return one == other or one.startswith(other + "/") or other.startswith(one + "/")


def destination_path_problem(path: str) -> str | None:
    problem = names.relative_path(path)
    if problem is None and path.split("/", 1)[0] == BOOKKEEPING:
        problem = f"lies in {BOOKKEEPING}/, the compiler's own folder"
    return f"path {path!r} {problem}" if problem else None


def _destination(doc: SourceDoc, body: Mapping[str, Any], diagnostics: list[Diagnostic]) -> Destination | None:
    subject = object_name(doc)
    if not check_shape(doc, body, shapes.DESTINATION, "destination.shape", diagnostics):
        return None
    metadata = body["metadata"]
    name = metadata["name"]
    if not check_name(doc, ("metadata", "name"), names.dns_subdomain(name), "destination.name", diagnostics):
        return None
    labels = metadata.get("labels") or {}
    valid = True
    for key, value in labels.items():
        problem = names.qualified_name(key) or names.label_value(value)
        valid &= check_name(doc, ("metadata", "labels", key), problem, "destination.labels", diagnostics)
    spec = mapping(body.get("spec"))
    path = str(spec.get("path") or name).strip("/")
    valid &= check_name(doc, ("spec", "path"), destination_path_problem(path), "destination.path", diagnostics)
    if not valid:
        return None
    mode = mapping(spec.get("filepath")).get("mode")
    if mode is not None and mode != "nestedByMetadata":
        diagnostics.append(Diagnostic.at(doc, ("spec", "filepath", "mode"), "destination.filepath-mode",
                                         f"filepath mode {mode!r} is not supported: output is laid out "
                                         "nestedByMetadata (<path>/dependencies/…, <path>/resources/…)",
                                         severity=Severity.WARNING, object=subject))
    annotations = mapping(metadata.get("annotations"))
    age = _recipients(doc, annotations, AGE_ANNOTATION, _AGE_RECIPIENT, "an age public key (age1...)", diagnostics)
    pgp = _recipients(doc, annotations, PGP_ANNOTATION, _PGP_FINGERPRINT, "a 40-hex-digit PGP fingerprint",
                      diagnostics)
    return Destination(name=name, path=path, labels=dict(labels),
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
