"""Hypothesis strategies for VXLAN tests: inner frames, tunnel parameters, batches.

Inner frames are built with ``struct`` (no scapy) so generation stays cheap;
the conformance tests check what we build with scapy.  Addresses for tunnels
come from the documentation/benchmarking ranges 192.0.2.0/24 and
198.18.0.0/15.
"""
from __future__ import annotations

import ipaddress
import struct
from typing import Any

from hypothesis import strategies as st

from dataplane import vxlan_common as vc
from dataplane.checksum_py import internet_checksum

INNER_KINDS = ("tcp", "udp", "icmp", "ipv4_other", "non_ip")
INNER_SIZE_MIN = 14
INNER_SIZE_MAX = 9000
_L4_HEADER_BYTES = {"tcp": 20, "udp": 8, "icmp": 8, "ipv4_other": 0}
_L4_PROTOCOL = {"tcp": 6, "udp": 17, "icmp": 1}


def ipv4_bytes(source: int, destination: int, protocol: int, payload_bytes: int, ident: int, flags_fragment: int,
               ttl: int) -> bytes:
    total_length = 20 + payload_bytes
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, total_length & 0xFFFF, ident, flags_fragment, ttl,
                                   protocol, 0, source.to_bytes(4, "big"), destination.to_bytes(4, "big")))
    header[10:12] = internet_checksum(header).to_bytes(2, "big")
    return bytes(header)


@st.composite
def inner_frames(draw: st.DrawFn, min_size: int = INNER_SIZE_MIN, max_size: int = INNER_SIZE_MAX) -> bytes:
    """An inner Ethernet frame: VLAN tagged or not; IPv4 TCP/UDP/ICMP/other or non-IP."""
    kind = draw(st.sampled_from(INNER_KINDS))
    vlan = draw(st.booleans())
    dst_mac = draw(st.binary(min_size=6, max_size=6))
    src_mac = draw(st.binary(min_size=6, max_size=6))
    tag = b""
    if vlan:
        tag = struct.pack("!HH", vc.ETHERTYPE_VLAN, draw(st.integers(0, 0xFFFF)))
    if kind == "non_ip":
        ethertype = draw(st.integers(0x0600, 0xFFFF).filter(lambda t: t not in (0x0800, 0x86DD, 0x8100, 0x88A8)))
        head = dst_mac + src_mac + tag + struct.pack("!H", ethertype)
        size = draw(st.integers(max(min_size, len(head)), max(max_size, len(head))))
        return head + draw(st.binary(min_size=size - len(head), max_size=size - len(head)))
    l4_bytes = _L4_HEADER_BYTES[kind]
    head_bytes = 14 + len(tag) + 20 + l4_bytes
    size = draw(st.integers(max(min_size, head_bytes), max(max_size, head_bytes)))
    ip_payload = size - 14 - len(tag) - 20
    protocol = _L4_PROTOCOL.get(kind) or draw(st.sampled_from([47, 50, 89, 253]))
    fragment = draw(st.sampled_from([0, 0, 0, 0x4000, 0x2000, 0x0010]))
    ip = ipv4_bytes(draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)), protocol, ip_payload,
                    draw(st.integers(0, 0xFFFF)), fragment, draw(st.integers(1, 255)))
    if kind == "tcp":
        l4 = struct.pack("!HHIIBBHHH", draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFF)),
                         draw(st.integers(0, 2**32 - 1)), 0, 0x50, 0x02, 65535, 0, 0)
    elif kind == "udp":
        l4 = struct.pack("!HHHH", draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFF)), ip_payload & 0xFFFF, 0)
    elif kind == "icmp":
        l4 = struct.pack("!BBHHH", 8, 0, 0, draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFF)))
    else:
        l4 = b""
    body = bytes(range(256)) * (size // 256 + 1)
    frame = dst_mac + src_mac + tag + b"\x08\x00" + ip + l4
    return frame + body[: size - len(frame)]


def documentation_ipv4() -> st.SearchStrategy[str]:
    """Addresses from 192.0.2.0/24 (TEST-NET-1) and 198.18.0.0/15 (benchmarking)."""
    return st.one_of(
        st.integers(1, 254).map(lambda host: f"192.0.2.{host}"),
        st.integers(0, (1 << 17) - 1).map(lambda host: f"198.{18 + (host >> 16)}.{(host >> 8) & 255}.{host & 255}"),
    )


def documentation_ipv6() -> st.SearchStrategy[str]:
    """Addresses from the IPv6 documentation prefix 2001:db8::/32 (RFC 3849)."""
    return st.integers(1, (1 << 96) - 1).map(lambda host: str(ipaddress.IPv6Address((0x20010DB8 << 96) | host)))


def mac_strings() -> st.SearchStrategy[str]:
    return st.binary(min_size=6, max_size=6).map(lambda raw: ":".join(f"{byte:02x}" for byte in raw))


@st.composite
def tunnel_parameters(draw: st.DrawFn, families: tuple[int, ...] = (4,)) -> dict[str, Any]:
    """Keyword arguments for ``dataplane.vxlan.Tunnel`` (underlay family drawn from ``families``)."""
    family = draw(st.sampled_from(families))
    addresses = documentation_ipv4() if family == 4 else documentation_ipv6()
    return {
        "vni": draw(st.integers(0, vc.VNI_MAX)),
        "src_ip": draw(addresses),
        "dst_ip": draw(addresses),
        "src_mac": draw(mac_strings()),
        "dst_mac": draw(mac_strings()),
        "dst_port": draw(st.one_of(st.just(vc.VXLAN_PORT_DEFAULT), st.integers(1, 0xFFFF))),
        "ttl": draw(st.integers(1, 255)),
        "tos": draw(st.integers(0, 255)),
        "dont_fragment": draw(st.booleans()),
        "udp_checksum": draw(st.booleans()),
        "hash_seed": draw(st.one_of(st.just(0), st.integers(0, 2**64 - 1))),
        "ip_id_start": draw(st.integers(0, 0xFFFF)),
    }
