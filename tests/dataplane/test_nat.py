"""NAT against scapy: rewritten frames carry the checksums scapy recomputes; requests and replies round-trip."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from dataplane.balancer import Backend, Balancer, Service
from dataplane.balancer_py import VERDICT_DROP, VERDICT_FORWARD, VERDICT_PASS, VERDICT_REPLY
from dataplane.balancer_strategies import (
    internet_checksum,
    ip_int,
    ip_options,
    noise_frames,
    tcp_udp_frame,
)
from dataplane.batch import PacketBatch
from dataplane.nat_py import checksum_update

IMPLEMENTATIONS = ["cython", "python"]
VIP = "198.18.0.10"
VIP_MAC = "02:00:00:00:00:aa"


def make_balancer(implementation: str, protocol: str) -> Balancer:
    balancer = Balancer(seed=99, conntrack_capacity=256, implementation=implementation)
    balancer.add_service(
        Service("web", VIP, 80, protocol=protocol, vip_mac=VIP_MAC, table_size=101),
        [
            Backend(
                f"task-{index}", f"198.18.1.{index}", 8000 + index, f"02:00:00:00:01:{index:02x}"
            )
            for index in (1, 2, 3)
        ],
    )
    return balancer


def assert_checksums_as_scapy(frame: bytes) -> Ether:
    packet = Ether(frame)
    layer4 = packet[TCP] if TCP in packet else packet[UDP]
    written_ip, written_l4 = packet[IP].chksum, layer4.chksum
    rebuilt = packet.copy()
    del rebuilt[IP].chksum
    if TCP in rebuilt:
        del rebuilt[TCP].chksum
    elif written_l4 != 0:
        del rebuilt[UDP].chksum
    rebuilt = Ether(bytes(rebuilt))
    assert written_ip == rebuilt[IP].chksum, (
        f"IPv4 checksum {written_ip:#06x} != scapy {rebuilt[IP].chksum:#06x}"
    )
    recomputed = rebuilt[TCP].chksum if TCP in rebuilt else rebuilt[UDP].chksum
    assert written_l4 == recomputed, f"L4 checksum {written_l4:#06x} != scapy {recomputed:#06x}"
    return packet


flows = st.fixed_dictionaries(
    {
        "protocol": st.sampled_from(["tcp", "udp"]),
        "client": st.integers(1, 254).map(lambda host: f"192.0.2.{host}"),
        "client_port": st.integers(1, 65535),
        "flags": st.sampled_from([0x02, 0x10, 0x18, 0x11, 0x04]),
        "payload": st.binary(max_size=64),
        "options": ip_options(),
        "udp_checksum": st.booleans(),
        "padding": st.sampled_from([b"", b"\x00" * 6]),
        "ident": st.integers(0, 0xFFFF),
    }
)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@given(flow=flows)
def test_request_and_reply_are_valid_and_round_trip(implementation: str, flow: dict) -> None:
    balancer = make_balancer(implementation, flow["protocol"])
    number = 6 if flow["protocol"] == "tcp" else 17
    request = tcp_udp_frame(
        ip_int(flow["client"]),
        ip_int(VIP),
        number,
        flow["client_port"],
        80,
        tcp_flags=flow["flags"],
        payload=flow["payload"],
        ip_options=flow["options"],
        udp_checksum=flow["udp_checksum"],
        ident=flow["ident"],
        padding=flow["padding"],
        source_mac=0x02000000C001,
        destination_mac=0x0200000000AA,
    )
    batch = PacketBatch.from_frames([request])
    assert balancer.process(batch, now_ns=1_000).tolist() == [VERDICT_FORWARD]
    forwarded = batch.frame(0)
    packet = assert_checksums_as_scapy(forwarded)
    layer4 = packet[TCP] if TCP in packet else packet[UDP]
    chosen = balancer.backend_for_new_flow("web", flow["client"], flow["client_port"])
    backend = next(b for b in balancer.backends("web") if b.name == chosen)
    assert (packet[IP].src, packet[IP].dst, layer4.sport, layer4.dport) == (
        flow["client"],
        backend.ip,
        flow["client_port"],
        backend.port,
    )
    assert packet.dst == backend.mac and packet.src == "02:00:00:00:c0:01"
    if UDP in packet and not flow["udp_checksum"]:
        assert packet[UDP].chksum == 0  # "no checksum" stays none (RFC 768)
    # Everything but the rewritten fields is unchanged.
    tail = len(flow["payload"]) + len(flow["padding"])
    assert len(forwarded) == len(request) and forwarded[14:24] == request[14:24]
    if tail:
        assert forwarded[-tail:] == request[-tail:]

    reply = tcp_udp_frame(
        ip_int(backend.ip),
        ip_int(flow["client"]),
        number,
        backend.port,
        flow["client_port"],
        tcp_flags=0x12,
        payload=flow["payload"][::-1],
        udp_checksum=flow["udp_checksum"],
        source_mac=int(backend.mac.replace(":", ""), 16),
        destination_mac=0x02000000C001,
    )
    batch = PacketBatch.from_frames([reply])
    assert balancer.process(batch, now_ns=2_000).tolist() == [VERDICT_REPLY]
    answered = assert_checksums_as_scapy(batch.frame(0))
    layer4 = answered[TCP] if TCP in answered else answered[UDP]
    # The client sees its own flow reversed: VIP:80 -> client:port.
    assert (answered[IP].src, layer4.sport, answered[IP].dst, layer4.dport) == (
        VIP,
        80,
        flow["client"],
        flow["client_port"],
    )
    assert answered.src == VIP_MAC
    counters = balancer.counters
    assert counters["forward_new"] == 1 and counters["reply_tracked"] == 1


@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.binary(min_size=2, max_size=40).filter(lambda data: any(data)),
)
def test_incremental_update_equals_full_recomputation(
    check_seed: int, old_ip: int, new_ip: int, old_port: int, new_port: int, rest: bytes
) -> None:
    # RFC 1624: updating the checksum for changed words equals recomputing it.
    rest = rest if len(rest) % 2 == 0 else rest + b"\x00"
    before = struct.pack("!IH", old_ip, old_port) + rest
    after = struct.pack("!IH", new_ip, new_port) + rest
    assert checksum_update(
        internet_checksum(before), old_ip, new_ip, old_port, new_port
    ) == internet_checksum(after)


EXPECTED_RULES = {
    "arp": (VERDICT_PASS, "pass_non_ipv4"),
    "ipv6": (VERDICT_PASS, "pass_non_ipv4"),
    "icmp": (VERDICT_PASS, "pass_not_tcp_udp"),
    "fragment": (VERDICT_DROP, "drop_fragment"),
    "bad_version": (VERDICT_DROP, "drop_bad_ip_header"),
    "short_total": (VERDICT_DROP, "drop_bad_ip_header"),
}


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("kind", sorted(EXPECTED_RULES))
def test_each_kind_of_frame_follows_the_stated_rule(implementation: str, kind: str) -> None:
    base = tcp_udp_frame(ip_int("192.0.2.9"), ip_int(VIP), 6, 5555, 80)
    frame = {
        "arp": base[:12] + b"\x08\x06" + base[14:42],
        "ipv6": base[:12] + b"\x86\xdd" + base[14:],
        "icmp": base[:23] + b"\x01" + base[24:],
        "fragment": base[:20] + b"\x20\x00" + base[22:],
        "bad_version": base[:14] + b"\x65" + base[15:],
        "short_total": base[:16] + b"\x00\x13" + base[18:],
    }[kind]
    balancer = make_balancer(implementation, "tcp")
    batch = PacketBatch.from_frames([frame])
    verdict, counter = EXPECTED_RULES[kind]
    assert balancer.process(batch, now_ns=0).tolist() == [verdict]
    assert balancer.counters[counter] == 1
    assert batch.frame(0) == frame  # pass and drop never touch the bytes


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("cut", [0, 5, 13, 14, 20, 33, 40, 53])
def test_truncated_frames_are_dropped_and_counted(implementation: str, cut: int) -> None:
    frame = tcp_udp_frame(ip_int("192.0.2.9"), ip_int(VIP), 6, 5555, 80)[:cut]
    balancer = make_balancer(implementation, "tcp")
    batch = PacketBatch.from_frames([frame])
    assert balancer.process(batch, now_ns=0).tolist() == [VERDICT_DROP]
    assert balancer.counters["drop_truncated"] == 1


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@given(frames=st.lists(noise_frames(), min_size=1, max_size=20))
def test_noise_never_crashes_and_is_counted_once(implementation: str, frames: list[bytes]) -> None:
    balancer = make_balancer(implementation, "tcp")
    batch = PacketBatch.from_frames(frames)
    verdicts = balancer.process(batch, now_ns=5)
    assert len(verdicts) == len(frames)
    counters = balancer.counters
    outcomes = sum(
        value
        for name, value in counters.items()
        if name != "packets" and not name.startswith("conntrack_")
    )
    assert counters["packets"] == len(frames) == outcomes
