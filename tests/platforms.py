"""A small platform written out as files, for end-to-end tests through the CLI.

One Promise (`database`) whose request API has defaults, an enum, bounds and a CEL rule, and whose template
renders a ConfigMap and a Deployment; three destinations; requests addressed by namespace folder.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

PROMISE = """\
apiVersion: platform.kratix.io/v1alpha1
kind: Promise
metadata:
  name: database
  labels:
    kratix.io/promise-version: v1.0.0
spec:
  destinationSelectors:
    - matchLabels:
        env: dev
  dependencies:
    - apiVersion: v1
      kind: Namespace
      metadata:
        name: db-operator
  api:
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: databases.example.io
    spec:
      group: example.io
      scope: Namespaced
      names: {kind: Database, plural: databases, singular: database}
      versions:
        - name: v1
          served: true
          storage: true
          schema:
            openAPIV3Schema:
              type: object
              properties:
                spec:
                  type: object
                  x-kubernetes-validations:
                    - rule: "self.replicas >= 2 || self.size != 'large'"
                      message: large databases need at least 2 replicas
                  properties:
                    size:
                      type: string
                      enum: [small, large]
                      default: small
                    replicas:
                      type: integer
                      minimum: 1
                      maximum: 5
                      default: 1
                    note:
                      type: string
                      default: ""
  workflows:
    resource:
      configure:
        - apiVersion: platform.kratix.io/v1alpha1
          kind: Pipeline
          metadata:
            name: instance
          spec:
            containers:
              - name: render
                template: templates
"""

CONFIGMAP_TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ request.metadata.name }}-config
  namespace: {{ request.metadata.namespace }}
data:
  size: {{ request.spec.size }}
  note: {{ request.spec.note }}
"""

DEPLOYMENT_TEMPLATE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ request.metadata.name }}
  namespace: {{ request.metadata.namespace }}
spec:
  replicas: {{ request.spec.replicas }}
  selector:
    matchLabels:
      app: {{ request.metadata.name }}
  template:
    metadata:
      labels:
        app: {{ request.metadata.name }}
    spec:
      containers:
        - name: db
          image: postgres:16
"""


def crd(group: str, kind: str, version: str, spec_properties: Mapping[str, Any]) -> dict[str, Any]:
    """A one-version, namespaced CustomResourceDefinition for a Promise's `spec.api`, its `spec` an object of
    `spec_properties` (plural: the kind in lower case with an `s`)."""
    plural = kind.lower() + "s"
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": dict(spec_properties)}}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [{"name": version, "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}],
        },
    }


def destination(name: str, labels: Mapping[str, str], *, strict: bool = False) -> str:
    document = {
        "apiVersion": "platform.kratix.io/v1alpha1",
        "kind": "Destination",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {"path": name, **({"strictMatchLabels": True} if strict else {})},
    }
    return yaml.safe_dump(document, sort_keys=False)


def database(name: str, *, size: str | None = None, replicas: int | None = None, note: str | None = None) -> str:
    spec = {k: v for k, v in (("size", size), ("replicas", replicas), ("note", note)) if v is not None}
    return yaml.safe_dump(
        {"apiVersion": "example.io/v1", "kind": "Database", "metadata": {"name": name}, "spec": spec}, sort_keys=False
    )


def platform_files(**requests: str) -> dict[str, str]:
    """The whole platform; `requests` maps "namespace/file" (without .yaml) to a request document."""
    files = {
        "promises/database/promise.yaml": PROMISE,
        "promises/database/templates/configmap.yaml.j2": CONFIGMAP_TEMPLATE,
        "promises/database/templates/deployment.yaml.j2": DEPLOYMENT_TEMPLATE,
        "clusters/dev-1.yaml": destination("dev-1", {"env": "dev"}),
        "clusters/dev-2.yaml": destination("dev-2", {"env": "dev"}),
        "clusters/prod-1.yaml": destination("prod-1", {"env": "prod"}),
    }
    files.update({f"requests/{key}.yaml": body for key, body in requests.items()})
    return files


def write_files(root: Path, files: Mapping[str, str]) -> Path:
    for relative, content in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    return root


def kratix(
    *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess, as a user or CI job runs it."""
    import os

    full_env = {**os.environ, **(env or {})}
    full_env.pop("GITHUB_ACTIONS", None) if env is None or "GITHUB_ACTIONS" not in env else None
    return subprocess.run(
        [sys.executable, "-m", "kratix.cli", *args], cwd=cwd, capture_output=True, text=True, env=full_env, timeout=120
    )
