"""Build for Shoal: the five packages, the Cython kernels and the `shoal` script.

Every ``.pyx`` file under the packages becomes an extension module next to its
pure-Python twin.  Compiler directives live here, not in the sources (see
STYLE.md, scikit-learn's habit): bounds and wraparound checks are off for speed,
and ``SHOAL_CYTHON_DEBUG=1`` at install time turns them back on.
"""
from __future__ import annotations

import glob
import os

from setuptools import Extension, find_packages, setup

PACKAGES = ["dataplane", "consensus", "scheduler", "chaos", "benchmarks", "shoal"]


def cython_extensions() -> list:
    sources = sorted(
        path for package in PACKAGES for path in glob.glob(f"{package}/**/*.pyx", recursive=True)
    )
    if not sources:
        return []
    import numpy
    from Cython.Build import cythonize

    debug = os.environ.get("SHOAL_CYTHON_DEBUG") == "1"
    extensions = [
        Extension(
            path[:-4].replace(os.sep, "."),
            [path],
            include_dirs=[numpy.get_include()],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=["-O0", "-g"] if debug else ["-O3"],
        )
        for path in sources
    ]
    return cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": debug,
            "wraparound": debug,
            "initializedcheck": debug,
            "cdivision": not debug,
            "embedsignature": True,
        },
    )


def core_extensions() -> list:
    """The compiled twins: the Raft core (consensus/{types,...,raft}.py) and the
    simulator's hot modules (chaos/sim/{client,disk,network,host,simulation}.py)
    compiled with their .pxd declarations; the .py files stay the pure-Python
    twin (see consensus/_build_core_c.py, loaded by path so building imports
    no core)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_build_core_c", os.path.join("consensus", "_build_core_c.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.core_extensions(debug=os.environ.get("SHOAL_CYTHON_DEBUG") == "1")


TEST_REQUIRES = [
    "pytest>=7.4",
    "pytest-timeout>=2.1",
    "hypothesis>=6.90",
    "scapy>=2.5",
    "dpkt>=1.9",
    "pyroute2>=0.7",
]
BENCH_REQUIRES = ["pysyncobj>=0.3.12", "scapy>=2.5", "dpkt>=1.9"]

setup(
    name="shoal",
    version="0.1.0",
    description="Docker Swarm mode rebuilt in Python as a laboratory for distributed-systems engineers",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=[f"{p}*" for p in PACKAGES]),
    package_data={
        **{p: ["*.pyx", "*.pxd"] for p in PACKAGES},
        "chaos": ["*.pyx", "*.pxd", "experiments/*.yaml"],
        "chaos.sim": ["*.pxd"],
    },
    ext_modules=cython_extensions() + core_extensions(),
    install_requires=[
        "numpy>=1.24",
        "msgpack>=1.0",
        "rich>=13",
        "matplotlib>=3.7",
        "PyYAML>=6",
        "hypothesis>=6.90",
    ],
    extras_require={
        "test": TEST_REQUIRES + BENCH_REQUIRES,
        "bench": BENCH_REQUIRES,
    },
    entry_points={
        "console_scripts": ["shoal=shoal.cli:main"],
        # Users' own property-based suites get the chaos fixtures and options.
        "pytest11": ["shoal_chaos = chaos.pytest_plugin"],
    },
    zip_safe=False,
)
