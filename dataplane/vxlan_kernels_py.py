"""Pure-Python twin of ``dataplane.vxlan_kernels``: the readable specification.

Same functions, same arguments, same results byte for byte (the suite checks it
on hypothesis-generated batches).  Slow by design: one Python loop iteration per
packet.  ``dataplane.vxlan`` picks the Cython module unless ``SHOAL_PURE=1``.

encap_batch: RFC 7348 s.5 encapsulation in the headroom, see vxlan_common for
the layout.  Per packet ``i``: copy the 50-byte template in front of the frame,
optionally replace the outer destination IP/MAC from the per-packet arrays, set
IPv4 total length and identification ``(ip_id_start + i) mod 2**16``, the IPv4
header checksum, the UDP source port from ``flow_hash`` of the inner headers,
the UDP length, and the UDP checksum (RFC 768, over pseudo-header and the whole
datagram; 0 means "none" and a computed 0 is sent as 0xFFFF) when asked.

encap_batch_ipv6: the same over IPv6 (70-byte header): payload length, flow
label (RFC 6438, from the same flow hash), UDP source port, length, checksum.

decap_batch: validates each packet in a fixed order and on success moves its
offset/length to the inner frame; on failure leaves them and records the drop
reason (vxlan_common.DROP_REASONS).  Never raises on packet contents.  Bad
arguments (wrong dtype, counts, offsets outside the buffer) raise
KernelArgumentError before any packet is touched.
"""
from __future__ import annotations

from bisect import bisect_left

import numpy as np

from dataplane import vxlan_common as vc
from dataplane.checksum_py import internet_checksum, ones_complement_sum

_MASK64 = (1 << 64) - 1
_FLOW_PROTOCOLS = (vc.IP_PROTOCOL_TCP, vc.IP_PROTOCOL_UDP, vc.IP_PROTOCOL_SCTP)


def _le(data: memoryview | bytes, start: int, size: int) -> int:
    return int.from_bytes(data[start : start + size], "little")


def _be16(data: memoryview | bytes, start: int) -> int:
    return (data[start] << 8) | data[start + 1]


def _mix(state: int, word: int) -> int:
    state = ((state ^ word) * vc.FLOW_HASH_MULTIPLIER) & _MASK64
    return state ^ (state >> 29)


def flow_hash(frame: bytes | bytearray | memoryview, seed: int = vc.HASH_SEED_DEFAULT) -> int:
    """64-bit hash of an inner frame's flow fields (L2 addresses and type, VLAN tag,
    IPv4/IPv6 addresses and protocol, TCP/UDP/SCTP ports).  Fields that change
    inside a flow (TTL, IP ID, checksums, payload) are left out, so one flow
    always maps to one UDP source port (RFC 7348 s.5).  Words are read
    little-endian so the result is the same on every host."""
    data = memoryview(frame).cast("B") if not isinstance(frame, bytes) else frame
    size = len(data)
    if size < vc.ETHERNET_HEADER_BYTES:
        raise vc.KernelArgumentError("flow_hash needs at least an Ethernet header (14 bytes)")
    state = seed & _MASK64
    state = _mix(state, _le(data, 0, 8))
    state = _mix(state, _le(data, 6, 8))
    ethertype = _be16(data, 12)
    l3 = 14
    if ethertype in (vc.ETHERTYPE_VLAN, vc.ETHERTYPE_QINQ) and size >= 18:
        state = _mix(state, _le(data, 14, 4))
        ethertype = _be16(data, 16)
        l3 = 18
    if ethertype == vc.ETHERTYPE_IPV4 and size >= l3 + 20:
        state = _mix(state, _le(data, l3 + 12, 8))
        protocol = data[l3 + 9]
        state = _mix(state, protocol)
        header_bytes = (data[l3] & 0x0F) * 4
        not_fragment = (_be16(data, l3 + 6) & 0x3FFF) == 0
        if protocol in _FLOW_PROTOCOLS and header_bytes >= 20 and not_fragment and size >= l3 + header_bytes + 4:
            state = _mix(state, _le(data, l3 + header_bytes, 4))
    elif ethertype == vc.ETHERTYPE_IPV6 and size >= l3 + 40:
        for word in range(4):
            state = _mix(state, _le(data, l3 + 8 + 8 * word, 8))
        next_header = data[l3 + 6]
        state = _mix(state, next_header)
        if next_header in _FLOW_PROTOCOLS and size >= l3 + 44:
            state = _mix(state, _le(data, l3 + 40, 4))
    state ^= state >> 32
    state = (state * vc.FLOW_HASH_FINAL_MULTIPLIER) & _MASK64
    return state ^ (state >> 33)


def source_port(frame: bytes | bytearray | memoryview, seed: int = vc.HASH_SEED_DEFAULT) -> int:
    """UDP source port for ``frame``: the top 14 hash bits in 49152-65535."""
    return vc.SOURCE_PORT_MIN | (flow_hash(frame, seed) >> 50)


def _check_array(name: str, array: object, dtype: type, minimum: int) -> np.ndarray:
    if not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != 1 or not array.flags.c_contiguous:
        raise vc.KernelArgumentError(f"{name} must be a contiguous 1-D numpy {np.dtype(dtype).name} array")
    if array.shape[0] < minimum:
        raise vc.KernelArgumentError(f"{name} holds {array.shape[0]} items, need at least {minimum}")
    return array


def _check_count(count: int, offsets: np.ndarray, lengths: np.ndarray) -> None:
    if not 0 <= count <= min(offsets.shape[0], lengths.shape[0]):
        raise vc.KernelArgumentError(
            f"count {count} must be 0..{min(offsets.shape[0], lengths.shape[0])} (size of offsets/lengths)"
        )


def encap_problem(offset: int, length: int, buffer_size: int, slot_size: int,
                  header_bytes: int = vc.OUTER_HEADER_BYTES, inner_bytes_max: int = vc.MAX_INNER_FRAME_BYTES) -> int:
    """Why packet (offset, length) cannot be encapsulated in place, or ENCAP_OK."""
    if offset + length > buffer_size:
        return vc.ENCAP_OUTSIDE_BUFFER
    if slot_size > 0:
        slot_start = offset - offset % slot_size
        if offset + length > slot_start + slot_size:
            return vc.ENCAP_OUTSIDE_BUFFER
    else:
        slot_start = 0
    if offset - slot_start < header_bytes:
        return vc.ENCAP_NO_HEADROOM
    if length < vc.MIN_INNER_FRAME_BYTES:
        return vc.ENCAP_TOO_SHORT
    if length > inner_bytes_max:
        return vc.ENCAP_TOO_LONG
    return vc.ENCAP_OK


def encap_batch(
    buffer: np.ndarray,
    offsets: np.ndarray,
    lengths: np.ndarray,
    count: int,
    header: bytes,
    dst_ips: np.ndarray | None = None,
    dst_macs: np.ndarray | None = None,
    ip_id_start: int = 0,
    hash_seed: int = vc.HASH_SEED_DEFAULT,
    udp_checksum: bool = False,
    slot_size: int = 0,
) -> int:
    """Encapsulate packets 0..count-1 in place; return the next IPv4 identification.

    ``header`` is the 50-byte template (vxlan_common.build_header_template);
    ``dst_ips`` (uint32, host-order integers) and ``dst_macs`` (uint8, 6 per
    packet) override the outer destination per packet.  ``slot_size`` > 0 also
    keeps every header inside its packet's slot.  Raises EncapError (nothing
    written) when a packet lacks headroom, is shorter than 14 or longer than
    MAX_INNER_FRAME_BYTES bytes."""
    _check_array("buffer", buffer, np.uint8, 0)
    _check_array("offsets", offsets, np.uint32, 0)
    _check_array("lengths", lengths, np.uint32, 0)
    _check_count(count, offsets, lengths)
    template = bytearray(bytes(header))
    if len(template) != vc.OUTER_HEADER_BYTES:
        raise vc.KernelArgumentError(f"header must be {vc.OUTER_HEADER_BYTES} bytes, got {len(template)}")
    if dst_ips is not None:
        _check_array("dst_ips", dst_ips, np.uint32, count)
    if dst_macs is not None:
        _check_array("dst_macs", dst_macs, np.uint8, 6 * count)
    if not 0 <= ip_id_start <= 0xFFFF:
        raise vc.KernelArgumentError(f"ip_id_start must be 0..65535, got {ip_id_start}")
    if not 0 <= hash_seed <= _MASK64:
        raise vc.KernelArgumentError("hash_seed must be a 64-bit unsigned integer")
    if slot_size < 0:
        raise vc.KernelArgumentError("slot_size must be >= 0")
    buffer_size = buffer.shape[0]
    for index in range(count):
        offset, length = int(offsets[index]), int(lengths[index])
        problem = encap_problem(offset, length, buffer_size, slot_size)
        if problem != vc.ENCAP_OK:
            raise vc.encap_error(index, problem, offset, length)

    # Fields the kernel owns are zeroed in the template, whatever the caller passed.
    for position in (16, 17, 18, 19, 24, 25, 34, 35, 38, 39, 40, 41):
        template[position] = 0
    view = memoryview(buffer)
    for index in range(count):
        offset, length = int(offsets[index]), int(lengths[index])
        start = offset - vc.OUTER_HEADER_BYTES
        outer = bytearray(template)
        if dst_macs is not None:
            outer[0:6] = dst_macs[6 * index : 6 * index + 6].tobytes()
        if dst_ips is not None:
            outer[30:34] = int(dst_ips[index]).to_bytes(4, "big")
        total_length = vc.IPV4_HEADER_BYTES + vc.UDP_HEADER_BYTES + vc.VXLAN_HEADER_BYTES + length
        udp_length = total_length - vc.IPV4_HEADER_BYTES
        outer[16:18] = total_length.to_bytes(2, "big")
        outer[18:20] = ((ip_id_start + index) & 0xFFFF).to_bytes(2, "big")
        outer[24:26] = internet_checksum(outer[14:34]).to_bytes(2, "big")
        port = source_port(view[offset : offset + length], hash_seed)
        outer[34:36] = port.to_bytes(2, "big")
        outer[38:40] = udp_length.to_bytes(2, "big")
        view[start:offset] = outer
        if udp_checksum:
            pseudo = (
                _be16(outer, 26) + _be16(outer, 28) + _be16(outer, 30) + _be16(outer, 32)
                + vc.IP_PROTOCOL_UDP + udp_length
            )
            total = pseudo + ones_complement_sum(view[start + vc.UDP_OFFSET : offset + length])
            value = (~_fold(total)) & 0xFFFF
            # RFC 768: a computed zero is transmitted as all ones (0 means "no checksum").
            view[start + 40 : start + 42] = (value or 0xFFFF).to_bytes(2, "big")
        offsets[index] = start
        lengths[index] = length + vc.OUTER_HEADER_BYTES
    return (ip_id_start + count) & 0xFFFF


def flow_label(frame: bytes | bytearray | memoryview, seed: int = vc.HASH_SEED_DEFAULT) -> int:
    """IPv6 flow label for ``frame`` (RFC 6438): 20 hash bits, never 0 ("no label")."""
    return ((flow_hash(frame, seed) >> 8) & 0xFFFFF) or 1


def encap_batch_ipv6(
    buffer: np.ndarray,
    offsets: np.ndarray,
    lengths: np.ndarray,
    count: int,
    header: bytes,
    dst_ips: np.ndarray | None = None,
    dst_macs: np.ndarray | None = None,
    hash_seed: int = vc.HASH_SEED_DEFAULT,
    udp_checksum: bool = True,
    slot_size: int = 0,
) -> None:
    """Encapsulate packets 0..count-1 in place over IPv6 (70-byte header).

    ``header``: vxlan_common.build_header_template_ipv6; ``dst_ips``: uint8,
    16 bytes per packet; payload length, flow label, UDP source port, length
    and checksum (unless ``udp_checksum`` is False: RFC 6935 zero checksum)
    are set per packet.  EncapError (nothing written) as for encap_batch."""
    _check_array("buffer", buffer, np.uint8, 0)
    _check_array("offsets", offsets, np.uint32, 0)
    _check_array("lengths", lengths, np.uint32, 0)
    _check_count(count, offsets, lengths)
    template = bytearray(bytes(header))
    if len(template) != vc.OUTER_HEADER_BYTES_IPV6:
        raise vc.KernelArgumentError(f"header must be {vc.OUTER_HEADER_BYTES_IPV6} bytes, got {len(template)}")
    if dst_ips is not None:
        _check_array("dst_ips", dst_ips, np.uint8, 16 * count)
    if dst_macs is not None:
        _check_array("dst_macs", dst_macs, np.uint8, 6 * count)
    if not 0 <= hash_seed <= _MASK64:
        raise vc.KernelArgumentError("hash_seed must be a 64-bit unsigned integer")
    if slot_size < 0:
        raise vc.KernelArgumentError("slot_size must be >= 0")
    buffer_size = buffer.shape[0]
    for index in range(count):
        offset, length = int(offsets[index]), int(lengths[index])
        problem = encap_problem(offset, length, buffer_size, slot_size, vc.OUTER_HEADER_BYTES_IPV6,
                                vc.MAX_INNER_FRAME_BYTES_IPV6)
        if problem != vc.ENCAP_OK:
            raise vc.encap_error(index, problem, offset, length)
    # Fields the kernel owns are zeroed, whatever the caller passed.
    template[15] &= 0xF0
    for position in (16, 17, 18, 19, 54, 55, 58, 59, 60, 61):
        template[position] = 0
    view = memoryview(buffer)
    size = vc.OUTER_HEADER_BYTES_IPV6
    for index in range(count):
        offset, length = int(offsets[index]), int(lengths[index])
        start = offset - size
        outer = bytearray(template)
        if dst_macs is not None:
            outer[0:6] = dst_macs[6 * index : 6 * index + 6].tobytes()
        if dst_ips is not None:
            outer[38:54] = dst_ips[16 * index : 16 * index + 16].tobytes()
        udp_length = vc.UDP_HEADER_BYTES + vc.VXLAN_HEADER_BYTES + length
        inner = view[offset : offset + length]
        state = flow_hash(inner, hash_seed)
        label = ((state >> 8) & 0xFFFFF) or 1
        outer[15] |= label >> 16
        outer[16:18] = (label & 0xFFFF).to_bytes(2, "big")
        outer[18:20] = udp_length.to_bytes(2, "big")
        outer[54:56] = (vc.SOURCE_PORT_MIN | (state >> 50)).to_bytes(2, "big")
        outer[58:60] = udp_length.to_bytes(2, "big")
        view[start:offset] = outer
        if udp_checksum:
            # RFC 8200 s.8.1 pseudo-header: source, destination, upper-layer length, next header.
            pseudo = ones_complement_sum(outer[22:54]) + udp_length + vc.IP_PROTOCOL_UDP
            total = pseudo + ones_complement_sum(view[start + 54 : offset + length])
            value = (~_fold(total)) & 0xFFFF
            view[start + 60 : start + 62] = (value or 0xFFFF).to_bytes(2, "big")
        offsets[index] = start
        lengths[index] = length + size


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def check_known_vnis(known_vnis: np.ndarray | None) -> None:
    if known_vnis is None:
        return
    _check_array("known_vnis", known_vnis, np.uint32, 0)
    if known_vnis.shape[0] and (
        int(known_vnis[-1]) > vc.VNI_MAX or (known_vnis.shape[0] > 1 and bool(np.any(known_vnis[1:] <= known_vnis[:-1])))
    ):
        raise vc.KernelArgumentError("known_vnis must be strictly increasing 24-bit VNIs")


def _udp_checks(data: memoryview, l4: int, ip_end: int, dst_port: int) -> tuple[int, int]:
    """(reason, UDP length) for the UDP header at ``l4`` of a datagram ending at ``ip_end``."""
    if ip_end - l4 < vc.UDP_HEADER_BYTES:
        return vc.TRUNCATED, 0
    if _be16(data, l4 + 2) != dst_port:
        return vc.WRONG_PORT, 0
    udp_length = _be16(data, l4 + 4)
    if udp_length < vc.UDP_HEADER_BYTES or udp_length > ip_end - l4:
        return vc.BAD_UDP_LENGTH, 0
    return vc.ACCEPTED, udp_length


def decap_one(
    data: memoryview,
    layer: int,
    dst_port: int,
    known_vnis: list[int] | None,
    verify_udp_checksum: bool,
    strict_reserved: bool,
    accept_zero_checksum_ipv6: bool = False,
) -> tuple[int, int, int, int, int, int]:
    """Classify one packet: (reason, inner start, inner length, vni, outer IPv4 source,
    offset of the outer IPv6 source or -1)."""
    dropped = (0, 0, 0, 0, -1)
    size = len(data)
    start = 0
    end = size
    src_ip = 0
    src6 = -1
    version = 0
    l3 = 0
    if layer == vc.LAYER_ETHERNET:
        if size < vc.ETHERNET_HEADER_BYTES:
            return (vc.TRUNCATED, *dropped)
        ethertype = _be16(data, 12)
        if ethertype == vc.ETHERTYPE_IPV4:
            version = 4
        elif ethertype == vc.ETHERTYPE_IPV6:
            version = 6
        else:
            return (vc.BAD_ETHERTYPE, *dropped)
        l3 = vc.ETHERNET_HEADER_BYTES
    elif layer == vc.LAYER_IPV4:
        version = 4
    elif layer == vc.LAYER_IPV6:
        version = 6
    if version == 4:
        available = size - l3
        if available < vc.IPV4_HEADER_BYTES:
            return (vc.TRUNCATED, *dropped)
        if data[l3] >> 4 != 4:
            return (vc.BAD_IP_VERSION, *dropped)
        header_bytes = (data[l3] & 0x0F) * 4
        if header_bytes < vc.IPV4_HEADER_BYTES:
            return (vc.BAD_IP_HEADER_LENGTH, *dropped)
        if available < header_bytes:
            return (vc.TRUNCATED, *dropped)
        total_length = _be16(data, l3 + 2)
        # Bytes beyond total_length are link padding and are ignored.
        if total_length < header_bytes or total_length > available:
            return (vc.BAD_IP_TOTAL_LENGTH, *dropped)
        if ones_complement_sum(data[l3 : l3 + header_bytes]) != 0xFFFF:
            return (vc.BAD_IP_CHECKSUM, *dropped)
        if _be16(data, l3 + 6) & 0x3FFF:
            return (vc.IP_FRAGMENT, *dropped)
        if data[l3 + 9] != vc.IP_PROTOCOL_UDP:
            return (vc.NOT_UDP, *dropped)
        l4 = l3 + header_bytes
        reason, udp_length = _udp_checks(data, l4, l3 + total_length, dst_port)
        if reason != vc.ACCEPTED:
            return (reason, *dropped)
        if verify_udp_checksum and _be16(data, l4 + 6) != 0:
            pseudo = (
                _be16(data, l3 + 12) + _be16(data, l3 + 14) + _be16(data, l3 + 16) + _be16(data, l3 + 18)
                + vc.IP_PROTOCOL_UDP + udp_length
            )
            if _fold(pseudo + ones_complement_sum(data[l4 : l4 + udp_length])) != 0xFFFF:
                return (vc.BAD_UDP_CHECKSUM, *dropped)
        src_ip = int.from_bytes(data[l3 + 12 : l3 + 16], "big")
        start = l4 + vc.UDP_HEADER_BYTES
        end = l4 + udp_length
    elif version == 6:
        available = size - l3
        if available < vc.IPV6_HEADER_BYTES:
            return (vc.TRUNCATED, *dropped)
        if data[l3] >> 4 != 6:
            return (vc.BAD_IP_VERSION, *dropped)
        payload_length = _be16(data, l3 + 4)
        if payload_length > available - vc.IPV6_HEADER_BYTES:
            return (vc.BAD_IP_TOTAL_LENGTH, *dropped)
        next_header = data[l3 + 6]
        if next_header == vc.IP_NEXT_HEADER_FRAGMENT:
            return (vc.IP_FRAGMENT, *dropped)
        if next_header != vc.IP_PROTOCOL_UDP:  # extension headers are not walked
            return (vc.NOT_UDP, *dropped)
        l4 = l3 + vc.IPV6_HEADER_BYTES
        reason, udp_length = _udp_checks(data, l4, l4 + payload_length, dst_port)
        if reason != vc.ACCEPTED:
            return (reason, *dropped)
        if _be16(data, l4 + 6) == 0:
            if not accept_zero_checksum_ipv6:
                return (vc.ZERO_UDP_CHECKSUM, *dropped)
        elif verify_udp_checksum:
            pseudo = ones_complement_sum(data[l3 + 8 : l3 + 40]) + vc.IP_PROTOCOL_UDP + udp_length
            if _fold(pseudo + ones_complement_sum(data[l4 : l4 + udp_length])) != 0xFFFF:
                return (vc.BAD_UDP_CHECKSUM, *dropped)
        src6 = l3 + 8
        start = l4 + vc.UDP_HEADER_BYTES
        end = l4 + udp_length
    if end - start < vc.VXLAN_HEADER_BYTES:
        return (vc.TRUNCATED, *dropped)
    flags = data[start]
    if not flags & vc.VXLAN_FLAG_I:
        return (vc.BAD_VXLAN_FLAGS, *dropped)
    # RFC 7348 s.5: reserved bits are "ignored on receipt"; the strict policy drops them.
    if strict_reserved and (
        flags & ~vc.VXLAN_FLAG_I or data[start + 1] or data[start + 2] or data[start + 3] or data[start + 7]
    ):
        return (vc.RESERVED_BITS_SET, *dropped)
    vni = int.from_bytes(data[start + 4 : start + 7], "big")
    if known_vnis is not None:
        position = bisect_left(known_vnis, vni)
        if position == len(known_vnis) or known_vnis[position] != vni:
            return (vc.UNKNOWN_VNI, *dropped)
    inner_start = start + vc.VXLAN_HEADER_BYTES
    inner_length = end - inner_start
    if inner_length < vc.MIN_INNER_FRAME_BYTES:
        return (vc.INNER_TOO_SHORT, *dropped)
    return vc.ACCEPTED, inner_start, inner_length, vni, src_ip, src6


def decap_batch(
    buffer: np.ndarray,
    offsets: np.ndarray,
    lengths: np.ndarray,
    count: int,
    statuses: np.ndarray,
    vnis: np.ndarray,
    src_ips: np.ndarray,
    counters: np.ndarray,
    layer: int = vc.LAYER_ETHERNET,
    dst_port: int = vc.VXLAN_PORT_DEFAULT,
    known_vnis: np.ndarray | None = None,
    verify_udp_checksum: bool = True,
    strict_reserved: bool = False,
    src_ips6: np.ndarray | None = None,
    accept_zero_checksum_ipv6: bool = False,
) -> int:
    """Validate and strip packets 0..count-1; return how many were accepted.

    Accepted packet ``i``: offsets/lengths now describe the inner frame,
    ``vnis[i]`` its VNI, ``src_ips[i]`` the outer IPv4 source (0 for
    LAYER_VXLAN, where the socket gave it), ``statuses[i] == 0``.  Dropped:
    offsets/lengths unchanged, vnis/src_ips 0, ``statuses[i]`` the reason code.
    ``counters[reason] += 1`` for every packet (``counters[0]``: accepted).
    ``known_vnis``: sorted uint32 array, or None to accept every VNI.
    ``src_ips6`` (uint8, 16 per packet, optional): the outer IPv6 source of
    accepted IPv6 packets (zeros otherwise; ``src_ips`` is 0 for them)."""
    _check_array("buffer", buffer, np.uint8, 0)
    _check_array("offsets", offsets, np.uint32, 0)
    _check_array("lengths", lengths, np.uint32, 0)
    _check_count(count, offsets, lengths)
    _check_array("statuses", statuses, np.uint8, count)
    _check_array("vnis", vnis, np.uint32, count)
    _check_array("src_ips", src_ips, np.uint32, count)
    _check_array("counters", counters, np.uint64, vc.N_REASONS)
    if src_ips6 is not None:
        _check_array("src_ips6", src_ips6, np.uint8, 16 * count)
    if layer not in (vc.LAYER_ETHERNET, vc.LAYER_IPV4, vc.LAYER_VXLAN, vc.LAYER_IPV6):
        raise vc.KernelArgumentError(f"layer must be 0 (ethernet), 1 (ipv4), 2 (vxlan) or 3 (ipv6), got {layer}")
    if not 0 <= dst_port <= 0xFFFF:
        raise vc.KernelArgumentError(f"dst_port must be 0..65535, got {dst_port}")
    check_known_vnis(known_vnis)
    buffer_size = buffer.shape[0]
    for index in range(count):
        if int(offsets[index]) + int(lengths[index]) > buffer_size:
            raise vc.KernelArgumentError(f"packet {index} lies outside the buffer")
    known = None if known_vnis is None else [int(vni) for vni in known_vnis]
    view = memoryview(buffer)
    accepted = 0
    for index in range(count):
        offset, length = int(offsets[index]), int(lengths[index])
        packet = view[offset : offset + length]
        reason, inner_start, inner_length, vni, src_ip, src6 = decap_one(
            packet, layer, dst_port, known, verify_udp_checksum, strict_reserved, accept_zero_checksum_ipv6
        )
        if src_ips6 is not None:
            src_ips6[16 * index : 16 * index + 16] = np.frombuffer(
                packet[src6 : src6 + 16] if src6 >= 0 else bytes(16), dtype=np.uint8
            )
        statuses[index] = reason
        counters[reason] += np.uint64(1)
        if reason == vc.ACCEPTED:
            accepted += 1
            offsets[index] = offset + inner_start
            lengths[index] = inner_length
            vnis[index] = vni
            src_ips[index] = src_ip
        else:
            vnis[index] = 0
            src_ips[index] = 0
    return accepted
