"""Run one pipeline's containers, in order, over the shared Kratix directories.

In: a `Pipeline`, the object as YAML, the Promise's folder as `{relative path: bytes}`, the KRATIX_*
variables. Out: a `PipelineRun` with every file the containers left under `/kratix/output` and
`/kratix/metadata`, or the name of the container that failed and why. A failing container stops the pipeline:
later ones do not run, and a failed run carries no files (half a pipeline's output is never published).

How each container runs (see the reference's "Pipeline container contract"):
- `template`: our native Jinja2 step, rendered by the caller's `native_step` into the output directory.
- `command` without `image`: a local program under bubblewrap: an empty root with `/usr` and `/etc` read-only,
  `/kratix/input` (read-only, holds `object.yaml`), `/kratix/output` and `/kratix/metadata` (read-write),
  the Promise's folder read-only at `/kratix/promise` (the working directory, so `./scripts/configure.sh`
  works), a private `/tmp`, everything else read-only, no network, no capabilities. Where bubblewrap
  cannot run, the command runs directly in the Promise's folder with `KRATIX_INPUT`, `KRATIX_OUTPUT`,
  `KRATIX_METADATA` and `KRATIX_PROMISE` naming the directories (`sandbox="env"`, no isolation at all):
  scripts that use those variables (with `/kratix/...` as their default) work both ways. The variables are
  set in the sandbox too.
- `image`: a real container image under podman or docker, the same four mounts, `--network none`. Kubernetes
  semantics: `command` replaces the image's entrypoint, `args` its default arguments.

A container asks for a network with `network: true` (a field of ours; a Kratix container has a network by
default, ours are hermetic unless they say so). `legacyPaths: true` (set by `kratix migrate` on seed-era
request pipelines) also mounts the directories at `/input`, `/output` and `/metadata`, where 2021/2022 images
read and write, and turns their `metadata/cluster-selectors.yaml` label map into `destination-selectors.yaml`.

The environment of a step is cleared: PATH, HOME (a writable temporary directory), LANG, the container's
own `env`, then the KRATIX_* variables (which win). No runtime for an image step is a `StepError` raised
before any container runs: it is a problem of this machine, not of the Promise.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from kratix import yamltext
from kratix.errors import StepError
from kratix.platform import Container, Pipeline
from kratix.settings import RenderSettings

NativeStep = Callable[[Container, Path], str | None]

CONTAINER_ROOT = PurePosixPath("/kratix")
_LEGACY_ROOT = PurePosixPath("/")
_STDERR_TAIL_LINES = 20
_SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The top-level entries a distro may keep outside /usr (merged-/usr systems make them symlinks into /usr).
_ROOT_ENTRIES = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
# Runtimes ask for the host's rlimits by default; some hosts refuse to set those inside a container (runc:
# "error setting rlimit type 7"). Modest fixed limits are enough for a rendering step and always settable.
_CONTAINER_ULIMIT = 1024


@dataclass(frozen=True)
class PipelineRun:
    output_files: Mapping[str, bytes]  # every file under /kratix/output, relative posix paths
    metadata_files: Mapping[str, bytes]  # every file under /kratix/metadata
    failed_step: str | None  # the container that failed, None when all succeeded
    error: str | None
    sandbox: str  # what actually ran: "bwrap", "env", "podman", "docker", "native", joined by "+"
    step_seconds: tuple[tuple[str, float], ...] = field(default=(), compare=False)  # wall time per container

    @property
    def ok(self) -> bool:
        return self.failed_step is None


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


def run_pipeline(pipeline: Pipeline, *, object_yaml: bytes, promise_files: Mapping[str, bytes],
                 env: Mapping[str, str], settings: RenderSettings, native_step: NativeStep,
                 sandbox: str | None = None, runtime: str | None = None) -> PipelineRun:
    """Run every container of `pipeline` in order. `sandbox` ("bwrap" or "env") and `runtime` ("podman",
    "docker") skip the probes when the caller already knows the answer (probe once per compile, not per
    run)."""
    if any(_is_image(c) for c in pipeline.containers):
        runtime = runtime or detect_runtime(settings.container_runtime)
        if runtime is None:
            raise StepError(_no_runtime_message(pipeline, env, settings))
    if any(_is_command(c) for c in pipeline.containers) and sandbox is None:
        sandbox = "bwrap" if sandbox_available() else "env"
    with tempfile.TemporaryDirectory(prefix="kratix-pipeline-", ignore_cleanup_errors=True) as tmp:
        dirs = _prepare(Path(tmp), object_yaml, promise_files)
        ran: list[str] = []
        timings: list[tuple[str, float]] = []
        for container in pipeline.containers:
            started = time.perf_counter()
            outcome = _run_container(container, dirs, env=env, settings=settings, native_step=native_step,
                                     sandbox=sandbox or "env", runtime=runtime or "")
            timings.append((container.name, time.perf_counter() - started))
            if outcome.ran not in ran:
                ran.append(outcome.ran)
            error = outcome.error or _check_trees(dirs)  # before the next container can follow a symlink
            if error is not None:
                return _failed(container.name, error, ran, timings)
        try:
            outputs = _read_tree(dirs.output)
            metadata = _read_tree(dirs.metadata)
            if any(_legacy(c) for c in pipeline.containers):
                metadata = _upgrade_legacy_metadata(metadata)
        except _BadOutput as exc:
            return _failed(pipeline.containers[-1].name, str(exc), ran, timings)
        return PipelineRun(outputs, metadata, None, None, "+".join(ran), tuple(timings))


def _failed(step: str, error: str, ran: list[str], timings: list[tuple[str, float]]) -> PipelineRun:
    return PipelineRun({}, {}, step, error, "+".join(ran), tuple(timings))


def _no_runtime_message(pipeline: Pipeline, env: Mapping[str, str], settings: RenderSettings) -> str:
    container = next(c for c in pipeline.containers if _is_image(c))
    wanted = settings.container_runtime or "podman or docker"
    return (f"Promise {env.get('KRATIX_PROMISE_NAME', '?')!r}, pipeline {pipeline.name!r}, container "
            f"{container.name!r} runs image {container.image!r}, but no usable container runtime "
            f"({wanted}) was found on PATH; install podman, or render this Promise where one is available")


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


def _check_trees(dirs: _Dirs) -> str | None:
    try:
        for root in (dirs.output, dirs.metadata):
            list(_regular_files(root))  # walks the tree; raises on the first bad entry
    except _BadOutput as exc:
        return str(exc)
    return None


def _regular_files(root: Path) -> Iterator[tuple[Path, str]]:
    """Every file under `root` with its relative path. A symlink could point at the host's files (and a
    later step would follow it), so it is refused, like anything that is not a regular file."""
    for path in _walk(root):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink():
            raise _BadOutput(f"{root.name}/{relative} is a symlink; write regular files only")
        if not path.is_file():
            raise _BadOutput(f"{root.name}/{relative} is not a regular file")
        yield path, relative


def _read_tree(root: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for path, relative in _regular_files(root):
        try:
            relative.encode("utf-8")
            files[relative] = path.read_bytes()
        except (OSError, UnicodeEncodeError) as exc:
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
        [{"matchLabels": {str(k): str(v) for k, v in labels.items()}}])
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


def _run_container(container: Container, dirs: _Dirs, *, env: Mapping[str, str], settings: RenderSettings,
                   native_step: NativeStep, sandbox: str, runtime: str) -> _Outcome:
    if container.template is not None:
        return _Outcome(native_step(container, dirs.output), "native")
    if container.image is not None:
        return _run_image(container, dirs, env=env, settings=settings, runtime=runtime)
    return _run_command(container, dirs, env=env, settings=settings, sandbox=sandbox)


def _step_env(container: Container, kratix_env: Mapping[str, str], *, paths: Mapping[str, str],
              base: Mapping[str, str]) -> dict[str, str]:
    environment = dict(base)
    environment.update(container.env)
    environment.update(kratix_env)
    environment.update(paths)
    return environment


def _container_paths(root: PurePosixPath) -> dict[str, str]:
    return {f"KRATIX_{name.upper()}": str(root / name) for name in ("input", "output", "metadata", "promise")}


def _run_command(container: Container, dirs: _Dirs, *, env: Mapping[str, str], settings: RenderSettings,
                 sandbox: str) -> _Outcome:
    argv = [*container.command, *container.args]
    if sandbox == "bwrap":
        base = {"PATH": _SANDBOX_PATH, "HOME": "/tmp", "LANG": "C.UTF-8"}
        step_env = _step_env(container, env, paths=_container_paths(CONTAINER_ROOT), base=base)
        command = [*_bwrap_argv(dirs, network=_network(container), legacy=_legacy(container)), "--", *argv]
        cwd = dirs.home
    else:
        base = {"PATH": os.environ.get("PATH", _SANDBOX_PATH), "HOME": str(dirs.home), "LANG": "C.UTF-8"}
        paths = {"KRATIX_INPUT": str(dirs.input), "KRATIX_OUTPUT": str(dirs.output),
                 "KRATIX_METADATA": str(dirs.metadata), "KRATIX_PROMISE": str(dirs.promise)}
        step_env = _step_env(container, env, paths=paths, base=base)
        command, cwd = argv, dirs.promise
    error = _execute(container.name, command, env=step_env, cwd=cwd, dirs=dirs,
                     timeout=settings.step_timeout_seconds, on_timeout=None)
    return _Outcome(error, sandbox)


def _bwrap_argv(dirs: _Dirs, *, network: bool, legacy: bool) -> list[str]:
    argv = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if network:
        argv.append("--share-net")
    argv += _bwrap_root()
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for root in (CONTAINER_ROOT, *((_LEGACY_ROOT,) if legacy else ())):
        argv += ["--ro-bind", str(dirs.input), str(root / "input"),
                 "--bind", str(dirs.output), str(root / "output"),
                 "--bind", str(dirs.metadata), str(root / "metadata")]
    argv += ["--ro-bind", str(dirs.promise), str(CONTAINER_ROOT / "promise"),
             "--chdir", str(CONTAINER_ROOT / "promise")]
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


def _run_image(container: Container, dirs: _Dirs, *, env: Mapping[str, str], settings: RenderSettings,
               runtime: str) -> _Outcome:
    name = f"kratix-step-{secrets.token_hex(6)}"
    step_env = _step_env(container, env, paths=_container_paths(CONTAINER_ROOT), base={"LANG": "C.UTF-8"})
    command = [runtime, "run", "--rm", "--name", name, "--pull", "missing",
               "--ulimit", f"nofile={_CONTAINER_ULIMIT}:{_CONTAINER_ULIMIT}",
               "--ulimit", f"nproc={_CONTAINER_ULIMIT}:{_CONTAINER_ULIMIT}"]
    if not _network(container):
        command += ["--network", "none"]
    for root in (CONTAINER_ROOT, *((_LEGACY_ROOT,) if _legacy(container) else ())):
        command += ["-v", f"{dirs.input}:{root / 'input'}:ro", "-v", f"{dirs.output}:{root / 'output'}",
                    "-v", f"{dirs.metadata}:{root / 'metadata'}"]
    command += ["-v", f"{dirs.promise}:{CONTAINER_ROOT / 'promise'}:ro"]
    for key, value in step_env.items():
        command += ["-e", f"{key}={value}"]
    arguments = [*container.command[1:], *container.args]
    if container.command:
        command += ["--entrypoint", container.command[0]]
    command += ["--", str(container.image), *arguments]

    def stop() -> None:  # killing the client leaves the container running: stop it by name
        for verb in (["kill", name], ["rm", "-f", name]):
            subprocess.run([runtime, *verb], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
                           check=False)

    error = _execute(container.name, command, env={**os.environ}, cwd=dirs.home, dirs=dirs,
                     timeout=settings.step_timeout_seconds, on_timeout=stop)
    return _Outcome(error, runtime)


def _execute(step: str, argv: list[str], *, env: Mapping[str, str], cwd: Path, dirs: _Dirs, timeout: float,
             on_timeout: Callable[[], None] | None) -> str | None:
    """Run one process in its own process group; the error message, or None when it exited 0."""
    stem = secrets.token_hex(4)  # container names are the user's: never let them shape a path
    stdout_path, stderr_path = dirs.logs / f"{stem}.out", dirs.logs / f"{stem}.err"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        try:
            process = subprocess.Popen(argv, env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout,
                                       stderr=stderr, start_new_session=True)
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
    status = f"was killed by signal {-code}" if code < 0 else f"exited {code}"
    return f"container {step!r} {status}" + (f": {tail}" if tail else "")


def _kill_group(process: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group may already be gone
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _tail(path: Path) -> str:
    lines = path.read_bytes().decode("utf-8", "replace").rstrip().splitlines()
    return "\n".join(lines[-_STDERR_TAIL_LINES:])


# -- what this machine can run -----------------------------------------------------------------------------


def sandbox_available() -> bool:
    """True when bubblewrap can build the sandbox used for command steps here (user namespaces allowed)."""
    if shutil.which("bwrap") is None:
        return False
    probe = ["bwrap", "--unshare-all", "--die-with-parent", "--cap-drop", "ALL", *_bwrap_root(),
             "--proc", "/proc", "--dev", "/dev", "--", "true"]
    try:
        return subprocess.run(probe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
                              check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def detect_runtime(preferred: str | None = None) -> str | None:
    """The container runtime to use: `preferred` if it is usable, else podman, else docker. Usable means
    on PATH and answering `info` (a docker CLI without a reachable daemon is not usable). A preferred runtime
    that is not usable gives None rather than silently running something else."""
    for candidate in (preferred,) if preferred else ("podman", "docker"):
        if shutil.which(candidate) is None:
            continue
        try:
            answered = subprocess.run([candidate, "info"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if answered.returncode == 0:
            return candidate
    return None


def image_digest(image: str, runtime: str) -> str | None:
    """The local image's content id (`sha256:...`, the config digest: identical content, identical id) for
    keying a cache, or None when the image is not present locally (nothing is pulled)."""
    try:
        result = subprocess.run([runtime, "image", "inspect", "--format", "{{.Id}}", image],
                                capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    identity = result.stdout.strip()
    if result.returncode != 0 or not identity:
        return None
    return identity if identity.startswith("sha256:") else f"sha256:{identity}"
