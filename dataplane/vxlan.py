"""VXLAN (RFC 7348) for Shoal's overlay: tunnels, batch encap/decap, single packets.

Quick use::

    from dataplane.vxlan import Tunnel, decap
    tunnel = Tunnel(vni=4096, src_ip="192.0.2.1", dst_ip="192.0.2.2",
                    src_mac="02:00:c0:00:02:01", dst_mac="02:00:c0:00:02:02")
    packet = tunnel.encap(frame)          # outer Ethernet/IPv4/UDP/VXLAN + frame
    vni, inner = decap(packet)            # raises a VxlanError subclass naming the reason

Batch use (the fast path, one GIL-free call per batch)::

    tunnel.encap_batch(batch)                       # PacketBatch, in place in the headroom
    result = Decapsulator(known_vnis=[4096]).decap_batch(batch)

Kernels: the Cython module ``dataplane.vxlan_kernels`` unless ``SHOAL_PURE=1``
is set or it is not built, then the twin ``dataplane.vxlan_kernels_py``.
``KERNELS`` names the one in use.

Choices (RFC 7348 s.5 and around it):
- Underlay IPv4 or IPv6, chosen by the tunnel's addresses.  Over IPv6 the
  header is 70 bytes, the flow label carries 20 bits of the inner flow hash
  (RFC 6438), the UDP checksum is on by default (RFC 8200; zero only if asked,
  RFC 6935), and decap drops zero-checksum IPv6 packets unless
  ``accept_zero_checksum_ipv6`` (RFC 6936); IPv6 extension headers are not
  walked (dropped as ``not_udp``, fragments as ``ip_fragment``).
- IPv4: DF is set by default (configurable).  Identification: a per-tunnel 16-bit
  counter, packet i of a batch gets (next_ip_id + i) mod 2**16.  RFC 6864
  allows any value for atomic (DF) datagrams; a counter also stays correct
  when DF is turned off and the underlay fragments.
- UDP source port: 49152 + 14 bits of a seeded multiply-xorshift hash of the
  inner L2/L3/L4 flow fields (no Python ``hash()``): one flow, one port.
- UDP checksum over IPv4: 0 (none) by default, as RFC 7348 recommends; when
  enabled, computed over pseudo-header and the whole datagram (RFC 768).
- Decap: reserved bits are ignored on receipt (RFC 7348) unless
  ``strict_reserved``; a non-zero UDP checksum is verified unless
  ``verify_udp_checksum=False``; drops are counted by reason
  (``vxlan_common.DROP_REASONS``).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from dataplane import vxlan_common as vc
from dataplane import vxlan_kernels_py
from dataplane.batch import PacketBatch
from dataplane.kernels import select_kernel
from dataplane.vxlan_common import (  # noqa: F401  (re-exported for callers)
    DROP_REASONS,
    EncapError,
    InvalidAddress,
    InvalidMAC,
    InvalidPort,
    InvalidTTL,
    InvalidVNI,
    TunnelConfigError,
    VxlanError,
)


kernels: ModuleType = select_kernel("dataplane.vxlan_kernels", vxlan_kernels_py)
KERNELS = "python" if kernels is vxlan_kernels_py else "cython"


class Tunnel:
    """One VXLAN tunnel endpoint pair (per-batch defaults; per-packet overrides allowed).

    IPv4 or IPv6 underlay, from the addresses (both of one family).  ``ttl`` is
    the hop limit and ``tos`` the traffic class over IPv6.  ``udp_checksum``
    defaults to off over IPv4 and on over IPv6.  Not thread-safe:
    ``next_ip_id`` advances with every packet encapsulated (IPv4).
    """

    def __init__(
        self,
        vni: int,
        src_ip: str,
        dst_ip: str,
        src_mac: str,
        dst_mac: str,
        dst_port: int = vc.VXLAN_PORT_DEFAULT,
        *,
        ttl: int = vc.TTL_DEFAULT,
        tos: int = 0,
        dont_fragment: bool = True,
        udp_checksum: bool | None = None,
        hash_seed: int = vc.HASH_SEED_DEFAULT,
        ip_id_start: int = 0,
        kernels_module: ModuleType | None = None,
    ) -> None:
        self.vni = vc.check_vni(vni)
        src_family, self.src_ip = vc.parse_ip(src_ip, "source IP")
        dst_family, self.dst_ip = vc.parse_ip(dst_ip, "destination IP")
        if src_family != dst_family:
            raise InvalidAddress(f"source {src_ip!r} and destination {dst_ip!r} are of different IP versions")
        self.family = src_family
        self.header_bytes = vc.OUTER_HEADER_BYTES if self.family == 4 else vc.OUTER_HEADER_BYTES_IPV6
        self.src_mac = vc.parse_mac(src_mac, "source MAC")
        self.dst_mac = vc.parse_mac(dst_mac, "destination MAC")
        self.dst_port = vc.check_port(dst_port, "UDP destination port")
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= 255:
            raise InvalidTTL(f"TTL must be an integer 1..255, got {ttl!r}")
        if isinstance(tos, bool) or not isinstance(tos, int) or not 0 <= tos <= 255:
            raise TunnelConfigError(f"TOS must be an integer 0..255, got {tos!r}")
        if not isinstance(hash_seed, int) or not 0 <= hash_seed < 1 << 64:
            raise TunnelConfigError(f"hash_seed must be a 64-bit unsigned integer, got {hash_seed!r}")
        if not isinstance(ip_id_start, int) or not 0 <= ip_id_start <= 0xFFFF:
            raise TunnelConfigError(f"ip_id_start must be 0..65535, got {ip_id_start!r}")
        self.ttl = ttl
        self.tos = tos
        self.dont_fragment = bool(dont_fragment)
        self.udp_checksum = (self.family == 6) if udp_checksum is None else bool(udp_checksum)
        self.hash_seed = hash_seed
        self.next_ip_id = ip_id_start
        self.kernels = kernels_module or kernels
        if self.family == 4:
            self.header = vc.build_header_template(
                vni=self.vni,
                src_ip=self.src_ip,
                dst_ip=self.dst_ip,
                src_mac=self.src_mac,
                dst_mac=self.dst_mac,
                dst_port=self.dst_port,
                ttl=ttl,
                tos=tos,
                dont_fragment=self.dont_fragment,
            )
        else:
            self.header = vc.build_header_template_ipv6(
                vni=self.vni,
                src_ip=self.src_ip,
                dst_ip=self.dst_ip,
                src_mac=self.src_mac,
                dst_mac=self.dst_mac,
                dst_port=self.dst_port,
                hop_limit=ttl,
                traffic_class=tos,
            )

    def encap_batch(
        self,
        batch: PacketBatch,
        dst_ips: np.ndarray | Sequence[str] | None = None,
        dst_macs: np.ndarray | Sequence[str] | None = None,
        udp_checksum: bool | None = None,
    ) -> None:
        """Encapsulate every packet of ``batch`` in place (offsets move back 50 or 70 bytes).

        ``dst_ips``/``dst_macs``: optional per-packet outer destination (many
        remote VTEPs in one batch), as strings or arrays (IPv4: uint32 host-order
        integers; IPv6: flat uint8, 16 bytes each; MACs: flat uint8, 6 each)."""
        dst_ip_array = _ip_array(dst_ips, self.family)
        dst_mac_array = _mac_array(dst_macs)
        checksum = self.udp_checksum if udp_checksum is None else bool(udp_checksum)
        if self.family == 6:
            self.kernels.encap_batch_ipv6(
                batch.buffer,
                batch.offsets,
                batch.lengths,
                batch.count,
                self.header,
                dst_ip_array,
                dst_mac_array,
                self.hash_seed,
                checksum,
                batch.slot_size,
            )
            return
        self.next_ip_id = self.kernels.encap_batch(
            batch.buffer,
            batch.offsets,
            batch.lengths,
            batch.count,
            self.header,
            dst_ip_array,
            dst_mac_array,
            self.next_ip_id,
            self.hash_seed,
            checksum,
            batch.slot_size,
        )

    def encap(self, frame: bytes | bytearray | memoryview, udp_checksum: bool | None = None) -> bytes:
        """The outer Ethernet/IPv4/UDP/VXLAN packet carrying ``frame``."""
        batch = PacketBatch.from_frames([frame], headroom=self.header_bytes)
        self.encap_batch(batch, udp_checksum=udp_checksum)
        return batch.frame(0)

    def source_port(self, frame: bytes | bytearray | memoryview) -> int:
        """The UDP source port this tunnel gives ``frame`` (RFC 7348 s.5 entropy)."""
        return int(self.kernels.source_port(bytes(frame), self.hash_seed))

    def __repr__(self) -> str:
        return (
            f"Tunnel(vni={self.vni}, src_ip={str(ipaddress.ip_address(self.src_ip))!r}, "
            f"dst_ip={str(ipaddress.ip_address(self.dst_ip))!r}, dst_port={self.dst_port})"
        )


def _ip_array(values: np.ndarray | Sequence[str] | None, family: int) -> np.ndarray | None:
    if values is None or isinstance(values, np.ndarray):
        return values
    addresses = []
    for value in values:
        version, address = vc.parse_ip(value, "destination IP")
        if version != family:
            raise InvalidAddress(f"destination {value!r} is not an IPv{family} address like the tunnel's")
        addresses.append(address)
    if family == 4:
        return np.array(addresses, dtype=np.uint32)
    return np.frombuffer(b"".join(address.to_bytes(16, "big") for address in addresses), dtype=np.uint8).copy()


def _mac_array(values: np.ndarray | Sequence[str] | None) -> np.ndarray | None:
    if values is None or isinstance(values, np.ndarray):
        return values
    return np.frombuffer(b"".join(vc.parse_mac(value, "destination MAC") for value in values), dtype=np.uint8).copy()


@dataclass(frozen=True)
class DecapResult:
    """What ``Decapsulator.decap_batch`` saw, per packet (index = packet in batch)."""

    accepted: int
    statuses: np.ndarray  # uint8 reason code, 0 = accepted (vxlan_common.DROP_REASONS)
    vnis: np.ndarray  # uint32 VNI of accepted packets, 0 for drops
    src_ips: np.ndarray  # uint32 outer IPv4 source of accepted packets (0 at layer "vxlan" and for IPv6)
    src_ips6: np.ndarray  # uint8 (count, 16): outer IPv6 source of accepted IPv6 packets, zeros otherwise

    def reasons(self) -> list[str]:
        return [DROP_REASONS[int(code)] for code in self.statuses]

    def source_address(self, index: int) -> str | None:
        """Outer source of accepted packet ``index`` (for forwarding-table learning), or None."""
        if self.statuses[index] != vc.ACCEPTED:
            return None
        if self.src_ips6[index].any():
            return str(ipaddress.IPv6Address(self.src_ips6[index].tobytes()))
        if self.src_ips[index]:
            return str(ipaddress.IPv4Address(int(self.src_ips[index])))
        return None


class Decapsulator:
    """Batch decapsulation with a fixed policy and running drop counters by reason."""

    def __init__(
        self,
        *,
        layer: str = "ethernet",
        dst_port: int = vc.VXLAN_PORT_DEFAULT,
        known_vnis: Iterable[int] | None = None,
        verify_udp_checksum: bool = True,
        strict_reserved: bool = False,
        accept_zero_checksum_ipv6: bool = False,
        kernels_module: ModuleType | None = None,
    ) -> None:
        if layer not in vc.LAYER_NAMES:
            raise TunnelConfigError(f"layer must be one of {sorted(vc.LAYER_NAMES)}, got {layer!r}")
        self.layer = vc.LAYER_NAMES[layer]
        self.dst_port = vc.check_port(dst_port, "UDP destination port")
        self.known_vnis = None
        if known_vnis is not None:
            checked = sorted({vc.check_vni(vni) for vni in known_vnis})
            self.known_vnis = np.array(checked, dtype=np.uint32)
        self.verify_udp_checksum = bool(verify_udp_checksum)
        self.strict_reserved = bool(strict_reserved)
        self.accept_zero_checksum_ipv6 = bool(accept_zero_checksum_ipv6)
        self.kernels = kernels_module or kernels
        self.counters = vc.new_counters()

    def decap_batch(self, batch: PacketBatch) -> DecapResult:
        """Strip outer headers of every valid packet in place; count every drop."""
        count = batch.count
        statuses = np.zeros(count, dtype=np.uint8)
        vnis = np.zeros(count, dtype=np.uint32)
        src_ips = np.zeros(count, dtype=np.uint32)
        src_ips6 = np.zeros(16 * count, dtype=np.uint8)
        accepted = self.kernels.decap_batch(
            batch.buffer,
            batch.offsets,
            batch.lengths,
            count,
            statuses,
            vnis,
            src_ips,
            self.counters,
            self.layer,
            self.dst_port,
            self.known_vnis,
            self.verify_udp_checksum,
            self.strict_reserved,
            src_ips6,
            self.accept_zero_checksum_ipv6,
        )
        return DecapResult(accepted, statuses, vnis, src_ips, src_ips6.reshape(count, 16))

    def counts(self) -> dict[str, int]:
        """Running counters by reason name (``accepted`` included)."""
        return vc.counters_dict(self.counters)


def decap(
    packet: bytes | bytearray | memoryview,
    *,
    layer: str = "ethernet",
    dst_port: int = vc.VXLAN_PORT_DEFAULT,
    known_vnis: Iterable[int] | None = None,
    verify_udp_checksum: bool = True,
    strict_reserved: bool = False,
    accept_zero_checksum_ipv6: bool = False,
    kernels_module: ModuleType | None = None,
) -> tuple[int, bytes]:
    """(vni, inner frame) of one packet, or a VxlanError subclass naming why not.

    ``layer``: "ethernet" (full frame, IPv4 or IPv6), "ipv4" / "ipv6" (IP packet)
    or "vxlan" (UDP payload)."""
    decapsulator = Decapsulator(
        layer=layer,
        dst_port=dst_port,
        known_vnis=known_vnis,
        verify_udp_checksum=verify_udp_checksum,
        strict_reserved=strict_reserved,
        accept_zero_checksum_ipv6=accept_zero_checksum_ipv6,
        kernels_module=kernels_module,
    )
    raw = bytes(packet)
    batch = PacketBatch.from_frames([raw], headroom=0)
    result = decapsulator.decap_batch(batch)
    code = int(result.statuses[0])
    if code != vc.ACCEPTED:
        raise vc.ERROR_FOR_REASON[code](f"VXLAN packet of {len(raw)} bytes dropped: {DROP_REASONS[code]}")
    return int(result.vnis[0]), batch.frame(0)
