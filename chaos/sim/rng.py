"""One seed, many independent generators.

Every subsystem of a simulation (network of each link, election timeouts of
each node, workload ...) draws from its own ``random.Random`` whose seed is
derived from the run's seed and the subsystem's name with SHA-256 - never
Python's ``hash()``, which differs per process (PYTHONHASHSEED).  Adding a
draw in one subsystem therefore does not shift the choices of the others,
which keeps shrunk failures reproducible (TigerBeetle VOPR does the same).
"""
from __future__ import annotations

import hashlib
import random


def derive_seed(seed: int, *names: object) -> int:
    """A 64-bit seed for the subsystem named by ``names`` under run ``seed``."""
    text = repr((int(seed),) + tuple(str(name) for name in names)).encode("utf-8")
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


def derive_rng(seed: int, *names: object) -> random.Random:
    """A fresh ``random.Random`` for the subsystem named by ``names``."""
    return random.Random(derive_seed(seed, *names))
