"""The controller: mirrors platform-cluster Promises, Destinations and requests into the input repo and brings
the compiler's statuses back onto them.

`kubernetes` is imported only below this package, and only when the controller runs: the CLI can import
`ControllerOptions` without paying for the client.
"""

from __future__ import annotations

import threading

from kratix.controller import logs
from kratix.controller.options import ControllerOptions
from kratix.model.errors import KratixError

__all__ = ["ControllerOptions", "logs", "run_controller"]


def run_controller(options: ControllerOptions, *, stop: threading.Event | None = None) -> None:
    """Run until `stop` is set (or forever). Raises `KratixError` when it cannot start (no kubeconfig)."""
    # Deferred: importing the kubernetes client takes a noticeable while, and it is an optional extra.
    try:
        from kratix.controller import run
    except ImportError as exc:
        raise KratixError(
            f"the controller needs the Kubernetes client ({exc}): pip install 'kratix[controller]'"
        ) from exc
    run.run(options, stop=stop or threading.Event())
