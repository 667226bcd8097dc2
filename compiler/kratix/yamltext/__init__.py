"""YAML in and out, the way Kubernetes reads it: the package's public surface.

In: every document of a file with the position of each node (for diagnostics), duplicate keys and syntax errors
reported with libyaml's position. Out: block style, no aliases, no folding, and every string quoted that any
YAML 1.1 (go-yaml, what Kubernetes uses) or YAML 1.2 parser could read as another type.

Both directions have a fast path for the JSON-like data manifests are made of, and fall back to PyYAML for
anything else, so that the fast path never changes what a document means:
- `emit`: our own emitter, or PyYAML's dumper with extra implicit resolvers for what other parsers read as
  non-strings; `scalars` decides which strings may stand bare.
- `load`: libyaml composes, a lean walk constructs; `positions` records where each node starts and reports
  duplicate keys.
"""

from kratix.yamltext.emit import dump, dump_all, dump_sorted
from kratix.yamltext.load import Composed, load_documents, load_plain, load_transformed
from kratix.yamltext.positions import YamlProblem

__all__ = [
    "Composed",
    "YamlProblem",
    "dump",
    "dump_all",
    "dump_sorted",
    "load_documents",
    "load_plain",
    "load_transformed",
]
