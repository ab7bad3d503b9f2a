"""Constants, drop reasons, errors and header layout shared by both VXLAN kernels.

Both ``dataplane.vxlan_kernels`` (Cython) and ``dataplane.vxlan_kernels_py``
(its pure-Python twin) import this module, so a reason code, an error class or
an error message is defined exactly once.

Outer header layout written by encapsulation over IPv4 (RFC 7348 s.5), 50 bytes::

    0  Ethernet  dst MAC(6) src MAC(6) type 0x0800(2)
    14 IPv4      ver/IHL 0x45, TOS, total length, identification, flags+fragment
                 offset (DF), TTL, protocol 17, header checksum, src, dst
    34 UDP       src port (flow hash, 49152-65535), dst port (4789), length, checksum
    42 VXLAN     flags 0x08 (I bit), 24 reserved bits, 24-bit VNI, 8 reserved bits
    50 inner Ethernet frame

Over an IPv6 underlay, 70 bytes::

    0  Ethernet  dst MAC(6) src MAC(6) type 0x86DD(2)
    14 IPv6      version 6, traffic class, flow label (20 bits of the inner flow
                 hash, RFC 6438), payload length, next header 17, hop limit, src, dst
    54 UDP       src port, dst port, length, checksum (on by default: RFC 8200;
                 zero only by choice, RFC 6935/6936)
    62 VXLAN
    70 inner Ethernet frame
"""
from __future__ import annotations

import ipaddress
import re

import numpy as np

# -- layout --------------------------------------------------------------------

ETHERNET_HEADER_BYTES = 14
IPV4_HEADER_BYTES = 20
UDP_HEADER_BYTES = 8
VXLAN_HEADER_BYTES = 8
OUTER_HEADER_BYTES = ETHERNET_HEADER_BYTES + IPV4_HEADER_BYTES + UDP_HEADER_BYTES + VXLAN_HEADER_BYTES
assert OUTER_HEADER_BYTES == 50

IPV6_HEADER_BYTES = 40
OUTER_HEADER_BYTES_IPV6 = ETHERNET_HEADER_BYTES + IPV6_HEADER_BYTES + UDP_HEADER_BYTES + VXLAN_HEADER_BYTES
assert OUTER_HEADER_BYTES_IPV6 == 70

IPV4_OFFSET = 14
UDP_OFFSET = 34
VXLAN_OFFSET = 42

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_VLAN = 0x8100
ETHERTYPE_QINQ = 0x88A8
IP_PROTOCOL_TCP = 6
IP_PROTOCOL_UDP = 17
IP_PROTOCOL_SCTP = 132

VXLAN_PORT_DEFAULT = 4789  # IANA, RFC 7348 s.5
VXLAN_FLAG_I = 0x08  # "I" flag: the VNI is valid; every other flag bit is reserved
VNI_MAX = (1 << 24) - 1
SOURCE_PORT_MIN = 49152  # RFC 7348 s.5: dynamic/private port range 49152-65535
MIN_INNER_FRAME_BYTES = ETHERNET_HEADER_BYTES
# IPv4 total length is 16 bits: 20 (IPv4) + 8 (UDP) + 8 (VXLAN) + inner <= 65535.
MAX_INNER_FRAME_BYTES = 0xFFFF - IPV4_HEADER_BYTES - UDP_HEADER_BYTES - VXLAN_HEADER_BYTES
# IPv6 payload length is 16 bits: 8 (UDP) + 8 (VXLAN) + inner <= 65535.
MAX_INNER_FRAME_BYTES_IPV6 = 0xFFFF - UDP_HEADER_BYTES - VXLAN_HEADER_BYTES
IP_NEXT_HEADER_FRAGMENT = 44
IPV4_FLAG_DF = 0x4000
TTL_DEFAULT = 64

# Flow hash (RFC 7348 s.5: "a hash of fields from the inner packet"): a
# multiply-xorshift mix over fixed header words; see vxlan_kernels_py.flow_hash.
FLOW_HASH_MULTIPLIER = 0x9E3779B97F4A7C15
FLOW_HASH_FINAL_MULTIPLIER = 0xFF51AFD7ED558CCD
HASH_SEED_DEFAULT = 0

# -- decapsulation layers and drop reasons ------------------------------------

LAYER_ETHERNET = 0  # full received frame: outer Ethernet / IPv4 or IPv6 / UDP / VXLAN
LAYER_IPV4 = 1  # raw IPv4 datagram (e.g. from a raw IP socket)
LAYER_VXLAN = 2  # UDP payload from a socket bound to the VXLAN port
LAYER_IPV6 = 3  # raw IPv6 packet
LAYER_NAMES = {"ethernet": LAYER_ETHERNET, "ipv4": LAYER_IPV4, "vxlan": LAYER_VXLAN, "ipv6": LAYER_IPV6}

# Index = reason code stored in the per-packet status array and the counters
# array.  Code 0 is "accepted", so counters.sum() == packets seen.
DROP_REASONS: tuple[str, ...] = (
    "accepted",
    "truncated",  # fewer bytes than the headers claimed or need
    "bad_ethertype",  # outer Ethernet type is not IPv4 (outer VLAN tags not accepted)
    "bad_ip_version",
    "bad_ip_header_length",  # IHL < 5
    "bad_ip_total_length",  # total length < header length or > bytes received
    "bad_ip_checksum",
    "ip_fragment",  # MF set or fragment offset non-zero: we never reassemble
    "not_udp",
    "wrong_port",  # UDP destination port is not the configured VXLAN port
    "bad_udp_length",  # UDP length < 8 or beyond the IPv4 payload
    "bad_udp_checksum",  # non-zero checksum that does not verify (when verifying)
    "bad_vxlan_flags",  # I flag clear
    "reserved_bits_set",  # only under the strict reserved-bits policy
    "unknown_vni",  # VNI not in the known set
    "inner_too_short",  # inner frame shorter than an Ethernet header
    "zero_udp_checksum",  # IPv6 without a UDP checksum, not accepted unless configured (RFC 6936)
)
REASON_CODE = {name: code for code, name in enumerate(DROP_REASONS)}
ACCEPTED = 0
TRUNCATED = 1
BAD_ETHERTYPE = 2
BAD_IP_VERSION = 3
BAD_IP_HEADER_LENGTH = 4
BAD_IP_TOTAL_LENGTH = 5
BAD_IP_CHECKSUM = 6
IP_FRAGMENT = 7
NOT_UDP = 8
WRONG_PORT = 9
BAD_UDP_LENGTH = 10
BAD_UDP_CHECKSUM = 11
BAD_VXLAN_FLAGS = 12
RESERVED_BITS_SET = 13
UNKNOWN_VNI = 14
INNER_TOO_SHORT = 15
ZERO_UDP_CHECKSUM = 16
N_REASONS = len(DROP_REASONS)
assert all(REASON_CODE[name] == globals()[name.upper()] for name in DROP_REASONS)


def new_counters() -> np.ndarray:
    """A zeroed counters array for ``decap_batch`` (index = reason code)."""
    return np.zeros(N_REASONS, dtype=np.uint64)


def counters_dict(counters: np.ndarray) -> dict[str, int]:
    """Counters by reason name, e.g. ``{"accepted": 250, "bad_ip_checksum": 6, ...}``."""
    return {name: int(counters[code]) for code, name in enumerate(DROP_REASONS)}


# -- errors ----------------------------------------------------------------------


class VxlanError(ValueError):
    """A packet was refused; ``reason`` names the check that failed."""

    reason = "unknown"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or f"VXLAN packet dropped: {self.reason}")


def _error_class(reason: str) -> type[VxlanError]:
    name = "".join(part.capitalize() for part in reason.split("_"))
    name = name.replace("Ip", "IP").replace("Udp", "UDP").replace("Vni", "VNI").replace("Vxlan", "VXLAN")
    return type(name, (VxlanError,), {"reason": reason, "__doc__": f"Dropped: {reason}."})


Truncated = _error_class("truncated")
BadEthertype = _error_class("bad_ethertype")
BadIPVersion = _error_class("bad_ip_version")
BadIPHeaderLength = _error_class("bad_ip_header_length")
BadIPTotalLength = _error_class("bad_ip_total_length")
BadIPChecksum = _error_class("bad_ip_checksum")
IPFragment = _error_class("ip_fragment")
NotUDP = _error_class("not_udp")
WrongPort = _error_class("wrong_port")
BadUDPLength = _error_class("bad_udp_length")
BadUDPChecksum = _error_class("bad_udp_checksum")
BadVXLANFlags = _error_class("bad_vxlan_flags")
ReservedBitsSet = _error_class("reserved_bits_set")
UnknownVNI = _error_class("unknown_vni")
InnerTooShort = _error_class("inner_too_short")
ZeroUDPChecksum = _error_class("zero_udp_checksum")
ERROR_FOR_REASON: dict[int, type[VxlanError]] = {
    code: cls
    for code, cls in enumerate(
        [
            None,
            Truncated,
            BadEthertype,
            BadIPVersion,
            BadIPHeaderLength,
            BadIPTotalLength,
            BadIPChecksum,
            IPFragment,
            NotUDP,
            WrongPort,
            BadUDPLength,
            BadUDPChecksum,
            BadVXLANFlags,
            ReservedBitsSet,
            UnknownVNI,
            InnerTooShort,
            ZeroUDPChecksum,
        ]
    )
    if cls is not None
}
assert all(ERROR_FOR_REASON[code].reason == DROP_REASONS[code] for code in ERROR_FOR_REASON)


class TunnelConfigError(ValueError):
    """A tunnel or kernel was configured with an argument that cannot work."""


class InvalidVNI(TunnelConfigError):
    pass


class InvalidAddress(TunnelConfigError):
    pass


class InvalidMAC(TunnelConfigError):
    pass


class InvalidPort(TunnelConfigError):
    pass


class InvalidTTL(TunnelConfigError):
    pass


class EncapError(ValueError):
    """A batch handed to encapsulation breaks a precondition (caller bug, not packet data)."""


class KernelArgumentError(ValueError):
    """Arrays handed to a kernel have the wrong shape, type or bounds."""


# Encap per-packet precondition failures (shared message text for both kernels).
ENCAP_OK = 0
ENCAP_OUTSIDE_BUFFER = 1
ENCAP_NO_HEADROOM = 2
ENCAP_TOO_SHORT = 3
ENCAP_TOO_LONG = 4
ENCAP_PROBLEMS = {
    ENCAP_OUTSIDE_BUFFER: "lies outside the buffer (or its slot)",
    ENCAP_NO_HEADROOM: f"has fewer than {OUTER_HEADER_BYTES} bytes of headroom in its slot",
    ENCAP_TOO_SHORT: f"is shorter than an Ethernet header ({MIN_INNER_FRAME_BYTES} bytes)",
    ENCAP_TOO_LONG: "is too long for the outer IP length field (IPv4: 65499 bytes, IPv6: 65519)",
}


def encap_error(index: int, problem: int, offset: int, length: int) -> EncapError:
    return EncapError(f"packet {index} (offset {offset}, length {length}) {ENCAP_PROBLEMS[problem]}")


# -- parsing of configuration values ------------------------------------------

_MAC_PATTERN = re.compile(r"^[0-9a-fA-F]{2}([:-])(?:[0-9a-fA-F]{2}\1){4}[0-9a-fA-F]{2}$")


def parse_mac(value: str | bytes, what: str = "MAC address") -> bytes:
    """``"02:42:c0:00:02:01"`` (or 6 raw bytes) -> 6 bytes; InvalidMAC otherwise."""
    if isinstance(value, (bytes, bytearray)):
        if len(value) != 6:
            raise InvalidMAC(f"{what} must be 6 bytes, got {len(value)}")
        return bytes(value)
    if not isinstance(value, str) or not _MAC_PATTERN.match(value):
        raise InvalidMAC(f"{what} {value!r} is not of the form aa:bb:cc:dd:ee:ff")
    return bytes(int(part, 16) for part in re.split("[:-]", value))


def parse_ipv4(value: str | int | ipaddress.IPv4Address, what: str = "IPv4 address") -> int:
    """Dotted quad (or int / IPv4Address) -> 32-bit integer; InvalidAddress otherwise."""
    if isinstance(value, bool):
        raise InvalidAddress(f"{what} {value!r} is not an IPv4 address")
    try:
        return int(ipaddress.IPv4Address(value))
    except (ipaddress.AddressValueError, ValueError, TypeError) as error:
        raise InvalidAddress(f"{what} {value!r} is not an IPv4 address: {error}") from None


def parse_ip(value: object, what: str = "IP address") -> tuple[int, int]:
    """(4 or 6, integer address) of an IPv4 or IPv6 address; InvalidAddress otherwise."""
    if isinstance(value, bool) or value is None:
        raise InvalidAddress(f"{what} {value!r} is not an IP address")
    try:
        address = ipaddress.ip_address(value)  # type: ignore[arg-type]
    except (ValueError, TypeError) as error:
        raise InvalidAddress(f"{what} {value!r} is not an IP address: {error}") from None
    return address.version, int(address)


def check_vni(vni: object) -> int:
    if isinstance(vni, bool) or not isinstance(vni, (int, np.integer)) or not 0 <= int(vni) <= VNI_MAX:
        raise InvalidVNI(f"VNI must be an integer 0..{VNI_MAX} (24 bits, RFC 7348 s.5), got {vni!r}")
    return int(vni)


def check_port(port: object, what: str = "UDP port") -> int:
    if isinstance(port, bool) or not isinstance(port, (int, np.integer)) or not 1 <= int(port) <= 0xFFFF:
        raise InvalidPort(f"{what} must be an integer 1..65535, got {port!r}")
    return int(port)


def build_header_template(
    *,
    vni: int,
    src_ip: int,
    dst_ip: int,
    src_mac: bytes,
    dst_mac: bytes,
    dst_port: int,
    ttl: int = TTL_DEFAULT,
    tos: int = 0,
    dont_fragment: bool = True,
) -> bytes:
    """The 50-byte outer header with zero lengths, ID, checksums and source port.

    The kernels fill the per-packet fields (IPv4 total length, identification,
    header checksum, UDP source port, length and optional checksum).
    """
    header = bytearray(OUTER_HEADER_BYTES)
    header[0:6] = dst_mac
    header[6:12] = src_mac
    header[12:14] = ETHERTYPE_IPV4.to_bytes(2, "big")
    header[14] = 0x45
    header[15] = tos
    header[20:22] = (IPV4_FLAG_DF if dont_fragment else 0).to_bytes(2, "big")
    header[22] = ttl
    header[23] = IP_PROTOCOL_UDP
    header[26:30] = src_ip.to_bytes(4, "big")
    header[30:34] = dst_ip.to_bytes(4, "big")
    header[36:38] = dst_port.to_bytes(2, "big")
    header[42] = VXLAN_FLAG_I
    header[46:49] = vni.to_bytes(3, "big")
    return bytes(header)


def format_ipv4(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


def build_header_template_ipv6(
    *,
    vni: int,
    src_ip: int,
    dst_ip: int,
    src_mac: bytes,
    dst_mac: bytes,
    dst_port: int,
    hop_limit: int = TTL_DEFAULT,
    traffic_class: int = 0,
) -> bytes:
    """The 70-byte outer header over IPv6 with zero lengths, flow label, checksum, source port."""
    header = bytearray(OUTER_HEADER_BYTES_IPV6)
    header[0:6] = dst_mac
    header[6:12] = src_mac
    header[12:14] = ETHERTYPE_IPV6.to_bytes(2, "big")
    header[14:18] = ((6 << 28) | (traffic_class << 20)).to_bytes(4, "big")
    header[20] = IP_PROTOCOL_UDP
    header[21] = hop_limit
    header[22:38] = src_ip.to_bytes(16, "big")
    header[38:54] = dst_ip.to_bytes(16, "big")
    header[56:58] = dst_port.to_bytes(2, "big")
    header[62] = VXLAN_FLAG_I
    header[66:69] = vni.to_bytes(3, "big")
    return bytes(header)
