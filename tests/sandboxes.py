"""What tests that run command steps need: a sandbox (bubblewrap, or podman's host-root image). Where this
machine has neither, such a test skips with the reason instead of failing: a compile refuses command steps
there (unless `--unsandboxed`), exactly as a user would see."""

from __future__ import annotations

import functools

import pytest

from kratix.model.settings import RenderSettings
from kratix.workflows import steps

REASON = (
    "needs a sandbox for command steps: bubblewrap (apt-get install bubblewrap; user namespaces allowed) "
    "or podman; .ci/run installs both"
)


@functools.cache
def command_sandbox() -> str:
    """ "bwrap", "podman", or "" when neither can run a command step here."""
    return steps.command_sandbox(RenderSettings())


def require_command_sandbox() -> str:
    sandbox = command_sandbox()
    if not sandbox:
        pytest.skip(REASON)
    return sandbox
