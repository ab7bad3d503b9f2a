"""Runner: ``python -m benchmarks [AREA [OPTIONS...]]`` (also ``shoal bench``)."""
from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Sequence

import benchmarks

# Modules in this package that are helpers, not benchmark areas.
_NOT_AREAS = {"__main__", "common"}


def area_names() -> list[str]:
    """Area modules of this package, found without importing them."""
    return sorted(
        info.name
        for info in pkgutil.iter_modules(benchmarks.__path__)
        if info.name not in _NOT_AREAS and not info.name.startswith("_")
    )


def describe(area: str) -> str:
    """An area's one-line description; a broken area says why instead of breaking the list."""
    try:
        return str(getattr(importlib.import_module(f"benchmarks.{area}"), "DESCRIPTION", ""))
    except Exception as error:  # noqa: BLE001 - listing must survive one broken area
        return f"(cannot import: {type(error).__name__}: {error})"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    known = area_names()
    if not args or args[0] in ("-h", "--help", "list"):
        print("usage: python -m benchmarks AREA [OPTIONS...]   (or: shoal bench AREA ...)\n")
        print("Areas:")
        for name in known:
            print(f"  {name:<16} {describe(name)}")
        return 0
    area, rest = args[0], args[1:]
    if area not in known:
        print(f"benchmarks: unknown area '{area}'; choose from: {', '.join(known)}", file=sys.stderr)
        return 2
    return int(importlib.import_module(f"benchmarks.{area}").main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
