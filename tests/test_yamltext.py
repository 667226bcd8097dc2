"""What we emit is read back as the same data by PyYAML and by Kubernetes' own YAML reader (kubectl's)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from kratix import yamltext

# Strings that some YAML parser (1.1 or 1.2, go-yaml or PyYAML) reads as another type when left bare.
TRICKY = [
    "on", "off", "yes", "no", "y", "n", "Y", "N", "true", "False", "null", "~", "", "0755", "0o17", "0x1F",
    "1e3", "1E3", "-1e-3", "+12", "1_000", "1.5", ".inf", "-.Inf", ".nan", "2024-01-01", "2024-01-01T10:00:00Z",
    "12:30:00", "=", "<<", "0b101", "007", "1.0e+3",
]


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_strings_survive_a_pyyaml_round_trip(text: str) -> None:
    assert yaml.safe_load(yamltext.dump({"v": text})) == {"v": text}


def test_tricky_strings_are_quoted_in_the_emitted_text() -> None:
    emitted = yamltext.dump({"values": TRICKY}).decode()
    bare = [line for line in emitted.splitlines()[1:] if not line.startswith(("- '", '- "'))]
    assert bare == []


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubernetes_reads_tricky_strings_as_strings(tmp_path) -> None:
    # kustomize prints `=` and `<<` bare, which PyYAML cannot read back: leave them out of this round trip.
    readable = [text for text in TRICKY if text not in ("=", "<<")]
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "tricky"},
                 "data": {f"k{i}": text for i, text in enumerate(readable)}}
    (tmp_path / "cm.yaml").write_bytes(yamltext.dump(configmap))
    (tmp_path / "kustomization.yaml").write_text("resources:\n- cm.yaml\n")
    built = subprocess.run(["kubectl", "kustomize", str(tmp_path)], capture_output=True, text=True, check=True)
    assert yaml.safe_load(built.stdout)["data"] == configmap["data"]


def test_multiline_strings_are_literal_blocks_and_round_trip() -> None:
    script = "#!/bin/sh\nset -e\necho 'hi: there'\n"
    emitted = yamltext.dump({"script": script})
    assert emitted.startswith(b"script: |")
    assert yaml.safe_load(emitted) == {"script": script}


def test_no_aliases_and_no_line_folding() -> None:
    shared = {"a": 1}
    long = "x" * 500 + " " + "y" * 500
    emitted = yamltext.dump({"one": shared, "two": shared, "long": long}).decode()
    assert "&" not in emitted and "*" not in emitted
    assert long in emitted


def test_positions_point_at_keys_and_items() -> None:
    docs, problems = yamltext.load_documents("f.yaml", b"a: 1\nb:\n  c:\n    - x\n    - y\n---\nz: 2\n")
    assert problems == []
    assert [d.line for d in docs] == [1, 7]
    assert docs[0].locate(("b", "c", 1)) == (5, 7)
    assert docs[0].locate(("b", "missing")) == (2, 1)


def test_syntax_error_reports_libyaml_position_and_keeps_earlier_documents() -> None:
    docs, problems = yamltext.load_documents("f.yaml", b"a: 1\n---\nb: [1, 2\nc: 3\n")
    assert [d.body for d in docs] == [{"a": 1}]
    assert len(problems) == 1 and problems[0].code == "yaml.syntax"
    assert problems[0].line == 4


def test_duplicate_keys_are_reported() -> None:
    _, problems = yamltext.load_documents("f.yaml", b"spec:\n  size: small\n  size: large\n")
    assert [(p.line, p.path, p.code) for p in problems] == [(3, ("spec", "size"), "yaml.duplicate-key")]
