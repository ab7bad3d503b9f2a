"""Maglev consistent hashing for VIP services: ``build_table`` and its checks.

``build_table(backends, size=65537, seed=0)`` maps backend name -> weight to a
numpy int32 array of ``size`` slots whose values index ``sorted(backends)``.
It is a pure function of (names, weights, size, seed): names are hashed with
SipHash-2-4 keyed by the seed (never Python's per-process ``hash()``) and
sorted before population, so every node and every process, whatever order the
backends were added in, computes the same table.  The algorithm and the weight
rule are described in ``dataplane/maglev_py.py`` (the twin of ``maglev_c``).

Picks the Cython kernel unless ``SHOAL_PURE=1`` or the extension is missing.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from dataplane import maglev_py
from dataplane.kernels import select_kernel
from dataplane.flowhash import split_seed

kernel = select_kernel("dataplane.maglev_c", maglev_py)

IMPLEMENTATION = "python" if kernel is maglev_py else "cython"

DEFAULT_TABLE_SIZE = 65537  # the paper's small table size, prime
TABLE_SIZE_MAX = (1 << 24) + 43  # a prime; 64 MiB of int32: a bound on memory per service
WEIGHT_MAX = (1 << 32) - 1  # Katran's weights are uint32
NAME_BYTES_MAX = 255


class MaglevError(ValueError):
    """Base of every argument error of the Maglev table builder."""


class EmptyBackendsError(MaglevError):
    """``build_table`` got no backends at all."""


class NoActiveBackendError(MaglevError):
    """Every backend has weight 0 (all draining): there is nobody to send new flows to."""


class WeightError(MaglevError):
    """A weight that is not an integer in [0, 2**32)."""


class TableSizeError(MaglevError):
    """A table size that is not a prime in [2, TABLE_SIZE_MAX]."""


class BackendNameError(MaglevError):
    """A backend name that is not a non-empty str of at most 255 UTF-8 bytes."""


def is_prime(number: int) -> bool:
    """Trial division; sizes are at most 2**24 + 43, so at most ~4096 divisions."""
    if number < 2:
        return False
    if number % 2 == 0:
        return number == 2
    divisor = 3
    while divisor * divisor <= number:
        if number % divisor == 0:
            return False
        divisor += 2
    return True


def check_table_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise TableSizeError(f"table size must be an int, got {type(size).__name__}")
    size = int(size)
    if not 2 <= size <= TABLE_SIZE_MAX:
        raise TableSizeError(f"table size must be in [2, {TABLE_SIZE_MAX}], got {size}")
    if not is_prime(size):
        # s.3.4: M prime makes every skip coprime with M, so each preference
        # list is a full permutation; with a composite M some lists would cycle.
        raise TableSizeError(f"table size must be prime (Maglev s.3.4), got {size}")
    return size


def check_weight(name: str, weight: int) -> int:
    if isinstance(weight, bool) or not isinstance(weight, (int, np.integer)):
        raise WeightError(f"weight of backend {name!r} must be an int, got {type(weight).__name__}")
    weight = int(weight)
    if weight < 0:
        raise WeightError(f"weight of backend {name!r} is negative ({weight})")
    if weight > WEIGHT_MAX:
        raise WeightError(f"weight of backend {name!r} is above {WEIGHT_MAX} ({weight})")
    return weight


def encode_name(name: str) -> bytes:
    if not isinstance(name, str):
        raise BackendNameError(f"backend name must be a str, got {type(name).__name__}")
    encoded = name.encode("utf-8", errors="strict") if name else b""
    if not encoded or len(encoded) > NAME_BYTES_MAX:
        raise BackendNameError(
            f"backend name must be 1..{NAME_BYTES_MAX} UTF-8 bytes, got {name!r}"
        )
    return encoded


POPULATE_METHODS = ("stable", "greedy")


def populate_sorted(
    backends: Mapping[str, int], size: int, seed: int, method: str = "stable"
) -> np.ndarray:
    """Like ``build_table`` but an all-draining set gives a table of -1 (no new flows).

    The balancer uses this: a service whose backends all drain keeps running
    its tracked connections and refuses new ones, which is not an error there.
    """
    if not isinstance(backends, Mapping):
        raise MaglevError(
            f"backends must be a mapping of name -> weight, got {type(backends).__name__}"
        )
    if method not in POPULATE_METHODS:
        raise MaglevError(f"method must be one of {POPULATE_METHODS}, got {method!r}")
    size = check_table_size(size)
    k0, k1 = split_seed(seed)
    names = sorted(backends)
    return _populate_checked(names, [backends[name] for name in names], size, k0, k1, method)


def _encode_names(names: list[str]) -> list[bytes]:
    # The common case (plain str names of a sane length) checked in bulk: the
    # per-name checks cost more than the table build's hashing for 1000 names.
    if all(type(name) is str for name in names):
        try:
            encoded = [name.encode("utf-8") for name in names]
        except UnicodeEncodeError:
            encoded = None
        lengths = [len(name) for name in encoded] if encoded is not None else [0]
        if not lengths or (min(lengths) > 0 and max(lengths) <= NAME_BYTES_MAX):
            return encoded
    return [encode_name(name) for name in names]


def _check_weights(names: list[str], weights: list) -> np.ndarray:
    if all(type(weight) is int for weight in weights) and (
        not weights or (min(weights) >= 0 and max(weights) <= WEIGHT_MAX)
    ):
        return np.array(weights, dtype=np.int64)
    return np.array([check_weight(name, weight) for name, weight in zip(names, weights)], dtype=np.int64)


def _populate_checked(
    names: list[str], weights: list, size: int, k0: int, k1: int, method: str
) -> np.ndarray:
    encoded = _encode_names(names)
    checked = _check_weights(names, weights)
    populate = kernel.populate if method == "stable" else kernel.populate_greedy
    return populate(encoded, checked, size, k0, k1)


def build_table(
    backends: Mapping[str, int],
    size: int = DEFAULT_TABLE_SIZE,
    seed: int = 0,
    method: str = "stable",
) -> np.ndarray:
    """Maglev lookup table: int32 array of ``size`` indices into ``sorted(backends)``.

    ``method`` picks the population rule over Maglev's preference lists:
    "stable" (ranked rounds with exact quotas, less disruption) or "greedy"
    (the paper's Pseudocode 1); ``dataplane/maglev_py.py`` explains both.

    Raises ``EmptyBackendsError`` when ``backends`` is empty,
    ``NoActiveBackendError`` when every weight is 0, ``WeightError``,
    ``TableSizeError``, ``BackendNameError`` and ``flowhash.SeedError`` for
    bad arguments (all are ``ValueError``).
    """
    if isinstance(backends, Mapping) and len(backends) == 0:
        raise EmptyBackendsError("build_table needs at least one backend")
    table = populate_sorted(backends, size, seed, method)
    if table[0] < 0:
        raise NoActiveBackendError(
            f"every one of the {len(backends)} backends has weight 0 (all draining): no table to build"
        )
    return table


def slot_counts(table: np.ndarray, backend_count: int) -> np.ndarray:
    """How many slots each backend index owns."""
    return np.bincount(table[table >= 0], minlength=backend_count)


def balance(table: np.ndarray, backend_count: int) -> float:
    """Max slots over mean slots (1.0 is perfect; the paper's Fig. 10 metric)."""
    counts = slot_counts(table, backend_count)
    return float(counts.max() / counts.mean())


def disruption(
    before: np.ndarray, names_before: list[str], after: np.ndarray, names_after: list[str]
) -> float:
    """Fraction of slots whose backend (by name) changed between two tables."""
    if len(before) != len(after):
        raise MaglevError("disruption compares tables of the same size")
    lookup_before = np.array(names_before, dtype=object)[before]
    lookup_after = np.array(names_after, dtype=object)[after]
    return float(np.count_nonzero(lookup_before != lookup_after) / len(before))
