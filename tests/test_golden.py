"""The bundled sample platform compiles to exactly the files checked in under tests/golden/sample-platform/.

After an intended change to the compiler or the sample platform, regenerate them and review the diff:

    KRATIX_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py
    git diff tests/golden
"""

from __future__ import annotations

import difflib
import os
import shutil
from pathlib import Path

from tests.platforms import kratix

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "sample-platform"


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_sample_platform_compiles_to_the_golden_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = kratix("compile", str(ROOT), "--out", str(out))
    assert result.returncode == 0, result.stderr
    if os.environ.get("KRATIX_UPDATE_GOLDEN") == "1":
        shutil.rmtree(GOLDEN, ignore_errors=True)
        shutil.copytree(out, GOLDEN)
    expected, actual = tree(GOLDEN), tree(out)
    missing, extra = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
    changed = sorted(p for p in set(expected) & set(actual) if expected[p] != actual[p])
    diffs = "".join(
        "".join(
            difflib.unified_diff(
                expected[p].decode().splitlines(keepends=True),
                actual[p].decode().splitlines(keepends=True),
                f"golden/{p}",
                f"compiled/{p}",
            )
        )
        for p in changed[:5]
    )
    assert not (missing or extra or changed), (
        f"missing: {missing}\nextra: {extra}\nchanged: {changed}\n{diffs}\n"
        "If the change is intended: KRATIX_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py"
    )


def test_every_golden_destination_builds_with_kubectl_kustomize() -> None:
    import subprocess

    import pytest

    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    areas = sorted(p.parent for p in GOLDEN.glob("*/*/kustomization.yaml"))
    assert len(areas) == 6  # worker-1, worker-2, platform × dependencies, resources
    for area in areas:
        built = subprocess.run(["kubectl", "kustomize", str(area)], capture_output=True, text=True)
        assert built.returncode == 0, f"{area}: {built.stderr}"
