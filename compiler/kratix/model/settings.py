"""One frozen `Settings` for a run, built by the CLI and passed explicitly to every stage that needs it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True)
class RenderSettings:
    step_timeout_seconds: float = 300.0
    container_runtime: str | None = None  # "podman" or "docker"; None: detect on PATH
    parallelism: int = field(default_factory=lambda: os.cpu_count() or 1)
    reuse_unchanged: bool = True  # False (`--rebuild`): render every request again, ignoring the request cache
    # True (`--unsandboxed`, KRATIX_UNSANDBOXED=1): command steps run directly on the host. Never a fallback:
    # without it, a command step with no sandbox on this machine fails its request.
    unsandboxed: bool = False
    step_network: bool = True  # False (`--no-step-network`): no step gets a network, even when it asks
    # Limits of one step, beside its timeout: CPU seconds and data memory of each process (rlimits; the memory
    # of the whole container for images), processes of an image step, and what it may leave in its output.
    step_cpu_seconds: float = 300.0
    step_memory_bytes: int = 2 * 1024**3
    step_pids: int = 512
    step_output_bytes: int = 64 * 1024**2  # in /kratix/output (and again in /kratix/metadata); also per file
    step_output_files: int = 10_000
    # The native template step's budget, per request and step. Steps are a count (loop iterations, calls,
    # attribute and item reads, filters), so a template fails the same way on every machine; the time is a
    # backstop. A legitimate template over a 10,000-item list takes some 200,000 steps.
    template_steps: int = 2_000_000
    template_seconds: float = 10.0
    template_output_chars: int = 8 * 1024 * 1024  # also the largest string, list or map a template may build
    # The time the compile runs at (`--now`, default the clock when the settings are built): a pipeline's
    # `retryAfter` is due when a compile's `now` reaches it. An input like any other, so a compile can be replayed.
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class PublishSettings:
    branch: str = "main"
    attempts: int = 5
    allow_deletions: bool = False
    deletion_threshold: float = 0.20  # refuse removing more than this share of a destination's objects
    # (store name, prefix) for each GitStateStore whose files do not go under `@<store>/` of the output tree: ""
    # when it shares the repo and branch of --output-repo, `@<other store>` when it shares another store's
    # (`kratix.model.paths`). Decided by the CLI, which knows where --output-repo is.
    store_prefixes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ValidateSettings:
    kubernetes_version: str | None = None  # the release built-in kinds are checked against; None: newest shipped
    validate_output: bool = True


@dataclass(frozen=True)
class Settings:
    render: RenderSettings = field(default_factory=RenderSettings)
    publish: PublishSettings = field(default_factory=PublishSettings)
    validate: ValidateSettings = field(default_factory=ValidateSettings)
