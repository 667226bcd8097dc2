"""Promises: the documents of `promises/` → typed `Promise`s, keyed by name.

In: a `SourceTree`. Out: the Promise documents of `promises/` (other documents there are templates and files for
steps, left alone), the problems of files that do not parse (kept apart: the caller drops those in template
folders), and each Promise with its request API, dependencies, Destination selectors, required Promises and
pipelines (`kratix.load.pipelines`). A Promise is read whole or not at all: one that cannot be read is reported
and left out, and the caller treats its file as broken (`kratix.memory.inventory`).
Refuses: a `kind: Promise` whose apiVersion is not platform.kratix.io/v1alpha1; a platform.kratix.io document of
a kind kratix does not read from `promises/`; a `promise.yaml` holding no Promise; a Promise of the wrong shape
(`kratix.load.shapes.PROMISE`: an unknown spec field, `destinationSelectors` as a mapping, ...); a name that is not
a DNS-1123 subdomain of at most 63 characters (it is a label value and a folder); a pipeline it cannot read; two
Promises with one name; two Promises serving one kind of one group, or one CRD (plural and group).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import PurePosixPath
from typing import Any

from kratix.apiserver import crdtypes
from kratix.load import shapes
from kratix.load.pipelines import parse_pipelines, report_cluster_access
from kratix.load.shared import check_name, check_shape, mapping, object_name, parse_file, upgraded, yaml_files
from kratix.model import limits, names
from kratix.model.diagnostics import Diagnostic
from kratix.model.documents import FieldPath, SourceDoc, SourceTree
from kratix.model.platform import (
    API_GROUP,
    API_VERSION,
    PROMISE_VERSION_LABEL,
    ApiRef,
    Promise,
    RequiredPromise,
    Selector,
)

PROMISE_FILES = ("promise.yaml", "promise.yml")
TEMPLATE_FILES = (".j2", ".yaml", ".yml")  # what a native template step renders or copies
# platform.kratix.io documents a Promise's folder may hold beside it, which a compile has no use for.
_IGNORED_KINDS = frozenset({"PromiseRelease"})


def promise_documents(tree: SourceTree) -> tuple[list[SourceDoc], list[Diagnostic], list[Diagnostic]]:
    """The Promise documents of `promises/`; the problems of files that do not parse; the problems of documents
    meant as Promises that are not (a wrong apiVersion or kind, a promise.yaml holding something else)."""
    found: list[SourceDoc] = []
    file_problems: list[Diagnostic] = []
    misnamed: list[Diagnostic] = []
    for path, data in yaml_files(tree, "promises"):
        promise_file = PurePosixPath(path).name in PROMISE_FILES
        for doc in parse_file(path, data, file_problems):
            problem = _misnamed(doc.body, promise_file=promise_file)
            if problem is None:
                if doc.body.get("kind") == "Promise":
                    found.append(doc)
                continue
            where, why = problem
            misnamed.append(Diagnostic.at(doc, where, "promise.kind", why, object=object_name(doc)))
    return found, file_problems, misnamed


def _misnamed(body: Mapping[str, Any], *, promise_file: bool) -> tuple[FieldPath, str] | None:
    """Where and why a document that means to be a Promise is not one; None for a Promise, and for a document
    that is none of kratix's business (a template's static file, an example request)."""
    api_version, kind = body.get("apiVersion"), body.get("kind")
    if not isinstance(kind, str):
        kind = repr(kind)  # any value may stand here: only its text is shown
    if kind == "Promise" and api_version == API_VERSION:
        return None
    if kind == "Promise":
        return ("apiVersion",), f"a Promise must have apiVersion {API_VERSION} (got {api_version!r})"
    group = api_version.split("/", 1)[0] if isinstance(api_version, str) else None
    if group == API_GROUP and kind not in _IGNORED_KINDS:
        return ("kind",), (
            f"kind {kind!r} of {api_version} is not read from promises/: a Promise is kind "
            "Promise (Destinations live in clusters/)"
        )
    if promise_file and kind not in _IGNORED_KINDS:
        return ("kind",), f"{PROMISE_FILES[0]} must hold a Promise (kind: Promise, apiVersion: {API_VERSION})"
    return None


def parse_promises(docs: list[SourceDoc], diagnostics: list[Diagnostic], tree: SourceTree) -> dict[str, Promise]:
    folders = {
        str(PurePosixPath(path).parent)
        for path in tree.files
        if path.startswith("promises/")
        and path.endswith(TEMPLATE_FILES)
        and not PurePosixPath(path).name.startswith("_")
    }
    promises: dict[str, Promise] = {}
    kinds: dict[tuple[str, str], str] = {}
    plurals: dict[tuple[str, str], str] = {}
    for doc in docs:
        base = PurePosixPath(doc.path).parent

        def has_templates(folder: str, base: PurePosixPath = base) -> bool:
            prefix = str(base / folder)
            return any(f == prefix or f.startswith(prefix + "/") for f in folders)

        promise = _promise(doc, upgraded(doc, "promise.deprecated-field", diagnostics), diagnostics, has_templates)
        if promise is None:
            continue
        if promise.name in promises:
            first = promises[promise.name].source
            diagnostics.append(
                Diagnostic.at(
                    doc,
                    ("metadata", "name"),
                    "promise.duplicate",
                    f"Promise {promise.name!r} is already defined at {first.path}:{first.line}",
                    object=f"Promise {promise.name}",
                )
            )
            continue
        if promise.api is not None:
            api, taken = promise.api, None
            if (api.group, api.kind) in kinds:
                taken = (
                    f"kind {api.kind} of group {api.group} is already served by Promise {kinds[api.group, api.kind]!r}"
                )
            elif (api.group, api.plural) in plurals:
                # One CRD (<plural>.<group>): Kratix would overwrite the other Promise's versions with these.
                taken = (
                    f"CustomResourceDefinition {api.plural}.{api.group} is already the API of Promise "
                    f"{plurals[api.group, api.plural]!r}"
                )
            if taken is not None:
                diagnostics.append(
                    Diagnostic.at(
                        doc, ("spec", "api"), "promise.duplicate-api", taken, object=f"Promise {promise.name}"
                    )
                )
                continue
            kinds[api.group, api.kind] = plurals[api.group, api.plural] = promise.name
        promises[promise.name] = promise
    return promises


def promise_name_problem(name: Any) -> str | None:
    problem = names.dns_subdomain(name)
    if problem is None and len(name) > limits.DNS_LABEL_MAX:
        problem = f"must be at most {limits.DNS_LABEL_MAX} characters: it is a label value (got {len(name)})"
    return problem


def _promise(
    doc: SourceDoc, body: Mapping[str, Any], diagnostics: list[Diagnostic], has_templates: Callable[[str], bool]
) -> Promise | None:
    subject = object_name(doc)
    if not check_shape(doc, body, shapes.PROMISE, "promise.shape", diagnostics):
        return None
    metadata = body["metadata"]
    name = metadata["name"]
    if not check_name(doc, ("metadata", "name"), promise_name_problem(name), "promise.name", diagnostics):
        return None
    spec = mapping(body.get("spec"))
    workflows = spec.get("workflows") or {}
    promise_configure, promise_ok = parse_pipelines(
        doc, workflows, "promise", diagnostics, subject, name, has_templates
    )
    resource_configure, resource_ok = parse_pipelines(
        doc, workflows, "resource", diagnostics, subject, name, has_templates
    )
    if not (promise_ok and resource_ok):
        return None
    report_cluster_access(doc, workflows, diagnostics, subject)
    crd = spec.get("api")
    labels = metadata.get("labels") or {}
    return Promise(
        name=name,
        source=SourceDoc(doc.path, doc.index, doc.line, body, doc.positions),
        folder=str(PurePosixPath(doc.path).parent),
        api=api_ref(crd),
        crd=crd,
        dependencies=tuple(spec.get("dependencies") or ()),
        selectors=tuple(
            Selector(dict(entry.get("matchLabels") or {})) for entry in spec.get("destinationSelectors") or ()
        ),
        required=tuple(
            RequiredPromise(entry["name"], entry.get("version") or None) for entry in spec.get("requiredPromises") or ()
        ),
        promise_configure=promise_configure,
        resource_configure=resource_configure,
        version=labels.get(PROMISE_VERSION_LABEL),
    )


def api_ref(crd: Any) -> ApiRef | None:
    """The request API a CRD declares, read as Kratix reads it (`kratix.apiserver.crdtypes`: a v1 CRD whatever
    apiVersion
    it declares), if it is well-formed enough to match requests (the schema stage says what is wrong with it
    otherwise). Its version is the storage version, the first with `storage: true` else the first: the version
    Kratix reads requests at and hands its pipelines."""
    decoded = crdtypes.decode(crd).crd
    spec = mapping((decoded or {}).get("spec"))
    names_ = mapping(spec.get("names"))
    versions = [v for v in spec.get("versions") or [] if v.get("name")]
    if not (spec.get("group") and names_.get("kind") and versions):
        return None
    storage = next((v for v in versions if v.get("storage")), versions[0])
    plural = names_.get("plural") or str(names_["kind"]).lower() + "s"
    return ApiRef(group=str(spec["group"]), version=str(storage["name"]), kind=str(names_["kind"]), plural=str(plural))
