"""Pure-Python twin of ``balancer_c``: the per-packet path, readable.

For every frame of a batch (``process``):

1. Parse (``nat_py.nat_parse``): non-IPv4 and non-TCP/UDP frames PASS
   untouched, truncated, malformed and fragmented ones DROP; each counted.
2. (destination IP, port, protocol) is a service VIP -> a request:
   a. flow = SipHash-1-3 of the 5-tuple under the cluster key;
   b. look the flow up in connection tracking.  A live entry whose backend is
      still alive (same slot *and* generation: slots are reused, generations
      never) keeps its backend: established connections do not move when
      other backends come and go.  If its backend was removed, the service's
      ``on_backend_removed`` decides: ``reset`` drops the entry and returns
      RESET (a driver may answer with a TCP RST), ``repick`` takes the Maglev
      choice.  An expired entry, or a client SYN on a CLOSED entry, is a new
      connection;
   c. a new connection takes lookup[offset + fastrange(flow >> 32, M)] - its
      service's Maglev slot - and is inserted; no backend (all draining or
      none) -> DROP, counted ``drop_no_backend``;
   d. rewrite destination MAC, IP and port to the backend's (RFC 1624).
3. Else (source IP, port, protocol) is a backend endpoint -> a reply: the
   source becomes the VIP and its port (and the VIP's MAC when configured);
   the entry of the client-side tuple is refreshed when it exists and points
   at this backend (``reply_tracked``), else the reply is still rewritten
   (``reply_untracked``): an endpoint belongs to one service only.
4. Else PASS untouched (``pass_no_service``).
"""

from __future__ import annotations

import numpy as np

from dataplane import conntrack_py as ct
from dataplane.flowhash_py import flow_hash
from dataplane.nat_py import PARSE_OK, ParsedFrame, nat_parse, nat_rewrite

VERDICT_PASS, VERDICT_FORWARD, VERDICT_REPLY, VERDICT_DROP, VERDICT_RESET = range(5)
VERDICT_NAMES = ("pass", "forward", "reply", "drop", "reset")
COUNTER_NAMES = (
    "packets",
    "forward_new",
    "forward_tracked",
    "reply_tracked",
    "reply_untracked",
    "pass_non_ipv4",
    "pass_not_tcp_udp",
    "pass_no_service",
    "drop_truncated",
    "drop_bad_ip_header",
    "drop_fragment",
    "drop_no_backend",
    "drop_bad_slot",
    "reset_backend_gone",
    "repick_backend_gone",
)
(
    C_PACKETS,
    C_FORWARD_NEW,
    C_FORWARD_TRACKED,
    C_REPLY_TRACKED,
    C_REPLY_UNTRACKED,
    C_PASS_NON_IPV4,
    C_PASS_NOT_TCP_UDP,
    C_PASS_NO_SERVICE,
    C_DROP_TRUNCATED,
    C_DROP_BAD_IP_HEADER,
    C_DROP_FRAGMENT,
    C_DROP_NO_BACKEND,
    C_DROP_BAD_SLOT,
    C_RESET_BACKEND_GONE,
    C_REPICK_BACKEND_GONE,
) = range(len(COUNTER_NAMES))
S_VIP, S_PORT, S_PROTOCOL, S_TABLE_OFFSET, S_TABLE_SIZE, S_ON_REMOVED, S_VIP_MAC = range(7)
SERVICE_COLUMNS = 7
B_IP, B_PORT, B_MAC, B_GENERATION, B_ALIVE, B_SERVICE = range(6)
BACKEND_COLUMNS = 6
ON_REMOVED_RESET, ON_REMOVED_REPICK = 0, 1
PARSE_VERDICT = (
    VERDICT_FORWARD,
    VERDICT_PASS,
    VERDICT_PASS,
    VERDICT_DROP,
    VERDICT_DROP,
    VERDICT_DROP,
)
PARSE_COUNTER = (
    C_PACKETS,
    C_PASS_NON_IPV4,
    C_PASS_NOT_TCP_UDP,
    C_DROP_TRUNCATED,
    C_DROP_BAD_IP_HEADER,
    C_DROP_FRAGMENT,
)
MASK64 = (1 << 64) - 1


def endpoint_key(ip: int, port: int, protocol: int) -> int:
    return (ip << 32) | ((port & 0xFFFF) << 16) | ((protocol & 0xFF) << 8) | 1


def index_slot(key: int, bits: int) -> int:
    return ((key * 0x9E3779B97F4A7C15) & MASK64) >> (64 - bits)


def index_find(keys: np.ndarray, values: np.ndarray, bits: int, key: int) -> int:
    """Linear probing in a power-of-two table at most half full."""
    mask = (1 << bits) - 1
    slot = index_slot(key, bits)
    while int(keys[slot]) != 0:
        if int(keys[slot]) == key:
            return int(values[slot])
        slot = (slot + 1) & mask
    return -1


class Kernel:
    """The balancer's arrays; ``process`` runs batches over them."""

    def __init__(
        self,
        services,
        backends,
        lookup,
        service_keys,
        service_values,
        service_bits,
        endpoint_keys,
        endpoint_values,
        endpoint_bits,
        table,
        capacity,
        window,
        timeouts_ns,
        ct_counters,
        counters,
        k0,
        k1,
    ) -> None:
        if table.shape[0] < 4 * capacity or not 1 <= window <= capacity:
            raise ValueError("Kernel: conntrack table smaller than its capacity, or bad window")
        if service_keys.shape[0] != (1 << service_bits) or endpoint_keys.shape[0] != (
            1 << endpoint_bits
        ):
            raise ValueError("Kernel: index tables must have 2**bits slots")
        self.services = services.tolist()
        self.backends = backends.tolist()
        self.lookup = lookup
        self.service_keys, self.service_values, self.service_bits = (
            service_keys,
            service_values,
            service_bits,
        )
        self.endpoint_keys, self.endpoint_values, self.endpoint_bits = (
            endpoint_keys,
            endpoint_values,
            endpoint_bits,
        )
        self.table, self.capacity, self.window = table, capacity, window
        self.timeouts_ns = [int(value) for value in timeouts_ns]
        self.ct_counters = ct_counters
        self.counters = counters
        self.k0, self.k1 = k0, k1
        self.arrays = (
            services,
            backends,
            lookup,
            service_keys,
            service_values,
            endpoint_keys,
            endpoint_values,
            table,
            timeouts_ns,
            ct_counters,
            counters,
        )

    def process(self, buffer, offsets, lengths, count: int, verdicts, now_ns: int) -> None:
        """Balance the first ``count`` frames in place; one verdict per frame."""
        if count < 0 or count > len(offsets) or count > len(lengths) or count > len(verdicts):
            raise ValueError(f"process: count {count} outside the batch arrays")
        if isinstance(verdicts, np.ndarray) and (verdicts.ndim != 1 or not verdicts.flags.writeable):
            # What the compiled kernel's typed view refuses, refused before any
            # packet is counted (as there).
            raise ValueError("process: verdicts must be a writable 1-D array")
        counters = self.counters
        for packet in range(count):
            counters[C_PACKETS] += 1
            start, length = int(offsets[packet]), int(lengths[packet])
            if start + length > len(buffer):
                verdicts[packet] = VERDICT_DROP
                counters[C_DROP_BAD_SLOT] += 1
                continue
            status, parsed = nat_parse(buffer[start : start + length].tobytes())
            if status != PARSE_OK:
                verdicts[packet] = PARSE_VERDICT[status]
                counters[PARSE_COUNTER[status]] += 1
                continue
            verdicts[packet] = self._balance(buffer, start, parsed, now_ns)

    def _balance(self, buffer, start: int, parsed: ParsedFrame, now_ns: int) -> int:
        service = index_find(
            self.service_keys,
            self.service_values,
            self.service_bits,
            endpoint_key(parsed.destination_ip, parsed.destination_port, parsed.protocol),
        )
        if service >= 0:
            return self._request(buffer, start, parsed, service, now_ns)
        backend = index_find(
            self.endpoint_keys,
            self.endpoint_values,
            self.endpoint_bits,
            endpoint_key(parsed.source_ip, parsed.source_port, parsed.protocol),
        )
        if backend >= 0:
            return self._reply(buffer, start, parsed, backend, now_ns)
        self.counters[C_PASS_NO_SERVICE] += 1
        return VERDICT_PASS

    def _pick(self, service: int, flow: int) -> int:
        row = self.services[service]
        return int(self.lookup[row[S_TABLE_OFFSET] + ct.fastrange32(flow >> 32, row[S_TABLE_SIZE])])

    def _value(self, backend: int) -> int:
        return (self.backends[backend][B_GENERATION] << 24) | backend

    def _request(self, buffer, start: int, parsed: ParsedFrame, service: int, now_ns: int) -> int:
        counters, ct_counters, table = self.counters, self.ct_counters, self.table
        flow = flow_hash(
            self.k0,
            self.k1,
            parsed.protocol,
            parsed.source_ip,
            parsed.destination_ip,
            parsed.source_port,
            parsed.destination_port,
        )
        addresses = ct.ct_addresses(parsed.source_ip, parsed.destination_ip)
        ports = ct.ct_ports(parsed.protocol, parsed.source_port, parsed.destination_port)
        index = ct.ct_find(table, self.capacity, self.window, flow, addresses, ports)
        backend = -1
        if index >= 0:
            word = int(table[index * 4 + 2])
            if int(table[index * 4 + 3]) <= now_ns:
                ct_counters[ct.CT_EXPIRED] += 1
            elif ct.ct_reopens(word & 0xFF, parsed.protocol, parsed.tcp_flags, False):
                ct_counters[ct.CT_REOPENED] += 1
            else:
                ct_counters[ct.CT_HITS] += 1
                value = word >> 8
                backend = value & 0xFFFFFF
                state = ct.ct_next_state(word & 0xFF, parsed.protocol, parsed.tcp_flags)
                row = self.backends[backend] if backend < len(self.backends) else None
                if row is not None and row[B_ALIVE] and row[B_GENERATION] == value >> 24:
                    counters[C_FORWARD_TRACKED] += 1
                elif self.services[service][S_ON_REMOVED] == ON_REMOVED_REPICK:
                    backend = self._pick(service, flow)
                    if backend < 0:
                        ct.ct_clear(table, index, ct_counters)
                        ct_counters[ct.CT_REMOVED] += 1
                        counters[C_DROP_NO_BACKEND] += 1
                        return VERDICT_DROP
                    counters[C_REPICK_BACKEND_GONE] += 1
                else:
                    ct.ct_clear(table, index, ct_counters)
                    ct_counters[ct.CT_REMOVED] += 1
                    counters[C_RESET_BACKEND_GONE] += 1
                    return VERDICT_RESET
                table[index * 4 + 2] = (self._value(backend) << 8) | state
                table[index * 4 + 3] = (now_ns + self.timeouts_ns[state]) & MASK64
        if backend < 0:
            ct_counters[ct.CT_MISSES] += 1
            backend = self._pick(service, flow)
            if backend < 0:
                if index >= 0:
                    ct.ct_clear(table, index, ct_counters)
                    ct_counters[ct.CT_REMOVED] += 1
                counters[C_DROP_NO_BACKEND] += 1
                return VERDICT_DROP
            if index < 0:
                index = ct.ct_claim(table, self.capacity, self.window, flow, now_ns, ct_counters)
            state = ct.ct_initial_state(parsed.protocol, parsed.tcp_flags)
            ct.ct_write(
                table,
                index,
                addresses,
                ports,
                self._value(backend),
                state,
                now_ns + self.timeouts_ns[state],
            )
            ct_counters[ct.CT_INSERTED] += 1
            counters[C_FORWARD_NEW] += 1
        row = self.backends[backend]
        nat_rewrite(buffer, start, parsed, True, row[B_IP], row[B_PORT], row[B_MAC])
        return VERDICT_FORWARD

    def _reply(self, buffer, start: int, parsed: ParsedFrame, backend: int, now_ns: int) -> int:
        counters, ct_counters, table = self.counters, self.ct_counters, self.table
        service_row = self.services[self.backends[backend][B_SERVICE]]
        vip, vip_port = service_row[S_VIP], service_row[S_PORT]
        flow = flow_hash(
            self.k0,
            self.k1,
            parsed.protocol,
            parsed.destination_ip,
            vip,
            parsed.destination_port,
            vip_port,
        )
        index = ct.ct_find(
            table,
            self.capacity,
            self.window,
            flow,
            ct.ct_addresses(parsed.destination_ip, vip),
            ct.ct_ports(parsed.protocol, parsed.destination_port, vip_port),
        )
        if (
            index >= 0
            and int(table[index * 4 + 3]) > now_ns
            and int(table[index * 4 + 2]) >> 8 == self._value(backend)
        ):
            ct_counters[ct.CT_HITS] += 1
            word = int(table[index * 4 + 2])
            state = ct.ct_next_state(word & 0xFF, parsed.protocol, parsed.tcp_flags)
            table[index * 4 + 2] = (word & ~0xFF) | state
            table[index * 4 + 3] = (now_ns + self.timeouts_ns[state]) & MASK64
            counters[C_REPLY_TRACKED] += 1
        else:
            counters[C_REPLY_UNTRACKED] += 1
        nat_rewrite(buffer, start, parsed, False, vip, vip_port, service_row[S_VIP_MAC])
        return VERDICT_REPLY
