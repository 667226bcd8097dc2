"""Load: the input repo (a work tree or one Git commit) → typed Promises, Destinations and resource requests.

In: a `SourceTree` ({path: bytes} of `promises/`, `clusters/`, `requests/`). Out: a `Platform` and the
diagnostics of everything that could not be read as what its folder says it is. Nothing is validated against a
request schema here: requests keep the body as written (namespace filled in from their folder).
Refuses: YAML that does not parse, documents that are not objects, two Promises with one name, a request whose
namespace contradicts its folder, Destinations sharing a name or a path, duplicate requests.

The modules, by concern: `sources` (the I/O edge: work tree or commit → `SourceTree`), `promises` (with
`pipelines`), `destinations`, `requests`, and `shared` (parsing a file with diagnostics, unvalidated fields).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import PurePosixPath

from kratix.diagnostics import Diagnostic
from kratix.documents import SourceTree
from kratix.load.destinations import parse_destinations
from kratix.load.promises import parse_promises, promise_documents
from kratix.load.requests import parse_requests
from kratix.load.shared import YAML_SUFFIXES
from kratix.load.sources import INPUT_FOLDERS, read_commit, read_worktree
from kratix.platform import Destination, Platform, Promise

__all__ = [
    "INPUT_FOLDERS",
    "YAML_SUFFIXES",
    "SkipRequests",
    "parse_platform",
    "read_commit",
    "read_worktree",
]

SkipRequests = Callable[[Mapping[str, Promise], Mapping[str, Destination]], frozenset[str]]


def parse_platform(tree: SourceTree, *, skip_requests: SkipRequests | None = None
                   ) -> tuple[Platform, list[Diagnostic]]:
    """`skip_requests`, given the parsed Promises and Destinations, names request files not to parse (the
    caller reuses what it knows of them)."""
    diagnostics: list[Diagnostic] = []
    promise_docs, promise_file_problems = promise_documents(tree)
    promises = parse_promises(promise_docs, diagnostics)
    template_folders = {_join(p.folder, c.template) for p in promises.values()
                        for pl in (*p.promise_configure, *p.resource_configure)
                        for c in pl.containers if c.template}
    # A YAML file beside a Promise that does not parse is an error unless it lives in a template folder:
    # the render stage reports those with the step that uses them.
    diagnostics.extend(d for d in promise_file_problems
                       if not any(d.file.startswith(folder + "/") for folder in template_folders))
    destinations = parse_destinations(tree, diagnostics)
    skip = skip_requests(promises, destinations) if skip_requests else frozenset()
    requests = parse_requests(tree, promises, diagnostics, skip)
    return Platform(promises=promises, destinations=destinations, requests=requests,
                    commit=tree.commit), diagnostics


def _join(folder: str, relative: str) -> str:
    return str(PurePosixPath(folder, relative))
