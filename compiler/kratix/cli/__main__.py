"""`python -m kratix.cli ...` runs the `kratix` command."""

from kratix.cli import main

main()
