"""Shards at the edge: `compile --shard I/N` runs one shard's workflows and stores their results under a ref of
the output repo; a plain `compile --output-repo` reads every result stored for its input commit, replays them,
and removes those refs once it has published (`kratix.compile.shards` holds the logic; here only the I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Stored:
    """What the publishing compile found under the refs of its input commit."""

    commit: str
    results: tuple[Any, ...] = ()  # shards.ShardResult, one per readable ref
    refs: tuple[str, ...] = ()  # every ref of this commit, used or not: removed once the compile has published
    problems: tuple[str, ...] = ()  # refs that could not be used, with why
    others: int = 0  # refs of other input commits (never used; left for their own compile)
    count: int = 0  # N, as the refs name it (0: no shard results)
    replayer: Any = field(default=None, compare=False)
    carried: tuple[Any, ...] = ()  # shards.Carried, one per shard that carries finished output

    @property
    def missing(self) -> tuple[int, ...]:
        found = {r.shard.index for r in self.results if r.shard.count == self.count}
        return tuple(i for i in range(self.count) if i not in found)


def run_shard(tree: Any, repo: Any, settings: Any, spec: str) -> tuple[Any, str]:
    """Run the workflows of one shard against the output branches as they are now (a request the publishing
    compile will carry over unchanged runs in no shard either); store their results. Returns the shard's result
    and its ref."""
    import os

    import click

    from kratix import __version__, gitio, load
    from kratix.cli.publishing import with_store_prefixes
    from kratix.compile import pipeline, shards
    from kratix.publish import stores

    try:
        shard = shards.parse_spec(spec, os.environ)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--shard") from None
    if not tree.commit:
        raise click.UsageError("--shard needs --ref: shard results are stored for one input commit")
    targets = stores.resolve(load.parse_state_stores(tree), default=repo)
    settings = with_store_prefixes(settings, targets)
    previous = stores.read_all(targets).previous()
    recorder = shards.Recorder(shard)
    compiled = pipeline.compile_platform(tree, settings=settings, previous=previous, workflows=recorder)
    result = recorder.result(tree.commit)
    files = shards.result_files(result, version=__version__)
    carried = 0
    if len(targets) == 1:  # other stores' files would have to be in their own repos: their requests are replayed
        finished, blobs = shards.carried_of(
            compiled.requests,
            compiled.files,
            compiled.provenance,
            compiled.promises,
            ran={entry.identity for entry in result.entries},
            base=previous.commit,
        )
        files.update(shards.carried_files(finished, blobs))
        carried = len(finished.records)
    result = replace(result, carried=carried)
    message = (
        f"kratix: shard {shard} of {tree.origin} @ {tree.commit[:12]}\n\n{len(result.entries)} workflow "
        f"result(s); {len(result.failed)} failed; {carried} request(s) finished.\n\nSource-Commit: {tree.commit}\n"
    )
    written = gitio.write_commit(
        repo.path,
        parent=None,
        changes=files,
        replace_all=True,
        message=message,
        author=gitio.Signature("Kratix", "kratix@localhost", 0),
    )
    ref = shards.ref_name(tree.commit, shard)
    gitio.set_ref(repo.path, ref, written.commit, url=repo.url)
    return result, ref


def load_stored(repo: Any, commit: str | None) -> Stored | None:
    """The shard results stored for `commit` (None when there are none, or the input is no commit)."""
    from kratix import gitio
    from kratix.compile import shards

    if not commit or not repo.path.exists():
        return None
    everything = gitio.list_refs(repo.path, shards.REF_PREFIX, url=repo.url)
    mine = {ref: oid for ref, oid in everything.items() if ref.startswith(shards.refs_of(commit))}
    if not mine:
        return None
    if repo.url is not None:
        gitio.fetch_refs(repo.path, repo.url, mine)
    results, problems, counts, carried = [], [], [], []
    found: dict[str, Any] = {}  # ref -> its shard
    for ref in sorted(mine):
        shard = shards.shard_of_ref(ref, commit)
        if shard is None:
            problems.append(f"{ref}: not a name kratix writes")
            continue
        counts.append(shard.count)
        found[ref] = shard
    for _ref, (shard, files) in _read_results(repo, {ref: mine[ref] for ref in found}, found).items():
        try:
            if isinstance(files, str):
                raise ValueError(files)
            results.append(shards.read_result(files, commit=commit, shard=shard))
        except (ValueError, UnicodeDecodeError) as exc:
            problems.append(f"shard {shard}: {exc}")
            continue
        try:
            finished = shards.read_carried(files)
        except (ValueError, UnicodeDecodeError, TypeError) as exc:
            problems.append(f"shard {shard}: its finished output: {exc} (its requests are compiled here)")
            continue
        if finished is not None:
            carried.append(finished)
    count = max(counts, key=counts.count) if counts else 0  # N as most refs name it
    replayer = shards.Replayer(shards.merged_entries(results), count=count)
    return Stored(
        commit,
        tuple(results),
        tuple(sorted(mine)),
        tuple(problems),
        len(everything) - len(mine),
        count,
        replayer,
        tuple(carried),
    )


def _read_results(repo: Any, commits: dict[str, str], found: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Each ref's shard and its files (its results, and the finished output it carries when it does), read with
    one `cat-file --batch` for all of them; a ref whose results are not there gets why instead."""
    from kratix import gitio
    from kratix.compile import shards

    names = (shards.MANIFEST, shards.RESULTS, *shards.CARRIED_READ)
    pairs = [(ref, f"{oid}:{name}") for ref, oid in commits.items() for name in names]
    blobs = dict(
        zip((name for _, name in pairs), gitio.read_named(repo.path, [name for _, name in pairs]), strict=True)
    )
    read: dict[str, tuple[Any, Any]] = {}
    for ref, oid in commits.items():
        manifest, results = blobs.get(f"{oid}:{shards.MANIFEST}"), blobs.get(f"{oid}:{shards.RESULTS}")
        files = (
            {name: blobs.get(f"{oid}:{name}") for name in names}
            if manifest is not None and results is not None
            else f"no {shards.MANIFEST} and {shards.RESULTS} in its commit"
        )
        read[ref] = (found[ref], files)
    return read


def remove_used(repo: Any, stored: Stored | None) -> list[str]:
    """Remove the refs of the commit just published; a failure (another publishing compile of the same commit
    removed them first, or the remote refused) is reported, never fatal: the output is published already."""
    from kratix import gitio

    if stored is None:
        return []
    try:
        gitio.delete_refs(repo.path, stored.refs, url=repo.url)
    except gitio.GitCommandError as exc:
        return [
            f"shards: warning: the shard refs of {stored.commit[:12]} could not all be removed "
            f"({str(exc).splitlines()[0]}); remove them with git push <output repo> --delete <ref>"
        ]
    return []


def summary_lines(stored: Stored | None) -> list[str]:
    """What the publishing compile did with shard results (nothing when none were stored)."""
    if stored is None:
        return []
    from kratix.compile import shards

    replayer = stored.replayer
    used = sorted({r.shard.index for r in stored.results})
    lines = [
        f"shards: {len(replayer.used)} workflow result(s) reused from {len(used)} of {stored.count} shard(s) "
        f"for {stored.commit[:12]}"
        + (f" ({len(replayer.carried)} request(s) carried over finished)" if replayer.carried else "")
        + f"; {len(replayer.ran)} workflow(s) ran here"
    ]
    for index in stored.missing:
        ran = sum(1 for identity in replayer.ran if shards.assigned(identity, stored.count) == index)
        lines.append(
            f"shards: shard {index}/{stored.count} has no result (missing or failed): its workflows ran "
            f"here ({ran} workflow(s))"
        )
    lines += [f"shards: not used: {problem}" for problem in stored.problems]
    failed = sorted({identity for r in stored.results for identity in r.failed})
    if failed:
        lines.append(
            f"shards: {len(failed)} workflow(s) failed in their shard and ran again here: "
            + ", ".join(failed[:5])
            + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
        )
    return lines


def summary_json(stored: Stored | None) -> dict[str, Any]:
    if stored is None:
        return {}
    replayer = stored.replayer
    return {
        "shards": {
            "commit": stored.commit,
            "count": stored.count,
            "used": sorted({r.shard.index for r in stored.results}),
            "missing": list(stored.missing),
            "reused": len(replayer.used),
            "finished": len(replayer.carried),
            "ran": len(replayer.ran),
            "problems": list(stored.problems),
        }
    }


def shard_line(result: Any, ref: str) -> str:
    return (
        f"shard {result.shard}: {len(result.entries)} workflow result(s) stored at {ref}, "
        f"{result.carried} request(s) finished; {result.skipped} left to other shards"
        + (
            f"; {len(result.failed)} failed (not stored: the publishing compile runs them again)"
            if result.failed
            else ""
        )
    )


def shard_json(result: Any, ref: str) -> dict[str, Any]:
    return {
        "shard": {
            "index": result.shard.index,
            "count": result.shard.count,
            "commit": result.commit,
            "ref": ref,
            "stored": len(result.entries),
            "finished": result.carried,
            "skipped": result.skipped,
            "failed": list(result.failed),
        }
    }
