"""`kratix bootstrap` for Flux and for Argo CD, checked against those projects' own CRD schemas.

The schemas come from npm: `@kubernetes-models/flux-cd` and `@kubernetes-models/argo-cd` are generated from the
projects' CRDs. They carry each schema as a validator compiled by ajv (JavaScript, no JSON Schema file), so the
objects are checked by running those validators under node:

    npm install --prefix ~/.cache/kratix-tests/crd-models --no-audit --no-fund \\
        @kubernetes-models/flux-cd@2.3.4 @kubernetes-models/argo-cd@2.7.2

Those validators check types, enums, required fields and formats; like the API server with a structural
schema, they let an unknown field through. The packages' TypeScript declarations, generated from the same CRDs,
list every field, so a misspelt one is found by walking the objects against them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gitrepos import make_repo
from tests.platforms import database, destination, kratix, platform_files

CRD_MODELS = ("@kubernetes-models/flux-cd@2.3.4", "@kubernetes-models/argo-cd@2.7.2")
CRD_MODELS_DIR = Path(os.environ.get("KRATIX_CRD_MODELS_DIR", Path.home() / ".cache" / "kratix-tests" / "crd-models"))
URL = "https://git.example.com/platform-state.git"

# Reads a JSON list of objects on stdin; prints, for each, the validator's errors ([] when it is valid). The
# model of an object is found by its apiVersion and kind: <package>/<group>/<version>/<Kind>.js.
_VALIDATE_SCRIPT = """
const path = require('path');
const root = path.join(process.argv[2], 'node_modules', '@kubernetes-models');
const packages = {'argoproj.io': 'argo-cd', 'source.toolkit.fluxcd.io': 'flux-cd',
                  'kustomize.toolkit.fluxcd.io': 'flux-cd'};
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const results = input.map((object) => {
  const [group, version] = String(object.apiVersion).split('/');
  if (!packages[group]) return [`no schema for ${object.apiVersion} ${object.kind}`];
  let Model;
  try {
    Model = require(path.join(root, packages[group], group, version, `${object.kind}.js`))[object.kind];
  } catch (error) { return [`no schema for ${object.apiVersion} ${object.kind}: ${error.message}`]; }
  try { new Model(object).validate(); return []; } catch (error) { return [String(error.message)]; }
});
process.stdout.write(JSON.stringify(results));
"""


@pytest.fixture(scope="session")
def schema_check(tmp_path_factory: pytest.TempPathFactory):
    """A function returning each object's schema errors; the npm packages are installed into a cache once."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip(
            "node and npm are needed to check bootstrap objects against the Flux and Argo CD CRD schemas "
            "(apt-get install nodejs npm)"
        )
    wanted = {spec.rpartition("@")[0]: spec.rpartition("@")[2] for spec in CRD_MODELS}
    manifests = {name: CRD_MODELS_DIR / "node_modules" / name / "package.json" for name in wanted}
    if any(not m.is_file() or json.loads(m.read_text())["version"] != wanted[n] for n, m in manifests.items()):
        installed = subprocess.run(
            [npm, "install", "--prefix", str(CRD_MODELS_DIR), "--no-audit", "--no-fund", *CRD_MODELS],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert installed.returncode == 0, f"npm install of the CRD models failed:\n{installed.stderr}"
    script = tmp_path_factory.mktemp("crd-models") / "validate.cjs"
    script.write_text(_VALIDATE_SCRIPT)

    def check(objects: list[dict[str, Any]]) -> list[list[str]]:
        done = subprocess.run(
            [node, str(script), str(CRD_MODELS_DIR)],
            input=json.dumps(objects),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    return check


STORE = """\
apiVersion: platform.kratix.io/v1alpha1
kind: GitStateStore
metadata:
  name: prod
spec:
  url: https://git.example.com/prod-state.git
  branch: live
  path: clusters/
  secretRef: {name: prod-git, namespace: default}
"""


@pytest.fixture
def platform(tmp_path: Path) -> Path:
    """dev-1 (nested) and dev-2 (filepath mode none) in the output repo; prod-1 in its own GitStateStore."""
    files = platform_files(**{"team-a/web": database("web")})
    files["clusters/dev-2.yaml"] = destination("dev-2", {"env": "dev"}).replace(
        "  path: dev-2\n", "  path: dev-2\n  filepath: {mode: none}\n"
    )
    files["clusters/prod-1.yaml"] = destination("prod-1", {"env": "prod"}).replace(
        "  path: prod-1\n", "  path: prod-1\n  stateStoreRef: {kind: GitStateStore, name: prod}\n"
    )
    files["clusters/stores.yaml"] = STORE
    repo, _ = make_repo(tmp_path / "platform", files)
    return repo


def bootstrap(*args: str) -> list[dict[str, Any]]:
    done = kratix("bootstrap", *args)
    assert done.returncode == 0, done.stderr
    return list(yaml.safe_load_all(done.stdout))


def by_name(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents}


def test_flux_objects_match_the_flux_crd_schemas(platform: Path, schema_check) -> None:
    documents = [
        *bootstrap("dev-1", str(platform), "--url", URL, "--secret", "git-creds", "--sops-secret", "age"),
        *bootstrap("dev-2", str(platform), "--url", URL),
        *bootstrap("prod-1", str(platform)),
    ]
    assert {(d["apiVersion"], d["kind"]) for d in documents} == {
        ("source.toolkit.fluxcd.io/v1", "GitRepository"),
        ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
    }
    assert schema_check(documents) == [[] for _ in documents]
    objects = by_name(documents)
    assert objects["kratix-dev-2"]["spec"]["path"] == "./dev-2"  # mode none: one folder, one Kustomization
    assert objects["kratix-prod-1"]["spec"]["url"] == "https://git.example.com/prod-state.git"
    assert objects["kratix-prod-1"]["spec"]["ref"] == {"branch": "live"}
    assert objects["kratix-prod-1-resources"]["spec"]["path"] == "./clusters/prod-1/resources"


def test_the_schema_check_rejects_what_the_crds_do(schema_check) -> None:
    """The check can fail: wrong types, missing required fields, and kinds it has no schema for."""
    application = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "a"},
        "spec": {
            "project": "default",
            "source": {"repoURL": URL, "path": "."},
            "destination": {"server": "https://kubernetes.default.svc"},
            "syncPolicy": {"automated": {"prune": "yes"}},
        },
    }
    kustomization = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "k", "namespace": "flux-system"},
        "spec": {"interval": "1m", "prune": True},
    }
    unknown = {"apiVersion": "example.io/v1", "kind": "Thing", "metadata": {"name": "t"}}
    errors = schema_check([application, kustomization, unknown])
    assert any("prune" in e and "boolean" in e for e in errors[0]), errors[0]
    assert any("sourceRef" in e for e in errors[1]), errors[1]
    assert any("no schema" in e for e in errors[2]), errors[2]


def test_argocd_applications_sync_dependencies_then_resources(platform: Path, schema_check) -> None:
    nested = bootstrap("dev-1", str(platform), "--for", "argocd", "--url", URL)
    flat = bootstrap("dev-2", str(platform), "--for", "argocd", "--url", URL)
    stored = bootstrap("prod-1", str(platform), "--for", "argocd", "--project", "platform", "--cluster", "prod")
    documents = [*nested, *flat, *stored]
    assert {(d["apiVersion"], d["kind"]) for d in documents} == {("argoproj.io/v1alpha1", "Application")}
    assert schema_check(documents) == [[] for _ in documents]
    assert [d["metadata"]["name"] for d in nested] == ["kratix-dev-1-dependencies", "kratix-dev-1-resources"]
    waves = [int(d["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) for d in nested]
    assert waves[0] < waves[1]
    for document in documents:
        spec = document["spec"]
        assert document["metadata"]["namespace"] == "argocd"
        assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
        assert spec["syncPolicy"]["retry"]["limit"] < 0  # keeps retrying until the dependencies' CRDs are there
        assert "SkipDryRunOnMissingResource=true" in spec["syncPolicy"]["syncOptions"]
    assert [d["spec"]["source"]["path"] for d in nested] == ["dev-1/dependencies", "dev-1/resources"]
    assert [d["spec"]["source"] for d in flat] == [{"repoURL": URL, "targetRevision": "main", "path": "dev-2"}]
    assert nested[0]["spec"]["destination"] == {"server": "https://kubernetes.default.svc", "namespace": "default"}
    prod = by_name(stored)["kratix-prod-1-resources"]["spec"]
    assert prod["source"] == {
        "repoURL": "https://git.example.com/prod-state.git",
        "targetRevision": "live",
        "path": "clusters/prod-1/resources",
    }
    assert prod["project"] == "platform" and prod["destination"] == {"name": "prod", "namespace": "default"}


def render_template(template: Any, element: dict[str, str]) -> Any:
    """The ApplicationSet controller's substitution of `{{.key}}` (goTemplate), for the keys kratix uses."""
    if isinstance(template, dict):
        return {key: render_template(value, element) for key, value in template.items()}
    if isinstance(template, list):
        return [render_template(value, element) for value in template]
    if isinstance(template, str):
        return re.sub(r"\{\{\.(\w+)\}\}", lambda m: element[m[1]], template)  # a missing key fails, as missingkey=error
    return template


def test_the_applicationset_makes_the_applications_of_every_destination(platform: Path, schema_check) -> None:
    (application_set,) = bootstrap("--all", str(platform), "--for", "argocd", "--url", URL, "--branch", "state")
    assert (application_set["apiVersion"], application_set["kind"]) == ("argoproj.io/v1alpha1", "ApplicationSet")
    assert schema_check([application_set]) == [[]]
    spec = application_set["spec"]
    assert spec["goTemplate"] is True and "missingkey=error" in spec["goTemplateOptions"]
    (generator,) = spec["generators"]
    made = [render_template(spec["template"], element) for element in generator["list"]["elements"]]
    made = [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", **m} for m in made]
    assert schema_check(made) == [[] for _ in made]
    # The same Applications as one bootstrap per destination, each on the cluster named like its destination.
    # --url and --branch are the output repo's: prod-1 keeps its GitStateStore's.
    for name in ("dev-1", "dev-2", "prod-1"):
        extra = ("--url", URL, "--branch", "state") if name != "prod-1" else ()
        for single in bootstrap(name, str(platform), "--for", "argocd", "--cluster", name, *extra):
            twin = by_name(made)[single["metadata"]["name"]]
            assert twin["spec"] == single["spec"]
            assert twin["metadata"]["annotations"] == single["metadata"]["annotations"]
    assert len(made) == 5  # dev-1 and prod-1 nested (two each), dev-2 one folder


def test_bootstrap_refuses_options_that_do_not_apply(platform: Path) -> None:
    for args, message in (
        (("dev-1", "--for", "argocd", "--url", URL, "--sops-secret", "age"), "--sops-secret: Flux only"),
        (("dev-1", "--for", "argocd", "--url", URL, "--interval", "5m"), "--interval: Flux only"),
        (("--all", "--url", URL), "--for argocd"),
        (("dev-1", "--url", URL, "--project", "platform"), "are for --for argocd"),
        (("dev-1", "--all", "--for", "argocd"), "name one DESTINATION, or pass --all"),
        (("dev-1", "--for", "argocd"), "--url is needed"),
    ):
        done = kratix("bootstrap", *args[:1], str(platform), *args[1:])
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in done.stderr, (args, done.stderr)
    missing = kratix("bootstrap", "nope", str(platform), "--for", "argocd", "--url", URL)
    assert missing.returncode == 1 and "no Destination named 'nope'" in missing.stderr


# --- unknown fields: the validators let them through, the packages' type declarations do not -----------------

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\[key: string\]|[A-Za-z_$][\w$.]*|-?\d+(?:\.\d+)?|[{}<>;:?|()\[\],=]')


def declared_fields(package: str, api_version: str, kind: str) -> Any:
    """The fields the package's TypeScript declaration gives `kind` (generated from the same CRD as its
    validator), as a tree: {field: subtree}, "*" for a map's values, ("array", items), or None for a leaf."""
    group, version = api_version.split("/")
    text = (
        CRD_MODELS_DIR / "node_modules" / "@kubernetes-models" / package / group / version / f"{kind}.d.ts"
    ).read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    start = text.index(f"export interface I{kind} {{") + len(f"export interface I{kind} ")
    tokens = _TOKEN.findall(text[start:])
    position = 0

    def take(expected: str | None = None) -> str:
        nonlocal position
        token = tokens[position]
        assert expected is None or token == expected, (expected, token, tokens[position - 5 : position + 5])
        position += 1
        return token

    def members() -> dict[str, Any]:
        take("{")
        found: dict[str, Any] = {}
        while tokens[position] != "}":
            name = take()
            if tokens[position] == "?":
                take("?")
            take(":")
            found["*" if name == "[key: string]" else name.strip('"')] = union()
            if tokens[position] == ";":
                take(";")
        take("}")
        return found

    def union() -> Any:
        alternatives = [primary()]
        while tokens[position] == "|":
            take("|")
            alternatives.append(primary())
        trees = [a for a in alternatives if a is not None]
        return trees[0] if trees else None

    def primary() -> Any:
        token = tokens[position]
        if token == "{":
            return members()
        take()
        if token == "Array":
            take("<")
            items = union()
            take(">")
            return ("array", items)
        return None  # string, number, boolean, a literal, a named type such as IObjectMeta

    return members()


def unknown_fields(value: Any, tree: Any, path: str = "") -> list[str]:
    if isinstance(tree, tuple) and isinstance(value, list):
        return [f for i, item in enumerate(value) for f in unknown_fields(item, tree[1], f"{path}[{i}]")]
    if not isinstance(tree, dict) or not isinstance(value, dict):
        return []
    found = []
    for key, item in value.items():
        if key in tree:
            found += unknown_fields(item, tree[key], f"{path}.{key}")
        elif "*" in tree:
            found += unknown_fields(item, tree["*"], f"{path}.{key}")
        else:
            found.append(f"{path}.{key}")
    return found


PACKAGES = {"argoproj.io": "argo-cd", "source.toolkit.fluxcd.io": "flux-cd", "kustomize.toolkit.fluxcd.io": "flux-cd"}


def test_every_field_bootstrap_prints_is_declared_by_the_crds(platform: Path, schema_check) -> None:
    documents = [
        *bootstrap("dev-1", str(platform), "--url", URL, "--secret", "git", "--sops-secret", "age"),
        *bootstrap("dev-2", str(platform), "--url", URL),
        *bootstrap("dev-1", str(platform), "--for", "argocd", "--url", URL, "--cluster", "c"),
        *bootstrap("dev-2", str(platform), "--for", "argocd", "--url", URL),
        *bootstrap("--all", str(platform), "--for", "argocd", "--url", URL),
    ]
    for document in documents:
        tree = declared_fields(PACKAGES[document["apiVersion"].split("/")[0]], document["apiVersion"], document["kind"])
        assert unknown_fields(document, tree) == [], document["kind"]
    # The check can fail: a misspelt field is found.
    application = next(d for d in documents if d["kind"] == "Application")
    typo = {**application, "spec": {**application["spec"], "syncPolicy": {"automated": {"selfheal": True}}}}
    tree = declared_fields("argo-cd", "argoproj.io/v1alpha1", "Application")
    assert unknown_fields(typo, tree) == [".spec.syncPolicy.automated.selfheal"]
