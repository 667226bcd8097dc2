"""Load: the input repo (a work tree or one Git commit) → typed Promises, Destinations and resource requests.

In: a `SourceTree` ({path: bytes} of `promises/`, `clusters/`, `requests/`). Out: a `Platform` and the
diagnostics of everything that could not be read as what its folder says it is. Nothing is validated against a
request schema here: requests keep the body as written (namespace filled in from their folder).
Refuses: YAML that does not parse, documents that are not objects, two Promises with one name, a request whose
namespace contradicts its folder, Destinations sharing a name or a path, duplicate requests.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from kratix import gitio, migrate, yamltext
from kratix.diagnostics import Diagnostic, Severity
from kratix.documents import SourceDoc, SourceTree
from kratix.errors import SourceError
from kratix.platform import (
    API_GROUP,
    PROMISE_VERSION_LABEL,
    ApiRef,
    Container,
    Destination,
    Pipeline,
    Platform,
    Promise,
    RequestKey,
    RequiredPromise,
    ResourceRequest,
    Selector,
)

INPUT_FOLDERS = ("promises", "clusters", "requests")
YAML_SUFFIXES = (".yaml", ".yml")


# --- the I/O edge -------------------------------------------------------------------------------------------

def read_worktree(root: Path) -> SourceTree:
    """The input folders as they are on disk (hidden files and folders skipped)."""
    if not root.is_dir():
        raise SourceError(f"{root}: not a directory")
    files: dict[str, bytes] = {}
    for folder in INPUT_FOLDERS:
        base = root / folder
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in filenames:
                if filename.startswith("."):
                    continue
                full = Path(dirpath) / filename
                files[full.relative_to(root).as_posix()] = full.read_bytes()
    return SourceTree(files=files, commit=None, origin=str(root))


def read_commit(root: Path, ref: str) -> SourceTree:
    """The input folders at one Git commit, read from the object store (no checkout, work tree ignored)."""
    commit = gitio.resolve_commit(root, ref)
    files = gitio.read_tree(root, commit)
    wanted = {path: data for path, data in files.items()
              if path.split("/", 1)[0] in INPUT_FOLDERS and not _hidden(path)}
    return SourceTree(files=wanted, commit=commit, origin=str(root))


def _mapping(value: Any) -> Mapping[str, Any]:
    """`value` if it is a mapping, else an empty one: the input is unvalidated, any field may hold anything."""
    return value if isinstance(value, Mapping) else {}


def _hidden(path: str) -> bool:
    return any(part.startswith(".") for part in path.split("/"))


# --- the pure part ------------------------------------------------------------------------------------------

SkipRequests = Callable[[Mapping[str, Promise], Mapping[str, Destination]], frozenset[str]]


def parse_platform(tree: SourceTree, *, skip_requests: SkipRequests | None = None
                   ) -> tuple[Platform, list[Diagnostic]]:
    """`skip_requests`, given the parsed Promises and Destinations, names request files not to parse (the
    caller reuses what it knows of them)."""
    diagnostics: list[Diagnostic] = []
    promise_docs, promise_file_problems = _promise_documents(tree, diagnostics)
    promises = _promises(promise_docs, diagnostics)
    template_folders = {_join(p.folder, c.template) for p in promises.values()
                        for pl in (*p.promise_configure, *p.resource_configure)
                        for c in pl.containers if c.template}
    # A YAML file beside a Promise that does not parse is an error unless it lives in a template folder:
    # the render stage reports those with the step that uses them.
    diagnostics.extend(d for d in promise_file_problems
                       if not any(d.file.startswith(folder + "/") for folder in template_folders))
    destinations = _destinations(tree, diagnostics)
    skip = skip_requests(promises, destinations) if skip_requests else frozenset()
    requests = _requests(tree, promises, diagnostics, skip)
    return Platform(promises=promises, destinations=destinations, requests=requests,
                    commit=tree.commit), diagnostics


def _yaml_files(tree: SourceTree, folder: str) -> Iterator[tuple[str, bytes]]:
    for path in sorted(tree.under(folder)):
        if path.endswith(YAML_SUFFIXES):
            yield path, tree.files[path]


def _parse_file(path: str, data: bytes, diagnostics: list[Diagnostic]) -> list[SourceDoc]:
    docs, problems = yamltext.load_documents(path, data)
    for problem in problems:
        severity = Severity.ERROR
        diagnostics.append(Diagnostic(path, problem.line, problem.column, _dotted(problem.path), problem.code,
                                      problem.message, severity))
    return docs


def _dotted(path: Iterable[object]) -> str:
    from kratix.diagnostics import format_path
    return format_path(path)


def _object_name(doc: SourceDoc) -> str:
    body = doc.body if isinstance(doc.body, Mapping) else {}
    metadata = _mapping(body.get("metadata"))
    name = metadata.get("name", "?") if isinstance(metadata, Mapping) else "?"
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    where = f"{namespace}/{name}" if namespace else str(name)
    return f"{body.get('kind', '?')} {where}"


def _is_platform_kind(body: Any, *kinds: str) -> bool:
    return (isinstance(body, Mapping) and body.get("kind") in kinds
            and str(body.get("apiVersion", "")).split("/", 1)[0] == API_GROUP)


# --- Promises -----------------------------------------------------------------------------------------------

def _promise_documents(tree: SourceTree, diagnostics: list[Diagnostic]) -> tuple[list[SourceDoc], list[Diagnostic]]:
    found: list[SourceDoc] = []
    file_problems: list[Diagnostic] = []
    for path, data in _yaml_files(tree, "promises"):
        for doc in _parse_file(path, data, file_problems):
            if _is_platform_kind(doc.body, "Promise"):
                found.append(doc)
    return found, file_problems


def _upgraded(doc: SourceDoc, code: str, diagnostics: list[Diagnostic]) -> Any:
    """The document in today's format; each seed-era field it used is a deprecation warning."""
    upgrade = migrate.upgrade_document(doc.body)
    for path, note in upgrade.notes:
        diagnostics.append(Diagnostic.at(doc, path, code, note, severity=Severity.WARNING, object=_object_name(doc)))
    return upgrade.body


def _promises(docs: list[SourceDoc], diagnostics: list[Diagnostic]) -> dict[str, Promise]:
    promises: dict[str, Promise] = {}
    kinds: dict[tuple[str, str], str] = {}
    for doc in docs:
        promise = _promise(doc, _upgraded(doc, "promise.deprecated-field", diagnostics), diagnostics)
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
    subject = _object_name(doc)
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
        promise_configure=_pipelines(doc, workflows, "promise", diagnostics, subject),
        resource_configure=_pipelines(doc, workflows, "resource", diagnostics, subject),
        version=str(labels.get(PROMISE_VERSION_LABEL)) if isinstance(labels, Mapping)
        and labels.get(PROMISE_VERSION_LABEL) is not None else None,
    )


def _api_ref(crd: Any) -> ApiRef | None:
    """The request API a CRD declares, if it is well-formed enough to match requests (the schema stage says
    what is wrong with it otherwise)."""
    if not isinstance(crd, Mapping) or not isinstance(crd.get("spec"), Mapping):
        return None
    spec = crd["spec"]
    names = _mapping(spec.get("names"))
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


def _pipelines(doc: SourceDoc, workflows: Any, workflow: str, diagnostics: list[Diagnostic],
               subject: str) -> tuple[Pipeline, ...]:
    if not isinstance(workflows, Mapping):
        return ()
    section = workflows.get(workflow) or {}
    raw = section.get("configure") if isinstance(section, Mapping) else None
    if raw is None:
        return ()
    base = ("spec", "workflows", workflow, "configure")
    if not isinstance(raw, list):
        diagnostics.append(Diagnostic.at(doc, base, "pipeline.shape", "configure must be a list of Pipelines",
                                         object=subject))
        return ()
    pipelines: list[Pipeline] = []
    for index, entry in enumerate(raw):
        pipeline = _pipeline(doc, entry, (*base, index), diagnostics, subject)
        if pipeline is None:
            continue
        if any(p.name == pipeline.name for p in pipelines):
            diagnostics.append(Diagnostic.at(doc, (*base, index, "metadata", "name"), "pipeline.duplicate",
                                             f"pipeline name {pipeline.name!r} is used twice in the {workflow} "
                                             "workflow", object=subject))
            continue
        pipelines.append(pipeline)
    return tuple(pipelines)


def _pipeline(doc: SourceDoc, entry: Any, path: tuple[str | int, ...], diagnostics: list[Diagnostic],
              subject: str) -> Pipeline | None:
    def problem(sub: tuple[str | int, ...], message: str) -> None:
        diagnostics.append(Diagnostic.at(doc, (*path, *sub), "pipeline.shape", message, object=subject))

    if not isinstance(entry, Mapping):
        problem((), "a pipeline must be a Pipeline object")
        return None
    metadata = _mapping(entry.get("metadata"))
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        problem(("metadata", "name"), "a pipeline needs metadata.name")
        return None
    spec = _mapping(entry.get("spec"))
    raw_containers = spec.get("containers")
    if not isinstance(raw_containers, list) or not raw_containers:
        problem(("spec", "containers"), "a pipeline needs a non-empty list of containers")
        return None
    containers = []
    for index, raw in enumerate(raw_containers):
        where = ("spec", "containers", index)
        if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
            problem(where, "a container needs a name")
            return None
        template, image, command = raw.get("template"), raw.get("image"), raw.get("command")
        if template is not None and image is not None:
            problem(where, "a container has either `template` (a native step) or `image`, not both")
            return None
        if template is None and image is None and not command:
            problem(where, "a container needs `template`, `image` or `command`")
            return None
        if template is not None and (not isinstance(template, str) or _escapes(template)):
            problem((*where, "template"), "template must be a folder inside the Promise's folder")
            return None
        containers.append(Container(
            name=raw["name"],
            template=template,
            image=str(image) if image is not None else None,
            command=_strings(command),
            args=_strings(raw.get("args")),
            env=tuple((str(e["name"]), str(e.get("value", ""))) for e in raw.get("env") or []
                      if isinstance(e, Mapping) and e.get("name")),
            body=raw,
        ))
    return Pipeline(name=name, containers=tuple(containers), body=entry)


def _strings(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (raw,)
    return tuple(str(item) for item in raw) if isinstance(raw, list) else (str(raw),)


def _escapes(relative: str) -> bool:
    path = PurePosixPath(relative)
    return path.is_absolute() or ".." in path.parts


def _join(folder: str, relative: str) -> str:
    return str(PurePosixPath(folder, relative))


# --- Destinations -------------------------------------------------------------------------------------------

def _destinations(tree: SourceTree, diagnostics: list[Diagnostic]) -> dict[str, Destination]:
    destinations: dict[str, Destination] = {}
    paths: dict[str, str] = {}
    for path, data in _yaml_files(tree, "clusters"):
        for doc in _parse_file(path, data, diagnostics):
            if not _is_platform_kind(doc.body, "Destination", "Cluster"):
                diagnostics.append(Diagnostic.at(doc, ("kind",), "destination.kind",
                                                 "clusters/ holds only platform.kratix.io Destination documents",
                                                 object=_object_name(doc)))
                continue
            destination = _destination(doc, _upgraded(doc, "destination.deprecated", diagnostics), diagnostics)
            if destination is None:
                continue
            if destination.name in destinations:
                first = destinations[destination.name].source
                diagnostics.append(Diagnostic.at(doc, ("metadata", "name"), "destination.duplicate",
                                                 f"Destination {destination.name!r} is already defined at "
                                                 f"{first.path}:{first.line}", object=_object_name(doc)))
                continue
            if destination.path in paths:
                diagnostics.append(Diagnostic.at(doc, ("spec", "path"), "destination.duplicate-path",
                                                 f"path {destination.path!r} is already used by Destination "
                                                 f"{paths[destination.path]!r}", object=_object_name(doc)))
                continue
            destinations[destination.name] = destination
            paths[destination.path] = destination.name
    return destinations


def _destination(doc: SourceDoc, body: Mapping[str, Any], diagnostics: list[Diagnostic]) -> Destination | None:
    metadata = _mapping(body.get("metadata"))
    name = metadata.get("name")
    subject = _object_name(doc)
    if not isinstance(name, str) or not name:
        diagnostics.append(Diagnostic.at(doc, ("metadata", "name"), "destination.name",
                                         "a Destination needs metadata.name", object=subject))
        return None
    spec = _mapping(body.get("spec"))
    path = str(spec.get("path") or name).strip("/")
    if _escapes(path) or path.startswith(".kratix") or not path:
        diagnostics.append(Diagnostic.at(doc, ("spec", "path"), "destination.path",
                                         "path must be a relative folder of the output repo (not .kratix)",
                                         object=subject))
        return None
    labels = _mapping(metadata.get("labels"))
    return Destination(name=name, path=path, labels={str(k): str(v) for k, v in labels.items()},
                       strict_match_labels=bool(spec.get("strictMatchLabels", False)), source=doc)


# --- Requests -----------------------------------------------------------------------------------------------

def _requests(tree: SourceTree, promises: Mapping[str, Promise], diagnostics: list[Diagnostic],
              skip: frozenset[str]) -> tuple[ResourceRequest, ...]:
    by_kind = {(p.api.group, p.api.kind): p for p in promises.values() if p.api is not None}
    requests: list[ResourceRequest] = []
    seen: dict[RequestKey, SourceDoc] = {}
    for path, data in _yaml_files(tree, "requests"):
        if path in skip:
            continue
        folder_namespace = _folder_namespace(path)
        for doc in _parse_file(path, data, diagnostics):
            request = _request(doc, folder_namespace, by_kind, diagnostics)
            if request is None:
                continue
            if request.key in seen:
                first = seen[request.key]
                diagnostics.append(Diagnostic.at(doc, ("metadata", "name"), "request.duplicate",
                                                 f"{request.key} is already requested at {first.path}:{first.line}",
                                                 object=str(request.key)))
                continue
            seen[request.key] = doc
            requests.append(request)
    return tuple(requests)


def _folder_namespace(path: str) -> str | None:
    parts = path.split("/")
    return parts[1] if len(parts) > 2 else None


def _request(doc: SourceDoc, folder_namespace: str | None, by_kind: Mapping[tuple[str, str], Promise],
             diagnostics: list[Diagnostic]) -> ResourceRequest | None:
    body = doc.body
    subject = _object_name(doc)
    if not isinstance(body, Mapping):
        diagnostics.append(Diagnostic.at(doc, (), "request.not-object",
                                         "a resource request must be a Kubernetes object, not a "
                                         f"{type(body).__name__}"))
        return None
    api_version, kind = body.get("apiVersion"), body.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        diagnostics.append(Diagnostic.at(doc, ("apiVersion",) if not isinstance(api_version, str) else ("kind",),
                                         "request.not-object", "a resource request needs apiVersion and kind",
                                         object=subject))
        return None
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    promise = by_kind.get((group, kind))
    if promise is None:
        served = ", ".join(sorted(f"{k} ({g})" for g, k in by_kind)) or "none"
        diagnostics.append(Diagnostic.at(doc, ("kind",), "request.unknown-kind",
                                         f"no Promise serves {kind} in group {group or '(core)'}; "
                                         f"served kinds: {served}",
                                         object=subject))
        return None
    metadata = body.get("metadata")
    if not isinstance(metadata, Mapping):
        diagnostics.append(Diagnostic.at(doc, ("metadata",), "request.metadata", "a request needs metadata.name",
                                         object=subject))
        return None
    namespace = metadata.get("namespace")
    if namespace is None:
        namespace = folder_namespace or "default"
        body = {**body, "metadata": {**metadata, "namespace": namespace}}
    elif folder_namespace is not None and namespace != folder_namespace:
        diagnostics.append(Diagnostic.at(doc, ("metadata", "namespace"), "request.namespace",
                                         f"namespace {namespace!r} differs from its folder requests/{folder_namespace}/"
                                         " (the folder decides who may request what where)", object=subject))
        return None
    name = metadata.get("name")
    if not isinstance(name, str) or not isinstance(namespace, str):
        diagnostics.append(Diagnostic.at(doc, ("metadata", "name"), "request.metadata",
                                         "metadata.name and metadata.namespace must be strings", object=subject))
        return None
    return ResourceRequest(key=RequestKey(kind, namespace, name), api_version=api_version, promise=promise.name,
                           source=doc, body=body)
