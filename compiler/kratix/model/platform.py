"""The platform as typed data: Promises, their pipelines, Destinations and resource requests.

The load stage builds these from `SourceDoc`s; nothing here is validated against a request schema yet
(`ResourceRequest.body` is the request as written; the schema stage returns the defaulted body).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from kratix.model import paths
from kratix.model.documents import SourceDoc

API_GROUP = "platform.kratix.io"
API_VERSION = f"{API_GROUP}/v1alpha1"
PROMISE_VERSION_LABEL = "kratix.io/promise-version"


@dataclass(frozen=True)
class Container:
    """One step of a pipeline. Exactly one of `template`, `command` or `image` says how it runs."""

    name: str
    template: str | None = None  # our native Jinja2 step: a folder relative to the Promise's folder
    image: str | None = None  # a real Kratix container image
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    body: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Pipeline:
    name: str
    containers: tuple[Container, ...]
    body: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Selector:
    """One `destinationSelectors` entry: labels that a destination must carry."""

    match_labels: Mapping[str, str]


@dataclass(frozen=True)
class RequiredPromise:
    name: str
    version: str | None


@dataclass(frozen=True)
class ApiRef:
    group: str
    version: str  # the storage version (else the first served)
    kind: str
    plural: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


@dataclass(frozen=True)
class Promise:
    name: str
    source: SourceDoc
    folder: str  # the folder of the Promise file: step files are addressed relative to it
    api: ApiRef | None  # None for a Promise with no API (dependencies only)
    crd: Mapping[str, Any] | None
    dependencies: tuple[Mapping[str, Any], ...] = ()
    selectors: tuple[Selector, ...] = ()
    required: tuple[RequiredPromise, ...] = ()
    promise_configure: tuple[Pipeline, ...] = ()
    resource_configure: tuple[Pipeline, ...] = ()
    version: str | None = None  # the `kratix.io/promise-version` label
    # Why this Promise could not be read now, when its file is broken: it stands in, from what the last compile
    # knew of it (name and API), so that its requests and dependencies keep their published output.
    broken: str | None = None

    @property
    def body(self) -> Mapping[str, Any]:
        return self.source.body

    @property
    def runs_programs(self) -> bool:
        """Whether its resource workflow runs commands or images (slow, and parallel across requests)."""
        return any(c.template is None for p in self.resource_configure for c in p.containers)


@dataclass(frozen=True)
class StateStore:
    """A GitStateStore: the repo, branch and folder its Destinations' files go to."""

    name: str
    url: str  # a Git URL, or a local path (as --output-repo)
    branch: str
    path: str  # the folder in the repo ("" for its root)
    source: SourceDoc
    author: tuple[str, str] | None = None  # spec.gitAuthor (name, email) for its commits

    @property
    def prefix(self) -> str:
        """Where its files are in the output tree (see `kratix.model.paths`), unless it shares the default store's."""
        return paths.store_prefix(self.name)


@dataclass(frozen=True)
class Destination:
    name: str
    path: str  # spec.path (default: the name), "" for the root of its state store's path
    labels: Mapping[str, str]
    strict_match_labels: bool
    source: SourceDoc
    broken: str | None = None  # why its file cannot be read now: it stands in as the last compile knew it
    # SOPS recipients (annotations kratix.io/sops-age-recipients, kratix.io/sops-pgp-fingerprints): Secrets bound
    # for this destination are encrypted for them before they are written
    sops_age: tuple[str, ...] = ()
    sops_pgp: tuple[str, ...] = ()
    mode: str = paths.NESTED  # spec.filepath.mode
    filename: str = paths.AGGREGATED_FILENAME  # spec.filepath.filename (aggregatedYAML)
    init_workloads: bool = True  # spec.initWorkloads.enabled: Kratix's canary files
    store: str | None = None  # the GitStateStore of spec.stateStoreRef; None: the default store (--output-repo)
    root: str | None = None  # its folder in the output tree (`kratix.model.paths`); None: `path`, in the default store

    @property
    def encrypts_secrets(self) -> bool:
        return bool(self.sops_age or self.sops_pgp)

    @cached_property
    def layout(self) -> paths.Layout:
        return paths.Layout(
            self.name, self.path if self.root is None else self.root, self.mode, self.filename, self.path
        )


@dataclass(frozen=True, slots=True)
class RequestKey:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class ResourceRequest:
    key: RequestKey
    api_version: str
    promise: str  # the name of the Promise serving this kind
    source: SourceDoc
    body: Mapping[str, Any]  # as written, namespace filled in from the folder when absent

    def located(self) -> ResourceRequest:
        """This request by its identity and where it was read, its body let go (`SourceDoc.located`)."""
        return ResourceRequest(self.key, self.api_version, self.promise, self.source.located(), {})


@dataclass(frozen=True)
class HeldRequest:
    """A request the last compile read from a file that is broken now: it keeps its published output, and its
    status says why, until its file reads again (or is deleted, which deletes the request)."""

    key: RequestKey
    api_version: str
    promise: str
    file: str
    why: str


@dataclass(frozen=True)
class ConfigObject:
    """A ConfigMap or Secret of `config/<namespace>/` that pipeline steps read (a Secret SOPS-encrypted)."""

    kind: str  # "ConfigMap" or "Secret"
    namespace: str
    name: str
    source: str  # its file
    body: Mapping[str, Any] = field(compare=False, repr=False)


@dataclass(frozen=True)
class Platform:
    promises: Mapping[str, Promise]  # by name
    destinations: Mapping[str, Destination]  # by name
    requests: tuple[ResourceRequest, ...]
    commit: str | None = None
    held: tuple[HeldRequest, ...] = ()
    stores: Mapping[str, StateStore] = field(default_factory=dict)  # the GitStateStores, by name
    configs: Mapping[tuple[str, str, str], ConfigObject] = field(default_factory=dict)  # by (kind, namespace, name)
