"""Every core: a compile over worker processes writes what a compile in one process writes, byte for byte."""

from __future__ import annotations

import multiprocessing

import pytest

from kratix import workers
from kratix.compile import pipeline
from kratix.model.documents import SourceTree
from kratix.model.settings import RenderSettings, Settings
from tests.platforms import database, platform_files


def test_worker_processes_change_nothing_in_the_output(monkeypatch: pytest.MonkeyPatch) -> None:
    requests = {f"team-{i % 4}/db-{i}": database(f"db-{i}", replicas=1 + i % 5) for i in range(40)}
    requests["team-0/broken"] = database("broken", replicas=77)  # a diagnostic from a worker
    tree = SourceTree({k: v.encode() for k, v in platform_files(**requests).items()}, commit="a" * 40)
    one = pipeline.compile_platform(tree, settings=Settings(render=RenderSettings(parallelism=1)))
    forks = []
    real = multiprocessing.get_context
    monkeypatch.setattr(workers, "MINIMUM", 4)
    monkeypatch.setattr(multiprocessing, "get_context", lambda method=None: forks.append(method) or real(method))
    many = pipeline.compile_platform(tree, settings=Settings(render=RenderSettings(parallelism=2)))
    assert forks and set(forks) == {"fork"}  # the pool ran: for requests, validation and YAML
    assert many.files == one.files
    assert many.diagnostics == one.diagnostics and any(d.file.endswith("broken.yaml") for d in many.diagnostics)
    assert many.summary == one.summary


def test_small_jobs_stay_in_this_process() -> None:
    assert workers.map_ranges(lambda a, b: list(range(a, b)), 10, jobs=8) == list(range(10))


def test_results_come_back_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "MINIMUM", 2)
    assert workers.map_ranges(lambda a, b: [i * i for i in range(a, b)], 101, jobs=2) == [i * i for i in range(101)]
