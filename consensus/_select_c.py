"""Which Raft core runs: the compiled modules consensus._<name>_c or the
pure-Python sources (the twin).  Same rule as dataplane/kernels.py: compiled
unless ``SHOAL_PURE=1`` is set or an extension is missing; additionally the
compiled core is used only when ALL its modules are built from the CURRENT
sources (each records its source's SHA-256, see consensus/_build_core_c.py),
because the pure and compiled classes must never mix in one process and a
stale build must not silently run old code.

Each core source ends with a "compiled twin" block that calls ``compiled()``
and, when it returns a module, replaces the pure module's names with the
compiled module's (classes, functions and constants alike), so every
``from consensus.types import Message`` gets the same class.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import warnings
from types import ModuleType
from typing import Optional

CORE_MODULES = ("types", "storage", "progress", "log", "read_only", "confchange", "raft")
_HERE = os.path.dirname(os.path.abspath(__file__))

_decision: Optional[str] = None


def _source_sha256(name: str) -> str:
    with open(os.path.join(_HERE, f"{name}.py"), encoding="utf-8") as source:
        return hashlib.sha256(source.read().encode("utf-8")).hexdigest()


def _decide() -> str:
    if os.environ.get("SHOAL_PURE") == "1":
        return "python"
    for name in CORE_MODULES:
        if importlib.util.find_spec(f"consensus._{name}_c") is None:
            return "python"  # not built: the twin is correct, only slower
    # Dependency order; a compiled module imports only compiled core modules
    # (and consensus.errors), never a pure one, so this cannot cycle back.
    for name in CORE_MODULES:
        module = importlib.import_module(f"consensus._{name}_c")
        if getattr(module, "SOURCE_SHA256", None) != _source_sha256(name):
            warnings.warn(
                f"the compiled Raft core is stale (consensus/{name}.py changed since it was built); "
                "running the pure-Python core - rebuild with: python setup.py build_ext --inplace",
                RuntimeWarning,
                stacklevel=3,
            )
            return "python"
    return "cython"


def implementation() -> str:
    """'cython' or 'python': the core this process runs (decided once)."""
    global _decision
    if _decision is None:
        _decision = _decide()
    return _decision


def compiled(name: str) -> Optional[ModuleType]:
    """The compiled module for core module ``name``, or None for the twin."""
    if name not in CORE_MODULES:
        raise ValueError(f"{name!r} is not a compiled core module")
    if implementation() != "cython":
        return None
    return importlib.import_module(f"consensus._{name}_c")


def swap_in(namespace: dict, name: str) -> None:
    """Replace the pure module's public and private names by the compiled
    module's (dunder names such as __name__ and __doc__ are kept)."""
    module = compiled(name)
    if module is None:
        return
    namespace.update({key: value for key, value in vars(module).items() if not key.startswith("__")})
