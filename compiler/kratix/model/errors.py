"""The few exceptions the compiler raises: expected, user-caused problems the CLI turns into exit codes.

Problems inside the platform (a bad request, a failing template) are `Diagnostic`s, not exceptions; these are
for when a whole command cannot proceed (an unreadable repo, a publish that lost every race).
"""


class KratixError(Exception):
    """An expected failure caused by input or environment; the CLI prints it and exits 1."""


class SourceError(KratixError):
    """The input repo or ref cannot be read."""


class PublishError(KratixError):
    """The output repo cannot be read or written, or the publish was refused."""


class StepError(KratixError):
    """A pipeline step cannot run at all (no sandbox, no container runtime)."""
