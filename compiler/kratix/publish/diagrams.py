"""Diagrams as data, and their text in Mermaid (GitHub renders it inline) and Graphviz DOT.

Every name in a diagram may come from a tenant: a request, a Destination, a reason. No name is ever written as
syntax. Node ids are a letter and a hash of the node's key (so a name like `end`, `graph` or `a-->b` cannot be
read as a keyword or an edge, and ids stay the same when other nodes come and go); labels are quoted, on one
line, and every character outside a small safe set is written as an entity (Mermaid's `#<code>;`) or escaped
(DOT's `\\"` and `\\\\`), so no label can close its quotes, open a new statement or a Markdown fence.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

PROMISE = "promise"
DESTINATION = "destination"
REQUEST = "request"

# Marks: what a node or edge is besides its kind. A graph of the platform uses the first three; a plan's diagram
# of placement changes uses the last three.
PENDING = "pending"
FAILED = "failed"
MISPLACED = "misplaced"
ADDED = "added"
REMOVED = "removed"
MOVED = "moved"
MARKS = (PENDING, FAILED, MISPLACED, ADDED, REMOVED, MOVED)


@dataclass(frozen=True)
class Node:
    key: str  # unique in its graph, e.g. "destination:dev-1"; hashed into the id
    group: str  # promise | destination | request
    label: str  # shown as text, never read as syntax
    mark: str = ""  # "" or one of MARKS


@dataclass(frozen=True)
class Edge:
    source: str  # node keys
    target: str
    mark: str = ""  # "" or one of MARKS; also shown as the edge's label


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]


_GROUP_LETTER = {PROMISE: "P", DESTINATION: "D", REQUEST: "R"}


def node_id(node: Node) -> str:
    """A letter for the group and 12 hex digits of the key's hash: only [A-Z0-9_a-f], never a keyword."""
    digest = hashlib.sha256(node.key.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{_GROUP_LETTER.get(node.group, 'N')}_{digest}"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _shown(node: Node) -> str:
    return f"{_one_line(node.label)} ({node.mark})" if node.mark else _one_line(node.label)


# --- Mermaid --------------------------------------------------------------------------------------------------

_MERMAID_SAFE = re.compile(r"[A-Za-z0-9 .,/:_-]")
_MERMAID_SHAPES = {PROMISE: ('[["', '"]]'), DESTINATION: ('[("', '")]'), REQUEST: ('("', '")')}
_MERMAID_CLASSES = {
    PROMISE: "fill:#e8f0fe,stroke:#3367d6,color:#1a1a1a",
    DESTINATION: "fill:#e6f4ea,stroke:#188038,color:#1a1a1a",
    REQUEST: "fill:#ffffff,stroke:#5f6368,color:#1a1a1a",
    PENDING: "fill:#fef7e0,stroke:#b06000,stroke-dasharray:5 5",
    FAILED: "fill:#fce8e6,stroke:#c5221f,stroke-width:2px",
    MISPLACED: "fill:#fff4e5,stroke:#e8710a,stroke-width:2px",
    ADDED: "fill:#e6f4ea,stroke:#188038,stroke-width:2px",
    REMOVED: "fill:#f1f3f4,stroke:#5f6368,stroke-dasharray:3 3",
    MOVED: "fill:#fff4e5,stroke:#e8710a,stroke-width:2px",
}
# A plain edge is solid; an edge with a mark says it in its label and is dotted unless something arrives.
_MERMAID_ARROWS = {"": "-->", ADDED: "==>", MOVED: "==>"}


def mermaid_text(text: str) -> str:
    """`text` as the inside of a quoted Mermaid label: one line, every character outside letters, digits, space
    and `.,/:_-` written as `#<decimal code>;` (quotes, brackets, `<`, `>`, `|`, `;`, `%`, backticks, `#`)."""
    return "".join(c if _MERMAID_SAFE.fullmatch(c) else f"#{ord(c)};" for c in _one_line(text))


def to_mermaid(graph: Graph, *, direction: str = "LR") -> str:
    """A `flowchart`: one statement a line, the styles it uses, nodes, edges, then each node's classes."""
    used = {name for node in graph.nodes for name in (node.group, node.mark)}
    lines = [
        f"flowchart {direction}",
        *(f"  classDef {name} {style}" for name, style in _MERMAID_CLASSES.items() if name in used),
    ]
    ids = {node.key: node_id(node) for node in graph.nodes}
    for node in graph.nodes:
        opening, closing = _MERMAID_SHAPES.get(node.group, ('["', '"]'))
        lines.append(f"  {ids[node.key]}{opening}{mermaid_text(_shown(node))}{closing}")
    for edge in graph.edges:
        arrow = _MERMAID_ARROWS.get(edge.mark, "-.->")
        label = f'|"{mermaid_text(edge.mark)}"|' if edge.mark else ""
        lines.append(f"  {ids[edge.source]} {arrow}{label} {ids[edge.target]}")
    for name in (PROMISE, DESTINATION, REQUEST, *MARKS):
        members = [ids[n.key] for n in graph.nodes if name in (n.group, n.mark)]
        if members:
            lines.append(f"  class {','.join(members)} {name}")
    return "\n".join(lines) + "\n"


# --- Graphviz DOT ---------------------------------------------------------------------------------------------

_DOT_SHAPES = {PROMISE: "component", DESTINATION: "cylinder", REQUEST: "box"}
_DOT_NODE_STYLE = {
    "": 'style="rounded,filled", fillcolor="#ffffff", color="#5f6368"',
    PENDING: 'style="rounded,filled,dashed", fillcolor="#fef7e0", color="#b06000"',
    FAILED: 'style="rounded,filled,bold", fillcolor="#fce8e6", color="#c5221f"',
    MISPLACED: 'style="rounded,filled,bold", fillcolor="#fff4e5", color="#e8710a"',
    ADDED: 'style="rounded,filled,bold", fillcolor="#e6f4ea", color="#188038"',
    REMOVED: 'style="rounded,filled,dashed", fillcolor="#f1f3f4", color="#5f6368"',
    MOVED: 'style="rounded,filled,bold", fillcolor="#fff4e5", color="#e8710a"',
}
_DOT_GROUP_FILL = {PROMISE: "#e8f0fe", DESTINATION: "#e6f4ea"}
_DOT_EDGE_STYLE = {
    PENDING: ', style=dashed, color="#b06000"',
    FAILED: ', style=dashed, color="#c5221f"',
    MISPLACED: ', style=bold, color="#e8710a"',
    ADDED: ', style=bold, color="#188038"',
    REMOVED: ', style=dashed, color="#5f6368"',
    MOVED: ', style=bold, color="#e8710a"',
}


def dot_text(text: str) -> str:
    """`text` as a DOT double-quoted string's inside: one line, `\\` and `"` escaped (a backslash would otherwise
    start an escape such as `\\N`), other control characters dropped."""
    cleaned = "".join(c for c in _one_line(text) if c.isprintable())
    return cleaned.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(graph: Graph, *, direction: str = "LR") -> str:
    ids = {node.key: node_id(node) for node in graph.nodes}
    lines = [
        "digraph kratix {",
        f"  rankdir={direction};",
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for node in graph.nodes:
        style = _DOT_NODE_STYLE.get(node.mark, _DOT_NODE_STYLE[""])
        if not node.mark and node.group in _DOT_GROUP_FILL:
            style = f'style="filled", fillcolor="{_DOT_GROUP_FILL[node.group]}", color="#3c4043"'
        classes = " ".join(c for c in (node.group, node.mark) if c)
        shape = _DOT_SHAPES.get(node.group, "box")
        lines.append(
            f'  "{ids[node.key]}" [label="{dot_text(_shown(node))}", shape={shape}, class="{classes}", {style}];'
        )
    for edge in graph.edges:
        attributes = (
            f' [label="{dot_text(edge.mark)}", class="{edge.mark}"{_DOT_EDGE_STYLE.get(edge.mark, "")}]'
            if edge.mark
            else ""
        )
        lines.append(f'  "{ids[edge.source]}" -> "{ids[edge.target]}"{attributes};')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(graph: Graph, output_format: str) -> str:
    if output_format == "dot":
        return to_dot(graph)
    if output_format == "mermaid":
        return to_mermaid(graph)
    raise ValueError(f"unknown diagram format {output_format!r}")


def unique(nodes: Sequence[Node]) -> tuple[Node, ...]:
    """Nodes in order, each key once (the first wins)."""
    seen: dict[str, Node] = {}
    for node in nodes:
        seen.setdefault(node.key, node)
    return tuple(seen.values())
