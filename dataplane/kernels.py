"""One rule for choosing between a Cython kernel and its pure-Python twin.

Every kernel module in this package has a twin with the same API (the twin is
the readable specification; STYLE.md, msgpack's habit).  The Cython module is
used unless ``SHOAL_PURE=1`` is set or the extension was not built, in which
case the twin gives the same results, only slower.
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType

IMPLEMENTATIONS = ("cython", "python")


def select_kernel(cython_module: str, twin: ModuleType, implementation: str | None = None) -> ModuleType:
    """The module to run: ``implementation`` 'cython' or 'python', or None for
    the default rule (``SHOAL_PURE``).  An unknown name is a ValueError."""
    if implementation is None:
        implementation = "python" if os.environ.get("SHOAL_PURE") == "1" else "cython"
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be 'cython' or 'python', got {implementation!r}")
    if implementation == "python":
        return twin
    try:
        return importlib.import_module(cython_module)
    except ImportError:  # extension not built: the twin is correct, only slower
        return twin
