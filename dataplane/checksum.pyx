"""Python entry points to the Internet checksum kernels (declared in checksum.pxd).

Twin: ``dataplane.checksum_py`` (same functions, same results).  Other kernels
``cimport`` the inline helpers from ``checksum.pxd`` directly.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t


def ones_complement_sum(const uint8_t[::1] data) -> int:
    """Ones-complement sum of ``data`` as big-endian 16-bit words (0..0xFFFF, not complemented)."""
    cdef uint32_t result
    cdef Py_ssize_t length = data.shape[0]
    if length == 0:
        return 0
    with nogil:
        result = ones_sum16(&data[0], <size_t>length)
    return result


def internet_checksum(const uint8_t[::1] data) -> int:
    """RFC 1071 checksum of ``data`` (the value to store in a zeroed checksum field)."""
    return (~ones_complement_sum(data)) & 0xFFFF


def update16(int checksum, int old_word, int new_word) -> int:
    """RFC 1624 incremental update for one 16-bit word."""
    if not (0 <= checksum <= 0xFFFF and 0 <= old_word <= 0xFFFF and 0 <= new_word <= 0xFFFF):
        raise ValueError("checksum and words must be 16-bit values")
    return checksum_update16(<uint16_t>checksum, <uint16_t>old_word, <uint16_t>new_word)


def update32(int checksum, unsigned int old_value, unsigned int new_value) -> int:
    """RFC 1624 incremental update for one 32-bit field (an IPv4 address)."""
    if not 0 <= checksum <= 0xFFFF:
        raise ValueError("checksum must be a 16-bit value")
    return checksum_update32(<uint16_t>checksum, <uint32_t>old_value, <uint32_t>new_value)
