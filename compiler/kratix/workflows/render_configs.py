"""A container step's inputs: its env (valueFrom, envFrom) and volumes, read from the ConfigMaps and Secrets of
the namespace its pipeline runs in. A Secret is decrypted once per compile and kept in memory only."""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Mapping
from dataclasses import replace

from kratix.model.platform import ConfigObject, Pipeline, Promise, ResourceRequest
from kratix.workflows import contract, sops


class StepInputs:
    """One per compile: the ConfigMaps and Secrets of config/<namespace>/, decoded when a step first asks."""

    def __init__(self, configs: Mapping[tuple[str, str, str], ConfigObject], sealer: sops.Sealer) -> None:
        self._configs = configs
        self._sealer = sealer
        self._decoded: dict[tuple[str, str, str], Mapping[str, bytes] | str] = {}  # in memory only
        self._decoding = threading.Lock()

    def resolve(
        self, promise: Promise, pipeline: Pipeline, request: ResourceRequest | None, workflow_type: str
    ) -> tuple[Pipeline, dict[str, tuple[contract.Mount, ...]]]:
        """`pipeline` with each container's env resolved, and each container's mounts; raises
        `contract.ContractError` for an input that cannot be read."""
        namespace = contract.pipeline_namespace(promise, request)
        account = contract.service_account(promise, pipeline.body, workflow_type)

        def lookup(kind: str, name: str) -> Mapping[str, bytes] | None:
            return self._config_data(kind, namespace, name)

        containers, mounts = [], {}
        for container in pipeline.containers:
            if container.template is not None:
                containers.append(container)
                continue
            inputs = contract.resolve_step(
                container.body, pipeline.body, namespace=namespace, account=account, lookup=lookup
            )
            containers.append(replace(container, env=inputs.env))
            mounts[container.name] = inputs.mounts
        return replace(pipeline, containers=tuple(containers)), mounts

    def _config_data(self, kind: str, namespace: str, name: str) -> Mapping[str, bytes] | None:
        """A ConfigMap's or Secret's data, decoded; a Secret decrypted once per compile, kept in memory only."""
        found = self._configs.get((kind, namespace, name))
        if found is None:
            return None
        with self._decoding:
            if (kind, namespace, name) not in self._decoded:
                self._decoded[(kind, namespace, name)] = self._decode(found)
        data = self._decoded[(kind, namespace, name)]
        if isinstance(data, str):
            raise contract.ContractError(data)
        return data

    def _decode(self, found: ConfigObject) -> Mapping[str, bytes] | str:
        """The object's keys and bytes (`data` as text, `binaryData`/a Secret's `data` base64, `stringData`
        text), or why it cannot be read."""
        where = f"{found.kind} {found.namespace}/{found.name} ({found.source})"
        body = found.body
        if found.kind == "Secret":
            try:
                body = self._sealer.decrypt(body)
            except sops.SopsError as exc:
                return f"{where}: {exc}"
        text, encoded = (("data",), ("binaryData",)) if found.kind == "ConfigMap" else (("stringData",), ("data",))
        decoded: dict[str, bytes] = {}
        for fields, is_base64 in ((encoded, True), (text, False)):
            for field in fields:
                values = body.get(field) or {}
                if not isinstance(values, Mapping):
                    return f"{where}: {field} must be a map of keys to strings"
                for key, value in values.items():
                    if not isinstance(value, str):
                        return f"{where}: {field}.{key} must be a string (quote it)"
                    try:
                        decoded[str(key)] = base64.b64decode(value, validate=True) if is_base64 else value.encode()
                    except binascii.Error:
                        return f"{where}: {field}.{key} is not base64"
        return decoded
