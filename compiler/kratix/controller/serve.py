"""The controller's HTTP endpoint for the kubelet and Prometheus: `/healthz`, `/readyz` and `/metrics`.

In: an address (`host:port`; port 0 picks a free one), `Metrics` and two checks, each returning (ok, why).
Out: a server in a daemon thread, answering 200 with "ok" or 503 with the reason, and the metrics in the
Prometheus text format. Anything else is a 404. It serves until `close`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from kratix.controller.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

Check = Callable[[], tuple[bool, str]]


class ProbeServer:
    def __init__(self, address: str, *, metrics: Metrics, alive: Check, ready: Check) -> None:
        host, _, port = address.rpartition(":")
        checks = {"/healthz": alive, "/readyz": ready}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._answer(200, metrics.exposition(), CONTENT_TYPE)
                elif path in checks:
                    ok, why = checks[path]()
                    self._answer(200 if ok else 503, (why or "ok").encode() + b"\n", "text/plain; charset=utf-8")
                else:
                    self._answer(404, b"not found\n", "text/plain; charset=utf-8")

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("%s %s", self.address_string(), format % args)  # probes every few seconds: not INFO

        self._server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="probes", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info("serving /healthz, /readyz and /metrics on port %d", self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
