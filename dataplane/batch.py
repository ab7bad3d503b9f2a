"""A batch of packets in one contiguous buffer, modelled on DPDK's mbuf.

The buffer is ``capacity`` fixed-size slots.  Packet ``i`` lives in slot ``i``
at ``offsets[i]`` (an absolute index into ``buffer``) for ``lengths[i]``
bytes.  A fresh packet starts ``headroom`` bytes into its slot, so that
encapsulation can prepend outer headers in place (move the offset back, write
the header) and decapsulation can strip them (move the offset forward) without
copying the payload.  Kernels take ``buffer``, ``offsets`` and ``lengths`` as
typed memoryviews and work on the first ``count`` packets.

Bounds: ``capacity`` and ``slot_size`` are fixed at creation; a frame that
does not fit its slot after the headroom is refused with ``BatchError`` when
the batch is filled, never truncated.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

DEFAULT_HEADROOM_BYTES = 128
DEFAULT_SLOT_BYTES = 2048
SLOT_ALIGN_BYTES = 64  # one cache line: slots never share a line
MAX_SLOT_BYTES = 65536 + DEFAULT_HEADROOM_BYTES  # above any IPv4 datagram plus headroom


class BatchError(ValueError):
    """A batch was built or filled with arguments that cannot work."""


def _round_up(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


class PacketBatch:
    """Fixed-size slots in one numpy uint8 buffer, plus offset and length arrays."""

    __slots__ = ("buffer", "offsets", "lengths", "count", "capacity", "slot_size", "headroom")

    def __init__(
        self,
        capacity: int,
        slot_size: int = DEFAULT_SLOT_BYTES,
        headroom: int = DEFAULT_HEADROOM_BYTES,
    ) -> None:
        if not 1 <= capacity <= 1 << 20:
            raise BatchError(f"capacity must be 1..{1 << 20} packets, got {capacity}")
        if not 0 <= headroom < slot_size <= MAX_SLOT_BYTES:
            raise BatchError(
                f"need 0 <= headroom < slot_size <= {MAX_SLOT_BYTES}, "
                f"got headroom={headroom} slot_size={slot_size}"
            )
        if capacity * slot_size >= 1 << 32:
            raise BatchError("batch larger than 4 GiB: offsets are 32-bit")
        self.capacity = capacity
        self.slot_size = slot_size
        self.headroom = headroom
        self.buffer = np.zeros(capacity * slot_size, dtype=np.uint8)
        self.offsets = np.zeros(capacity, dtype=np.uint32)
        self.lengths = np.zeros(capacity, dtype=np.uint32)
        self.count = 0
        self.reset()

    # -- filling -----------------------------------------------------------------

    @classmethod
    def from_frames(
        cls,
        frames: Sequence[bytes | bytearray | memoryview],
        slot_size: int | None = None,
        headroom: int = DEFAULT_HEADROOM_BYTES,
        capacity: int | None = None,
    ) -> PacketBatch:
        """A batch holding ``frames``; the slot size fits the largest when not given."""
        if capacity is None:
            capacity = max(1, len(frames))
        if slot_size is None:
            largest = max((len(frame) for frame in frames), default=0)
            slot_size = max(DEFAULT_SLOT_BYTES, _round_up(headroom + largest + 1, SLOT_ALIGN_BYTES))
        batch = cls(capacity, slot_size=slot_size, headroom=headroom)
        batch.extend(frames)
        return batch

    def reset(self) -> None:
        """Empty the batch: every slot's offset back to its headroom, lengths zero."""
        self.offsets[:] = np.arange(self.capacity, dtype=np.uint32) * self.slot_size + self.headroom
        self.lengths[:] = 0
        self.count = 0

    def append(self, frame: bytes | bytearray | memoryview) -> int:
        """Copy ``frame`` into the next slot after its headroom; return its index."""
        if self.count >= self.capacity:
            raise BatchError(f"batch is full ({self.capacity} packets)")
        size = len(frame)
        room = self.slot_size - self.headroom
        if size > room:
            raise BatchError(f"frame of {size} bytes does not fit a slot ({room} bytes after headroom)")
        index = self.count
        start = index * self.slot_size + self.headroom
        self.buffer[start : start + size] = np.frombuffer(frame, dtype=np.uint8)
        self.offsets[index] = start
        self.lengths[index] = size
        self.count = index + 1
        return index

    def extend(self, frames: Iterable[bytes | bytearray | memoryview]) -> None:
        for frame in frames:
            self.append(frame)

    # -- reading -----------------------------------------------------------------

    def frame(self, index: int) -> bytes:
        """A copy of packet ``index`` as it now stands (after any encap or decap)."""
        if not 0 <= index < self.count:
            raise IndexError(f"packet {index} is outside the batch of {self.count}")
        start = int(self.offsets[index])
        return self.buffer[start : start + int(self.lengths[index])].tobytes()

    def frames(self) -> list[bytes]:
        return [self.frame(index) for index in range(self.count)]

    def slot_bounds(self, index: int) -> tuple[int, int]:
        """Absolute [start, end) of slot ``index``: a kernel never writes outside it."""
        start = index * self.slot_size
        return start, start + self.slot_size

    def copy(self) -> PacketBatch:
        """A deep copy, for comparing two kernels on the same input."""
        twin = PacketBatch(self.capacity, slot_size=self.slot_size, headroom=self.headroom)
        twin.buffer[:] = self.buffer
        twin.offsets[:] = self.offsets
        twin.lengths[:] = self.lengths
        twin.count = self.count
        return twin

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return (
            f"PacketBatch(count={self.count}, capacity={self.capacity}, "
            f"slot_size={self.slot_size}, headroom={self.headroom})"
        )
