"""Benchmark of the compile-and-publish path on a synthetic platform, with two floors to compare against.

    python benchmarks/compile_publish.py [--promises 5] [--destinations 50] [--requests 10000]
                                         [--repeat 3] [--workdir DIR] [--keep] [--profile]

Generates P Promises (a CRD with defaults, an enum, bounds and a CEL rule; a native template step rendering a
ConfigMap and a Deployment per request), D labelled Destinations and N requests over 50 namespaces into a
bare Git repo, then measures, in one run:

1. cold: `kratix compile --ref … --output-repo …` into an empty bare repo (a subprocess: imports count);
2. idempotent: the same again (must make no commit);
3. one-request change: one request edited and committed in the input, compile + publish again;
4. floor A: `git fast-import` of exactly the cold output tree into a fresh bare repo (checked: same tree id);
5. floor B: PyYAML's C loader + dumper over the same manifests (the emitted object files);

plus the stages of (1) and (3) timed in-process (read input, compile, publish's git side) to say where the
time goes. Generation is not measured. Exits 1 when a run fails or a check does not hold (the compile reports
an error, the idempotent run commits, the change does not, the floor's tree differs); a missed timing target
is reported, not failed: timings belong to the machine.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TypeVar

import yaml

from kratix import gitio, load
from kratix.compile import pipeline
from kratix.model.settings import Settings
from kratix.publish import commit as publish

T = TypeVar("T")

NAMESPACES = 50
ENVIRONMENTS = ("dev", "staging", "prod")
REGIONS = ("eu-west", "eu-central", "us-east", "us-west", "ap-south")
GROUP = "bench.example.io"
BRANCH = "main"
# Pinned author and date: the generated input (and so the output) is the same bytes on every run.
IDENTITY = "Bench <bench@example.invalid> 1700000000 +0000"

TARGET_COLD_SECONDS = 10.0
TARGET_CHANGE_SECONDS = 1.0
TARGET_PUBLISH_OVER_FLOOR = 1.5

CONFIGMAP_TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ request.metadata.name }}-settings
  namespace: {{ request.metadata.namespace }}
data:
  size: {{ request.spec.size }}
  tier: {{ request.spec.tier }}
  owner: {{ request.spec.owner }}
"""

DEPLOYMENT_TEMPLATE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ request.metadata.name }}
  namespace: {{ request.metadata.namespace }}
  labels:
    app.kubernetes.io/name: {{ request.metadata.name }}
spec:
  replicas: {{ request.spec.replicas }}
  selector:
    matchLabels:
      app.kubernetes.io/name: {{ request.metadata.name }}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {{ request.metadata.name }}
    spec:
      containers:
        - name: main
          image: registry.example.invalid/{{ request.spec.tier }}:1.0
          envFrom:
            - configMapRef:
                name: {{ request.metadata.name }}-settings
"""


class BenchmarkError(Exception):
    """A run failed or a correctness check did not hold: the figures would mean nothing."""


@dataclass(frozen=True)
class Sizes:
    promises: int
    destinations: int
    requests: int


@dataclass(frozen=True, order=True)
class Span:
    """Wall-clock seconds (what the targets are about) and CPU seconds of this process and the children it
    waited for (git, the CLI), which other work on the machine inflates much less than wall time."""

    wall: float
    cpu: float

    def __add__(self, other: Span) -> Span:
        return Span(self.wall + other.wall, self.cpu + other.cpu)

    def __sub__(self, other: Span) -> Span:
        return Span(self.wall - other.wall, self.cpu - other.cpu)


ZERO = Span(0.0, 0.0)


@dataclass(frozen=True)
class Stages:
    """One in-process compile + publish, split where the time goes."""

    read_input: Span
    compile: Span  # pipeline.prepare_publish: load, schema, render, schedule, layout, guard
    publish_git: Span  # publish.publish minus compile: read the branch, fast-import, update-ref, gc --auto
    read_branch: Span  # part of publish_git: reading the output branch's current files (timed apart)

    @property
    def total(self) -> Span:
        return self.read_input + self.compile + self.publish_git

    @staticmethod
    def best(runs: list[Stages]) -> Stages:
        """Each stage's best over `runs`: noise from other work on the machine only ever adds time."""
        return Stages(*(min(getattr(run, name) for run in runs) for name in Stages.__dataclass_fields__))


@dataclass(frozen=True)
class Figures:
    sizes: Sizes
    output_files: int
    output_bytes: int
    manifests: int
    startup: Span
    cold: Span
    idempotent: Span
    change: Span
    cold_stages: Stages
    change_stages: Stages
    floor_fast_import: Span
    floor_yaml: Span
    load_before: str
    repeat: int


# --- the synthetic platform --------------------------------------------------------------------------------


def promise_name(index: int) -> str:
    return f"workload{index}"


def promise_document(index: int) -> dict[str, object]:
    name = promise_name(index)
    kind = f"Workload{index}"
    spec_schema = {
        "type": "object",
        "x-kubernetes-validations": [
            {
                "rule": "self.replicas >= 2 || self.size != 'large'",
                "message": "large workloads need at least 2 replicas",
            }
        ],
        "properties": {
            "size": {"type": "string", "enum": ["small", "medium", "large"], "default": "small"},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
            "tier": {"type": "string", "enum": ["web", "worker", "batch"], "default": "web"},
            "owner": {"type": "string", "maxLength": 63, "default": "platform"},
        },
    }
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{name}s.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": f"{name}s", "singular": name},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": spec_schema}}},
                }
            ],
        },
    }
    pipeline_doc = {
        "apiVersion": "platform.kratix.io/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": "instance"},
        "spec": {"containers": [{"name": "render", "template": "templates"}]},
    }
    return {
        "apiVersion": "platform.kratix.io/v1alpha1",
        "kind": "Promise",
        "metadata": {"name": name, "labels": {"kratix.io/promise-version": "v1.0.0"}},
        "spec": {
            "destinationSelectors": [{"matchLabels": {"env": ENVIRONMENTS[index % len(ENVIRONMENTS)]}}],
            "dependencies": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"{name}-system"}}],
            "api": crd,
            "workflows": {"resource": {"configure": [pipeline_doc]}},
        },
    }


def destination_document(index: int) -> dict[str, object]:
    name = f"worker-{index:03d}"
    labels = {"env": ENVIRONMENTS[index % len(ENVIRONMENTS)], "region": REGIONS[index % len(REGIONS)]}
    return {
        "apiVersion": "platform.kratix.io/v1alpha1",
        "kind": "Destination",
        "metadata": {"name": name, "labels": labels},
        "spec": {"path": name},
    }


def request_spec(index: int, *, revision: int = 0) -> dict[str, object]:
    """Valid for its CRD (the CEL rule included); some fields left to their defaults."""
    spec: dict[str, object] = {}
    if index % 7 == 0:
        spec.update(size="large", replicas=2 + index % 3)
    elif index % 2 == 0:
        spec.update(size="medium", replicas=1 + index % 4)
    if index % 3:
        spec["tier"] = ("web", "worker", "batch")[index % 3]
    if index % 5 == 0:
        spec["owner"] = f"team-{index % NAMESPACES:02d}"
    if revision:
        spec["replicas"] = 2 + revision % 8  # valid whatever the size
    return spec


def request_path(index: int, sizes: Sizes) -> str:
    return f"requests/team-{index % NAMESPACES:02d}/{promise_name(index % sizes.promises)}-{index:05d}.yaml"


def request_document(index: int, sizes: Sizes, *, revision: int = 0) -> dict[str, object]:
    promise = index % sizes.promises
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": f"Workload{promise}",
        "metadata": {"name": f"{promise_name(promise)}-{index:05d}"},
        "spec": request_spec(index, revision=revision),
    }


def platform_files(sizes: Sizes) -> Iterator[tuple[str, bytes]]:
    for index in range(sizes.promises):
        folder = f"promises/{promise_name(index)}"
        yield f"{folder}/promise.yaml", _yaml(promise_document(index))
        yield f"{folder}/templates/configmap.yaml.j2", CONFIGMAP_TEMPLATE.encode()
        yield f"{folder}/templates/deployment.yaml.j2", DEPLOYMENT_TEMPLATE.encode()
    for index in range(sizes.destinations):
        yield f"clusters/worker-{index:03d}.yaml", _yaml(destination_document(index))
    for index in range(sizes.requests):
        yield request_path(index, sizes), _yaml(request_document(index, sizes))


def _yaml(document: object) -> bytes:
    return yaml.dump(document, Dumper=yaml.CSafeDumper, sort_keys=False).encode()


# --- git: generation and the fast-import floor -------------------------------------------------------------


def init_bare(path: Path) -> Path:
    gitio.run_git(None, "init", "--quiet", "--bare", f"--initial-branch={BRANCH}", str(path))
    return path


def import_stream(
    files: Mapping[str, bytes] | Iterator[tuple[str, bytes]], *, message: str, parent: str | None = None
) -> bytes:
    """A fast-import stream committing `files` on `main` (on top of `parent`: only these paths change)."""
    items = files.items() if isinstance(files, Mapping) else files
    encoded = message.encode()
    chunks = [
        f"commit refs/heads/{BRANCH}\nauthor {IDENTITY}\ncommitter {IDENTITY}\n".encode(),
        b"data %d\n" % len(encoded),
        encoded,
        b"\n",
    ]
    chunks.append(f"from {parent}\n".encode() if parent else b"deleteall\n")
    for path, data in items:
        chunks += [b'M 100644 inline "%s"\n' % path.encode(), b"data %d\n" % len(data), data, b"\n"]
    chunks.append(b"done\n")
    return b"".join(chunks)


def fast_import(repo: Path, stream: bytes) -> None:
    gitio.run_git(repo, "fast-import", "--quiet", "--done", input=stream)


def head(repo: Path) -> str | None:
    result = gitio.git_result(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{BRANCH}")
    return result.stdout.decode().strip() or None


def tree_of(repo: Path) -> str:
    return gitio.run_git(repo, "rev-parse", f"refs/heads/{BRANCH}^{{tree}}").decode().strip()


def commit_request_change(repo: Path, sizes: Sizes, revision: int) -> str:
    """Edit request 0 (its replicas) in one new commit of the input repo; return the commit."""
    parent = head(repo)
    data = _yaml(request_document(0, sizes, revision=revision))
    fast_import(repo, import_stream({request_path(0, sizes): data}, message=f"change {revision}\n", parent=parent))
    commit = head(repo)
    assert commit is not None
    return commit


# --- measuring ----------------------------------------------------------------------------------------------


def best_of(repeat: int, run: Callable[[int], T]) -> T:
    return min(run(attempt) for attempt in range(repeat))  # type: ignore[type-var]


def now() -> Span:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Span(time.perf_counter(), time.process_time() + children.ru_utime + children.ru_stime)


def timed(action: Callable[[], object]) -> Span:
    started = now()
    action()
    return now() - started


@dataclass(frozen=True, order=True)
class Run:
    """One CLI run and its JSON report."""

    span: Span
    report: Mapping[str, object] = field(compare=False, repr=False)


def compile_command(input_repo: Path, ref: str, output_repo: Path, *extra: str) -> list[str]:
    """The command line of a compile-and-publish with the JSON report, in a fresh interpreter."""
    return [
        sys.executable,
        "-m",
        "kratix.cli",
        "compile",
        str(input_repo),
        "--ref",
        ref,
        "--output-repo",
        str(output_repo),
        "--format",
        "json",
        "--quiet",
        *extra,
    ]


def run_cli(input_repo: Path, ref: str, output_repo: Path) -> Run:
    """`kratix compile` as a user runs it, in a fresh interpreter."""
    command = compile_command(input_repo, ref, output_repo)
    started = now()
    result = subprocess.run(command, capture_output=True, text=True)
    span = now() - started
    if result.returncode != 0:
        raise BenchmarkError(f"kratix compile failed ({result.returncode}):\n{result.stderr}{result.stdout[-2000:]}")
    return Run(span, report=json.loads(result.stdout))


def expect(run: Run, *, commit: bool, what: str) -> Run:
    outcome = run.report.get("publish")
    committed = bool(isinstance(outcome, Mapping) and outcome.get("changed"))
    if committed != commit:
        raise BenchmarkError(f"{what} {'made no commit' if commit else 'made a commit'}")
    return run


def startup_span(repeat: int) -> Span:
    """What a fresh interpreter pays before compiling anything: importing the CLI and what it loads."""
    command = [sys.executable, "-c", "import kratix.cli, kratix.compile.pipeline, kratix.publish.commit"]
    return best_of(repeat, lambda _: timed(lambda: subprocess.run(command, check=True)))


def run_in_process(input_repo: Path, ref: str, output_repo: Path, settings: Settings) -> Stages:
    """The CLI's publish path (`cli.publishing.publish_platform` without the deletion guard's refusal), stage by
    stage."""
    started = now()
    tree = load.read_commit(input_repo, ref)
    read_input = now() - started
    repo = publish.open_output_repo(str(output_repo), branch=BRANCH)
    read_branch = timed(lambda: publish.read_branch(repo))
    compiling: list[Span] = []

    def build(state: publish.BranchState) -> tuple[Mapping[str, bytes], str]:
        began = now()
        result, message, _ = pipeline.prepare_publish(
            tree, pipeline.PreviousOutput(state.files, state.commit), settings=settings
        )
        compiling.append(now() - began)
        if not result.ok:
            raise BenchmarkError("the in-process compile reported errors")
        return result.files, message

    total = timed(lambda: publish.publish(repo, build))
    compiled = sum(compiling, ZERO)
    return Stages(read_input=read_input, compile=compiled, publish_git=total - compiled, read_branch=read_branch)


def fast_import_floor(target: Path, files: Mapping[str, bytes], expected_tree: str) -> Span:
    """git alone storing `files` as one commit; the stream is built before the clock starts."""
    stream = import_stream(files, message="floor\n")
    init_bare(target)
    span = timed(lambda: fast_import(target, stream))
    if tree_of(target) != expected_tree:
        raise BenchmarkError("the fast-import floor wrote a different tree than the cold publish")
    return span


def yaml_floor(manifests: list[bytes], repeat: int) -> Span:
    def once(_: int) -> Span:
        started = now()
        for data in manifests:
            documents = list(yaml.load_all(data, Loader=yaml.CSafeLoader))
            yaml.dump_all(documents, Dumper=yaml.CSafeDumper, sort_keys=False)
        return now() - started

    return best_of(repeat, once)


def is_manifest(path: str) -> bool:
    """An emitted object file: inside a destination, not the generated kustomization or bookkeeping."""
    return not path.startswith(".kratix/") and not path.endswith("/kustomization.yaml")


def profile_compile(input_repo: Path, ref: str, previous_repo: Path | None, settings: Settings, dump_to: Path) -> str:
    """cProfile of one in-process compile of `ref` against `previous_repo`'s branch (None: an empty one);
    the top 30 by cumulative time, and the raw stats in `dump_to` (for snakeviz or pstats)."""
    tree = load.read_commit(input_repo, ref)
    previous = pipeline.PreviousOutput()
    if previous_repo is not None:
        state = publish.read_branch(publish.open_output_repo(str(previous_repo), branch=BRANCH))
        previous = pipeline.PreviousOutput(state.files, state.commit)
    profiler = cProfile.Profile()
    profiler.runcall(pipeline.prepare_publish, tree, previous, settings=settings)
    profiler.dump_stats(str(dump_to))
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
    return f"raw stats: {dump_to} (kept with --keep)\n{text.getvalue()}"


@dataclass(frozen=True)
class CliFigures:
    cold: Span
    idempotent: Span
    change: Span
    output: Mapping[str, bytes]  # the cold run's output tree
    tree: str  # its tree id


def measure(work: Path, sizes: Sizes, *, repeat: int, profile: bool) -> tuple[Figures, str | None]:
    load_before = _load()
    settings = Settings()
    input_repo = init_bare(work / "input.git")
    fast_import(input_repo, import_stream(platform_files(sizes), message="synthetic platform\n"))
    base = head(input_repo)
    assert base is not None
    startup = startup_span(repeat)
    cli = measure_cli(work, input_repo, base, sizes, repeat=repeat)
    cold_stages = Stages.best(
        [run_in_process(input_repo, base, work / f"inprocess-{attempt}.git", settings) for attempt in range(repeat)]
    )
    changes = [commit_request_change(input_repo, sizes, revision) for revision in range(repeat + 1, 2 * repeat + 1)]
    change_stages = Stages.best(
        [run_in_process(input_repo, commit, work / "inprocess-0.git", settings) for commit in changes]
    )
    floor = best_of(repeat, lambda attempt: fast_import_floor(work / f"floor-{attempt}.git", cli.output, cli.tree))
    manifests = [data for path, data in cli.output.items() if is_manifest(path)]
    profile_text = None
    if profile:
        change = commit_request_change(input_repo, sizes, 2 * repeat + 1)
        profile_text = "\n".join(
            [
                "profile of one in-process cold compile (top 30 by cumulative time):",
                profile_compile(input_repo, base, None, settings, work / "cold-compile.prof"),
                "profile of one in-process one-request-change compile (top 30 by cumulative time):",
                profile_compile(input_repo, change, work / "inprocess-0.git", settings, work / "change-compile.prof"),
            ]
        )
    figures = Figures(
        sizes=sizes,
        output_files=len(cli.output),
        output_bytes=sum(map(len, cli.output.values())),
        manifests=len(manifests),
        startup=startup,
        cold=cli.cold,
        idempotent=cli.idempotent,
        change=cli.change,
        cold_stages=cold_stages,
        change_stages=change_stages,
        floor_fast_import=floor,
        floor_yaml=yaml_floor(manifests, repeat),
        load_before=load_before,
        repeat=repeat,
    )
    return figures, profile_text


def measure_cli(work: Path, input_repo: Path, base: str, sizes: Sizes, *, repeat: int) -> CliFigures:
    """The headline figures, through the CLI; each the best of `repeat` runs."""

    def cold_once(attempt: int) -> Run:
        run = run_cli(input_repo, base, work / f"cold-{attempt}.git")
        return expect(run, commit=True, what="the cold run")

    def idempotent_once(_: int) -> Run:
        return expect(run_cli(input_repo, base, output_repo), commit=False, what="the idempotent re-run")

    def change_once(attempt: int) -> Run:
        commit = commit_request_change(input_repo, sizes, attempt + 1)
        return expect(run_cli(input_repo, commit, output_repo), commit=True, what="the one-request change")

    cold = best_of(repeat, cold_once)
    output_repo = work / "output.git"
    shutil.copytree(work / "cold-0.git", output_repo)
    tree, output = tree_of(output_repo), gitio.read_tree(output_repo, BRANCH)
    idempotent = best_of(repeat, idempotent_once)
    return CliFigures(
        cold=cold.span, idempotent=idempotent.span, change=best_of(repeat, change_once).span, output=output, tree=tree
    )


# --- the report ---------------------------------------------------------------------------------------------


def verdict(value: float, target: float) -> str:
    return "PASS" if value < target else "MISS"


def report_lines(f: Figures) -> list[str]:
    s = f.sizes
    lines = [
        f"kratix compile+publish benchmark, {date.today().isoformat()}: {s.promises} promises, "
        f"{s.destinations} destinations, {s.requests} requests over {NAMESPACES} namespaces",
        f"output: {f.output_files} files, {f.output_bytes / 1e6:.1f} MB, of them {f.manifests} manifest files",
        f"machine: {os.cpu_count()} CPUs, load average {f.load_before} before, {_load()} after; "
        f"Python {sys.version.split()[0]}; {gitio.run_git(None, 'version').decode().strip()}",
        f"each figure is the best of {f.repeat} runs; wall clock decides, cpu = CPU seconds of the run and "
        "its git children",
        "",
    ]
    lines += _table(("figure", "wall", "cpu", "target", ""), _figure_rows(f))
    lines += ["", "where the time goes (in-process):"]
    lines += _table(("stage", "cold wall", "cpu", "change wall", "cpu"), _stage_rows(f))
    return lines


def _figure_rows(f: Figures) -> list[tuple[str, ...]]:
    publish_git, floor_a, floor_b = f.cold_stages.publish_git, f.floor_fast_import, f.floor_yaml
    ratio = publish_git.wall / floor_a.wall
    return [
        (
            "cold compile+publish (CLI)",
            *_cells(f.cold),
            f"< {TARGET_COLD_SECONDS:g} s",
            verdict(f.cold.wall, TARGET_COLD_SECONDS),
        ),
        ("idempotent re-run, no commit (CLI)", *_cells(f.idempotent), "", ""),
        (
            "one-request change (CLI)",
            *_cells(f.change),
            f"< {TARGET_CHANGE_SECONDS:g} s",
            verdict(f.change.wall, TARGET_CHANGE_SECONDS),
        ),
        ("publish, git side (in-process, cold)", *_cells(publish_git), "", ""),
        ("floor A: git fast-import of the output", *_cells(floor_a), "", ""),
        ("floor B: PyYAML C load+dump of manifests", *_cells(floor_b), "", ""),
        (
            "ratio: publish git side / floor A",
            f"{ratio:.2f}x",
            f"{publish_git.cpu / floor_a.cpu:.2f}x",
            f"< {TARGET_PUBLISH_OVER_FLOOR:g}x",
            verdict(ratio, TARGET_PUBLISH_OVER_FLOOR),
        ),
        (
            "ratio: cold compile (in-process) / floor B",
            f"{f.cold_stages.compile.wall / floor_b.wall:.1f}x",
            f"{f.cold_stages.compile.cpu / floor_b.cpu:.1f}x",
            "",
            "",
        ),
        (
            "ratio: cold CLI / (floor A + floor B)",
            f"{f.cold.wall / (floor_a + floor_b).wall:.1f}x",
            f"{f.cold.cpu / (floor_a + floor_b).cpu:.1f}x",
            "",
            "",
        ),
    ]


def _stage_rows(f: Figures) -> list[tuple[str, ...]]:
    cold, change = f.cold_stages, f.change_stages
    return [
        ("interpreter start-up + imports", *_cells(f.startup), *_cells(f.startup)),
        ("read input commit", *_cells(cold.read_input), *_cells(change.read_input)),
        ("compile (prepare_publish)", *_cells(cold.compile), *_cells(change.compile)),
        ("publish, git side", *_cells(cold.publish_git), *_cells(change.publish_git)),
        ("  of which: read output branch", *_cells(cold.read_branch), *_cells(change.read_branch)),
        ("total in-process", *_cells(cold.total), *_cells(change.total)),
    ]


def _cells(span: Span) -> tuple[str, str]:
    return f"{span.wall:.2f} s", f"{span.cpu:.2f} s"


def _load() -> str:
    """Other work on the machine slows every wall-clock figure; the load average says how much there was."""
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(row) for row in rows)]


# --- scaling: the same figures at several platform sizes --------------------------------------------------

TARGET_CHANGE_AT = {10_000: 0.3, 100_000: 0.5}  # one-request change, interpreter start-up included
TARGET_COLD_AT = {100_000: 60.0}
TARGET_MEMORY_BYTES_AT = {100_000: 1_000_000_000}  # the issue says 1 GB: the stricter reading


@dataclass(frozen=True, order=True)
class ChildRun:
    """One CLI run in a fresh interpreter: its times, its peak memory, its report."""

    span: Span
    peak_bytes: int = field(compare=False)  # ru_maxrss of the largest of that process and the children it waited for
    report: Mapping[str, object] = field(compare=False, repr=False)

    @property
    def read(self) -> str:
        read = self.report.get("read")
        return str(read.get("only")) if isinstance(read, Mapping) else "?"


def run_child(input_repo: Path, ref: str, output_repo: Path, *extra: str) -> ChildRun:
    """`kratix compile` in a fresh interpreter, waited for alone so that its own peak memory is known."""
    command = compile_command(input_repo, ref, output_repo, *extra)
    started = now()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        span = now() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if process.returncode != 0:
        raise BenchmarkError(f"kratix compile failed ({process.returncode}):\n{stderr}{stdout[-2000:]}")
    return ChildRun(Span(span.wall, usage.ru_utime + usage.ru_stime), usage.ru_maxrss * 1024, json.loads(stdout))


def commit_promise_change(repo: Path, revision: int) -> str:
    """Edit Promise 0's ConfigMap template (every request of that Promise renders again) in one new commit."""
    parent = head(repo)
    template = CONFIGMAP_TEMPLATE + f'  revision: "{revision}"\n'
    fast_import(
        repo,
        import_stream(
            {f"promises/{promise_name(0)}/templates/configmap.yaml.j2": template.encode()},
            message=f"promise change {revision}\n",
            parent=parent,
        ),
    )
    commit = head(repo)
    assert commit is not None
    return commit


@dataclass(frozen=True)
class Scale:
    sizes: Sizes
    cold: ChildRun
    noop: ChildRun
    change: ChildRun
    promise: ChildRun


def measure_scale(work: Path, sizes: Sizes, *, repeat: int) -> Scale:
    """Cold compile+publish, a no-op, a one-request change and a one-Promise change, through the CLI."""
    folder = work / f"n{sizes.requests}"
    folder.mkdir()
    input_repo = init_bare(folder / "input.git")
    fast_import(input_repo, import_stream(platform_files(sizes), message="synthetic platform\n"))
    base = head(input_repo)
    assert base is not None
    output = folder / "output.git"
    cold = run_child(input_repo, base, output)
    expect(Run(cold.span, cold.report), commit=True, what="the cold run")
    noop = best_of(repeat, lambda _: run_child(input_repo, base, output))
    expect(Run(noop.span, noop.report), commit=False, what="the no-op run")

    def change_once(attempt: int) -> ChildRun:
        run = run_child(input_repo, commit_request_change(input_repo, sizes, attempt + 1), output)
        expect(Run(run.span, run.report), commit=True, what="the one-request change")
        return run

    change = best_of(repeat, change_once)
    promise = run_child(input_repo, commit_promise_change(input_repo, 1), output)
    expect(Run(promise.span, promise.report), commit=True, what="the one-Promise change")
    return Scale(sizes, cold, noop, change, promise)


def scale_lines(scales: Sequence[Scale], repeat: int) -> list[str]:
    lines = [
        f"kratix compile+publish at several sizes, {date.today().isoformat()}: "
        f"{scales[0].sizes.promises} promises, {scales[0].sizes.destinations} destinations",
        f"machine: {os.cpu_count()} CPUs, load average {_load()}; Python {sys.version.split()[0]}; "
        f"{gitio.run_git(None, 'version').decode().strip()}",
        f"each CLI run in a fresh interpreter (start-up and imports count); no-op and one-request change: best "
        f"of {repeat}; read: what the compile read (changes: only what changed; everything: the whole input)",
        "",
    ]
    rows = []
    for scale in scales:
        n = scale.sizes.requests
        for label, run, target in (
            ("cold compile+publish", scale.cold, TARGET_COLD_AT.get(n)),
            ("no-op (nothing changed)", scale.noop, None),
            ("one-request change", scale.change, TARGET_CHANGE_AT.get(n)),
            ("one-Promise change", scale.promise, None),
        ):
            rows.append(
                (
                    f"{n:,}",
                    label,
                    *_cells(run.span),
                    f"{run.peak_bytes / 1e6:.0f} MB",
                    run.read,
                    f"<= {target:g} s" if target else "",
                    ("PASS" if run.span.wall <= target else "MISS") if target else "",
                )
            )
        memory = TARGET_MEMORY_BYTES_AT.get(n)
        if memory:
            peak = max(run.peak_bytes for run in (scale.cold, scale.noop, scale.change, scale.promise))
            rows.append(
                (
                    f"{n:,}",
                    "peak memory (any run)",
                    "",
                    "",
                    f"{peak / 1e6:.0f} MB",
                    "",
                    f"<= {memory / 1e9:g} GB",
                    "PASS" if peak <= memory else "MISS",
                )
            )
    lines += _table(("requests", "figure", "wall", "cpu", "peak RSS", "read", "target", ""), rows)
    return lines


# --- the command --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--promises", type=int, default=5)
    parser.add_argument("--destinations", type=int, default=50)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each short figure; the best counts")
    parser.add_argument(
        "--workdir", type=Path, help="make the scratch folder inside DIR (default: the system's temporary folder)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch folder (repos, raw profile) and say where"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile one in-process cold compile and one one-request-change compile: top 30 "
        "by cumulative time (raw stats kept with --keep)",
    )
    parser.add_argument(
        "--scaling",
        metavar="N,N,...",
        help="instead: cold, no-op, one-request and one-Promise change at each of these request "
        "counts (e.g. 1000,10000,100000), with peak memory",
    )
    args = parser.parse_args(argv)
    args.scaling = [int(n) for n in args.scaling.split(",")] if args.scaling else []
    if min(args.promises, args.destinations, args.requests, args.repeat, *args.scaling) < 1:
        parser.error("sizes and --repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = Sizes(args.promises, args.destinations, args.requests)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="kratix-bench-", dir=args.workdir))
    if args.scaling:
        return scaling_main(work, args)
    try:
        figures, profile_text = measure(work, sizes, repeat=args.repeat, profile=args.profile)
    except BenchmarkError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("\n".join(report_lines(figures)))
    if profile_text is not None:
        print(f"\n{profile_text}")
    if args.keep:
        print(
            f"\nkept: {work} (input.git; output.git and cold-*.git from the CLI runs; inprocess-*.git; "
            "floor-*.git; *.prof with --profile)"
        )
    return 0


def scaling_main(work: Path, args: argparse.Namespace) -> int:
    scales = []
    try:
        for count in args.scaling:
            scales.append(measure_scale(work, Sizes(args.promises, args.destinations, count), repeat=args.repeat))
            print(f"measured {count:,} requests", file=sys.stderr, flush=True)
    except BenchmarkError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("\n".join(scale_lines(scales, args.repeat)))
    if args.keep:
        print(f"\nkept: {work} (n<requests>/input.git and output.git)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
