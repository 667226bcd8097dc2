"""Encrypting Secrets with the `sops` binary before they are written: an edge, like `kratix.workflows.steps`.

In: one rendered `v1 Secret` (labels already stamped: SOPS's MAC covers every value, so nothing may change it
afterwards), the age recipients and PGP fingerprints of its destination, and the documents of the file at the
same output path before (if any). Out: the Secret as SOPS writes it (`data`/`stringData` values `ENC[...]`,
metadata readable for kustomize, a `sops` block), the way Flux's kustomize-controller decrypts it with
`decryption: {provider: sops}`. Refused with a `SopsError`: no `sops` on PATH, or sops failing.

SOPS output is not deterministic (a fresh data key and IVs each time). So that an unchanged Secret is not
rewritten by every compile, the previous encrypted version is kept when sops can decrypt it here (a key in
`SOPS_AGE_KEY_FILE`, `SOPS_AGE_KEY`, or the PGP keyring) and it decrypts to the same object. Without a key,
a Secret is encrypted again whenever its owner is rendered again (see the README).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from kratix import yamltext
from kratix.model.errors import KratixError

ENCRYPTED_REGEX = "^(data|stringData)$"  # what Flux's documentation uses: metadata stays readable
_TIMEOUT = 60


class SopsError(KratixError):
    """The Secret cannot be encrypted here."""


@dataclass(frozen=True)
class Sealer:
    """Encrypts Secrets with the `sops` found on PATH (or `program`)."""

    program: str = "sops"

    def available(self) -> bool:
        return shutil.which(self.program) is not None

    def seal(
        self,
        secret: Mapping[str, Any],
        *,
        age: Sequence[str],
        pgp: Sequence[str],
        previous: Sequence[Mapping[str, Any]] = (),
    ) -> Mapping[str, Any]:
        if not self.available():
            raise SopsError(
                f"the `{self.program}` binary is not on PATH: install sops (`pip install "
                "'kratix[sops]'`, or a release of getsops/sops) to encrypt Secrets for this Destination"
            )
        for earlier in previous:
            if _same_object(earlier, secret) and self._decrypts_to(earlier, secret):
                return earlier
        command = [
            self.program,
            "--encrypt",
            "--encrypted-regex",
            ENCRYPTED_REGEX,
            "--input-type",
            "yaml",
            "--output-type",
            "yaml",
        ]
        if age:
            command += ["--age", ",".join(age)]
        if pgp:
            command += ["--pgp", ",".join(pgp)]
        result = self._run([*command, "/dev/stdin"], yamltext.dump(secret))
        if result.returncode != 0:
            tail = result.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
            raise SopsError(f"sops could not encrypt it: {' '.join(tail) or f'exit {result.returncode}'}")
        document = next(iter(yamltext.load_plain(result.stdout)), None)
        if not isinstance(document, Mapping):
            raise SopsError("sops wrote no YAML object")
        return document

    def decrypt(self, encrypted: Mapping[str, Any]) -> Mapping[str, Any]:
        """A SOPS-encrypted object, decrypted in memory with the keys this machine has (`SOPS_AGE_KEY_FILE`,
        `SOPS_AGE_KEY`, the PGP keyring). Raises SopsError saying why it cannot be."""
        if not self.available():
            raise SopsError(f"the `{self.program}` binary is not on PATH: install sops to decrypt Secrets")
        result = self._run(
            [self.program, "--decrypt", "--input-type", "yaml", "--output-type", "yaml", "/dev/stdin"],
            yamltext.dump(encrypted),
        )
        if result.returncode != 0:
            tail = result.stderr.decode("utf-8", "replace").strip().splitlines()[-2:]
            raise SopsError(
                f"sops cannot decrypt it here (is its key in SOPS_AGE_KEY_FILE or SOPS_AGE_KEY?): "
                f"{' '.join(tail) or f'exit {result.returncode}'}"
            )
        try:
            document = next(iter(yamltext.load_plain(result.stdout)), None)
        except yaml.YAMLError as exc:
            raise SopsError(f"sops wrote no YAML: {exc}") from None
        if not isinstance(document, Mapping):
            raise SopsError("sops wrote no YAML object")
        return document

    def _decrypts_to(self, encrypted: Mapping[str, Any], secret: Mapping[str, Any]) -> bool:
        result = self._run(
            [self.program, "--decrypt", "--input-type", "yaml", "--output-type", "yaml", "/dev/stdin"],
            yamltext.dump(encrypted),
        )
        if result.returncode != 0:
            return False  # no key here: encrypt again
        try:
            decrypted = next(iter(yamltext.load_plain(result.stdout)), None)
        except yaml.YAMLError:
            return False
        return isinstance(decrypted, Mapping) and dict(decrypted) == dict(secret)

    def _run(self, argv: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(argv, input=data, capture_output=True, timeout=_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SopsError(f"sops could not run: {exc}") from exc


def _same_object(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    first, second = a.get("metadata") or {}, b.get("metadata") or {}
    return (a.get("kind"), first.get("name"), first.get("namespace")) == (
        b.get("kind"),
        second.get("name"),
        second.get("namespace"),
    ) and "sops" in a
