# cython: language_level=3
"""SipHash (Aumasson & Bernstein, 2012) as inline C, to ``cimport`` from kernels.

    from dataplane.flowhash_c cimport siphash24_bytes, flow_hash13

Every function is ``cdef inline ... noexcept nogil`` (or static C): each kernel
that cimports this file compiles its own copy, so no call crosses a module
boundary on the per-packet path.  The readable specification is
``dataplane/flowhash_py.py``.

Kernels that hash many flows at once build the two message words of each
(``flow_words0``/``flow_words1``) and call ``shoal_flow_hash13_many``, which
runs SipHash-1-3 in 8 (AVX-512F) or 4 (AVX2) lanes where the CPU has them
(``shoal_flowhash_simd_level``, checked once per module) and one flow at a
time otherwise: the same values at every level (tests/dataplane checks the
lane widths against the twin).  The flow hash stays keyed SipHash: a client
who does not know the cluster seed cannot aim flows at one backend.
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


cdef extern from *:
    """
    #include <stddef.h>
    #include <stdint.h>
    #if defined(__GNUC__) && defined(__x86_64__)
    #include <immintrin.h>
    #define SHOAL_FLOWHASH_X86 1
    #endif

    /* SipHash-1-3 of the 5-tuple as the two words m0, m1 (see flow_hash13 in
       flowhash_c.pxd for the packing), then the length word 16 << 56. */
    #define SHOAL_SIP_C0 0x736F6D6570736575ULL
    #define SHOAL_SIP_C1 0x646F72616E646F6DULL
    #define SHOAL_SIP_C2 0x6C7967656E657261ULL
    #define SHOAL_SIP_C3 0x7465646279746573ULL
    #define SHOAL_SIP_LAST (((uint64_t)16) << 56)

    static inline uint64_t shoal_rotl64(uint64_t value, int bits) {
        return (value << bits) | (value >> (64 - bits));
    }

    #define SHOAL_SIPROUND(ADD, XOR, ROTL, ROTL16, ROTL32, v0, v1, v2, v3) do { \
        v0 = ADD(v0, v1); v1 = ROTL(v1, 13); v1 = XOR(v1, v0); v0 = ROTL32(v0); \
        v2 = ADD(v2, v3); v3 = ROTL16(v3); v3 = XOR(v3, v2); \
        v0 = ADD(v0, v3); v3 = ROTL(v3, 21); v3 = XOR(v3, v0); \
        v2 = ADD(v2, v1); v1 = ROTL(v1, 17); v1 = XOR(v1, v2); v2 = ROTL32(v2); \
    } while (0)

    /* The whole of SipHash-1-3 over (m0, m1, last), written once for every
       lane width: one compression round per word, three finalisation rounds. */
    #define SHOAL_SIPHASH13_BODY(TYPE, SET1, ADD, XOR, ROTL, ROTL16, ROTL32, k0, k1, m0, m1, result) do { \
        TYPE v0 = SET1((k0) ^ SHOAL_SIP_C0), v1 = SET1((k1) ^ SHOAL_SIP_C1); \
        TYPE v2 = SET1((k0) ^ SHOAL_SIP_C2), v3 = SET1((k1) ^ SHOAL_SIP_C3); \
        TYPE last = SET1(SHOAL_SIP_LAST); \
        v3 = XOR(v3, m0); SHOAL_SIPROUND(ADD, XOR, ROTL, ROTL16, ROTL32, v0, v1, v2, v3); v0 = XOR(v0, m0); \
        v3 = XOR(v3, m1); SHOAL_SIPROUND(ADD, XOR, ROTL, ROTL16, ROTL32, v0, v1, v2, v3); v0 = XOR(v0, m1); \
        v3 = XOR(v3, last); SHOAL_SIPROUND(ADD, XOR, ROTL, ROTL16, ROTL32, v0, v1, v2, v3); v0 = XOR(v0, last); \
        v2 = XOR(v2, SET1(0xFF)); \
        SHOAL_SIPROUND(ADD, XOR, ROTL, ROTL16, ROTL32, v0, v1, v2, v3); \
        SHOAL_SIPROUND(ADD, XOR, ROTL, ROTL16, ROTL32, v0, v1, v2, v3); \
        SHOAL_SIPROUND(ADD, XOR, ROTL, ROTL16, ROTL32, v0, v1, v2, v3); \
        result = XOR(XOR(v0, v1), XOR(v2, v3)); \
    } while (0)

    #define SHOAL_S_SET1(x) ((uint64_t)(x))
    #define SHOAL_S_ADD(a, b) ((a) + (b))
    #define SHOAL_S_XOR(a, b) ((a) ^ (b))
    #define SHOAL_S_ROTL16(a) shoal_rotl64((a), 16)
    #define SHOAL_S_ROTL32(a) shoal_rotl64((a), 32)

    static inline uint64_t shoal_flow_hash13_words(uint64_t k0, uint64_t k1, uint64_t m0, uint64_t m1) {
        uint64_t result;
        SHOAL_SIPHASH13_BODY(uint64_t, SHOAL_S_SET1, SHOAL_S_ADD, SHOAL_S_XOR, shoal_rotl64,
                             SHOAL_S_ROTL16, SHOAL_S_ROTL32, k0, k1, m0, m1, result);
        return result;
    }

    #ifdef SHOAL_FLOWHASH_X86
    /* The same rounds on 4 (AVX2) or 8 (AVX-512F) independent flows at once,
       one per 64-bit lane.  Built for those instruction sets whatever the
       compiler flags (GCC target attributes) and used only when the CPU has
       them (shoal_flowhash_simd_level). */
    #define SHOAL_V4_ROTL(a, bits) _mm256_or_si256(_mm256_slli_epi64((a), (bits)), _mm256_srli_epi64((a), 64 - (bits)))
    #define SHOAL_V4_ROTL16(a) _mm256_shuffle_epi8((a), _mm256_setr_epi8( \
        6, 7, 0, 1, 2, 3, 4, 5, 14, 15, 8, 9, 10, 11, 12, 13, \
        6, 7, 0, 1, 2, 3, 4, 5, 14, 15, 8, 9, 10, 11, 12, 13))
    #define SHOAL_V4_ROTL32(a) _mm256_shuffle_epi32((a), 0xB1)
    #define SHOAL_V4_SET1(x) _mm256_set1_epi64x((long long)(x))

    __attribute__((target("avx2")))
    static void shoal_flow_hash13_x4(uint64_t k0, uint64_t k1, const uint64_t *m0, const uint64_t *m1,
                                     uint64_t *out) {
        __m256i words0 = _mm256_loadu_si256((const __m256i *)m0);
        __m256i words1 = _mm256_loadu_si256((const __m256i *)m1);
        __m256i result;
        SHOAL_SIPHASH13_BODY(__m256i, SHOAL_V4_SET1, _mm256_add_epi64, _mm256_xor_si256, SHOAL_V4_ROTL,
                             SHOAL_V4_ROTL16, SHOAL_V4_ROTL32, k0, k1, words0, words1, result);
        _mm256_storeu_si256((__m256i *)out, result);
    }

    #define SHOAL_V8_ROTL16(a) _mm512_rol_epi64((a), 16)
    #define SHOAL_V8_ROTL32(a) _mm512_rol_epi64((a), 32)
    #define SHOAL_V8_SET1(x) _mm512_set1_epi64((long long)(x))

    __attribute__((target("avx512f")))
    static void shoal_flow_hash13_x8(uint64_t k0, uint64_t k1, const uint64_t *m0, const uint64_t *m1,
                                     uint64_t *out) {
        __m512i words0 = _mm512_loadu_si512((const void *)m0);
        __m512i words1 = _mm512_loadu_si512((const void *)m1);
        __m512i result;
        SHOAL_SIPHASH13_BODY(__m512i, SHOAL_V8_SET1, _mm512_add_epi64, _mm512_xor_si512, _mm512_rol_epi64,
                             SHOAL_V8_ROTL16, SHOAL_V8_ROTL32, k0, k1, words0, words1, result);
        _mm512_storeu_si512((void *)out, result);
    }
    #endif

    /* 0: scalar only, 1: AVX2, 2: AVX-512F as well (the CPU and the OS both
       support the registers: libgcc's __builtin_cpu_supports checks XGETBV). */
    static inline int shoal_flowhash_simd_level(void) {
    #ifdef SHOAL_FLOWHASH_X86
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f"))
            return 2;
        if (__builtin_cpu_supports("avx2"))
            return 1;
    #endif
        return 0;
    }

    /* out[i] = SipHash-1-3(m0[i], m1[i]) for i < count: eight lanes at a time,
       then four, then one by one, as far as ``simd_level`` allows. */
    static inline void shoal_flow_hash13_many(uint64_t k0, uint64_t k1, const uint64_t *m0, const uint64_t *m1,
                                              uint64_t *out, size_t count, int simd_level) {
        size_t index = 0;
    #ifdef SHOAL_FLOWHASH_X86
        if (simd_level >= 2)
            for (; index + 8 <= count; index += 8)
                shoal_flow_hash13_x8(k0, k1, m0 + index, m1 + index, out + index);
        if (simd_level >= 1)
            for (; index + 4 <= count; index += 4)
                shoal_flow_hash13_x4(k0, k1, m0 + index, m1 + index, out + index);
    #endif
        for (; index < count; index++)
            out[index] = shoal_flow_hash13_words(k0, k1, m0[index], m1[index]);
    }
    """
    uint64_t shoal_flow_hash13_words(uint64_t k0, uint64_t k1, uint64_t m0, uint64_t m1) noexcept nogil
    int shoal_flowhash_simd_level() noexcept nogil
    void shoal_flow_hash13_many(uint64_t k0, uint64_t k1, const uint64_t* m0, const uint64_t* m1,
                                uint64_t* out, size_t count, int simd_level) noexcept nogil


cdef inline uint64_t flow_words0(uint32_t source_ip, uint32_t destination_ip) noexcept nogil:
    """The first message word of a 5-tuple: source_ip << 32 | destination_ip."""
    return ((<uint64_t>source_ip) << 32) | destination_ip


cdef inline uint64_t flow_words1(uint32_t protocol, uint32_t source_port, uint32_t destination_port) noexcept nogil:
    """The second message word: source_port << 48 | destination_port << 32 | protocol."""
    return (((<uint64_t>(source_port & 0xFFFF)) << 48) | ((<uint64_t>(destination_port & 0xFFFF)) << 32)
            | (protocol & 0xFF))


cdef inline uint64_t flow_hash13(uint64_t k0, uint64_t k1, uint32_t protocol, uint32_t source_ip,
                                 uint32_t destination_ip, uint32_t source_port,
                                 uint32_t destination_port) noexcept nogil:
    """SipHash-1-3 of the 5-tuple packed as two 64-bit words (16 message bytes).

    m0 = source_ip << 32 | destination_ip and
    m1 = source_port << 48 | destination_port << 32 | protocol, addresses and
    ports as host integers of their network-order values.  Kernels hashing
    many flows at once call ``shoal_flow_hash13_many`` on the words instead
    (same values, SIMD lanes where the CPU has them).
    """
    return shoal_flow_hash13_words(k0, k1, flow_words0(source_ip, destination_ip),
                                   flow_words1(protocol, source_port, destination_port))


cdef inline uint32_t fastrange32(uint32_t hash_bits, uint32_t size) noexcept nogil:
    """Map 32 uniform bits onto [0, size) with a multiply (Lemire, 2019), no division."""
    return <uint32_t>(((<uint64_t>hash_bits) * size) >> 32)
