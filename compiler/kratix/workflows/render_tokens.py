"""Values interpolated into a template, put back into the parsed YAML as data.

Each `{{ }}` value was printed as an opaque token. A token that is a whole plain scalar becomes the value's own
node (a mapping stays a mapping); tokens inside a larger or quoted scalar, or in a key, are joined as text. So a
value can never add keys or documents, whatever characters it holds.
"""

from __future__ import annotations

import threading
from typing import Any

import yaml

from kratix.workflows import templating


class TokenSubstitution:
    """Shared by the threads of a compile: each thread keeps its own YAML representer."""

    def __init__(self) -> None:
        self._local = threading.local()  # container pipelines render templates from several threads

    def substitute(self, node: yaml.Node, tokens: templating.Tokens) -> yaml.Node:
        """`node` with every token of `tokens` replaced by its value. New nodes are made wherever something may
        change, and `node` is left as it was: the node trees of a rendered text are composed once and shared by
        every render of that text (`kratix.yamltext.load_transformed`)."""
        return self._substitute(node, tokens, {})

    def _substitute(self, node: yaml.Node, tokens: templating.Tokens, made: dict[int, yaml.Node]) -> yaml.Node:
        """`made`: the copy of each collection node copied so far, by the original's id, so that a node met twice
        (an alias) is one node in the copy too."""
        if isinstance(node, yaml.ScalarNode):
            if tokens.nonce not in node.value:
                return node
            if not node.style and tokens.pattern.fullmatch(node.value):
                return self._represent(tokens.value_of(node.value))
            return yaml.ScalarNode(
                "tag:yaml.org,2002:str",
                tokens.expand_text(node.value),
                node.start_mark,
                node.end_mark,
                style=node.style or "'",
            )
        copy = made.get(id(node))
        if copy is not None:
            return copy
        if isinstance(node, yaml.MappingNode):
            copy = made[id(node)] = yaml.MappingNode(node.tag, [], node.start_mark, node.end_mark, node.flow_style)
            copy.value = [(self._substitute_key(k, tokens), self._substitute(v, tokens, made)) for k, v in node.value]
        elif isinstance(node, yaml.SequenceNode):
            copy = made[id(node)] = yaml.SequenceNode(node.tag, [], node.start_mark, node.end_mark, node.flow_style)
            copy.value = [self._substitute(item, tokens, made) for item in node.value]
        else:
            return node
        return copy

    def _substitute_key(self, node: yaml.Node, tokens: templating.Tokens) -> yaml.Node:
        if isinstance(node, yaml.ScalarNode) and tokens.nonce in node.value:
            return yaml.ScalarNode(
                "tag:yaml.org,2002:str", tokens.expand_text(node.value), node.start_mark, node.end_mark
            )
        return node

    def _represent(self, value: Any) -> yaml.Node:
        representer = getattr(self._local, "representer", None)
        if representer is None:
            representer = self._local.representer = yaml.representer.SafeRepresenter()
        representer.represented_objects = {}
        representer.object_keeper = []
        representer.alias_key = None
        return representer.represent_data(templating.plain(value))
