"""Promises: the documents of `promises/` → typed `Promise`s, keyed by name.

In: a `SourceTree`. Out: the platform.kratix.io Promise documents of `promises/` (other documents there are
templates and files for steps, left alone), the problems of files that do not parse (kept apart: the caller
drops those in template folders), and each Promise with its request API, dependencies, Destination selectors,
required Promises and pipelines (`kratix.load.pipelines`).
Refuses: a Promise without metadata.name or with a spec that is not a mapping, dependencies that are not a list,
malformed destinationSelectors, two Promises with one name, two Promises serving one kind of one group.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from kratix.diagnostics import Diagnostic
from kratix.documents import SourceDoc, SourceTree
from kratix.load.pipelines import parse_pipelines
from kratix.load.shared import is_platform_kind, mapping, object_name, parse_file, upgraded, yaml_files
from kratix.platform import PROMISE_VERSION_LABEL, ApiRef, Promise, RequiredPromise, Selector


def promise_documents(tree: SourceTree) -> tuple[list[SourceDoc], list[Diagnostic]]:
    found: list[SourceDoc] = []
    file_problems: list[Diagnostic] = []
    for path, data in yaml_files(tree, "promises"):
        for doc in parse_file(path, data, file_problems):
            if is_platform_kind(doc.body, "Promise"):
                found.append(doc)
    return found, file_problems


def parse_promises(docs: list[SourceDoc], diagnostics: list[Diagnostic]) -> dict[str, Promise]:
    promises: dict[str, Promise] = {}
    kinds: dict[tuple[str, str], str] = {}
    for doc in docs:
        promise = _promise(doc, upgraded(doc, "promise.deprecated-field", diagnostics), diagnostics)
        if promise is None:
            continue
        if promise.name in promises:
            first = promises[promise.name].source
            diagnostics.append(Diagnostic.at(doc, ("metadata", "name"), "promise.duplicate",
                                             f"Promise {promise.name!r} is already defined at "
                                             f"{first.path}:{first.line}",
                                             object=f"Promise {promise.name}"))
            continue
        if promise.api is not None:
            api_key = (promise.api.group, promise.api.kind)
            if api_key in kinds:
                diagnostics.append(Diagnostic.at(
                    doc, ("spec", "api"), "promise.duplicate-api",
                    f"kind {promise.api.kind} of group {promise.api.group} is already served by Promise "
                    f"{kinds[api_key]!r}", object=f"Promise {promise.name}"))
                continue
            kinds[api_key] = promise.name
        promises[promise.name] = promise
    return promises


def _promise(doc: SourceDoc, body: Mapping[str, Any], diagnostics: list[Diagnostic]) -> Promise | None:
    subject = object_name(doc)
    metadata = body.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if not isinstance(name, str) or not name:
        diagnostics.append(Diagnostic.at(doc, ("metadata", "name"), "promise.name", "a Promise needs metadata.name",
                                         object=subject))
        return None
    spec = body.get("spec") or {}
    if not isinstance(spec, Mapping):
        diagnostics.append(Diagnostic.at(doc, ("spec",), "promise.spec", "spec must be a mapping", object=subject))
        return None
    crd = spec.get("api")
    dependencies = spec.get("dependencies") or []
    if not isinstance(dependencies, list):
        diagnostics.append(Diagnostic.at(doc, ("spec", "dependencies"), "promise.dependencies",
                                         "dependencies must be a list of Kubernetes objects", object=subject))
        dependencies = []
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    workflows = spec.get("workflows") or {}
    return Promise(
        name=name,
        source=SourceDoc(doc.path, doc.index, doc.line, body, doc.positions),
        folder=str(PurePosixPath(doc.path).parent),
        api=_api_ref(crd),
        crd=crd if isinstance(crd, Mapping) else None,
        dependencies=tuple(dependencies),
        selectors=_selectors(doc, spec.get("destinationSelectors"), ("spec", "destinationSelectors"),
                             diagnostics, subject),
        required=_required(spec.get("requiredPromises")),
        promise_configure=parse_pipelines(doc, workflows, "promise", diagnostics, subject),
        resource_configure=parse_pipelines(doc, workflows, "resource", diagnostics, subject),
        version=str(labels.get(PROMISE_VERSION_LABEL)) if isinstance(labels, Mapping)
        and labels.get(PROMISE_VERSION_LABEL) is not None else None,
    )


def _api_ref(crd: Any) -> ApiRef | None:
    """The request API a CRD declares, if it is well-formed enough to match requests (the schema stage says
    what is wrong with it otherwise)."""
    if not isinstance(crd, Mapping) or not isinstance(crd.get("spec"), Mapping):
        return None
    spec = crd["spec"]
    names = mapping(spec.get("names"))
    versions = [v for v in spec.get("versions") or [] if isinstance(v, Mapping) and v.get("name")]
    if not (spec.get("group") and names.get("kind") and versions):
        return None
    storage = next((v for v in versions if v.get("storage")), versions[0])
    plural = names.get("plural") or str(names["kind"]).lower() + "s"
    return ApiRef(group=str(spec["group"]), version=str(storage["name"]), kind=str(names["kind"]), plural=str(plural))


def _selectors(doc: SourceDoc, raw: Any, path: tuple[str, ...], diagnostics: list[Diagnostic],
               subject: str) -> tuple[Selector, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        diagnostics.append(Diagnostic.at(doc, path, "promise.selectors",
                                         "destinationSelectors must be a list of {matchLabels: {...}}", object=subject))
        return ()
    selectors = []
    for index, entry in enumerate(raw):
        labels = entry.get("matchLabels") if isinstance(entry, Mapping) else None
        if not isinstance(labels, Mapping):
            diagnostics.append(Diagnostic.at(doc, (*path, index), "promise.selectors",
                                             "each destinationSelectors entry needs matchLabels", object=subject))
            continue
        selectors.append(Selector({str(k): str(v) for k, v in labels.items()}))
    return tuple(selectors)


def _required(raw: Any) -> tuple[RequiredPromise, ...]:
    if not isinstance(raw, list):
        return ()
    return tuple(RequiredPromise(str(entry["name"]), str(entry["version"]) if entry.get("version") else None)
                 for entry in raw if isinstance(entry, Mapping) and entry.get("name"))
