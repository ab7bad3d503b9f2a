# cython: language_level=3
"""SipHash (Aumasson & Bernstein, 2012) as inline C, to ``cimport`` from kernels.

    from dataplane.flowhash_c cimport siphash24_bytes, flow_hash13

Every function is ``cdef inline ... noexcept nogil``: each kernel that cimports
this file compiles its own copy, so no call crosses a module boundary on the
per-packet path.  The readable specification is ``dataplane/flowhash_py.py``.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t


cdef inline uint64_t _rotl(uint64_t value, int bits) noexcept nogil:
    return (value << bits) | (value >> (64 - bits))


cdef inline void _sipround(uint64_t* v) noexcept nogil:
    v[0] += v[1]; v[1] = _rotl(v[1], 13); v[1] ^= v[0]; v[0] = _rotl(v[0], 32)
    v[2] += v[3]; v[3] = _rotl(v[3], 16); v[3] ^= v[2]
    v[0] += v[3]; v[3] = _rotl(v[3], 21); v[3] ^= v[0]
    v[2] += v[1]; v[1] = _rotl(v[1], 17); v[1] ^= v[2]; v[2] = _rotl(v[2], 32)


cdef inline void _init(uint64_t* v, uint64_t k0, uint64_t k1) noexcept nogil:
    v[0] = k0 ^ 0x736F6D6570736575ULL
    v[1] = k1 ^ 0x646F72616E646F6DULL
    v[2] = k0 ^ 0x6C7967656E657261ULL
    v[3] = k1 ^ 0x7465646279746573ULL


cdef inline uint64_t siphash24_bytes(uint64_t k0, uint64_t k1, const uint8_t* data, size_t length) noexcept nogil:
    """SipHash-2-4 of ``length`` bytes (little-endian words, as the reference)."""
    cdef uint64_t v[4]
    cdef uint64_t word
    cdef size_t block, byte, full = length & ~(<size_t>7)
    _init(v, k0, k1)
    for block in range(0, full, 8):
        word = 0
        for byte in range(8):
            word |= (<uint64_t>data[block + byte]) << (8 * byte)
        v[3] ^= word
        _sipround(v); _sipround(v)
        v[0] ^= word
    word = (<uint64_t>(length & 0xFF)) << 56
    for byte in range(length - full):
        word |= (<uint64_t>data[full + byte]) << (8 * byte)
    v[3] ^= word
    _sipround(v); _sipround(v)
    v[0] ^= word
    v[2] ^= 0xFF
    _sipround(v); _sipround(v); _sipround(v); _sipround(v)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


cdef inline uint64_t flow_hash13(uint64_t k0, uint64_t k1, uint32_t protocol, uint32_t source_ip,
                                 uint32_t destination_ip, uint32_t source_port,
                                 uint32_t destination_port) noexcept nogil:
    """SipHash-1-3 of the 5-tuple packed as two 64-bit words (16 message bytes).

    m0 = source_ip << 32 | destination_ip and
    m1 = source_port << 48 | destination_port << 32 | protocol, addresses and
    ports as host integers of their network-order values.
    """
    cdef uint64_t v[4]
    cdef uint64_t m0 = ((<uint64_t>source_ip) << 32) | destination_ip
    cdef uint64_t m1 = ((<uint64_t>(source_port & 0xFFFF)) << 48) | ((<uint64_t>(destination_port & 0xFFFF)) << 32) | (protocol & 0xFF)
    cdef uint64_t last = (<uint64_t>16) << 56
    _init(v, k0, k1)
    v[3] ^= m0; _sipround(v); v[0] ^= m0
    v[3] ^= m1; _sipround(v); v[0] ^= m1
    v[3] ^= last; _sipround(v); v[0] ^= last
    v[2] ^= 0xFF
    _sipround(v); _sipround(v); _sipround(v)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


cdef inline uint32_t fastrange32(uint32_t hash_bits, uint32_t size) noexcept nogil:
    """Map 32 uniform bits onto [0, size) with a multiply (Lemire, 2019), no division."""
    return <uint32_t>(((<uint64_t>hash_bits) * size) >> 32)
