# cython: language_level=3
"""Internet checksum (RFC 1071) helpers to ``cimport`` from other kernels.

Usage from another .pyx (the balancer may do this)::

    from dataplane.checksum cimport ones_sum16, checksum_finish, checksum_update16

Every function here is ``cdef inline ... noexcept nogil`` so no runtime import
of ``dataplane.checksum`` is needed.  Values are host integers that *represent*
big-endian (network order) 16-bit quantities: ``ones_sum16`` returns the
ones-complement sum of the data read as big-endian 16-bit words, so it can be
added to pseudo-header fields written as plain integers (``17``, a UDP length,
the two halves of an IPv4 address) and then finished with ``checksum_finish``.

Speed: the sum reads 4 bytes at a time into a 64-bit accumulator (no carries
to handle until the final fold; 2**32 words before overflow), a loop the C
compiler vectorises.  RFC 1071 s.2(B): the ones-complement sum is byte-order
independent, so we add native-order words and swap the folded result once.

Rule for combining partial sums: every region passed to ``ones_sum16`` must
start at an even offset of the checksummed stream (only the last region may
have odd length), otherwise its bytes pair up differently.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy


cdef inline bint host_is_little_endian() noexcept nogil:
    # The compiler folds this to a constant.
    cdef uint16_t probe = 1
    return (<uint8_t*>&probe)[0] == 1


cdef inline uint32_t fold16(uint64_t total) noexcept nogil:
    """End-around-carry fold of any 64-bit sum down to 16 bits (0..0xFFFF)."""
    total = (total & 0xFFFFFFFFU) + (total >> 32)
    total = (total & 0xFFFFFFFFU) + (total >> 32)
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return <uint32_t>total


cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* Long buffers: the same loop compiled twice, for AVX2 and for the baseline,
       picked once at load time (GCC target_clones / ifunc), since the build uses
       no -march flag.  Short buffers stay on the inline loop below. */
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
    __attribute__((target_clones("avx2", "default"), unused))
    #else
    __attribute__((unused))
    #endif
    static uint64_t shoal_checksum_sum32_long(const uint8_t *data, size_t words) {
        uint64_t total = 0;
        for (size_t index = 0; index < words; index++) {
            uint32_t word;
            memcpy(&word, data + (index << 2), 4);
            total += word;
        }
        return total;
    }
    """
    uint64_t shoal_checksum_sum32_long(const uint8_t* data, size_t words) nogil


cdef inline uint64_t native_sum32(const uint8_t* data, size_t length) noexcept nogil:
    """Sum of the data as native-order 32-bit words (zero padded), unfolded."""
    cdef uint64_t total = 0
    cdef size_t words = length >> 2
    cdef size_t index
    cdef uint32_t word
    if words >= 32:
        total = shoal_checksum_sum32_long(data, words)
    else:
        for index in range(words):
            memcpy(&word, data + (index << 2), 4)
            total += word
    cdef size_t rest = length & 3
    if rest:
        word = 0
        # A zero-padded partial word is the right contribution in either byte order.
        memcpy(&word, data + (words << 2), rest)
        total += word
    return total


cdef inline uint32_t ones_sum16(const uint8_t* data, size_t length) noexcept nogil:
    """Ones-complement sum (not complemented) of big-endian 16-bit words, 0..0xFFFF."""
    cdef uint32_t folded = fold16(native_sum32(data, length))
    if host_is_little_endian():
        folded = ((folded & 0xFF) << 8) | (folded >> 8)
    return folded


cdef inline uint16_t checksum_finish(uint64_t total) noexcept nogil:
    """Fold a sum of 16-bit values and complement it: the checksum field value."""
    return <uint16_t>(~fold16(total) & 0xFFFF)


cdef inline uint16_t internet_checksum_ptr(const uint8_t* data, size_t length) noexcept nogil:
    """RFC 1071 checksum of a buffer (0 in the field while computing)."""
    return checksum_finish(ones_sum16(data, length))


cdef inline uint16_t checksum_update16(uint16_t checksum, uint16_t old_word, uint16_t new_word) noexcept nogil:
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for one changed 16-bit word."""
    cdef uint64_t total = (<uint64_t>(~checksum & 0xFFFF)) + (~old_word & 0xFFFF) + new_word
    return checksum_finish(total)


cdef inline uint16_t checksum_update32(uint16_t checksum, uint32_t old_value, uint32_t new_value) noexcept nogil:
    """RFC 1624 for a changed 32-bit field (an IPv4 address), as two 16-bit words."""
    cdef uint64_t total = (<uint64_t>(~checksum & 0xFFFF))
    total += (~(old_value >> 16) & 0xFFFF) + (~old_value & 0xFFFF)
    total += (new_value >> 16) + (new_value & 0xFFFF)
    return checksum_finish(total)


cdef inline uint16_t load_be16(const uint8_t* data) noexcept nogil:
    return <uint16_t>((<uint16_t>data[0] << 8) | data[1])


cdef inline uint32_t load_be32(const uint8_t* data) noexcept nogil:
    return ((<uint32_t>data[0] << 24) | (<uint32_t>data[1] << 16)
            | (<uint32_t>data[2] << 8) | data[3])


cdef inline void store_be16(uint8_t* data, uint32_t value) noexcept nogil:
    data[0] = <uint8_t>(value >> 8)
    data[1] = <uint8_t>value


cdef inline void store_be32(uint8_t* data, uint32_t value) noexcept nogil:
    data[0] = <uint8_t>(value >> 24)
    data[1] = <uint8_t>(value >> 16)
    data[2] = <uint8_t>(value >> 8)
    data[3] = <uint8_t>value
