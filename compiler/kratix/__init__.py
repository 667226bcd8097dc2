"""Kratix: a GitOps compiler for internal developer platforms.

Promises, resource requests and destinations are read from a Git repo at one commit, validated against the
schemas the Promises declare, rendered and scheduled into per-destination directories, and published as one
commit to an output repo that Flux on each worker syncs.
"""

__version__ = "0.1.0"
