"""Pure-Python twin of the ``nat_c.pxd`` helpers: parse a frame, NAT it in place.

The readable specification of what the balancer does to a frame.

Parsing rule (every frame gets exactly one outcome, counted by reason; the
batch path never raises on packet contents):

    shorter than an Ethernet header            -> truncated  (DROP)
    EtherType not IPv4 (ARP, IPv6, VLAN, ...)   -> non_ipv4   (PASS untouched)
    shorter than Ethernet + 20-byte IPv4        -> truncated  (DROP)
    IP version != 4 or IHL < 5, or total length
      smaller than the IP header                -> bad_ip_header (DROP)
    IP total length beyond the frame            -> truncated  (DROP)
    IP protocol neither TCP nor UDP (ICMP, ...) -> not_tcp_udp (PASS untouched)
    TCP/UDP fragment (MF set or offset != 0)    -> fragment   (DROP: without
        reassembly the ports of later fragments are unknown, so the pieces of
        one datagram could reach different backends; TCP sets DF, so clients
        see this only for fragmented UDP, as with Katran)
    IP payload shorter than the TCP (20) or UDP
      (8) header                                -> truncated  (DROP)

Ethernet padding after the IP total length is kept and ignored.  IPv4
options are allowed (the L4 header starts at IHL * 4).  Checksums are not
verified: the incremental update (RFC 1624) carries any existing error into
the new checksum, so a corrupt packet stays detectably corrupt for the host
that receives it.

The TTL is not decremented: the balancer rewrites frames on a layer-2 hop of
the overlay, it does not route them.

Rewrite: the request's destination (or the reply's source) IPv4 address and
port are replaced, and the destination (source) MAC when one is given.  The
IPv4 header checksum and the TCP/UDP checksum (whose pseudo-header includes
the addresses) are updated with RFC 1624 eqn. 3; a UDP checksum of 0 means
"none" (RFC 768) and stays 0, and a computed UDP checksum of 0 is sent as
0xFFFF.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

(
    PARSE_OK,
    PARSE_NON_IPV4,
    PARSE_NOT_TCP_UDP,
    PARSE_TRUNCATED,
    PARSE_BAD_IP_HEADER,
    PARSE_FRAGMENT,
) = range(6)
PARSE_NAMES = ("ok", "non_ipv4", "not_tcp_udp", "truncated", "bad_ip_header", "fragment")
ETH_HEADER_BYTES = 14


class ParsedFrame(NamedTuple):
    l3: int
    l4: int
    protocol: int
    source_ip: int
    destination_ip: int
    source_port: int
    destination_port: int
    tcp_flags: int


def nat_parse(frame: bytes) -> tuple[int, ParsedFrame | None]:
    """(status, parsed) of one frame; ``parsed`` is None unless status is PARSE_OK."""
    length = len(frame)
    if length < ETH_HEADER_BYTES:
        return PARSE_TRUNCATED, None
    if int.from_bytes(frame[12:14], "big") != 0x0800:
        return PARSE_NON_IPV4, None
    if length < ETH_HEADER_BYTES + 20:
        return PARSE_TRUNCATED, None
    version_ihl = frame[14]
    header_bytes = (version_ihl & 0x0F) * 4
    if version_ihl >> 4 != 4 or header_bytes < 20:
        return PARSE_BAD_IP_HEADER, None
    total_bytes = int.from_bytes(frame[16:18], "big")
    if total_bytes < header_bytes:
        return PARSE_BAD_IP_HEADER, None
    if ETH_HEADER_BYTES + total_bytes > length:
        return PARSE_TRUNCATED, None
    protocol = frame[23]
    if protocol not in (6, 17):
        return PARSE_NOT_TCP_UDP, None
    if int.from_bytes(frame[20:22], "big") & 0x3FFF:
        return PARSE_FRAGMENT, None
    if total_bytes - header_bytes < (20 if protocol == 6 else 8):
        return PARSE_TRUNCATED, None
    l4 = ETH_HEADER_BYTES + header_bytes
    return PARSE_OK, ParsedFrame(
        l3=ETH_HEADER_BYTES,
        l4=l4,
        protocol=protocol,
        source_ip=int.from_bytes(frame[26:30], "big"),
        destination_ip=int.from_bytes(frame[30:34], "big"),
        source_port=int.from_bytes(frame[l4 : l4 + 2], "big"),
        destination_port=int.from_bytes(frame[l4 + 2 : l4 + 4], "big"),
        tcp_flags=frame[l4 + 13] if protocol == 6 else 0,
    )


def checksum_update(
    check: int, old_address: int, new_address: int, old_port: int, new_port: int
) -> int:
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), normalised to match a full recomputation."""
    total = ~check & 0xFFFF
    total += (~(old_address >> 16) & 0xFFFF) + (new_address >> 16)
    total += (~old_address & 0xFFFF) + (new_address & 0xFFFF)
    total += (~old_port & 0xFFFF) + (new_port & 0xFFFF)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    if total == 0:
        total = 0xFFFF
    return ~total & 0xFFFF


def _load16(buffer: np.ndarray, at: int) -> int:
    return (int(buffer[at]) << 8) | int(buffer[at + 1])


def _store16(buffer: np.ndarray, at: int, value: int) -> None:
    buffer[at] = (value >> 8) & 0xFF
    buffer[at + 1] = value & 0xFF


def nat_rewrite(
    buffer: np.ndarray,
    start: int,
    parsed: ParsedFrame,
    destination: bool,
    new_ip: int,
    new_port: int,
    new_mac: int,
) -> None:
    """Rewrite the destination (request) or source (reply) address, port and MAC in place."""
    l3 = start + parsed.l3
    l4 = start + parsed.l4
    if destination:
        old_ip, old_port = parsed.destination_ip, parsed.destination_port
        address_at, port_at, mac_at = l3 + 16, l4 + 2, start
    else:
        old_ip, old_port = parsed.source_ip, parsed.source_port
        address_at, port_at, mac_at = l3 + 12, l4, start + 6
    _store16(buffer, l3 + 10, checksum_update(_load16(buffer, l3 + 10), old_ip, new_ip, 0, 0))
    check_at = l4 + (16 if parsed.protocol == 6 else 6)
    check = _load16(buffer, check_at)
    if parsed.protocol == 6:
        _store16(buffer, check_at, checksum_update(check, old_ip, new_ip, old_port, new_port))
    elif check != 0:
        check = checksum_update(check, old_ip, new_ip, old_port, new_port)
        _store16(buffer, check_at, check if check != 0 else 0xFFFF)
    buffer[address_at : address_at + 4] = np.frombuffer(new_ip.to_bytes(4, "big"), dtype=np.uint8)
    _store16(buffer, port_at, new_port)
    if new_mac >= 0:
        buffer[mac_at : mac_at + 6] = np.frombuffer(new_mac.to_bytes(6, "big"), dtype=np.uint8)
