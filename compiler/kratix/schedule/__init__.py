"""Schedule: rendered output → destinations."""
