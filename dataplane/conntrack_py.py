"""Pure-Python twin of ``conntrack_c``: the bounded connection-tracking table.

The readable specification.  The table is a numpy uint64 array of
``4 * capacity`` words; entry i is words [4i, 4i+4):

    addresses  = source_ip << 32 | destination_ip
    ports      = source_port << 48 | destination_port << 32 | protocol << 8 | 1
                 (0 means the slot is free)
    value      = caller's value (< 2**56) << 8 | state
    expires_ns = absolute expiry time on the injected clock

Open addressing with a bounded probe window (``window`` slots from the home
slot fastrange(low 32 bits of the flow hash, capacity), wrapping).  A lookup
scans the whole window, so deleting needs no tombstones and a lookup costs at
most ``window`` entries.  An insert takes the first free slot of the window,
else the first expired one (counted ``expired``), else evicts the entry that
would expire soonest (counted ``evicted``: the table is under pressure).  The
table never grows: capacity is fixed at creation.

TCP states from the flags of packets in either direction (a simplification of
Linux nf_conntrack's table, enough to choose timeouts):

    new flow: SYN without ACK -> SYN_SENT, any other packet -> ESTABLISHED
              (mid-flow pickup), then the rules below for RST and FIN
    RST                         -> CLOSED
    FIN                         -> FIN_WAIT (CLOSED stays CLOSED)
    SYN_SENT + ACK without SYN  -> ESTABLISHED
    a client SYN (no ACK) on a CLOSED entry reopens it as a new connection
    UDP (and any non-TCP)       -> UDP

Each state has its own timeout; every packet of the flow re-arms it.
"""

from __future__ import annotations

import numpy as np

from dataplane.flowhash_py import flow_hash

CT_FREE, CT_SYN_SENT, CT_ESTABLISHED, CT_FIN_WAIT, CT_CLOSED, CT_UDP = range(6)
STATE_NAMES = ("FREE", "SYN_SENT", "ESTABLISHED", "FIN_WAIT", "CLOSED", "UDP")
COUNTER_NAMES = (
    "hits",
    "misses",
    "inserted",
    "expired",
    "evicted",
    "occupied",
    "removed",
    "reopened",
)
CT_HITS, CT_MISSES, CT_INSERTED, CT_EXPIRED, CT_EVICTED, CT_OCCUPIED, CT_REMOVED, CT_REOPENED = (
    range(8)
)
TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10
PROTO_TCP, PROTO_UDP = 6, 17
WORDS_PER_ENTRY = 4
ENTRY_BYTES = 32
MASK64 = (1 << 64) - 1


def ct_addresses(source_ip: int, destination_ip: int) -> int:
    return (source_ip << 32) | destination_ip


def ct_ports(protocol: int, source_port: int, destination_port: int) -> int:
    return (
        ((source_port & 0xFFFF) << 48)
        | ((destination_port & 0xFFFF) << 32)
        | ((protocol & 0xFF) << 8)
        | 1
    )


def fastrange32(hash_bits: int, size: int) -> int:
    return ((hash_bits & 0xFFFFFFFF) * size) >> 32


def ct_find(
    table: np.ndarray, capacity: int, window: int, flow: int, addresses: int, ports: int
) -> int:
    index = fastrange32(flow, capacity)
    for _ in range(window):
        base = index * WORDS_PER_ENTRY
        if int(table[base + 1]) == ports and int(table[base]) == addresses:
            return index
        index += 1
        if index == capacity:
            index = 0
    return -1


def ct_claim(
    table: np.ndarray, capacity: int, window: int, flow: int, now_ns: int, counters: np.ndarray
) -> int:
    index = fastrange32(flow, capacity)
    expired = victim = -1
    victim_expires = MASK64
    for _ in range(window):
        base = index * WORDS_PER_ENTRY
        expires = int(table[base + 3])
        if int(table[base + 1]) == 0:
            counters[CT_OCCUPIED] += 1
            return index
        if expired < 0 and expires <= now_ns:
            expired = index
        if expires < victim_expires:
            victim_expires = expires
            victim = index
        index += 1
        if index == capacity:
            index = 0
    if expired >= 0:
        counters[CT_EXPIRED] += 1
        return expired
    counters[CT_EVICTED] += 1
    return victim


def ct_next_state(state: int, protocol: int, tcp_flags: int) -> int:
    if protocol != PROTO_TCP:
        return CT_UDP
    if tcp_flags & TCP_RST:
        return CT_CLOSED
    if tcp_flags & TCP_FIN:
        return CT_CLOSED if state == CT_CLOSED else CT_FIN_WAIT
    if state == CT_SYN_SENT and tcp_flags & TCP_ACK and not tcp_flags & TCP_SYN:
        return CT_ESTABLISHED
    return state


def ct_initial_state(protocol: int, tcp_flags: int) -> int:
    if protocol != PROTO_TCP:
        return CT_UDP
    if tcp_flags & TCP_SYN and not tcp_flags & TCP_ACK:
        return ct_next_state(CT_SYN_SENT, protocol, tcp_flags)
    return ct_next_state(CT_ESTABLISHED, protocol, tcp_flags)


def ct_reopens(state: int, protocol: int, tcp_flags: int, is_reply: bool) -> bool:
    return (
        protocol == PROTO_TCP
        and state == CT_CLOSED
        and not is_reply
        and bool(tcp_flags & TCP_SYN)
        and not tcp_flags & TCP_ACK
    )


def ct_write(
    table: np.ndarray,
    index: int,
    addresses: int,
    ports: int,
    value: int,
    state: int,
    expires_ns: int,
) -> None:
    base = index * WORDS_PER_ENTRY
    table[base] = addresses
    table[base + 1] = ports
    table[base + 2] = ((value << 8) | state) & MASK64
    table[base + 3] = expires_ns & MASK64


def ct_clear(table: np.ndarray, index: int, counters: np.ndarray) -> None:
    base = index * WORDS_PER_ENTRY
    table[base : base + WORDS_PER_ENTRY] = 0
    counters[CT_OCCUPIED] -= 1


def track(
    table: np.ndarray,
    capacity: int,
    window: int,
    timeouts_ns: np.ndarray,
    counters: np.ndarray,
    k0: int,
    k1: int,
    protocol: int,
    source_ip: int,
    destination_ip: int,
    source_port: int,
    destination_port: int,
    tcp_flags: int,
    is_reply: bool,
    now_ns: int,
    value_if_new: int,
) -> tuple[int, int, bool]:
    """Observe one packet of the flow keyed by the client-side 5-tuple.

    Returns (value, state, is_new).  A reply (``is_reply``) never creates an
    entry: it returns (-1, 0, False) when the flow is not tracked.
    """
    flow = flow_hash(k0, k1, protocol, source_ip, destination_ip, source_port, destination_port)
    addresses = ct_addresses(source_ip, destination_ip)
    ports = ct_ports(protocol, source_port, destination_port)
    index = ct_find(table, capacity, window, flow, addresses, ports)
    if index >= 0 and int(table[index * 4 + 3]) > now_ns:
        word = int(table[index * 4 + 2])
        state = word & 0xFF
        if not ct_reopens(state, protocol, tcp_flags, is_reply):
            counters[CT_HITS] += 1
            state = ct_next_state(state, protocol, tcp_flags)
            table[index * 4 + 2] = (word & ~0xFF) | state
            table[index * 4 + 3] = (now_ns + int(timeouts_ns[state])) & MASK64
            return word >> 8, state, False
        counters[CT_REOPENED] += 1
    elif index >= 0:
        counters[CT_EXPIRED] += 1
    counters[CT_MISSES] += 1
    if is_reply:
        return -1, 0, False
    if index < 0:
        index = ct_claim(table, capacity, window, flow, now_ns, counters)
    state = ct_initial_state(protocol, tcp_flags)
    ct_write(table, index, addresses, ports, value_if_new, state, now_ns + int(timeouts_ns[state]))
    counters[CT_INSERTED] += 1
    return value_if_new, state, True


def sweep(table: np.ndarray, capacity: int, now_ns: int, counters: np.ndarray) -> int:
    """Free every expired entry; return how many (also counted as expired)."""
    freed = 0
    for index in range(capacity):
        base = index * WORDS_PER_ENTRY
        if int(table[base + 1]) != 0 and int(table[base + 3]) <= now_ns:
            ct_clear(table, index, counters)
            freed += 1
    counters[CT_EXPIRED] += freed
    return freed
