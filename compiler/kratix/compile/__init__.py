"""The compile, top to bottom: composes the stages (load → schema → workflows → schedule → layout) for Promises and
requests, whole or only what changed, on every core or in shards.
"""
