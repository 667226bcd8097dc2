"""`--kubernetes-version` through the CLI: built-in kinds are checked against the chosen release (the newest
shipped by default, said in the summary), and an object that needs a newer release says which, instead of
leaving its Promise silently unavailable."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kratix import load
from kratix.memory import incremental
from kratix.model.settings import Settings, ValidateSettings
from kratix.schema import conformance
from tests.gitrepos import make_repo
from tests.platforms import PROMISE, kratix, platform_files, write_files

SIDECAR = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "db-proxy", "namespace": "default"},
    "spec": {
        "selector": {"matchLabels": {"app": "proxy"}},
        "template": {
            "metadata": {"labels": {"app": "proxy"}},
            "spec": {
                "initContainers": [{"name": "envoy", "image": "envoy", "restartPolicy": "Always"}],  # Kubernetes 1.28
                "containers": [{"name": "app", "image": "busybox"}],
            },
        },
    },
}


def platform_with_sidecar() -> dict[str, str]:
    promise = yaml.safe_load(PROMISE)
    promise["spec"]["dependencies"].append(SIDECAR)
    return {**platform_files(), "promises/database/promise.yaml": yaml.safe_dump(promise, sort_keys=False)}


def platform(tmp_path: Path) -> Path:
    return write_files(tmp_path / "platform", platform_with_sidecar())


@pytest.mark.parametrize("command", ["validate", "compile"])
def test_the_newest_shipped_release_is_the_default_and_the_summary_names_it(tmp_path: Path, command: str) -> None:
    result = kratix(command, str(platform(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert f"checked against Kubernetes {conformance.shipped_versions()[-1]}" in result.stderr


def test_a_field_from_a_newer_release_than_the_chosen_one_names_the_release(tmp_path: Path) -> None:
    root = platform(tmp_path)
    assert kratix("validate", str(root), "--kubernetes-version", "1.28").returncode == 0
    result = kratix("validate", str(root), "--kubernetes-version", "1.27")
    assert result.returncode == 1
    assert (
        "unknown field 'restartPolicy': not in Kubernetes 1.27; choose --kubernetes-version 1.28 or later"
        in result.stderr
    )
    assert "checked against Kubernetes 1.27" in result.stderr


def test_plan_takes_the_option_too(tmp_path: Path) -> None:
    repo, _ = make_repo(tmp_path / "platform", platform_with_sidecar())
    assert kratix("plan", str(repo), "--base-ref", "HEAD", "--kubernetes-version", "1.28").returncode == 0
    result = kratix("plan", str(repo), "--base-ref", "HEAD", "--kubernetes-version", "1.27")
    assert result.returncode == 1
    assert "choose --kubernetes-version 1.28 or later" in result.stderr


@pytest.mark.parametrize("requested", ["1.10", "1.99", "latest"])
def test_a_release_whose_schemas_are_not_shipped_is_a_usage_error_naming_the_shipped_ones(
    tmp_path: Path, requested: str
) -> None:
    result = kratix("validate", str(platform(tmp_path)), "--kubernetes-version", requested)
    assert result.returncode == 1
    assert f"schemas ship for {', '.join(conformance.shipped_versions())}" in result.stderr


def test_cached_output_is_checked_again_when_the_default_release_changes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Without --kubernetes-version the release is the newest installed: a newer kubernetes-validate changes it,
    # and requests reused from the cache would otherwise skip the check against it.
    tree = load.read_worktree(platform(tmp_path))
    parsed, _ = load.parse_platform(tree)

    def fingerprints() -> dict[str, str]:
        return incremental.promise_fingerprints(tree, parsed.promises, parsed.destinations, Settings())

    newest = fingerprints()
    monkeypatch.setattr(conformance, "shipped_versions", lambda: ("1.35", "1.36"))
    assert fingerprints() != newest
    assert (
        incremental.promise_fingerprints(
            tree, parsed.promises, parsed.destinations, Settings(validate=ValidateSettings(kubernetes_version="1.36"))
        )
        != newest
    )
