"""Maglev lookup-table population in C (Eisenbud et al., NSDI 2016, s.3.4).

``populate`` is the stable rule (quotas, then rounds of preference rank) and
``populate_greedy`` the paper's Pseudocode 1.  The pure-Python twin with the
same API, and the readable specification of both rules (weights included), is
``dataplane/maglev_py.py``; validation of arguments lives in
``dataplane/maglev.py``.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, qsort

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


cdef void _populate_greedy(const uint32_t* offsets, const uint32_t* skips, const int64_t* weights,
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


cdef tuple _prepare(list names, const int64_t[::1] weights, uint32_t size, uint64_t k0, uint64_t k1):
    """What both fill rules start from: (offsets, skips, an empty int32 table)."""
    if weights.shape[0] != len(names):
        raise ValueError("populate: one weight per name")
    offsets, skips = permutation_parameters(names, size, k0, k1)
    return offsets, skips, np.empty(size, dtype=np.int32)


def populate_greedy(list names, const int64_t[::1] weights, uint32_t size, uint64_t k0, uint64_t k1):
    """The paper's Pseudocode 1 with credit weights: int32 array of ``size``
    indices into ``names`` (-1 if no weight)."""
    cdef Py_ssize_t count = len(names)
    offsets, skips, table = _prepare(names, weights, size, k0, k1)
    cdef uint32_t[::1] offsets_view = offsets
    cdef uint32_t[::1] skips_view = skips
    cdef int32_t[::1] table_view = table
    cdef uint32_t* positions = <uint32_t*>malloc(max(count, 1) * sizeof(uint32_t))
    cdef int64_t* credits = <int64_t*>malloc(max(count, 1) * sizeof(int64_t))
    if positions == NULL or credits == NULL:
        free(positions)
        free(credits)
        raise MemoryError("populate: no memory for per-backend state")
    try:
        with nogil:
            _populate_greedy(&offsets_view[0] if count else NULL, &skips_view[0] if count else NULL,
                      &weights[0] if count else NULL, count, size, &table_view[0], positions, credits)
    finally:
        free(positions)
        free(credits)
    return table


ctypedef struct Remainder:
    uint64_t remainder
    Py_ssize_t index


cdef int _larger_remainder_first(const void* left, const void* right) noexcept nogil:
    cdef const Remainder* a = <const Remainder*>left
    cdef const Remainder* b = <const Remainder*>right
    if a.remainder != b.remainder:
        return -1 if a.remainder > b.remainder else 1
    return -1 if a.index < b.index else (1 if a.index > b.index else 0)


cdef int _quotas(const int64_t* weights, Py_ssize_t count, uint32_t size, int64_t* needs) noexcept nogil:
    """``maglev_py.quotas`` in C; returns -1 when out of memory.  size * w fits
    in 64 bits (size < 2**25, w < 2**32), and so does the sum of the weights."""
    cdef uint64_t total = 0, left = size
    cdef Py_ssize_t index
    for index in range(count):
        total += <uint64_t>weights[index]
    if total == 0:
        for index in range(count):
            needs[index] = 0
        return 0
    cdef Remainder* remainders = <Remainder*>malloc(count * sizeof(Remainder))
    if remainders == NULL:
        return -1
    for index in range(count):
        needs[index] = <int64_t>((<uint64_t>size * <uint64_t>weights[index]) / total)
        remainders[index].remainder = (<uint64_t>size * <uint64_t>weights[index]) % total
        remainders[index].index = index
        left -= <uint64_t>needs[index]
    qsort(remainders, count, sizeof(Remainder), _larger_remainder_first)
    for index in range(<Py_ssize_t>left):
        needs[remainders[index].index] += 1
    free(remainders)
    return 0


def quotas(const int64_t[::1] weights, uint32_t size):
    """Slots per backend (largest-remainder rule, ties to the lower index), as
    ``maglev_py.quotas``; int64 array."""
    cdef Py_ssize_t count = weights.shape[0]
    needs = np.zeros(count, dtype=np.int64)
    cdef int64_t[::1] needs_view = needs
    if count and _quotas(&weights[0], count, size, &needs_view[0]) < 0:
        raise MemoryError("quotas: no memory for remainders")
    return needs


cdef enum:
    FEW_CLAIMANTS = 128  # at most this many backends finish by next-free scans (_finish_by_next_free)


ctypedef struct Claimant:
    int32_t index
    uint32_t position
    uint32_t skip
    int32_t need


cdef void _populate_ranked(Claimant* waiting, Py_ssize_t waiting_count, uint32_t size,
                           int32_t* table) noexcept nogil:
    cdef Py_ssize_t read, write
    cdef Claimant claimant
    cdef uint32_t slot
    cdef int32_t owner, is_free
    # The rounds end once few backends wait and most slots are taken: one in
    # eight of the backends that started, at most FEW_CLAIMANTS.
    cdef Py_ssize_t few = min(<Py_ssize_t>FEW_CLAIMANTS, max(<Py_ssize_t>1, waiting_count // 8))
    for slot in range(size):
        table[slot] = -1
    while waiting_count > few:
        # One round of preference rank: each waiting backend asks for the next
        # slot of its list.  The waiting list is packed in place (index order
        # kept), so a round is one sequential pass plus the table probes.
        # Branch-free: whether a slot is free is a coin toss in the middle
        # rounds, and mispredicted branches cost more than the stores.
        write = 0
        for read in range(waiting_count):
            claimant = waiting[read]
            slot = claimant.position
            owner = table[slot]
            is_free = owner < 0
            table[slot] = claimant.index if is_free else owner
            claimant.need -= is_free
            slot += claimant.skip
            slot -= size if slot >= size else 0
            claimant.position = slot
            waiting[write] = claimant
            write += claimant.need > 0
        waiting_count = write
    if waiting_count > 0:
        _finish_by_next_free(waiting, waiting_count, size, table)


cdef inline uint32_t _next_free(Claimant* claimant, uint32_t size, int32_t* table, uint64_t* rank) noexcept nogil:
    """Advance ``claimant`` (and its ``rank``) to the first slot of its list,
    from its current position on, that is still free; return that slot."""
    cdef uint32_t slot = claimant.position
    while table[slot] >= 0:
        slot += claimant.skip
        if slot >= size:
            slot -= size
        rank[0] += 1
    claimant.position = slot
    return slot


cdef void _sift_down(uint64_t* heap, Py_ssize_t count, Py_ssize_t at) noexcept nogil:
    cdef Py_ssize_t child
    cdef uint64_t item = heap[at]
    while True:
        child = 2 * at + 1
        if child >= count:
            break
        if child + 1 < count and heap[child + 1] < heap[child]:
            child += 1
        if heap[child] >= item:
            break
        heap[at] = heap[child]
        at = child
    heap[at] = item


cdef void _finish_by_next_free(Claimant* waiting, Py_ssize_t waiting_count, uint32_t size,
                               int32_t* table) noexcept nogil:
    """The last rounds, once few backends still need slots: most of their
    probes hit taken slots, so instead of a round per rank, each backend scans
    ahead to its next free slot and the claims are taken in (rank, index)
    order from a heap.  Same result as the rounds: a pair (rank, backend)
    whose slot is taken does nothing in either, and the claims happen in the
    same order.  Keys are rank << 32 | waiting position (positions follow the
    index order, so ties go to the lower index as in a round)."""
    cdef Py_ssize_t count = waiting_count, at
    cdef uint64_t heap[FEW_CLAIMANTS]
    cdef uint64_t ranks[FEW_CLAIMANTS]
    cdef uint64_t key
    cdef uint32_t slot
    cdef Claimant* claimant
    for at in range(count):
        ranks[at] = 0  # ranks relative to the current round: only the order matters
        _next_free(waiting + at, size, table, ranks + at)
        heap[at] = (ranks[at] << 32) | <uint64_t>at
    for at in range(count // 2 - 1, -1, -1):
        _sift_down(heap, count, at)
    while count > 0:
        key = heap[0]
        at = <Py_ssize_t>(key & 0xFFFFFFFFULL)
        claimant = waiting + at
        slot = claimant.position
        if table[slot] >= 0:
            # Taken since this backend last looked: look again, same backend.
            _next_free(claimant, size, table, ranks + at)
            heap[0] = (ranks[at] << 32) | <uint64_t>at
            _sift_down(heap, count, 0)
            continue
        table[slot] = claimant.index
        claimant.need -= 1
        if claimant.need == 0:
            count -= 1
            heap[0] = heap[count]
            if count > 0:
                _sift_down(heap, count, 0)
            continue
        slot += claimant.skip
        if slot >= size:
            slot -= size
        claimant.position = slot
        ranks[at] += 1
        _next_free(claimant, size, table, ranks + at)
        heap[0] = (ranks[at] << 32) | <uint64_t>at
        _sift_down(heap, count, 0)


def populate(list names, const int64_t[::1] weights, uint32_t size, uint64_t k0, uint64_t k1):
    """The stable Maglev table: int32 array of ``size`` indices into ``names``,
    all -1 if every weight is 0."""
    cdef Py_ssize_t count = len(names), index, waiting_count = 0
    offsets, skips, table = _prepare(names, weights, size, k0, k1)
    cdef uint32_t[::1] offsets_view = offsets
    cdef uint32_t[::1] skips_view = skips
    cdef int32_t[::1] table_view = table
    cdef int64_t* needs = <int64_t*>malloc(max(count, 1) * sizeof(int64_t))
    cdef Claimant* waiting = <Claimant*>malloc(max(count, 1) * sizeof(Claimant))
    if needs == NULL or waiting == NULL or (count and _quotas(&weights[0], count, size, needs) < 0):
        free(needs)
        free(waiting)
        raise MemoryError("populate: no memory for per-backend state")
    for index in range(count):
        if needs[index] > 0:
            waiting[waiting_count].index = <int32_t>index
            waiting[waiting_count].position = offsets_view[index]
            waiting[waiting_count].skip = skips_view[index]
            # A quota is at most size < 2**25: it fits.
            waiting[waiting_count].need = <int32_t>needs[index]
            waiting_count += 1
    try:
        with nogil:
            _populate_ranked(waiting, waiting_count, size, &table_view[0])
    finally:
        free(needs)
        free(waiting)
    return table
