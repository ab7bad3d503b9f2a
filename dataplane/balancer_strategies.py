"""Frames and hypothesis strategies for balancer, NAT and conntrack tests.

Frames are built with ``struct`` (cheap to generate in bulk); the NAT tests
check what the balancer writes with scapy.  Addresses come from the
documentation and benchmarking ranges: clients 192.0.2.0/24, VIPs
198.18.0.0/24, backends 198.18.1.0/24.
"""

from __future__ import annotations

import struct

from hypothesis import strategies as st

TCP_FLAG_SETS = (
    0x02,
    0x12,
    0x10,
    0x18,
    0x11,
    0x19,
    0x04,
    0x14,
    0x01,
    0x00,
)  # SYN, SYN+ACK, ACK, PSH+ACK, FIN..


def ones_complement_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def internet_checksum(data: bytes) -> int:
    return ~ones_complement_sum(data) & 0xFFFF


def mac_bytes(mac: int) -> bytes:
    return mac.to_bytes(6, "big")


def ip_int(text: str) -> int:
    return int.from_bytes(bytes(int(part) for part in text.split(".")), "big")


def tcp_udp_frame(
    source_ip: int,
    destination_ip: int,
    protocol: int,
    source_port: int,
    destination_port: int,
    tcp_flags: int = 0x10,
    payload: bytes = b"",
    source_mac: int = 0x020000000001,
    destination_mac: int = 0x020000000002,
    ip_options: bytes = b"",
    udp_checksum: bool = True,
    ident: int = 1,
    flags_fragment: int = 0x4000,
    padding: bytes = b"",
) -> bytes:
    """An Ethernet + IPv4 (+ options) + TCP/UDP frame with correct checksums."""
    if len(ip_options) % 4:
        raise ValueError("IPv4 options must be a multiple of 4 bytes")
    if protocol == 6:
        l4 = struct.pack(
            "!HHIIBBHHH", source_port, destination_port, 1000, 2000, 0x50, tcp_flags, 65535, 0, 0
        )
    else:
        l4 = struct.pack("!HHHH", source_port, destination_port, 8 + len(payload), 0)
    segment = l4 + payload
    pseudo = struct.pack("!IIBBH", source_ip, destination_ip, 0, protocol, len(segment))
    check = internet_checksum(pseudo + segment)
    if protocol == 6:
        segment = segment[:16] + struct.pack("!H", check) + segment[18:]
    elif udp_checksum:
        segment = segment[:6] + struct.pack("!H", check or 0xFFFF) + segment[8:]
    header_bytes = 20 + len(ip_options)
    header = bytearray(
        struct.pack(
            "!BBHHHBBHII",
            0x40 | header_bytes // 4,
            0,
            header_bytes + len(segment),
            ident,
            flags_fragment,
            64,
            protocol,
            0,
            source_ip,
            destination_ip,
        )
        + ip_options
    )
    header[10:12] = struct.pack("!H", internet_checksum(bytes(header)))
    return (
        mac_bytes(destination_mac)
        + mac_bytes(source_mac)
        + b"\x08\x00"
        + bytes(header)
        + segment
        + padding
    )


@st.composite
def ip_options(draw: st.DrawFn) -> bytes:
    words = draw(st.integers(0, 3))
    return b"\x01" * (4 * words - 1) + b"\x00" if words else b""


@st.composite
def noise_frames(draw: st.DrawFn) -> bytes:
    """Frames the balancer must pass or drop by rule, never crash on."""
    kind = draw(
        st.sampled_from(
            ["bytes", "arp", "ipv6", "icmp", "fragment", "truncated", "bad_version", "short_total"]
        )
    )
    if kind == "bytes":
        return draw(st.binary(max_size=120))
    base = tcp_udp_frame(
        ip_int("192.0.2.9"),
        ip_int("198.18.0.1"),
        draw(st.sampled_from([6, 17])),
        draw(st.integers(1, 65535)),
        draw(st.integers(1, 65535)),
        payload=draw(st.binary(max_size=16)),
    )
    if kind == "arp":
        return base[:12] + b"\x08\x06" + base[14:42]
    if kind == "ipv6":
        return base[:12] + b"\x86\xdd" + base[14:]
    if kind == "icmp":
        return base[:23] + b"\x01" + base[24:]
    if kind == "fragment":
        return (
            base[:20] + draw(st.sampled_from([b"\x20\x00", b"\x00\x10", b"\x3f\xff"])) + base[22:]
        )
    if kind == "truncated":
        return base[: draw(st.integers(0, len(base) - 1))]
    if kind == "bad_version":
        return base[:14] + bytes([draw(st.sampled_from([0x65, 0x44, 0x40, 0x05]))]) + base[15:]
    return base[:16] + struct.pack("!H", draw(st.integers(0, 19))) + base[18:]
