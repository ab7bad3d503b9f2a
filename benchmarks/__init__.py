"""Benchmarks: one runner, every figure measured side by side with its peers.

Each area is a module ``benchmarks/<area>.py`` exposing ``DESCRIPTION: str`` and
``main(argv: list[str]) -> int``.  ``python -m benchmarks <area> [options]`` and
``shoal bench <area> [options]`` both run it; ``python -m benchmarks`` lists them.
"""
