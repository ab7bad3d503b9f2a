"""Pure-Python twin of ``flowhash_c``: SipHash-2-4 of bytes, SipHash-1-3 of 5-tuples.

This is the readable specification.  SipHash (Aumasson & Bernstein, "SipHash:
a fast short-input PRF", 2012) is a keyed pseudo-random function: without the
128-bit key an outsider cannot predict or invert it, so a client cannot craft
5-tuples that all land on one backend (the hash-flooding attack the paper was
written against).  SipHash-1-3 (one compression round, three finalisation
rounds) is the variant Rust's std and Python's own ``str`` hash use for speed;
it keeps the keyed-PRF design with a smaller margin, a fair trade for a per-
packet hash whose key is rotated with the cluster seed.  Names (a control-plane
input, hashed once per table build) use the full SipHash-2-4.
"""

from __future__ import annotations

import numpy as np

MASK64 = (1 << 64) - 1


SIMD_LEVELS = ("scalar", "avx2", "avx512")
SIMD_LEVEL = "scalar"  # the twin has no lanes; the C module reports its own


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (64 - bits))) & MASK64


def _sipround(v: list[int]) -> None:
    v0, v1, v2, v3 = v
    v0 = (v0 + v1) & MASK64
    v1 = _rotl(v1, 13)
    v1 ^= v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & MASK64
    v3 = _rotl(v3, 16)
    v3 ^= v2
    v0 = (v0 + v3) & MASK64
    v3 = _rotl(v3, 21)
    v3 ^= v0
    v2 = (v2 + v1) & MASK64
    v1 = _rotl(v1, 17)
    v1 ^= v2
    v2 = _rotl(v2, 32)
    v[0], v[1], v[2], v[3] = v0, v1, v2, v3


def _siphash_words(k0: int, k1: int, words: list[int], compression: int, finalisation: int) -> int:
    """SipHash-c-d over 64-bit message words (the last one carries the length byte)."""
    v = [
        k0 ^ 0x736F6D6570736575,
        k1 ^ 0x646F72616E646F6D,
        k0 ^ 0x6C7967656E657261,
        k1 ^ 0x7465646279746573,
    ]
    for word in words:
        v[3] ^= word
        for _ in range(compression):
            _sipround(v)
        v[0] ^= word
    v[2] ^= 0xFF
    for _ in range(finalisation):
        _sipround(v)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def siphash24(k0: int, k1: int, data: bytes) -> int:
    """SipHash-2-4 of ``data`` under the 128-bit key (k0, k1)."""
    length = len(data)
    full = length & ~7
    words = [int.from_bytes(data[block : block + 8], "little") for block in range(0, full, 8)]
    words.append(((length & 0xFF) << 56) | int.from_bytes(data[full:], "little"))
    return _siphash_words(k0 & MASK64, k1 & MASK64, words, 2, 4)


def flow_hash(
    k0: int,
    k1: int,
    protocol: int,
    source_ip: int,
    destination_ip: int,
    source_port: int,
    destination_port: int,
) -> int:
    """SipHash-1-3 of one 5-tuple packed as m0 = sip<<32|dip, m1 = sport<<48|dport<<32|proto."""
    m0 = ((source_ip & 0xFFFFFFFF) << 32) | (destination_ip & 0xFFFFFFFF)
    m1 = ((source_port & 0xFFFF) << 48) | ((destination_port & 0xFFFF) << 32) | (protocol & 0xFF)
    return _siphash_words(k0 & MASK64, k1 & MASK64, [m0, m1, 16 << 56], 1, 3)


def flow_hash_array(
    k0: int,
    k1: int,
    protocols: np.ndarray,
    source_ips: np.ndarray,
    destination_ips: np.ndarray,
    source_ports: np.ndarray,
    destination_ports: np.ndarray,
    out: np.ndarray,
    simd_level: str | None = None,
) -> None:
    """Hash every 5-tuple of the equal-length input arrays into ``out``.

    ``simd_level`` is accepted for the C kernel's API and ignored: the twin
    hashes one flow at a time (``SIMD_LEVEL`` is always "scalar").
    """
    if simd_level is not None and simd_level not in SIMD_LEVELS:
        raise ValueError(f"simd_level must be one of {SIMD_LEVELS}, got {simd_level!r}")
    count = len(out)
    if not (
        len(protocols)
        == len(source_ips)
        == len(destination_ips)
        == len(source_ports)
        == len(destination_ports)
        == count
    ):
        raise ValueError("flow_hash_array: every array must have the length of out")
    for index in range(count):
        out[index] = flow_hash(
            k0,
            k1,
            int(protocols[index]),
            int(source_ips[index]),
            int(destination_ips[index]),
            int(source_ports[index]),
            int(destination_ports[index]),
        )
