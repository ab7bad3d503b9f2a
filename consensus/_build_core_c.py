"""Build step for the compiled twins (Cython "pure Python mode"): the Raft
core and the simulator's hot modules.

``TWIN_PACKAGES`` lists, per package, the modules compiled this way: the Raft
core consensus/{types,storage,progress,log,read_only,confchange,raft}.py and
the simulator chaos/sim/{client,disk,network,host,simulation}.py.  The readable
sources are the pure-Python twin AND the source of the compiled modules: each
``<package>/<name>.py`` is copied to ``build/core_c/<package>/_<name>_c.py``
next to its augmenting declarations (``<package>/_<name>_c.pxd`` if any:
``cdef class`` attributes and ``cpdef`` methods, Cython's pure-Python-mode
augmentation), and compiled as the extension module ``<package>._<name>_c``.
The copy differs from the source only mechanically:

* imports of compiled modules (of any package in TWIN_PACKAGES) name their
  compiled copies, so the compiled modules only ever see each other's classes;
* ``slots=True`` is dropped from dataclass decorators and ``__slots__``
  statements are removed (an extension type's attributes ARE its slots;
  Cython refuses both);
* each class named in OPEN_CLASSES becomes an extension type with a plain
  Python subclass of the original name on top (see OPEN_CLASSES);
* the "compiled twin" block at the end of each source (which swaps the pure
  module's names for the compiled ones, see consensus/_select_c.py) is cut;
* the SHA-256 of the source is appended as ``SOURCE_SHA256``, so a source
  edited after the build is detected and the pure twin used instead.

setup.py calls ``core_extensions()`` (every package of TWIN_PACKAGES); this
file is loaded by path (not imported as part of the package) so building does
not import the core.  consensus/_select_c.py and chaos/sim/_select_c.py read
their module lists from here.
"""
from __future__ import annotations

import hashlib
import os
import re

CORE_MODULES = ("types", "storage", "progress", "log", "read_only", "confchange", "raft")
# Dependency order; app.py, rng.py and fuzz.py stay Python (applications
# subclass BaseApplication; the rest is not on the per-event path).
SIM_MODULES = ("client", "disk", "network", "host", "simulation")
TWIN_PACKAGES = {"consensus": CORE_MODULES, "chaos.sim": SIM_MODULES}
# Classes that Python code patches (tests/sim/conftest.py wraps
# Simulation.__init__), which an extension type refuses: the copy compiles the
# class as the extension type ``_<Name>Core`` (declared in the .pxd) and
# defines ``<Name>`` as a plain Python subclass of it, so the class stays
# patchable while its methods run on C slots.
OPEN_CLASSES = {"chaos.sim": ("Simulation",)}
BUILD_DIRECTORY = os.path.join("build", "core_c")
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SLOTS_STATEMENT = re.compile(r"^(?P<indent>[ ]+)__slots__ = \((?:[^()]|\n)*?\)\n", re.MULTILINE)
_TWIN_BLOCK = re.compile(r"^# >>> compiled twin.*?^# <<< compiled twin\n", re.MULTILINE | re.DOTALL)


def source_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def transform(text: str, package: str = "consensus") -> str:
    """The compiled copy of one module of ``package`` (see the module docstring)."""
    digest = source_sha256(text)
    text, cut = _TWIN_BLOCK.subn("", text)
    if cut != 1:
        raise ValueError(f"a compiled {package} module must end with exactly one '# >>> compiled twin' block")
    # Every package's compiled modules, not only this one's: a package runs
    # compiled only together with the packages its declarations cimport.
    for imported, module_names in TWIN_PACKAGES.items():
        modules = "|".join(module_names)
        dotted = re.escape(imported)
        text = re.sub(
            rf"^([ ]*)from {dotted}\.({modules}) import", rf"\1from {imported}._\2_c import", text, flags=re.MULTILINE
        )
        text = re.sub(
            rf"^from {dotted} import ({modules})$", rf"from {imported} import _\1_c as \1", text, flags=re.MULTILINE
        )
    text = text.replace(", slots=True)", ")")
    text = _SLOTS_STATEMENT.sub("", text)
    for name in OPEN_CLASSES.get(package, ()):
        text, renamed = re.subn(rf"^class {name}\b", f"class _{name}Core", text, flags=re.MULTILINE)
        if renamed:
            text += (f"\n\nclass {name}(_{name}Core):\n    __doc__ = _{name}Core.__doc__\n"
                     f"    __module__ = __name__\n")
    return text + f"\nSOURCE_SHA256 = {digest!r}\n"


def _write_if_changed(path: str, text: str) -> None:
    # cythonize skips a module whose inputs are unchanged, so keep the mtimes.
    if os.path.exists(path):
        with open(path, encoding="utf-8") as current:
            if current.read() == text:
                return
    with open(path, "w", encoding="utf-8") as target:
        target.write(text)


def write_copies(package: str = "consensus", root: str = ".") -> list[str]:
    """Write the transformed copies of ``package`` and their .pxd files;
    return the .py paths."""
    parts = package.split(".")
    source_directory = os.path.join(_ROOT, *parts)
    for depth in range(1, len(parts) + 1):  # every level a package, as in the source tree
        directory = os.path.join(root, BUILD_DIRECTORY, *parts[:depth])
        os.makedirs(directory, exist_ok=True)
        _write_if_changed(os.path.join(directory, "__init__.py"), "")
    target = os.path.join(root, BUILD_DIRECTORY, *parts)
    paths = []
    for name in TWIN_PACKAGES[package]:
        with open(os.path.join(source_directory, f"{name}.py"), encoding="utf-8") as source:
            path = os.path.join(target, f"_{name}_c.py")
            _write_if_changed(path, transform(source.read(), package))
        paths.append(path)
        declarations = os.path.join(source_directory, f"_{name}_c.pxd")
        copied = os.path.join(target, f"_{name}_c.pxd")
        if os.path.exists(declarations):
            with open(declarations, encoding="utf-8") as pxd:
                _write_if_changed(copied, pxd.read())
        elif os.path.exists(copied):
            os.remove(copied)  # declarations deleted since the last build
    return paths


def core_extensions(debug: bool = False) -> list:
    """Every compiled twin module (all of TWIN_PACKAGES) as cythonized
    setuptools Extensions."""
    from Cython.Build import cythonize
    from setuptools import Extension

    extensions = [
        Extension(f"{package}._{name}_c", [path], extra_compile_args=["-O0", "-g"] if debug else ["-O2"])
        for package, modules in TWIN_PACKAGES.items()
        for name, path in zip(modules, write_copies(package))
    ]
    return cythonize(
        extensions,
        include_path=[BUILD_DIRECTORY],
        language_level=3,
        compiler_directives={
            # Annotations are documentation here, not C types: the declarations
            # are in the .pxd files, and an ``int`` annotation would make Cython
            # refuse IntEnum members and bools the pure twin accepts.
            "annotation_typing": False,
            "boundscheck": True,  # same IndexError behaviour as the twin
            "wraparound": True,  # negative indexes (entries[-1]) are used
            "embedsignature": True,
            "binding": False,
        },
    )
