"""CI's pinned versions (.ci/constraints.txt) stay inside the ranges pyproject.toml declares, and pin every
dependency the test install has, so CI tests what users may install and nothing floats. (That the floors are
true is .ci/lowest's job: it runs the suite with every direct dependency at its floor.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    found = [Requirement(text) for text in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        found += [Requirement(text) for text in extra]
    return [r for r in found if canonicalize_name(r.name) != canonicalize_name(project["name"])]


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / ".ci" / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", line)
        assert match, f"not an exact pin: {line!r}"
        pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


def test_every_declared_dependency_is_pinned_for_ci_within_its_declared_range() -> None:
    pins = _pins()
    for requirement in _requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not pinned in .ci/constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f".ci/constraints.txt pins {requirement.name}=={pins[name]}, outside pyproject.toml's {requirement}"
        )


def test_every_declared_dependency_has_a_floor() -> None:
    for requirement in _requirements():
        assert any(spec.operator in (">=", "==", "~=") for spec in requirement.specifier), (
            f"{requirement} has no lower bound: .ci/lowest would install its oldest release ever"
        )
