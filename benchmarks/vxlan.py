"""VXLAN encapsulation/decapsulation: Cython kernels vs twin, scapy, dpkt, memcpy.

Run: ``python -m benchmarks vxlan [--quick] [--json FILE] [--clock wall|cpu]`` (or ``shoal bench vxlan``).

For inner frames of 64, 512 and 1400 bytes (IPv4/UDP, 256 distinct flows) and
batches of 1, 32, 256 and 1024 packets, one run measures packets/s and GB/s of:
- ``cython``: ``vxlan_kernels.encap_batch`` / ``decap_batch``, one call per batch
  (argument checks and buffer acquisition included: that is what a caller pays);
- ``twin``: the pure-Python twin, same calls;
- ``scapy``: building ``Ether/IP/UDP/VXLAN/Raw(frame)`` bytes, and parsing a packet
  down to the VXLAN layer's payload;
- ``dpkt``: building Ethernet/IP/UDP around the VXLAN header + frame (dpkt always
  computes the UDP checksum, so it is listed only with the checksum on), and
  parsing down to the UDP payload with the VXLAN header checked by hand;
- ``memcpy``: ``numpy.copyto`` of the same number of frame bytes (the batch's
  frames, contiguous), the physical limit for touching every byte once.
GB/s counts inner-frame bytes (what the tunnel carries).  Encap moves offsets, so
each timed call gets its own pristine copy of the offsets/lengths arrays, restored
outside the timed loop.  scapy and dpkt are timed per packet on a sample of the
batch.  All cases are sampled round-robin (5 repeats with --quick, else 9) and
the median is reported (the best sample too, in the targets table and JSON).
The machine is shared (2 cores, other jobs): figures are noisy.
"""
from __future__ import annotations

import argparse
import struct
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.common import print_table, write_json
from dataplane import vxlan_common as vc, vxlan_kernels_py
from dataplane.batch import PacketBatch
from dataplane.vxlan import Tunnel

DESCRIPTION = "VXLAN encap/decap: Cython batch kernels vs pure-Python twin, scapy, dpkt and numpy memcpy"

FRAME_SIZES = (64, 512, 1400)
BATCH_SIZES = (1, 32, 256, 1024)
TARGET_BATCH = 256
TUNNEL = {
    "vni": 4096,
    "src_ip": "198.18.0.1",
    "dst_ip": "198.18.0.2",
    "src_mac": "02:00:c6:12:00:01",
    "dst_mac": "02:00:c6:12:00:02",
}


def inner_frame(size: int, flow: int) -> bytes:
    """An Ethernet/IPv4/UDP frame of ``size`` bytes, flow number ``flow``."""
    payload = size - 42
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + payload, flow & 0xFFFF, 0x4000, 64, 17, 0,
                               bytes([10, 0, 0, 1]), bytes([10, 0, (flow >> 8) & 255, flow & 255])))
    udp = struct.pack("!HHHH", 1024 + flow % 50000, 53, 8 + payload, 0)
    return bytes.fromhex("020000000002020000000001") + b"\x08\x00" + bytes(ip) + udp + bytes(payload)


class Clock:
    """The timer used for every sample: wall time (``perf_counter``) by default, or
    this thread's CPU time (``thread_time``) with ``--clock cpu``, which leaves out
    the time the scheduler gives to other jobs on a shared machine."""

    def __init__(self) -> None:
        self.now = time.perf_counter
        self.name = "wall"

    def use(self, name: str) -> None:
        self.now = time.thread_time if name == "cpu" else time.perf_counter
        self.name = name


CLOCK = Clock()


def timed_loop(call: Callable[[int], object], loops: int) -> float:
    """Mean seconds of ``call(j)`` for j in range(loops): one sample."""
    start = CLOCK.now()
    for index in range(loops):
        call(index)
    return (CLOCK.now() - start) / loops


def windows_for(batch: int, budget_packets: int) -> int:
    return max(2, min(200, budget_packets // (batch * COPIES)))


Sampler = Callable[[], float]  # one timing sample: seconds per packet


COPIES = 8  # offsets/lengths copies per timed window: small, so they stay in cache


class Case:
    """One frame size and batch: pristine encap input and encapsulated decap input."""

    def __init__(self, size: int, batch: int) -> None:
        self.size, self.batch = size, batch
        self.frames = [inner_frame(size, flow % 256) for flow in range(batch)]
        self.packets = PacketBatch.from_frames(self.frames)
        # Per-call copies of offsets/lengths so every timed call starts from the same
        # state; they are restored between timed windows, outside the timing.
        self.offsets = [self.packets.offsets.copy() for _ in range(COPIES)]
        self.lengths = [self.packets.lengths.copy() for _ in range(COPIES)]
        self.header = Tunnel(**TUNNEL).header
        self.encapsulated = self.packets.copy()
        Tunnel(**TUNNEL).encap_batch(self.encapsulated)
        self.checksummed = self.packets.copy()
        Tunnel(**TUNNEL, udp_checksum=True).encap_batch(self.checksummed)
        self.statuses = np.zeros(batch, dtype=np.uint8)
        self.vnis = np.zeros(batch, dtype=np.uint32)
        self.src_ips = np.zeros(batch, dtype=np.uint32)
        self.counters = vc.new_counters()

    def windows_sampler(self, call: Callable[[int], object], source: PacketBatch, windows: int,
                        copies: int = COPIES) -> Sampler:
        """Seconds per packet over ``windows`` timed windows of ``copies`` calls each;
        one untimed window first warms the caches (a batch being processed is hot)."""

        def sample() -> float:
            elapsed = 0.0
            for window in range(windows + 1):
                for offsets, lengths in zip(self.offsets[:copies], self.lengths[:copies]):
                    offsets[:] = source.offsets
                    lengths[:] = source.lengths
                start = CLOCK.now()
                for index in range(copies):
                    call(index)
                if window:
                    elapsed += CLOCK.now() - start
            return elapsed / (windows * copies * self.batch)

        return sample

    def encap_sampler(self, kernels: Any, udp_checksum: bool, windows: int) -> Sampler:
        buffer, header, batch, slot = self.packets.buffer, self.header, self.batch, self.packets.slot_size
        offsets, lengths = self.offsets, self.lengths

        def call(index: int) -> None:
            kernels.encap_batch(buffer, offsets[index], lengths[index], batch, header, None, None, 0, 0,
                                udp_checksum, slot)

        return self.windows_sampler(call, self.packets, windows, copies=COPIES if windows > 1 else 1)

    def decap_sampler(self, kernels: Any, source: PacketBatch, windows: int) -> Sampler:
        buffer = source.buffer
        offsets, lengths = self.offsets, self.lengths
        statuses, vnis, src_ips, counters, batch = self.statuses, self.vnis, self.src_ips, self.counters, self.batch

        def call(index: int) -> None:
            kernels.decap_batch(buffer, offsets[index], lengths[index], batch, statuses, vnis, src_ips, counters,
                                0, 4789, None, True, False)

        timed = self.windows_sampler(call, source, windows, copies=COPIES if windows > 1 else 1)

        def sample() -> float:
            seconds = timed()
            assert int(statuses[:batch].max()) == 0, "benchmark input must decapsulate cleanly"
            return seconds

        return sample


def per_packet_sampler(one: Callable[[bytes], object], items: list[bytes]) -> Sampler:
    return lambda: timed_loop(lambda index: one(items[index]), len(items))


def scapy_encapsulator(udp_checksum: bool) -> Callable[[bytes], bytes]:
    from scapy.all import IP, UDP, Ether, Raw
    from scapy.layers.vxlan import VXLAN

    def one(frame: bytes) -> bytes:
        udp = UDP(sport=49152, dport=4789) if udp_checksum else UDP(sport=49152, dport=4789, chksum=0)
        return bytes(Ether(src=TUNNEL["src_mac"], dst=TUNNEL["dst_mac"])
                     / IP(src=TUNNEL["src_ip"], dst=TUNNEL["dst_ip"], flags="DF", ttl=64)
                     / udp / VXLAN(flags=0x08, vni=TUNNEL["vni"]) / Raw(frame))

    return one


def scapy_decapsulate(packet: bytes) -> bytes:
    from scapy.all import Ether
    from scapy.layers.vxlan import VXLAN

    layer = Ether(packet)[VXLAN]
    assert layer.flags & 0x08
    return bytes(layer.payload)


def dpkt_encapsulate(frame: bytes) -> bytes:
    """dpkt has no VXLAN layer: we give it the 8-byte header; it computes lengths and checksums."""
    import dpkt

    udp = dpkt.udp.UDP(sport=49152, dport=4789, data=struct.pack("!II", 0x08 << 24, TUNNEL["vni"] << 8) + frame)
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(src=bytes([198, 18, 0, 1]), dst=bytes([198, 18, 0, 2]), p=17, ttl=64, df=1, data=udp)
    ip.len = len(ip)
    return bytes(dpkt.ethernet.Ethernet(src=bytes.fromhex("0200c6120001"), dst=bytes.fromhex("0200c6120002"),
                                        type=0x0800, data=ip))


def dpkt_decapsulate(packet: bytes) -> bytes:
    import dpkt

    payload = dpkt.ethernet.Ethernet(packet).data.data.data
    assert payload[0] & 0x08
    return payload[8:]


def memcpy_sampler(size: int, batch: int, loops: int) -> Sampler:
    source = np.ones(size * batch, dtype=np.uint8)
    target = np.empty_like(source)
    np.copyto(target, source)  # warm: first touch of the target pages
    return lambda: timed_loop(lambda index: np.copyto(target, source), loops) / batch


def measure(quick: bool) -> list[dict[str, Any]]:
    """Every sampler is built first; then the repeats run round-robin over all of
    them, so a burst of load from other jobs hits every case alike."""
    from dataplane import vxlan_kernels

    repeats = 5 if quick else 9
    samplers: list[tuple[dict[str, Any], Sampler]] = []
    for size in FRAME_SIZES:
        for batch in BATCH_SIZES:
            windows = windows_for(batch, 100_000 if quick else 400_000)
            twin_windows = 1  # the twin is slow: one timed call per sample (after a warm-up call)
            loops = windows * COPIES
            case = Case(size, batch)
            sample = min(batch, 8 if quick else 32)
            frames = case.frames[:sample]

            def add(operation: str, implementation: str, sampler: Sampler) -> None:
                key = {"frame_bytes": size, "batch": batch, "operation": operation, "implementation": implementation}
                samplers.append((key, sampler))

            add("memcpy", "numpy", memcpy_sampler(size, batch, loops))
            for checksum in (False, True):
                operation = "encap+csum" if checksum else "encap"
                add(operation, "cython", case.encap_sampler(vxlan_kernels, checksum, windows))
                add(operation, "twin", case.encap_sampler(vxlan_kernels_py, checksum, twin_windows))
                add(operation, "scapy", per_packet_sampler(scapy_encapsulator(checksum), frames))
            add("encap+csum", "dpkt", per_packet_sampler(dpkt_encapsulate, frames))
            for operation, source in (("decap", case.encapsulated), ("decap+csum", case.checksummed)):
                packets = source.frames()[:sample]
                add(operation, "cython", case.decap_sampler(vxlan_kernels, source, windows))
                add(operation, "twin", case.decap_sampler(vxlan_kernels_py, source, twin_windows))
                add(operation, "scapy", per_packet_sampler(scapy_decapsulate, packets))
                add(operation, "dpkt", per_packet_sampler(dpkt_decapsulate, packets))
    samples: list[list[float]] = [[] for _ in samplers]
    for _ in range(repeats):
        for index, (_key, sampler) in enumerate(samplers):
            samples[index].append(sampler())
    rows = []
    for (key, _sampler), seconds in zip(samplers, samples):
        median, best = float(np.median(seconds)), min(seconds)
        size = key["frame_bytes"]
        rows.append({**key, "samples": len(seconds),
                     "packets_per_second": 1.0 / median, "gigabytes_per_second": size / median / 1e9,
                     "packets_per_second_best": 1.0 / best, "gigabytes_per_second_best": size / best / 1e9})
    return rows


def lookup(rows: list[dict[str, Any]], operation: str, implementation: str, size: int, batch: int) -> dict[str, Any]:
    for row in rows:
        if (row["operation"], row["implementation"], row["frame_bytes"], row["batch"]) == (
                operation, implementation, size, batch):
            return row
    raise KeyError((operation, implementation, size, batch))


def table_rows(rows: list[dict[str, Any]]) -> tuple[list[list[object]], list[list[object]]]:
    """(Cython figures with ratios to each peer, the peers' own figures)."""
    ours, peers = [], []
    for row in rows:
        if row["implementation"] != "cython":
            continue
        size, batch, operation = row["frame_bytes"], row["batch"], row["operation"]
        case = f"{operation} {size}B x{batch}"
        twin = lookup(rows, operation, "twin", size, batch)
        scapy = lookup(rows, operation, "scapy", size, batch)
        memcpy = lookup(rows, "memcpy", "numpy", size, batch)
        try:
            dpkt_pps = lookup(rows, operation, "dpkt", size, batch)["packets_per_second"]
        except KeyError:
            dpkt_pps = 0.0
        pps = row["packets_per_second"]
        ours.append([case, pps / 1e6, row["gigabytes_per_second"], pps / twin["packets_per_second"],
                     pps / scapy["packets_per_second"], pps / dpkt_pps if dpkt_pps else "-",
                     row["gigabytes_per_second"] / memcpy["gigabytes_per_second"]])
        peers.append([case, twin["packets_per_second"] / 1e3, scapy["packets_per_second"] / 1e3,
                      dpkt_pps / 1e3 if dpkt_pps else "-", memcpy["gigabytes_per_second"]])
    return ours, peers


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    encap64 = lookup(rows, "encap", "cython", 64, TARGET_BATCH)
    encap1400 = lookup(rows, "encap", "cython", 1400, TARGET_BATCH)
    csum1400 = lookup(rows, "encap+csum", "cython", 1400, TARGET_BATCH)
    memcpy1400 = lookup(rows, "memcpy", "numpy", 1400, TARGET_BATCH)
    twin64 = lookup(rows, "encap", "twin", 64, TARGET_BATCH)
    decap64 = lookup(rows, "decap", "cython", 64, TARGET_BATCH)
    checks = []
    for suffix in ("", "_best"):
        pps, gbps = "packets_per_second" + suffix, "gigabytes_per_second" + suffix
        checks.append([
            ("encap 64B x256 Mpps >= 25", encap64[pps] / 1e6, 25.0),
            ("encap 64B x256 / twin >= 25", encap64[pps] / twin64[pps], 25.0),
            ("encap 1400B / 64B rate >= 0.8", encap1400[pps] / encap64[pps], 0.8),
            ("encap+csum 1400B GB/s / memcpy >= 0.8", csum1400[gbps] / memcpy1400[gbps], 0.8),
            ("decap 64B x256 Mpps >= 50", decap64[pps] / 1e6, 50.0),
        ])
    return [{"target": name, "measured": value, "measured_best": best, "needed": needed, "met": value >= needed}
            for (name, value, needed), (_, best, _) in zip(checks[0], checks[1])]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks vxlan", description=DESCRIPTION)
    parser.add_argument("--json", metavar="FILE", help="write every measurement as JSON")
    parser.add_argument("--quick", action="store_true", help="short run (fewer loops and repeats)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="time samples by wall clock (default) or by this thread's CPU time")
    options = parser.parse_args(argv)
    CLOCK.use(options.clock)
    try:
        from dataplane import vxlan_kernels  # noqa: F401
    except ImportError:
        print("vxlan benchmark: the Cython extension is not built (python setup.py build_ext --inplace)")
        return 1
    rows = measure(options.quick)
    ours, peers = table_rows(rows)
    print_table("VXLAN, Cython kernels (GB/s of inner-frame bytes; xPEER = our packets/s over theirs; "
                "x memcpy = our bytes/s over numpy memcpy of the same bytes)",
                ["case", "Mpps", "GB/s", "x twin", "x scapy", "x dpkt", "x memcpy"], ours)
    print_table("Peers measured in the same run", ["case", "twin kpps", "scapy kpps", "dpkt kpps", "memcpy GB/s"],
                peers)
    checks = targets(rows)
    print_table("Targets (batch 256, one core; median of the samples, and the best sample)",
                ["target", "median", "best", "needed", "met (median)"],
                [[c["target"], c["measured"], c["measured_best"], c["needed"], "yes" if c["met"] else "NO"]
                 for c in checks])
    print(f"clock: {CLOCK.name}; {'quick run' if options.quick else 'full run'}; machine shared, figures noisy")
    write_json(options.json, {"area": "vxlan", "quick": options.quick, "clock": CLOCK.name, "rows": rows,
                              "targets": checks})
    return 0
