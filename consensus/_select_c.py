"""Which implementation runs: a package's compiled twin modules
(``<package>._<name>_c``, built from the .py sources plus their .pxd
declarations, see consensus/_build_core_c.py) or the pure-Python sources.
Same rule as dataplane/kernels.py: compiled unless ``SHOAL_PURE=1`` is set or
an extension is missing; additionally the compiled modules are used only when
ALL of them are built from the CURRENT sources (each records its source's
SHA-256), because the pure and compiled classes must never mix in one process
and a stale build must not silently run old code.

Each compiled source ends with a "compiled twin" block that calls
``swap_in(globals(), name)``: when the package runs compiled, the pure
module's names are replaced with the compiled module's (classes, functions
and constants alike), so every ``from consensus.types import Message`` gets
the same class.  ``CompiledTwin`` holds that decision for one package; this
module's functions are the Raft core's, chaos/sim/_select_c.py has the
simulator's (which runs compiled only when the core does: its compiled
modules are built against the compiled core's classes).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import warnings
from types import ModuleType
from typing import Callable, Optional

from consensus._build_core_c import CORE_MODULES

_HERE = os.path.dirname(os.path.abspath(__file__))


def file_sha256(path: str) -> str:
    with open(path, encoding="utf-8") as source:
        return hashlib.sha256(source.read().encode("utf-8")).hexdigest()


class CompiledTwin:
    """The compiled-or-pure decision for the modules ``modules`` of
    ``package`` (sources in ``directory``), made once per process."""

    def __init__(self, package: str, modules: tuple[str, ...], label: str,
                 source_sha256: Callable[[str], str], requires: Optional["CompiledTwin"] = None) -> None:
        self.package = package
        self.modules = modules
        self.label = label  # "Raft core": for the stale-build warning
        self.source_sha256 = source_sha256  # module name -> SHA-256 of its current source
        self.requires = requires
        self._decision: Optional[str] = None

    def decide(self) -> str:
        """'cython' or 'python', looked up afresh (implementation() caches it)."""
        if os.environ.get("SHOAL_PURE") == "1":
            return "python"
        if self.requires is not None and self.requires.implementation() != "cython":
            return "python"
        for name in self.modules:
            if importlib.util.find_spec(f"{self.package}._{name}_c") is None:
                return "python"  # not built: the twin is correct, only slower
        # Dependency order; a compiled module imports only compiled modules of
        # its package (and pure modules that are not compiled), never the pure
        # twin of a compiled one, so this cannot cycle back.
        for name in self.modules:
            module = importlib.import_module(f"{self.package}._{name}_c")
            if getattr(module, "SOURCE_SHA256", None) != self.source_sha256(name):
                path = self.package.replace(".", "/")
                warnings.warn(
                    f"the compiled {self.label} is stale ({path}/{name}.py changed since it was built); "
                    f"running the pure-Python {self.label} - rebuild with: python setup.py build_ext --inplace",
                    RuntimeWarning,
                    stacklevel=5,  # decide, implementation, compiled, swap_in, the source
                )
                return "python"
        return "cython"

    def implementation(self) -> str:
        """'cython' or 'python': what this process runs (decided once)."""
        if self._decision is None:
            self._decision = self.decide()
        return self._decision

    def compiled(self, name: str) -> Optional[ModuleType]:
        """The compiled module for ``name``, or None for the twin."""
        if name not in self.modules:
            raise ValueError(f"{name!r} is not a compiled {self.package} module")
        if self.implementation() != "cython":
            return None
        return importlib.import_module(f"{self.package}._{name}_c")

    def swap_in(self, namespace: dict, name: str) -> None:
        """Replace the pure module's public and private names by the compiled
        module's (dunder names such as __name__ and __doc__ are kept)."""
        module = self.compiled(name)
        if module is None:
            return
        namespace.update({key: value for key, value in vars(module).items() if not key.startswith("__")})


def _source_sha256(name: str) -> str:
    return file_sha256(os.path.join(_HERE, f"{name}.py"))


# The lambda looks _source_sha256 up at call time (tests replace it).
CORE = CompiledTwin("consensus", CORE_MODULES, "Raft core", lambda name: _source_sha256(name))


def _decide() -> str:
    return CORE.decide()


# Bound methods, so a stale-build warning points at the source's swap-in line
# (the same call depth for every package).
implementation = CORE.implementation
compiled = CORE.compiled
swap_in = CORE.swap_in
