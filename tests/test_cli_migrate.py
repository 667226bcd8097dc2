"""Seed-era (2021/2022) platforms compile with deprecation warnings, and `kratix migrate` rewrites them to
today's format without changing what they compile to."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.platforms import CONFIGMAP_TEMPLATE, PROMISE, database, kratix, write_files


def seed_era_platform() -> dict[str, str]:
    current = yaml.safe_load(PROMISE)
    spec = current["spec"]
    old_spec = {
        "xaasCrd": spec["api"],
        "workerClusterResources": spec["dependencies"],
        "clusterSelector": spec["destinationSelectors"][0]["matchLabels"],
        "workflows": spec["workflows"],
    }
    promise = {
        "apiVersion": "platform.kratix.io/v1alpha1",
        "kind": "Promise",
        "metadata": current["metadata"],
        "spec": old_spec,
    }
    cluster = """\
apiVersion: platform.kratix.io/v1alpha1
kind: Cluster
metadata:
  name: worker-1
  namespace: default
  labels:
    env: dev
spec:
  id: worker-1
  bucketPath: worker-1
"""
    return {
        "promises/database/promise.yaml": "# the seed's Promise, 2021 style\n"
        + yaml.safe_dump(promise, sort_keys=False),
        "promises/database/templates/configmap.yaml.j2": CONFIGMAP_TEMPLATE,
        "clusters/worker-1.yaml": cluster,
        "requests/team-a/orders.yaml": database("orders", size="large", replicas=2),
    }


def tree(folder: Path) -> dict[str, bytes]:
    """Every output file but the request cache, whose fingerprints name the Promise file's bytes."""
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    return {path: data for path, data in files.items() if not path.startswith(".kratix/cache/")}


def test_seed_era_platform_compiles_and_migrates_to_the_same_output(tmp_path: Path) -> None:
    root = write_files(tmp_path / "platform", seed_era_platform())
    before = kratix("compile", str(root), "--out", str(tmp_path / "before"))
    assert before.returncode == 0, before.stderr
    for deprecated in ("spec.xaasCrd", "spec.workerClusterResources", "spec.clusterSelector", "kind"):
        assert f": warning: {deprecated}" in before.stderr
    assert "1 placed" in before.stderr

    check = kratix("migrate", str(root), "--check")
    assert check.returncode == 1 and "promises/database/promise.yaml: 1 document(s) to migrate" in check.stderr
    migrated = kratix("migrate", str(root))
    assert migrated.returncode == 0, migrated.stderr
    promise = yaml.safe_load((root / "promises/database/promise.yaml").read_text())
    assert {"api", "dependencies", "destinationSelectors", "workflows"} <= set(promise["spec"])
    assert not {"xaasCrd", "workerClusterResources", "clusterSelector"} & set(promise["spec"])
    assert yaml.safe_load((root / "clusters/worker-1.yaml").read_text())["kind"] == "Destination"
    assert (root / "promises/database/templates/configmap.yaml.j2").read_text() == CONFIGMAP_TEMPLATE

    after = kratix("compile", str(root), "--out", str(tmp_path / "after"))
    assert after.returncode == 0, after.stderr
    assert "warning" not in after.stderr
    assert tree(tmp_path / "after") == tree(tmp_path / "before")
    assert kratix("migrate", str(root), "--check").returncode == 0
