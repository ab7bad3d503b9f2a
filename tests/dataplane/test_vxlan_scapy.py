"""Conformance with scapy, both directions (RFC 7348 s.5 header format).

1. scapy parses what we build, and every field and checksum is right: scapy
   recomputes the IPv4 and UDP checksums of a copy with the fields deleted.
2. We decapsulate what scapy builds, with the VNI and outer source it set.
Both kernels (Cython and twin) are checked.
"""
from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataplane import vxlan_common as vc, vxlan_kernels_py
from dataplane.vxlan import Tunnel, VxlanError, decap
from dataplane.vxlan_strategies import documentation_ipv4, inner_frames, mac_strings, tunnel_parameters

scapy_all = pytest.importorskip("scapy.all")
from scapy.all import IP, UDP, Ether, IPOption_NOP, IPv6, IPv6ExtHdrFragment, Raw  # noqa: E402
from scapy.layers.vxlan import VXLAN  # noqa: E402

try:
    from dataplane import vxlan_kernels
except ImportError:  # pragma: no cover - extension not built
    vxlan_kernels = None

KERNELS = [pytest.param(vxlan_kernels_py, id="python")] + (
    [pytest.param(vxlan_kernels, id="cython")] if vxlan_kernels is not None else []
)


def recomputed_checksums(packet: bytes) -> tuple[int, int]:
    """(IPv4 header checksum, UDP checksum) as scapy computes them from scratch."""
    copy = Ether(packet)
    del copy[IP].chksum
    del copy[UDP].chksum
    rebuilt = Ether(bytes(copy))
    return rebuilt[IP].chksum, rebuilt[UDP].chksum


@pytest.mark.parametrize("kernels", KERNELS)
@settings(max_examples=50)
@given(frame=inner_frames(), parameters=tunnel_parameters())
def test_scapy_parses_what_we_encapsulate(kernels, frame: bytes, parameters: dict) -> None:
    tunnel = Tunnel(**parameters, kernels_module=kernels)
    packet = tunnel.encap(frame)
    assert len(packet) == len(frame) + vc.OUTER_HEADER_BYTES
    parsed = Ether(packet)
    assert parsed.dst == parameters["dst_mac"] and parsed.src == parameters["src_mac"]
    assert parsed.type == 0x0800
    ip = parsed[IP]
    assert (ip.version, ip.ihl, ip.tos, ip.ttl, ip.proto) == (4, 5, parameters["tos"], parameters["ttl"], 17)
    assert ip.len == len(frame) + 36
    assert ip.id == parameters["ip_id_start"]
    assert ip.frag == 0
    assert int(ip.flags) == (2 if parameters["dont_fragment"] else 0)
    assert (ip.src, ip.dst) == (parameters["src_ip"], parameters["dst_ip"])
    udp = parsed[UDP]
    assert udp.dport == parameters["dst_port"]
    assert vc.SOURCE_PORT_MIN <= udp.sport <= 0xFFFF
    assert udp.sport == vxlan_kernels_py.source_port(frame, parameters["hash_seed"])
    assert udp.len == len(frame) + 16
    ip_checksum, udp_checksum = recomputed_checksums(packet)
    assert ip.chksum == ip_checksum
    if parameters["udp_checksum"]:
        assert udp.chksum == udp_checksum
    else:
        assert udp.chksum == 0
    header = VXLAN(bytes(udp.payload)[:8])
    assert int(header.flags) == 0x08 and header.reserved1 == 0 and header.reserved2 == 0
    assert header.vni == parameters["vni"]
    assert bytes(udp.payload)[8:] == frame


@pytest.mark.parametrize("kernels", KERNELS)
@settings(max_examples=50)
@given(
    frame=inner_frames(),
    vni=st.integers(0, vc.VNI_MAX),
    src_ip=documentation_ipv4(),
    dst_ip=documentation_ipv4(),
    src_mac=mac_strings(),
    dst_mac=mac_strings(),
    dst_port=st.one_of(st.just(4789), st.integers(1, 0xFFFF)),
    sport=st.integers(0, 0xFFFF),
    ip_id=st.integers(0, 0xFFFF),
    ttl=st.integers(1, 255),
    dont_fragment=st.booleans(),
    with_udp_checksum=st.booleans(),
    with_ip_options=st.booleans(),
    padding=st.binary(max_size=8),
)
def test_we_decapsulate_what_scapy_builds(kernels, frame: bytes, vni: int, src_ip: str, dst_ip: str,
                                          src_mac: str, dst_mac: str, dst_port: int, sport: int, ip_id: int,
                                          ttl: int, dont_fragment: bool, with_udp_checksum: bool,
                                          with_ip_options: bool, padding: bytes) -> None:
    options = [IPOption_NOP()] * 4 if with_ip_options else []
    udp = UDP(sport=sport, dport=dst_port) if with_udp_checksum else UDP(sport=sport, dport=dst_port, chksum=0)
    packet = (
        Ether(src=src_mac, dst=dst_mac)
        / IP(src=src_ip, dst=dst_ip, id=ip_id, ttl=ttl, flags="DF" if dont_fragment else 0, options=options)
        / udp
        / VXLAN(flags=0x08, vni=vni)
        / Raw(frame)
    )
    raw = bytes(packet) + padding  # trailing link padding beyond IP total length is ignored
    got_vni, inner = decap(raw, dst_port=dst_port, known_vnis=[vni], kernels_module=kernels)
    assert (got_vni, inner) == (vni, frame)
    # The IPv4 datagram alone, and the UDP payload alone, decapsulate the same.
    assert decap(bytes(packet[IP]), layer="ipv4", dst_port=dst_port, kernels_module=kernels) == (vni, frame)
    assert decap(bytes(packet[UDP].payload), layer="vxlan", kernels_module=kernels) == (vni, frame)
    if with_udp_checksum and frame:
        corrupted = bytearray(raw)
        corrupted[len(bytes(packet)) - 1] ^= 0x01  # flip a bit of the last inner byte
        with pytest.raises(VxlanError) as error:
            decap(bytes(corrupted), dst_port=dst_port, kernels_module=kernels)
        assert error.value.reason == "bad_udp_checksum"
        # With verification off the (corrupted) inner frame is accepted.
        assert decap(bytes(corrupted), dst_port=dst_port, verify_udp_checksum=False, kernels_module=kernels)[0] == vni


@pytest.mark.parametrize("kernels", KERNELS)
def test_batch_source_ip_is_reported_for_learning(kernels) -> None:
    from dataplane.batch import PacketBatch
    from dataplane.vxlan import Decapsulator

    frames = [bytes(Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:03") / IP(src="10.0.0.2", dst="10.0.0.3") / UDP(sport=i, dport=53)) for i in range(3)]
    packets = [
        bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:09") / IP(src=f"198.18.0.{i + 1}", dst="198.18.1.1") / UDP(sport=50000, dport=4789)
              / VXLAN(vni=4096 + i) / Raw(frame))
        for i, frame in enumerate(frames)
    ]
    batch = PacketBatch.from_frames(packets, headroom=0)
    result = Decapsulator(kernels_module=kernels).decap_batch(batch)
    assert result.accepted == 3
    assert [str(ipaddress.IPv4Address(int(ip))) for ip in result.src_ips] == ["198.18.0.1", "198.18.0.2", "198.18.0.3"]
    assert result.vnis.tolist() == [4096, 4097, 4098]
    assert batch.frames() == frames


def recomputed_udp_checksum_ipv6(packet: bytes) -> int:
    copy = Ether(packet)
    del copy[UDP].chksum
    return Ether(bytes(copy))[UDP].chksum


@pytest.mark.parametrize("kernels", KERNELS)
@settings(max_examples=40)
@given(frame=inner_frames(), parameters=tunnel_parameters(families=(6,)))
def test_scapy_parses_what_we_encapsulate_over_ipv6(kernels, frame: bytes, parameters: dict) -> None:
    tunnel = Tunnel(**parameters, kernels_module=kernels)
    packet = tunnel.encap(frame)
    assert len(packet) == len(frame) + vc.OUTER_HEADER_BYTES_IPV6
    parsed = Ether(packet)
    assert parsed.type == 0x86DD and parsed.dst == parameters["dst_mac"] and parsed.src == parameters["src_mac"]
    ip6 = parsed[IPv6]
    assert (ip6.version, ip6.tc, ip6.nh, ip6.hlim) == (6, parameters["tos"], 17, parameters["ttl"])
    assert ip6.plen == len(frame) + 16
    assert ip6.fl == vxlan_kernels_py.flow_label(frame, parameters["hash_seed"]) != 0
    assert (ip6.src, ip6.dst) == (str(ipaddress.IPv6Address(parameters["src_ip"])),
                                  str(ipaddress.IPv6Address(parameters["dst_ip"])))
    udp = parsed[UDP]
    assert udp.dport == parameters["dst_port"] and vc.SOURCE_PORT_MIN <= udp.sport
    assert udp.len == len(frame) + 16
    assert udp.chksum == (recomputed_udp_checksum_ipv6(packet) if parameters["udp_checksum"] else 0)
    header = VXLAN(bytes(udp.payload)[:8])
    assert int(header.flags) == 0x08 and header.vni == parameters["vni"]
    assert bytes(udp.payload)[8:] == frame


@pytest.mark.parametrize("kernels", KERNELS)
@settings(max_examples=40)
@given(frame=inner_frames(), vni=st.integers(0, vc.VNI_MAX), dst_port=st.integers(1, 0xFFFF),
       hop_limit=st.integers(0, 255), flow_label=st.integers(0, 0xFFFFF), fragment_header=st.booleans())
def test_we_decapsulate_what_scapy_builds_over_ipv6(kernels, frame: bytes, vni: int, dst_port: int,
                                                    hop_limit: int, flow_label: int, fragment_header: bool) -> None:
    ip6 = IPv6(src="2001:db8::7", dst="2001:db8::8", hlim=hop_limit, fl=flow_label)
    if fragment_header:
        ip6 = ip6 / IPv6ExtHdrFragment()
    packet = bytes(Ether(src="02:00:00:00:00:07", dst="02:00:00:00:00:08") / ip6 / UDP(sport=50000, dport=dst_port)
                   / VXLAN(vni=vni) / Raw(frame))
    if fragment_header:
        with pytest.raises(VxlanError) as error:
            decap(packet, dst_port=dst_port, kernels_module=kernels)
        assert error.value.reason == "ip_fragment"
        return
    assert decap(packet, dst_port=dst_port, kernels_module=kernels) == (vni, frame)
    assert decap(packet[14:], layer="ipv6", dst_port=dst_port, kernels_module=kernels) == (vni, frame)
