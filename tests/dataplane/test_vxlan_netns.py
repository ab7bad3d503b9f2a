"""Interoperability with the Linux kernel's vxlan device, in namespaces we create.

Topology (names unique to this run, removed at the end even on failure), once
over an IPv4 underlay and once over IPv6 (2001:db8::/64, RFC 3849)::

    ns "kernel": a0 198.18.0.1/24 --veth-- b0 198.18.0.2/24 :ns "ours"
                 vx0 VNI 4096 (no UDP checksum), vx1 VNI 5000 (UDP checksum)
                 both remote 198.18.0.2, dstport 4789

1. Frames injected into vx0/vx1 (AF_PACKET) are encapsulated by the kernel; we
   receive them on a UDP socket bound to 198.18.0.2:4789 and on a raw socket on
   b0, and our decap gives back the exact frame, VNI and outer source.
2. Frames we encapsulate, sent as full frames on b0 or as UDP payloads from a
   socket, arrive on the kernel's vx device as the original inner frames.
"""
from __future__ import annotations

import socket
import struct
import time

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from dataplane import vxlan_kernels_py
from dataplane.netns import NetnsLab, available
from dataplane.vxlan import Decapsulator, Tunnel, decap
from dataplane.batch import PacketBatch
from dataplane.vxlan_strategies import inner_frames

try:
    from dataplane import vxlan_kernels
except ImportError:  # pragma: no cover - extension not built
    vxlan_kernels = None

pytestmark = [pytest.mark.netns, pytest.mark.skipif(available() is not None, reason=str(available()))]

UNDERLAYS = {"ipv4": ("198.18.0.1", "198.18.0.2", 24), "ipv6": ("2001:db8::1", "2001:db8::2", 64)}
VX_MAC = "02:00:c6:12:00:01"  # the kernel device's own MAC: it drops inner frames sourced from it
DEVICES = {"vx0": (4096, False), "vx1": (5000, True)}  # name -> (VNI, kernel sends UDP checksum)
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
RECEIVE_TIMEOUT_SECONDS = 3.0  # only spent when a frame is missing; generous for a loaded machine
FRAMES_SCANNED_MAX = 200
KERNELS = [vxlan_kernels_py] + ([vxlan_kernels] if vxlan_kernels is not None else [])


class Lab:
    def __init__(self, lab: NetnsLab, underlay: str) -> None:
        self.kernel_ip, self.ours_ip, prefix_bits = UNDERLAYS[underlay]
        self.family = 6 if underlay == "ipv6" else 4
        self.kernel = lab.namespace("kernel")
        self.ours = lab.namespace("ours")
        if self.family == 4:
            for namespace in (self.kernel, self.ours):
                lab.disable_ipv6(namespace)
        lab.veth(self.kernel, "a0", self.ours, "b0")
        lab.disable_checksum_offload(self.kernel, "a0")  # so b0 captures final UDP checksums
        lab.address(self.kernel, "a0", f"{self.kernel_ip}/{prefix_bits}")
        lab.address(self.ours, "b0", f"{self.ours_ip}/{prefix_bits}")
        # Over IPv6 both devices keep the kernel's default (checksums on): devices that
        # share UDP port 4789 must agree on zero-checksum flags (else EADDRINUSE).
        self.devices = {device: (vni, checksum or self.family == 6) for device, (vni, checksum) in DEVICES.items()}
        for device, (vni, checksum) in self.devices.items():
            lab.vxlan(self.kernel, device, vni=vni, local=self.kernel_ip, remote=self.ours_ip, device="a0",
                      udp_checksum=checksum, mac=VX_MAC)
        self.a0_mac = lab.mac(self.kernel, "a0")
        self.b0_mac = lab.mac(self.ours, "b0")
        with lab.inside(self.ours):
            self.udp = socket.socket(socket.AF_INET6 if self.family == 6 else socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind((self.ours_ip, 4789))
            self.b0 = raw_socket("b0")
        with lab.inside(self.kernel):
            self.vx = {device: raw_socket(device) for device in DEVICES}
        self.sockets = [self.udp, self.b0, *self.vx.values()]

    def drain(self) -> None:
        for sock in self.sockets:
            sock.setblocking(False)
            try:
                while True:
                    sock.recv(65536)
            except BlockingIOError:
                pass
            sock.settimeout(RECEIVE_TIMEOUT_SECONDS)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def raw_socket(device: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((device, 0))
    sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    sock.settimeout(RECEIVE_TIMEOUT_SECONDS)
    return sock


def receive_frame(sock: socket.socket) -> tuple[bytes, int]:
    """One frame as it was on the wire: the kernel strips a received VLAN tag into
    metadata, so put it back from PACKET_AUXDATA (as libpcap does)."""
    data, ancillary, _flags, address = sock.recvmsg(65536, socket.CMSG_SPACE(20))
    for level, kind, payload in ancillary:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(payload) >= 20:
            status, _length, _snap, _mac, _net, tci, tpid = struct.unpack("=IIIHHHH", payload[:20])
            if status & TP_STATUS_VLAN_VALID:
                tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
                data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
    return data, address[2]


@pytest.fixture(scope="module", params=sorted(UNDERLAYS))
def lab(request):
    with NetnsLab("vxlan") as netns_lab:
        topology = Lab(netns_lab, request.param)
        try:
            yield topology
        finally:
            topology.close()


def kernel_safe(frame: bytes) -> bool:
    """Frames the kernel itself refuses, whoever encapsulated them: sourced from the
    vxlan device's own MAC (loop guard), or VLAN tagged with nothing after the tag (observed dropped
    on receive; skb_vlan_untag wants 2 bytes beyond the tag)."""
    if frame[6:12] == bytes.fromhex(VX_MAC.replace(":", "")):
        return False
    return not (frame[12:14] in (b"\x81\x00", b"\x88\xa8") and len(frame) < 20)


FRAMES = inner_frames(max_size=1400).filter(kernel_safe)
# No shrinking: every failing example costs receive timeouts; the failure is printed as found.
NETNS_SETTINGS = settings(max_examples=15, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.mark.parametrize("device", sorted(DEVICES))
@NETNS_SETTINGS
@given(frame=FRAMES)
def test_frames_the_kernel_encapsulates_decapsulate_with_ours(lab: Lab, device: str, frame: bytes) -> None:
    vni, _checksum = lab.devices[device]
    lab.drain()
    lab.vx[device].send(frame)
    # As a UDP payload on a socket bound to 4789.
    deadline = time.monotonic() + RECEIVE_TIMEOUT_SECONDS
    while True:
        payload, address = lab.udp.recvfrom(65536)
        assert address[0] == lab.kernel_ip
        if payload[8:] == frame or time.monotonic() > deadline:
            break
    for kernels in KERNELS:
        assert decap(payload, layer="vxlan", known_vnis=[vni], kernels_module=kernels) == (vni, frame)
    # As a full frame on b0: our checks accept the kernel's IPv4 and UDP headers (checksums verified).
    for _ in range(FRAMES_SCANNED_MAX):
        wire, _kind = receive_frame(lab.b0)
        batch = PacketBatch.from_frames([wire], headroom=0)
        result = Decapsulator(known_vnis=[vni], verify_udp_checksum=True,
                              accept_zero_checksum_ipv6=True).decap_batch(batch)
        if result.accepted and batch.frame(0) == frame:
            break
    else:
        pytest.fail("the kernel's encapsulated frame never showed up on b0")
    assert result.source_address(0) == lab.kernel_ip
    checksum_at = 40 if lab.family == 4 else 60
    assert (wire[checksum_at : checksum_at + 2] != b"\x00\x00") == lab.devices[device][1]  # verified above


def wait_on_kernel_device(lab: Lab, device: str, frame: bytes) -> None:
    for _ in range(FRAMES_SCANNED_MAX):
        received, kind = receive_frame(lab.vx[device])
        if kind != PACKET_OUTGOING and received == frame:
            return
    pytest.fail(f"frame never arrived on kernel device {device}")


@pytest.mark.parametrize("device", sorted(DEVICES))
@pytest.mark.parametrize("udp_checksum", [False, True], ids=["nocsum", "csum"])
@NETNS_SETTINGS
@given(frame=FRAMES, kernel_index=st.integers(0, len(KERNELS) - 1))
def test_frames_we_encapsulate_arrive_on_the_kernel_device(lab: Lab, device: str, udp_checksum: bool,
                                                           frame: bytes, kernel_index: int) -> None:
    vni, _kernel_checksum = lab.devices[device]
    if lab.family == 6 and not udp_checksum:
        return  # the kernel refuses zero UDP checksums over IPv6 by default (RFC 6936): nothing to deliver
    tunnel = Tunnel(vni=vni, src_ip=lab.ours_ip, dst_ip=lab.kernel_ip, src_mac=lab.b0_mac, dst_mac=lab.a0_mac,
                    udp_checksum=udp_checksum, kernels_module=KERNELS[kernel_index])
    packet = tunnel.encap(frame)
    # Full frame on the wire: the kernel checks our IPv4 header and UDP checksum.
    lab.drain()
    lab.b0.send(packet)
    wait_on_kernel_device(lab, device, frame)
    # VXLAN header + frame as the payload of an ordinary UDP socket.
    lab.drain()
    lab.udp.sendto(packet[tunnel.header_bytes - 8 :], (lab.kernel_ip, 4789))
    wait_on_kernel_device(lab, device, frame)


def test_kernel_drops_our_packet_when_its_udp_checksum_is_wrong(lab: Lab) -> None:
    """Control for the test above: the kernel really verifies the checksum we write."""
    frame = bytes.fromhex("020000000002" "020000000003" "88b5") + b"checksum control" * 4
    tunnel = Tunnel(vni=4096, src_ip=lab.ours_ip, dst_ip=lab.kernel_ip, src_mac=lab.b0_mac, dst_mac=lab.a0_mac,
                    udp_checksum=True)
    packet = bytearray(tunnel.encap(frame))
    packet[tunnel.header_bytes - 10] ^= 0x01  # the UDP checksum's low byte
    lab.drain()
    lab.vx["vx0"].settimeout(0.5)
    lab.b0.send(bytes(packet))
    with pytest.raises(TimeoutError):
        while True:
            received, kind = receive_frame(lab.vx["vx0"])
            assert not (kind != PACKET_OUTGOING and received == frame), "a corrupted packet was delivered"
    lab.b0.send(tunnel.encap(frame))  # and the intact one is delivered
    lab.vx["vx0"].settimeout(RECEIVE_TIMEOUT_SECONDS)
    wait_on_kernel_device(lab, "vx0", frame)
