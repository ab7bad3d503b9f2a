"""Runner: ``python -m benchmarks [AREA [OPTIONS...]]`` (also ``shoal bench``)."""
from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Sequence

import benchmarks

# Modules in this package that are helpers, not benchmark areas.
_NOT_AREAS = {"__main__", "common"}


def areas() -> dict[str, str]:
    """Area name -> description, discovered from the modules of this package."""
    found: dict[str, str] = {}
    for info in pkgutil.iter_modules(benchmarks.__path__):
        if info.name in _NOT_AREAS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"benchmarks.{info.name}")
        if hasattr(module, "main"):
            found[info.name] = getattr(module, "DESCRIPTION", "")
    return dict(sorted(found.items()))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    known = areas()
    if not args or args[0] in ("-h", "--help", "list"):
        print("usage: python -m benchmarks AREA [OPTIONS...]   (or: shoal bench AREA ...)\n")
        print("Areas:")
        for name, description in known.items():
            print(f"  {name:<12} {description}")
        return 0
    area, rest = args[0], args[1:]
    if area not in known:
        print(f"benchmarks: unknown area '{area}'; choose from: {', '.join(known)}", file=sys.stderr)
        return 2
    return int(importlib.import_module(f"benchmarks.{area}").main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
