"""Layout: placed output → the output repo's tree (every path of which `model.paths` spells)."""
