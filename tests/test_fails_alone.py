"""One tenant's bad file fails alone: through the CLI, on a real output repo, each way a careless or hostile
tenant or Promise author can write a file. Each case publishes a two-team platform, then commits the bad file
together with a new request of the other team, and compiles again. It must exit 1 (never 3) with a diagnostic
naming the file, publish the other team's new request, leave what was running byte for byte, and stay within
time and memory bounds.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.gitrepos import commit_files, files_at, git, head, make_repo
from tests.platforms import CONFIGMAP_TEMPLATE, PROMISE, database, destination, platform_files

TIME_LIMIT_SECONDS = 30
MEMORY_LIMIT_BYTES = 2 * 1024**3  # address space: Python and its libraries take a few hundred MB of it


def kratix_bounded(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI under a memory limit (a run that blows up fails instead of taking the machine), timed."""
    import os

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))

    full_env = {k: v for k, v in os.environ.items() if k != "GITHUB_ACTIONS"} | dict(env or {})
    return subprocess.run(
        [sys.executable, "-m", "kratix.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=TIME_LIMIT_SECONDS * 4,
        preexec_fn=limit,
    )


@dataclass
class Published:
    platform: Path
    output: Path

    def compile(
        self, *extra: str, ref: str = "HEAD", env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        done = kratix_bounded(
            "compile", str(self.platform), "--ref", ref, "--output-repo", str(self.output), *extra, env=env
        )
        assert time.monotonic() - started < TIME_LIMIT_SECONDS, "the compile was not bounded in time"
        assert done.returncode != 3, done.stderr
        return done

    def files(self) -> dict[str, bytes]:
        return files_at(self.output)


def team_a_files(files: Mapping[str, bytes]) -> dict[str, bytes]:
    """What team-a had running: its request's output, wherever it was placed."""
    return {path: data for path, data in files.items() if "/resources/team-a/" in path}


@pytest.fixture
def published(tmp_path: Path) -> Published:
    files = platform_files(**{"team-a/db": database("db"), "team-b/cache": database("cache")})
    platform, _ = make_repo(tmp_path / "platform", files)
    state = Published(platform, tmp_path / "state.git")
    done = state.compile()
    assert done.returncode == 0, done.stderr
    return state


def change_and_compile(
    state: Published, changes: Mapping[str, str | bytes], *extra: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, bytes], dict[str, bytes]]:
    """Commit `changes` and a new team-b request; compile; return the run and the files before and after."""
    before = state.files()
    commit_files(state.platform, {**changes, "requests/team-b/newcomer.yaml": database("newcomer")})
    done = state.compile(*extra)
    return done, before, state.files()


def assert_fails_alone(
    done: subprocess.CompletedProcess[str], before: Mapping[str, bytes], after: Mapping[str, bytes], where: str
) -> None:
    assert done.returncode == 1, done.stderr
    assert where in done.stderr, done.stderr
    assert any("/resources/team-b/database/newcomer/" in path for path in after), "the other tenant was held up"
    assert team_a_files(after) == team_a_files(before), "what was running changed"


# --- 1. odd but legal YAML ----------------------------------------------------------------------------------

ODD_YAML = {
    "a null key": (
        "apiVersion: example.io/v1\nkind: Database\nmetadata:\n  name: db\nspec:\n  null: x\n",
        "requests/team-a/db.yaml:6:3: ",
    ),
    "a !!set": (
        "apiVersion: example.io/v1\nkind: Database\nmetadata:\n  name: db\nspec: !!set {a, b}\n",
        "requests/team-a/db.yaml:5:7: ",
    ),
    "a key YAML 1.1 reads as a boolean": (
        "apiVersion: example.io/v1\nkind: Database\nmetadata:\n  name: db\nspec:\n  on: x\n",
        'requests/team-a/db.yaml:6:3: spec.true: unknown field "true"',
    ),
    "a number key": (
        "apiVersion: example.io/v1\nkind: Database\nmetadata:\n  name: db\nspec:\n  1: x\n",
        'requests/team-a/db.yaml:6:3: spec.1: unknown field "1"',
    ),
    "a list key": (
        "apiVersion: example.io/v1\nkind: Database\nmetadata:\n  name: db\nspec:\n  ? [a]\n  : x\n",
        "requests/team-a/db.yaml:6:5: ",
    ),
    "a document that is a list": ("- a\n- b\n", "requests/team-a/db.yaml:1:1: document 1 is a list"),
    "bytes that are not UTF-8": (b"apiVersion: \xff\xfe\n", "requests/team-a/db.yaml:1:1: not UTF-8"),
}


@pytest.mark.parametrize("case", sorted(ODD_YAML))
def test_odd_yaml_in_one_request_fails_that_request_alone(published: Published, case: str) -> None:
    text, where = ODD_YAML[case]
    done, before, after = change_and_compile(published, {"requests/team-a/db.yaml": text})
    assert_fails_alone(done, before, after, where)


def test_a_billion_laughs_is_refused_in_time_and_memory(published: Published) -> None:
    bomb = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for index in range(1, 12):
        name, previous = chr(ord("a") + index), chr(ord("a") + index - 1)
        bomb += f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]\n"
    done, before, after = change_and_compile(published, {"requests/team-a/db.yaml": bomb})
    assert_fails_alone(done, before, after, "requests/team-a/db.yaml:")
    assert "excessive aliasing" in done.stderr


def test_deep_nesting_is_refused_without_a_crash(published: Published) -> None:
    deep = (
        "apiVersion: example.io/v1\nkind: Database\nmetadata:\n  name: db\nspec:\n  x: "
        + "[" * 200_000
        + "]" * 200_000
        + "\n"
    )
    done, before, after = change_and_compile(published, {"requests/team-a/db.yaml": deep})
    assert_fails_alone(done, before, after, "requests/team-a/db.yaml:6:")
    assert "levels deep" in done.stderr


# --- 2. names before paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../escape", "a/b", "x\x00y", "UPPER", "x" * 64, "dot.ted"])
def test_a_request_name_that_is_no_dns_label_never_reaches_a_path(
    published: Published, tmp_path: Path, name: str
) -> None:
    text = yaml.safe_dump({"apiVersion": "example.io/v1", "kind": "Database", "metadata": {"name": name}})
    done, before, after = change_and_compile(published, {"requests/team-a/db.yaml": text})
    assert_fails_alone(done, before, after, "requests/team-a/db.yaml:4:3: metadata.name: ")
    out = tmp_path / "out" / "inner"
    written = kratix_bounded("compile", str(published.platform), "--ref", "HEAD", "--out", str(out))
    assert written.returncode == 1
    inside = {p.resolve() for p in out.rglob("*")}
    assert all(str(p).startswith(str(out.resolve())) for p in inside)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["inner"], "a file was written outside --out"


def test_a_namespace_folder_that_is_no_namespace_fails_its_files(published: Published) -> None:
    done, before, after = change_and_compile(published, {"requests/Team_C/db.yaml": database("db")})
    assert_fails_alone(done, before, after, "requests/Team_C/db.yaml:1:1: folder requests/Team_C/ is not a")


def test_a_request_cannot_pose_as_a_compound_child(published: Published) -> None:
    text = yaml.safe_dump(
        {
            "apiVersion": "example.io/v1",
            "kind": "Database",
            "metadata": {"name": "sneaky", "labels": {"kratix.io/parent-resource-name": "db"}},
        }
    )
    done, before, after = change_and_compile(published, {"requests/team-c/sneaky.yaml": text})
    assert_fails_alone(done, before, after, "metadata.labels.kratix.io/parent-resource-name: label ")


# --- 3. output the worker will accept ------------------------------------------------------------------------


def test_output_kubernetes_would_refuse_fails_its_request_alone(published: Published) -> None:
    template = CONFIGMAP_TEMPLATE.replace("metadata:\n", "metadata:\n  labels:\n    note: {{ request.spec.note }}\n")
    changes = {
        "promises/database/templates/configmap.yaml.j2": template,
        "requests/team-a/db.yaml": database("db", note="not a label value!"),
    }
    done, before, after = change_and_compile(published, changes)
    assert_fails_alone(
        done, before, after, "metadata.labels.note: output ConfigMap db-config in configmap.yaml: must be a label value"
    )
    status = yaml.safe_load(after[".kratix/status/team-a/database/db.yaml"])["status"]
    assert status["message"].startswith("Failed")


def test_a_step_cannot_set_the_labels_that_say_whose_output_it_is(published: Published) -> None:
    template = CONFIGMAP_TEMPLATE.replace(
        "metadata:\n",
        "metadata:\n  labels:\n    kratix.io/resource-name: {{ request.spec.note or request.metadata.name }}\n",
    )
    changes = {
        "promises/database/templates/configmap.yaml.j2": template,
        "requests/team-a/db.yaml": database("db", note="cache"),
    }
    done, before, after = change_and_compile(published, changes)
    assert_fails_alone(done, before, after, "sets label kratix.io/resource-name='cache', which only the compiler sets")


# --- 4. a broken Promise, Destination or request file is not a deletion ---------------------------------------

BROKEN_PROMISES = {
    "a mistyped apiVersion": (
        ("kind: Promise", "kind: Promise"),
        ("platform.kratix.io/v1alpha1", "platform.kratix.io/v1alpha2"),
        "promises/database/promise.yaml:1:1: apiVersion: a Promise must have apiVersion",
    ),
    "destinationSelectors as a mapping": (
        (
            "  destinationSelectors:\n    - matchLabels:\n        env: dev",
            "  destinationSelectors:\n    matchLabels:\n      env: dev",
        ),
        ("", ""),
        "spec.destinationSelectors: must be a list, not a mapping",
    ),
    "an unknown spec field": (
        ("  destinationSelectors:", "  destinationSelector:"),
        ("", ""),
        'spec.destinationSelector: unknown field "destinationSelector"',
    ),
    "a YAML syntax error": (("kind: Promise", "kind: [Promise"), ("", ""), "promises/database/promise.yaml:"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_PROMISES))
def test_a_broken_promise_keeps_its_dependencies_and_its_requests_output(published: Published, case: str) -> None:
    first, second, where = BROKEN_PROMISES[case]
    text = PROMISE.replace(*first).replace(*second) if second[0] else PROMISE.replace(*first)
    before = published.files()
    commit_files(published.platform, {"promises/database/promise.yaml": text})
    done = published.compile()
    after = published.files()
    assert done.returncode == 1 and where in done.stderr, done.stderr
    kept = {p: d for p, d in before.items() if not p.startswith(".kratix/")}
    assert {p: after.get(p) for p in kept} == kept, "published output was removed"
    status = yaml.safe_load(after[".kratix/promises/database.yaml"])["status"]
    assert status["status"] == "Unavailable" and "cannot be read" in status["message"]
    request = yaml.safe_load(after[".kratix/status/team-a/database/db.yaml"])["status"]
    assert request["message"] == "Pending"


def test_a_broken_destination_keeps_what_is_placed_on_it(published: Published) -> None:
    before = published.files()
    commit_files(
        published.platform,
        {
            "clusters/dev-1.yaml": destination("dev-1", {"env": "dev"}).replace("strictMatchLabels", "strictMatchLabel")
            + "  strictMatchLabelz: yes\n"
        },
    )
    done = published.compile()
    after = published.files()
    assert done.returncode == 1 and "clusters/dev-1.yaml:" in done.stderr, done.stderr
    assert {p: d for p, d in after.items() if p.startswith("dev-1/")} == {
        p: d for p, d in before.items() if p.startswith("dev-1/")
    }


def test_a_request_file_that_stops_parsing_keeps_its_output_and_says_why(published: Published) -> None:
    done, before, after = change_and_compile(published, {"requests/team-a/db.yaml": "kind: [Database\n"})
    assert_fails_alone(done, before, after, "requests/team-a/db.yaml:2:1: YAML syntax error")
    status = yaml.safe_load(after[".kratix/status/team-a/database/db.yaml"])["status"]
    assert status["message"] == "Failed: its file cannot be read"
    # Deleting the file is what deletes the request (and the guard still looks at it).
    commit_files(published.platform, {}, remove=["requests/team-a/db.yaml"])
    removed = published.compile("--allow-deletions")
    assert removed.returncode == 0, removed.stderr
    assert not team_a_files(published.files())


# --- 5. collisions are decided once ---------------------------------------------------------------------------

SHARED = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shared-{{ request.spec.size }}\n"


@pytest.mark.parametrize("rebuild", [False, True], ids=["warm cache", "cold cache"])
def test_the_owner_that_published_an_object_first_keeps_it(tmp_path: Path, rebuild: bool) -> None:
    files = platform_files(**{"team-b/zz-first": database("zz-first")})
    files["promises/database/templates/shared.yaml.j2"] = SHARED
    files["clusters/dev-2.yaml"] = destination("dev-2", {"env": "elsewhere"})  # one destination for all
    platform, _ = make_repo(tmp_path / "platform", files)
    state = Published(platform, tmp_path / "state.git")
    assert state.compile().returncode == 0
    # A newcomer that sorts first emits the same Namespace: it fails, the owner keeps it.
    commit_files(platform, {"requests/team-a/aa-newcomer.yaml": database("aa-newcomer")})
    done = state.compile(*(["--rebuild"] if rebuild else []))
    assert done.returncode == 1
    assert "Namespace/shared-small on destination dev-1 is already emitted by Database team-b/zz-first" in done.stderr
    after = state.files()
    assert "dev-1/resources/team-b/database/zz-first/instance/shared.yaml" in after
    assert not any("aa-newcomer/instance" in path for path in after)


# --- 6. bookkeeping that heals --------------------------------------------------------------------------------


def corrupt(state: Published, path: str, content: bytes) -> None:
    scratch = state.output.with_name("scratch")
    git(state.output.parent, "clone", "--quiet", str(state.output), str(scratch))
    (scratch / path).write_bytes(content)
    git(scratch, "commit", "--quiet", "-am", "edited by hand")
    git(scratch, "push", "--quiet", "origin", "main")


@pytest.mark.parametrize(
    "path",
    [
        ".kratix/placements.json",
        ".kratix/provenance/dev-1.jsonl",
        ".kratix/cache/team-a.jsonl",
        ".kratix/inventory.json",
    ],
)
@pytest.mark.parametrize(
    "content", [b"{truncated", b'{"format": 99}\n', b"\xff\xfe"], ids=["truncated", "another version", "not text"]
)
def test_unreadable_bookkeeping_is_a_warning_and_the_compile_heals(
    published: Published, path: str, content: bytes
) -> None:
    if path not in published.files():
        pytest.skip(f"{path} is not part of this platform's output")
    corrupt(published, path, content)
    for extra in ((), ("--rebuild",)):
        done = published.compile(*extra)
        assert done.returncode == 0, done.stderr
        assert f"{path} cannot be read" in done.stderr or extra
    healed = published.files()
    assert team_a_files(healed) and healed[path] != content
    assert published.compile().returncode == 0  # and stays healthy


def _reshaped(text: str, path: str) -> bytes:
    """`text` (a bookkeeping file) still valid JSON, with one value of another type than kratix writes."""
    if path.endswith("inventory.json"):
        document = json.loads(text)
        next(iter(document["destinations"].values()))["path"] = [["dev-1"]]
        return json.dumps(document).encode()
    header, line, *rest = text.splitlines()
    sealed = path.startswith(".kratix/cache/")  # a cache record is `<check> <json>`
    check, record = line.split(" ", 1) if sealed else ("", line)
    loaded = json.loads(record)
    loaded["outputs" if sealed else "objects"] = [["not", "a", "path"]]
    edited = json.dumps(loaded)
    return "\n".join([header, f"{check} {edited}" if sealed else edited, *rest, ""]).encode()


@pytest.mark.parametrize(
    "path", [".kratix/cache/team-a.jsonl", ".kratix/provenance/dev-1.jsonl", ".kratix/inventory.json"]
)
def test_bookkeeping_edited_into_json_of_another_shape_is_a_warning_and_heals(published: Published, path: str) -> None:
    if path not in published.files():
        pytest.skip(f"{path} is not part of this platform's output")
    corrupt(published, path, _reshaped(published.files()[path].decode(), path))
    done = published.compile()  # exit 3 (an unhashable list, deep in the compile) before these were checked
    assert done.returncode == 0, done.stderr
    assert f"{path} cannot be read" in done.stderr
    assert team_a_files(published.files())
    assert published.compile().returncode == 0


def test_a_forged_cache_entry_is_never_trusted(published: Published) -> None:
    shard = ".kratix/cache/team-a.jsonl"
    text = published.files()[shard].decode()
    header, line = text.splitlines()[:2]
    check, record = line.split(" ", 1)
    forged = json.loads(record)
    forged["outputs"] = [*forged["outputs"], "dev-1/resources/team-b/database/cache/instance/configmap.yaml"]
    corrupt(published, shard, f"{header}\n{check} {json.dumps(forged, sort_keys=True)}\n".encode())
    before = head(published.output)
    done = published.compile()
    assert done.returncode == 0, done.stderr
    after = published.files()
    record_now = json.loads(after[shard].decode().splitlines()[1].split(" ", 1)[1])
    assert all("/team-a/" in path for path in record_now["outputs"]), "the forged record was kept"
    assert head(published.output) != before


def test_an_output_file_edited_by_hand_is_rewritten(published: Published) -> None:
    target = next(p for p in published.files() if p.endswith("team-a/database/db/instance/configmap.yaml"))
    original = published.files()[target]
    corrupt(published, target, original.replace(b"size: small", b"size: huge"))
    assert published.compile().returncode == 0
    assert published.files()[target] == original


# --- 9. hand-placed files -------------------------------------------------------------------------------------


def test_a_file_kratix_did_not_write_trips_the_guard(published: Published) -> None:
    scratch = published.output.with_name("scratch")
    git(published.output.parent, "clone", "--quiet", str(published.output), str(scratch))
    placed = scratch / "dev-1" / "resources" / "by-hand.yaml"
    placed.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: by-hand\n  namespace: default\n")
    git(scratch, "add", "--all")
    git(scratch, "commit", "--quiet", "-m", "by hand")
    git(scratch, "push", "--quiet", "origin", "main")
    commit_files(published.platform, {"requests/team-b/newcomer.yaml": database("newcomer")})
    refused = published.compile()
    assert refused.returncode == 1
    assert "kratix did not write" in refused.stderr and "dev-1/resources/by-hand.yaml" in refused.stderr
    assert published.compile("--allow-deletions").returncode == 0
    assert "dev-1/resources/by-hand.yaml" not in published.files()


# --- 8. text is escaped for where it goes ------------------------------------------------------------------------


def test_json_output_is_only_json_and_names_cannot_inject_workflow_commands(published: Published) -> None:
    name = "requests/team-a/x\n::stop-commands::pwned\n::error::forged.yaml"
    commit_files(published.platform, {name: "kind: [\n"})
    done = published.compile("--format", "json", env={"GITHUB_ACTIONS": "true"})
    assert done.returncode == 1
    report = json.loads(done.stdout)  # nothing but JSON on stdout
    assert any(d["file"] == name for d in report["diagnostics"])
    lines = (done.stdout + done.stderr).splitlines()
    assert not any(line.lstrip().startswith(("::stop-commands", "::error::forged")) for line in lines)
    assert any(line.startswith("::error file=requests/team-a/x%0A%3A%3Astop-commands") for line in lines)


def test_work_tree_mode_does_not_follow_a_link_out_of_the_repo(tmp_path: Path) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text(database("stolen"))
    root = tmp_path / "platform"
    for relative, content in platform_files(**{"team-a/db": database("db")}).items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(content)
    (root / "requests" / "team-a" / "link.yaml").symlink_to(secret)
    (root / "promises" / "database" / "templates" / "leak.yaml").symlink_to(secret)
    done = kratix_bounded("compile", str(root), "--out", str(tmp_path / "out"))
    assert done.returncode == 1
    assert "requests/team-a/link.yaml is a symbolic link" in done.stderr
    assert "stolen" not in "".join(p.read_text() for p in (tmp_path / "out").rglob("*.yaml"))
