"""Workflows: a Promise's pipelines and templates run into Kubernetes objects (native templates, command and image
steps in a sandbox, Secrets checked and encrypted).
"""
