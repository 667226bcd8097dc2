"""Shards: the workflows of one compile split over N machines, and their results merged back without running
them again.

`kratix compile --shard I/N` runs only the workflows (Promise and request) of shard I and stores what each one
produced in the output repo under a ref of its own (`ref_name`): a commit whose tree holds a manifest
(`shard.json`: input commit, shard, counts) and the results (`workflows.jsonl`, one line per workflow: its
key, identity and `WorkflowResult`); two files at known paths, so the publishing compile reads every shard of
its commit with one `git cat-file --batch`, whatever N is. The publishing compile then replays those results
instead of running the workflows, and everything after the workflows (placement, validation, conflicts,
statuses, provenance, the request cache) runs as always. So the published tree is the one a compile without
shards writes, byte for byte: the shards only move where the workflows run, never what the compile decides.

What is stored is the workflow's result, not the cache's record of published files: the cache records what
survived assembly (conflicts, validation, placements), which depends on every other request and so cannot be
decided by one shard alone.

Assignment (`assigned`) is a stable hash of the workflow's identity (`Promise <name>`, `<Kind> <ns>/<name>`),
so adding a request moves no other. The requests a compound Promise's workflow emits follow their parent (the
shard that ran the parent knows them; no other does). A result is used only under the key it was stored with
(`workflow_key`): the Promise's fingerprint (its files, images, the compiler's version and settings; see
`kratix.memory.incremental`), the object the workflow ran for and its environment, so a result can never stand in for
another input. Only successful runs are stored: a failure may be passing (a registry down), and the publishing
compile runs it again.

Pure logic: no I/O. The CLI reads and writes the refs (`kratix.gitio`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from kratix.memory import cache, provenance
from kratix.memory.previous import PreviousOutput, WithCarried
from kratix.model import paths
from kratix.model.diagnostics import Diagnostic
from kratix.model.documents import Content, blob_id
from kratix.model.manifests import OutputGroup, PipelineOutput, RenderedFile, Suspension, WorkflowResult
from kratix.model.platform import Pipeline, Promise, ResourceRequest
from kratix.model.statuses import PromiseStatus, RequestStatus
from kratix.workflows import contract, render

FORMAT = 1
REF_PREFIX = "refs/kratix/shards/"
MANIFEST = "shard.json"
RESULTS = "workflows.jsonl"
_TAG = "\x00kratix"  # marks a value JSON has no type for (a non-text key, bytes, a tuple)


class Unstorable(ValueError):
    """A workflow result holds a value the shard format cannot carry exactly: that workflow is not stored."""


# --- which shard --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_spec(spec: str, env: Mapping[str, str]) -> Shard:
    """`I/N` (I from 0 to N-1, as Kubernetes' JOB_COMPLETION_INDEX counts), or `auto/N` to take I from
    JOB_COMPLETION_INDEX. Raises ValueError saying what is wrong."""
    index_text, slash, count_text = spec.partition("/")
    if not slash or not count_text.isdigit() or int(count_text) < 1:
        raise ValueError(f"{spec!r}: expected I/N, e.g. 0/4 (or auto/N with JOB_COMPLETION_INDEX set)")
    if index_text == "auto":
        index_text = env.get("JOB_COMPLETION_INDEX", "")
        if not index_text:
            raise ValueError(f"{spec!r}: auto needs JOB_COMPLETION_INDEX (set by an Indexed Job)")
    if not index_text.isdigit() or int(index_text) >= int(count_text):
        raise ValueError(f"{spec!r}: the shard index must be a number from 0 to {int(count_text) - 1}")
    return Shard(int(index_text), int(count_text))


def assigned(identity: str, count: int) -> int:
    """The shard of a workflow: a hash of its identity alone, so no workflow moves when another comes or goes
    (only a change of N moves them)."""
    digest = hashlib.sha256(identity.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def ref_name(commit: str, shard: Shard) -> str:
    return f"{REF_PREFIX}{commit}/{shard.index}-of-{shard.count}"


def refs_of(commit: str) -> str:
    """The folder of refs holding the shard results of one input commit."""
    return f"{REF_PREFIX}{commit}/"


def shard_of_ref(ref: str, commit: str) -> Shard | None:
    """The shard a ref of `refs_of(commit)` holds; None for a name kratix does not write."""
    index, _, count = ref.removeprefix(refs_of(commit)).partition("-of-")
    if not ref.startswith(refs_of(commit)) or not index.isdigit() or not count.isdigit():
        return None
    return Shard(int(index), int(count)) if int(index) < int(count) else None


# --- the workflow results, as text --------------------------------------------------------------------------


def workflow_identity(workflow_type: str, env: Mapping[str, str]) -> str:
    if workflow_type == "promise":
        return f"Promise {env.get('KRATIX_PROMISE_NAME', '')}"
    return (
        f"{env.get('KRATIX_OBJECT_KIND', '')} {env.get('KRATIX_OBJECT_NAMESPACE', '')}/"
        f"{env.get('KRATIX_OBJECT_NAME', '')}"
    )


def workflow_key(
    fingerprint: str, workflow_type: str, pipelines: Sequence[Pipeline], obj: Mapping[str, Any], env: Mapping[str, str]
) -> str:
    """What a workflow's result depends on: its Promise's fingerprint, the pipelines, the object and the
    environment it runs with."""
    return cache.fingerprint(
        fingerprint,
        workflow_type,
        *(p.name for p in pipelines),
        json.dumps(_pack(obj), separators=(",", ":")),
        *(f"{k}={v}" for k, v in sorted(env.items())),
    )


def encode_result(result: WorkflowResult) -> str:
    if result.failure is not None:
        raise Unstorable("a failed workflow is not stored")
    outputs = [
        {
            "pipeline": o.pipeline,
            "files": [
                {
                    "path": f.path,
                    "documents": [_pack(d) for d in f.documents],
                    "source": f.source,
                    "sandbox": f.sandbox,
                    "images": [list(i) for i in f.images],
                    "raw": None if f.raw is None else base64.b64encode(f.raw).decode(),
                }
                for f in o.files
            ],
            "groups": [{"directory": g.directory, "match_labels": _pack(g.match_labels)} for g in o.groups],
        }
        for o in result.outputs
    ]
    suspension = result.suspension
    return json.dumps(
        {
            "outputs": outputs,
            "status": _pack(result.status),
            "written": list(result.written_keys),
            "suspension": None
            if suspension is None
            else [suspension.pipeline, suspension.message, suspension.retry_after],
        },
        separators=(",", ":"),
    )


def decode_result(text: str) -> WorkflowResult:
    data = json.loads(text, object_hook=_unpack)
    return WorkflowResult(
        outputs=tuple(
            PipelineOutput(
                o["pipeline"],
                tuple(
                    RenderedFile(
                        f["path"],
                        tuple(f["documents"]),
                        f["source"],
                        f["sandbox"],
                        tuple(tuple(i) for i in f["images"]),
                        None if f["raw"] is None else base64.b64decode(f["raw"]),
                    )
                    for f in o["files"]
                ),
                tuple(OutputGroup(g["directory"], g["match_labels"]) for g in o["groups"]),
            )
            for o in data["outputs"]
        ),
        status=data["status"],
        suspension=Suspension(*data["suspension"]) if data.get("suspension") else None,
        written_keys=tuple(data.get("written") or ()),
    )


def _pack(value: Any) -> Any:
    """`value` as JSON that `_unpack` turns back into an equal value of the same types (documents are written
    out again after the merge, and must come out byte for byte as the run wrote them)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        if _TAG not in value and all(isinstance(k, str) for k in value):
            return {k: _pack(v) for k, v in value.items()}
        return {_TAG: "map", "items": [[_pack(k), _pack(v)] for k, v in value.items()]}
    if isinstance(value, list):
        return [_pack(v) for v in value]
    if isinstance(value, tuple):
        return {_TAG: "tuple", "items": [_pack(v) for v in value]}
    if isinstance(value, bytes):
        return {_TAG: "bytes", "items": base64.b64encode(value).decode()}
    raise Unstorable(f"a workflow result holds a {type(value).__name__}")


def _unpack(obj: dict[str, Any]) -> Any:
    tag = obj.get(_TAG)
    if tag is None:
        return obj
    if tag == "map":
        return {k: v for k, v in obj["items"]}
    if tag == "tuple":
        return tuple(obj["items"])
    if tag == "bytes":
        return base64.b64decode(obj["items"])
    raise ValueError(f"unknown value tag {tag!r}")


# --- a shard's result: the tree of its commit ---------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    key: str
    identity: str
    result: str  # `encode_result`'s text; decoded only when used


@dataclass(frozen=True)
class ShardResult:
    shard: Shard
    commit: str
    entries: tuple[Entry, ...]
    failed: tuple[str, ...] = ()  # identities whose workflow failed (or could not be stored): not in entries
    skipped: int = 0  # workflows left to other shards
    carried: int = 0  # requests whose finished output it stores too (`carried_of`)


def result_files(result: ShardResult, *, version: str) -> dict[str, bytes]:
    """The tree of a shard's commit."""
    manifest = {
        "format": FORMAT,
        "kratix": "shard",
        "version": version,
        "commit": result.commit,
        "shard": {"index": result.shard.index, "count": result.shard.count},
        "workflows": len(result.entries),
        "failed": list(result.failed),
    }
    lines = [f"{e.key} {json.dumps(e.identity)} {e.result}\n" for e in sorted(result.entries, key=lambda e: e.key)]
    return {MANIFEST: json.dumps(manifest, indent=1, sort_keys=True).encode() + b"\n", RESULTS: "".join(lines).encode()}


def read_result(files: Mapping[str, bytes], *, commit: str, shard: Shard) -> ShardResult:
    """A shard's tree read back; ValueError (with why) for anything but the result of `shard` for `commit`."""
    try:
        manifest = json.loads(files[MANIFEST])
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"no readable {MANIFEST}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("kratix") != "shard":
        raise ValueError(f"not a shard result of format {FORMAT}")
    if manifest.get("commit") != commit:
        raise ValueError(f"holds the result for input commit {manifest.get('commit')!r}, not {commit}")
    if manifest.get("shard") != {"index": shard.index, "count": shard.count}:
        raise ValueError(f"holds shard {manifest.get('shard')!r}, not {shard}")
    entries = []
    for line in files.get(RESULTS, b"").decode().splitlines():
        key, _, rest = line.partition(" ")
        identity, end = json.JSONDecoder().raw_decode(rest)
        if not isinstance(identity, str) or rest[end : end + 1] != " ":
            raise ValueError(f"{RESULTS}: an unreadable line")
        entries.append(Entry(key, identity, rest[end + 1 :]))
    if len(entries) != manifest.get("workflows"):
        raise ValueError(f"holds {len(entries)} workflow results, its manifest says {manifest.get('workflows')}")
    return ShardResult(shard, commit, tuple(entries), tuple(manifest.get("failed") or ()))


# --- running and replaying workflows (wrappers of the compile's renderer) -----------------------------------


class Workflows:
    """What a compile does with its workflows: `wrap` hands the stages a renderer that records or replays."""

    def wrap(self, renderer: render.Renderer, fingerprints: Mapping[str, str]) -> render.Renderer:
        raise NotImplementedError

    def runs(self, identity: str) -> bool:
        """Whether the workflow of `identity` will run here (rather than be skipped or replayed)."""
        raise NotImplementedError


class _Wrapped(render.Renderer):
    """A renderer whose workflows go through `handle`; everything else through the compile's own renderer. What
    `handle` records lives in this process, so its workflows are never rendered in forked workers; a workflow
    that will not run here waits on nothing, so it is not sent to a thread either."""

    forkable = False

    def __init__(self, inner: render.Renderer, handle: Any, runs: Any) -> None:  # noqa: D107 - no state of its own
        self._inner = inner
        self._handle = handle
        self._runs = runs

    def waits_on_programs(self, promise: Promise, request: ResourceRequest) -> bool:
        return self._runs(str(request.key)) and self._inner.waits_on_programs(promise, request)

    def render_dependencies(self, promise: Promise) -> PipelineOutput:
        return self._inner.render_dependencies(promise)

    def render_workflow(
        self,
        promise: Promise,
        pipelines: Sequence[Pipeline],
        obj: Mapping[str, Any],
        *,
        request: ResourceRequest | None,
    ) -> WorkflowResult:
        def run() -> WorkflowResult:
            return self._inner.render_workflow(promise, pipelines, obj, request=request)

        workflow_type = contract.RESOURCE_WORKFLOW if request is not None else contract.PROMISE_WORKFLOW
        # The variables every pipeline of the workflow sees (the pipeline's own name aside): part of its key.
        env = contract.kratix_variables(promise, request, pipeline="")
        return self._handle(promise, pipelines, obj, workflow_type, env, run)


@dataclass
class Recorder(Workflows):
    """A shard's compile: runs the workflows of `shard` and remembers their results; every other workflow gets
    an empty result without running (what the shard's own compile output says is never published)."""

    shard: Shard
    entries: dict[str, Entry] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)
    _followers: set[str] = field(default_factory=set)  # requests emitted by workflows this shard ran
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wrap(self, renderer: render.Renderer, fingerprints: Mapping[str, str]) -> render.Renderer:
        def handle(
            promise: Promise,
            pipelines: Sequence[Pipeline],
            obj: Mapping[str, Any],
            workflow_type: str,
            env: Mapping[str, str],
            run: Any,
        ) -> WorkflowResult:
            identity = workflow_identity(workflow_type, env)
            if not self._mine(identity, obj):
                with self._lock:
                    self.skipped.add(identity)
                return WorkflowResult()
            result: WorkflowResult = run()
            try:
                key = workflow_key(fingerprints.get(promise.name, ""), workflow_type, pipelines, obj, env)
                entry = Entry(key, identity, encode_result(result))
            except Unstorable:
                entry = None
            with self._lock:
                if entry is None:
                    self.failed.add(identity)
                else:
                    self.entries[key] = entry
                self._followers.update(_emitted(result, env.get("KRATIX_OBJECT_NAMESPACE", "")))
            return result

        return _Wrapped(renderer, handle, self.runs)

    def runs(self, identity: str) -> bool:
        # As `_mine`, but before the request's labels are known: a request another shard's compound Promise
        # emitted may be taken for this shard's, which only sends it to a thread for nothing.
        return identity in self._followers or assigned(identity, self.shard.count) == self.shard.index

    def _mine(self, identity: str, obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if identity in self._followers:
            return True
        if isinstance(labels, Mapping) and any(str(k).startswith("kratix.io/parent-") for k in labels):
            return False  # emitted by a compound Promise's workflow another shard ran
        return assigned(identity, self.shard.count) == self.shard.index

    def result(self, commit: str) -> ShardResult:
        return ShardResult(
            self.shard,
            commit,
            tuple(sorted(self.entries.values(), key=lambda e: e.key)),
            tuple(sorted(self.failed)),
            len(self.skipped),
        )


def _emitted(result: WorkflowResult, namespace: str) -> set[str]:
    """Identities of every object a workflow wrote: the requests among them (a compound Promise's) are
    compiled after it, and belong to the same shard."""
    found = set()
    for output in result.outputs:
        for file in output.files:
            for document in file.documents:
                metadata = document.get("metadata") or {}
                if isinstance(metadata, Mapping):
                    found.add(f"{document.get('kind')} {metadata.get('namespace') or namespace}/{metadata.get('name')}")
    return found


@dataclass
class Replayer(Workflows):
    """The publishing compile: a workflow whose result a shard stored is not run again; any other runs here."""

    entries: Mapping[str, Entry]
    count: int = 0  # the shard count, to say which shard a workflow that ran here belonged to (0: none)
    reused: set[str] = field(default_factory=set)
    ran: set[str] = field(default_factory=set)
    carried: frozenset[str] = frozenset()  # requests whose finished output was carried over (`carry`)
    # What ran here, by key: a compile made again (`carried_fits`) replays it instead of running it twice.
    _ran_here: dict[str, WorkflowResult] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wrap(self, renderer: render.Renderer, fingerprints: Mapping[str, str]) -> render.Renderer:
        def handle(
            promise: Promise,
            pipelines: Sequence[Pipeline],
            obj: Mapping[str, Any],
            workflow_type: str,
            env: Mapping[str, str],
            run: Any,
        ) -> WorkflowResult:
            identity = workflow_identity(workflow_type, env)
            try:
                key = workflow_key(fingerprints.get(promise.name, ""), workflow_type, pipelines, obj, env)
            except Unstorable:  # no shard could have stored it either
                key = ""
            entry = self.entries.get(key)
            if entry is not None and entry.identity == identity:
                try:
                    result = decode_result(entry.result)
                except (ValueError, KeyError, TypeError):
                    result = None
                if result is not None:
                    with self._lock:
                        self.reused.add(identity)
                    return result
            with self._lock:
                self.ran.add(identity)
                done = self._ran_here.get(key) if key else None
            if done is not None:
                return done
            result = run()
            if key:
                with self._lock:
                    self._ran_here[key] = result
            return result

        return _Wrapped(renderer, handle, self.runs)

    def runs(self, identity: str) -> bool:
        return identity not in self._stored

    @property
    def used(self) -> set[str]:
        """The workflows whose stored results this compile used: replayed, or carried over finished."""
        return self.reused | self.carried

    @cached_property
    def _stored(self) -> frozenset[str]:
        """The identities a shard stored a result for (whether it fits is known only once the key is made)."""
        return frozenset(entry.identity for entry in self.entries.values())


def merged_entries(results: Iterable[ShardResult]) -> dict[str, Entry]:
    return {entry.key: entry for result in results for entry in result.entries}


# --- the finished output of a shard's requests, carried over whole -----------------------------------------
#
# Replaying a stored workflow still leaves the publishing compile the rest of each request: parsing it, reading
# its previous status, validating, laying out and writing its files. So a shard also stores what its own compile
# made of each request whose workflow it ran: the files, the status, the provenance entries and the sealed cache
# record, exactly as the request cache keeps an unchanged request. The publishing compile then carries them over
# as it carries over an unchanged request, and compiles none of them.
#
# A shard compiled its requests beside empty results for every other shard's workflows, so what only the whole
# platform decides is checked again before anything is carried, and after:
# - before (`carry`): every shard read the output branch the publishing compile reads (the previous statuses and
#   sticky placements its requests saw); no two shards carry one request or one request file; and no carried
#   file or object is one that another owner holds, carried or published (who keeps it is decided by a compile);
# - after (`carried_fits`): every carried request was in fact carried over (not compiled: a duplicate request, a
#   changed fingerprint); no owner failed on a conflict (an object compiled now may clash with carried output);
#   and each of their Promises' status is the one the shard's requests were compiled with (its Promise workflow
#   may have run in another shard).
# When a check fails, the publishing compile compiles those requests from their stored workflow results, as it
# did before this existed: the output is the same either way; only the work differs.

CARRIED_INDEX = "carried/index.json"
CARRIED_CACHE = "carried/cache.jsonl"
CARRIED_PROVENANCE = "carried/provenance.jsonl"
CARRIED_FILES = "carried/files/"  # + the output path: the shard's commit holds every blob it carries
CARRIED_READ = (CARRIED_INDEX, CARRIED_CACHE, CARRIED_PROVENANCE)
_CONFLICTS = frozenset({"output.ObjectConflict", "output.FileConflict"})


@dataclass(frozen=True)
class Carried:
    """The finished output of the requests one shard (or all of them) compiled, as the request cache keeps it."""

    base: str  # the output branch head the shard compiled against ("": nothing was published)
    promises: Mapping[str, str]  # `promise_digest` of each Promise of `records`, as the shard saw its status
    records: tuple[cache.Record, ...] = ()
    entries: tuple[provenance.Entry, ...] = ()  # the provenance of the records' outputs
    files: Mapping[str, str] = field(default_factory=dict)  # output path -> blob id, outputs and statuses

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(record.key for record in self.records)


def promise_digest(status: PromiseStatus) -> str:
    """What a request's compile reads of its Promise's status."""
    return cache.fingerprint(json.dumps([status.available, status.reason, sorted(status.request_labels.items())]))


def carried_of(
    requests: Mapping[str, RequestStatus],
    files: Mapping[str, Content],
    entries: Mapping[str, provenance.Entry],
    promises: Mapping[str, PromiseStatus],
    *,
    ran: Iterable[str],
    base: str | None,
) -> tuple[Carried, dict[str, bytes]]:
    """What a shard's compile made of the requests whose workflows it ran, cleanly placed and reusable (as the
    request cache decides), with the bytes of the files they name: only whole request files, and only files of
    the default store (the shard's ref lives in its repo)."""
    mine = frozenset(ran)
    wanted = {
        key
        for key, status in requests.items()
        if key in mine and not status.reused and status.state == "placed" and not status.children
    }
    records: list[cache.Record] = []
    blobs: dict[str, bytes] = {}
    carried_entries: list[provenance.Entry] = []
    for group in _records_by_file(files).values():
        if len(group) != group[0].documents or not all(r.reusable and r.key in wanted for r in group):
            continue
        found = [_finished(record, files, entries) for record in group]
        if any(f is None for f in found):
            continue
        for record, (named, owned) in zip(group, found, strict=True):  # type: ignore[misc]
            records.append(record)
            blobs.update(named)
            carried_entries.extend(owned)
    digests = {name: promise_digest(promises[name]) for name in sorted({r.promise for r in records})}
    oids = {path: blob_id(data) for path, data in blobs.items()}
    return Carried(base or "", digests, tuple(records), tuple(carried_entries), oids), blobs


def _records_by_file(files: Mapping[str, Content]) -> dict[str, list[cache.Record]]:
    """The request cache records a compile wrote, by request file."""
    by_file: dict[str, list[cache.Record]] = {}
    for path, data in files.items():
        if paths.is_cache_shard(path) and isinstance(data, bytes):
            for record in cache.decode_shard(data, share=False):
                by_file.setdefault(record.file, []).append(record)
    return by_file


def _finished(
    record: cache.Record, files: Mapping[str, Content], entries: Mapping[str, provenance.Entry]
) -> tuple[dict[str, bytes], list[provenance.Entry]] | None:
    named = {}
    for path in cache.named_files(record):
        data = files.get(path)
        if paths.target_of(path) != "" or not isinstance(data, bytes):
            return None
        named[path] = data
    owned = [entries.get(path) for path in record.outputs]
    if any(entry is None or entry.owner != record.key for entry in owned):
        return None
    return named, owned  # type: ignore[return-value]


def carried_files(carried: Carried, blobs: Mapping[str, bytes]) -> dict[str, bytes]:
    """The part of a shard's tree that holds what it carries (nothing when it carries nothing)."""
    if not carried.records:
        return {}
    index = {"base": carried.base, "promises": dict(carried.promises), "files": dict(sorted(carried.files.items()))}
    found = {
        CARRIED_INDEX: json.dumps(index, sort_keys=True, separators=(",", ":")).encode() + b"\n",
        CARRIED_CACHE: cache.encode(carried.records),
        CARRIED_PROVENANCE: provenance.encode(carried.entries),
    }
    found.update((CARRIED_FILES + path, data) for path, data in blobs.items())
    return found


def read_carried(files: Mapping[str, bytes | None]) -> Carried | None:
    """What a shard carries, read back from its tree (None when it carries nothing); ValueError (with why) for
    anything that does not hold together."""
    if files.get(CARRIED_INDEX) is None:
        return None
    index = json.loads(files[CARRIED_INDEX])  # type: ignore[arg-type]
    if not isinstance(index, dict):
        raise ValueError(f"{CARRIED_INDEX} is not an object")
    base, promises, oids = index.get("base"), index.get("promises"), index.get("files")
    if not isinstance(base, str) or not isinstance(promises, dict) or not isinstance(oids, dict):
        raise ValueError(f"{CARRIED_INDEX} has no base, promises and files")
    records = tuple(cache.decode_shard(files.get(CARRIED_CACHE) or b"", share=False))
    entries = provenance.decode_shard(files.get(CARRIED_PROVENANCE) or b"", share=False)
    keys = {record.key for record in records}
    for record in records:
        if not record.reusable:
            raise ValueError(f"{record.key}: a record that is not reusable")
        if not all(isinstance(oids.get(path), str) for path in cache.named_files(record)):
            raise ValueError(f"{record.key}: a file it names is not carried")
        if record.promise not in promises:
            raise ValueError(f"{record.key}: the status of Promise {record.promise!r} is not recorded")
    if any(entry.owner not in keys for entry in entries.values()):
        raise ValueError("a provenance entry of a request it does not carry")
    return Carried(base, dict(promises), records, tuple(entries.values()), dict(oids))


def combine(carried: Iterable[Carried], head: str | None) -> Carried | None:
    """What every shard carries, taken together; None when any of it cannot be taken: a shard compiled against
    another output branch head than `head` (the one being published on), two shards carry one request or one
    request file, or they saw a Promise's status differently (one of them cannot be right)."""
    parts = list(carried)
    if not parts or any(part.base != (head or "") for part in parts):
        return None
    promises = _promises_agreed(parts)
    if not _each_carried_once(parts) or promises is None:
        return None
    return Carried(
        head or "",
        promises,
        tuple(record for part in parts for record in part.records),
        tuple(entry for part in parts for entry in part.entries),
        {path: oid for part in parts for path, oid in part.files.items()},
    )


def _each_carried_once(parts: Sequence[Carried]) -> bool:
    """No request and no request file is carried by two shards."""
    keys = [record.key for part in parts for record in part.records]
    files_per_shard = [{record.file for record in part.records} for part in parts]
    return len(keys) == len(set(keys)) and sum(map(len, files_per_shard)) == len(set().union(*files_per_shard))


def _promises_agreed(parts: Sequence[Carried]) -> dict[str, str] | None:
    """Each Promise's status as every shard saw it; None when two shards saw it differently."""
    promises: dict[str, str] = {}
    for name, digest in (item for part in parts for item in part.promises.items()):
        if promises.setdefault(name, digest) != digest:
            return None
    return promises


def carry(previous: PreviousOutput, carried: Carried, files: Mapping[str, bytes]) -> WithCarried | None:
    """`previous` as if it had published what `carried` holds (`files`: its blobs, by output path); None when
    a carried file or object is held by another owner, carried or published before."""
    keys = carried.keys
    objects: dict[tuple[str | None, str], str] = {}
    for destination in sorted({entry.destination or "" for entry in carried.entries}):
        for entry in previous.provenance_shards.get(paths.provenance_shard(destination), ()):
            if entry.owner not in keys:
                objects.update(((entry.destination, oid), entry.owner) for oid in entry.objects)
    published = previous.provenance
    carried_paths: dict[str, str] = {}
    for entry in carried.entries:
        for oid in entry.objects:
            if objects.setdefault((entry.destination, oid), entry.owner) != entry.owner:
                return None
        before = published.get(entry.path)
        if (before is not None and before.owner != entry.owner) or carried_paths.setdefault(
            entry.path, entry.owner
        ) != entry.owner:
            return None
        if entry.path not in published and entry.path in previous.files:
            return None  # a file the previous output holds without saying whose
    for path in list(carried_paths):
        if any(folder in carried_paths or folder in previous.files for folder in paths.folders(path)):
            return None
    return WithCarried.over(previous, files, carried.records, carried.entries)


def carried_fits(
    carried: Carried,
    requests: Mapping[str, RequestStatus],
    promises: Mapping[str, PromiseStatus],
    diagnostics: Sequence[Diagnostic],
) -> bool:
    """Whether a compile against the output with `carried` in it (`carry`) carried over every carried request as
    the shards compiled it (see the checks above); when not, the compile is made again against the output as
    published."""
    if any(d.code in _CONFLICTS for d in diagnostics):
        return False
    if not all((status := requests.get(key)) is not None and status.reused for key in carried.keys):
        return False
    return all(
        name in promises and promise_digest(promises[name]) == digest for name, digest in carried.promises.items()
    )
