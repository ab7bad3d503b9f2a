"""Keyed hashes in C: SipHash-2-4 of bytes and SipHash-1-3 of 5-tuples.

Thin ``def`` wrappers over the inline functions of ``flowhash_c.pxd``; the
pure-Python twin with the same API is ``dataplane/flowhash_py.py``.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

from dataplane.flowhash_c cimport (flow_hash13, flow_words0, flow_words1, shoal_flow_hash13_many,
                                   shoal_flowhash_simd_level, siphash24_bytes)

cnp.import_array()

cdef int SIMD_LEVEL_INDEX = shoal_flowhash_simd_level()
# Lanes used by flow_hash_array and the balancer kernel on this CPU (results are
# identical at every level; only the speed differs).
SIMD_LEVELS = ("scalar", "avx2", "avx512")
SIMD_LEVEL = SIMD_LEVELS[SIMD_LEVEL_INDEX]

cdef enum:
    HASH_BLOCK = 64  # flows whose message words are staged on the stack at a time


def siphash24(uint64_t k0, uint64_t k1, bytes data) -> int:
    """SipHash-2-4 of ``data`` under the 128-bit key (k0, k1)."""
    cdef const uint8_t* pointer = <const uint8_t*><char*>data
    return siphash24_bytes(k0, k1, pointer, len(data))


def flow_hash(uint64_t k0, uint64_t k1, uint32_t protocol, uint32_t source_ip, uint32_t destination_ip,
              uint32_t source_port, uint32_t destination_port) -> int:
    """SipHash-1-3 of one 5-tuple (see ``flow_hash13`` in the .pxd for the packing)."""
    return flow_hash13(k0, k1, protocol, source_ip, destination_ip, source_port, destination_port)


def flow_hash_array(uint64_t k0, uint64_t k1, const uint8_t[::1] protocols, const uint32_t[::1] source_ips,
                    const uint32_t[::1] destination_ips, const uint16_t[::1] source_ports,
                    const uint16_t[::1] destination_ports, uint64_t[::1] out, simd_level=None) -> None:
    """Hash every 5-tuple of the equal-length input arrays into ``out``.

    ``simd_level`` ("scalar", "avx2", "avx512") caps the lanes used, so tests
    can run every level this CPU has; above ``SIMD_LEVEL`` is a ValueError."""
    cdef Py_ssize_t count = out.shape[0]
    cdef int level = SIMD_LEVEL_INDEX
    if simd_level is not None:
        if simd_level not in SIMD_LEVELS:
            raise ValueError(f"simd_level must be one of {SIMD_LEVELS}, got {simd_level!r}")
        level = SIMD_LEVELS.index(simd_level)
        if level > SIMD_LEVEL_INDEX:
            raise ValueError(f"this CPU supports SIMD up to {SIMD_LEVEL}, not {simd_level}")
    if not (protocols.shape[0] == source_ips.shape[0] == destination_ips.shape[0]
            == source_ports.shape[0] == destination_ports.shape[0] == count):
        raise ValueError("flow_hash_array: every array must have the length of out")
    cdef Py_ssize_t base, index, block
    cdef uint64_t words0[HASH_BLOCK]
    cdef uint64_t words1[HASH_BLOCK]
    with nogil:
        base = 0
        while base < count:
            block = min(<Py_ssize_t>HASH_BLOCK, count - base)
            for index in range(block):
                words0[index] = flow_words0(source_ips[base + index], destination_ips[base + index])
                words1[index] = flow_words1(protocols[base + index], source_ports[base + index],
                                            destination_ports[base + index])
            shoal_flow_hash13_many(k0, k1, words0, words1, &out[base], <size_t>block, level)
            base += block
