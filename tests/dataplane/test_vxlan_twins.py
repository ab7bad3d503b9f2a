"""The Cython VXLAN kernels and their pure-Python twin agree byte for byte.

Hypothesis generates batches of inner frames and tunnel parameters (including
per-packet destinations); both kernels run on copies of the same batch and
must leave identical buffers, offsets, lengths, statuses and drop counters.
"""
from __future__ import annotations

import ipaddress

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataplane import checksum_py, vxlan_common as vc, vxlan_kernels_py
from dataplane.batch import PacketBatch
from dataplane.vxlan import Decapsulator, Tunnel
from dataplane.vxlan_strategies import documentation_ipv4, documentation_ipv6, inner_frames, tunnel_parameters

vxlan_kernels = pytest.importorskip("dataplane.vxlan_kernels", reason="Cython extension not built")
checksum = pytest.importorskip("dataplane.checksum", reason="Cython extension not built")


def assert_same_batch(left: PacketBatch, right: PacketBatch) -> None:
    assert left.count == right.count
    assert np.array_equal(left.offsets, right.offsets), (left.offsets[: left.count], right.offsets[: right.count])
    assert np.array_equal(left.lengths, right.lengths), (left.lengths[: left.count], right.lengths[: right.count])
    if not np.array_equal(left.buffer, right.buffer):
        first = int(np.flatnonzero(left.buffer != right.buffer)[0])
        raise AssertionError(f"buffers differ first at byte {first}: {left.buffer[first]} != {right.buffer[first]}")


@given(st.binary(max_size=3000))
def test_checksum_twins_agree(data: bytes) -> None:
    assert checksum.ones_complement_sum(data) == checksum_py.ones_complement_sum(data)
    assert checksum.internet_checksum(data) == checksum_py.internet_checksum(data)
    # A buffer with its checksum appended sums to all ones (RFC 1071 verification).
    if len(data) % 2 == 0:
        stamped = data + checksum.internet_checksum(data).to_bytes(2, "big")
        assert checksum_py.ones_complement_sum(stamped) in (0xFFFF, 0) and (any(stamped) or not data)


@given(st.binary(min_size=2, max_size=200).filter(lambda d: len(d) % 2 == 0), st.data())
def test_incremental_checksum_update_matches_recompute(data: bytes, draw: st.DataObject) -> None:
    """RFC 1624: updating one word incrementally equals recomputing (up to +0/-0)."""
    position = draw.draw(st.integers(0, len(data) // 2 - 1)) * 2
    new_word = draw.draw(st.integers(0, 0xFFFF))
    old_word = int.from_bytes(data[position : position + 2], "big")
    changed = data[:position] + new_word.to_bytes(2, "big") + data[position + 2 :]
    for module in (checksum, checksum_py):
        updated = module.update16(checksum_py.internet_checksum(data), old_word, new_word)
        recomputed = checksum_py.internet_checksum(changed)
        assert updated == recomputed or {updated, recomputed} == {0, 0xFFFF}


@given(st.lists(inner_frames(max_size=600), min_size=1, max_size=4), st.integers(0, 2**64 - 1))
def test_flow_hash_twins_agree(frames: list[bytes], seed: int) -> None:
    for frame in frames:
        assert vxlan_kernels.flow_hash(frame, seed) == vxlan_kernels_py.flow_hash(frame, seed)
        port = vxlan_kernels.source_port(frame, seed)
        assert port == vxlan_kernels_py.source_port(frame, seed)
        assert vc.SOURCE_PORT_MIN <= port <= 0xFFFF
        assert vxlan_kernels.flow_label(frame, seed) == vxlan_kernels_py.flow_label(frame, seed) != 0


@settings(max_examples=40)
@given(
    frames=st.lists(inner_frames(max_size=3000), min_size=1, max_size=6),
    parameters=tunnel_parameters(families=(4, 6)),
    per_packet=st.booleans(),
    draw=st.data(),
)
def test_encap_then_decap_twins_agree(frames: list[bytes], parameters: dict, per_packet: bool,
                                       draw: st.DataObject) -> None:
    batch_c = PacketBatch.from_frames(frames)
    batch_py = batch_c.copy()
    dst_ips = dst_macs = None
    if per_packet:
        addresses = documentation_ipv4() if ":" not in parameters["src_ip"] else documentation_ipv6()
        dst_ips = [draw.draw(addresses) for _ in frames]
        dst_macs = [":".join(f"{b:02x}" for b in draw.draw(st.binary(min_size=6, max_size=6))) for _ in frames]
    tunnel_c = Tunnel(**parameters, kernels_module=vxlan_kernels)
    tunnel_py = Tunnel(**parameters, kernels_module=vxlan_kernels_py)
    tunnel_c.encap_batch(batch_c, dst_ips=dst_ips, dst_macs=dst_macs)
    tunnel_py.encap_batch(batch_py, dst_ips=dst_ips, dst_macs=dst_macs)
    if tunnel_c.family == 4:
        assert tunnel_c.next_ip_id == tunnel_py.next_ip_id == (parameters["ip_id_start"] + len(frames)) & 0xFFFF
    assert_same_batch(batch_c, batch_py)

    known = draw.draw(st.one_of(st.none(), st.just([parameters["vni"]]), st.lists(st.integers(0, vc.VNI_MAX))))
    policy = {
        "dst_port": parameters["dst_port"],
        "known_vnis": known,
        "verify_udp_checksum": draw.draw(st.booleans()),
        "strict_reserved": draw.draw(st.booleans()),
        "accept_zero_checksum_ipv6": draw.draw(st.booleans()),
    }
    decap_c = Decapsulator(**policy, kernels_module=vxlan_kernels)
    decap_py = Decapsulator(**policy, kernels_module=vxlan_kernels_py)
    result_c = decap_c.decap_batch(batch_c)
    result_py = decap_py.decap_batch(batch_py)
    assert_same_batch(batch_c, batch_py)
    assert result_c.accepted == result_py.accepted
    assert np.array_equal(result_c.statuses, result_py.statuses)
    assert np.array_equal(result_c.vnis, result_py.vnis)
    assert np.array_equal(result_c.src_ips, result_py.src_ips)
    assert np.array_equal(result_c.src_ips6, result_py.src_ips6)
    assert decap_c.counts() == decap_py.counts()
    zero_checksum_refused = tunnel_c.family == 6 and not tunnel_c.udp_checksum and not policy[
        "accept_zero_checksum_ipv6"]
    if zero_checksum_refused:
        assert decap_c.counts()["zero_udp_checksum"] == len(frames)
    elif known is None or parameters["vni"] in known:
        # Round trip: every packet we built is accepted and gives back its inner frame.
        assert result_c.reasons() == ["accepted"] * len(frames)
        assert batch_c.frames() == frames
        assert set(result_c.vnis.tolist()) == {parameters["vni"]}
        assert {result_c.source_address(i) for i in range(len(frames))} == {
            str(ipaddress.ip_address(parameters["src_ip"]))}
    else:
        assert decap_c.counts()["unknown_vni"] == len(frames)


@given(
    packets=st.lists(st.binary(max_size=120), min_size=1, max_size=16),
    layer=st.sampled_from(["ethernet", "ipv4", "ipv6", "vxlan"]),
    verify=st.booleans(),
    strict=st.booleans(),
)
def test_decap_arbitrary_bytes_twins_agree(packets: list[bytes], layer: str, verify: bool, strict: bool) -> None:
    batch_c = PacketBatch.from_frames(packets, headroom=0)
    batch_py = batch_c.copy()
    policy = {"layer": layer, "verify_udp_checksum": verify, "strict_reserved": strict}
    decap_c = Decapsulator(**policy, kernels_module=vxlan_kernels)
    decap_py = Decapsulator(**policy, kernels_module=vxlan_kernels_py)
    result_c = decap_c.decap_batch(batch_c)
    result_py = decap_py.decap_batch(batch_py)
    assert np.array_equal(result_c.statuses, result_py.statuses)
    assert decap_c.counts() == decap_py.counts()
    assert sum(decap_c.counts().values()) == len(packets)
    assert_same_batch(batch_c, batch_py)
