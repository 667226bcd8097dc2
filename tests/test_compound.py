"""Promise relations: compound Promises (a workflow requesting another Promise's API) and requiredPromises."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.platforms import PROMISE, database, kratix, platform_files, write_files

APP_PROMISE = """\
apiVersion: platform.kratix.io/v1alpha1
kind: Promise
metadata:
  name: app
spec:
  requiredPromises:
    - name: database
      version: v1.0.0
  api:
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: apps.example.io
    spec:
      group: example.io
      scope: Namespaced
      names: {kind: App, plural: apps, singular: app}
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
                  properties:
                    image: {type: string, default: "nginx:1.27"}
  workflows:
    resource:
      configure:
        - apiVersion: platform.kratix.io/v1alpha1
          kind: Pipeline
          metadata: {name: app}
          spec:
            containers:
              - name: render
                template: templates
"""

APP_TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ request.metadata.name }}-app
  namespace: {{ request.metadata.namespace }}
data:
  image: {{ request.spec.image }}
---
apiVersion: example.io/v1
kind: Database
metadata:
  name: {{ request.metadata.name }}-db
spec:
  size: large
  replicas: 2
"""


def app(name: str) -> str:
    return f"apiVersion: example.io/v1\nkind: App\nmetadata:\n  name: {name}\nspec: {{}}\n"


def compound_platform(**requests: str) -> dict[str, str]:
    return {
        **platform_files(**requests),
        "promises/app/promise.yaml": APP_PROMISE,
        "promises/app/templates/app.yaml.j2": APP_TEMPLATE,
    }


def test_a_compound_promise_compiles_the_requests_its_workflow_emits(tmp_path: Path) -> None:
    root = write_files(tmp_path / "p", compound_platform(**{"team-a/shop": app("shop")}))
    out = tmp_path / "out"
    result = kratix("compile", str(root), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "2 placed" in result.stderr  # the App and the Database it asked for
    [app_file] = out.glob("*/resources/team-a/app/shop/app/app.yaml")
    assert [d["kind"] for d in yaml.safe_load_all(app_file.read_text())] == ["ConfigMap"]  # not delivered
    [deployment] = out.glob("*/resources/team-a/database/shop-db/instance/deployment.yaml")
    labels = yaml.safe_load(deployment.read_text())["metadata"]["labels"]
    assert labels["kratix.io/parent-promise-name"] == "app"
    assert labels["kratix.io/parent-resource-name"] == "shop"
    assert labels["kratix.io/parent-resource-namespace"] == "team-a"
    assert yaml.safe_load(deployment.read_text())["spec"]["replicas"] == 2
    status = yaml.safe_load((out / ".kratix/status/team-a/database/shop-db.yaml").read_text())["status"]
    assert status["message"] == "Resource requested"


def test_an_invalid_emitted_request_is_reported_against_its_template(tmp_path: Path) -> None:
    files = compound_platform(**{"team-a/shop": app("shop")})
    files["promises/app/templates/app.yaml.j2"] = APP_TEMPLATE.replace("replicas: 2", "replicas: 1")
    result = kratix("validate", str(write_files(tmp_path / "p", files)))
    assert result.returncode == 1
    assert "promises/app/templates/app.yaml.j2" in result.stderr
    assert "large databases need at least 2 replicas" in result.stderr


def test_a_compound_cycle_is_an_error_naming_it(tmp_path: Path) -> None:
    files = compound_platform(**{"team-a/shop": app("shop")})
    files["promises/database/templates/loop.yaml.j2"] = (
        "apiVersion: example.io/v1\nkind: App\nmetadata:\n  name: {{ request.metadata.name }}-again\nspec: {}\n"
    )
    result = kratix("validate", str(write_files(tmp_path / "p", files)))
    assert result.returncode == 1
    assert "compound Promise cycle: app → database → app" in result.stderr


def test_a_missing_required_promise_leaves_requests_pending_not_failed(tmp_path: Path) -> None:
    files = compound_platform(**{"team-a/shop": app("shop"), "team-a/db": database("db")})
    files["promises/database/promise.yaml"] = PROMISE.replace(
        "kratix.io/promise-version: v1.0.0", "kratix.io/promise-version: v2.0.0"
    )
    out = tmp_path / "out"
    result = kratix("compile", str(write_files(tmp_path / "p", files)), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "1 placed, 1 pending, 0 failed" in result.stderr
    status = yaml.safe_load((out / ".kratix/status/team-a/app/shop.yaml").read_text())["status"]
    assert status["message"] == "Pending"
    assert "required Promise 'database' is at version v2.0.0, not v1.0.0" in status["conditions"][-1]["message"]
    promise_status = yaml.safe_load((out / ".kratix/promises/app.yaml").read_text())["status"]
    assert promise_status["status"] == "Unavailable"
    conditions = {c["type"]: (c["status"], c["reason"]) for c in promise_status["conditions"]}
    assert conditions["RequirementsFulfilled"] == ("False", "RequirementsNotInstalled")
    assert status["pipelines"] == [{"name": "app", "phase": "Pending"}]
