"""Maglev lookup-table population in C (Eisenbud et al., NSDI 2016, s.3.4).

The pure-Python twin with the same API, and the readable specification of the
algorithm (weights included), is ``dataplane/maglev_py.py``; validation of
arguments lives in ``dataplane/maglev.py``.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc

from dataplane.flowhash_c cimport siphash24_bytes

cnp.import_array()

# The skip hash uses a second key so offset and skip are independent (s.3.4
# asks for two different hash functions of the name).
cdef uint64_t SKIP_KEY_TWEAK = 0x9E3779B97F4A7C15ULL


def permutation_parameters(list names, uint32_t size, uint64_t k0, uint64_t k1):
    """(offsets, skips) of each name: offset = h1 mod M, skip = h2 mod (M-1) + 1."""
    cdef Py_ssize_t count = len(names), index
    offsets = np.empty(count, dtype=np.uint32)
    skips = np.empty(count, dtype=np.uint32)
    cdef uint32_t[::1] offsets_view = offsets
    cdef uint32_t[::1] skips_view = skips
    cdef bytes name
    for index in range(count):
        name = names[index]
        offsets_view[index] = siphash24_bytes(k0, k1, <const uint8_t*><char*>name, len(name)) % size
        if size > 1:
            skips_view[index] = siphash24_bytes(k0 ^ SKIP_KEY_TWEAK, k1 ^ SKIP_KEY_TWEAK,
                                                <const uint8_t*><char*>name, len(name)) % (size - 1) + 1
        else:
            skips_view[index] = 1
    return offsets, skips


cdef void _populate(const uint32_t* offsets, const uint32_t* skips, const int64_t* weights,
                    Py_ssize_t count, uint32_t size, int32_t* table,
                    uint32_t* positions, int64_t* credits) noexcept nogil:
    cdef Py_ssize_t index
    cdef uint32_t filled = 0, slot, skip
    cdef int64_t weight_max = 0
    for index in range(count):
        positions[index] = offsets[index]
        credits[index] = 0
        if weights[index] > weight_max:
            weight_max = weights[index]
    for slot in range(size):
        table[slot] = -1
    if weight_max == 0:
        return
    while True:
        for index in range(count):
            credits[index] += weights[index]
            if credits[index] < weight_max:
                continue
            credits[index] -= weight_max
            # Next preferred slot of this backend that is still free (the paper's
            # Pseudocode 1, with next[i] kept as a position, not an index j).
            slot = positions[index]
            skip = skips[index]
            while table[slot] >= 0:
                slot += skip
                if slot >= size:
                    slot -= size
            table[slot] = <int32_t>index
            slot += skip
            if slot >= size:
                slot -= size
            positions[index] = slot
            filled += 1
            if filled == size:
                return


def populate(list names, const int64_t[::1] weights, uint32_t size, uint64_t k0, uint64_t k1):
    """The Maglev table: int32 array of ``size`` indices into ``names`` (-1 if no weight)."""
    cdef Py_ssize_t count = len(names)
    if weights.shape[0] != count:
        raise ValueError("populate: one weight per name")
    offsets, skips = permutation_parameters(names, size, k0, k1)
    cdef uint32_t[::1] offsets_view = offsets
    cdef uint32_t[::1] skips_view = skips
    table = np.empty(size, dtype=np.int32)
    cdef int32_t[::1] table_view = table
    cdef uint32_t* positions = <uint32_t*>malloc(max(count, 1) * sizeof(uint32_t))
    cdef int64_t* credits = <int64_t*>malloc(max(count, 1) * sizeof(int64_t))
    if positions == NULL or credits == NULL:
        free(positions)
        free(credits)
        raise MemoryError("populate: no memory for per-backend state")
    try:
        with nogil:
            _populate(&offsets_view[0] if count else NULL, &skips_view[0] if count else NULL,
                      &weights[0] if count else NULL, count, size, &table_view[0], positions, credits)
    finally:
        free(positions)
        free(credits)
    return table
