"""Every limit the compiler puts on what tenants and Promise authors write, in one place (the README's Limits
table lists them). Each is chosen from what Kubernetes itself accepts, so that nothing Kubernetes would take is
refused here, and nothing that would stall or crash a compile gets through.
"""

from __future__ import annotations

# --- reading YAML ------------------------------------------------------------------------------------------

# The API server reads request bodies of at most 3 MiB (apiserver's MaxRequestBodyBytes): one document larger
# than that could never be applied. A file may hold several documents (an operator bundle beside templates).
MAX_DOCUMENT_CHARS = 3 * 1024 * 1024
MAX_FILE_BYTES = 16 * 1024 * 1024
# Nesting levels of mappings and lists in one document. Kubernetes' CBOR decoder stops at 64 levels and its JSON
# decoder at 10,000; the deepest real CRDs and Promises reach about 40. Deep enough for any manifest, shallow
# enough that no walk over a document can run out of stack.
MAX_DEPTH = 100
# Alias expansion, as go-yaml (Kubernetes' YAML reader) bounds it: a document may take 99% of its decoded nodes
# from aliases up to 400,000 decodes, scaling down to 10% at 4,000,000 ("document contains excessive aliasing").
ALIAS_RATIO_RANGE = (400_000, 4_000_000)
ALIAS_RATIO_BOUNDS = (0.99, 0.10)
ALIAS_MIN_COUNT = 100  # go-yaml checks only past 100 alias decodes and 1,000 decodes in all
ALIAS_MIN_DECODES = 1000

# --- names that become paths -------------------------------------------------------------------------------

DNS_LABEL_MAX = 63  # namespaces, request names, Promise, pipeline and container names
DNS_SUBDOMAIN_MAX = 253  # most object names
PATH_COMPONENT_MAX_BYTES = 255  # a file name on every file system Git checks out to
PATH_MAX_BYTES = 1024  # a whole relative path in the output repo

# --- what Kubernetes accepts in an object's metadata (apimachinery's validation) ----------------------------

LABEL_VALUE_MAX = 63
QUALIFIED_NAME_MAX = 63  # the name part of a label or annotation key
ANNOTATIONS_TOTAL_MAX_BYTES = 256 * 1024  # TotalAnnotationSizeLimitB: keys and values together
