"""VXLAN encapsulation/decapsulation kernels (RFC 7348) over packet batches.

Twin and specification: ``dataplane.vxlan_kernels_py`` (same API, same bytes).
Each ``def`` validates its arguments, takes contiguous typed memoryviews, drops
the GIL once and runs a ``noexcept nogil`` pointer loop over the batch.

Per-packet encap cost is kept small: the 50-byte outer header template and the
partial IPv4 header sum are prepared once per call; per packet we memcpy the
template, patch total length / identification / source port / UDP length and
finish the IPv4 checksum from the precomputed partial sum; the flow hash is a
few multiply-xorshift rounds over fixed header words.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

import numpy as np

from dataplane cimport checksum as ck
from dataplane import vxlan_common as vc

cdef uint64_t MULTIPLIER = 0x9E3779B97F4A7C15ULL
cdef uint64_t FINAL_MULTIPLIER = 0xFF51AFD7ED558CCDULL

assert vc.OUTER_HEADER_BYTES == HEADER_BYTES
assert vc.FLOW_HASH_MULTIPLIER == MULTIPLIER and vc.FLOW_HASH_FINAL_MULTIPLIER == FINAL_MULTIPLIER

cdef enum:
    HEADER_BYTES = 50
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
    N_REASONS = 17
    LAYER_ETHERNET = 0
    LAYER_IPV4 = 1
    LAYER_VXLAN = 2
    LAYER_IPV6 = 3
    MIN_INNER = 14
    MAX_INNER = 65535 - 36
    HEADER_BYTES_IPV6 = 70
    MAX_INNER_IPV6 = 65535 - 16

assert vc.N_REASONS == N_REASONS and vc.MAX_INNER_FRAME_BYTES == MAX_INNER
assert vc.MAX_INNER_FRAME_BYTES_IPV6 == MAX_INNER_IPV6 and vc.OUTER_HEADER_BYTES_IPV6 == HEADER_BYTES_IPV6
assert vc.ZERO_UDP_CHECKSUM == ZERO_UDP_CHECKSUM and vc.LAYER_IPV6 == LAYER_IPV6
assert [vc.REASON_CODE[n] for n in ("inner_too_short", "unknown_vni", "bad_udp_checksum")] == [
    INNER_TOO_SHORT, UNKNOWN_VNI, BAD_UDP_CHECKSUM]


# -- flow hash ---------------------------------------------------------------------

cdef inline uint64_t load_le64(const uint8_t* data) noexcept nogil:
    cdef uint64_t word
    memcpy(&word, data, 8)
    if not ck.host_is_little_endian():
        word = ((word >> 56) | ((word >> 40) & 0xFF00ULL) | ((word >> 24) & 0xFF0000ULL)
                | ((word >> 8) & 0xFF000000ULL) | ((word << 8) & 0xFF00000000ULL)
                | ((word << 24) & 0xFF0000000000ULL) | ((word << 40) & 0xFF000000000000ULL) | (word << 56))
    return word


cdef inline uint64_t load_le32(const uint8_t* data) noexcept nogil:
    return (<uint64_t>data[0] | (<uint64_t>data[1] << 8) | (<uint64_t>data[2] << 16)
            | (<uint64_t>data[3] << 24))


cdef inline uint64_t mix(uint64_t state, uint64_t word) noexcept nogil:
    state = (state ^ word) * MULTIPLIER
    return state ^ (state >> 29)


cdef inline bint flow_protocol(uint8_t protocol) noexcept nogil:
    return protocol == 6 or protocol == 17 or protocol == 132


cdef inline uint64_t flow_hash_ptr(const uint8_t* data, size_t size, uint64_t seed) noexcept nogil:
    """See vxlan_kernels_py.flow_hash; ``size`` >= 14."""
    cdef uint64_t state = seed
    cdef size_t l3 = 14, header_bytes
    cdef uint32_t ethertype
    cdef uint8_t protocol
    state = mix(state, load_le64(data))
    state = mix(state, load_le64(data + 6))
    ethertype = ck.load_be16(data + 12)
    if (ethertype == 0x8100 or ethertype == 0x88A8) and size >= 18:
        state = mix(state, load_le32(data + 14))
        ethertype = ck.load_be16(data + 16)
        l3 = 18
    if ethertype == 0x0800 and size >= l3 + 20:
        state = mix(state, load_le64(data + l3 + 12))
        protocol = data[l3 + 9]
        state = mix(state, protocol)
        header_bytes = (data[l3] & 0x0F) * 4
        if (flow_protocol(protocol) and header_bytes >= 20 and (ck.load_be16(data + l3 + 6) & 0x3FFF) == 0
                and size >= l3 + header_bytes + 4):
            state = mix(state, load_le32(data + l3 + header_bytes))
    elif ethertype == 0x86DD and size >= l3 + 40:
        state = mix(state, load_le64(data + l3 + 8))
        state = mix(state, load_le64(data + l3 + 16))
        state = mix(state, load_le64(data + l3 + 24))
        state = mix(state, load_le64(data + l3 + 32))
        protocol = data[l3 + 6]
        state = mix(state, protocol)
        if flow_protocol(protocol) and size >= l3 + 44:
            state = mix(state, load_le32(data + l3 + 40))
    state ^= state >> 32
    state *= FINAL_MULTIPLIER
    return state ^ (state >> 33)


def flow_hash(const uint8_t[::1] frame, uint64_t seed=0) -> int:
    """64-bit flow hash of an inner frame (see the twin for the fields used)."""
    if frame.shape[0] < 14:
        raise vc.KernelArgumentError("flow_hash needs at least an Ethernet header (14 bytes)")
    return flow_hash_ptr(&frame[0], frame.shape[0], seed)


def source_port(const uint8_t[::1] frame, uint64_t seed=0) -> int:
    """UDP source port for ``frame``: the top 14 hash bits in 49152-65535."""
    return 0xC000 | (flow_hash(frame, seed) >> 50)


# -- encapsulation ------------------------------------------------------------------

cdef inline int encap_problem(size_t offset, size_t length, size_t buffer_size, size_t slot_size,
                              size_t header_bytes, size_t inner_max) noexcept nogil:
    cdef size_t slot_start = 0
    if offset + length > buffer_size:
        return 1  # ENCAP_OUTSIDE_BUFFER
    if slot_size > 0:
        slot_start = offset - offset % slot_size
        if offset + length > slot_start + slot_size:
            return 1
    if offset - slot_start < header_bytes:
        return 2  # ENCAP_NO_HEADROOM
    if length < MIN_INNER:
        return 3  # ENCAP_TOO_SHORT
    if length > inner_max:
        return 4  # ENCAP_TOO_LONG
    return 0


cdef Py_ssize_t first_encap_problem(const uint32_t* offsets, const uint32_t* lengths, Py_ssize_t count,
                                    size_t buffer_size, size_t slot_size, int* problem,
                                    size_t header_bytes, size_t inner_max) noexcept nogil:
    cdef Py_ssize_t index
    for index in range(count):
        problem[0] = encap_problem(offsets[index], lengths[index], buffer_size, slot_size, header_bytes, inner_max)
        if problem[0] != 0:
            return index
    return -1


cdef void encap_loop(uint8_t* buffer, uint32_t* offsets, uint32_t* lengths, Py_ssize_t count,
                     const uint8_t* template, const uint32_t* dst_ips, const uint8_t* dst_macs,
                     uint32_t ip_id_start, uint64_t hash_seed, bint udp_checksum) noexcept nogil:
    cdef uint8_t* outer
    cdef const uint8_t* inner
    cdef Py_ssize_t index
    cdef uint32_t length, total_length, udp_length, ident, dst_ip, port
    cdef uint64_t ip_partial, ip_sum, pseudo_partial, pseudo
    cdef uint32_t src_ip = ck.load_be32(template + 26)
    # Partial IPv4 header sum of the template: its length, ID, checksum are zero,
    # and the destination address is left out when it comes per packet.
    ip_partial = ck.ones_sum16(template + 14, 16)  # up to the destination address
    pseudo_partial = (src_ip >> 16) + (src_ip & 0xFFFF) + 17
    # UDP destination port and the 8-byte VXLAN header: the same in every packet.
    cdef uint64_t constant_header_sum = ck.load_be16(template + 36) + ck.ones_sum16(template + 42, 8)
    if dst_ips == NULL:
        dst_ip = ck.load_be32(template + 30)
        ip_partial += (dst_ip >> 16) + (dst_ip & 0xFFFF)
        pseudo_partial += (dst_ip >> 16) + (dst_ip & 0xFFFF)
    for index in range(count):
        length = lengths[index]
        inner = buffer + offsets[index]
        outer = <uint8_t*>inner - HEADER_BYTES
        memcpy(outer, template, HEADER_BYTES)
        total_length = length + 36
        udp_length = length + 16
        ident = (ip_id_start + <uint32_t>index) & 0xFFFF
        ip_sum = ip_partial + total_length + ident
        pseudo = pseudo_partial
        if dst_macs != NULL:
            memcpy(outer, dst_macs + 6 * index, 6)
        if dst_ips != NULL:
            dst_ip = dst_ips[index]
            ck.store_be32(outer + 30, dst_ip)
            ip_sum += (dst_ip >> 16) + (dst_ip & 0xFFFF)
            pseudo += (dst_ip >> 16) + (dst_ip & 0xFFFF)
        ck.store_be16(outer + 16, total_length)
        ck.store_be16(outer + 18, ident)
        ck.store_be16(outer + 24, ck.checksum_finish(ip_sum))
        port = 0xC000 | <uint32_t>(flow_hash_ptr(inner, length, hash_seed) >> 50)
        ck.store_be16(outer + 34, port)
        ck.store_be16(outer + 38, udp_length)
        if udp_checksum:
            # Header words come from registers and the template (no re-read of the bytes just
            # stored); only the inner frame is summed from memory.  It starts 16 bytes (even)
            # into the UDP datagram, so its sum combines directly (RFC 1071).
            pseudo += udp_length + udp_length + port + constant_header_sum + ck.ones_sum16(inner, length)
            port = ck.checksum_finish(pseudo)
            # RFC 768: a computed zero is sent as all ones (zero means "no checksum").
            ck.store_be16(outer + 40, port if port != 0 else 0xFFFF)
        offsets[index] -= HEADER_BYTES
        lengths[index] = length + HEADER_BYTES


def encap_batch(uint8_t[::1] buffer, uint32_t[::1] offsets, uint32_t[::1] lengths, Py_ssize_t count,
                const uint8_t[::1] header, const uint32_t[::1] dst_ips=None, const uint8_t[::1] dst_macs=None,
                long ip_id_start=0, object hash_seed=0, bint udp_checksum=False, Py_ssize_t slot_size=0):
    """Encapsulate packets 0..count-1 in place; return the next IPv4 identification.

    See vxlan_kernels_py.encap_batch for the contract (this is the fast twin)."""
    cdef uint8_t template[HEADER_BYTES]
    cdef Py_ssize_t bad
    cdef int problem = 0
    cdef uint64_t seed
    if buffer is None or offsets is None or lengths is None or header is None:
        raise vc.KernelArgumentError("buffer, offsets, lengths and header are required")
    if not 0 <= count <= min(offsets.shape[0], lengths.shape[0]):
        raise vc.KernelArgumentError(
            f"count {count} must be 0..{min(offsets.shape[0], lengths.shape[0])} (size of offsets/lengths)")
    if header.shape[0] != HEADER_BYTES:
        raise vc.KernelArgumentError(f"header must be {HEADER_BYTES} bytes, got {header.shape[0]}")
    if dst_ips is not None and dst_ips.shape[0] < count:
        raise vc.KernelArgumentError(f"dst_ips holds {dst_ips.shape[0]} items, need at least {count}")
    if dst_macs is not None and dst_macs.shape[0] < 6 * count:
        raise vc.KernelArgumentError(f"dst_macs holds {dst_macs.shape[0]} items, need at least {6 * count}")
    if not 0 <= ip_id_start <= 0xFFFF:
        raise vc.KernelArgumentError(f"ip_id_start must be 0..65535, got {ip_id_start}")
    if not 0 <= hash_seed <= 0xFFFFFFFFFFFFFFFF:
        raise vc.KernelArgumentError("hash_seed must be a 64-bit unsigned integer")
    if slot_size < 0:
        raise vc.KernelArgumentError("slot_size must be >= 0")
    cdef const uint32_t* dst_ips_ptr = NULL
    cdef const uint8_t* dst_macs_ptr = NULL
    seed = hash_seed
    if dst_ips is not None and count > 0:
        dst_ips_ptr = &dst_ips[0]
    if dst_macs is not None and count > 0:
        dst_macs_ptr = &dst_macs[0]
    if count == 0:
        return ip_id_start
    memcpy(template, &header[0], HEADER_BYTES)
    # Fields the kernel owns are zeroed, whatever the caller passed.
    for position in (16, 17, 18, 19, 24, 25, 34, 35, 38, 39, 40, 41):
        template[position] = 0
    with nogil:
        bad = first_encap_problem(&offsets[0], &lengths[0], count, buffer.shape[0], slot_size, &problem,
                                  HEADER_BYTES, MAX_INNER)
    if bad >= 0:
        raise vc.encap_error(bad, problem, offsets[bad], lengths[bad])
    with nogil:
        encap_loop(&buffer[0], &offsets[0], &lengths[0], count, template,
                   dst_ips_ptr, dst_macs_ptr,
                   <uint32_t>ip_id_start, seed, udp_checksum)
    return (ip_id_start + count) & 0xFFFF


cdef void encap_loop_ipv6(uint8_t* buffer, uint32_t* offsets, uint32_t* lengths, Py_ssize_t count,
                          const uint8_t* template, const uint8_t* dst_ips, const uint8_t* dst_macs,
                          uint64_t hash_seed, bint udp_checksum) noexcept nogil:
    cdef uint8_t* outer
    cdef const uint8_t* inner
    cdef Py_ssize_t index
    cdef uint32_t length, udp_length, label, value
    cdef uint64_t state, pseudo_partial, pseudo
    # RFC 8200 s.8.1 pseudo-header: source, destination, upper-layer length, next header.
    pseudo_partial = ck.ones_sum16(template + 22, 16) + 17
    cdef uint64_t constant_header_sum = ck.load_be16(template + 56) + ck.ones_sum16(template + 62, 8)
    if dst_ips == NULL:
        pseudo_partial += ck.ones_sum16(template + 38, 16)
    for index in range(count):
        length = lengths[index]
        inner = buffer + offsets[index]
        outer = <uint8_t*>inner - HEADER_BYTES_IPV6
        memcpy(outer, template, HEADER_BYTES_IPV6)
        udp_length = length + 16
        pseudo = pseudo_partial
        if dst_macs != NULL:
            memcpy(outer, dst_macs + 6 * index, 6)
        if dst_ips != NULL:
            memcpy(outer + 38, dst_ips + 16 * index, 16)
            pseudo += ck.ones_sum16(outer + 38, 16)
        state = flow_hash_ptr(inner, length, hash_seed)
        label = <uint32_t>((state >> 8) & 0xFFFFF)
        if label == 0:
            label = 1  # 0 would mean "no flow label" (RFC 6437)
        outer[15] = <uint8_t>(outer[15] | (label >> 16))
        ck.store_be16(outer + 16, label & 0xFFFF)
        ck.store_be16(outer + 18, udp_length)
        ck.store_be16(outer + 54, 0xC000 | <uint32_t>(state >> 50))
        ck.store_be16(outer + 58, udp_length)
        if udp_checksum:
            pseudo += (udp_length + udp_length + (0xC000 | <uint32_t>(state >> 50)) + constant_header_sum
                       + ck.ones_sum16(inner, length))
            value = ck.checksum_finish(pseudo)
            ck.store_be16(outer + 60, value if value != 0 else 0xFFFF)
        offsets[index] -= HEADER_BYTES_IPV6
        lengths[index] = length + HEADER_BYTES_IPV6


def encap_batch_ipv6(uint8_t[::1] buffer, uint32_t[::1] offsets, uint32_t[::1] lengths, Py_ssize_t count,
                     const uint8_t[::1] header, const uint8_t[::1] dst_ips=None, const uint8_t[::1] dst_macs=None,
                     object hash_seed=0, bint udp_checksum=True, Py_ssize_t slot_size=0):
    """Encapsulate packets 0..count-1 in place over IPv6 (70-byte header).

    See vxlan_kernels_py.encap_batch_ipv6 for the contract (this is the fast twin)."""
    cdef uint8_t template[HEADER_BYTES_IPV6]
    cdef Py_ssize_t bad
    cdef int problem = 0
    cdef uint64_t seed
    cdef const uint8_t* dst_ips_ptr = NULL
    cdef const uint8_t* dst_macs_ptr = NULL
    if buffer is None or offsets is None or lengths is None or header is None:
        raise vc.KernelArgumentError("buffer, offsets, lengths and header are required")
    if not 0 <= count <= min(offsets.shape[0], lengths.shape[0]):
        raise vc.KernelArgumentError(
            f"count {count} must be 0..{min(offsets.shape[0], lengths.shape[0])} (size of offsets/lengths)")
    if header.shape[0] != HEADER_BYTES_IPV6:
        raise vc.KernelArgumentError(f"header must be {HEADER_BYTES_IPV6} bytes, got {header.shape[0]}")
    if dst_ips is not None and dst_ips.shape[0] < 16 * count:
        raise vc.KernelArgumentError(f"dst_ips holds {dst_ips.shape[0]} items, need at least {16 * count}")
    if dst_macs is not None and dst_macs.shape[0] < 6 * count:
        raise vc.KernelArgumentError(f"dst_macs holds {dst_macs.shape[0]} items, need at least {6 * count}")
    if not 0 <= hash_seed <= 0xFFFFFFFFFFFFFFFF:
        raise vc.KernelArgumentError("hash_seed must be a 64-bit unsigned integer")
    if slot_size < 0:
        raise vc.KernelArgumentError("slot_size must be >= 0")
    seed = hash_seed
    if count == 0:
        return None
    if dst_ips is not None:
        dst_ips_ptr = &dst_ips[0]
    if dst_macs is not None:
        dst_macs_ptr = &dst_macs[0]
    memcpy(template, &header[0], HEADER_BYTES_IPV6)
    template[15] &= 0xF0
    for position in (16, 17, 18, 19, 54, 55, 58, 59, 60, 61):
        template[position] = 0
    with nogil:
        bad = first_encap_problem(&offsets[0], &lengths[0], count, buffer.shape[0], slot_size, &problem,
                                  HEADER_BYTES_IPV6, MAX_INNER_IPV6)
    if bad >= 0:
        raise vc.encap_error(bad, problem, offsets[bad], lengths[bad])
    with nogil:
        encap_loop_ipv6(&buffer[0], &offsets[0], &lengths[0], count, template, dst_ips_ptr, dst_macs_ptr,
                        seed, udp_checksum)
    return None


def flow_label(const uint8_t[::1] frame, uint64_t seed=0) -> int:
    """IPv6 flow label for ``frame`` (RFC 6438): 20 hash bits, never 0."""
    return ((flow_hash(frame, seed) >> 8) & 0xFFFFF) or 1


# -- decapsulation ------------------------------------------------------------------

cdef inline bint vni_known(uint32_t vni, const uint32_t* known, Py_ssize_t known_count) noexcept nogil:
    cdef Py_ssize_t low = 0, high = known_count, middle
    while low < high:
        middle = (low + high) >> 1
        if known[middle] < vni:
            low = middle + 1
        else:
            high = middle
    return low < known_count and known[low] == vni


cdef inline int udp_checks(const uint8_t* data, size_t l4, size_t ip_end, uint32_t dst_port,
                           size_t* udp_length) noexcept nogil:
    if ip_end - l4 < 8:
        return TRUNCATED
    if ck.load_be16(data + l4 + 2) != dst_port:
        return WRONG_PORT
    udp_length[0] = ck.load_be16(data + l4 + 4)
    if udp_length[0] < 8 or udp_length[0] > ip_end - l4:
        return BAD_UDP_LENGTH
    return ACCEPTED


cdef inline int decap_one(const uint8_t* data, size_t size, int layer, uint32_t dst_port,
                          const uint32_t* known, Py_ssize_t known_count, bint check_known,
                          bint verify_udp_checksum, bint strict_reserved, bint accept_zero_checksum_ipv6,
                          size_t* inner_start, size_t* inner_length, uint32_t* vni_out,
                          uint32_t* src_ip_out, Py_ssize_t* src6_out) noexcept nogil:
    """Classify one packet; see vxlan_kernels_py.decap_one (same checks, same order)."""
    cdef size_t start = 0, end = size, l3 = 0, l4, available, header_bytes, total_length
    cdef size_t udp_length = 0, payload_length
    cdef uint32_t src_ip = 0, vni, ethertype
    cdef Py_ssize_t src6 = -1
    cdef uint64_t pseudo
    cdef uint8_t flags, next_header
    cdef int version = 0, reason
    if layer == LAYER_ETHERNET:
        if size < 14:
            return TRUNCATED
        ethertype = ck.load_be16(data + 12)
        if ethertype == 0x0800:
            version = 4
        elif ethertype == 0x86DD:
            version = 6
        else:
            return BAD_ETHERTYPE
        l3 = 14
    elif layer == LAYER_IPV4:
        version = 4
    elif layer == LAYER_IPV6:
        version = 6
    if version == 4:
        available = size - l3
        if available < 20:
            return TRUNCATED
        if data[l3] >> 4 != 4:
            return BAD_IP_VERSION
        header_bytes = (data[l3] & 0x0F) * 4
        if header_bytes < 20:
            return BAD_IP_HEADER_LENGTH
        if available < header_bytes:
            return TRUNCATED
        total_length = ck.load_be16(data + l3 + 2)
        if total_length < header_bytes or total_length > available:
            return BAD_IP_TOTAL_LENGTH
        if ck.ones_sum16(data + l3, header_bytes) != 0xFFFF:
            return BAD_IP_CHECKSUM
        if ck.load_be16(data + l3 + 6) & 0x3FFF:
            return IP_FRAGMENT
        if data[l3 + 9] != 17:
            return NOT_UDP
        l4 = l3 + header_bytes
        reason = udp_checks(data, l4, l3 + total_length, dst_port, &udp_length)
        if reason != ACCEPTED:
            return reason
        if verify_udp_checksum and ck.load_be16(data + l4 + 6) != 0:
            pseudo = (<uint64_t>ck.load_be16(data + l3 + 12) + ck.load_be16(data + l3 + 14)
                      + ck.load_be16(data + l3 + 16) + ck.load_be16(data + l3 + 18) + 17 + udp_length)
            if ck.fold16(pseudo + ck.ones_sum16(data + l4, udp_length)) != 0xFFFF:
                return BAD_UDP_CHECKSUM
        src_ip = ck.load_be32(data + l3 + 12)
        start = l4 + 8
        end = l4 + udp_length
    elif version == 6:
        available = size - l3
        if available < 40:
            return TRUNCATED
        if data[l3] >> 4 != 6:
            return BAD_IP_VERSION
        payload_length = ck.load_be16(data + l3 + 4)
        if payload_length > available - 40:
            return BAD_IP_TOTAL_LENGTH
        next_header = data[l3 + 6]
        if next_header == 44:
            return IP_FRAGMENT
        if next_header != 17:  # extension headers are not walked
            return NOT_UDP
        l4 = l3 + 40
        reason = udp_checks(data, l4, l4 + payload_length, dst_port, &udp_length)
        if reason != ACCEPTED:
            return reason
        if ck.load_be16(data + l4 + 6) == 0:
            if not accept_zero_checksum_ipv6:
                return ZERO_UDP_CHECKSUM
        elif verify_udp_checksum:
            pseudo = <uint64_t>ck.ones_sum16(data + l3 + 8, 32) + 17 + udp_length
            if ck.fold16(pseudo + ck.ones_sum16(data + l4, udp_length)) != 0xFFFF:
                return BAD_UDP_CHECKSUM
        src6 = <Py_ssize_t>(l3 + 8)
        start = l4 + 8
        end = l4 + udp_length
    if end - start < 8:
        return TRUNCATED
    flags = data[start]
    if not (flags & 0x08):
        return BAD_VXLAN_FLAGS
    # RFC 7348 s.5: reserved bits are "ignored on receipt"; the strict policy drops them.
    if strict_reserved and ((flags & 0xF7) or data[start + 1] or data[start + 2] or data[start + 3]
                            or data[start + 7]):
        return RESERVED_BITS_SET
    vni = (<uint32_t>data[start + 4] << 16) | (<uint32_t>data[start + 5] << 8) | data[start + 6]
    if check_known and not vni_known(vni, known, known_count):
        return UNKNOWN_VNI
    if end - start - 8 < MIN_INNER:
        return INNER_TOO_SHORT
    inner_start[0] = start + 8
    inner_length[0] = end - start - 8
    vni_out[0] = vni
    src_ip_out[0] = src_ip
    src6_out[0] = src6
    return ACCEPTED


cdef Py_ssize_t decap_loop(const uint8_t* buffer, uint32_t* offsets, uint32_t* lengths, Py_ssize_t count,
                           uint8_t* statuses, uint32_t* vnis, uint32_t* src_ips, uint64_t* counters,
                           int layer, uint32_t dst_port, const uint32_t* known, Py_ssize_t known_count,
                           bint check_known, bint verify_udp_checksum, bint strict_reserved,
                           uint8_t* src_ips6, bint accept_zero_checksum_ipv6) noexcept nogil:
    cdef Py_ssize_t index, accepted = 0, src6 = -1
    cdef size_t inner_start = 0, inner_length = 0
    cdef uint32_t vni = 0, src_ip = 0
    cdef int reason
    for index in range(count):
        src6 = -1
        reason = decap_one(buffer + offsets[index], lengths[index], layer, dst_port, known, known_count,
                           check_known, verify_udp_checksum, strict_reserved, accept_zero_checksum_ipv6,
                           &inner_start, &inner_length, &vni, &src_ip, &src6)
        statuses[index] = <uint8_t>reason
        counters[reason] += 1
        if src_ips6 != NULL:
            if reason == ACCEPTED and src6 >= 0:
                memcpy(src_ips6 + 16 * index, buffer + offsets[index] + src6, 16)
            else:
                memset(src_ips6 + 16 * index, 0, 16)
        if reason == ACCEPTED:
            accepted += 1
            offsets[index] += <uint32_t>inner_start
            lengths[index] = <uint32_t>inner_length
            vnis[index] = vni
            src_ips[index] = src_ip
        else:
            vnis[index] = 0
            src_ips[index] = 0
    return accepted


def decap_batch(const uint8_t[::1] buffer, uint32_t[::1] offsets, uint32_t[::1] lengths, Py_ssize_t count,
                uint8_t[::1] statuses, uint32_t[::1] vnis, uint32_t[::1] src_ips, uint64_t[::1] counters,
                int layer=LAYER_ETHERNET, long dst_port=4789, const uint32_t[::1] known_vnis=None,
                bint verify_udp_checksum=True, bint strict_reserved=False, uint8_t[::1] src_ips6=None,
                bint accept_zero_checksum_ipv6=False):
    """Validate and strip packets 0..count-1; return how many were accepted.

    See vxlan_kernels_py.decap_batch for the contract (this is the fast twin)."""
    cdef Py_ssize_t accepted, index, known_count = 0
    cdef const uint32_t* known = NULL
    cdef size_t buffer_size
    cdef bint outside = False
    if buffer is None or offsets is None or lengths is None or statuses is None or vnis is None \
            or src_ips is None or counters is None:
        raise vc.KernelArgumentError("buffer, offsets, lengths, statuses, vnis, src_ips, counters are required")
    if not 0 <= count <= min(offsets.shape[0], lengths.shape[0]):
        raise vc.KernelArgumentError(
            f"count {count} must be 0..{min(offsets.shape[0], lengths.shape[0])} (size of offsets/lengths)")
    for name, size, needed in (("statuses", statuses.shape[0], count), ("vnis", vnis.shape[0], count),
                               ("src_ips", src_ips.shape[0], count), ("counters", counters.shape[0], N_REASONS)):
        if size < needed:
            raise vc.KernelArgumentError(f"{name} holds {size} items, need at least {needed}")
    cdef uint8_t* src_ips6_ptr = NULL
    if src_ips6 is not None:
        if src_ips6.shape[0] < 16 * count:
            raise vc.KernelArgumentError(f"src_ips6 holds {src_ips6.shape[0]} items, need at least {16 * count}")
        if count > 0:
            src_ips6_ptr = &src_ips6[0]
    if layer not in (LAYER_ETHERNET, LAYER_IPV4, LAYER_VXLAN, LAYER_IPV6):
        raise vc.KernelArgumentError(f"layer must be 0 (ethernet), 1 (ipv4), 2 (vxlan) or 3 (ipv6), got {layer}")
    if not 0 <= dst_port <= 0xFFFF:
        raise vc.KernelArgumentError(f"dst_port must be 0..65535, got {dst_port}")
    if known_vnis is not None:
        known_count = known_vnis.shape[0]
        for index in range(known_count):
            if known_vnis[index] > 0xFFFFFF or (index > 0 and known_vnis[index] <= known_vnis[index - 1]):
                raise vc.KernelArgumentError("known_vnis must be strictly increasing 24-bit VNIs")
        if known_count:
            known = &known_vnis[0]
    if count == 0:
        return 0
    buffer_size = buffer.shape[0]
    with nogil:
        for index in range(count):
            if <size_t>offsets[index] + lengths[index] > buffer_size:
                outside = True
                break
    if outside:
        raise vc.KernelArgumentError(f"packet {index} lies outside the buffer")
    with nogil:
        accepted = decap_loop(&buffer[0], &offsets[0], &lengths[0], count, &statuses[0], &vnis[0],
                              &src_ips[0], &counters[0], layer, <uint32_t>dst_port, known, known_count,
                              known_vnis is not None, verify_udp_checksum, strict_reserved,
                              src_ips6_ptr, accept_zero_checksum_ipv6)
    return accepted
