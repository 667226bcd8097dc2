"""Tiny local container images for tests, built without a registry.

A statically linked busybox (Debian: `busybox-static`) copied into an empty root with a symlink per applet is
a complete image of about 2 MB: `tar -C ROOT -c . | podman import - localhost/NAME:TAG`. The tag is derived
from the busybox binary, so a second session (or a parallel xdist worker) reuses the image already built.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

APPLETS = ("sh", "cat", "echo", "mkdir", "printf", "sed", "grep", "ls", "sleep", "touch", "test", "env", "true")
_REPOSITORY = "localhost/kratix-test-busybox"


class ImageUnavailable(Exception):
    """This machine cannot build or run the test image; the message says why (tests skip with it)."""


def busybox_image(runtime: str) -> str:
    """The reference of a runnable busybox image, built on first use. Raises `ImageUnavailable`."""
    busybox = _static_busybox()
    tag = f"{_REPOSITORY}:{hashlib.sha256(busybox.read_bytes()).hexdigest()[:12]}"
    if _run([runtime, "image", "inspect", tag]).returncode != 0:
        _import(runtime, busybox, tag)
    smoke = _run(
        [
            runtime,
            "run",
            "--rm",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            tag,
            "true",
        ]
    )
    if smoke.returncode != 0:
        raise ImageUnavailable(f"{runtime} cannot run a container here: {smoke.stderr.strip()[-300:]}")
    return tag


def _static_busybox() -> Path:
    found = shutil.which("busybox") or "/bin/busybox"
    path = Path(found)
    if not path.is_file():
        raise ImageUnavailable("no busybox binary (install busybox-static)")
    if b"ld-linux" in path.read_bytes()[:4096]:  # the ELF interpreter sits in the first page
        raise ImageUnavailable(f"{path} is dynamically linked (install busybox-static)")
    return path


def _import(runtime: str, busybox: Path, tag: str) -> None:
    with tempfile.TemporaryDirectory(prefix="kratix-image-") as tmp:
        archive = Path(tmp) / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(busybox, arcname="bin/busybox")
            for applet in APPLETS:
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
            for directory in ("tmp", "kratix"):
                entry = tarfile.TarInfo(directory)
                entry.type, entry.mode = tarfile.DIRTYPE, 0o1777
                tar.addfile(entry)
        result = _run([runtime, "import", "--change", "ENV PATH=/bin", str(archive), tag])
    if result.returncode != 0:
        raise ImageUnavailable(f"{runtime} import failed: {result.stderr.strip()[-300:]}")


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ImageUnavailable(f"{argv[0]} failed to run: {exc}") from exc
