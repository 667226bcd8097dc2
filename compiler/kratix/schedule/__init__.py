"""Schedule: rendered output → destinations.
"""
