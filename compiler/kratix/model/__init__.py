"""The platform and its compile as plain data: documents, diagnostics, settings, limits, names, the platform model,
the output repo's paths, rendered manifests, placements and statuses. Every stage reads these; none of them reads
a stage.
"""
