"""The compiler's memory between runs, kept under `.kratix/` in the output repo: the previous output, the request
cache, provenance, the inventory, healing and incremental reuse.
"""
