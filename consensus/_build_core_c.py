"""Build step for the compiled Raft core (Cython "pure Python mode").

The readable sources consensus/{types,storage,progress,log,read_only,confchange,
raft}.py are the pure-Python twin AND the source of the compiled core: each is
copied to ``build/core_c/consensus/_<name>_c.py`` next to its augmenting
declarations (consensus/_<name>_c.pxd if any: ``cdef class`` attributes and
``cpdef`` methods, Cython's pure-Python-mode augmentation), and compiled as the
extension module ``consensus._<name>_c``.  The copy differs from the source only mechanically:

* imports of the other core modules name their compiled copies, so the
  compiled modules only ever see each other's classes;
* ``slots=True`` is dropped from dataclass decorators and ``__slots__``
  statements are removed (an extension type's attributes ARE its slots;
  Cython refuses both);
* the "compiled twin" block at the end of each source (which swaps the pure
  module's names for the compiled ones, see consensus/_select_c.py) is cut;
* the SHA-256 of the source is appended as ``SOURCE_SHA256``, so a source
  edited after the build is detected and the pure twin used instead.

setup.py calls ``core_extensions()``; this file is loaded by path (not
imported as part of the package) so building does not import the core.
"""
from __future__ import annotations

import hashlib
import os
import re

CORE_MODULES = ("types", "storage", "progress", "log", "read_only", "confchange", "raft")
BUILD_DIRECTORY = os.path.join("build", "core_c")
_HERE = os.path.dirname(os.path.abspath(__file__))

_IMPORT = re.compile(r"^from consensus\.(" + "|".join(CORE_MODULES) + r") import", re.MULTILINE)
_MODULE_IMPORT = re.compile(r"^from consensus import (" + "|".join(CORE_MODULES) + r")$", re.MULTILINE)
_SLOTS_STATEMENT = re.compile(r"^(?P<indent>[ ]+)__slots__ = \((?:[^()]|\n)*?\)\n", re.MULTILINE)
_TWIN_BLOCK = re.compile(r"^# >>> compiled twin.*?^# <<< compiled twin\n", re.MULTILINE | re.DOTALL)


def source_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def transform(text: str) -> str:
    """The compiled copy of one core module's source (see the module docstring)."""
    digest = source_sha256(text)
    text, cut = _TWIN_BLOCK.subn("", text)
    if cut != 1:
        raise ValueError("a core module must end with exactly one '# >>> compiled twin' block")
    text = _IMPORT.sub(lambda match: f"from consensus._{match.group(1)}_c import", text)
    text = _MODULE_IMPORT.sub(lambda match: f"from consensus import _{match.group(1)}_c as {match.group(1)}", text)
    text = text.replace(", slots=True)", ")")
    text = _SLOTS_STATEMENT.sub("", text)
    return text + f"\nSOURCE_SHA256 = {digest!r}\n"


def _write_if_changed(path: str, text: str) -> None:
    # cythonize skips a module whose inputs are unchanged, so keep the mtimes.
    if os.path.exists(path):
        with open(path, encoding="utf-8") as current:
            if current.read() == text:
                return
    with open(path, "w", encoding="utf-8") as target:
        target.write(text)


def write_copies(root: str = ".") -> list[str]:
    """Write the transformed copies and their .pxd files; return the .py paths."""
    package = os.path.join(root, BUILD_DIRECTORY, "consensus")
    os.makedirs(package, exist_ok=True)
    _write_if_changed(os.path.join(package, "__init__.py"), "")
    paths = []
    for name in CORE_MODULES:
        with open(os.path.join(_HERE, f"{name}.py"), encoding="utf-8") as source:
            path = os.path.join(package, f"_{name}_c.py")
            _write_if_changed(path, transform(source.read()))
        paths.append(path)
        declarations = os.path.join(_HERE, f"_{name}_c.pxd")
        copied = os.path.join(package, f"_{name}_c.pxd")
        if os.path.exists(declarations):
            with open(declarations, encoding="utf-8") as pxd:
                _write_if_changed(copied, pxd.read())
        elif os.path.exists(copied):
            os.remove(copied)  # declarations deleted since the last build
    return paths


def core_extensions(debug: bool = False) -> list:
    """The compiled core modules as cythonized setuptools Extensions."""
    from Cython.Build import cythonize
    from setuptools import Extension

    paths = write_copies()
    extensions = [
        Extension(f"consensus._{name}_c", [path], extra_compile_args=["-O0", "-g"] if debug else ["-O2"])
        for name, path in zip(CORE_MODULES, paths)
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
