"""The schema stage: a Promise's request API (`spec.api`, a whole CRD) in, a validator for requests out.

`check_crd` reads the CRD as Kratix reads it (`kratix.apiserver.crdtypes`: an apiextensions.k8s.io/v1 CRD whatever
apiVersion it declares) and reports what the API server would refuse in it, no more and no less, plus what
Kratix drops or changes and what this compiler cannot evaluate.
`compile_request_schema` turns the request version's OpenAPI v3 structural schema into a draft-07 JSON
Schema (checked by jsonschema-rs), a tree for defaulting, and compiled CEL rules, once per Promise.
`validate_request` applies defaults to a copy of a request and returns it with every problem, sorted by path.
`editor_json_schema` describes a whole request file for editors.

Where a compiler departs from the API server, on purpose:
- unknown fields are errors (`schema.unknown-field`), as with `kubectl --validate=strict`; the API server
  prunes them silently, and a silently dropped typo (`sise: large`) is the worst outcome for a Git request;
- `status` in a request file is ignored with a warning and left out of the result (pipelines write status);
- a CEL rule that cannot even be evaluated (no such key, no such overload) is not reported where a type or
  required-field error at or under its node already explains why;
- `oldSelf` rules and rules using functions the `cel` package lacks are skipped; `check_crd` says so once.
As the API server: a non-nullable `null` takes the default if there is one and is dropped otherwise; defaults
apply to absent fields, inside present and defaulted objects, array items and map values, before validation.

The modules, by concern: `crd` (CRD checks), `versions` (a CRD's versions and their schemas), `structure` (the
walk over a version's schema, next to `kratix.apiserver.openapi`'s JSON Schema translation), `keywords` and `junctors`
(what a structural schema may hold where), `defaulting` (API-server defaulting and the `Node` tree),
`requests` (compile and validate), `envelope` (apiVersion/kind/metadata rules), `rules` (CEL and list-map
keys), `formats` (Kubernetes string formats), `violations` (violations and their messages), `editor`.
"""

from kratix.schema.crd import CRD_API_VERSION, check_crd
from kratix.schema.editor import DRAFT, editor_json_schema
from kratix.schema.envelope import ENVELOPE
from kratix.schema.requests import RequestSchema, compile_request_schema, validate_request
from kratix.schema.violations import Violation, sort_violations

__all__ = [
    "CRD_API_VERSION",
    "DRAFT",
    "ENVELOPE",
    "RequestSchema",
    "Violation",
    "check_crd",
    "compile_request_schema",
    "editor_json_schema",
    "sort_violations",
    "validate_request",
]
