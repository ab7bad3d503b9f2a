"""Keyed flow hash of the 5-tuple and keyed name hash, with a cluster-wide seed.

Picks the Cython kernel ``flowhash_c`` unless ``SHOAL_PURE=1`` is set or the
extension is not built; ``flowhash_py`` is the twin with the same API.

The seed is a 128-bit integer shared by every node of the cluster (the store
hands it out).  It is split into the SipHash key (k0 = low 64 bits, k1 = high
64 bits).  Never Python's ``hash()``: it is salted per process, so two nodes
would disagree about which backend owns a flow.
"""

from __future__ import annotations


from dataplane import flowhash_py
from dataplane.kernels import select_kernel

SEED_BITS = 128

kernel = select_kernel("dataplane.flowhash_c", flowhash_py)

IMPLEMENTATION = "python" if kernel is flowhash_py else "cython"


class SeedError(ValueError):
    """A seed that is not an integer in [0, 2**128)."""


def split_seed(seed: int) -> tuple[int, int]:
    """The SipHash key (k0, k1) of a 128-bit cluster seed."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SeedError(f"seed must be an int in [0, 2**{SEED_BITS}), got {type(seed).__name__}")
    if not 0 <= seed < 1 << SEED_BITS:
        raise SeedError(f"seed must be in [0, 2**{SEED_BITS}), got {seed}")
    return seed & ((1 << 64) - 1), seed >> 64


def flow_hash(
    seed: int,
    protocol: int,
    source_ip: int,
    destination_ip: int,
    source_port: int,
    destination_port: int,
) -> int:
    """SipHash-1-3 of the 5-tuple under the cluster seed (a 64-bit integer)."""
    k0, k1 = split_seed(seed)
    return int(
        kernel.flow_hash(k0, k1, protocol, source_ip, destination_ip, source_port, destination_port)
    )


def name_hash(seed: int, name: str) -> int:
    """SipHash-2-4 of a UTF-8 name under the seed (used for Maglev offsets)."""
    k0, k1 = split_seed(seed)
    return int(kernel.siphash24(k0, k1, name.encode("utf-8")))
