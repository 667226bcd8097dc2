"""Destinations and state stores: the documents of `clusters/` → typed `Destination`s and `StateStore`s, by name.

In: a `SourceTree`, what the last compile knew of each Destination (`kratix.memory.inventory`), and where each state
store's files go in the output tree (`store_prefixes`: a store that shares the default store's repo and branch
has the prefix "", any other `@<store>`, `kratix.model.paths`). Out: each GitStateStore (URL, branch, default `main`,
folder) and each Destination (or seed-era Cluster, upgraded with a deprecation warning) with its labels,
`strictMatchLabels`, filepath mode and file name, `initWorkloads`, state store and folder: `spec.path` (default
its name; `/` or `.` for the root of its store's folder) under its store's `spec.path`. A document is read whole
or not at all: one that cannot be read is reported and left out, and the caller treats its file as broken
(`kratix.memory.inventory`).
Refuses: any other document in `clusters/`; a BucketStateStore (kratix publishes to Git only); a document of the
wrong shape (`kratix.load.shapes`); a name that is not a DNS-1123 subdomain; labels Kubernetes would refuse; a
path that is not a plain relative folder (no `..`, `.git` or control character), that lies in `.kratix` or
starts with `@`; a `stateStoreRef` naming no GitStateStore of `clusters/`; an aggregatedYAML file name the
compiler writes itself (`kustomization.yaml`, a canary file); a filepath mode other than the one the Destination
was published with (Kratix makes it immutable); two documents of one kind with one name, and a Destination whose
files would lie where another's, or the compiler's bookkeeping, are (`kratix.model.paths.Layout.claims`).
A GitStateStore's `secretRef` is not read (kratix is no cluster and has no Secrets): Git credentials come from
where kratix runs (a credential helper, GIT_ASKPASS, SSH keys), and a store naming one says so once, as a warning.
Its annotations `kratix.io/sops-age-recipients` (age public keys) and `kratix.io/sops-pgp-fingerprints` (PGP key
fingerprints), comma- or space-separated, name the SOPS recipients Secrets bound for it are encrypted for; a
recipient that is no age key or PGP fingerprint is an error, and the Destination stays without encryption (so its
plaintext Secrets fail their owners).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

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
from kratix.memory.inventory import DestinationEntry, Inventory
from kratix.model import names, paths
from kratix.model.diagnostics import Diagnostic, Severity
from kratix.model.documents import SourceDoc, SourceTree
from kratix.model.platform import Destination, StateStore

AGE_ANNOTATION = "kratix.io/sops-age-recipients"
PGP_ANNOTATION = "kratix.io/sops-pgp-fingerprints"
_AGE_RECIPIENT = re.compile(r"age1[02-9ac-hj-np-z]{58}")  # bech32, as age-keygen prints it
_PGP_FINGERPRINT = re.compile(r"[0-9A-Fa-f]{40}")
_ROOT = ("", ".")  # spec.path values (once stripped of "/") that mean the root of the store's folder
_COMPILER_FILES = (
    paths.KUSTOMIZATION,
    "kustomization.yml",
    "Kustomization",
    paths.CANARY_NAMESPACE_FILE,
    paths.CANARY_CONFIGMAP_FILE,
)


def parse_destinations(
    tree: SourceTree,
    diagnostics: list[Diagnostic],
    *,
    known: Inventory | None = None,
    store_prefixes: Mapping[str, str] | None = None,
) -> tuple[dict[str, Destination], dict[str, StateStore]]:
    pending, stores = _read_clusters(tree, diagnostics)
    destinations: dict[str, Destination] = {}
    claims = Claims()
    for doc in pending:
        destination = _destination(
            doc,
            upgraded(doc, "destination.deprecated", diagnostics),
            diagnostics,
            stores=stores,
            prefixes=store_prefixes or {},
            known=known or Inventory(),
        )
        if destination is not None and _distinct(destination, destinations, claims, diagnostics):
            destinations[destination.name] = destination
            claims.add(destination.layout.root, destination.layout.claims())
    return destinations, stores


def parse_state_stores(tree: SourceTree) -> dict[str, StateStore]:
    """The GitStateStores of `clusters/` that read cleanly (their problems are the compile's to report)."""
    return _read_clusters(tree, [])[1]


def _read_clusters(tree: SourceTree, diagnostics: list[Diagnostic]) -> tuple[list[SourceDoc], dict[str, StateStore]]:
    """The Destination documents of `clusters/` (read later, once the stores are known) and the GitStateStores."""
    stores: dict[str, StateStore] = {}
    pending: list[SourceDoc] = []
    for path, data in yaml_files(tree, "clusters"):
        for doc in parse_file(path, data, diagnostics):
            if is_platform_kind(doc.body, "Destination", "Cluster"):
                pending.append(doc)
            elif is_platform_kind(doc.body, "GitStateStore"):
                store = _store(doc, diagnostics)
                if store is not None and _distinct_store(store, stores, diagnostics):
                    stores[store.name] = store
            elif is_platform_kind(doc.body, "BucketStateStore"):
                diagnostics.append(
                    Diagnostic.at(
                        doc,
                        ("kind",),
                        "statestore.bucket",
                        "BucketStateStore is not supported: kratix publishes to Git only (use a GitStateStore)",
                        object=object_name(doc),
                    )
                )
            else:
                diagnostics.append(
                    Diagnostic.at(
                        doc,
                        ("kind",),
                        "destination.kind",
                        "clusters/ holds only platform.kratix.io Destination and GitStateStore documents",
                        object=object_name(doc),
                    )
                )
    return pending, stores


def folder_problem(path: str) -> str | None:
    """Why a folder (a Destination's or a state store's spec.path, stripped of `/`) cannot be one."""
    problem = names.relative_path(path)
    if problem is None and path.split("/", 1)[0] == paths.BOOKKEEPING:
        problem = f"lies in {paths.BOOKKEEPING}/, the compiler's own folder"
    if problem is None and path.startswith(paths.STORE_PREFIX):
        problem = f"starts with {paths.STORE_PREFIX!r}, which names state stores in the output tree"
    return problem


def destination_path_problem(path: str) -> str | None:
    problem = folder_problem(path)
    return f"path {path!r} {problem}" if problem else None


def _distinct_store(store: StateStore, stores: Mapping[str, StateStore], diagnostics: list[Diagnostic]) -> bool:
    if store.name not in stores:
        return True
    first = stores[store.name].source
    diagnostics.append(
        Diagnostic.at(
            store.source,
            ("metadata", "name"),
            "statestore.duplicate",
            f"GitStateStore {store.name!r} is already defined at {first.path}:{first.line}",
            object=object_name(store.source),
        )
    )
    return False


class Claims:
    """What the destinations read so far occupy (`Layout.claims`), indexed so that a destination that overlaps none
    is told apart without comparing it with each of them: that keeps reading D destinations linear in D.
    `overlap_problem` still says which one a clash is with."""

    def __init__(self) -> None:
        self._roots: set[str] = set()
        self._claims: set[str] = set()
        self._folders_above: set[str] = set()  # every folder holding a claim ("" holds all), and folder claims

    def add(self, root: str, claims: Sequence[str]) -> None:
        self._roots.add(root)
        for claim in claims:
            self._claims.add(claim)
            self._folders_above.update(_folders_above(claim))
            if _is_folder(claim):
                self._folders_above.add(claim)

    def overlaps(self, root: str, claims: Sequence[str]) -> bool:
        """Whether a destination with this root and these claims overlaps one added (`paths.overlapping`)."""
        if root in self._roots:
            return True
        for claim in claims:
            if claim in self._claims or any(folder in self._claims for folder in _folders_above(claim)):
                return True  # the same claim, or a folder claimed before holds it
            if _is_folder(claim) and claim in self._folders_above:
                return True  # it holds a claim made before
        return False


def _is_folder(claim: str) -> bool:
    return claim == "" or claim.endswith("/")


def _folders_above(claim: str) -> list[str]:
    """The folders `claim` lies in, each as a folder claim ("", "a/", "a/b/" for "a/b/c" and "a/b/c/")."""
    parts = claim.rstrip("/").split("/")[:-1] if claim else []
    return ["", *("/".join(parts[: i + 1]) + "/" for i in range(len(parts)))]


def _distinct(
    destination: Destination, destinations: Mapping[str, Destination], claims: Claims, diagnostics: list[Diagnostic]
) -> bool:
    doc = destination.source
    if destination.name in destinations:
        first = destinations[destination.name].source
        diagnostics.append(
            Diagnostic.at(
                doc,
                ("metadata", "name"),
                "destination.duplicate",
                f"Destination {destination.name!r} is already defined at {first.path}:{first.line}",
                object=object_name(doc),
            )
        )
        return False
    layout = destination.layout
    problem = overlap_problem(
        destination, destinations.values() if claims.overlaps(layout.root, layout.claims()) else ()
    )
    if problem is not None:
        diagnostics.append(
            Diagnostic.at(doc, ("spec", "path"), "destination.duplicate-path", problem, object=object_name(doc))
        )
        return False
    return True


def overlap_problem(destination: Destination, others: Any) -> str | None:
    """Why `destination` cannot sit beside `others` (its files would lie where theirs or the bookkeeping are)."""
    claims = destination.layout.claims()
    for claim in claims:
        if paths.overlapping(claim, paths.bookkeeping_claim()):
            return (
                f"its files ({claim or 'the whole of its store'}) would lie in {paths.BOOKKEEPING}/, the "
                "compiler's own folder of the output repo: give it a path, or another state store"
            )
    for other in others:
        if other.layout.root == destination.layout.root:
            where = f" in GitStateStore {destination.store!r}" if destination.store else ""
            return f"path {destination.path or '/'!r}{where} is already used by Destination {other.name!r}"
        for claim in claims:
            clash = next((c for c in other.layout.claims() if paths.overlapping(claim, c)), None)
            if clash is not None:
                where = f"in GitStateStore {destination.store!r}" if destination.store else "in the output repo"
                return (
                    f"path {destination.path or '/'!r} {where} overlaps Destination {other.name!r} "
                    f"(its files would lie where that one's are: {clash or 'the whole store'})"
                )
    return None


def _store(doc: SourceDoc, diagnostics: list[Diagnostic]) -> StateStore | None:
    body = doc.body
    if not check_shape(doc, body, shapes.GIT_STATE_STORE, "statestore.shape", diagnostics):
        return None
    name = body["metadata"]["name"]
    if not check_name(doc, ("metadata", "name"), names.dns_subdomain(name), "statestore.name", diagnostics):
        return None
    spec = body["spec"]
    folder = str(spec.get("path") or "").strip("/")
    folder = "" if folder in _ROOT else folder
    if folder and not check_name(
        doc, ("spec", "path"), destination_path_problem(folder), "statestore.path", diagnostics
    ):
        return None
    branch = spec.get("branch") or "main"
    if spec.get("secretRef"):
        diagnostics.append(
            Diagnostic.at(
                doc,
                ("spec", "secretRef"),
                "statestore.secret-ref",
                "secretRef is not read: kratix pushes with the Git credentials of the machine it runs on (a credential "
                "helper, GIT_ASKPASS, SSH keys)",
                severity=Severity.WARNING,
                object=object_name(doc),
            )
        )
    if spec.get("authMethod"):
        diagnostics.append(
            Diagnostic.at(
                doc,
                ("spec", "authMethod"),
                "statestore.auth-method",
                "authMethod is not read: git's own configuration on the machine kratix runs on decides how it "
                "authenticates",
                severity=Severity.WARNING,
                object=object_name(doc),
            )
        )
    author = mapping(spec.get("gitAuthor"))
    identity = (str(author.get("name") or "kratix"), str(author.get("email") or "kratix@localhost")) if author else None
    return StateStore(name=name, url=spec["url"], branch=branch, path=folder, source=doc, author=identity)


def _destination(
    doc: SourceDoc,
    body: Mapping[str, Any],
    diagnostics: list[Diagnostic],
    *,
    stores: Mapping[str, StateStore],
    prefixes: Mapping[str, str],
    known: Inventory,
) -> Destination | None:
    if not check_shape(doc, body, shapes.DESTINATION, "destination.shape", diagnostics):
        return None
    metadata = body["metadata"]
    name = metadata["name"]
    if not check_name(doc, ("metadata", "name"), names.dns_subdomain(name), "destination.name", diagnostics):
        return None
    labels = metadata.get("labels") or {}
    spec = mapping(body.get("spec"))
    filepath = mapping(spec.get("filepath"))
    mode = filepath.get("mode") or paths.NESTED
    filename = filepath.get("filename") or paths.AGGREGATED_FILENAME
    # Every check runs, so one pass reports every field that is wrong, in the order they are written.
    valid = _labels_are_valid(doc, labels, diagnostics)
    path_valid, path = _path(doc, spec, name, diagnostics)
    valid &= path_valid
    valid &= _filename_is_valid(doc, mode, filename, diagnostics)
    usable, store = _store_of(doc, spec, stores, diagnostics)
    valid &= usable
    valid &= _mode_is_unchanged(doc, known.destinations.get(name), mode, diagnostics)
    if not valid:
        return None
    _note_cleanup(doc, spec, diagnostics)
    annotations = mapping(metadata.get("annotations"))
    age = _recipients(doc, annotations, AGE_ANNOTATION, _AGE_RECIPIENT, "an age public key (age1...)", diagnostics)
    pgp = _recipients(doc, annotations, PGP_ANNOTATION, _PGP_FINGERPRINT, "a 40-hex-digit PGP fingerprint", diagnostics)
    root = path if store is None else paths.join(prefixes.get(store.name, store.prefix), store.path, path)
    return Destination(
        name=name,
        path=path,
        labels=dict(labels),
        strict_match_labels=bool(spec.get("strictMatchLabels", False)),
        source=doc,
        sops_age=age,
        sops_pgp=pgp,
        mode=mode,
        filename=filename,
        init_workloads=bool(mapping(spec.get("initWorkloads")).get("enabled", True)),
        store=store.name if store else None,
        root=root,
    )


def _note_cleanup(doc: SourceDoc, spec: Mapping[str, Any], diagnostics: list[Diagnostic]) -> None:
    """Kratix reads `cleanup` when a Destination object is deleted; here removal is the file leaving `clusters/`."""
    if spec.get("cleanup") == "none":
        diagnostics.append(
            Diagnostic.at(
                doc,
                ("spec", "cleanup"),
                "destination.cleanup",
                "cleanup: none is not kept here: removing this Destination from clusters/ removes its folder from the "
                "state store, as Kratix's cleanup: all does, and the deletion guard asks for --allow-deletions first",
                severity=Severity.WARNING,
                object=object_name(doc),
            )
        )


def _labels_are_valid(doc: SourceDoc, labels: Mapping[str, Any], diagnostics: list[Diagnostic]) -> bool:
    valid = True
    for key, value in labels.items():
        problem = names.qualified_name(key) or names.label_value(value)
        valid &= check_name(doc, ("metadata", "labels", key), problem, "destination.labels", diagnostics)
    return valid


def _path(doc: SourceDoc, spec: Mapping[str, Any], name: str, diagnostics: list[Diagnostic]) -> tuple[bool, str]:
    """Whether spec.path is usable, and the Destination's folder in its store (its name when no path is written;
    "" for the root)."""
    written = spec.get("path")
    path = str(written if written else name).strip("/")
    path = "" if path in _ROOT else path
    if not path:
        return True, path
    return check_name(doc, ("spec", "path"), destination_path_problem(path), "destination.path", diagnostics), path


def _filename_is_valid(doc: SourceDoc, mode: str, filename: str, diagnostics: list[Diagnostic]) -> bool:
    """An aggregated Destination's one file: a plain relative path, and not a file the compiler writes itself."""
    if mode != paths.AGGREGATED:
        return True
    problem = names.relative_path(filename) or (
        "is a file the compiler writes itself" if filename.rsplit("/", 1)[-1] in _COMPILER_FILES else None
    )
    return check_name(
        doc,
        ("spec", "filepath", "filename"),
        f"file name {filename!r} {problem}" if problem else None,
        "destination.filename",
        diagnostics,
    )


def _mode_is_unchanged(
    doc: SourceDoc, before: DestinationEntry | None, mode: str, diagnostics: list[Diagnostic]
) -> bool:
    """filepath.mode is immutable in Kratix: a Destination published with one mode keeps it."""
    if before is None or before.mode is None or before.mode == mode:
        return True
    diagnostics.append(
        Diagnostic.at(
            doc,
            ("spec", "filepath", "mode"),
            "destination.mode-changed",
            f"filepath.mode is immutable: this Destination was published with {before.mode}, not {mode} (as in "
            "Kratix, give the Destination a new name, or remove it and add it back, to change it)",
            object=object_name(doc),
        )
    )
    return False


def _store_of(
    doc: SourceDoc, spec: Mapping[str, Any], stores: Mapping[str, StateStore], diagnostics: list[Diagnostic]
) -> tuple[bool, StateStore | None]:
    """Whether spec.stateStoreRef can be used, and its GitStateStore (None: the default store)."""
    ref = mapping(spec.get("stateStoreRef"))
    if not ref:
        return True, None
    if ref.get("kind") == "BucketStateStore":
        message = "a BucketStateStore is not supported: kratix publishes to Git only (use a GitStateStore)"
    elif ref.get("name") in stores:
        return True, stores[ref["name"]]
    else:
        message = (
            f"no GitStateStore named {ref.get('name')!r} in clusters/ (state stores: "
            f"{', '.join(sorted(stores)) or 'none'})"
        )
    diagnostics.append(
        Diagnostic.at(doc, ("spec", "stateStoreRef"), "destination.state-store", message, object=object_name(doc))
    )
    return False, None


def _recipients(
    doc: SourceDoc,
    annotations: Mapping[str, Any],
    key: str,
    pattern: re.Pattern[str],
    what: str,
    diagnostics: list[Diagnostic],
) -> tuple[str, ...]:
    found = tuple(str(annotations.get(key) or "").replace(",", " ").split())
    wrong = [value for value in found if not pattern.fullmatch(value)]
    if wrong:
        diagnostics.append(
            Diagnostic.at(
                doc,
                ("metadata", "annotations", key),
                "destination.sops-recipient",
                f"{wrong[0]!r} is not {what}; no Secret is encrypted for this Destination until it is fixed",
                object=object_name(doc),
            )
        )
        return ()
    return found
