"""Connection tracking kernel in C: ``track``, ``sweep`` over a bounded table.

Thin ``def`` wrappers over ``conntrack_c.pxd`` (which the balancer kernel
cimports for its per-packet path).  The twin with the same API is
``dataplane/conntrack_py.py``; the Python-facing class is ``conntrack.ConnTrack``.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t, uint32_t, uint64_t

from dataplane.conntrack_c cimport (CT_CLOSED, CT_HITS, CT_INSERTED, CT_MISSES, CT_REMOVED, CT_REOPENED,
                                    CT_EXPIRED, ct_addresses, ct_claim, ct_clear, ct_entry, ct_find,
                                    ct_initial_state, ct_next_state, ct_ports, ct_reopens, ct_write)
from dataplane.flowhash_c cimport flow_hash13

cnp.import_array()


def track(uint64_t[::1] table, uint32_t capacity, uint32_t window, const uint64_t[::1] timeouts_ns,
          uint64_t[::1] counters, uint64_t k0, uint64_t k1, uint32_t protocol, uint32_t source_ip,
          uint32_t destination_ip, uint32_t source_port, uint32_t destination_port, uint32_t tcp_flags,
          bint is_reply, uint64_t now_ns, uint64_t value_if_new):
    """Observe one packet of the flow keyed by the client-side 5-tuple.

    Returns (value, state, is_new).  A reply (``is_reply``) never creates an
    entry: it returns (-1, 0, False) when the flow is not tracked.
    """
    cdef ct_entry* entries = <ct_entry*>&table[0]
    cdef uint64_t flow = flow_hash13(k0, k1, protocol, source_ip, destination_ip, source_port, destination_port)
    cdef uint64_t addresses = ct_addresses(source_ip, destination_ip)
    cdef uint64_t ports = ct_ports(protocol, source_port, destination_port)
    cdef int64_t index = ct_find(entries, capacity, window, flow, addresses, ports)
    cdef uint32_t state
    if index >= 0 and entries[index].expires_ns > now_ns:
        state = entries[index].value & 0xFF
        if not ct_reopens(state, protocol, tcp_flags, is_reply):
            counters[CT_HITS] += 1
            state = ct_next_state(state, protocol, tcp_flags)
            entries[index].value = (entries[index].value & ~(<uint64_t>0xFF)) | state
            entries[index].expires_ns = now_ns + timeouts_ns[state]
            return entries[index].value >> 8, state, False
        counters[CT_REOPENED] += 1
    elif index >= 0:
        counters[CT_EXPIRED] += 1
    counters[CT_MISSES] += 1
    if is_reply:
        return -1, 0, False
    if index < 0:
        index = ct_claim(entries, capacity, window, flow, now_ns, &counters[0])
    state = ct_initial_state(protocol, tcp_flags)
    ct_write(&entries[index], addresses, ports, value_if_new, state, now_ns + timeouts_ns[state])
    counters[CT_INSERTED] += 1
    return value_if_new, state, True


def sweep(uint64_t[::1] table, uint32_t capacity, uint64_t now_ns, uint64_t[::1] counters) -> int:
    """Free every expired entry; return how many (also counted as expired)."""
    cdef ct_entry* entries = <ct_entry*>&table[0]
    cdef uint32_t index
    cdef uint64_t freed = 0
    with nogil:
        for index in range(capacity):
            if entries[index].ports != 0 and entries[index].expires_ns <= now_ns:
                ct_clear(&entries[index], &counters[0])
                freed += 1
        counters[CT_EXPIRED] += freed
    return freed
