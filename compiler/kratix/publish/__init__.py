"""Publish: an output tree → one commit per state store, and what shows it to people and workers: the plan, the
graph, the Flux and Argo CD bootstrap objects.
"""
