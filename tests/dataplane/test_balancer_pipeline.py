"""The kernel's chunked pipeline: batches of many chunks agree with the twin; process() checks.

The Cython kernel classifies and hashes chunk k + 1 (SIMD lanes) before it
tracks chunk k, and prefetches deeper while a burst of new flows misses the
table.  None of that may show in results: long batches that revisit the same
flows (within a chunk, across chunks, across batches), evict in a tiny table,
open with SYNs and answer with replies must give the twin's verdicts, bytes,
counters and table.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from dataplane import flowhash_c
from dataplane.balancer import Backend, Balancer, BalancerError, Service
from dataplane.balancer_strategies import ip_int, tcp_udp_frame
from dataplane.batch import PacketBatch
from dataplane.conntrack import Timeouts

CHUNK_PACKETS = 16  # balancer_c.pyx: packets per pipeline stage
TIMEOUTS = Timeouts(
    syn_sent_ns=500, established_ns=5000, fin_wait_ns=800, closed_ns=100, udp_ns=3000
)
VIP = ip_int("198.18.0.20")


def pair(capacity: int, window: int, seed: int) -> list[Balancer]:
    balancers = []
    for implementation in ("cython", "python"):
        balancer = Balancer(
            seed=seed,
            conntrack_capacity=capacity,
            probe_window=window,
            timeouts=TIMEOUTS,
            implementation=implementation,
        )
        web = [
            Backend(f"w{i}", f"198.18.1.{i + 1}", 8080, f"02:00:00:00:01:{i:02x}") for i in range(5)
        ]
        balancer.add_service(Service("web", "198.18.0.20", 80, vip_mac="02:00:00:00:00:20"), web)
        balancer.add_service(
            Service("dns", "198.18.0.20", 53, protocol="udp"),
            [Backend(f"d{i}", f"198.18.2.{i + 1}", 5353) for i in range(3)],
        )
        balancers.append(balancer)
    return balancers


def frame(packet: tuple, balancer: Balancer) -> bytes:
    kind, client, port, flags = packet
    client_ip = ip_int(f"192.0.2.{client + 1}")
    if kind == "tcp":
        return tcp_udp_frame(client_ip, VIP, 6, 1000 + port, 80, tcp_flags=flags, payload=b"q")
    if kind == "udp":
        return tcp_udp_frame(client_ip, VIP, 17, 1000 + port, 53, payload=b"q")
    # A reply from the backend Maglev picks for the flow (tracked if the flow is).
    owner = balancer.backend_for_new_flow("web", f"192.0.2.{client + 1}", 1000 + port)
    backend = next(b for b in balancer.backends("web") if b.name == owner)
    return tcp_udp_frame(ip_int(backend.ip), client_ip, 6, 8080, 1000 + port, tcp_flags=flags)


packets = st.tuples(
    st.sampled_from(["tcp", "tcp", "udp", "reply"]),
    st.integers(0, 5),
    st.integers(0, 7),
    st.sampled_from([0x02, 0x10, 0x18, 0x11, 0x04, 0x12]),
)


@settings(max_examples=30, deadline=None)
@given(
    capacity=st.sampled_from([4, 16, 64, 4096]),
    window=st.integers(1, 8),
    seed=st.integers(0, 2**128 - 1),
    batches=st.lists(
        st.tuples(st.integers(0, 900), st.lists(packets, min_size=1, max_size=5 * CHUNK_PACKETS)),
        min_size=1,
        max_size=4,
    ),
)
def test_long_batches_agree_with_the_twin(capacity, window, seed, batches) -> None:
    note(f"seed={seed} simd={flowhash_c.SIMD_LEVEL}")
    balancers = pair(capacity, window, seed)
    now = 0
    for elapsed, batch_packets in batches:
        now += elapsed
        frames = [frame(packet, balancers[0]) for packet in batch_packets]
        filled = [PacketBatch.from_frames(frames), PacketBatch.from_frames(frames)]
        verdicts = [b.process(batch, now).tolist() for b, batch in zip(balancers, filled)]
        assert verdicts[0] == verdicts[1]
        assert filled[0].frames() == filled[1].frames()
        assert balancers[0].counters == balancers[1].counters
        assert (balancers[0].conntrack.table == balancers[1].conntrack.table).all()


@pytest.mark.parametrize("count", [1, 15, 16, 17, 31, 32, 33, 255, 256])
def test_chunk_boundaries_miss_burst_then_hits(count: int) -> None:
    """New flows (a miss burst, deeper prefetch) then the same flows again (hits), at
    batch sizes around multiples of the chunk: same results as the twin, all tracked."""
    balancers = pair(4096, 8, 11)
    frames = [
        tcp_udp_frame(ip_int(f"192.0.2.{1 + i % 200}"), VIP, 6, 2000 + i, 80, tcp_flags=0x10)
        for i in range(count)
    ]
    for now, expected in ((1, "forward_new"), (2, "forward_tracked")):
        filled = [PacketBatch.from_frames(frames), PacketBatch.from_frames(frames)]
        verdicts = [b.process(batch, now).tolist() for b, batch in zip(balancers, filled)]
        assert verdicts[0] == verdicts[1] == [1] * count
        assert filled[0].frames() == filled[1].frames()
        assert balancers[0].counters == balancers[1].counters
        assert balancers[0].counters[expected] == count
    assert (balancers[0].conntrack.table == balancers[1].conntrack.table).all()


@pytest.mark.parametrize("implementation", ["cython", "python"])
def test_process_checks_the_verdict_array(implementation: str) -> None:
    balancer = pair(64, 8, 1)[0 if implementation == "cython" else 1]
    frames = [tcp_udp_frame(ip_int("192.0.2.1"), VIP, 6, 1000 + i, 80) for i in range(3)]
    batch = PacketBatch.from_frames(frames)
    read_only = np.zeros(3, dtype=np.uint8)
    read_only.flags.writeable = False
    bad = [
        np.zeros(3, dtype=np.int64),  # wrong dtype
        np.zeros((3, 1), dtype=np.uint8),  # 2-D
        np.zeros(6, dtype=np.uint8)[::2],  # not contiguous
        read_only,
        np.zeros(2, dtype=np.uint8),  # shorter than the batch
        [0, 0, 0],  # not an array
    ]
    for verdicts in bad:
        with pytest.raises(BalancerError):
            balancer.process(batch, 1, verdicts)
    assert balancer.counters["packets"] == 0
    verdicts = np.zeros(8, dtype=np.uint8)
    assert balancer.process(batch, 1, verdicts).tolist() == [1, 1, 1]  # a view of the first 3
    assert balancer.process(batch, 2, verdicts).shape == (3,)
    with pytest.raises(BalancerError):  # the array it accepted, now too short for a batch
        balancer.process(PacketBatch.from_frames(frames * 3), 3, verdicts)
    assert balancer.counters["packets"] == 6
    # An array checked once and changed in place later is still refused with
    # the typed error, before any packet is counted.
    verdicts.flags.writeable = False
    with pytest.raises(BalancerError):
        balancer.process(batch, 3, verdicts)
    reshaped = np.zeros(8, dtype=np.uint8)
    balancer.process(batch, 3, reshaped)
    reshaped.shape = (8, 1)
    with pytest.raises(BalancerError):
        balancer.process(batch, 4, reshaped)
    assert balancer.counters["packets"] == 9


def test_kernel_takes_other_buffers_like_numpy_arrays() -> None:
    """Numpy arrays take the header fast path; any other buffer (or a byte-swapped or
    strided array) the typed-view path; both balance the same frames the same way."""
    import array

    frames = [tcp_udp_frame(ip_int("192.0.2.9"), VIP, 6, 3000 + i, 80) for i in range(40)]
    results = []
    for shape in ("numpy", "buffers"):
        balancer = pair(256, 8, 7)[0]
        batch = PacketBatch.from_frames(frames)
        verdicts = np.zeros(40, dtype=np.uint8)
        if shape == "numpy":
            arguments = (batch.buffer, batch.offsets, batch.lengths, verdicts)
        else:
            arguments = (
                bytearray(batch.buffer.tobytes()),
                array.array("I", batch.offsets.tolist()),
                memoryview(array.array("I", batch.lengths.tolist())),
                bytearray(40),
            )
        kernel = balancer._kernel
        with pytest.raises(ValueError):
            kernel.process(*arguments[:3], 41, arguments[3], 1)
        with pytest.raises(ValueError):
            kernel.process(*arguments[:3], -1, arguments[3], 1)
        kernel.process(*arguments[:3], 0, arguments[3], 1)
        kernel.process(*arguments[:3], 40, arguments[3], 1)
        results.append((bytes(arguments[0]), bytes(arguments[3]), balancer.counters))
    assert results[0] == results[1]
    assert results[0][1] == bytes([1] * 40)
    swapped = PacketBatch.from_frames(frames)
    big_endian = swapped.offsets.astype(">u4")
    with pytest.raises(ValueError):  # a big-endian offsets array is not read as native
        pair(256, 8, 7)[0]._kernel.process(
            swapped.buffer, big_endian, swapped.lengths, 40, np.zeros(40, np.uint8), 1
        )


@pytest.mark.parametrize("protocol", [6, 17])
def test_checksum_edge_values_agree_with_the_twin(protocol: int) -> None:
    """The C kernel updates checksums on the fields in network byte order, the twin on
    host integers.  Every checksum whose update lands on 0, 1, 0xFFFE or 0xFFFF (the two
    forms of ones'-complement zero, UDP's "no checksum" 0) gives the same bytes."""
    from dataplane.nat_py import checksum_update

    vip, port = ("198.18.0.20", 80) if protocol == 6 else ("198.18.0.20", 53)
    balancers = pair(4096, 8, 3)
    client, client_port = ip_int("192.0.2.99"), 40000
    owner = balancers[0].backend_for_new_flow(
        "web" if protocol == 6 else "dns", "192.0.2.99", client_port
    )
    services = ("web", "dns")
    backend = next(b for s in services for b in balancers[0].backends(s) if b.name == owner)
    old_ip, new_ip, new_port = ip_int(vip), ip_int(backend.ip), backend.port
    l4_check_at = 14 + 20 + (16 if protocol == 6 else 6)
    edges = {0, 1, 0xFFFE, 0xFFFF}
    ip_values = sorted(
        {c for c in range(65536) if checksum_update(c, old_ip, new_ip, 0, 0) in edges} | edges
    )
    l4_values = sorted(
        {c for c in range(65536) if checksum_update(c, old_ip, new_ip, port, new_port) in edges}
        | edges
    )
    template = tcp_udp_frame(client, old_ip, protocol, client_port, port, tcp_flags=0x10)
    frames = []
    for at, values in ((24, ip_values), (l4_check_at, l4_values)):
        for value in values:
            frame = bytearray(template)
            frame[at : at + 2] = value.to_bytes(2, "big")
            frames.append(bytes(frame))
    filled = [PacketBatch.from_frames(frames), PacketBatch.from_frames(frames)]
    verdicts = [b.process(batch, 1).tolist() for b, batch in zip(balancers, filled)]
    assert verdicts[0] == verdicts[1] == [1] * len(frames)
    assert filled[0].frames() == filled[1].frames()


@settings(max_examples=40, deadline=None)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, 63), st.integers(0, 255)), min_size=1, max_size=4
    ),
    cut=st.integers(0, 80),
    udp=st.booleans(),
)
def test_header_edits_and_cuts_agree_with_the_twin(edits, cut: int, udp: bool) -> None:
    """The kernel accepts the common frame (20-byte IPv4 header, TCP/UDP) with a few word
    tests before the field-by-field rules: frames with any header byte changed (version,
    IHL, lengths, fragment bits, protocol, ports...) or cut short must get the twin's
    verdict, bytes and counters."""
    balancers = pair(256, 8, 5)
    protocol, port = (17, 53) if udp else (6, 80)
    good = tcp_udp_frame(ip_int("192.0.2.50"), VIP, protocol, 4000, port, payload=b"abcdef")
    frames = [good]
    for at, value in edits:
        frame = bytearray(good)
        if at < len(frame):
            frame[at] = value
        frames.append(bytes(frame))
        frames.append(bytes(frame[: max(0, len(frame) - cut)]))
    frames = [frame for frame in frames if frame] or [good]
    filled = [PacketBatch.from_frames(frames), PacketBatch.from_frames(frames)]
    verdicts = [b.process(batch, 1).tolist() for b, batch in zip(balancers, filled)]
    assert verdicts[0] == verdicts[1]
    assert filled[0].frames() == filled[1].frames()
    assert balancers[0].counters == balancers[1].counters


@pytest.mark.parametrize("udp", [False, True])
def test_every_header_byte_at_boundary_values_agrees_with_the_twin(udp: bool) -> None:
    """Each byte of the Ethernet, IPv4 and TCP/UDP headers set to the values where the
    parse rules change their answer (IHL 4/5/6, total lengths around each minimum and the
    frame's end, fragment bits, protocols 6/17/other), whole and cut by one byte."""
    balancers = pair(256, 8, 5)
    protocol, port = (17, 53) if udp else (6, 80)
    good = tcp_udp_frame(ip_int("192.0.2.50"), VIP, protocol, 4000, port, payload=b"abcdef")
    values = {0, 1, 2, 6, 8, 17, 0x20, 0x3F, 0x40, 0x44, 0x45, 0x46, 0x4F, 0x55, 0x80, 0xFF}
    values |= {n for total in (20, 28, 40, len(good) - 14) for n in (total - 1, total, total + 1)}
    frames = []
    for at in range(12, 48):
        for value in sorted(values):
            frame = bytearray(good)
            frame[at] = value
            frames.append(bytes(frame))
            frames.append(bytes(frame[:-1]))
    filled = [PacketBatch.from_frames(frames), PacketBatch.from_frames(frames)]
    verdicts = [b.process(batch, 1).tolist() for b, batch in zip(balancers, filled)]
    assert verdicts[0] == verdicts[1]
    assert filled[0].frames() == filled[1].frames()
    assert balancers[0].counters == balancers[1].counters
