"""Real Kratix Promises work unchanged.

Small cases in our own words (tests/fixtures/kratix-promises/, each a Promise folder and its example request)
stand for what real Promises do: a hyphenated kind, a spec.api declared as apiextensions.k8s.io/v1beta1, a
request on a served version that is not the storage version, a property spelt `yes`. Each compiles through the
CLI.

The real ones are read from local checkouts when the environment names them, and the test skips otherwise (their
files are never copied into this repo): KRATIX_SOURCE (a checkout of github.com/syntasso/kratix: its samples/,
test/system/assets/ and config/samples/) and KRATIX_MARKETPLACE_SOURCE (github.com/syntasso/kratix-marketplace).
Every Promise there must load alone with a valid API, and every example request (a file named *request*) of a
kind one of them serves must validate against it; the only exceptions are the two placeholders Kratix and the
API server refuse as well.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from kratix import load, schema
from kratix.compile import promise_compile
from kratix.model.diagnostics import Severity
from kratix.model.documents import SourceTree
from tests.platforms import destination, kratix, write_files
from tests.sandboxes import require_command_sandbox

FIXTURES = Path(__file__).parent / "fixtures" / "kratix-promises"


def fixture_platform(root: Path, *cases: str) -> Path:
    """The cases' Promise folders under promises/, their example requests under requests/default/, one
    destination."""
    for case in cases:
        shutil.copytree(
            FIXTURES / case, root / "promises" / case, ignore=shutil.ignore_patterns("resource-request.yaml")
        )
        (root / "requests" / "default").mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURES / case / "resource-request.yaml", root / "requests" / "default" / f"{case}.yaml")
    write_files(root, {"clusters/dev.yaml": destination("dev", {})})
    return root


def compiled_configmap(out: Path, promise: str, name: str, pipeline: str) -> dict:
    [document] = yaml.safe_load_all(
        (out / f"dev/resources/default/{promise}/{name}/{pipeline}/configmap.yaml").read_text()
    )
    return document


def test_the_fixture_cases_compile_through_the_cli(tmp_path: Path) -> None:
    root = fixture_platform(tmp_path / "platform", "hyphenated-kind", "v1beta1-api", "two-versions", "yes-keys")
    result = kratix("compile", str(root), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "4 placed, 0 pending" in result.stderr
    out = tmp_path / "out"
    assert compiled_configmap(out, "static-site", "docs", "site")["data"] == {"kind": "static-site", "path": "/"}
    assert compiled_configmap(out, "queue", "orders", "queue")["data"] == {"retention": "7d"}
    # written at v1alpha1, handed over at v1: v1alpha1's default kept, v1's added, legacyMode pruned
    assert compiled_configmap(out, "cache", "sessions", "cache")["data"] == {
        "apiVersion": "data.example.org/v1",
        "memory": "256Mi",
        "evictionPolicy": "allkeys-lru",
        "legacyMode": "False",
    }
    # `yes:` is the boolean true in YAML 1.1: the property and the request's field are both "true"
    assert compiled_configmap(out, "consent", "newsletter", "consent")["data"] == {"answer": "please"}
    assert (
        "promises/v1beta1-api/promise.yaml:9:5: warning: spec.api.apiVersion: 'apiextensions.k8s.io/v1beta1' "
        "is read as apiextensions.k8s.io/v1"
    ) in result.stderr
    assert (
        "requests/default/two-versions.yaml:7:3: warning: spec.legacyMode: dropped in conversion to data.example.org/v1"
    ) in result.stderr


def test_a_request_on_a_version_that_is_not_served_fails_alone(tmp_path: Path) -> None:
    root = fixture_platform(tmp_path / "platform", "two-versions", "hyphenated-kind")
    request = root / "requests/default/two-versions.yaml"
    request.write_text(request.read_text().replace("data.example.org/v1alpha1", "data.example.org/v2"))
    result = kratix("compile", str(root), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert (
        'requests/default/two-versions.yaml:1:1: apiVersion: "data.example.org/v2" is not a version '
        "of this API; served: data.example.org/v1alpha1, data.example.org/v1"
    ) in result.stderr
    assert "1 placed, 0 pending, 1 failed" in result.stderr


ENV_SCRIPT = """\
set -eu
api_version=$(sed -n 's/^apiVersion: *//p' /kratix/input/object.yaml)
cat > /kratix/output/configmap.yaml <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: $KRATIX_OBJECT_NAME-cache
  namespace: $KRATIX_OBJECT_NAMESPACE
data:
  objectApiVersion: $api_version
  version: $KRATIX_OBJECT_VERSION
  group: $KRATIX_OBJECT_GROUP
YAML
"""


def test_a_pipeline_reads_a_request_on_a_served_version_at_the_storage_version(tmp_path: Path) -> None:
    require_command_sandbox()
    root = fixture_platform(tmp_path / "platform", "two-versions")
    promise = root / "promises/two-versions/promise.yaml"
    promise.write_text(promise.read_text().replace("template: templates", "command: [sh, scripts/env.sh]"))
    write_files(root, {"promises/two-versions/scripts/env.sh": ENV_SCRIPT})
    result = kratix("compile", str(root), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert compiled_configmap(tmp_path / "out", "cache", "sessions", "cache")["data"] == {
        "objectApiVersion": "data.example.org/v1",
        "version": "v1",
        "group": "data.example.org",
    }


# --- the real Promises, from local checkouts -----------------------------------------------------------------

SOURCES = {"KRATIX_SOURCE": ("samples", "test/system/assets", "config/samples"), "KRATIX_MARKETPLACE_SOURCE": ("",)}
# Placeholders, not Promises: Kratix and the API server refuse them too (TODO names; a plural "Redii", no versions).
REFUSED = {
    ".template-promise/promise.yaml": "metadata.name",
    "config/samples/platform_v1alpha1_promise.yaml": "spec.api.spec.names.plural",
}


def yaml_files(root: Path, folders: tuple[str, ...]) -> dict[str, bytes]:
    found = {}
    for folder in folders:
        for path in sorted((root / folder).rglob("*")):
            if path.suffix in (".yaml", ".yml") and path.is_file() and ".github" not in path.parts:
                found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def documents(data: bytes) -> list[dict]:
    try:
        return [d for d in yaml.load_all(data, Loader=yaml.CSafeLoader) if isinstance(d, dict)]
    except yaml.YAMLError:
        return []


def is_promise(document: dict) -> bool:
    return document.get("kind") == "Promise" and document.get("apiVersion") == "platform.kratix.io/v1alpha1"


def real_sources() -> dict[str, tuple[Path, tuple[str, ...]]]:
    sources = {
        name: (Path(os.environ[name]), folders)
        for name, folders in SOURCES.items()
        if os.environ.get(name) and Path(os.environ[name]).is_dir()
    }
    if not sources:
        pytest.skip(
            "set KRATIX_SOURCE and/or KRATIX_MARKETPLACE_SOURCE to checkouts of syntasso/kratix and "
            "syntasso/kratix-marketplace to check their Promises"
        )
    return sources


def test_real_promises_load_unchanged_and_their_example_requests_validate() -> None:
    failed: dict[str, list[str]] = {}
    promise_files = 0
    for _, (root, folders) in real_sources().items():
        loaded: dict[tuple[str, str], list[tuple[str, schema.RequestSchema]]] = {}  # requests meet their own repo's
        files = yaml_files(root, folders)
        for path, data in files.items():
            if b"kind: Promise" not in data or not any(is_promise(d) for d in documents(data)):
                continue
            promise_files += 1
            tree = SourceTree(files={f"promises/promise/{Path(path).name}": data})  # the file as it is
            platform, diagnostics = load.parse_platform(tree)
            schemas, _ = promise_compile.check_promises(platform, diagnostics)
            errors = [f"{d.path}: {d.message}" for d in diagnostics if d.severity is Severity.ERROR]
            if errors or not platform.promises:
                failed[path] = errors
            for compiled in schemas.values():
                loaded.setdefault((compiled.group, compiled.kind), []).append((path, compiled))
        for path, data in files.items():
            if "request" not in Path(path).name:
                continue
            for body in documents(data):
                group = str(body.get("apiVersion", "")).rpartition("/")[0]
                candidates = loaded.get((group, str(body.get("kind"))), [])
                if not candidates:
                    continue
                verdicts = [
                    [v.message for v in schema.validate_request(compiled, body)[1] if v.severity is Severity.ERROR]
                    for _, compiled in candidates
                ]
                if all(verdicts):
                    failed[f"{path} ({body.get('kind')})"] = verdicts[0]
    assert promise_files > 0
    refused = {path: errors for path, errors in failed.items() if path in REFUSED}
    assert {path: errors for path, errors in failed.items() if path not in REFUSED} == {}
    for path, errors in refused.items():
        assert any(error.startswith(REFUSED[path]) for error in errors), errors


def test_two_promises_whose_apis_are_one_crd_the_second_fails_alone(tmp_path: Path) -> None:
    # Kratix would update the first Promise's CRD with the second's versions: its own kind would never be served.
    root = fixture_platform(tmp_path / "platform", "hyphenated-kind")
    second = (root / "promises/hyphenated-kind/promise.yaml").read_text()
    second = second.replace("name: static-site\n", "name: website\n").replace("kind: static-site", "kind: Website")
    write_files(root, {"promises/website/promise.yaml": second, "promises/website/templates/configmap.yaml.j2": "{}\n"})
    result = kratix("compile", str(root), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert (
        "promises/website/promise.yaml:8:3: spec.api: CustomResourceDefinition static-sites.sites.example.org is "
        "already the API of Promise 'static-site' [Promise website]"
    ) in result.stderr
    assert compiled_configmap(tmp_path / "out", "static-site", "docs", "site")["data"]["kind"] == "static-site"
