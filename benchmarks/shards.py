"""Benchmark of shards: the workflows of a compile run as N shards one after another on this machine, then merged,
against the same compile without shards.

    python benchmarks/shards.py [--promises 2] [--destinations 10] [--requests 200] [--sleep 0.2] [--shards 4]
                                [--repeat 5] [--workdir DIR] [--keep]

Generates P Promises whose resource workflow is one command step that sleeps S seconds (as a real image step
waits on a registry, a cloud API or Terraform) and writes a ConfigMap, D destinations and N requests into a
bare Git repo; every run of a step appends a line to a counter file, so the benchmark counts the workflows
each command ran. Steps run with --unsandboxed: they are this script's own, and a sandbox's start-up would
blur what is measured. All commands are the CLI in a fresh interpreter, as a CI job runs them.

Two scenarios, each unsharded (into one output repo) and sharded (into another):
1. cold: the first publish of the platform;
2. Promise change: every Promise's step script edited, so every request's workflow runs again.
Each merge is followed by a no-op compile (the same commit again, nothing to do) on the unsharded repo, its
yardstick, timed beside it because this machine's speed drifts within minutes; and at the end the same no-op
reading everything (see `full_noop`). The merge and the no-ops are the best of R runs
(the shard refs and the branch are put back before each merge); everything else runs once. Checked (exit 1 when
not): each sharded tree equals the unsharded one (Git tree ids), the shards ran every workflow exactly once
between them, and the merge ran none. Timings are reported, never failed on: targets are a merge with no workflow
run, costing at most 1.2x a no-op compile.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

TARGET_MERGE_OVER_NOOP = 1.2
IDENTITY = "Bench <bench@example.invalid> 1700000000 +0000"
NAMESPACES = 10

STEP = """\
set -eu
echo "$KRATIX_OBJECT_NAMESPACE/$KRATIX_OBJECT_NAME" >> {counter}
sleep {sleep}
cat > "$KRATIX_OUTPUT/configmap.yaml" <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: $KRATIX_OBJECT_NAME-settings
  namespace: $KRATIX_OBJECT_NAMESPACE
data:
  revision: "{revision}"
YAML
"""


class BenchmarkError(Exception):
    pass


@dataclass(frozen=True)
class Span:
    wall: float
    cpu: float  # of the children this script waited for (the CLI and its steps)


def promise(index: int) -> str:
    name = f"slow{index}"
    document = {
        "apiVersion": "platform.kratix.io/v1alpha1",
        "kind": "Promise",
        "metadata": {"name": name},
        "spec": {
            "destinationSelectors": [{"matchLabels": {"env": ("dev", "prod")[index % 2]}}],
            "api": {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{name}s.bench.example.io"},
                "spec": {
                    "group": "bench.example.io",
                    "scope": "Namespaced",
                    "names": {"kind": name.capitalize(), "plural": f"{name}s", "singular": name},
                    "versions": [
                        {
                            "name": "v1",
                            "served": True,
                            "storage": True,
                            "schema": {
                                "openAPIV3Schema": {
                                    "type": "object",
                                    "properties": {
                                        "spec": {"type": "object", "properties": {"size": {"type": "string"}}}
                                    },
                                }
                            },
                        }
                    ],
                },
            },
            "workflows": {
                "resource": {
                    "configure": [
                        {
                            "apiVersion": "platform.kratix.io/v1alpha1",
                            "kind": "Pipeline",
                            "metadata": {"name": "instance"},
                            "spec": {"containers": [{"name": "render", "command": ["sh", "scripts/step.sh"]}]},
                        }
                    ]
                }
            },
        },
    }
    return yaml.safe_dump(document, sort_keys=False)


def platform(args: argparse.Namespace, counter: Path, revision: int) -> dict[str, str]:
    files = {}
    for index in range(args.promises):
        files[f"promises/slow{index}/promise.yaml"] = promise(index)
        files[f"promises/slow{index}/scripts/step.sh"] = STEP.format(
            counter=counter, sleep=args.sleep, revision=revision
        )
    for index in range(args.destinations):
        files[f"clusters/worker-{index:03d}.yaml"] = yaml.safe_dump(
            {
                "apiVersion": "platform.kratix.io/v1alpha1",
                "kind": "Destination",
                "metadata": {"name": f"worker-{index:03d}", "labels": {"env": ("dev", "prod")[index % 2]}},
                "spec": {"path": f"worker-{index:03d}"},
            },
            sort_keys=False,
        )
    for index in range(args.requests):
        kind = index % args.promises
        files[f"requests/team-{index % NAMESPACES:02d}/r{index:05d}.yaml"] = yaml.safe_dump(
            {
                "apiVersion": "bench.example.io/v1",
                "kind": f"Slow{kind}",
                "metadata": {"name": f"r{index:05d}", "namespace": f"team-{index % NAMESPACES:02d}"},
                "spec": {"size": "small"},
            },
            sort_keys=False,
        )
    return files


def git(repo: Path, *args: str, input: bytes | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1", LC_ALL="C")
    done = subprocess.run(["git", "-C", str(repo), *args], input=input, capture_output=True, env=env, check=False)
    if done.returncode != 0:
        raise BenchmarkError(f"git {' '.join(args)}: {done.stderr.decode()}")
    return done.stdout.decode()


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    """A commit of exactly `files` on main, through fast-import (no work tree)."""
    parent = (
        git(repo, "rev-parse", "--verify", "--quiet", "refs/heads/main").strip()
        if git(repo, "for-each-ref", "refs/heads/main")
        else ""
    )
    chunks = [f"commit refs/heads/main\ncommitter {IDENTITY}\ndata {len(message)}\n{message}\n".encode()]
    if parent:
        chunks.append(f"from {parent}\n".encode())
    chunks.append(b"deleteall\n")
    for path, text in sorted(files.items()):
        data = text.encode()
        chunks += [f"M 100644 inline {path}\ndata {len(data)}\n".encode(), data, b"\n"]
    git(repo, "fast-import", "--quiet", input=b"".join(chunks))
    return git(repo, "rev-parse", "refs/heads/main").strip()


def kratix(*args: str) -> tuple[Span, dict[str, object]]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "kratix.cli", "compile", *args, "--unsandboxed", "--format", "json", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise BenchmarkError(
            f"kratix compile {' '.join(args)} failed ({done.returncode}):\n{done.stderr}{done.stdout[-2000:]}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Span(wall, cpu), json.loads(done.stdout)


def runs(counter: Path) -> list[str]:
    """The workflow runs since the last call (and forget them)."""
    lines = counter.read_text().splitlines() if counter.exists() else []
    counter.unlink(missing_ok=True)
    return lines


@dataclass(frozen=True)
class Scenario:
    name: str
    unsharded: Span
    shards: tuple[Span, ...]
    merge: Span
    noop: Span  # a no-op compile of the same commit, timed beside each merge (the machine's speed drifts)
    workflows: int  # how many ran unsharded (and in the shards, between them)
    merge_runs: int  # how many the merge ran (0 is the target)


def scenario(
    name: str, args: argparse.Namespace, input_repo: Path, ref: str, plain: Path, sharded: Path, counter: Path
) -> Scenario:
    runs(counter)
    unsharded, _ = kratix(str(input_repo), "--ref", ref, "--output-repo", str(plain))
    ran = runs(counter)
    spans = []
    in_shards: list[str] = []
    for index in range(args.shards):
        span, report = kratix(
            str(input_repo), "--ref", ref, "--output-repo", str(sharded), "--shard", f"{index}/{args.shards}"
        )
        spans.append(span)
        in_shards += runs(counter)
        if report["shard"]["failed"]:  # type: ignore[index]
            raise BenchmarkError(f"shard {index}: workflows failed: {report['shard']['failed']}")  # type: ignore[index]
    if sorted(in_shards) != sorted(ran):
        raise BenchmarkError(f"{name}: the shards ran {len(in_shards)} workflows, the unsharded compile {len(ran)}")
    # The merge is timed best of R: before each run the shard refs and the branch are put back as the shards
    # left them (a merge removes the refs and moves the branch). Right after each merge, its yardstick: a no-op
    # compile of the same commit on the unsharded repo (this machine's speed drifts by tens of percent within
    # minutes, so a no-op timed minutes apart would measure the drift).
    stored = git(sharded, "for-each-ref", "--format=%(objectname) %(refname)", "refs/kratix/shards/")
    before = git(sharded, "for-each-ref", "--format=%(objectname)", "refs/heads/main").strip()
    merges, noops, merge_runs = [], [], 0
    for attempt in range(args.repeat):
        if attempt:
            restore = [f"update {ref} {oid}" for oid, ref in (line.split() for line in stored.splitlines())]
            restore.append(f"update refs/heads/main {before}" if before else "delete refs/heads/main")
            git(sharded, "update-ref", "--stdin", input=("\n".join(restore) + "\n").encode())
        span, _ = kratix(str(input_repo), "--ref", ref, "--output-repo", str(sharded))
        merges.append(span)
        merge_runs += len(runs(counter))
        noop, outcome = kratix(str(input_repo), "--ref", ref, "--output-repo", str(plain))
        if runs(counter) or (outcome.get("publish") or {}).get("changed"):  # type: ignore[union-attr]
            raise BenchmarkError("the no-op compile ran a workflow or made a commit")
        noops.append(noop)
    merge = min(merges, key=lambda x: x.wall)
    if git(plain, "rev-parse", "main^{tree}") != git(sharded, "rev-parse", "main^{tree}"):
        raise BenchmarkError(f"{name}: the merged tree differs from the unsharded one")
    if git(sharded, "for-each-ref", "refs/kratix/shards/"):
        raise BenchmarkError(f"{name}: shard refs were left after the merge")
    return Scenario(name, unsharded, tuple(spans), merge, min(noops, key=lambda x: x.wall), len(ran), merge_runs)


def full_noop(args: argparse.Namespace, input_repo: Path, ref: str, plain: Path, counter: Path) -> Span:
    """The same no-op when the compile must read everything: the branch's last commit is one made by hand (same
    tree, no trailers), so nothing tells the compile what it published last. Best of R; the branch is put back
    after each run. This is the no-op the merge target was first set against, before compiles read only what
    changed: like the merge, it reads every request and writes the whole tree."""
    spans = []
    head = git(plain, "rev-parse", "main").strip()
    for _ in range(args.repeat):
        by_hand = git(
            plain,
            "-c",
            "user.name=someone",
            "-c",
            "user.email=someone@example.invalid",
            "commit-tree",
            f"{head}^{{tree}}",
            "-p",
            head,
            "-m",
            "edited by hand",
        ).strip()
        git(plain, "update-ref", "refs/heads/main", by_hand)
        span, outcome = kratix(str(input_repo), "--ref", ref, "--output-repo", str(plain))
        git(plain, "update-ref", "refs/heads/main", head)
        if runs(counter) or (outcome.get("read") or {}).get("only") != "everything":  # type: ignore[union-attr]
            raise BenchmarkError("the no-op reading everything ran a workflow or did not read everything")
        spans.append(span)
    return min(spans, key=lambda x: x.wall)


def report(args: argparse.Namespace, scenarios: list[Scenario], full: Span) -> str:
    lines = [
        f"{args.promises} promises, {args.destinations} destinations, {args.requests} requests; steps sleep "
        f"{args.sleep:g} s; {args.shards} shards run one after another; merge and no-op best of "
        f"{args.repeat}; {os.cpu_count()} cores "
        f"(load average {os.getloadavg()[0]:.2f})",
        "",
        f"{'figure':<52}  {'wall':>8}  {'cpu':>8}  {'target':>8}",
        f"{'-' * 52}  {'-' * 8}  {'-' * 8}  {'-' * 8}",
    ]

    def row(label: str, span: Span, target: str = "") -> None:
        lines.append(f"{label:<52}  {span.wall:>6.2f} s  {span.cpu:>6.2f} s  {target:>8}")

    for s in scenarios:
        row(f"{s.name}: unsharded compile+publish", s.unsharded)
        for index, span in enumerate(s.shards):
            row(f"{s.name}: shard {index}/{args.shards}", span)
        row(
            f"{s.name}: all shards, one after another",
            Span(sum(x.wall for x in s.shards), sum(x.cpu for x in s.shards)),
        )
        row(f"{s.name}: longest shard (the N-machine time)", max(s.shards, key=lambda x: x.wall))
        row(f"{s.name}: merge compile+publish", s.merge)
        row(f"{s.name}: no-op compile beside each merge", s.noop)
        lines.append(
            f"{s.name + ': workflows run (unsharded / merge)':<52}  {s.workflows:>8}  {s.merge_runs:>8}  "
            f"{'0':>8}  {'PASS' if s.merge_runs == 0 else 'MISS'}"
        )
    row("no-op compile reading everything (branch edited by hand)", full)
    for s in scenarios:
        ratio = s.merge.wall / s.noop.wall
        lines.append(
            f"{'ratio: ' + s.name + ' merge / no-op':<52}  {ratio:>7.2f}x  {s.merge.cpu / s.noop.cpu:>7.2f}x  "
            f"{'<= 1.2x':>8}  {'PASS' if ratio <= TARGET_MERGE_OVER_NOOP else 'MISS'}"
        )
        lines.append(
            f"{'ratio: ' + s.name + ' merge / no-op reading everything':<52}  {s.merge.wall / full.wall:>7.2f}x  "
            f"{s.merge.cpu / full.cpu:>7.2f}x"
        )
        lines.append(
            f"{'ratio: ' + s.name + ' unsharded / longest shard+merge':<52}  "
            f"{s.unsharded.wall / (max(x.wall for x in s.shards) + s.merge.wall):>7.2f}x"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--promises", type=int, default=2)
    parser.add_argument("--destinations", type=int, default=10)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--sleep", type=float, default=0.2)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5, help="the merge and the no-op: best of R runs")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="kratix-shards-bench-", dir=args.workdir))
    try:
        input_repo, plain, sharded = scratch / "input.git", scratch / "plain.git", scratch / "sharded.git"
        git(scratch, "init", "--quiet", "--bare", "--initial-branch=main", str(input_repo))
        counter = scratch / "counter"
        first = commit(input_repo, platform(args, counter, 1), "platform")
        scenarios = [scenario("cold", args, input_repo, first, plain, sharded, counter)]
        second = commit(input_repo, platform(args, counter, 2), "every Promise's step changes")
        scenarios.append(scenario("Promise change", args, input_repo, second, plain, sharded, counter))
        print(report(args, scenarios, full_noop(args, input_repo, second, plain, counter)))
        if args.keep:
            print(f"\nkept: {scratch}")
        return 0
    except BenchmarkError as exc:
        print(f"benchmark check failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
