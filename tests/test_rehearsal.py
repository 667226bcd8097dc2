"""A rehearsal of a platform team's day, through the real `kratix` command and real Git repos.

The platform repo holds this repo's sample platform on `main`, published once to a bare output repo. A pull
request branch scales one postgres request up and adds another; a second branch breaks a request. The PR is
validated and planned (the plan is what the PR comment shows), then merged and published. Where our GitHub
workflows and composite action run shell scripts, the rehearsal runs those very scripts, taken from the YAML,
with the variables GitHub would give them.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CHANGED = "worker-1/resources/team-a/postgres/acid-minimal-cluster/instance/postgresql.yaml"
ADDED = "worker-1/resources/team-a/postgres/reports-db/instance/postgresql.yaml"
MARKER = "<!-- kratix-plan -->"

NEW_REQUEST = """\
apiVersion: example.promise.syntasso.io/v1
kind: postgres
metadata:
  name: reports-db
  namespace: team-a
spec:
  team: reports
"""


@dataclass(frozen=True)
class Rehearsal:
    platform: Path  # work tree on main
    output: Path  # bare output repo, published once from main
    bin: Path  # holds a `kratix` that runs this checkout's code
    env: dict[str, str]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=_git_env()
    ).stdout.strip()


def _git_env() -> dict[str, str]:
    # A pinned author and date keep commits reproducible; inherited GIT_* would point at another repo.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return {
        **env,
        "GIT_AUTHOR_NAME": "Platform Team",
        "GIT_AUTHOR_EMAIL": "platform@example.com",
        "GIT_COMMITTER_NAME": "Platform Team",
        "GIT_COMMITTER_EMAIL": "platform@example.com",
        "GIT_AUTHOR_DATE": "2024-05-01T12:00:00Z",
        "GIT_COMMITTER_DATE": "2024-05-01T12:00:00Z",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def kratix(rehearsal: Rehearsal, *args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kratix", *args],
        cwd=cwd or rehearsal.platform,
        capture_output=True,
        text=True,
        env={**rehearsal.env, **env},
        timeout=120,
    )


def output_log(output: Path) -> list[str]:
    return git(output, "rev-list", "main").splitlines()


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Rehearsal:
    root = tmp_path_factory.mktemp("rehearsal")
    # Subprocesses find `kratix` as a user would, running the code of this checkout with this interpreter.
    bin_dir = root / "bin"
    bin_dir.mkdir()
    (bin_dir / "kratix").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m kratix.cli "$@"\n')
    (bin_dir / "kratix").chmod(0o755)
    # A home of its own: kratix's git must not meet this machine's credential helpers or its mirror cache.
    home = root / "home"
    home.mkdir()
    env = {**_git_env(), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(home)}
    env.pop("XDG_CACHE_HOME", None)
    env.pop("GITHUB_ACTIONS", None)

    platform = root / "platform"
    platform.mkdir()
    git(platform, "init", "-q", "-b", "main")
    for folder in ("promises", "clusters", "requests"):
        shutil.copytree(REPO / folder, platform / folder)
    commit_all(platform, "The sample platform")
    output = root / "output.git"
    git(root, "init", "-q", "--bare", str(output))
    made = Rehearsal(platform, output, bin_dir, env)
    first = kratix(made, "compile", ".", "--ref", "main", "--output-repo", str(output))
    assert first.returncode == 0, first.stderr

    git(platform, "checkout", "-q", "-b", "pr")
    request = platform / "requests" / "team-a" / "acid-minimal-cluster.yaml"
    request.write_text(request.read_text() + "  instances: 3\n")
    (platform / "requests" / "team-a" / "reports-db.yaml").write_text(NEW_REQUEST)
    commit_all(platform, "Scale acid up; a database for reports")

    git(platform, "checkout", "-q", "-b", "broken", "main")
    orders = platform / "requests" / "team-b" / "orders-db.yaml"
    orders.write_text(orders.read_text().replace("instances: 3", "instances: 9"))
    commit_all(platform, "Too many instances")
    git(platform, "checkout", "-q", "main")
    return made


def test_first_publish_made_one_commit_naming_its_source(rehearsal: Rehearsal):
    assert len(output_log(rehearsal.output)) == 1
    message = git(rehearsal.output, "log", "-1", "--format=%B", "main")
    assert f"Source-Commit: {git(rehearsal.platform, 'rev-parse', 'main')}" in message


def test_pr_branch_validates(rehearsal: Rehearsal):
    done = kratix(rehearsal, "validate", ".", "--ref", "pr")
    assert done.returncode == 0, done.stderr


def test_plan_names_the_changed_and_added_requests_and_publishes_nothing(rehearsal: Rehearsal):
    before = output_log(rehearsal.output)
    done = kratix(rehearsal, "plan", ".", "--ref", "pr", "--output-repo", str(rehearsal.output), "--format", "markdown")
    assert done.returncode == 0, done.stderr
    assert CHANGED in done.stdout and ADDED in done.stdout
    assert "-  numberOfInstances: 2" in done.stdout and "+  numberOfInstances: 3" in done.stdout
    assert output_log(rehearsal.output) == before


def test_plan_of_an_unchanged_platform_shows_no_file_changes(rehearsal: Rehearsal):
    done = kratix(rehearsal, "plan", ".", "--ref", "main", "--output-repo", str(rehearsal.output))
    assert done.returncode == 0, done.stderr
    assert CHANGED not in done.stdout and ADDED not in done.stdout


def test_broken_branch_fails_with_the_requests_file_and_line(rehearsal: Rehearsal):
    done = kratix(rehearsal, "validate", ".", "--ref", "broken")
    assert done.returncode == 1
    assert "requests/team-b/orders-db.yaml:10:" in done.stderr and "spec.instances" in done.stderr
    assert "::error" not in done.stdout + done.stderr  # annotations only inside GitHub Actions

    annotated = kratix(rehearsal, "validate", ".", "--ref", "broken", GITHUB_ACTIONS="true")
    assert annotated.returncode == 1
    assert "::error file=requests/team-b/orders-db.yaml,line=10," in annotated.stderr


def test_plan_of_a_broken_branch_exits_1(rehearsal: Rehearsal):
    done = kratix(rehearsal, "plan", ".", "--ref", "broken", "--output-repo", str(rehearsal.output))
    assert done.returncode == 1
    assert "requests/team-b/orders-db.yaml:10:" in done.stderr


def test_merge_publishes_exactly_one_commit_naming_the_merged_commit(rehearsal: Rehearsal, tmp_path: Path):
    # On copies: the other tests read the originals.
    platform, output = tmp_path / "platform", tmp_path / "output.git"
    shutil.copytree(rehearsal.platform, platform)
    shutil.copytree(rehearsal.output, output)
    git(platform, "merge", "-q", "--ff-only", "pr")
    merged = git(platform, "rev-parse", "main")
    before = output_log(output)

    done = kratix(rehearsal, "compile", ".", "--ref", "main", "--output-repo", str(output), cwd=platform)
    assert done.returncode == 0, done.stderr
    after = output_log(output)
    assert after[1:] == before and len(after) == len(before) + 1
    assert f"Source-Commit: {merged}" in git(output, "log", "-1", "--format=%(trailers)", "main")
    rendered = yaml.safe_load(git(output, "show", f"main:{CHANGED}"))
    assert rendered["spec"]["numberOfInstances"] == 3
    assert yaml.safe_load(git(output, "show", f"main:{ADDED}"))["spec"]["teamId"] == "reports"

    again = kratix(rehearsal, "compile", ".", "--ref", "main", "--output-repo", str(output), cwd=platform)
    assert again.returncode == 0, again.stderr
    assert output_log(output) == after  # nothing changed: no empty commit


# --- the scripts our workflows and action run, run here as GitHub would run them ----------------------------


def step_script(path: Path, name: str) -> str:
    document = yaml.load(path.read_text(), Loader=yaml.BaseLoader)
    jobs = document.get("jobs") or {"action": document["runs"]}
    steps = [step for job in jobs.values() for step in job["steps"] if step.get("name") == name]
    assert len(steps) == 1, f"{path.name}: no single step named {name!r}"
    return steps[0]["run"]


def run_step(
    rehearsal: Rehearsal, script: str, tmp_path: Path, *, cwd: Path, sha: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Runs one step's script with the shell and files GitHub gives a step; returns it and RUNNER_TEMP."""
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir(exist_ok=True)
    outputs, summary = tmp_path / "output.txt", tmp_path / "summary.md"
    outputs.touch()  # GitHub creates both files empty before each step
    summary.touch()
    github = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_SHA": sha,
        "GITHUB_REPOSITORY": "acme/platform",
        "RUNNER_TEMP": str(runner_temp),
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GIT_ASKPASS": str(runner_temp / "kratix-askpass.sh"),
        "PLAN_FILE": str(runner_temp / "plan.md"),
    }
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env={**rehearsal.env, **github, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done, runner_temp


PR_WORKFLOW = REPO / ".github" / "workflows" / "platform-pr.yml"
PUBLISH_WORKFLOW = REPO / ".github" / "workflows" / "platform-publish.yml"
ACTION = REPO / "action.yml"


def pr_job(rehearsal: Rehearsal, tmp_path: Path, branch: str) -> tuple[int, Path]:
    """The pull-request job's Validate and Plan steps, as GitHub runs them; the results folder it uploads."""
    sha = git(rehearsal.platform, "rev-parse", branch)
    base = git(rehearsal.platform, "rev-parse", "main")
    validated, _ = run_step(
        rehearsal,
        step_script(PR_WORKFLOW, "Validate"),
        tmp_path,
        cwd=rehearsal.platform,
        sha=sha,
        RESULTS=str(tmp_path / "results"),
    )
    (tmp_path / "step.log").write_text(validated.stdout + validated.stderr)
    planned, _ = run_step(
        rehearsal,
        step_script(PR_WORKFLOW, "Plan"),
        tmp_path,
        cwd=rehearsal.platform,
        sha=sha,
        RESULTS=str(tmp_path / "results"),
        BASE_SHA=base,
    )
    assert planned.returncode == 0, planned.stderr
    return validated.returncode, tmp_path / "results"


def test_pr_job_plans_against_the_base_commit_without_the_output_repo(rehearsal: Rehearsal, tmp_path: Path):
    code, results = pr_job(rehearsal, tmp_path, "pr")
    assert code == 0
    assert json.loads((results / "validate.json").read_text())["summary"]["failed"] == 0
    changes = {c["path"]: c["change"] for c in json.loads((results / "plan.json").read_text())["plan"]["changes"]}
    assert changes == {CHANGED: "changed", ADDED: "added", "worker-1/resources/kustomization.yaml": "changed"}
    assert (results / "merge-sha.txt").read_text().strip() == git(rehearsal.platform, "rev-parse", "pr")


def test_pr_job_records_validation_errors_for_the_comment(rehearsal: Rehearsal, tmp_path: Path):
    code, results = pr_job(rehearsal, tmp_path, "broken")
    assert code == 1  # the check fails, and the results are still uploaded for the comment
    assert "::error file=requests/team-b/orders-db.yaml,line=10," in (tmp_path / "step.log").read_text()
    errors = [d for d in json.loads((results / "validate.json").read_text())["diagnostics"] if d["severity"] == "error"]
    assert [(d["file"], d["line"]) for d in errors] == [("requests/team-b/orders-db.yaml", 10)]


def test_pr_workflow_needs_no_secret_and_never_runs_on_pull_request_target():
    text = PR_WORKFLOW.read_text()
    document = yaml.load(text, Loader=yaml.BaseLoader)
    assert list(document["on"]) == ["pull_request"]
    assert document["permissions"] == {"contents": "read"}
    assert "secrets." not in text and "--no-step-network" in text


def test_publish_workflow_publishes_the_pushed_commit(rehearsal: Rehearsal, tmp_path: Path):
    platform, output = tmp_path / "platform", tmp_path / "output.git"
    shutil.copytree(rehearsal.platform, platform)
    shutil.copytree(rehearsal.output, output)
    git(platform, "merge", "-q", "--ff-only", "pr")
    pushed = git(platform, "rev-parse", "main")
    script = step_script(PUBLISH_WORKFLOW, "Compile and publish")
    done, _ = run_step(
        rehearsal,
        script,
        tmp_path,
        cwd=platform,
        sha=pushed,
        KRATIX_OUTPUT_REPO=str(output),
        KRATIX_OUTPUT_BRANCH="main",
        KRATIX_GIT_TOKEN="s3cr3t-t0ken",
    )
    assert done.returncode == 0, done.stderr
    assert "s3cr3t" not in done.stdout + done.stderr
    assert f"Source-Commit: {pushed}" in git(output, "log", "-1", "--format=%B", "main")


def test_publish_workflow_refuses_to_run_unconfigured(rehearsal: Rehearsal, tmp_path: Path):
    done, _ = run_step(
        rehearsal,
        step_script(PUBLISH_WORKFLOW, "Compile and publish"),
        tmp_path,
        cwd=rehearsal.platform,
        sha=git(rehearsal.platform, "rev-parse", "main"),
        KRATIX_OUTPUT_REPO="",
        KRATIX_OUTPUT_BRANCH="main",
    )
    assert done.returncode == 1
    assert "::error" in done.stdout and "KRATIX_OUTPUT_REPO" in done.stdout


@pytest.mark.parametrize(
    ("command", "ref", "exit_code"),
    [("validate", "pr", 0), ("validate", "broken", 1), ("plan", "pr", 0), ("dance", "pr", 2)],
)
def test_action_runs_the_command_it_is_given(
    rehearsal: Rehearsal, tmp_path: Path, command: str, ref: str, exit_code: int
):
    sha = git(rehearsal.platform, "rev-parse", ref)
    done, temp = run_step(
        rehearsal,
        step_script(ACTION, "Run kratix"),
        tmp_path,
        cwd=rehearsal.platform,
        sha=sha,
        KRATIX_COMMAND=command,
        KRATIX_REF=sha,
        KRATIX_OUTPUT_REPO=str(rehearsal.output),
        KRATIX_OUTPUT_BRANCH="main",
        KRATIX_GIT_TOKEN="",
    )
    assert done.returncode == exit_code, done.stdout + done.stderr
    if command == "plan":
        assert f"plan-file={temp / 'plan.md'}" in (tmp_path / "output.txt").read_text()
        assert ADDED in (temp / "plan.md").read_text()
    if ref == "broken":
        assert "::error file=requests/team-b/orders-db.yaml,line=10," in done.stderr


# --- the token over HTTPS-like auth: git gets it from GIT_ASKPASS, nothing stores it ------------------------


class _GitOverHttp(http.server.BaseHTTPRequestHandler):
    """Git's smart HTTP protocol through `git http-backend`, behind Basic auth, as a Git host serves it."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:  # keep pytest's output clean
        pass

    def _serve(self) -> None:
        server: _Host = self.server  # type: ignore[assignment]
        wanted = "Basic " + base64.b64encode(f"x-access-token:{server.token}".encode()).decode()
        if self.headers.get("Authorization") != wanted:
            server.refused += 1
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        server.served += 1
        path, _, query = self.path.partition("?")
        body = self._body()
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "x-access-token",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
        }
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        headers = [line.split(":", 1) for line in head.decode().splitlines() if ":" in line]
        status = next((int(v.split()[0]) for k, v in headers if k.lower() == "status"), 200)
        self.send_response(status)
        for key, value in headers:
            if key.lower() != "status":
                self.send_header(key, value.strip())
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        self.rfile.readline()
        return b"".join(chunks)


class _Host(http.server.ThreadingHTTPServer):
    def __init__(self, root: Path, token: str) -> None:
        super().__init__(("127.0.0.1", 0), _GitOverHttp)
        self.root, self.token, self.refused, self.served = root, token, 0, 0


@pytest.fixture
def git_host(rehearsal: Rehearsal, tmp_path: Path):
    root = tmp_path / "host"
    root.mkdir()
    shutil.copytree(rehearsal.output, root / "output.git")
    host = _Host(root, "s3cr3t-t0ken")
    thread = threading.Thread(target=host.serve_forever, daemon=True)
    thread.start()
    try:
        yield host
    finally:
        host.shutdown()
        host.server_close()


def test_publish_workflow_authenticates_with_the_token_and_stores_it_nowhere(
    rehearsal: Rehearsal, git_host: _Host, tmp_path: Path
):
    platform = tmp_path / "platform"
    shutil.copytree(rehearsal.platform, platform)
    git(platform, "merge", "-q", "--ff-only", "pr")
    pushed = git(platform, "rev-parse", "main")
    url = f"http://127.0.0.1:{git_host.server_address[1]}/output.git"
    cache = tmp_path / "cache"
    script = step_script(PUBLISH_WORKFLOW, "Compile and publish")

    wrong, _ = run_step(
        rehearsal,
        script,
        tmp_path,
        cwd=platform,
        sha=pushed,
        KRATIX_OUTPUT_REPO=url,
        KRATIX_OUTPUT_BRANCH="main",
        KRATIX_GIT_TOKEN="not-the-token",
        XDG_CACHE_HOME=str(cache),
    )
    assert wrong.returncode == 1 and git_host.refused > 0 and git_host.served == 0
    assert "not-the-token" not in wrong.stdout + wrong.stderr

    done, temp = run_step(
        rehearsal,
        script,
        tmp_path,
        cwd=platform,
        sha=pushed,
        KRATIX_OUTPUT_REPO=url,
        KRATIX_OUTPUT_BRANCH="main",
        KRATIX_GIT_TOKEN="s3cr3t-t0ken",
        XDG_CACHE_HOME=str(cache),
    )
    assert done.returncode == 0, done.stderr
    assert git_host.served > 0
    published = git_host.root / "output.git"
    assert f"Source-Commit: {pushed}" in git(published, "log", "-1", "--format=%B", "main")
    assert "s3cr3t" not in done.stdout + done.stderr
    for place in (cache, temp, platform / ".git"):
        for path in place.rglob("*"):
            assert not path.is_file() or b"s3cr3t" not in path.read_bytes(), path
