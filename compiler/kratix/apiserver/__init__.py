"""What the Kubernetes API server does with a CRD and its objects, done here the same way: a Promise's `spec.api`
decoded as a v1 CRD, its OpenAPI schema as JSON Schema, CEL rules with their cost limits, and RE2 regular
expressions. The load and schema stages both read it.
"""
