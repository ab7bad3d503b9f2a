# cython: language_level=3
"""Frame parsing and NAT rewrites with RFC 1624 checksum updates, as inline C.

    from dataplane.nat_c cimport nat_parse, nat_rewrite, parsed_frame

The pure-Python twin and readable specification is ``dataplane/nat_py.py``
(which also states the pass/drop rule for every kind of frame).
"""
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t


ctypedef struct parsed_frame:
    uint32_t l3               # offset of the IPv4 header in the frame
    uint32_t l4               # offset of the TCP/UDP header in the frame
    uint32_t protocol
    uint32_t source_ip
    uint32_t destination_ip
    uint32_t source_port
    uint32_t destination_port
    uint32_t tcp_flags


# Parse results (the order of nat_py.PARSE_NAMES).
cdef enum:
    PARSE_OK = 0
    PARSE_NON_IPV4 = 1
    PARSE_NOT_TCP_UDP = 2
    PARSE_TRUNCATED = 3
    PARSE_BAD_IP_HEADER = 4
    PARSE_FRAGMENT = 5

cdef enum:
    ETH_HEADER_BYTES = 14
    IPV4_HEADER_BYTES_MIN = 20
    TCP_HEADER_BYTES_MIN = 20
    UDP_HEADER_BYTES = 8


cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* Big-endian loads and stores as one unaligned access and a byte swap
       (GCC does not merge the byte-by-byte forms here). */
    static inline uint32_t shoal_nat_load16(const uint8_t *pointer) {
        uint16_t value;
        memcpy(&value, pointer, 2);
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        value = __builtin_bswap16(value);
    #endif
        return value;
    }
    static inline uint32_t shoal_nat_load32(const uint8_t *pointer) {
        uint32_t value;
        memcpy(&value, pointer, 4);
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        value = __builtin_bswap32(value);
    #endif
        return value;
    }
    static inline void shoal_nat_store16(uint8_t *pointer, uint32_t value32) {
        uint16_t value = (uint16_t)value32;
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        value = __builtin_bswap16(value);
    #endif
        memcpy(pointer, &value, 2);
    }
    static inline void shoal_nat_store32(uint8_t *pointer, uint32_t value) {
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        value = __builtin_bswap32(value);
    #endif
        memcpy(pointer, &value, 4);
    }
    /* Fields as they lie in the frame (network byte order), unswapped. */
    static inline uint32_t shoal_nat_raw16(const uint8_t *pointer) {
        uint16_t value;
        memcpy(&value, pointer, 2);
        return value;
    }
    static inline uint32_t shoal_nat_raw32(const uint8_t *pointer) {
        uint32_t value;
        memcpy(&value, pointer, 4);
        return value;
    }
    static inline void shoal_nat_put_raw16(uint8_t *pointer, uint32_t value32) {
        uint16_t value = (uint16_t)value32;
        memcpy(pointer, &value, 2);
    }
    static inline void shoal_nat_put_raw32(uint8_t *pointer, uint32_t value) {
        memcpy(pointer, &value, 4);
    }
    /* Bytes 12..14 of an IPv4 frame without options (ethertype 0x0800, then
       version 4 and IHL 5) and the IPv4 flags/fragment-offset mask (0x3FFF),
       both as shoal_nat_raw32/raw16 load them. */
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    #define SHOAL_NAT_IPV4_IHL5 0x00450008u
    #define SHOAL_NAT_IPV4_IHL5_MASK 0x00FFFFFFu
    #define SHOAL_NAT_FRAGMENT_MASK 0xFF3Fu
    #else
    #define SHOAL_NAT_IPV4_IHL5 0x08004500u
    #define SHOAL_NAT_IPV4_IHL5_MASK 0xFFFFFF00u
    #define SHOAL_NAT_FRAGMENT_MASK 0x3FFFu
    #endif
    /* A host-order value as the frame holds it (what shoal_nat_raw* load). */
    static inline uint32_t shoal_nat_network16(uint32_t value) {
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        return __builtin_bswap16((uint16_t)value);
    #else
        return value & 0xFFFF;
    #endif
    }
    static inline uint32_t shoal_nat_network32(uint32_t value) {
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        return __builtin_bswap32(value);
    #else
        return value;
    #endif
    }
    """
    uint32_t shoal_nat_load16(const uint8_t* pointer) nogil
    uint32_t shoal_nat_load32(const uint8_t* pointer) nogil
    void shoal_nat_store16(uint8_t* pointer, uint32_t value) nogil
    void shoal_nat_store32(uint8_t* pointer, uint32_t value) nogil
    uint32_t shoal_nat_raw16(const uint8_t* pointer) nogil
    uint32_t shoal_nat_raw32(const uint8_t* pointer) nogil
    void shoal_nat_put_raw16(uint8_t* pointer, uint32_t value) nogil
    void shoal_nat_put_raw32(uint8_t* pointer, uint32_t value) nogil
    uint32_t shoal_nat_network16(uint32_t value) nogil
    uint32_t shoal_nat_network32(uint32_t value) nogil
    uint32_t SHOAL_NAT_IPV4_IHL5
    uint32_t SHOAL_NAT_IPV4_IHL5_MASK
    uint32_t SHOAL_NAT_FRAGMENT_MASK


cdef inline uint32_t load16(const uint8_t* pointer) noexcept nogil:
    return shoal_nat_load16(pointer)


cdef inline uint32_t load32(const uint8_t* pointer) noexcept nogil:
    return shoal_nat_load32(pointer)


cdef inline void store16(uint8_t* pointer, uint32_t value) noexcept nogil:
    shoal_nat_store16(pointer, value)


cdef inline void store32(uint8_t* pointer, uint32_t value) noexcept nogil:
    shoal_nat_store32(pointer, value)


cdef inline int nat_parse(const uint8_t* frame, uint32_t length, parsed_frame* out) noexcept nogil:
    cdef uint32_t ethertype, version_ihl, header_bytes, total_bytes, payload_bytes, protocol
    # The common frame first: IPv4 without options, TCP or UDP with its whole
    # header, not a fragment, not cut short.  A few word tests accept exactly
    # the frames the rules below accept with a 20-byte IPv4 header, with the
    # same fields; every other frame (options, or anything to refuse) takes
    # the rules below, which name the reason.
    if (length >= ETH_HEADER_BYTES + IPV4_HEADER_BYTES_MIN + UDP_HEADER_BYTES
            and (shoal_nat_raw32(frame + 12) & SHOAL_NAT_IPV4_IHL5_MASK) == SHOAL_NAT_IPV4_IHL5):
        protocol = frame[ETH_HEADER_BYTES + 9]
        total_bytes = load16(frame + ETH_HEADER_BYTES + 2)
        if (((protocol == 6 and total_bytes >= IPV4_HEADER_BYTES_MIN + TCP_HEADER_BYTES_MIN)
                or (protocol == 17 and total_bytes >= IPV4_HEADER_BYTES_MIN + UDP_HEADER_BYTES))
                and ETH_HEADER_BYTES + total_bytes <= length
                and (shoal_nat_raw16(frame + ETH_HEADER_BYTES + 6) & SHOAL_NAT_FRAGMENT_MASK) == 0):
            out.l3 = ETH_HEADER_BYTES
            out.l4 = ETH_HEADER_BYTES + IPV4_HEADER_BYTES_MIN
            out.protocol = protocol
            out.source_ip = load32(frame + ETH_HEADER_BYTES + 12)
            out.destination_ip = load32(frame + ETH_HEADER_BYTES + 16)
            out.source_port = load16(frame + ETH_HEADER_BYTES + IPV4_HEADER_BYTES_MIN)
            out.destination_port = load16(frame + ETH_HEADER_BYTES + IPV4_HEADER_BYTES_MIN + 2)
            out.tcp_flags = frame[ETH_HEADER_BYTES + IPV4_HEADER_BYTES_MIN + 13] if protocol == 6 else 0
            return PARSE_OK
    if length < ETH_HEADER_BYTES:
        return PARSE_TRUNCATED
    ethertype = load16(frame + 12)
    if ethertype != 0x0800:
        return PARSE_NON_IPV4
    if length < ETH_HEADER_BYTES + IPV4_HEADER_BYTES_MIN:
        return PARSE_TRUNCATED
    version_ihl = frame[ETH_HEADER_BYTES]
    header_bytes = (version_ihl & 0x0F) * 4
    if (version_ihl >> 4) != 4 or header_bytes < IPV4_HEADER_BYTES_MIN:
        return PARSE_BAD_IP_HEADER
    total_bytes = load16(frame + ETH_HEADER_BYTES + 2)
    if total_bytes < header_bytes:
        return PARSE_BAD_IP_HEADER
    if ETH_HEADER_BYTES + total_bytes > length:
        return PARSE_TRUNCATED
    out.protocol = frame[ETH_HEADER_BYTES + 9]
    if out.protocol != 6 and out.protocol != 17:
        return PARSE_NOT_TCP_UDP
    if load16(frame + ETH_HEADER_BYTES + 6) & 0x3FFF:
        return PARSE_FRAGMENT
    payload_bytes = total_bytes - header_bytes
    if payload_bytes < (TCP_HEADER_BYTES_MIN if out.protocol == 6 else UDP_HEADER_BYTES):
        return PARSE_TRUNCATED
    out.l3 = ETH_HEADER_BYTES
    out.l4 = ETH_HEADER_BYTES + header_bytes
    out.source_ip = load32(frame + ETH_HEADER_BYTES + 12)
    out.destination_ip = load32(frame + ETH_HEADER_BYTES + 16)
    out.source_port = load16(frame + out.l4)
    out.destination_port = load16(frame + out.l4 + 2)
    out.tcp_flags = frame[out.l4 + 13] if out.protocol == 6 else 0
    return PARSE_OK


cdef inline uint32_t checksum_update(uint32_t check, uint32_t old_address, uint32_t new_address,
                                     uint32_t old_port, uint32_t new_port) noexcept nogil:
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') over the changed 16-bit words.

    A folded sum of 0 is written as 0xFFFF first (ones-complement zero has two
    forms; a full recomputation over non-zero data never yields +0), so the
    result is bit-identical to recomputing the checksum from scratch.
    """
    cdef uint64_t total = (~check & 0xFFFF)
    total += (~(old_address >> 16) & 0xFFFF) + (new_address >> 16)
    total += (~old_address & 0xFFFF) + (new_address & 0xFFFF)
    total += (~old_port & 0xFFFF) + (new_port & 0xFFFF)
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    if total == 0:
        total = 0xFFFF
    return (~total) & 0xFFFF


cdef inline uint32_t checksum_apply(uint32_t check, uint64_t delta) noexcept nogil:
    """HC' = ~(~HC + delta) (RFC 1624 eqn. 3), delta below 2**18 + 2**17.

    Same result as ``checksum_update`` (including 0 written as 0xFFFF): the
    sum is below 2**19, so two end-around-carry folds reach 16 bits.
    """
    cdef uint64_t total = (~check & 0xFFFF) + delta
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    if total == 0:
        total = 0xFFFF
    return (~total) & 0xFFFF


cdef inline void nat_rewrite(uint8_t* frame, parsed_frame* parsed, bint destination, uint32_t new_ip,
                             uint32_t new_port, int64_t new_mac) noexcept nogil:
    """Rewrite the destination (request) or source (reply) address, port and MAC.

    The address change is summed once (~m + m') and applied to both
    checksums; the L4 one adds the port change (RFC 1624).  All of it on the
    fields as they lie in the frame, in network byte order, unswapped: a
    ones'-complement sum of byte-swapped words is the byte-swapped sum
    (RFC 1071, section 2(B)), so the stored checksums are the same bytes.
    The 32-bit address enters the sum whole: 2**16 = 1 modulo 0xFFFF, so it
    counts as its two 16-bit words, and the sum is zero only when they are.
    """
    cdef uint32_t address_offset = parsed.l3 + (16 if destination else 12)
    cdef uint32_t port_offset = parsed.l4 + (2 if destination else 0)
    cdef uint32_t new_ip_raw = shoal_nat_network32(new_ip)
    cdef uint32_t new_port_raw = shoal_nat_network16(new_port)
    cdef uint32_t check_offset, check
    cdef uint64_t address_delta, port_delta
    cdef uint8_t* mac
    address_delta = <uint64_t>(~shoal_nat_raw32(frame + address_offset)) + new_ip_raw
    address_delta = (address_delta & 0xFFFF) + (address_delta >> 16)  # below 2**18
    port_delta = (~shoal_nat_raw16(frame + port_offset) & 0xFFFF) + new_port_raw
    # IPv4 header checksum covers the address only.
    check = shoal_nat_raw16(frame + parsed.l3 + 10)
    shoal_nat_put_raw16(frame + parsed.l3 + 10, checksum_apply(check, address_delta))
    # TCP/UDP checksums cover the pseudo-header (addresses) and the ports.
    check_offset = parsed.l4 + (16 if parsed.protocol == 6 else 6)
    check = shoal_nat_raw16(frame + check_offset)
    if parsed.protocol == 6:
        shoal_nat_put_raw16(frame + check_offset, checksum_apply(check, address_delta + port_delta))
    elif check != 0:  # RFC 768: UDP checksum 0 means "none"; keep it none
        check = checksum_apply(check, address_delta + port_delta)
        shoal_nat_put_raw16(frame + check_offset, check if check != 0 else 0xFFFF)
    shoal_nat_put_raw32(frame + address_offset, new_ip_raw)
    shoal_nat_put_raw16(frame + port_offset, new_port_raw)
    if new_mac >= 0:
        mac = frame + (0 if destination else 6)
        store16(mac, <uint32_t>(new_mac >> 32))
        store32(mac + 2, <uint32_t>new_mac)
