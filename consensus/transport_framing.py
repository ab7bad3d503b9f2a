"""Length-prefixed frames over a byte stream (peer and client connections).

A frame is ``length u32 big endian | payload``.  :class:`FrameDecoder` is a
sans-IO incremental parser: feed it whatever bytes arrived, get the complete
payloads; a length above ``frame_bytes_max`` raises :class:`FrameTooLarge`
before any payload is buffered, so a bad peer cannot make us allocate it.
"""
from __future__ import annotations

import struct

LENGTH = struct.Struct(">I")
LENGTH_SIZE = LENGTH.size
FRAME_BYTES_MAX_DEFAULT = 16 * 1024 * 1024


class FrameTooLarge(ValueError):
    def __init__(self, length: int, limit: int) -> None:
        self.length = length
        self.limit = limit
        super().__init__(f"frame of {length} bytes above the limit of {limit} bytes")


def frame(payload: bytes) -> bytes:
    return LENGTH.pack(len(payload)) + payload


class FrameDecoder:
    __slots__ = ("_buffer", "_frame_bytes_max")

    def __init__(self, frame_bytes_max: int = FRAME_BYTES_MAX_DEFAULT) -> None:
        assert frame_bytes_max > 0, frame_bytes_max
        self._buffer = bytearray()
        self._frame_bytes_max = frame_bytes_max

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data``; return every complete payload, in order."""
        buffer = self._buffer
        buffer += data
        frames = []
        offset = 0
        size = len(buffer)
        while size - offset >= LENGTH_SIZE:
            (length,) = LENGTH.unpack_from(buffer, offset)
            if length > self._frame_bytes_max:
                raise FrameTooLarge(length, self._frame_bytes_max)
            end = offset + LENGTH_SIZE + length
            if end > size:
                break
            frames.append(bytes(buffer[offset + LENGTH_SIZE : end]))
            offset = end
        if offset:
            del buffer[:offset]
        return frames

    def buffered_bytes(self) -> int:
        return len(self._buffer)
