"""The controller's Kubernetes edge: the few API calls it makes, over the official client.

In: a `Connection` and the `Timeouts`. Out: plain dicts, `None` for an object that does not exist, or the
client's `ApiException` (`is_temporary` says whether retrying may help). Everything goes through
`CustomObjectsApi` with plain dicts (CRDs, Leases and Events included: the typed models would drop fields they
do not know) and only verbs that both a real API server and the kmock emulator serve: list, watch (a streamed
list), get, create, merge-patch and status merge-patch. No PUT, no DELETE, no DynamicClient. Every call carries
a `_request_timeout`: an API server that stops answering fails the call instead of hanging its thread.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import urllib3
from kubernetes import client, config

from kratix.controller.crds import CRDS, Resource
from kratix.controller.policy import Timeouts

log = logging.getLogger(__name__)


class Gone(Exception):
    """The watch's resourceVersion is too old (HTTP 410): list again."""


class IncompleteList(Exception):
    """The server answered a list with one page of several: it cannot tell which objects are gone."""


@dataclass(frozen=True)
class Connection:
    """Where the API server is; every thread builds its own `Kube` from it (a watch holds its connection)."""

    configuration: client.Configuration


def connect(*, kubeconfig: str | None, in_cluster: bool, context: str | None = None) -> Connection:
    configuration = client.Configuration()
    if in_cluster:
        config.load_incluster_config(client_configuration=configuration)
    else:
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    return Connection(configuration)


def is_temporary(exc: BaseException) -> bool:
    """Worth retrying with backoff (server busy, not ready, unreachable), unlike a refusal of what we sent."""
    if isinstance(exc, client.ApiException):
        return exc.status in (0, 404, 408, 409, 429) or exc.status >= 500
    return isinstance(exc, urllib3.exceptions.HTTPError | OSError)


def describe(exc: BaseException) -> str:
    """One line for a log, a condition or an Event: the API server's own message when it sent one."""
    if isinstance(exc, client.ApiException):
        message = exc.reason
        try:
            body = json.loads(exc.body) if exc.body else {}
            message = body.get("message") or message
        except (ValueError, TypeError, AttributeError):
            pass
        return f"HTTP {exc.status}: {message}"
    return f"{type(exc).__name__}: {exc}"


class Kube:
    def __init__(self, connection: Connection, *, timeouts: Timeouts) -> None:
        self._api = client.CustomObjectsApi(client.ApiClient(connection.configuration))
        self._timeouts = timeouts
        self._response_lock = threading.Lock()
        self._response: urllib3.BaseHTTPResponse | None = None

    def list(self, resource: Resource) -> tuple[list[dict[str, Any]], str | None]:
        """Every object of `resource` (all namespaces) and the resourceVersion to watch from. Raises
        `IncompleteList` when the server paged the answer (we never ask it to)."""
        result = cast(
            dict[str, Any],
            self._api.list_cluster_custom_object(
                resource.group, resource.version, resource.plural, _request_timeout=self._timeouts.api
            ),
        )
        metadata = result.get("metadata") or {}
        if metadata.get("continue"):
            raise IncompleteList(f"the list of {resource.plural}.{resource.group} came back in pages")
        items = [_with_type(item, resource) for item in result.get("items") or []]
        return items, metadata.get("resourceVersion")

    def watch(
        self, resource: Resource, *, resource_version: str | None, timeout_seconds: int
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(type, object) events until the server ends the watch or the read times out. Raises `Gone`."""
        response = cast(
            urllib3.BaseHTTPResponse,
            self._api.list_cluster_custom_object(
                resource.group,
                resource.version,
                resource.plural,
                watch=True,
                allow_watch_bookmarks=True,
                resource_version=resource_version,
                timeout_seconds=timeout_seconds,
                _preload_content=False,
                _request_timeout=self._timeouts.watch(timeout_seconds),
            ),
        )
        with self._response_lock:
            self._response = response
        try:
            for line in _lines(response):
                event = json.loads(line)
                kind, body = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if body.get("code") == 410:
                        raise Gone(body.get("message", "resourceVersion too old"))
                    raise client.ApiException(status=body.get("code", 500), reason=body.get("message"))
                yield kind, _with_type(body, resource)
        except (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ProtocolError) as exc:
            log.debug("watch of %s ended: %s", resource.plural, exc)
        finally:
            with self._response_lock:
                self._response = None
            response.release_conn()

    def interrupt(self) -> None:
        """Unblock a thread reading a watch (on shutdown): the read ends as if the server closed it."""
        with self._response_lock:
            if self._response is not None:
                self._response.shutdown()

    def get(self, resource: Resource, name: str, *, namespace: str = "") -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            if resource.namespaced:
                body = self._api.get_namespaced_custom_object(
                    resource.group,
                    resource.version,
                    namespace,
                    resource.plural,
                    name,
                    _request_timeout=self._timeouts.api,
                )
            else:
                body = self._api.get_cluster_custom_object(
                    resource.group, resource.version, resource.plural, name, _request_timeout=self._timeouts.api
                )
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return cast(dict[str, Any], body)

    def create(self, resource: Resource, body: dict[str, Any], *, namespace: str = "") -> dict[str, Any]:
        """Create `body`; a 409 (it exists) is the client's `ApiException`, never an overwrite."""
        if resource.namespaced:
            created = self._api.create_namespaced_custom_object(
                resource.group, resource.version, namespace, resource.plural, body, _request_timeout=self._timeouts.api
            )
        else:
            created = self._api.create_cluster_custom_object(
                resource.group, resource.version, resource.plural, body, _request_timeout=self._timeouts.api
            )
        return cast(dict[str, Any], created)

    def patch(self, resource: Resource, name: str, patch: dict[str, Any], *, namespace: str = "") -> dict[str, Any]:
        """A JSON merge patch. With `metadata.resourceVersion` in it, the server applies it only if the object
        is still at that version (HTTP 409 otherwise): compare-and-swap."""
        if resource.namespaced:
            patched = self._api.patch_namespaced_custom_object(
                resource.group,
                resource.version,
                namespace,
                resource.plural,
                name,
                patch,
                _request_timeout=self._timeouts.api,
            )
        else:
            patched = self._api.patch_cluster_custom_object(
                resource.group, resource.version, resource.plural, name, patch, _request_timeout=self._timeouts.api
            )
        return cast(dict[str, Any], patched)

    def get_crd(self, name: str) -> dict[str, Any] | None:
        return self.get(CRDS, name)

    def patch_status(self, resource: Resource, *, namespace: str, name: str, status: dict[str, Any]) -> None:
        body = {"status": status}
        if resource.namespaced:
            self._api.patch_namespaced_custom_object_status(
                resource.group,
                resource.version,
                namespace,
                resource.plural,
                name,
                body,
                _request_timeout=self._timeouts.api,
            )
        else:
            self._api.patch_cluster_custom_object_status(
                resource.group, resource.version, resource.plural, name, body, _request_timeout=self._timeouts.api
            )


def _with_type(body: dict[str, Any], resource: Resource) -> dict[str, Any]:
    # List items of a real API server carry apiVersion and kind; fill them in when a server leaves them out.
    body.setdefault("apiVersion", resource.api_version)
    body.setdefault("kind", resource.kind)
    return body


def _lines(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        yield from (line for line in complete if line.strip())
    if buffer.strip():
        yield buffer
