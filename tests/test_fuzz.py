"""Property tests of "fails alone": whatever one tenant or Promise author writes, the compile exits 0 or 1 (never 3,
"a bug in kratix"), stays within its time budget, and every other request's output is byte for byte what it is
without the hostile input.

Each example writes a small platform to a work tree and runs the `kratix compile --out` command in this process
(click's runner: exit codes and all, without a process per example). A bounded number of examples runs by default;
`KRATIX_FUZZ_EXAMPLES=2000 python -m pytest tests/test_fuzz.py -n 0` runs a long session.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kratix.cli import main
from tests.platforms import PROMISE, database, platform_files

EXAMPLES = int(os.environ.get("KRATIX_FUZZ_EXAMPLES", "20"))
BUDGET_SECONDS = 20.0
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="KRATIX_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
OTHER = "/resources/team-b/"  # the bystander: team-b's request, whose output must never change


def base_files() -> dict[str, str]:
    return platform_files(
        **{"team-a/db": database("db"), "team-b/bystander": database("bystander", size="large", replicas=2)}
    )


@contextmanager
def written(files: Mapping[str, str | bytes]) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="kratix-fuzz-"))
    try:
        for relative, content in files.items():
            target = root / "platform" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode() if isinstance(content, str) else content)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def compile_out(files: Mapping[str, str | bytes], *extra: str) -> tuple[int, str, dict[str, bytes]]:
    """Exit code, stderr and the output tree of `kratix compile --out`, run in this process."""
    with written(files) as root:
        out = root / "out"
        started = time.monotonic()
        result = CliRunner().invoke(
            main, ["compile", str(root / "platform"), "--out", str(out), "-q", *extra], catch_exceptions=False
        )
        assert time.monotonic() - started < BUDGET_SECONDS, "the compile was not bounded in time"
        tree = (
            {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
            if out.exists()
            else {}
        )
        return result.exit_code, result.stderr, tree


def bystander(tree: Mapping[str, bytes]) -> dict[str, bytes]:
    return {path: data for path, data in tree.items() if OTHER in path}


BASELINE: dict[str, dict[str, bytes]] = {}


def baseline(extra: tuple[str, ...] = (), files: Callable[[], dict[str, str]] = base_files) -> dict[str, bytes]:
    key = f"{files.__name__}{extra}"
    if key not in BASELINE:
        code, stderr, tree = compile_out(files(), *extra)
        assert code == 0, stderr
        BASELINE[key] = bystander(tree)
        assert BASELINE[key], "the bystander published nothing"
    return BASELINE[key]


def assert_alone(
    files: Mapping[str, str | bytes], *extra: str, reference: Callable[[], dict[str, str]] = base_files
) -> None:
    code, stderr, tree = compile_out(files, *extra)
    assert code in (0, 1), f"exit {code}: {stderr}"
    assert bystander(tree) == baseline(extra, reference), stderr


# --- arbitrary YAML-ish text as a request file ----------------------------------------------------------------

YAMLISH = st.text(alphabet="abnoy01:-[]{}&*!<>|#'\" \n\t.,?%@`~=\\\x00\x85\u2028é", max_size=300)
VALID = database("db")


@FUZZ
@given(
    text=st.one_of(
        YAMLISH, st.builds(lambda cut, junk: VALID[:cut] + junk + VALID[cut:], st.integers(0, len(VALID)), YAMLISH)
    )
)
def test_any_text_as_a_request_file_fails_alone(text: str) -> None:
    assert_alone({**base_files(), "requests/team-a/db.yaml": text})


# --- arbitrary JSON values in every field of a request, a Promise and a Destination ---------------------------

JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=3)),
    max_leaves=10,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(document) if isinstance(document, dict) else list(document)
    copy[path[0]] = _replaced(copy[path[0]], path[1:], value)  # type: ignore[index]
    return copy


def _field_of(text: str) -> st.SearchStrategy[tuple[tuple[Any, ...], Any]]:
    document = yaml.safe_load(text)
    return st.tuples(st.sampled_from(list(_paths(document))), JSON)


@pytest.mark.parametrize("file", ["requests/team-a/db.yaml", "promises/database/promise.yaml", "clusters/dev-1.yaml"])
@FUZZ
@given(data=st.data())
def test_any_json_value_in_any_field_fails_alone(file: str, data: st.DataObject) -> None:
    files = base_files()
    path, value = data.draw(_field_of(files[file]))
    hostile = yaml.safe_dump(_replaced(yaml.safe_load(files[file]), path, value), allow_unicode=True)
    code, stderr, tree = compile_out({**files, file: hostile})
    assert code in (0, 1), f"exit {code}: {stderr}"
    if file.startswith("requests/"):  # a request's own field: the other request's output is untouched
        assert bystander(tree) == baseline(), stderr


# --- arbitrary file names and contents from a step ------------------------------------------------------------

STEP_PROMISE = PROMISE.replace(
    """              - name: render
                template: templates
""",
    """              - name: render
                template: templates
              - name: write
                command: [sh, -c, '[ "$KRATIX_OBJECT_NAMESPACE" = team-a ] || exit 0;
                  mkdir -p "$KRATIX_OUTPUT/$(dirname "$NAME")" && printf %s "$CONTENT" > "$KRATIX_OUTPUT/$NAME"']
                env:
                  - {name: NAME, value: "ok.yaml"}
                  - {name: CONTENT, value: ""}
""",
)


def step_files() -> dict[str, str]:
    return {**base_files(), "promises/database/promise.yaml": STEP_PROMISE}


NAMES = st.one_of(
    st.text(alphabet="ab./-_ \n\r\t:é~$`\\*", min_size=1, max_size=40),
    st.sampled_from(
        [".git/config", "../escape.yaml", "a/../../b", "x/.GIT/y", "/abs.yaml", "a" * 300, "ok/" * 400 + "f"]
    ),
)
CONTENTS = st.one_of(
    YAMLISH,
    st.builds(yaml.safe_dump, JSON),
    st.sampled_from(
        [
            "kind: Secret\napiVersion: v1\nmetadata: {name: s}\ndata: {k: dg==}\n",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels:\n"
            "    kratix.io/resource-name: bystander\n",
        ]
    ),
)


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell for the step")
@FUZZ
@given(name=NAMES, content=CONTENTS.filter(lambda text: "\x00" not in text))  # an environment cannot carry NUL
def test_any_file_a_step_writes_fails_alone(name: str, content: str) -> None:
    # The step is ours and harmless; --unsandboxed keeps this test about what the compiler does with step output.
    promise = STEP_PROMISE.replace('value: "ok.yaml"', f"value: {json.dumps(name)}")
    promise = promise.replace('value: ""', f"value: {json.dumps(content)}")  # a JSON string is YAML too
    assert_alone({**step_files(), "promises/database/promise.yaml": promise}, "--unsandboxed", reference=step_files)
