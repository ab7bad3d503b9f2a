"""Fuzzing decapsulation: arbitrary and mutated bytes never crash it, and every
drop is counted under the reason for the field that was broken.

Targeted mutations break one field of a valid packet (fixing up the checksums
that would otherwise fail first) and check the exact reason, for the single
packet API (typed VxlanError subclass) and the batch API (counters).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataplane import vxlan_common as vc, vxlan_kernels_py
from dataplane.batch import PacketBatch
from dataplane.checksum_py import internet_checksum
from dataplane.vxlan import Decapsulator, Tunnel, VxlanError, decap
from dataplane.vxlan_strategies import inner_frames, tunnel_parameters

try:
    from dataplane import vxlan_kernels
except ImportError:  # pragma: no cover - extension not built
    vxlan_kernels = None

KERNELS = [pytest.param(vxlan_kernels_py, id="python")] + (
    [pytest.param(vxlan_kernels, id="cython")] if vxlan_kernels is not None else []
)


def fix_ip_checksum(packet: bytearray) -> None:
    packet[24:26] = b"\x00\x00"
    packet[24:26] = internet_checksum(packet[14:34]).to_bytes(2, "big")


def fix_udp_checksum(packet: bytearray) -> None:
    """RFC 768 checksum over pseudo-header and the whole UDP datagram."""
    packet[40:42] = b"\x00\x00"
    pseudo = bytes(packet[26:34]) + b"\x00\x11" + bytes(packet[38:40])
    value = internet_checksum(pseudo + bytes(packet[34:]))
    packet[40:42] = (value or 0xFFFF).to_bytes(2, "big")


def zero_udp_checksum(packet: bytearray) -> None:
    packet[40:42] = b"\x00\x00"  # "no checksum": lets a mutation behind the UDP header stand alone


Mutation = Callable[[bytearray, st.DataObject], tuple[bytes, dict]]


def truncate_ethernet(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    return bytes(packet[: data.draw(st.integers(0, 13))]), {}


def truncate_ipv4(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    return bytes(packet[: 14 + data.draw(st.integers(0, 19))]), {}


def bad_ethertype(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    packet[12:14] = data.draw(st.integers(0, 0xFFFF).filter(lambda t: t not in (0x0800, 0x86DD))).to_bytes(2, "big")
    return bytes(packet), {}


def bad_ip_version(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    packet[14] = (data.draw(st.integers(0, 15).filter(lambda v: v != 4)) << 4) | 5
    return bytes(packet), {}


def bad_ip_header_length(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    packet[14] = 0x40 | data.draw(st.integers(0, 4))
    return bytes(packet), {}


def bad_ip_total_length(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    available = len(packet) - 14
    bad = data.draw(st.one_of(st.integers(0, 19), st.integers(available + 1, 0xFFFF)))
    packet[16:18] = bad.to_bytes(2, "big")
    fix_ip_checksum(packet)
    return bytes(packet), {}


def bad_ip_checksum(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    # A changed TTL moves the sum by d*256, never a multiple of 0xFFFF: the old checksum is wrong.
    packet[22] = data.draw(st.integers(0, 255).filter(lambda ttl: ttl != packet[22]))
    return bytes(packet), {}


def ip_fragment(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    flags = data.draw(st.integers(1, 0x3FFF)) | (0x4000 if data.draw(st.booleans()) else 0)
    packet[20:22] = flags.to_bytes(2, "big")
    fix_ip_checksum(packet)
    return bytes(packet), {}


def not_udp(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    packet[23] = data.draw(st.integers(0, 255).filter(lambda p: p != 17))
    fix_ip_checksum(packet)
    return bytes(packet), {}


def wrong_port(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    port = int.from_bytes(packet[36:38], "big")
    return bytes(packet), {"dst_port": data.draw(st.integers(1, 0xFFFF).filter(lambda p: p != port))}


def bad_udp_length(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    room = len(packet) - 34
    packet[38:40] = data.draw(st.one_of(st.integers(0, 7), st.integers(room + 1, 0xFFFF))).to_bytes(2, "big")
    return bytes(packet), {}


def bad_udp_checksum(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    if packet[40:42] == b"\x00\x00":
        fix_udp_checksum(packet)
    position = data.draw(st.integers(50, len(packet) - 1))
    packet[position] ^= data.draw(st.integers(1, 255))  # one byte off: the sum moves by a non-multiple of 0xFFFF
    return bytes(packet), {"verify_udp_checksum": True}


def bad_vxlan_flags(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    packet[42] = data.draw(st.integers(0, 255)) & ~0x08
    zero_udp_checksum(packet)
    return bytes(packet), {}


def reserved_bits_set(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    position = data.draw(st.sampled_from([42, 43, 44, 45, 49]))
    bit = data.draw(st.integers(0, 7).filter(lambda b: not (position == 42 and b == 3)))
    packet[position] |= 1 << bit
    zero_udp_checksum(packet)
    return bytes(packet), {"strict_reserved": True}


def unknown_vni(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    vni = int.from_bytes(packet[46:49], "big")
    known = data.draw(st.lists(st.integers(0, vc.VNI_MAX).filter(lambda v: v != vni), max_size=5))
    return bytes(packet), {"known_vnis": known}


def inner_too_short(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    inner = data.draw(st.integers(0, 13))
    del packet[50 + inner :]
    packet[16:18] = (36 + inner).to_bytes(2, "big")
    packet[38:40] = (16 + inner).to_bytes(2, "big")
    fix_ip_checksum(packet)
    zero_udp_checksum(packet)
    return bytes(packet), {}


MUTATIONS: dict[str, tuple[Mutation, str]] = {
    "truncate_ethernet": (truncate_ethernet, "truncated"),
    "truncate_ipv4": (truncate_ipv4, "truncated"),
    "bad_ethertype": (bad_ethertype, "bad_ethertype"),
    "bad_ip_version": (bad_ip_version, "bad_ip_version"),
    "bad_ip_header_length": (bad_ip_header_length, "bad_ip_header_length"),
    "bad_ip_total_length": (bad_ip_total_length, "bad_ip_total_length"),
    "bad_ip_checksum": (bad_ip_checksum, "bad_ip_checksum"),
    "ip_fragment": (ip_fragment, "ip_fragment"),
    "not_udp": (not_udp, "not_udp"),
    "wrong_port": (wrong_port, "wrong_port"),
    "bad_udp_length": (bad_udp_length, "bad_udp_length"),
    "bad_udp_checksum": (bad_udp_checksum, "bad_udp_checksum"),
    "bad_vxlan_flags": (bad_vxlan_flags, "bad_vxlan_flags"),
    "reserved_bits_set": (reserved_bits_set, "reserved_bits_set"),
    "unknown_vni": (unknown_vni, "unknown_vni"),
    "inner_too_short": (inner_too_short, "inner_too_short"),
}


# -- the same over an IPv6 underlay (70-byte header: IPv6 at 14, UDP at 54, VXLAN at 62)


def fix_udp_checksum_ipv6(packet: bytearray) -> None:
    packet[60:62] = b"\x00\x00"
    pseudo = bytes(packet[22:54]) + (len(packet) - 54).to_bytes(4, "big") + b"\x00\x00\x00\x11"
    value = internet_checksum(pseudo + bytes(packet[54:]))
    packet[60:62] = (value or 0xFFFF).to_bytes(2, "big")


def v6_truncate(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    return bytes(packet[: 14 + data.draw(st.integers(0, 39))]), {}


def v6_bad_version(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    packet[14] = (data.draw(st.integers(0, 15).filter(lambda v: v != 6)) << 4) | (packet[14] & 0x0F)
    return bytes(packet), {}


def v6_bad_payload_length(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    packet[18:20] = data.draw(st.integers(len(packet) - 54 + 1, 0xFFFF)).to_bytes(2, "big")
    return bytes(packet), {}


def v6_fragment(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    packet[20] = 44
    return bytes(packet), {}


def v6_not_udp(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    packet[20] = data.draw(st.integers(0, 255).filter(lambda p: p not in (17, 44)))
    return bytes(packet), {}


def v6_wrong_port(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    port = int.from_bytes(packet[56:58], "big")
    return bytes(packet), {"dst_port": data.draw(st.integers(1, 0xFFFF).filter(lambda p: p != port))}


def v6_bad_udp_length(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    room = len(packet) - 54
    packet[58:60] = data.draw(st.one_of(st.integers(0, 7), st.integers(room + 1, 0xFFFF))).to_bytes(2, "big")
    return bytes(packet), {}


def v6_bad_udp_checksum(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    fix_udp_checksum_ipv6(packet)
    position = data.draw(st.integers(70, len(packet) - 1))
    packet[position] ^= data.draw(st.integers(1, 255))
    return bytes(packet), {"verify_udp_checksum": True}


def v6_zero_udp_checksum(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    packet[60:62] = b"\x00\x00"
    return bytes(packet), {"accept_zero_checksum_ipv6": False}


def v6_bad_vxlan_flags(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    packet[62] = data.draw(st.integers(0, 255)) & ~0x08
    fix_udp_checksum_ipv6(packet)
    return bytes(packet), {}


def v6_reserved_bits_set(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    position = data.draw(st.sampled_from([62, 63, 64, 65, 69]))
    bit = data.draw(st.integers(0, 7).filter(lambda b: not (position == 62 and b == 3)))
    packet[position] |= 1 << bit
    fix_udp_checksum_ipv6(packet)
    return bytes(packet), {"strict_reserved": True}


def v6_unknown_vni(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    vni = int.from_bytes(packet[66:69], "big")
    known = data.draw(st.lists(st.integers(0, vc.VNI_MAX).filter(lambda v: v != vni), max_size=5))
    return bytes(packet), {"known_vnis": known}


def v6_inner_too_short(packet: bytearray, data: st.DataObject) -> tuple[bytes, dict]:
    inner = data.draw(st.integers(0, 13))
    del packet[70 + inner :]
    packet[18:20] = (16 + inner).to_bytes(2, "big")
    packet[58:60] = (16 + inner).to_bytes(2, "big")
    fix_udp_checksum_ipv6(packet)
    return bytes(packet), {}


MUTATIONS_IPV6: dict[str, tuple[Mutation, str]] = {
    "truncate_ethernet": (truncate_ethernet, "truncated"),
    "truncate_ipv6": (v6_truncate, "truncated"),
    "bad_ethertype": (bad_ethertype, "bad_ethertype"),
    "bad_ip_version": (v6_bad_version, "bad_ip_version"),
    "bad_payload_length": (v6_bad_payload_length, "bad_ip_total_length"),
    "fragment": (v6_fragment, "ip_fragment"),
    "not_udp": (v6_not_udp, "not_udp"),
    "wrong_port": (v6_wrong_port, "wrong_port"),
    "bad_udp_length": (v6_bad_udp_length, "bad_udp_length"),
    "bad_udp_checksum": (v6_bad_udp_checksum, "bad_udp_checksum"),
    "zero_udp_checksum": (v6_zero_udp_checksum, "zero_udp_checksum"),
    "bad_vxlan_flags": (v6_bad_vxlan_flags, "bad_vxlan_flags"),
    "reserved_bits_set": (v6_reserved_bits_set, "reserved_bits_set"),
    "unknown_vni": (v6_unknown_vni, "unknown_vni"),
    "inner_too_short": (v6_inner_too_short, "inner_too_short"),
}
ALL_MUTATIONS = {("ipv4", name): entry for name, entry in MUTATIONS.items()}
ALL_MUTATIONS.update({("ipv6", name): entry for name, entry in MUTATIONS_IPV6.items()})
assert {reason for _, reason in ALL_MUTATIONS.values()} == set(vc.DROP_REASONS) - {"accepted"}


@pytest.mark.parametrize("kernels", KERNELS)
@settings(max_examples=80)
@given(
    frame=inner_frames(max_size=1500),
    mutation=st.sampled_from(sorted(ALL_MUTATIONS)),
    data=st.data(),
)
def test_each_broken_field_is_dropped_for_its_reason(kernels, frame: bytes, mutation: tuple[str, str],
                                                     data: st.DataObject) -> None:
    mutate, reason = ALL_MUTATIONS[mutation]
    parameters = data.draw(tunnel_parameters(families=(4,) if mutation[0] == "ipv4" else (6,)))
    if mutation[0] == "ipv6":
        parameters["udp_checksum"] = True  # else every IPv6 packet is dropped as zero_udp_checksum first
    packet = bytearray(Tunnel(**parameters, kernels_module=kernels).encap(frame))
    mutated, policy = mutate(packet, data)
    policy = {"dst_port": parameters["dst_port"], **policy}
    with pytest.raises(VxlanError) as error:
        decap(mutated, kernels_module=kernels, **policy)
    assert error.value.reason == reason, (mutation, error.value)
    assert type(error.value) is vc.ERROR_FOR_REASON[vc.REASON_CODE[reason]]
    # The batch path counts it under the same name and leaves the packet where it was.
    batch = PacketBatch.from_frames([mutated, bytes(packet)], headroom=0)
    offsets_before = batch.offsets.copy()
    decapsulator = Decapsulator(kernels_module=kernels, **policy)
    result = decapsulator.decap_batch(batch)
    assert result.reasons()[0] == reason
    assert decapsulator.counts()[reason] >= 1
    assert sum(decapsulator.counts().values()) == 2
    assert batch.offsets[0] == offsets_before[0] and batch.lengths[0] == len(mutated)


@pytest.mark.parametrize("kernels", KERNELS)
@given(
    packet=st.binary(max_size=200),
    layer=st.sampled_from(["ethernet", "ipv4", "ipv6", "vxlan"]),
    verify=st.booleans(),
    strict=st.booleans(),
)
def test_single_decap_of_arbitrary_bytes_raises_only_vxlan_errors(kernels, packet: bytes, layer: str, verify: bool,
                                                                  strict: bool) -> None:
    policy = {"layer": layer, "verify_udp_checksum": verify, "strict_reserved": strict}
    batch = PacketBatch.from_frames([packet], headroom=0)
    result = Decapsulator(kernels_module=kernels, **policy).decap_batch(batch)
    try:
        vni, inner = decap(packet, kernels_module=kernels, **policy)
    except VxlanError as error:
        assert result.reasons() == [error.reason]
    else:
        assert result.reasons() == ["accepted"]
        assert (vni, inner) == (int(result.vnis[0]), batch.frame(0))
        assert len(inner) >= 14 and inner in packet


@st.composite
def mutated_packets(draw: st.DrawFn) -> bytes:
    """A valid VXLAN packet with random bytes overwritten, cut, or extended."""
    packet = bytearray(Tunnel(**draw(tunnel_parameters(families=(4, 6)))).encap(draw(inner_frames(max_size=300))))
    for _ in range(draw(st.integers(0, 4))):
        position = draw(st.integers(0, len(packet) - 1))
        packet[position] = draw(st.integers(0, 255))
    action = draw(st.sampled_from(["keep", "cut", "extend"]))
    if action == "cut":
        del packet[draw(st.integers(0, len(packet))) :]
    elif action == "extend":
        packet += draw(st.binary(max_size=40))
    return bytes(packet)


@pytest.mark.skipif(vxlan_kernels is None, reason="Cython extension not built")
@given(packets=st.lists(mutated_packets(), min_size=1, max_size=12), verify=st.booleans(), strict=st.booleans())
def test_batch_decap_of_mutated_packets_counts_every_packet(packets: list[bytes], verify: bool, strict: bool) -> None:
    results = []
    for kernels in (vxlan_kernels, vxlan_kernels_py):
        batch = PacketBatch.from_frames(packets, headroom=0)
        decapsulator = Decapsulator(kernels_module=kernels, verify_udp_checksum=verify, strict_reserved=strict,
                                    dst_port=4789)
        result = decapsulator.decap_batch(batch)
        counts = decapsulator.counts()
        assert sum(counts.values()) == len(packets)
        assert counts["accepted"] == result.accepted
        for code in range(vc.N_REASONS):
            assert counts[vc.DROP_REASONS[code]] == int(np.count_nonzero(result.statuses == code))
        results.append((result.statuses.tolist(), counts, batch.frames()))
        # Each packet's batch verdict is the single-packet verdict.
        for index, packet in enumerate(packets):
            try:
                decap(packet, kernels_module=kernels, verify_udp_checksum=verify, strict_reserved=strict)
                assert result.statuses[index] == 0
            except VxlanError as error:
                assert result.reasons()[index] == error.reason
    assert results[0] == results[1]
