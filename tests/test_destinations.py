"""Destinations and state stores as Kratix has them, through the CLI on real Git repos.

The scenarios port Kratix's own system tests (`test/system/destination_test.go`: filepath modes none and
aggregatedYAML, a Git state store) in our words: a Terraform-style Promise writing `.tf` files to a destination
of mode none, and removal taking only the removed request's files; an aggregatedYAML destination; two state stores
receiving one commit each, and an unreachable one failing alone; `path: /`; strictMatchLabels with and without
labels; initWorkloads. The steps are ours and harmless: `--unsandboxed` keeps these tests about what the compiler
does with their output, on any machine with a POSIX shell.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kratix.load.destinations import Claims
from kratix.model import paths
from tests.gitrepos import commit_files, files_at, git, init_repo, make_repo
from tests.platforms import database, destination, kratix, platform_files

pytestmark = pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell for the steps")

KRATIX_ROOT_GROUP = hashlib.md5(b".").hexdigest()[:5]  # Kratix names a work placement of the root group so

CRD = """\
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: {plural}.test.kratix.io
    spec:
      group: test.kratix.io
      names: {{kind: {kind}, plural: {plural}, singular: {singular}}}
      scope: Namespaced
      versions:
        - name: v1alpha1
          served: true
          storage: true
          schema:
            openAPIV3Schema:
              type: object
              properties:
                spec:
                  type: object
                  properties:
                    name: {{type: string}}
                    shared: {{type: boolean}}
"""


def pipeline(name: str, script: str) -> str:
    """A Kratix Pipeline of one container running `scripts/<script>` of the Promise's folder."""
    return f"""\
        - apiVersion: platform.kratix.io/v1alpha1
          kind: Pipeline
          metadata: {{name: {name}}}
          spec:
            containers:
              - name: do-commands
                command: [sh, scripts/{script}]
"""


PRELUDE = 'set -eu\nout="${KRATIX_OUTPUT:-/kratix/output}"\nin="${KRATIX_INPUT:-/kratix/input}"\n'

# Kratix's promise-filepathmode-none, with a resource workflow that writes what a Terraform-driven destination
# reads: a .tf file (CRLF, a tab, no final newline: bytes a YAML round trip would change), a JSON file, and, as in
# Kratix's test, a ConfigMap. A request with spec.shared also writes shared.tf.
TERRAFORM_PROMISE = (
    """\
apiVersion: platform.kratix.io/v1alpha1
kind: Promise
metadata:
  name: filepathmode-none
spec:
  destinationSelectors:
    - matchLabels:
        target: filepathmode-none
  api:
"""
    + CRD.format(kind="ModeNone", plural="modenone", singular="modenone")
    + """\
  workflows:
    promise:
      configure:
"""
    + pipeline("promise", "promise.sh")
    + """\
    resource:
      configure:
"""
    + pipeline("resource", "resource.sh")
)

TERRAFORM_SCRIPTS = {
    "promise.sh": PRELUDE
    + r"""
printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: filepathmode-none\n' > "$out/filepathmode-none-ns.yaml"
""",
    "resource.sh": PRELUDE
    + r"""
name="$KRATIX_OBJECT_NAME"
printf 'resource "null_resource" "%s" {\r\n\ttriggers = { name = "%s" }\r\n}' "$name" "$name" > "$out/main-$name.tf"
printf '{"name": "%s"}\n' "$name" > "$out/$name.tfvars.json"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: filepathmode-none\ndata:\n  key: %s\n' \
  "$name" "$name" > "$out/filepathmode-none-cm-$name.yaml"
if grep -q "shared: true" "$in/object.yaml"; then printf shared > "$out/shared.tf"; fi
""",
}


def promise_files(folder: str, promise: str, scripts: dict[str, str]) -> dict[str, str]:
    return {
        f"promises/{folder}/promise.yaml": promise,
        **{f"promises/{folder}/scripts/{name}": text for name, text in scripts.items()},
    }


# Kratix's destination assets: a Git state store, and the destination of mode none in it.
GIT_STATE_STORE = """\
apiVersion: platform.kratix.io/v1alpha1
kind: GitStateStore
metadata:
  name: {name}
spec:
  authMethod: basicAuth
  branch: {branch}
  gitAuthor:
    name: kratix
  url: {url}
{extra}"""

MODE_NONE_DESTINATION = """\
apiVersion: platform.kratix.io/v1alpha1
kind: Destination
metadata:
  name: test-worker-git-filepathmode-none
  labels:
    target: filepathmode-none
spec:
  filepath:
    mode: none
  path: filepathmode-none
  stateStoreRef:
    name: destination-git-test-store
    kind: GitStateStore
"""


def mode_none(name: str, *, shared: bool = False) -> str:
    spec = {"name": name, **({"shared": True} if shared else {})}
    return yaml.safe_dump(
        {
            "apiVersion": "test.kratix.io/v1alpha1",
            "kind": "ModeNone",
            "metadata": {"name": name, "namespace": "default"},
            "spec": spec,
        },
        sort_keys=False,
    )


def store(
    tmp_path: Path, name: str = "destination-git-test-store", *, branch: str = "main", path: str | None = None
) -> tuple[Path, str]:
    """A bare repo for a GitStateStore, and the GitStateStore naming it (by its local path)."""
    repo = init_repo(tmp_path / f"{name}.git", bare=True, branch=branch)
    extra = f"  path: {path}\n" if path is not None else ""
    return repo, GIT_STATE_STORE.format(name=name, branch=branch, url=repo, extra=extra)


def publish(platform: Path, output: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # URLs are fetched through a mirror under XDG_CACHE_HOME: keep it beside the test's repos
    return kratix(
        "compile",
        str(platform),
        "--ref",
        "HEAD",
        "--output-repo",
        str(output),
        "--unsandboxed",
        *extra,
        env={"XDG_CACHE_HOME": str(output.parent / "cache")},
    )


def commits(repo: Path, ref: str = "main") -> list[str]:
    return git(repo, "rev-list", ref).split()


def provenance(output: Path, destination: str) -> dict[str, dict]:
    text = git(output, "show", f"main:.kratix/provenance/{destination}.jsonl")
    return {entry["path"]: entry for entry in map(json.loads, text.splitlines()[1:])}


def blob(repo: Path, path: str, ref: str = "main") -> str:
    return git(repo, "rev-parse", f"{ref}:{path}").strip()


def kustomize(folder: Path) -> str:
    """What `kubectl kustomize` builds from a folder of a store, checked out (skips without kubectl)."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    built = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    return built.stdout


def checkout(repo: Path, target: Path, ref: str = "main") -> Path:
    for path, data in files_at(repo, ref).items():
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        (target / path).write_bytes(data)
    return target


# --- filepath mode none: a Terraform-style Promise ----------------------------------------------------------


@pytest.fixture
def terraform(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A platform with the Terraform-style Promise, its destination of mode none in a Git state store, and two
    requests; the output repo; the store's repo."""
    store_repo, store_doc = store(tmp_path)
    files = {
        **promise_files("filepathmode-none", TERRAFORM_PROMISE, TERRAFORM_SCRIPTS),
        "clusters/store.yaml": store_doc,
        "clusters/destination.yaml": MODE_NONE_DESTINATION,
        "requests/default/modenone-request-1.yaml": mode_none("modenone-request-1"),
        "requests/default/modenone-request-2.yaml": mode_none("modenone-request-2"),
    }
    platform, _ = make_repo(tmp_path / "platform", files)
    return platform, init_repo(tmp_path / "output.git", bare=True), store_repo


def test_a_terraform_promise_writes_its_files_to_a_destination_of_mode_none_byte_for_byte(
    terraform: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    platform, output, store_repo = terraform
    result = publish(platform, output)
    assert result.returncode == 0, result.stderr
    files = files_at(store_repo)
    folder = "filepathmode-none"
    assert files[f"{folder}/main-modenone-request-1.tf"] == (
        b'resource "null_resource" "modenone-request-1" {\r\n\ttriggers = { name = "modenone-request-1" }\r\n}'
    )
    assert files[f"{folder}/modenone-request-1.tfvars.json"] == b'{"name": "modenone-request-1"}\n'
    configmap = yaml.safe_load(files[f"{folder}/filepathmode-none-cm-modenone-request-1.yaml"])
    assert configmap["data"] == {"key": "modenone-request-1"}
    assert configmap["metadata"]["labels"]["kratix.io/resource-name"] == "modenone-request-1"
    assert files[f"{folder}/filepathmode-none-ns.yaml"]  # the promise workflow's output, flat too
    # Kratix's state file per work placement: <namespace>-<work>.<destination>-<group>.yaml, listing its files
    # relative to the store's path.
    states = {path: yaml.safe_load(data) for path, data in files.items() if path.startswith(f"{folder}/.kratix/")}
    pattern = (
        rf"{folder}/\.kratix/default-filepathmode-none-modenone-request-1-default-resource-[0-9a-f]{{5}}"
        rf"\.test-worker-git-filepathmode-none-{KRATIX_ROOT_GROUP}\.yaml"
    )
    [request_state] = [state for path, state in states.items() if re.fullmatch(pattern, path)]
    assert request_state == {
        "files": [
            f"{folder}/filepathmode-none-cm-modenone-request-1.yaml",
            f"{folder}/main-modenone-request-1.tf",
            f"{folder}/modenone-request-1.tfvars.json",
        ]
    }
    promise_states = [s for p, s in states.items() if "/kratix-platform-system-filepathmode-none-promise-" in p]
    assert promise_states == [{"files": [f"{folder}/filepathmode-none-ns.yaml"]}]
    # kustomize lists the files that are Kubernetes objects, and nothing else
    listed = yaml.safe_load(files[f"{folder}/kustomization.yaml"])["resources"]
    assert not [name for name in listed if name.endswith((".tf", ".json")) or name.startswith(".kratix")]
    assert "filepathmode-none-cm-modenone-request-2.yaml" in listed
    built = kustomize(checkout(store_repo, tmp_path / "checkout") / folder)
    assert "name: modenone-request-2" in built
    # the output repo keeps the bookkeeping; provenance records the Terraform file as holding no object
    assert not [path for path in files_at(output) if not path.startswith(".kratix/")]
    entry = provenance(output, "test-worker-git-filepathmode-none")[
        f"@destination-git-test-store/{folder}/main-modenone-request-1.tf"
    ]
    assert (entry["owner"], entry["objects"]) == ("ModeNone default/modenone-request-1", [])


def test_removing_a_request_removes_only_its_files_from_a_destination_of_mode_none(
    terraform: tuple[Path, Path, Path],
) -> None:
    platform, output, store_repo = terraform
    assert publish(platform, output).returncode == 0
    before = files_at(store_repo)
    commit_files(platform, {}, remove=["requests/default/modenone-request-1.yaml"])
    result = publish(platform, output, "--allow-deletions")
    assert result.returncode == 0, result.stderr
    after = files_at(store_repo)
    # request 1's files and its state file are gone; every other file is there, with the same bytes (but the
    # folder's kustomization.yaml, which no longer lists request 1's ConfigMap)
    assert set(after) == {path for path in before if "request-1" not in path}
    assert {p: d for p, d in after.items() if not p.endswith("kustomization.yaml")} == {
        p: d for p, d in before.items() if "request-1" not in p and not p.endswith("kustomization.yaml")
    }
    assert len(commits(store_repo)) == 2


def test_two_requests_writing_one_file_of_a_destination_of_mode_none_fail_the_newcomer(
    terraform: tuple[Path, Path, Path],
) -> None:
    platform, output, store_repo = terraform
    commit_files(platform, {"requests/default/modenone-request-2.yaml": mode_none("modenone-request-2", shared=True)})
    assert publish(platform, output).returncode == 0
    assert files_at(store_repo)["filepathmode-none/shared.tf"] == b"shared"
    commit_files(platform, {"requests/default/modenone-request-1.yaml": mode_none("modenone-request-1", shared=True)})
    result = publish(platform, output)
    assert result.returncode == 1
    assert "filepathmode-none/shared.tf is already written by ModeNone default/modenone-request-2" in result.stderr
    # Kratix would let the last writer win; here the file stays its first owner's, and the newcomer keeps what it
    # had published (its status says why), while everything else still publishes.
    files = files_at(store_repo)
    assert "filepathmode-none/main-modenone-request-1.tf" in files
    status = yaml.safe_load(
        git(output, "show", "main:.kratix/status/default/filepathmode-none/modenone-request-1.yaml")
    )["status"]
    assert status["message"].startswith("Failed: output") and "shared.tf" in status["message"]


def test_a_step_may_not_write_where_the_compiler_keeps_its_files_in_a_destination_of_mode_none(
    terraform: tuple[Path, Path, Path],
) -> None:
    platform, output, store_repo = terraform
    script = TERRAFORM_SCRIPTS["resource.sh"].replace('> "$out/shared.tf"', '> "$out/kustomization.yaml"')
    commit_files(
        platform,
        {
            "promises/filepathmode-none/scripts/resource.sh": script,
            "requests/default/modenone-request-2.yaml": mode_none("modenone-request-2", shared=True),
        },
    )
    result = publish(platform, output)
    assert result.returncode == 1
    assert (
        "kustomization.yaml at the top of a filepath mode none destination is the compiler's own file" in result.stderr
    )
    assert "filepathmode-none/main-modenone-request-1.tf" in files_at(store_repo)  # the other request publishes


# --- filepath mode aggregatedYAML ---------------------------------------------------------------------------

AGGREGATE_PROMISE = (
    """\
apiVersion: platform.kratix.io/v1alpha1
kind: Promise
metadata:
  name: aggregate-promise
spec:
  destinationSelectors:
    - matchLabels:
        target: aggregated-yaml
  api:
"""
    + CRD.format(kind="Aggregate", plural="aggregates", singular="aggregate")
    + """\
  workflows:
    promise:
      configure:
"""
    + pipeline("promise", "promise.sh")
    + """\
    resource:
      configure:
"""
    + pipeline("resource", "resource.sh")
)

AGGREGATE_SCRIPTS = {
    "promise.sh": PRELUDE
    + r"""
printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: aggregate-test-ns\n' > "$out/ns.yaml"
""",
    "resource.sh": PRELUDE
    + r"""
name="$KRATIX_OBJECT_NAME"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: aggregate-test-ns\ndata:\n  key: %s\n' \
  "$name" "$name" > "$out/configmap.yaml"
""",
}

AGGREGATED_DESTINATION = """\
apiVersion: platform.kratix.io/v1alpha1
kind: Destination
metadata:
  name: aggregated-yaml
  labels:
    target: aggregated-yaml
spec:
  path: aggregated-yaml
  filepath:
    mode: aggregatedYAML
    filename: "catalog.yaml"
"""


def aggregate(name: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "test.kratix.io/v1alpha1",
            "kind": "Aggregate",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"name": name},
        },
        sort_keys=False,
    )


def kinds_and_names(data: bytes) -> list[str]:
    return [f"{d['kind']}:{d['metadata']['name']}" for d in yaml.safe_load_all(data) if d]


def test_an_aggregated_destination_holds_every_workload_in_one_file(tmp_path: Path) -> None:
    platform, _ = make_repo(
        tmp_path / "platform",
        {
            **promise_files("aggregate-promise", AGGREGATE_PROMISE, AGGREGATE_SCRIPTS),
            "clusters/aggregated-yaml.yaml": AGGREGATED_DESTINATION,
            "requests/default/req-1.yaml": aggregate("req-1"),
            "requests/default/req-2.yaml": aggregate("req-2"),
        },
    )
    output = init_repo(tmp_path / "output.git", bare=True)
    result = publish(platform, output)
    assert result.returncode == 0, result.stderr
    folder = {p.split("/", 1)[1]: d for p, d in files_at(output).items() if p.startswith("aggregated-yaml/")}
    # Kratix's test lists catalog.yaml and the two canary files; the compiler adds the kustomization.yaml that
    # lets Flux and kustomize build the folder (it lists the other three).
    assert sorted(folder) == [
        "catalog.yaml",
        "kratix-canary-configmap.yaml",
        "kratix-canary-namespace.yaml",
        "kustomization.yaml",
    ]
    # the Promise's workloads first, so `kubectl apply -f catalog.yaml` creates the namespace before its contents
    assert kinds_and_names(folder["catalog.yaml"]) == [
        "Namespace:aggregate-test-ns",
        "ConfigMap:req-1",
        "ConfigMap:req-2",
    ]
    assert "name: req-2" in kustomize(checkout(output, tmp_path / "checkout") / "aggregated-yaml")

    # removing the part associated with a resource when the resource gets deleted
    commit_files(platform, {}, remove=["requests/default/req-1.yaml"])
    assert publish(platform, output, "--allow-deletions").returncode == 0
    catalog = files_at(output)["aggregated-yaml/catalog.yaml"]
    assert kinds_and_names(catalog) == ["Namespace:aggregate-test-ns", "ConfigMap:req-2"]

    # a request that fails now keeps its part (its published workload stays in the file)
    invalid = yaml.safe_dump(
        {
            "apiVersion": "test.kratix.io/v1alpha1",
            "kind": "Aggregate",
            "metadata": {"name": "req-2", "namespace": "default"},
            "spec": {"name": ["a list"]},
        }
    )
    commit_files(platform, {"requests/default/req-2.yaml": invalid})
    failed = publish(platform, output)
    assert failed.returncode == 1
    assert kinds_and_names(files_at(output)["aggregated-yaml/catalog.yaml"]) == kinds_and_names(catalog)

    # removing the entire file when the promise gets deleted
    commit_files(
        platform,
        {},
        remove=[
            "promises/aggregate-promise/promise.yaml",
            "requests/default/req-2.yaml",
            "promises/aggregate-promise/scripts/promise.sh",
            "promises/aggregate-promise/scripts/resource.sh",
        ],
    )
    assert publish(platform, output, "--allow-deletions").returncode == 0
    folder_now = sorted(p for p in files_at(output) if p.startswith("aggregated-yaml/"))
    assert folder_now == [
        "aggregated-yaml/kratix-canary-configmap.yaml",
        "aggregated-yaml/kratix-canary-namespace.yaml",
        "aggregated-yaml/kustomization.yaml",
    ]


def test_a_file_that_is_not_kubernetes_objects_fails_its_owner_on_an_aggregated_destination(tmp_path: Path) -> None:
    scripts = {
        **AGGREGATE_SCRIPTS,
        "resource.sh": AGGREGATE_SCRIPTS["resource.sh"] + 'if [ "$name" = req-2 ]; then echo "x = 1" > '
        '"$out/main.tf"; fi\n',
    }
    platform, _ = make_repo(
        tmp_path / "platform",
        {
            **promise_files("aggregate-promise", AGGREGATE_PROMISE, scripts),
            "clusters/aggregated-yaml.yaml": AGGREGATED_DESTINATION,
            "requests/default/req-1.yaml": aggregate("req-1"),
            "requests/default/req-2.yaml": aggregate("req-2"),
        },
    )
    output = init_repo(tmp_path / "output.git", bare=True)
    result = publish(platform, output)
    assert result.returncode == 1
    assert "output main.tf for Destination 'aggregated-yaml': holds no Kubernetes objects" in result.stderr
    assert kinds_and_names(files_at(output)["aggregated-yaml/catalog.yaml"]) == [
        "Namespace:aggregate-test-ns",
        "ConfigMap:req-1",
    ]


# --- state stores -------------------------------------------------------------------------------------------


def stores_platform(tmp_path: Path, *, dev_url: str | None = None) -> tuple[Path, Path, Path]:
    """The test platform with dev-1 in the GitStateStore `dev` (at kratix/ of its repo), prod-1 in `prod` (branch
    live), dev-2 in the output repo."""
    dev_repo, dev_doc = store(tmp_path, "dev", path="/kratix")
    prod_repo, prod_doc = store(tmp_path, "prod", branch="live")
    if dev_url is not None:
        dev_doc = dev_doc.replace(f"url: {dev_repo}", f"url: {dev_url}")
    files = platform_files(**{f"team-a/db-{i}": database(f"db-{i}") for i in range(4)})
    files["clusters/stores.yaml"] = dev_doc + "---\n" + prod_doc
    files["clusters/dev-1.yaml"] = destination("dev-1", {"env": "dev"}).replace(
        "  path: dev-1\n", "  path: dev-1\n  stateStoreRef: {kind: GitStateStore, name: dev}\n"
    )
    files["clusters/prod-1.yaml"] = destination("prod-1", {"env": "dev"}).replace(
        "  path: prod-1\n", "  path: prod-1\n  stateStoreRef: {kind: GitStateStore, name: prod}\n"
    )
    platform, _ = make_repo(tmp_path / "platform", files)
    return platform, dev_repo, prod_repo


def test_two_state_stores_receive_one_commit_each(tmp_path: Path) -> None:
    platform, dev_repo, prod_repo = stores_platform(tmp_path)
    output = init_repo(tmp_path / "output.git", bare=True)
    result = publish(platform, output)
    assert result.returncode == 0, result.stderr
    source = git(platform, "rev-parse", "HEAD").strip()
    for repo, branch in ((dev_repo, "main"), (prod_repo, "live"), (output, "main")):
        assert len(commits(repo, branch)) == 1
        assert f"Source-Commit: {source}" in git(repo, "log", "-1", "--format=%B", branch)
    # under <store spec.path>/<destination spec.path>/, as Kratix writes them
    dev, prod, own = files_at(dev_repo), files_at(prod_repo, "live"), files_at(output)
    assert "kratix/dev-1/dependencies/database/static/dependencies.yaml" in dev
    assert not [p for p in dev if not p.startswith("kratix/dev-1/")]
    assert "prod-1/dependencies/database/static/dependencies.yaml" in prod
    assert "dev-2/dependencies/database/static/dependencies.yaml" in own
    assert not [p for p in own if p.startswith(("dev-1/", "prod-1/", "kratix/"))]
    # every request went somewhere, and its status (in the output repo) says where
    placed = [p for p in [*dev, *prod, *own] if p.endswith("/instance/deployment.yaml")]
    assert len(placed) == 4
    # the output repo keeps the compiler's bookkeeping for all three
    assert {".kratix/provenance/dev-1.jsonl", ".kratix/provenance/prod-1.jsonl"} <= set(own)
    explained = kratix(
        "explain", "@dev/kratix/dev-1/dependencies/database/static/dependencies.yaml", "--output-repo", str(output)
    )
    assert explained.returncode == 0 and "owner:        Promise database" in explained.stdout, explained.stderr
    # nothing changed: no commit anywhere
    again = publish(platform, output)
    assert again.returncode == 0 and again.stderr.count("up to date") == 3, again.stderr
    assert [len(commits(dev_repo)), len(commits(prod_repo, "live")), len(commits(output))] == [1, 1, 1]
    # a store's repo holds more than the store's path: what lies outside it is left as it is
    scratch = tmp_path / "dev-clone"
    git(tmp_path, "clone", "--quiet", str(dev_repo), str(scratch))
    commit_files(scratch, {"README.md": "not kratix's\n"})
    git(scratch, "push", "--quiet", "origin", "HEAD:main")
    commit_files(platform, {"requests/team-a/db-0.yaml": database("db-0", replicas=3)})
    assert publish(platform, output).returncode == 0
    assert files_at(dev_repo)["README.md"] == b"not kratix's\n"


def test_a_state_store_that_cannot_be_reached_fails_alone(tmp_path: Path) -> None:
    unreachable = (tmp_path / "nowhere" / "dev.git").as_uri()
    platform, dev_repo, prod_repo = stores_platform(tmp_path, dev_url=unreachable)
    output = init_repo(tmp_path / "output.git", bare=True)
    result = publish(platform, output)
    assert result.returncode == 1
    assert "GitStateStore dev was not published: cannot fetch main" in result.stderr
    assert "Destination(s) dev-1 keep what they had" in result.stderr
    assert "NOT published" in result.stderr
    assert len(commits(prod_repo, "live")) == 1 and len(commits(output)) == 1  # the others publish
    # once it can be reached, the next compile writes its destination's files
    commit_files(
        platform,
        {
            "clusters/stores.yaml": git(platform, "show", "HEAD:clusters/stores.yaml").replace(
                unreachable, str(dev_repo)
            )
        },
    )
    healed = publish(platform, output)
    assert healed.returncode == 0, healed.stderr
    assert "kratix/dev-1/dependencies/database/static/dependencies.yaml" in files_at(dev_repo)


def test_a_bucket_state_store_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    files = platform_files()
    files["clusters/bucket.yaml"] = (
        "apiVersion: platform.kratix.io/v1alpha1\nkind: BucketStateStore\n"
        "metadata: {name: minio}\nspec: {bucketName: kratix, endpoint: minio}\n"
    )
    files["clusters/dev-1.yaml"] = destination("dev-1", {"env": "dev"}).replace(
        "  path: dev-1\n", "  path: dev-1\n  stateStoreRef: {kind: BucketStateStore, name: minio}\n"
    )
    platform, _ = make_repo(tmp_path / "platform", files)
    result = kratix("validate", str(platform))
    assert result.returncode == 1
    assert (
        "clusters/bucket.yaml:2:1: kind: BucketStateStore is not supported: kratix publishes to Git only"
        in result.stderr
    )
    assert "spec.stateStoreRef: a BucketStateStore is not supported" in result.stderr


# --- path, strictMatchLabels, initWorkloads, an immutable mode ----------------------------------------------


@pytest.mark.parametrize("path", ["/", "."])
def test_path_slash_or_dot_is_the_root_of_the_state_store(tmp_path: Path, path: str) -> None:
    dev_repo, dev_doc = store(tmp_path, "dev")
    files = platform_files(**{"team-a/db": database("db")})
    files["clusters/store.yaml"] = dev_doc
    files["clusters/dev-1.yaml"] = destination("dev-1", {"env": "dev"}).replace(
        "  path: dev-1\n", f"  path: {json.dumps(path)}\n  stateStoreRef: {{kind: GitStateStore, name: dev}}\n"
    )
    files["clusters/dev-2.yaml"] = destination("dev-2", {"env": "elsewhere"})
    platform, _ = make_repo(tmp_path / "platform", files)
    output = init_repo(tmp_path / "output.git", bare=True)
    result = publish(platform, output)
    assert result.returncode == 0, result.stderr
    dev = files_at(dev_repo)
    assert "dependencies/database/static/dependencies.yaml" in dev
    assert "resources/team-a/database/db/instance/deployment.yaml" in dev
    checked_out = checkout(dev_repo, tmp_path / "checkout")
    assert "kind: Deployment" in kustomize(checked_out / "resources")
    bootstrap = kratix("bootstrap", "dev-1", str(platform), "--url", "https://git.example.com/dev.git")
    assert "path: ./dependencies\n" in bootstrap.stdout and "path: ./resources\n" in bootstrap.stdout


def test_a_destination_at_the_root_of_the_output_repo_leaves_its_bookkeeping_alone(tmp_path: Path) -> None:
    files = platform_files(**{"team-a/db": database("db")})
    files["clusters/dev-1.yaml"] = destination("dev-1", {"env": "dev"}).replace("  path: dev-1\n", "  path: /\n")
    files["clusters/dev-2.yaml"] = destination("dev-2", {"env": "dev"}).replace(
        "  path: dev-2\n", "  path: /\n  filepath: {mode: none}\n"
    )
    platform, _ = make_repo(tmp_path / "platform", files)
    result = kratix("validate", str(platform))
    assert result.returncode == 1
    assert (
        "clusters/dev-2.yaml:8:3: spec.path: its files (the whole of its store) would lie in .kratix/" in result.stderr
    )
    for bad in ("../up", "a/.git/b", "a\tb", ".kratix/x"):
        files["clusters/dev-2.yaml"] = destination("dev-2", {}).replace(
            "  path: dev-2\n", f"  path: {json.dumps(bad)}\n"
        )
        platform = make_repo(tmp_path / f"platform-{len(bad)}", files)[0]
        assert kratix("validate", str(platform)).returncode == 1, bad


def placed_on(result_dir: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in result_dir.rglob("dependencies.yaml"):
        destination_folder = path.relative_to(result_dir).parts[0]
        found.setdefault(destination_folder, []).append(path.relative_to(result_dir).parts[2])
    return found


def test_strict_match_labels_as_kratix_schedules_it(tmp_path: Path) -> None:
    # An unlabelled Promise (empty selector): a strict Destination with labels takes none of it, a strict one
    # without labels takes it ("unless the destination label set is also empty"), a plain one takes it.
    files = platform_files()
    files["promises/database/promise.yaml"] = files["promises/database/promise.yaml"].replace(
        "  destinationSelectors:\n    - matchLabels:\n        env: dev\n", ""
    )
    files["clusters/dev-1.yaml"] = destination("dev-1", {"env": "dev"}, strict=True)
    files["clusters/dev-2.yaml"] = destination("dev-2", {}, strict=True)
    files["clusters/prod-1.yaml"] = destination("prod-1", {"env": "prod"})
    out = tmp_path / "out"
    result = kratix("compile", str(make_repo(tmp_path / "platform", files)[0]), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert placed_on(out) == {"dev-2": ["database"], "prod-1": ["database"]}
    # with a selector, a strict Destination with the labels takes it
    files["promises/database/promise.yaml"] = files["promises/database/promise.yaml"].replace(
        "spec:\n", "spec:\n  destinationSelectors:\n    - matchLabels:\n        env: dev\n", 1
    )
    shutil.rmtree(out)
    result = kratix("compile", str(make_repo(tmp_path / "platform-2", files)[0]), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert placed_on(out) == {"dev-1": ["database"]}


def test_init_workloads_writes_kratixs_canary_files_unless_disabled(tmp_path: Path) -> None:
    files = platform_files()
    files["clusters/prod-1.yaml"] = destination("prod-1", {"env": "prod"}).replace(
        "  path: prod-1\n", "  path: prod-1\n  initWorkloads: {enabled: false}\n"
    )
    files["clusters/dev-2.yaml"] = destination("dev-2", {"env": "dev"}).replace(
        "  path: dev-2\n", "  path: dev-2\n  filepath: {mode: none}\n"
    )
    out = tmp_path / "out"
    assert kratix("compile", str(make_repo(tmp_path / "platform", files)[0]), "--out", str(out)).returncode == 0
    namespace = yaml.safe_load((out / "dev-1/dependencies/kratix-canary-namespace.yaml").read_text())
    configmap = yaml.safe_load((out / "dev-1/resources/kratix-canary-configmap.yaml").read_text())
    assert (namespace["kind"], namespace["metadata"]["name"]) == ("Namespace", "kratix-worker-system")
    assert configmap["metadata"] == {"name": "kratix-info", "namespace": "kratix-worker-system"}
    assert configmap["data"] == {"canary": "this confirms your infrastructure is reading from Kratix state stores"}
    assert (out / "dev-2/kratix-canary-namespace.yaml").is_file()  # flat, beside the workloads
    assert (out / "dev-2/kratix-canary-configmap.yaml").is_file()
    assert not list((out / "prod-1").rglob("kratix-canary-*"))
    assert "- kratix-canary-configmap.yaml" in (out / "dev-1/resources/kustomization.yaml").read_text()


def test_a_destination_whose_filepath_mode_changes_is_refused_and_keeps_its_files(tmp_path: Path) -> None:
    platform, _ = make_repo(tmp_path / "platform", platform_files(**{"team-a/db": database("db")}))
    output = init_repo(tmp_path / "output.git", bare=True)
    assert publish(platform, output).returncode == 0
    before = files_at(output)
    commit_files(
        platform,
        {
            "clusters/dev-1.yaml": destination("dev-1", {"env": "dev"}).replace(
                "  path: dev-1\n", "  path: dev-1\n  filepath:\n    mode: aggregatedYAML\n"
            )
        },
    )
    result = publish(platform, output)
    assert result.returncode == 1
    assert (
        "clusters/dev-1.yaml:10:5: spec.filepath.mode: filepath.mode is immutable: this Destination was "
        "published with nestedByMetadata, not aggregatedYAML"
    ) in result.stderr
    after = files_at(output)
    assert {p: d for p, d in after.items() if p.startswith("dev-1/")} == {
        p: d for p, d in before.items() if p.startswith("dev-1/")
    }


def test_yaml_that_is_not_kubernetes_objects_is_delivered_as_written_and_said_so(tmp_path: Path) -> None:
    files = platform_files(**{"team-a/db": database("db")})
    files["promises/database/promise.yaml"] = files["promises/database/promise.yaml"].replace(
        "                template: templates\n",
        "                template: templates\n"
        "              - name: values\n"
        '                command: [sh, -c, \'printf "replicas: 2\\n# a Helm values file\\n" > '
        '"${KRATIX_OUTPUT:-/kratix/output}/values.yaml"\']\n',
    )
    out = tmp_path / "out"
    result = kratix("compile", str(make_repo(tmp_path / "platform", files)[0]), "--out", str(out), "--unsandboxed")
    assert result.returncode == 0, result.stderr
    assert (
        "warning: output values.yaml is delivered as written, not applied as Kubernetes objects: document 1 "
        "has no apiVersion"
    ) in result.stderr
    [values] = out.rglob("values.yaml")
    assert values.read_bytes() == b"replicas: 2\n# a Helm values file\n"
    area = values.relative_to(out).parts[0]
    assert "values.yaml" not in (out / area / "resources/kustomization.yaml").read_text()


# --- the compiler's memory ----------------------------------------------------------------------------------


def edit_by_hand(repo: Path, files: dict[str, bytes], remove: tuple[str, ...] = ()) -> None:
    scratch = repo.with_name(repo.name + "-edit")
    git(repo.parent, "clone", "--quiet", str(repo), str(scratch))
    commit_files(scratch, files, remove=remove, message="edited by hand")
    git(scratch, "push", "--quiet", "origin", "HEAD:main")


def test_unreadable_provenance_heals_from_kratixs_state_files_in_a_destination_of_mode_none(
    terraform: tuple[Path, Path, Path],
) -> None:
    platform, output, store_repo = terraform
    assert publish(platform, output).returncode == 0
    edit_by_hand(output, {".kratix/provenance/test-worker-git-filepathmode-none.jsonl": b"{truncated"})
    # request 1 fails now: it keeps its files, the Terraform file included, though provenance had to be rebuilt
    invalid = yaml.safe_dump(
        {
            "apiVersion": "test.kratix.io/v1alpha1",
            "kind": "ModeNone",
            "metadata": {"name": "modenone-request-1", "namespace": "default"},
            "spec": {"name": ["a list"]},
        }
    )
    commit_files(platform, {"requests/default/modenone-request-1.yaml": invalid})
    result = publish(platform, output)
    assert result.returncode == 1
    assert "provenance/test-worker-git-filepathmode-none.jsonl cannot be read" in result.stderr
    files = files_at(store_repo)
    assert files["filepathmode-none/main-modenone-request-1.tf"].startswith(b'resource "null_resource"')
    assert "filepathmode-none/modenone-request-1.tfvars.json" in files
    entry = provenance(output, "test-worker-git-filepathmode-none")[
        "@destination-git-test-store/filepathmode-none/main-modenone-request-1.tf"
    ]
    assert entry["owner"] == "ModeNone default/modenone-request-1"


def test_provenance_written_before_it_named_destinations_is_read_as_it_was(tmp_path: Path) -> None:
    # Format 2 named a destination by its folder; a compile reads it, names the destination, and neither warns
    # nor takes the change for a deletion.
    files = platform_files(**{f"team-a/db-{i}": database(f"db-{i}") for i in range(3)})
    files["clusters/dev-1.yaml"] = destination("dev-1", {"env": "dev"}).replace(
        "  path: dev-1\n", "  path: workers/one\n"
    )
    platform, _ = make_repo(tmp_path / "platform", files)
    output = init_repo(tmp_path / "output.git", bare=True)
    assert publish(platform, output).returncode == 0
    shard = git(output, "show", "main:.kratix/provenance/dev-1.jsonl")
    header, *lines = shard.splitlines()
    older = [
        json.dumps({**json.loads(line), "destination": "workers/one"}, sort_keys=True, separators=(",", ":"))
        for line in lines
    ]
    edit_by_hand(
        output,
        {
            ".kratix/provenance/workers%2Fone.jsonl": "\n".join(
                [header.replace('"format":3', '"format":2'), *older]
            ).encode()
            + b"\n"
        },
        remove=(".kratix/provenance/dev-1.jsonl",),
    )
    result = publish(platform, output)
    assert result.returncode == 0, result.stderr
    assert "cannot be read" not in result.stderr
    now = files_at(output)
    assert ".kratix/provenance/workers%2Fone.jsonl" not in now
    assert now[".kratix/provenance/dev-1.jsonl"].decode() == shard


def test_a_state_store_on_the_output_repos_branch_publishes_with_it(tmp_path: Path) -> None:
    output = init_repo(tmp_path / "output.git", bare=True)
    files = platform_files(**{"team-a/db": database("db")})
    files["clusters/store.yaml"] = GIT_STATE_STORE.format(
        name="default", branch="main", url=output, extra="  path: state\n"
    )
    for name in ("dev-1", "dev-2"):
        files[f"clusters/{name}.yaml"] = destination(name, {"env": "dev"}).replace(
            f"  path: {name}\n", f"  path: {name}\n  stateStoreRef: {{kind: GitStateStore, name: default}}\n"
        )
    platform, _ = make_repo(tmp_path / "platform", files)
    result = publish(platform, output)
    assert result.returncode == 0, result.stderr
    assert len(commits(output)) == 1  # one repo and branch: one commit
    published = files_at(output)
    assert "state/dev-1/dependencies/database/static/dependencies.yaml" in published
    assert "prod-1/dependencies/kustomization.yaml" in published  # prod-1 has no stateStoreRef
    assert ".kratix/provenance/dev-1.jsonl" in published


def test_a_state_store_that_moves_while_publishing_is_read_again_and_gets_one_commit(tmp_path: Path) -> None:
    from kratix import load
    from kratix.cli.publishing import with_store_prefixes
    from kratix.compile import pipeline
    from kratix.model.settings import RenderSettings, Settings
    from kratix.publish import stores
    from kratix.publish.commit import open_output_repo

    platform, dev_repo, prod_repo = stores_platform(tmp_path)
    output = init_repo(tmp_path / "output.git", bare=True)
    tree = load.read_commit(platform, "HEAD")
    targets = stores.resolve(load.parse_state_stores(tree), default=open_output_repo(str(output), branch="main"))
    settings = with_store_prefixes(Settings(render=RenderSettings(unsandboxed=True)), targets)
    builds = []

    def build(previous: pipeline.PreviousOutput) -> tuple[object, dict[str, str]]:
        if not builds:  # another writer commits to the dev store's repo (outside its path) while this compiles
            scratch, _ = make_repo(tmp_path / "other-writer", {"elsewhere/notes.txt": "another writer\n"})
            git(scratch, "push", "--quiet", str(dev_repo), "HEAD:main")
        result, _, _ = pipeline.prepare_publish(tree, previous, settings=settings)
        builds.append(result)
        return result.files, {
            t.prefix: pipeline.commit_message(tree, result, previous, target=t.prefix) for t in targets
        }

    published = stores.publish_all(targets, build)
    assert len(builds) == 2  # the moved branch was read again and the compile ran again
    assert not published.failed
    assert len(commits(dev_repo)) == 2  # the other writer's, then ours on top of it: nothing lost
    dev = files_at(dev_repo)
    assert dev["elsewhere/notes.txt"] == b"another writer\n"
    assert "kratix/dev-1/dependencies/database/static/dependencies.yaml" in dev
    assert len(commits(prod_repo, "live")) == 1 and len(commits(output)) == 1  # one commit each


def test_a_state_store_that_refuses_the_push_fails_alone(tmp_path: Path) -> None:
    platform, dev_repo, prod_repo = stores_platform(tmp_path)
    hook = dev_repo / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected branch' >&2\nexit 1\n")
    hook.chmod(0o755)
    commit_files(
        platform,
        {
            "clusters/stores.yaml": git(platform, "show", "HEAD:clusters/stores.yaml").replace(
                f"url: {dev_repo}", f"url: {dev_repo.as_uri()}"
            )
        },
    )  # a URL: pushed to, so the server's hook runs
    output = init_repo(tmp_path / "output.git", bare=True)
    result = publish(platform, output)
    assert result.returncode == 1
    assert "GitStateStore dev was not published: pushing main" in result.stderr
    assert "protected branch" in result.stderr
    assert git(dev_repo, "branch", "--list").strip() == ""  # nothing reached it
    assert len(commits(prod_repo, "live")) == 1 and len(commits(output)) == 1


# Destinations whose folders overlap must be refused, however many there are: the index that keeps reading D
# destinations linear must find exactly the overlaps a comparison of every pair finds.
_PART = st.sampled_from(["a", "b", "c"])
_CLAIM = st.builds(
    lambda parts, folder: "/".join(parts) + ("/" if folder and parts else ""),
    st.lists(_PART, max_size=3),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_PART, st.lists(_CLAIM, min_size=1, max_size=3)), min_size=1, max_size=8))
def test_the_claims_index_finds_exactly_the_overlapping_destinations(layouts: list[tuple[str, list[str]]]) -> None:
    index = Claims()
    added: list[tuple[str, list[str]]] = []
    for root, claims in layouts:
        pairwise = any(
            root == other_root or any(paths.overlapping(mine, theirs) for mine in claims for theirs in other_claims)
            for other_root, other_claims in added
        )
        assert index.overlaps(root, claims) == pairwise, (root, claims, added)
        if not pairwise:
            index.add(root, claims)
            added.append((root, claims))
