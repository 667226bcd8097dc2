"""One frozen `Settings` for a run, built by the CLI and passed explicitly to every stage that needs it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RenderSettings:
    step_timeout_seconds: float = 300.0
    container_runtime: str | None = None  # "podman" or "docker"; None: detect on PATH
    parallelism: int = field(default_factory=lambda: os.cpu_count() or 1)
    reuse_unchanged: bool = True  # False (`--rebuild`): render every request again, ignoring the request cache
    # The native template step's budget, per request and step. Steps are a count (loop iterations, calls,
    # attribute and item reads, filters), so a template fails the same way on every machine; the time is a
    # backstop. A legitimate template over a 10,000-item list takes some 200,000 steps.
    template_steps: int = 2_000_000
    template_seconds: float = 10.0
    template_output_chars: int = 8 * 1024 * 1024  # also the largest string, list or map a template may build


@dataclass(frozen=True)
class PublishSettings:
    branch: str = "main"
    attempts: int = 5
    allow_deletions: bool = False
    deletion_threshold: float = 0.20  # refuse removing more than this share of a destination's objects


@dataclass(frozen=True)
class ValidateSettings:
    kubernetes_version: str = "1.30"
    validate_output: bool = True


@dataclass(frozen=True)
class Settings:
    render: RenderSettings = field(default_factory=RenderSettings)
    publish: PublishSettings = field(default_factory=PublishSettings)
    validate: ValidateSettings = field(default_factory=ValidateSettings)
