"""Pure-Python twin of ``dataplane.checksum`` (RFC 1071 / RFC 1624), same API.

Readable specification: the ones-complement sum of big-endian 16-bit words.
It uses the identity that the end-around-carry sum of the words is congruent
to the whole buffer, read as one big-endian integer, modulo 0xFFFF (because
2**16 == 1 mod 0xFFFF); a non-zero buffer folds to 1..0xFFFF, never 0.
"""
from __future__ import annotations


def ones_complement_sum(data: bytes | bytearray | memoryview) -> int:
    """Ones-complement sum of ``data`` as big-endian 16-bit words (0..0xFFFF, not complemented)."""
    raw = bytes(data)
    if len(raw) & 1:
        raw += b"\x00"  # RFC 1071: an odd last byte is padded with a zero byte
    value = int.from_bytes(raw, "big")
    if value == 0:
        return 0
    folded = value % 0xFFFF
    return folded if folded else 0xFFFF


def fold16(total: int) -> int:
    """End-around-carry fold of a non-negative sum to 16 bits."""
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksum_finish(total: int) -> int:
    return ~fold16(total) & 0xFFFF


def internet_checksum(data: bytes | bytearray | memoryview) -> int:
    """RFC 1071 checksum of ``data`` (the value to store in a zeroed checksum field)."""
    return ~ones_complement_sum(data) & 0xFFFF


def update16(checksum: int, old_word: int, new_word: int) -> int:
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')."""
    if not (0 <= checksum <= 0xFFFF and 0 <= old_word <= 0xFFFF and 0 <= new_word <= 0xFFFF):
        raise ValueError("checksum and words must be 16-bit values")
    return checksum_finish((~checksum & 0xFFFF) + (~old_word & 0xFFFF) + new_word)


def update32(checksum: int, old_value: int, new_value: int) -> int:
    """RFC 1624 incremental update for one 32-bit field (an IPv4 address)."""
    if not 0 <= checksum <= 0xFFFF:
        raise ValueError("checksum must be a 16-bit value")
    old_value &= 0xFFFFFFFF
    new_value &= 0xFFFFFFFF
    total = (~checksum & 0xFFFF) + (~(old_value >> 16) & 0xFFFF) + (~old_value & 0xFFFF)
    return checksum_finish(total + (new_value >> 16) + (new_value & 0xFFFF))
