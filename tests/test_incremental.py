"""The request cache changes how much work a compile does, never what it produces: compiling against a previous
output with its cache gives the same bytes as compiling against it with the cache removed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kratix import paths, pipeline
from kratix.documents import SourceTree
from kratix.settings import Settings
from tests.platforms import database, destination, platform_files

SETTINGS = Settings()


def first_output(files: dict[str, str]) -> pipeline.PreviousOutput:
    tree = SourceTree({k: v.encode() for k, v in files.items()}, commit="a" * 40)
    result = pipeline.compile_platform(tree, settings=SETTINGS)
    return pipeline.PreviousOutput(result.files, "c" * 40)


def both_ways(files: dict[str, str], previous: pipeline.PreviousOutput
              ) -> tuple[pipeline.CompileResult, pipeline.CompileResult]:
    tree = SourceTree({k: v.encode() for k, v in files.items()}, commit="b" * 40)
    with_cache = pipeline.compile_platform(tree, settings=SETTINGS, previous=previous)
    no_cache = pipeline.PreviousOutput({k: v for k, v in previous.files.items()
                                        if not paths.is_cache_shard(k)},
                                       previous.commit)
    without = pipeline.compile_platform(tree, settings=SETTINGS, previous=no_cache)
    return with_cache, without


def base() -> dict[str, str]:
    return platform_files(**{f"team-{i % 3}/db-{i}": database(f"db-{i}") for i in range(12)})


CHANGES: dict[str, Callable[[dict[str, str]], None]] = {
    "nothing": lambda f: None,
    "one request changed": lambda f: f.update({"requests/team-1/db-4.yaml": database("db-4", replicas=3)}),
    "one request added": lambda f: f.update({"requests/team-0/new.yaml": database("new")}),
    "one request removed": lambda f: f.pop("requests/team-2/db-5.yaml"),
    "one request broken": lambda f: f.update({"requests/team-0/db-0.yaml": database("db-0", replicas=77)}),
    "template changed": lambda f: f.update({"promises/database/templates/configmap.yaml.j2":
                                            f["promises/database/templates/configmap.yaml.j2"] + "  extra: x\n"}),
    "destination added": lambda f: f.update({"clusters/dev-3.yaml": destination("dev-3", {"env": "dev"})}),
    "destination relabelled": lambda f: f.update({"clusters/dev-1.yaml": destination("dev-1", {"env": "gone"})}),
    "duplicate of a cached request": lambda f: f.update({"requests/team-1/aaa.yaml": database("db-1")}),
    "two requests in one file": lambda f: f.update({"requests/team-2/db-2.yaml": database("db-2") + "---\n"
                                                    + database("db-2b")}),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_the_cache_never_changes_the_output(change: str) -> None:
    previous = first_output(base())
    files = base()
    CHANGES[change](files)
    with_cache, without = both_ways(files, previous)
    assert with_cache.files == without.files
    assert with_cache.diagnostics == without.diagnostics
    assert with_cache.summary == without.summary


def test_unchanged_requests_are_reused_and_changed_ones_are_not() -> None:
    previous = first_output(base())
    files = base()
    CHANGES["one request changed"](files)
    tree = SourceTree({k: v.encode() for k, v in files.items()}, commit="b" * 40)
    result = pipeline.compile_platform(tree, settings=SETTINGS, previous=previous)
    reused = {key for key, status in result.requests.items() if status.reused}
    assert reused == {f"Database team-{i % 3}/db-{i}" for i in range(12)} - {"Database team-1/db-4"}
    again = pipeline.compile_platform(tree, settings=SETTINGS,
                                      previous=pipeline.PreviousOutput(result.files, "d" * 40))
    assert all(status.reused for status in again.requests.values())
    assert again.files == result.files


def test_a_template_change_invalidates_every_request_of_that_promise() -> None:
    previous = first_output(base())
    files = base()
    CHANGES["template changed"](files)
    tree = SourceTree({k: v.encode() for k, v in files.items()}, commit="b" * 40)
    result = pipeline.compile_platform(tree, settings=SETTINGS, previous=previous)
    assert not any(status.reused for status in result.requests.values())


def test_rebuild_renders_everything_again_and_changes_nothing() -> None:
    from kratix.settings import RenderSettings

    previous = first_output(base())
    tree = SourceTree({k: v.encode() for k, v in base().items()}, commit="b" * 40)
    rebuilt = pipeline.compile_platform(tree, settings=Settings(render=RenderSettings(reuse_unchanged=False)),
                                        previous=previous)
    assert not any(status.reused for status in rebuilt.requests.values())
    reused = pipeline.compile_platform(tree, settings=SETTINGS, previous=previous)
    assert rebuilt.files == reused.files


def test_a_new_request_clashing_with_a_reused_one_fails_as_it_would_without_the_cache() -> None:
    files = platform_files(**{"team-a/a": database("a")})
    files["promises/database/templates/shared.yaml.j2"] = (
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shared-{{ request.spec.size }}\n")
    files["clusters/dev-2.yaml"] = destination("dev-2", {"env": "elsewhere"})  # one destination for all
    previous = first_output(files)
    files["requests/team-a/b.yaml"] = database("b")
    with_cache, without = both_ways(files, previous)
    assert with_cache.requests["Database team-a/a"].reused
    assert with_cache.files == without.files and with_cache.diagnostics == without.diagnostics
    assert with_cache.requests["Database team-a/b"].failed_now
    assert any("Namespace/shared-small" in d.message for d in with_cache.diagnostics)
