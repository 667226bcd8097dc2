"""Requests whose Promise runs programs are compiled side by side (they wait on processes, not on Python)."""

from __future__ import annotations

from pathlib import Path

import yaml

from kratix.compile import pipeline
from kratix.model.documents import SourceTree
from kratix.model.settings import RenderSettings, Settings
from tests.platforms import PROMISE, database, destination
from tests.sandboxes import require_command_sandbox

# Each run notes when it started and sleeps: runs that overlap in time ran at the same time.
SCRIPT = """\
set -eu
started=$(date +%s.%N)
sleep 1
cat > /kratix/output/configmap.yaml <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: $KRATIX_OBJECT_NAME-timing
  namespace: $KRATIX_OBJECT_NAMESPACE
data:
  started: "$started"
  finished: "$(date +%s.%N)"
YAML
"""


def platform(requests: int) -> SourceTree:
    promise = PROMISE.replace(
        "                template: templates\n", "                command: [sh, scripts/slow.sh]\n"
    )
    files = {
        "promises/database/promise.yaml": promise,
        "promises/database/scripts/slow.sh": SCRIPT,
        "clusters/dev-1.yaml": destination("dev-1", {"env": "dev"}),
    }
    files.update({f"requests/team-a/db-{i}.yaml": database(f"db-{i}") for i in range(requests)})
    return SourceTree({k: v.encode() for k, v in files.items()})


def windows(result: pipeline.CompileResult) -> list[tuple[float, float]]:
    found = []
    for path, data in result.files.items():
        if path.endswith("/configmap.yaml") and "/resources/" in path:
            data_section = yaml.safe_load(data)["data"]
            found.append((float(data_section["started"]), float(data_section["finished"])))
    return sorted(found)


def test_program_steps_of_different_requests_overlap_in_time(tmp_path: Path) -> None:
    require_command_sandbox()
    result = pipeline.compile_platform(platform(2), settings=Settings(render=RenderSettings(parallelism=2)))
    assert result.ok, [d.render() for d in result.diagnostics]
    (first_start, first_end), (second_start, _) = windows(result)
    assert second_start < first_end  # the second began before the first was done


def test_parallelism_one_runs_them_one_after_another(tmp_path: Path) -> None:
    require_command_sandbox()
    result = pipeline.compile_platform(platform(2), settings=Settings(render=RenderSettings(parallelism=1)))
    assert result.ok, [d.render() for d in result.diagnostics]
    (_, first_end), (second_start, _) = windows(result)
    assert second_start >= first_end
