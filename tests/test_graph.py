"""`kratix graph`: Promises → destinations → requests as Mermaid and DOT, end to end on real Git repos.

The output is parsed rather than compared with a stored text: by a strict grammar of what kratix writes, and by
the real parsers where they are installed, Graphviz's `dot` (Debian's graphviz) and Mermaid's own (npm, run by
node with jsdom standing in for a browser):

    npm install --prefix ~/.cache/kratix-tests/mermaid --no-audit --no-fund mermaid@11.17.2 jsdom@29.1.1

The tests check which edges exist and how nodes are marked.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kratix.publish import diagrams
from tests.gitrepos import commit_files, init_repo, make_repo
from tests.platforms import database, destination, kratix, platform_files

_ID = r"(?:[PDR]_[0-9a-f]{12}|n[0-9]+)"  # kratix's hashed ids; the PR comment script's counters
_MERMAID_NODE = re.compile(rf'  ({_ID})(\[\[|\[\(|\()"([^"]*)"(\]\]|\)\]|\))')
_MERMAID_EDGE = re.compile(rf'  ({_ID}) (-->|==>|-\.->)(?:\|"([^"]*)"\|)? ({_ID})')
_MERMAID_CLASS = re.compile(rf"  class ({_ID}(?:,{_ID})*) ([a-z]+)")
_MERMAID_CLASSDEF = re.compile(r"  classDef [a-z]+ [-a-z]+:[#0-9a-z]+(?:,[-a-z]+:[#0-9a-z ]+)*")
_SHAPES = {("[[", "]]"): "promise", ("[(", ")]"): "destination", ("(", ")"): "request"}


@dataclass
class Picture:
    labels: dict[str, str] = field(default_factory=dict)  # id -> label as a reader sees it
    groups: dict[str, str] = field(default_factory=dict)  # id -> promise | destination | request
    classes: dict[str, set[str]] = field(default_factory=dict)  # id -> classes
    edges: set[tuple[str, str, str]] = field(default_factory=set)  # (source label, target label, mark)

    def node(self, label: str) -> str:
        found = [i for i, shown in self.labels.items() if shown.split(" (")[0] == label]
        assert len(found) == 1, f"{label!r}: {found} in {self.labels}"
        return found[0]

    def marks(self, label: str) -> set[str]:
        return self.classes.get(self.node(label), set()) - {"promise", "destination", "request"}


def parse_mermaid(text: str) -> Picture:
    """Every line must be one statement of the forms kratix writes, else the text was broken or injected."""
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    picture, edges = Picture(), []
    for line in lines[1:]:
        if node := _MERMAID_NODE.fullmatch(line):
            identifier, opening, label, closing = node.groups()
            assert identifier not in picture.labels, f"node {identifier} defined twice"
            picture.labels[identifier] = re.sub(r"#(\d+);", lambda m: chr(int(m[1])), label)
            picture.groups[identifier] = _SHAPES[(opening, closing)]
        elif edge := _MERMAID_EDGE.fullmatch(line):
            edges.append((edge[1], edge[4], edge[3] or "", edge[2]))
        elif found := _MERMAID_CLASS.fullmatch(line):
            for identifier in found[1].split(","):
                picture.classes.setdefault(identifier, set()).add(found[2])
        else:
            assert _MERMAID_CLASSDEF.fullmatch(line), f"not a statement kratix writes: {line!r}"
    for source, target, mark, arrow in edges:
        assert (arrow == "-->") == (mark == ""), f"{arrow} {mark}"
        picture.edges.add((picture.labels[source].split(" (")[0], picture.labels[target].split(" (")[0], mark))
    assert set(picture.classes) <= set(picture.labels), "a class names an unknown node"
    return picture


_DOT_NODE = re.compile(rf'  "({_ID})" \[label="((?:[^"\\]|\\.)*)", shape=([a-z]+), class="([a-z ]+)", .*\];')
_DOT_EDGE = re.compile(rf'  "({_ID})" -> "({_ID})"(?: \[label="([a-z]+)", class="[a-z]+", .*\])?;')


def parse_dot(text: str) -> Picture:
    lines = text.splitlines()
    assert lines[0] == "digraph kratix {" and lines[-1] == "}"
    picture, edges = Picture(), []
    for line in lines[1:-1]:
        if node := _DOT_NODE.fullmatch(line):
            identifier, label, _shape, classes = node.groups()
            picture.labels[identifier] = re.sub(r"\\(.)", r"\1", label)
            picture.groups[identifier], *marks = classes.split()
            picture.classes[identifier] = {picture.groups[identifier], *marks}
        elif edge := _DOT_EDGE.fullmatch(line):
            edges.append((edge[1], edge[2], edge[3] or ""))
        else:
            assert line.startswith(("  rankdir=", "  node [", "  edge [")), f"not a statement kratix writes: {line!r}"
    picture.edges = {(picture.labels[s].split(" (")[0], picture.labels[t].split(" (")[0], m) for s, t, m in edges}
    return picture


def graphviz_json(text: str) -> dict:
    """The graph as Graphviz itself parses it."""
    done = subprocess.run(["dot", "-Tjson0"], input=text, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def graphviz_texts(text: str) -> set[str]:
    """Every text Graphviz draws (node and edge labels), as a reader sees it."""
    done = subprocess.run(["dot", "-Tsvg"], input=text, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return {html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", done.stdout)}


MERMAID_PACKAGES = ("mermaid@11.17.2", "jsdom@29.1.1")
MERMAID_DIR = Path(os.environ.get("KRATIX_MERMAID_DIR", Path.home() / ".cache" / "kratix-tests" / "mermaid"))

# Reads a JSON list of diagram texts on stdin; prints, for each, what Mermaid's own parser made of it: the nodes
# (id, text, classes) and edges (start, end, text), or the parse error.
_MERMAID_SCRIPT = """
const { createRequire } = require('module');
const { pathToFileURL } = require('url');
const path = require('path');
const local = createRequire(path.join(process.argv[2], 'package.json'));
const { JSDOM } = local('jsdom');
const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
(async () => {
  const { default: mermaid } = await import(pathToFileURL(local.resolve('mermaid')).href);
  mermaid.initialize({ startOnLoad: false, securityLevel: 'strict' });
  const texts = JSON.parse(require('fs').readFileSync(0, 'utf8'));
  const results = [];
  for (const text of texts) {
    try {
      const diagram = await mermaid.mermaidAPI.getDiagramFromText(text);
      const vertices = diagram.db.getVertices();
      results.push({
        type: diagram.type,
        nodes: [...(vertices instanceof Map ? vertices.values() : Object.values(vertices))]
          .map((n) => ({ id: n.id, text: n.text, classes: n.classes })),
        edges: diagram.db.getEdges().map((e) => ({ start: e.start, end: e.end, text: e.text })),
      });
    } catch (error) { results.push({ error: String(error.message) }); }
  }
  process.stdout.write(JSON.stringify(results));
  process.exit(0);
})();
"""


@pytest.fixture(scope="session", name="mermaid")
def mermaid_fixture(tmp_path_factory: pytest.TempPathFactory):
    """A function parsing Mermaid texts with Mermaid itself; the npm packages are installed into a cache once."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to parse diagrams with Mermaid's own parser (apt-get install nodejs npm)")
    wanted = dict(spec.rsplit("@", 1) for spec in MERMAID_PACKAGES)
    manifests = {name: MERMAID_DIR / "node_modules" / name / "package.json" for name in wanted}
    if any(not m.is_file() or json.loads(m.read_text())["version"] != wanted[n] for n, m in manifests.items()):
        installed = subprocess.run(
            [npm, "install", "--prefix", str(MERMAID_DIR), "--no-audit", "--no-fund", *MERMAID_PACKAGES],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert installed.returncode == 0, f"npm install of mermaid failed:\n{installed.stderr}"
    script = tmp_path_factory.mktemp("mermaid") / "parse.cjs"
    script.write_text(_MERMAID_SCRIPT)

    def parse(texts: list[str]) -> list[dict]:
        done = subprocess.run(
            [node, str(script), str(MERMAID_DIR)], input=json.dumps(texts), capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    return parse


def mermaid_text(text: str) -> str:
    """A label as Mermaid's parser keeps it (its entities as placeholders), as a reader sees it once drawn."""
    return re.sub(r"ﬂ°°(\d+)¶ß", lambda m: chr(int(m[1])), text)


def as_mermaid_sees_it(parsed: dict) -> Picture:
    """Mermaid's own parse of a diagram as a `Picture` (without classes: those are checked by the grammar)."""
    assert "error" not in parsed, parsed
    assert parsed["type"].startswith("flowchart")
    picture = Picture()
    for node in parsed["nodes"]:
        picture.labels[node["id"]] = mermaid_text(node["text"])
        picture.classes[node["id"]] = set(node["classes"])
    picture.edges = {
        (
            picture.labels[e["start"]].split(" (")[0],
            picture.labels[e["end"]].split(" (")[0],
            mermaid_text(e["text"] or ""),
        )
        for e in parsed["edges"]
    }
    return picture


def publish(platform: Path, output: Path) -> None:
    done = kratix("compile", str(platform), "--ref", "HEAD", "--output-repo", str(output))
    assert done.returncode == 0, done.stderr


@pytest.fixture
def moved_platform(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """Two requests published on the dev destinations, then both dev destinations relabelled (so the two are
    misplaced), one request added that nothing matches now (pending) and one that is invalid (failed)."""
    platform, _ = make_repo(
        tmp_path / "platform", platform_files(**{"team-a/web": database("web"), "team-a/end": database("end")})
    )
    output = init_repo(tmp_path / "output.git", bare=True)
    publish(platform, output)
    first = parse_mermaid(kratix("graph", str(platform), "--output-repo", str(output)).stdout)
    where = {request: source for source, request, mark in first.edges if source.startswith("dev-")}
    assert set(where) == {"Database team-a/web", "Database team-a/end"}
    commit_files(
        platform,
        {
            "clusters/dev-1.yaml": destination("dev-1", {"env": "staging"}),
            "clusters/dev-2.yaml": destination("dev-2", {"env": "staging"}),
            "requests/team-a/late.yaml": database("late"),
            "requests/team-a/bad.yaml": database("bad", size="large"),  # its CEL rule needs 2 replicas
        },
    )
    return platform, output, where


def test_graph_marks_misplaced_pending_and_failed_requests(moved_platform, mermaid) -> None:
    platform, output, where = moved_platform
    done = kratix("graph", str(platform), "--output-repo", str(output))
    assert done.returncode == 1  # the invalid request: reported on stderr, drawn in the graph
    assert "large databases need at least 2 replicas" in done.stderr
    picture = parse_mermaid(done.stdout)
    seen = as_mermaid_sees_it(mermaid([done.stdout])[0])
    assert seen.edges == picture.edges and seen.labels == picture.labels and seen.classes == picture.classes
    assert {picture.groups[picture.node(n)] for n in ("database",)} == {"promise"}
    assert {picture.groups[picture.node(n)] for n in ("dev-1", "dev-2", "prod-1")} == {"destination"}
    for request, on in where.items():
        assert (on, request, "misplaced") in picture.edges
        assert picture.marks(request) == {"misplaced"}
        assert ("database", on) in {(s, t) for s, t, m in picture.edges if m == ""}  # the Promise reaches it
    assert ("database", "Database team-a/late", "pending") in picture.edges
    assert picture.marks("Database team-a/late") == {"pending"}
    assert ("database", "Database team-a/bad", "failed") in picture.edges
    assert picture.marks("Database team-a/bad") == {"failed"}
    assert not any(t == "prod-1" for _, t, _ in picture.edges)  # nothing of the database Promise goes to prod


def test_graph_without_an_output_repo_shows_where_a_first_publish_places(tmp_path: Path) -> None:
    platform, _ = make_repo(
        tmp_path / "platform", platform_files(**{"team-a/web": database("web"), "team-b/db": database("db")})
    )
    done = kratix("graph", str(platform))
    assert done.returncode == 0, done.stderr
    picture = parse_mermaid(done.stdout)
    # The Promise's dependencies go to both dev destinations; each request to exactly one of them.
    assert {("database", "dev-1", ""), ("database", "dev-2", "")} <= picture.edges
    for request in ("Database team-a/web", "Database team-b/db"):
        sources = [s for s, t, m in picture.edges if t == request]
        assert len(sources) == 1 and sources[0] in ("dev-1", "dev-2") and picture.marks(request) == set()


def test_graph_as_dot_has_the_same_structure(moved_platform) -> None:
    platform, output, where = moved_platform
    mermaid = parse_mermaid(kratix("graph", str(platform), "--output-repo", str(output)).stdout)
    done = kratix("graph", str(platform), "--output-repo", str(output), "--format", "dot")
    dot = parse_dot(done.stdout)
    assert dot.edges == mermaid.edges
    assert sorted(dot.labels.values()) == sorted(mermaid.labels.values())
    assert dot.marks("Database team-a/late") == {"pending"} and dot.marks("Database team-a/bad") == {"failed"}
    if shutil.which("dot") is None:
        pytest.skip("Graphviz is not installed (apt-get install graphviz): the DOT was checked by pattern only")
    parsed = graphviz_json(done.stdout)
    names = {o["_gvid"]: o["name"] for o in parsed["objects"]}
    assert graphviz_texts(done.stdout) == {*dot.labels.values(), *(m for _, _, m in dot.edges if m)}
    assert {(names[e["tail"]], names[e["head"]]) for e in parsed["edges"]} == {
        (dot.node(s), dot.node(t)) for s, t, _ in dot.edges
    }


HOSTILE = [
    'quo"te',
    "brack[et]s",
    "a-->b",
    "two\nlines",
    "back\\slash \\N",
    "end",
    "pipe|x",
    "semi;colon %% c",
    "`fence```",
    "<b>html</b>",
    "{curly}",
    "#35; entity",
    "subgraph",
    "click x call y()",
    ']]"); drop',
]


@pytest.mark.parametrize("output_format", ["mermaid", "dot"])
def test_no_name_can_break_or_inject_into_the_diagram(output_format: str, request: pytest.FixtureRequest) -> None:
    """Names as hostile as a tenant could make them (kratix refuses most at load, but the diagram must not rely
    on that): every statement still parses, each name comes back as text, and nothing else appears."""
    nodes = [
        diagrams.Node(f"{group}:{name}", group, name, mark)
        for index, name in enumerate(HOSTILE)
        for group, mark in ((diagrams.PROMISE, ""), (diagrams.REQUEST, diagrams.MARKS[index % 6]))
    ]
    edges = [
        diagrams.Edge(f"promise:{name}", f"request:{name}", diagrams.MARKS[index % 6])
        for index, name in enumerate(HOSTILE)
    ]
    text = diagrams.render(diagrams.Graph(tuple(nodes), tuple(edges)), output_format)
    picture = parse_mermaid(text) if output_format == "mermaid" else parse_dot(text)
    shown = {" ".join(name.split()) for name in HOSTILE}
    assert {label.split(" (")[0] for label in picture.labels.values()} == shown
    assert len(picture.labels) == 2 * len(HOSTILE)
    assert len(picture.edges) == len(HOSTILE)
    # It cannot close a Markdown fence it is put in: no line starts with a backtick or tilde.
    assert not any(line.lstrip().startswith(("`", "~")) for line in text.splitlines())
    if output_format == "mermaid":
        assert "`" not in text
        seen = as_mermaid_sees_it(request.getfixturevalue("mermaid")([text])[0])
        assert seen.labels == picture.labels and seen.edges == picture.edges
    if output_format == "dot" and shutil.which("dot") is not None:
        assert len(graphviz_json(text)["edges"]) == len(HOSTILE)
        assert graphviz_texts(text) == {*picture.labels.values(), *(m for _, _, m in picture.edges)}


def test_mermaid_check_can_fail(mermaid) -> None:
    """What a label that is not escaped does: Mermaid refuses the text, or reads another graph."""
    broken, injected = mermaid(['flowchart LR\n  A("x") --> B")\n', 'flowchart LR\n  A("x") --> B\n  A --> C\n'])
    assert "error" in broken
    assert len(injected["edges"]) == 2


def test_a_request_named_to_inject_is_refused_and_the_graph_still_parses(tmp_path: Path) -> None:
    hostile = 'x"]-->P_000000000000\nclick'
    platform, _ = make_repo(
        tmp_path / "platform",
        {
            **platform_files(**{"team-a/web": database("web"), "team-a/end": database("end")}),
            "requests/team-a/hostile.yaml": database(hostile),
        },
    )
    done = kratix("graph", str(platform))
    assert done.returncode == 1 and "DNS-1123" in done.stderr, done.stderr
    picture = parse_mermaid(done.stdout)
    assert "Database team-a/end" in {label.split(" (")[0] for label in picture.labels.values()}
    assert not any("P_000000000000" in label or "click" in label for label in picture.labels.values())
