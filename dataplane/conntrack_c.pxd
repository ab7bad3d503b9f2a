# cython: language_level=3
"""Connection-tracking table operations as inline C, to ``cimport`` from kernels.

    from dataplane.conntrack_c cimport ct_entry, ct_find, ct_claim, ...

The table is a numpy uint64 array of ``4 * capacity`` words viewed as
``ct_entry`` records of 32 bytes (two per cache line).  Open addressing with a
bounded probe window: an entry lives in one of the ``window`` slots after its
home slot fastrange(hash, capacity), wrapping.  Lookups scan the whole window
(no tombstones needed); inserts take a free slot, else an expired one, else
evict the entry closest to expiry.  The pure-Python twin and the readable
specification is ``dataplane/conntrack_py.py``.
"""
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

from dataplane.flowhash_c cimport fastrange32


ctypedef struct ct_entry:
    uint64_t addresses   # source_ip << 32 | destination_ip
    uint64_t ports       # source_port << 48 | destination_port << 32 | protocol << 8 | 1 (occupied)
    uint64_t value       # caller's value (< 2**56) << 8 | state
    uint64_t expires_ns  # absolute time on the injected clock


# States (TCP ones follow the flags seen in either direction; see conntrack_py).
cdef enum:
    CT_FREE = 0
    CT_SYN_SENT = 1
    CT_ESTABLISHED = 2
    CT_FIN_WAIT = 3
    CT_CLOSED = 4
    CT_UDP = 5

# Counter indices (the order of conntrack_py.COUNTER_NAMES).
cdef enum:
    CT_HITS = 0
    CT_MISSES = 1
    CT_INSERTED = 2
    CT_EXPIRED = 3
    CT_EVICTED = 4
    CT_OCCUPIED = 5
    CT_REMOVED = 6
    CT_REOPENED = 7

cdef enum:
    TCP_FIN = 0x01
    TCP_SYN = 0x02
    TCP_RST = 0x04
    TCP_ACK = 0x10
    PROTO_TCP = 6
    PROTO_UDP = 17


cdef inline uint64_t ct_addresses(uint32_t source_ip, uint32_t destination_ip) noexcept nogil:
    return ((<uint64_t>source_ip) << 32) | destination_ip


cdef inline uint64_t ct_ports(uint32_t protocol, uint32_t source_port, uint32_t destination_port) noexcept nogil:
    return (((<uint64_t>(source_port & 0xFFFF)) << 48) | ((<uint64_t>(destination_port & 0xFFFF)) << 32)
            | ((<uint64_t>(protocol & 0xFF)) << 8) | 1)


cdef inline uint64_t ct_ports_of_flow_words(uint64_t words1) noexcept nogil:
    """``ct_ports`` from the flow hash's second word (sport << 48 | dport << 32 | protocol)."""
    return (words1 & 0xFFFFFFFF00000000ULL) | ((words1 & 0xFF) << 8) | 1


cdef inline int64_t ct_find(ct_entry* table, uint32_t capacity, uint32_t window, uint64_t flow_hash,
                            uint64_t addresses, uint64_t ports) noexcept nogil:
    """Index of the entry of this key in its window, or -1 (expired entries included)."""
    cdef uint32_t index = fastrange32(<uint32_t>flow_hash, capacity)
    cdef uint32_t step
    for step in range(window):
        if table[index].ports == ports and table[index].addresses == addresses:
            return index
        index += 1
        if index == capacity:
            index = 0
    return -1


cdef inline int64_t ct_claim(ct_entry* table, uint32_t capacity, uint32_t window, uint64_t flow_hash,
                             uint64_t now_ns, uint64_t* counters) noexcept nogil:
    """A slot in the window for a new entry: free, else expired, else the soonest to expire."""
    cdef uint32_t index = fastrange32(<uint32_t>flow_hash, capacity)
    cdef uint32_t step
    cdef int64_t expired = -1, victim = -1
    cdef uint64_t victim_expires = 0xFFFFFFFFFFFFFFFFULL
    for step in range(window):
        if table[index].ports == 0:
            counters[CT_OCCUPIED] += 1
            return index
        if expired < 0 and table[index].expires_ns <= now_ns:
            expired = index
        if table[index].expires_ns < victim_expires:
            victim_expires = table[index].expires_ns
            victim = index
        index += 1
        if index == capacity:
            index = 0
    if expired >= 0:
        counters[CT_EXPIRED] += 1
        return expired
    counters[CT_EVICTED] += 1
    return victim


cdef inline uint32_t ct_initial_state(uint32_t protocol, uint32_t tcp_flags) noexcept nogil:
    if protocol != PROTO_TCP:
        return CT_UDP
    if (tcp_flags & TCP_SYN) and not (tcp_flags & TCP_ACK):
        return ct_next_state(CT_SYN_SENT, protocol, tcp_flags)
    # Mid-flow pickup (e.g. after this node restarted): Maglev sends the flow to
    # the backend every node would pick, so trust it and call it established.
    return ct_next_state(CT_ESTABLISHED, protocol, tcp_flags)


cdef inline uint32_t ct_next_state(uint32_t state, uint32_t protocol, uint32_t tcp_flags) noexcept nogil:
    if protocol != PROTO_TCP:
        return CT_UDP
    if tcp_flags & TCP_RST:
        return CT_CLOSED
    if tcp_flags & TCP_FIN:
        return CT_CLOSED if state == CT_CLOSED else CT_FIN_WAIT
    if state == CT_SYN_SENT and (tcp_flags & TCP_ACK) and not (tcp_flags & TCP_SYN):
        return CT_ESTABLISHED
    return state


cdef inline bint ct_reopens(uint32_t state, uint32_t protocol, uint32_t tcp_flags, bint is_reply) noexcept nogil:
    """A client SYN on a closed entry starts a new connection (like Linux TIME_WAIT reuse)."""
    return (protocol == PROTO_TCP and state == CT_CLOSED and not is_reply
            and (tcp_flags & TCP_SYN) != 0 and (tcp_flags & TCP_ACK) == 0)


cdef inline void ct_write(ct_entry* entry, uint64_t addresses, uint64_t ports, uint64_t value,
                          uint32_t state, uint64_t expires_ns) noexcept nogil:
    entry.addresses = addresses
    entry.ports = ports
    entry.value = (value << 8) | state
    entry.expires_ns = expires_ns


cdef inline void ct_clear(ct_entry* entry, uint64_t* counters) noexcept nogil:
    entry.addresses = 0
    entry.ports = 0
    entry.value = 0
    entry.expires_ns = 0
    counters[CT_OCCUPIED] -= 1
