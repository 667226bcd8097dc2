"""Resource requests: the documents of `requests/<namespace>/...` → `ResourceRequest`s, in path order.

In: a `SourceTree`, the parsed Promises (to find the one serving each request's group and kind) and the request
files not to parse. Out: each request with its body as written, the namespace filled in from its folder (or
`default` for a file directly under `requests/`); nothing is checked against the Promise's schema here, but the
identity of every request is: its name and namespace become folders and labels before anything else happens.
Refuses: a folder under `requests/` that is not a valid namespace name (every file in it); a document without
apiVersion/kind; a kind no Promise serves; a request without metadata, or whose name or namespace is not a DNS-1123
label; a namespace that contradicts its folder; a request that sets the labels the compiler gives requests
(`kratix.io/promise-name`, `kratix.io/parent-…`: a request cannot pose as another's output or child); duplicates.
"""

from __future__ import annotations

from collections.abc import Mapping

from kratix.load.shared import check_name, object_name, parse_file, yaml_files
from kratix.model import names
from kratix.model.diagnostics import Diagnostic, Severity
from kratix.model.documents import SourceDoc, SourceTree
from kratix.model.manifests import IDENTITY_LABELS, PARENT_LABEL_PREFIX
from kratix.model.platform import Promise, RequestKey, ResourceRequest

DEFAULT_NAMESPACE = "default"


def parse_requests(
    tree: SourceTree, promises: Mapping[str, Promise], diagnostics: list[Diagnostic], skip: frozenset[str]
) -> tuple[ResourceRequest, ...]:
    by_kind = {(p.api.group, p.api.kind): p for p in promises.values() if p.api is not None}
    requests: list[ResourceRequest] = []
    seen: dict[RequestKey, SourceDoc] = {}
    for path, data in yaml_files(tree, "requests"):
        if path in skip:
            continue
        folder_namespace = folder_namespace_of(path)
        if folder_namespace is not None and names.dns_label(folder_namespace) is not None:
            diagnostics.append(
                Diagnostic(
                    path,
                    1,
                    1,
                    "",
                    "request.namespace",
                    f"folder requests/{folder_namespace}/"
                    f" is not a namespace name: it {names.dns_label(folder_namespace)}",
                    Severity.ERROR,
                )
            )
            continue
        for doc in parse_file(path, data, diagnostics):
            request = _request(doc, folder_namespace, by_kind, diagnostics)
            if request is None:
                continue
            if request.key in seen:
                first = seen[request.key]
                diagnostics.append(
                    Diagnostic.at(
                        doc,
                        ("metadata", "name"),
                        "request.duplicate",
                        f"{request.key} is already requested at {first.path}:{first.line}",
                        object=str(request.key),
                    )
                )
                continue
            seen[request.key] = doc
            requests.append(request)
    return tuple(requests)


def folder_namespace_of(path: str) -> str | None:
    """The namespace folder of a request file (`requests/<namespace>/...`); None directly under `requests/`."""
    parts = path.split("/")
    return parts[1] if len(parts) > 2 else None


def _request(
    doc: SourceDoc,
    folder_namespace: str | None,
    by_kind: Mapping[tuple[str, str], Promise],
    diagnostics: list[Diagnostic],
) -> ResourceRequest | None:
    body = doc.body
    subject = object_name(doc)
    api_version, kind = body.get("apiVersion"), body.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        diagnostics.append(
            Diagnostic.at(
                doc,
                ("apiVersion",) if not isinstance(api_version, str) else ("kind",),
                "request.not-object",
                "a resource request needs apiVersion and kind (strings)",
                object=subject,
            )
        )
        return None
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    promise = by_kind.get((group, kind))
    if promise is None:
        served = ", ".join(sorted(f"{k} ({g})" for g, k in by_kind)) or "none"
        diagnostics.append(
            Diagnostic.at(
                doc,
                ("kind",),
                "request.unknown-kind",
                f"no Promise serves {kind} in group {group or '(core)'}; served kinds: {served}",
                object=subject,
            )
        )
        return None
    metadata = body.get("metadata")
    if not isinstance(metadata, Mapping):
        diagnostics.append(
            Diagnostic.at(doc, ("metadata",), "request.metadata", "a request needs metadata.name", object=subject)
        )
        return None
    namespace = metadata.get("namespace")
    if namespace is None:
        namespace = folder_namespace or DEFAULT_NAMESPACE
        body = {**body, "metadata": {**metadata, "namespace": namespace}}
    elif folder_namespace is not None and namespace != folder_namespace:
        diagnostics.append(
            Diagnostic.at(
                doc,
                ("metadata", "namespace"),
                "request.namespace",
                f"namespace {namespace!r} differs from its folder requests/{folder_namespace}/"
                " (the folder decides who may request what where)",
                object=subject,
            )
        )
        return None
    name = metadata.get("name")
    valid = check_name(
        doc,
        ("metadata", "name"),
        names.dns_label(name) if name is not None else "is required: a request needs metadata.name",
        "request.name",
        diagnostics,
    )
    valid &= check_name(doc, ("metadata", "namespace"), names.dns_label(namespace), "request.namespace", diagnostics)
    labels = metadata.get("labels")
    if isinstance(labels, Mapping):
        for key in labels:
            if key in IDENTITY_LABELS or str(key).startswith(PARENT_LABEL_PREFIX):
                valid &= check_name(
                    doc,
                    ("metadata", "labels", key),
                    f"label {key!r} is set by the compiler, not by a request",
                    "request.labels",
                    diagnostics,
                )
    if not valid:
        return None
    return ResourceRequest(
        key=RequestKey(kind, namespace, str(name)), api_version=api_version, promise=promise.name, source=doc, body=body
    )
