"""Run one pipeline's containers, in order, over the shared Kratix directories, always in a sandbox.

In: a `Pipeline`, the object as YAML, the Promise's folder as `{relative path: bytes}`, the KRATIX_*
variables. Out: a `PipelineRun` with every file the containers left under `/kratix/output` and
`/kratix/metadata` (and the images they ran, by content id), or the name of the container that failed and why.
A failing container stops the pipeline: later ones do not run, and a failed run carries no files (half a
pipeline's output is never published). Refused with a `StepError` before any container runs: a command step
on a machine with no sandbox, an image step with no container runtime, a container asking for a network when
the compile forbids one.

How each container runs (see the reference's "Pipeline container contract"):
- `template`: our native Jinja2 step, rendered by the caller's `native_step` into the output directory.
- `command` without `image`: a local program in a sandbox that sees only `/kratix/input` (read-only, holds
  `object.yaml`), `/kratix/output` and `/kratix/metadata` (read-write), the Promise's folder read-only at
  `/kratix/promise` (the working directory, so `./scripts/configure.sh` works), a private `/tmp`, and the
  host's `/usr` and `/etc` read-only; its own `/proc` in a new PID namespace, no network, no capabilities.
  The sandbox is bubblewrap, else podman running an empty local image with the same mounts (`--rootfs`-like,
  built once from a tar, no registry). With neither, the step does not run: the caller fails the request and
  says how to get one. Only `RenderSettings.unsandboxed` (`--unsandboxed`, `KRATIX_UNSANDBOXED=1`) runs it
  directly on the host, with `KRATIX_INPUT`/`KRATIX_OUTPUT`/`KRATIX_METADATA`/`KRATIX_PROMISE` naming the
  directories; the run says `sandbox="none"`, which the summary and provenance repeat.
- `image`: a real container image under podman or docker: the same four mounts, a read-only root, every
  capability dropped, `no-new-privileges`, memory and PID limits, `--network none`. Kubernetes semantics:
  `command` replaces the image's entrypoint, `args` its default arguments; an unqualified name is pulled from
  Docker Hub as Kubernetes would (`postgres` → `docker.io/library/postgres`), never by a short-name search.

A container asks for a network with `network: true` (a field of ours; a Kratix container has a network by
default, ours are hermetic unless they say so); `RenderSettings.step_network=False` (`--no-step-network`)
refuses such a container instead of running it without one. `legacyPaths: true` (set by `kratix migrate` on
seed-era request pipelines) also mounts the directories at `/input`, `/output` and `/metadata`, where 2021/2022
images read and write, and turns their `metadata/cluster-selectors.yaml` label map into
`destination-selectors.yaml`.

The environment of a step is built from an allow-list, never inherited: PATH, HOME (a writable temporary
directory), LANG, the container's own `env` (resolved by the caller from ConfigMaps and Secrets:
`kratix.workflows.contract`), then the KRATIX_* variables (which win). The volumes it mounts (`mounts`) are written to a
temporary folder outside the output and bound read-only (an emptyDir writable). Limits beside the
timeout: CPU seconds, data memory and the size of any one file it writes (rlimits), and what it leaves in
its output: total bytes and number of files, and every name must be one Git and the output repo can hold
(relative, valid UTF-8, no control character, no `.git` component, bounded length).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from kratix import yamltext
from kratix.model import names
from kratix.model.errors import StepError
from kratix.model.platform import Container, Pipeline
from kratix.model.settings import RenderSettings
from kratix.workflows.contract import Mount

NativeStep = Callable[[Container, Path], str | None]
Volumes = Sequence[tuple[Path, str, bool]]  # (host path, mount path, writable) of a container's volumes

CONTAINER_ROOT = PurePosixPath("/kratix")
UNSANDBOXED = "none"  # the sandbox name of a command step run directly on the host (explicit opt-in only)
_LEGACY_ROOT = PurePosixPath("/")
_STDERR_TAIL_LINES = 20
_SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The top-level entries a distro may keep outside /usr (merged-/usr systems make them symlinks into /usr).
_ROOT_ENTRIES = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
# Runtimes ask for the host's rlimits by default; some hosts refuse to set those inside a container (runc:
# "error setting rlimit type 7"). Modest fixed limits are enough for a rendering step and always settable.
_CONTAINER_ULIMIT = 1024
_HOST_ROOT_REPOSITORY = "localhost/kratix-host-root"
# Run by the interpreter running kratix: set the limits, then become the step (no shell, no preexec_fn, which
# is unsafe while other threads run steps).
# The CPU hard limit is one second above the soft one, so that SIGXCPU (said so) comes before SIGKILL; Python
# ignores SIGPIPE and SIGXFSZ, and ignored signals survive exec: the step gets their defaults back.
_LIMITS_SCRIPT = (
    "import os, resource, signal, sys\n"
    "for name, value in zip(('RLIMIT_CPU', 'RLIMIT_DATA', 'RLIMIT_FSIZE'), sys.argv[1:4]):\n"
    "    hard = int(value) + (name == 'RLIMIT_CPU')\n"
    "    resource.setrlimit(getattr(resource, name), (int(value), hard))\n"
    "signal.signal(signal.SIGPIPE, signal.SIG_DFL)\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_DFL)\n"
    "try:\n"
    "    os.execvp(sys.argv[4], sys.argv[4:])\n"
    "except OSError as exc:\n"
    "    sys.exit(f'cannot start {sys.argv[4]!r}: {exc.strerror}')\n"
)

HOW_TO_GET_A_SANDBOX = (
    "install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`; on Ubuntu 24.04 also allow unprivileged "
    "user namespaces: `sysctl kernel.apparmor_restrict_unprivileged_userns=0`, or give bwrap an AppArmor "
    "profile) or podman; or, only on a machine you trust with this Promise's code, pass --unsandboxed "
    "(KRATIX_UNSANDBOXED=1)"
)


@dataclass(frozen=True)
class PipelineRun:
    output_files: Mapping[str, bytes]  # every file under /kratix/output, relative posix paths
    metadata_files: Mapping[str, bytes]  # every file under /kratix/metadata
    failed_step: str | None  # the container that failed, None when all succeeded
    error: str | None
    sandbox: str  # what actually ran: "bwrap", "podman", "none", "docker", "native", joined by "+"
    step_seconds: tuple[tuple[str, float], ...] = field(default=(), compare=False)  # wall time per container
    images: tuple[tuple[str, str], ...] = ()  # (qualified image, local content id) of every image that ran

    @property
    def ok(self) -> bool:
        return self.failed_step is None

    @property
    def unsandboxed(self) -> bool:
        return UNSANDBOXED in self.sandbox.split("+")


@dataclass(frozen=True)
class _Dirs:
    input: Path
    output: Path
    metadata: Path
    promise: Path
    home: Path
    logs: Path


@dataclass(frozen=True)
class _Outcome:
    error: str | None
    ran: str  # the sandbox or runtime that ran the step
    image: tuple[str, str] | None = None


def run_pipeline(
    pipeline: Pipeline,
    *,
    object_yaml: bytes,
    promise_files: Mapping[str, bytes],
    env: Mapping[str, str],
    settings: RenderSettings,
    native_step: NativeStep,
    sandbox: str | None = None,
    runtime: str | None = None,
    mounts: Mapping[str, Sequence[Mount]] | None = None,
) -> PipelineRun:
    """Run every container of `pipeline` in order. `sandbox` ("bwrap", "podman" or "none") and `runtime`
    ("podman", "docker") skip the probes when the caller already knows the answer (probe once per compile,
    not per run); an empty `sandbox` means the probe found none. `mounts`, by container name, are the volumes
    it mounts (ConfigMaps, Secrets, emptyDirs: `kratix.workflows.contract`), read-only but for an emptyDir."""
    mounts = mounts or {}
    sandbox, runtime = _what_runs(pipeline, env, settings, sandbox, runtime)
    _refuse_mounts(pipeline, env, mounts, sandbox or "")
    with tempfile.TemporaryDirectory(prefix="kratix-pipeline-", ignore_cleanup_errors=True) as tmp:
        dirs = _prepare(Path(tmp), object_yaml, promise_files)
        ran: list[str] = []
        images: list[tuple[str, str]] = []
        timings: list[tuple[str, float]] = []
        for index, container in enumerate(pipeline.containers):
            started = time.perf_counter()
            volumes = _materialise_mounts(Path(tmp) / f"volumes-{index}", mounts.get(container.name, ()))
            outcome = _run_container(
                container,
                dirs,
                env=env,
                settings=settings,
                native_step=native_step,
                sandbox=sandbox or "",
                runtime=runtime or "",
                volumes=volumes,
            )
            timings.append((container.name, time.perf_counter() - started))
            if outcome.ran not in ran:
                ran.append(outcome.ran)
            if outcome.image is not None and outcome.image not in images:
                images.append(outcome.image)
            error = outcome.error or _check_trees(dirs, settings)  # before the next container can follow a link
            if error is not None:
                return _failed(container.name, error, ran, timings)
        try:
            outputs = _read_tree(dirs.output, settings)
            metadata = _read_tree(dirs.metadata, settings)
            if any(_legacy(c) for c in pipeline.containers):
                metadata = _upgrade_legacy_metadata(metadata)
        except _BadOutput as exc:
            return _failed(pipeline.containers[-1].name, str(exc), ran, timings)
        return PipelineRun(outputs, metadata, None, None, "+".join(ran), tuple(timings), tuple(images))


def _what_runs(
    pipeline: Pipeline, env: Mapping[str, str], settings: RenderSettings, sandbox: str | None, runtime: str | None
) -> tuple[str | None, str | None]:
    """The sandbox and runtime the pipeline's containers need, or a StepError before any of them runs."""
    _refuse_network(pipeline, env, settings)
    if any(_is_image(c) for c in pipeline.containers):
        runtime = runtime or detect_runtime(settings.container_runtime)
        if runtime is None:
            raise StepError(_no_runtime_message(pipeline, env, settings))
    if any(_is_command(c) for c in pipeline.containers):
        sandbox = command_sandbox(settings) if sandbox is None else sandbox
        if not sandbox:
            raise StepError(_no_sandbox_message(pipeline, env))
    return sandbox, runtime


def _failed(step: str, error: str, ran: list[str], timings: list[tuple[str, float]]) -> PipelineRun:
    return PipelineRun({}, {}, step, error, "+".join(ran), tuple(timings))


def _subject(pipeline: Pipeline, env: Mapping[str, str], container: Container) -> str:
    return f"Promise {env.get('KRATIX_PROMISE_NAME', '?')!r}, pipeline {pipeline.name!r}, container {container.name!r}"


def _no_runtime_message(pipeline: Pipeline, env: Mapping[str, str], settings: RenderSettings) -> str:
    container = next(c for c in pipeline.containers if _is_image(c))
    wanted = settings.container_runtime or "podman or docker"
    return (
        f"{_subject(pipeline, env, container)} runs image {container.image!r}, but no usable container "
        f"runtime ({wanted}) was found on PATH; install podman, or render this Promise where one is available"
    )


def _no_sandbox_message(pipeline: Pipeline, env: Mapping[str, str]) -> str:
    container = next(c for c in pipeline.containers if _is_command(c))
    return (
        f"{_subject(pipeline, env, container)} runs a command, and command steps run only in a sandbox: "
        f"neither bubblewrap (bwrap) nor podman can run one on this machine. To fix: {HOW_TO_GET_A_SANDBOX}"
    )


# Where a mount cannot go: the directories of the contract, and (in a command step's sandbox, whose root holds
# the host's programs read-only) the host's own folders, where no mount point can be made.
_CONTRACT_PATHS = (str(CONTAINER_ROOT), "/proc", "/dev")
_HOST_PATHS = ("/usr", "/etc", *(f"/{name}" for name in _ROOT_ENTRIES))


def _refuse_mounts(
    pipeline: Pipeline, env: Mapping[str, str], mounts: Mapping[str, Sequence[Mount]], sandbox: str
) -> None:
    for container in pipeline.containers:
        for mount in mounts.get(container.name, ()):
            path = PurePosixPath(mount.path)
            refused = _CONTRACT_PATHS if _is_image(container) else (*_CONTRACT_PATHS, *_HOST_PATHS)
            clash = next((r for r in refused if path == PurePosixPath(r) or PurePosixPath(r) in path.parents), None)
            if clash is not None:
                who = "the pipeline contract" if clash in _CONTRACT_PATHS else "a command step"
                raise StepError(
                    f"{_subject(pipeline, env, container)} mounts a volume at {mount.path}, inside "
                    f"{clash}, where {who} cannot take one; mount it elsewhere (as /config)"
                )
            if _is_command(container) and sandbox == UNSANDBOXED:
                raise StepError(
                    f"{_subject(pipeline, env, container)} mounts volumes, which a command step run "
                    "unsandboxed (--unsandboxed) cannot have: run it in the sandbox, or as an image"
                )


def _materialise_mounts(root: Path, mounts: Sequence[Mount]) -> list[tuple[Path, str, bool]]:
    """Each volume's files in a folder of its own (outside the output: never delivered), as (host path, mount
    path, writable)."""
    volumes = []
    for index, mount in enumerate(mounts):
        host = root / str(index)
        if mount.files is None:  # an emptyDir: writable by whoever the step runs as
            host.mkdir(parents=True)
            host.chmod(0o777)
            volumes.append((host, mount.path, True))
            continue
        if mount.single:
            host.parent.mkdir(parents=True, exist_ok=True)
            host.write_bytes(mount.files[""])
            host.chmod(0o644)
        else:
            host.mkdir(parents=True)
            for relative, data in mount.files.items():
                target = host.joinpath(*PurePosixPath(relative).parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                target.chmod(0o644)
        volumes.append((host, mount.path, False))
    return volumes


def _refuse_network(pipeline: Pipeline, env: Mapping[str, str], settings: RenderSettings) -> None:
    if settings.step_network:
        return
    for container in pipeline.containers:
        if container.template is None and _network(container):
            raise StepError(
                f"{_subject(pipeline, env, container)} asks for a network (network: true), and this "
                "compile gives steps none (--no-step-network, as in pull-request checks)"
            )


# -- the shared directories ------------------------------------------------------------------------------


def _prepare(root: Path, object_yaml: bytes, promise_files: Mapping[str, bytes]) -> _Dirs:
    dirs = _Dirs(*(root / name for name in ("input", "output", "metadata", "promise", "home", "logs")))
    for directory in (dirs.input, dirs.output, dirs.metadata, dirs.promise, dirs.home, dirs.logs):
        directory.mkdir()
    # An image may run as a non-root user: the directories it writes must be writable by anyone.
    for directory in (dirs.output, dirs.metadata, dirs.home):
        directory.chmod(0o777)
    (dirs.input / "object.yaml").write_bytes(object_yaml)
    _materialise(dirs.promise, promise_files)
    return dirs


def _materialise(target: Path, files: Mapping[str, bytes]) -> None:
    """Write the Promise's folder. Git and `{path: bytes}` lose exec bits: a file that starts with `#!` is
    meant to be run, so it gets them back (`sh script.sh` works either way)."""
    for relative, data in files.items():
        path = PurePosixPath(relative)
        if path.is_absolute() or ".." in path.parts or not path.parts:
            raise StepError(f"promise file {relative!r} is outside the Promise's folder")
        destination = target.joinpath(*path.parts)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(data)
        destination.chmod(0o755 if data.startswith(b"#!") else 0o644)


class _BadOutput(Exception):
    pass


def _check_trees(dirs: _Dirs, settings: RenderSettings) -> str | None:
    try:
        for root in (dirs.output, dirs.metadata):
            _within_limits(root, list(_regular_files(root)), settings)  # raises on the first bad entry
    except _BadOutput as exc:
        return str(exc)
    return None


def _shown(relative: str) -> str:
    """A file name as it can be printed safely: control characters and undecodable bytes escaped."""
    raw = os.fsencode(relative)
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in raw.decode("utf-8", "backslashreplace"))


def _regular_files(root: Path) -> Iterator[tuple[Path, str]]:
    """Every file under `root` with its relative path. A symlink could point at the host's files (and a
    later step would follow it), so it is refused, like anything that is not a regular file, and like a name
    the output repo cannot hold."""
    for path in _walk(root):
        relative = path.relative_to(root).as_posix()
        problem = names.relative_path(relative)
        if problem is not None:
            raise _BadOutput(f"{root.name}/{_shown(relative)}: the file name {problem}")
        if path.is_symlink():
            raise _BadOutput(f"{root.name}/{relative} is a symlink; write regular files only")
        if not path.is_file():
            raise _BadOutput(f"{root.name}/{relative} is not a regular file")
        yield path, relative


def _within_limits(root: Path, files: list[tuple[Path, str]], settings: RenderSettings) -> None:
    if len(files) > settings.step_output_files:
        raise _BadOutput(f"{root.name}/ holds {len(files)} files, more than the limit of {settings.step_output_files}")
    total = sum(path.stat().st_size for path, _ in files)
    if total > settings.step_output_bytes:
        raise _BadOutput(f"{root.name}/ holds {total} bytes, more than the limit of {settings.step_output_bytes}")


def _read_tree(root: Path, settings: RenderSettings) -> dict[str, bytes]:
    found = list(_regular_files(root))
    _within_limits(root, found, settings)
    files: dict[str, bytes] = {}
    for path, relative in found:
        try:
            files[relative] = path.read_bytes()
        except OSError as exc:
            raise _BadOutput(f"cannot read {root.name}/{relative}: {exc}") from exc
    return dict(sorted(files.items()))


def _walk(root: Path) -> Iterator[Path]:
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            yield from _walk(entry)
        else:
            yield entry


def _upgrade_legacy_metadata(metadata: dict[str, bytes]) -> dict[str, bytes]:
    """2021/2022 pipelines wrote a flat label map to `cluster-selectors.yaml`; today's contract reads a list
    of selectors from `destination-selectors.yaml`."""
    legacy = metadata.get("cluster-selectors.yaml")
    if legacy is None or "destination-selectors.yaml" in metadata:
        return metadata
    try:
        labels = next(iter(yamltext.load_plain(legacy)), None) or {}
    except yaml.YAMLError as exc:
        raise _BadOutput(f"metadata/cluster-selectors.yaml is not YAML: {exc}") from exc
    if not isinstance(labels, Mapping):
        raise _BadOutput("metadata/cluster-selectors.yaml must be a map of labels")
    upgraded = dict(metadata)
    upgraded["destination-selectors.yaml"] = yamltext.dump(
        [{"matchLabels": {str(k): str(v) for k, v in labels.items()}}]
    )
    return upgraded


# -- one container -----------------------------------------------------------------------------------------


def _is_image(container: Container) -> bool:
    return container.template is None and container.image is not None


def _is_command(container: Container) -> bool:
    return container.template is None and container.image is None


def _legacy(container: Container) -> bool:
    return container.body.get("legacyPaths") is True


def _network(container: Container) -> bool:
    return container.body.get("network") is True


def _run_container(
    container: Container,
    dirs: _Dirs,
    *,
    env: Mapping[str, str],
    settings: RenderSettings,
    native_step: NativeStep,
    sandbox: str,
    runtime: str,
    volumes: Volumes = (),
) -> _Outcome:
    if container.template is not None:
        return _Outcome(native_step(container, dirs.output), "native")
    if container.image is not None:
        return _run_image(container, dirs, env=env, settings=settings, runtime=runtime, volumes=volumes)
    return _run_command(container, dirs, env=env, settings=settings, sandbox=sandbox, volumes=volumes)


def _step_env(
    container: Container, kratix_env: Mapping[str, str], *, paths: Mapping[str, str], base: Mapping[str, str]
) -> dict[str, str]:
    environment = dict(base)
    environment.update(container.env)
    environment.update(kratix_env)
    environment.update(paths)
    return environment


def _container_paths(root: PurePosixPath) -> dict[str, str]:
    return {f"KRATIX_{name.upper()}": str(root / name) for name in ("input", "output", "metadata", "promise")}


def _run_command(
    container: Container,
    dirs: _Dirs,
    *,
    env: Mapping[str, str],
    settings: RenderSettings,
    sandbox: str,
    volumes: Volumes = (),
) -> _Outcome:
    argv = [*container.command, *container.args]
    network = _network(container) and settings.step_network
    if sandbox == "podman":
        return _run_in_podman(container, argv, dirs, env=env, settings=settings, network=network, volumes=volumes)
    if sandbox == "bwrap":
        base = {"PATH": _SANDBOX_PATH, "HOME": "/tmp", "LANG": "C.UTF-8"}
        step_env = _step_env(container, env, paths=_container_paths(CONTAINER_ROOT), base=base)
        command = [*_bwrap_argv(dirs, network=network, legacy=_legacy(container), volumes=volumes), "--", *argv]
        cwd = dirs.home
    elif sandbox == UNSANDBOXED:
        base = {"PATH": os.environ.get("PATH", _SANDBOX_PATH), "HOME": str(dirs.home), "LANG": "C.UTF-8"}
        paths = {
            "KRATIX_INPUT": str(dirs.input),
            "KRATIX_OUTPUT": str(dirs.output),
            "KRATIX_METADATA": str(dirs.metadata),
            "KRATIX_PROMISE": str(dirs.promise),
        }
        step_env = _step_env(container, env, paths=paths, base=base)
        command, cwd = argv, dirs.promise
    else:  # never guess: an unknown sandbox name is a bug of the caller
        raise StepError(f"unknown sandbox {sandbox!r} for container {container.name!r}")
    error = _execute(
        container.name,
        _limited(command, settings),
        env=step_env,
        cwd=cwd,
        dirs=dirs,
        timeout=settings.step_timeout_seconds,
        on_timeout=None,
    )
    return _Outcome(error, sandbox)


def _limited(argv: list[str], settings: RenderSettings) -> list[str]:
    """`argv` under the CPU, data-memory and file-size rlimits of a step (inherited by all it starts)."""
    limits = (int(settings.step_cpu_seconds), settings.step_memory_bytes, settings.step_output_bytes)
    return [sys.executable, "-I", "-S", "-c", _LIMITS_SCRIPT, *map(str, limits), *argv]


def _bwrap_argv(dirs: _Dirs, *, network: bool, legacy: bool, volumes: Volumes = ()) -> list[str]:
    argv = [
        shutil.which("bwrap") or "bwrap",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
    ]
    if network:
        argv.append("--share-net")
    argv += _bwrap_root()
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for root in (CONTAINER_ROOT, *((_LEGACY_ROOT,) if legacy else ())):
        argv += [
            "--ro-bind",
            str(dirs.input),
            str(root / "input"),
            "--bind",
            str(dirs.output),
            str(root / "output"),
            "--bind",
            str(dirs.metadata),
            str(root / "metadata"),
        ]
    argv += [
        "--ro-bind",
        str(dirs.promise),
        str(CONTAINER_ROOT / "promise"),
        "--chdir",
        str(CONTAINER_ROOT / "promise"),
    ]
    for host, path, writable in volumes:
        argv += ["--bind" if writable else "--ro-bind", str(host), path]
    return [*argv, "--remount-ro", "/"]  # after every mount point on it exists: only the binds stay writable


def _bwrap_root() -> list[str]:
    """A read-only copy of the host's programs and configuration on an empty root, nothing else."""
    argv = ["--tmpfs", "/", "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for name in _ROOT_ENTRIES:
        host = Path("/") / name
        if host.is_symlink():
            argv += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            argv += ["--ro-bind", str(host), str(host)]
    return argv


def _mounts(dirs: _Dirs, *, legacy: bool) -> list[str]:
    argv = []
    for root in (CONTAINER_ROOT, *((_LEGACY_ROOT,) if legacy else ())):
        argv += [
            "-v",
            f"{dirs.input}:{root / 'input'}:ro",
            "-v",
            f"{dirs.output}:{root / 'output'}",
            "-v",
            f"{dirs.metadata}:{root / 'metadata'}",
        ]
    return [*argv, "-v", f"{dirs.promise}:{CONTAINER_ROOT / 'promise'}:ro"]


def _volume_flags(volumes: Volumes) -> list[str]:
    return [flag for host, path, writable in volumes for flag in ("-v", f"{host}:{path}" + ("" if writable else ":ro"))]


def _confined(runtime: str, name: str, settings: RenderSettings, *, network: bool) -> list[str]:
    """`<runtime> run` with everything that confines a step: read-only root (writable /tmp), no capabilities,
    no privilege gain, memory, PID, CPU-time and file-size limits, no network unless allowed."""
    command = [
        runtime,
        "run",
        "--rm",
        "--name",
        name,
        "--read-only",
        "--cap-drop",
        "all",
        "--security-opt",
        "no-new-privileges",
        "--memory",
        str(settings.step_memory_bytes),
        "--pids-limit",
        str(settings.step_pids),
        "--ulimit",
        f"nofile={_CONTAINER_ULIMIT}:{_CONTAINER_ULIMIT}",
        "--ulimit",
        f"nproc={_CONTAINER_ULIMIT}:{_CONTAINER_ULIMIT}",
        "--ulimit",
        f"cpu={int(settings.step_cpu_seconds)}:{int(settings.step_cpu_seconds)}",
        "--ulimit",
        f"fsize={settings.step_output_bytes}:{settings.step_output_bytes}",
    ]
    return command if network else [*command, "--network", "none"]


def _run_in_podman(
    container: Container,
    argv: list[str],
    dirs: _Dirs,
    *,
    env: Mapping[str, str],
    settings: RenderSettings,
    network: bool,
    volumes: Volumes = (),
) -> _Outcome:
    """A command step in podman: an empty local image whose only contents are the host's /usr and /etc
    (read-only) and the Kratix mounts; what bubblewrap gives, where bubblewrap cannot run."""
    image = host_root_image("podman")
    if image is None:
        return _Outcome(f"container {container.name!r}: podman cannot build its sandbox image here", "podman")
    name = f"kratix-step-{secrets.token_hex(6)}"
    step_env = _step_env(
        container,
        env,
        paths=_container_paths(CONTAINER_ROOT),
        base={"PATH": _SANDBOX_PATH, "HOME": "/tmp", "LANG": "C.UTF-8"},
    )
    command = [*_confined("podman", name, settings, network=network), "-v", "/usr:/usr:ro", "-v", "/etc:/etc:ro"]
    for entry in _ROOT_ENTRIES:
        host = Path("/") / entry
        if host.is_dir() and not host.is_symlink():
            command += ["-v", f"{host}:{host}:ro"]
    command += [*_mounts(dirs, legacy=_legacy(container)), *_volume_flags(volumes)]
    for key, value in step_env.items():
        command += ["-e", f"{key}={value}"]
    command += ["--workdir", str(CONTAINER_ROOT / "promise"), "--", image, *argv]
    error = _execute(
        container.name,
        command,
        env=_runtime_env(),
        cwd=dirs.home,
        dirs=dirs,
        timeout=settings.step_timeout_seconds,
        on_timeout=_stopper("podman", name),
    )
    return _Outcome(error, "podman")


def _run_image(
    container: Container,
    dirs: _Dirs,
    *,
    env: Mapping[str, str],
    settings: RenderSettings,
    runtime: str,
    volumes: Volumes = (),
) -> _Outcome:
    name = f"kratix-step-{secrets.token_hex(6)}"
    image = qualified_image(str(container.image))
    step_env = _step_env(container, env, paths=_container_paths(CONTAINER_ROOT), base={"LANG": "C.UTF-8"})
    command = [
        *_confined(runtime, name, settings, network=_network(container) and settings.step_network),
        "--pull",
        "missing",
        *_mounts(dirs, legacy=_legacy(container)),
        *_volume_flags(volumes),
    ]
    for key, value in step_env.items():
        command += ["-e", f"{key}={value}"]
    arguments = [*container.command[1:], *container.args]
    if container.command:
        command += ["--entrypoint", container.command[0]]
    command += ["--", image, *arguments]
    error = _execute(
        container.name,
        command,
        env=_runtime_env(),
        cwd=dirs.home,
        dirs=dirs,
        timeout=settings.step_timeout_seconds,
        on_timeout=_stopper(runtime, name),
    )
    digest = image_digest(image, runtime)
    return _Outcome(error, runtime, (image, digest) if digest else None)


def _runtime_env() -> dict[str, str]:
    """The runtime client's own environment: what it needs to find its storage, nothing of the step's."""
    return {
        key: value
        for key, value in os.environ.items()
        if key
        in (
            "PATH",
            "HOME",
            "USER",
            "LANG",
            "TMPDIR",
            "XDG_RUNTIME_DIR",
            "XDG_CONFIG_HOME",
            "XDG_DATA_HOME",
            "CONTAINERS_CONF",
            "CONTAINERS_STORAGE_CONF",
            "CONTAINER_HOST",
            "DOCKER_HOST",
            "DOCKER_CONFIG",
            "REGISTRY_AUTH_FILE",
        )
    }


def _stopper(runtime: str, name: str) -> Callable[[], None]:
    def stop() -> None:  # killing the client leaves the container running: stop it by name
        for verb in (["kill", name], ["rm", "-f", name]):
            subprocess.run(
                [runtime, *verb], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=False
            )

    return stop


def _execute(
    step: str,
    argv: list[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    dirs: _Dirs,
    timeout: float,
    on_timeout: Callable[[], None] | None,
) -> str | None:
    """Run one process in its own process group; the error message, or None when it exited 0."""
    stem = secrets.token_hex(4)  # container names are the user's: never let them shape a path
    stdout_path, stderr_path = dirs.logs / f"{stem}.out", dirs.logs / f"{stem}.err"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        try:
            process = subprocess.Popen(
                argv,
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        except OSError as exc:
            return f"container {step!r} cannot start {argv[0]!r}: {exc.strerror or exc}"
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            if on_timeout is not None:
                on_timeout()
            return f"container {step!r} timed out after {timeout:g}s"
    if code == 0:
        return None
    tail = _tail(stderr_path) or _tail(stdout_path)
    status = f"exited {code}"
    if code < 0:
        status = f"was killed by signal {-code}" + _limit_hint(-code)
    elif code in (128 + signal.SIGXCPU, 128 + signal.SIGXFSZ, 128 + signal.SIGKILL):
        status += _limit_hint(code - 128)
    return f"container {step!r} {status}" + (f": {tail}" if tail else "")


def _limit_hint(signum: int) -> str:
    hints = {
        int(signal.SIGXCPU): " (its CPU-time limit)",
        int(signal.SIGXFSZ): " (its file-size limit)",
        int(signal.SIGKILL): " (perhaps its memory limit)",
    }
    return hints.get(signum, "")


def _kill_group(process: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group may already be gone
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _tail(path: Path) -> str:
    lines = path.read_bytes().decode("utf-8", "replace").rstrip().splitlines()
    return "\n".join(lines[-_STDERR_TAIL_LINES:])


# -- image names -------------------------------------------------------------------------------------------


def qualified_image(image: str) -> str:
    """The image reference as Kubernetes resolves it: a first component without a `.` or `:` (and not
    `localhost`) is a Docker Hub repository, official images live under `library/`. Podman would otherwise
    search its configured registries for a short name (or refuse it): a step must not depend on that."""
    name, at, digest = image.partition("@")
    first, slash, rest = name.partition("/")
    if not slash:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    elif first in ("docker.io", "index.docker.io") and "/" not in rest:
        name = f"docker.io/library/{rest}"
    return name + at + digest


# -- what this machine can run -----------------------------------------------------------------------------


def command_sandbox(settings: RenderSettings) -> str:
    """The sandbox command steps run in here: "none" when the settings opt out of sandboxing, else "bwrap",
    else "podman", else "" (none available: command steps are refused)."""
    if settings.unsandboxed:
        return UNSANDBOXED
    if sandbox_available():
        return "bwrap"
    image = host_root_image("podman") if shutil.which("podman") is not None else None
    if image is not None and _podman_runs(image):
        return "podman"
    return ""


def _podman_runs(image: str) -> bool:
    """Whether podman can start the confined container command steps run in (rootless podman may lack user
    namespaces or subordinate ids)."""
    smoke = [
        *_confined("podman", f"kratix-probe-{secrets.token_hex(6)}", RenderSettings(), network=False),
        "-v",
        "/usr:/usr:ro",
        "--",
        image,
        "/usr/bin/true",
    ]
    try:
        return _quiet(smoke) == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def sandbox_available() -> bool:
    """True when bubblewrap can build the sandbox used for command steps here (user namespaces allowed)."""
    if shutil.which("bwrap") is None:
        return False
    probe = [
        "bwrap",
        "--unshare-all",
        "--die-with-parent",
        "--cap-drop",
        "ALL",
        *_bwrap_root(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--",
        "true",
    ]
    try:
        return (
            subprocess.run(
                probe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def host_root_image(runtime: str) -> str | None:
    """The local image podman runs command steps in: an empty root with mount points for the host's /usr and
    /etc (and the symlinks a merged-/usr host has), imported from a tar, no registry. Built on first use,
    tagged by its layout; None when the runtime cannot build or run it here."""
    layout = [
        (name, os.readlink(f"/{name}") if Path(f"/{name}").is_symlink() else "")
        for name in _ROOT_ENTRIES
        if Path(f"/{name}").exists() or Path(f"/{name}").is_symlink()
    ]
    tag = f"{_HOST_ROOT_REPOSITORY}:{hashlib.sha256(repr(layout).encode()).hexdigest()[:12]}"
    try:
        if _quiet([runtime, "image", "inspect", tag]) == 0:
            return tag
        with tempfile.TemporaryDirectory(prefix="kratix-root-") as tmp:
            archive = Path(tmp) / "root.tar"
            with tarfile.open(archive, "w") as tar:
                for directory in (
                    "usr",
                    "etc",
                    "tmp",
                    "kratix",
                    "proc",
                    "dev",
                    "sys",
                    *(n for n, link in layout if not link),
                ):
                    entry = tarfile.TarInfo(directory)
                    entry.type, entry.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
                    tar.addfile(entry)
                for name, link in layout:
                    if link:
                        entry = tarfile.TarInfo(name)
                        entry.type, entry.linkname = tarfile.SYMTYPE, link
                        tar.addfile(entry)
            imported = _quiet([runtime, "import", str(archive), tag])
        return tag if imported == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def _quiet(argv: list[str]) -> int:
    return subprocess.run(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, check=False
    ).returncode


def detect_runtime(preferred: str | None = None) -> str | None:
    """The container runtime to use: `preferred` if it is usable, else podman, else docker. Usable means
    on PATH and answering `info` (a docker CLI without a reachable daemon is not usable). A preferred runtime
    that is not usable gives None rather than silently running something else."""
    for candidate in (preferred,) if preferred else ("podman", "docker"):
        if shutil.which(candidate) is None:
            continue
        try:
            answered = subprocess.run(
                [candidate, "info"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if answered.returncode == 0:
            return candidate
    return None


def image_digest(image: str, runtime: str) -> str | None:
    """The local image's content id (`sha256:...`, the config digest: identical content, identical id) for
    keying a cache and for provenance, or None when the image is not present locally (nothing is pulled)."""
    try:
        result = subprocess.run(
            [runtime, "image", "inspect", "--format", "{{.Id}}", image],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    identity = result.stdout.strip()
    if result.returncode != 0 or not identity:
        return None
    return identity if identity.startswith("sha256:") else f"sha256:{identity}"
