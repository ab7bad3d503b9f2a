"""Composition root: the `shoal` command line and the node daemon's wiring.

Nothing imports this package; it imports the five packages and wires them.
"""
