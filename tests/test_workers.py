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


EXTRA_TEMPLATE = """\
{% set note = request.spec.note %}
{% set name = request.metadata.name %}
{% if note == "secret" %}
apiVersion: v1
kind: Secret
metadata:
  name: {{ name }}-password
stringData:
  password: hunter2
{% elif note == "label" %}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ name }}-extra
  labels:
    kratix.io/promise-name: someone-else
{% elif note == "invalid" %}
apiVersion: v1
kind: Service
metadata:
  name: {{ name }}-extra
spec:
  ports: nope
{% elif note == "crd" %}
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.w.example.io
spec:
  group: w.example.io
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {type: integer}
{% elif note == "widget" %}
apiVersion: w.example.io/v1
kind: Widget
metadata:
  name: {{ name }}-widget
spec:
  size: not-a-number
{% elif note == "clash" %}
apiVersion: v1
kind: ConfigMap
metadata:
  name: shared
  namespace: team-0
{% else %}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ name }}-extra
{% endif %}
"""


def test_output_packed_in_the_workers_is_checked_as_in_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers pack the files no later check reads (`request_compile._packed_if_settled`); whatever a file holds
    (a plaintext Secret, an identity label, an invalid object, a CRD and an object of its kind, one object from
    two owners), the output, diagnostics and statuses are those of a compile in one process."""
    notes = ["", "secret", "label", "invalid", "crd", "widget", "clash", "clash", "clash", "clash"]
    requests = {f"team-{i % 2}/db-{i}": database(f"db-{i}", note=notes[i % len(notes)]) for i in range(40)}
    files = {**platform_files(**requests), "promises/database/templates/extra.yaml.j2": EXTRA_TEMPLATE}
    tree = SourceTree({k: v.encode() for k, v in files.items()}, commit="b" * 40)
    one = pipeline.compile_platform(tree, settings=Settings(render=RenderSettings(parallelism=1)))
    monkeypatch.setattr(workers, "MINIMUM", 4)
    many = pipeline.compile_platform(tree, settings=Settings(render=RenderSettings(parallelism=2)))
    assert many.files == one.files
    assert many.diagnostics == one.diagnostics
    assert many.summary == one.summary
    assert {k: (s.state, s.reason, s.detail, s.unchecked_kinds) for k, s in many.requests.items()} == {
        k: (s.state, s.reason, s.detail, s.unchecked_kinds) for k, s in one.requests.items()
    }
    reasons = {s.reason for s in one.requests.values()}
    assert {"PlaintextSecret", "OutputInvalid", "ObjectConflict", "Placed"} <= reasons
