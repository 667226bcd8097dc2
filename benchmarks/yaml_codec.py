"""How fast `kratix.yamltext` writes and reads manifests, against plain PyYAML with libyaml.

Builds ~20k small manifests like a large compile emits (Deployments, ConfigMaps, postgresql-like custom
resources, with labels and annotations), then times, best of `--repeat` runs:
- dump: one `dump_all` per manifest, ours vs `yaml.dump_all(Dumper=CSafeDumper)` with the same options;
- load: the emitted text, ours (`load_transformed` with an identity transform, `load_plain`, `load_documents`
  with every node's position) vs `yaml.load_all(Loader=CSafeLoader)`, which reads YAML as PyYAML does where
  ours reads it as Kubernetes does, under limits.
It also checks that both sides read back the same data, so a fast wrong answer cannot pass as a speed-up.

    python benchmarks/yaml_codec.py [--count 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import yaml

from kratix import yamltext
from kratix.yamltext import emit

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def labels(team: str, name: str, index: int) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": f"{name}-{index}",
        "app.kubernetes.io/managed-by": "kratix",
        "kratix.io/promise-name": "app-stack",
        "kratix.io/resource-name": name,
        "team": team,
        "environment": "production" if index % 3 else "dev",
    }


def deployment(team: str, name: str, index: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": team,
            "labels": labels(team, name, index),
            "annotations": {"kratix.io/request": f"{team}/{name}", "checksum/config": f"{index:064x}"},
        },
        "spec": {
            "replicas": 1 + index % 3,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": labels(team, name, index)},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": f"registry.example.com/{team}/{name}:1.{index % 40}.{index % 7}",
                            "args": ["--port=8080", "--log-level", "info"],
                            "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
                            "env": [
                                {"name": "DATABASE_HOST", "value": f"{name}-db.{team}.svc"},
                                {"name": "FEATURE_ON", "value": "on" if index % 2 else "off"},
                                {"name": "WORKERS", "value": str(index % 8)},
                            ],
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"cpu": "1", "memory": "512Mi"},
                            },
                            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10},
                        }
                    ]
                },
            },
        },
    }


def configmap(team: str, name: str, index: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-config", "namespace": team, "labels": labels(team, name, index)},
        "data": {
            "app.properties": f"name={name}\nreplicas={index % 3}\ntimeout: 30s\n",
            "LOG_FORMAT": "json",
            "RETRIES": "3",
            "ENABLED": "true",
            "RATIO": "0.25",
            "start.sh": "#!/bin/sh\nset -e\nexec /app --config /etc/app/app.properties\n",
        },
    }


def postgresql(team: str, name: str, index: int) -> dict[str, Any]:
    return {
        "apiVersion": "acid.zalan.do/v1",
        "kind": "postgresql",
        "metadata": {"name": f"{team}-{name}-db", "namespace": team, "labels": labels(team, name, index)},
        "spec": {
            "teamId": team,
            "volume": {"size": f"{1 + index % 10}Gi"},
            "numberOfInstances": 2,
            "users": {name: ["superuser", "createdb"]},
            "databases": {name: name},
            "postgresql": {"version": "15", "parameters": {"max_connections": "200"}},
            "enableLogicalBackup": index % 2 == 0,
            "maintenanceWindows": ["Sun:01:00-02:00"],
        },
    }


def build(count: int) -> list[dict[str, Any]]:
    makers = (deployment, configmap, postgresql)
    return [makers[i % 3](f"team-{i % 50}", f"app-{i // 3}", i) for i in range(count)]


def best_of(repeat: int, run: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        result = None  # the previous run's objects would make the collector's passes longer
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def pyyaml_dump(manifest: Any) -> bytes:
    text = yaml.dump_all(
        [manifest], Dumper=_Dumper, default_flow_style=False, sort_keys=False, allow_unicode=True, width=1 << 30
    )
    return text.encode("utf-8")


def each(texts: list[bytes], load: Callable[[bytes], list[Any]]) -> list[Any]:
    """One call per file, as a compile loads rendered output and request files."""
    return [document for text in texts for document in load(text)]


def report(label: str, theirs: float, ours: float, count: int) -> None:
    print(
        f"{label:<34} pyyaml {theirs:7.3f} s ({theirs / count * 1e6:6.1f} us/doc)   "
        f"ours {ours:7.3f} s ({ours / count * 1e6:6.1f} us/doc)   {theirs / ours:5.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    manifests = build(args.count)

    old_dump, old_texts = best_of(args.repeat, lambda: [pyyaml_dump(m) for m in manifests])
    new_dump, new_texts = best_of(args.repeat, lambda: [yamltext.dump_all([m]) for m in manifests])
    report("dump_all, one call per manifest", old_dump, new_dump, len(manifests))
    former_texts = [emit._dump_with_pyyaml([m], sort_keys=False).encode() for m in manifests]  # noqa: SLF001
    changed = sum(a != b for a, b in zip(former_texts, new_texts, strict=True))
    print(f"  {changed} of {len(manifests)} documents differ in text from the former yamltext.dump_all's")

    texts = [text.decode() for text in new_texts]
    old_load, old_docs = best_of(args.repeat, lambda: each(new_texts, lambda t: list(yaml.load_all(t, _Loader))))
    transformed, new_docs = best_of(
        args.repeat, lambda: each(texts, lambda t: yamltext.load_transformed(t, lambda node: node))
    )  # type: ignore[arg-type]
    plain, plain_docs = best_of(args.repeat, lambda: each(new_texts, lambda t: list(yamltext.load_plain(t))))
    report("load_transformed (identity)", old_load, transformed, len(manifests))
    report("load_plain", old_load, plain, len(manifests))
    documents, sources = best_of(
        args.repeat, lambda: each(new_texts, lambda t: yamltext.load_documents("bench.yaml", t)[0])
    )
    report("load_documents (with positions)", old_load, documents, len(manifests))
    bodies = [doc.body for doc in sources]
    if not (old_docs == new_docs == plain_docs == bodies == manifests):
        raise SystemExit("the loaders disagree: the benchmark is void")


if __name__ == "__main__":
    main()
