"""Write-ahead log: numbered segment files of framed, checksummed records.

Layout (one directory)::

    0000000000000001.wal   segment 1
    0000000000000002.wal   segment 2 ...

Each record is framed as ``length u32 | crc32 u32 | type u8 | payload`` (little
endian); ``length`` counts the payload, and the crc32 (zlib) covers the length,
the type and the payload, so a flipped length is caught too.  A segment is
rotated once it reaches ``segment_size_bytes``; the writer then starts the new
segment with nothing (the caller re-writes its hard state, see
DurableStorage), so every segment but the newest is complete and fsynced.

Durability (Raft paper figure 2, etcd's wal package): :meth:`Wal.append` only
buffers; :meth:`Wal.sync` writes the buffer and fsyncs once, so one fsync
covers every record appended since the last one (group commit).  ``fsync``
may be turned off for benchmarks; then a machine crash (not a process crash)
may lose acknowledged data.

Recovery (:func:`read_segments`): records are read in order.  A record that
fails to parse in the newest segment, with no valid record after it, is a torn
write of the last append: the file is truncated to the last good record (it
was never fsynced, hence never acknowledged - except a bit flip that hits the
very last record, which cannot be told apart from a torn write; etcd makes the
same choice).  A bad record with a valid record after it, or any bad record in
an older segment, raises :class:`WalCorruptError` naming the file and the
offset: acknowledged data would be lost, so the server must not start.
"""
from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

HEADER = struct.Struct("<IIB")
HEADER_SIZE = HEADER.size  # 9 bytes
_LENGTH = struct.Struct("<I")
RECORD_PAYLOAD_BYTES_MAX = 256 * 1024 * 1024
SEGMENT_SIZE_BYTES_DEFAULT = 64 * 1024 * 1024
SEGMENT_SUFFIX = ".wal"


class RecordType(IntEnum):
    ENTRIES = 1  # msgpack list of [term, index, type, data]
    HARD_STATE = 2  # msgpack [term, vote, commit]
    SNAPSHOT = 3  # msgpack [index, term]: a snapshot file up to index is durable
    METADATA = 4  # free-form msgpack (e.g. node id, cluster id)


_RECORD_TYPES = frozenset(int(t) for t in RecordType)


class WalError(Exception):
    """Base of the write-ahead log's expected errors."""


class WalCorruptError(WalError):
    """A record that is not the torn tail fails its checks: acknowledged data
    may be lost, so the log refuses to open.  Names the file and the offset."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        super().__init__(f"corrupt write-ahead log record in {path} at offset {offset}: {reason}")


@dataclass(frozen=True, slots=True)
class Record:
    type: RecordType
    payload: bytes


def encode_record(record_type: int, payload: bytes) -> bytes:
    assert record_type in _RECORD_TYPES, record_type
    assert len(payload) <= RECORD_PAYLOAD_BYTES_MAX, len(payload)
    length = len(payload)
    crc = zlib.crc32(payload, zlib.crc32(bytes((record_type,)), zlib.crc32(_LENGTH.pack(length))))
    return HEADER.pack(length, crc, record_type) + payload


def _parse_at(data: bytes | memoryview, offset: int) -> tuple[int, int, str | None]:
    """Parse the record at ``offset``: (type, end offset, None) or (0, 0, reason)."""
    if len(data) - offset < HEADER_SIZE:
        return 0, 0, "truncated header"
    length, crc, record_type = HEADER.unpack_from(data, offset)
    if record_type not in _RECORD_TYPES:
        return 0, 0, f"unknown record type {record_type}"
    if length > RECORD_PAYLOAD_BYTES_MAX:
        return 0, 0, f"record length {length} above the maximum"
    end = offset + HEADER_SIZE + length
    if end > len(data):
        return 0, 0, f"truncated payload ({length} bytes announced, {len(data) - offset - HEADER_SIZE} present)"
    payload = data[offset + HEADER_SIZE : end]
    actual = zlib.crc32(payload, zlib.crc32(bytes((record_type,)), zlib.crc32(_LENGTH.pack(length))))
    if actual != crc:
        return 0, 0, f"checksum mismatch (stored {crc:#010x}, computed {actual:#010x})"
    return record_type, end, None


def _valid_record_after(data: bytes, offset: int) -> int | None:
    """Offset of some valid record starting after ``offset``, or None.  Used
    only on a failure, to tell a torn tail from corruption in the middle."""
    position = offset + 1
    while position + HEADER_SIZE <= len(data):
        record_type, _end, reason = _parse_at(data, position)
        if reason is None and record_type:
            return position
        position += 1
    return None


def segment_name(sequence: int) -> str:
    return f"{sequence:016d}{SEGMENT_SUFFIX}"


def list_segments(directory: str) -> list[tuple[int, str]]:
    """(sequence, path) of every segment, oldest first."""
    found = []
    for name in os.listdir(directory):
        if name.endswith(SEGMENT_SUFFIX) and name[: -len(SEGMENT_SUFFIX)].isdigit():
            found.append((int(name[: -len(SEGMENT_SUFFIX)]), os.path.join(directory, name)))
    found.sort()
    return found


def read_segments(directory: str, repair: bool = True) -> Iterator[tuple[int, Record]]:
    """Yield (segment sequence, record) for every record, oldest first.

    A torn tail of the newest segment is cut off (the file is truncated when
    ``repair``); any other bad record raises WalCorruptError.
    """
    segments = list_segments(directory)
    for position, (sequence, path) in enumerate(segments):
        newest = position == len(segments) - 1
        with open(path, "rb") as handle:
            data = handle.read()
        offset = 0
        while offset < len(data):
            record_type, end, reason = _parse_at(data, offset)
            if reason is not None:
                later = _valid_record_after(data, offset)
                if not newest or later is not None:
                    where = f"; a valid record follows at offset {later}" if later is not None else " in a sealed segment"
                    raise WalCorruptError(path, offset, reason + where)
                if repair:
                    with open(path, "r+b") as handle:
                        handle.truncate(offset)
                        handle.flush()
                        os.fsync(handle.fileno())
                break
            yield sequence, Record(RecordType(record_type), bytes(data[offset + HEADER_SIZE : end]))
            offset = end


def fsync_directory(directory: str) -> None:
    """Make a create / rename / unlink in ``directory`` durable (POSIX needs
    an fsync of the directory itself for that)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Wal:
    """The append side of the log.  Open it after reading the records with
    :func:`read_segments` (which repairs a torn tail)."""

    def __init__(
        self,
        directory: str,
        segment_size_bytes: int = SEGMENT_SIZE_BYTES_DEFAULT,
        fsync: bool = True,
        segment_entry_index_max: dict[int, int] | None = None,
    ) -> None:
        """``segment_entry_index_max``: per existing segment, the highest entry
        index it holds (computed while replaying); segments missing from it are
        never released."""
        if segment_size_bytes < 4096:
            raise ValueError(f"segment_size_bytes must be at least 4096, got {segment_size_bytes}")
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.segment_size_bytes = segment_size_bytes
        self.fsync_enabled = fsync
        self._buffer: list[bytes] = []
        self._buffered_bytes = 0
        self.fsync_count = 0
        segments = list_segments(directory)
        if segments:
            self._sequence, path = segments[-1]
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            self._segment_bytes = os.fstat(self._fd).st_size
        else:
            self._sequence = 0
            self._fd = -1
            self._segment_bytes = 0
            self._open_next_segment()
        # Per segment: the highest entry index written to it (for release_before).
        known = segment_entry_index_max or {}
        self.segment_entry_index_max: dict[int, int] = {seq: known.get(seq, 1 << 62) for seq, _ in segments}
        self.segment_entry_index_max.setdefault(self._sequence, 0)
        self.rotations = 0

    @property
    def sequence(self) -> int:
        return self._sequence

    def _open_next_segment(self) -> None:
        self._sequence += 1
        path = os.path.join(self.directory, segment_name(self._sequence))
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o644)
        self._segment_bytes = 0
        if self.fsync_enabled:
            fsync_directory(self.directory)

    def append(self, record_type: RecordType, payload: bytes, entry_index_max: int = 0) -> None:
        """Buffer one record; nothing is durable before :meth:`sync`."""
        if len(payload) > RECORD_PAYLOAD_BYTES_MAX:
            raise WalError(f"record of {len(payload)} bytes above the maximum {RECORD_PAYLOAD_BYTES_MAX}")
        frame = encode_record(record_type, payload)
        self._buffer.append(frame)
        self._buffered_bytes += len(frame)
        if entry_index_max:
            # Buffered records go to the current segment at the next sync.
            current = self.segment_entry_index_max.get(self._sequence, 0)
            if entry_index_max > current:
                self.segment_entry_index_max[self._sequence] = entry_index_max

    def pending_bytes(self) -> int:
        return self._buffered_bytes

    def sync(self, fsync: bool = True) -> bool:
        """Write every buffered record and fsync once (group commit); with
        ``fsync=False`` only write (the record survives a process crash, not
        a machine crash).  Returns True when the segment is now full and the
        caller should :meth:`rotate`."""
        if self._buffer:
            data = b"".join(self._buffer)
            self._buffer.clear()
            self._buffered_bytes = 0
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            self._segment_bytes += len(data)
            if self.fsync_enabled and fsync:
                os.fdatasync(self._fd)
                self.fsync_count += 1
        return self._segment_bytes >= self.segment_size_bytes

    def rotate(self) -> None:
        """Seal the current segment (fsynced) and start the next one.  The
        caller must then append its current hard state again, because older
        segments may be released."""
        assert not self._buffer, "sync before rotate"
        if self.fsync_enabled:
            os.fsync(self._fd)
        os.close(self._fd)
        self._open_next_segment()
        self.segment_entry_index_max[self._sequence] = 0
        self.rotations += 1

    def release_before(self, snapshot_index: int) -> list[str]:
        """Delete the oldest sealed segments whose entries are all at or below
        ``snapshot_index`` (a snapshot up to there must already be durable).
        Never the current segment.  Returns the removed paths."""
        removed = []
        for sequence, path in list_segments(self.directory):
            if sequence >= self._sequence:
                break
            if self.segment_entry_index_max.get(sequence, 1 << 62) > snapshot_index:
                break
            os.unlink(path)
            self.segment_entry_index_max.pop(sequence, None)
            removed.append(path)
        if removed and self.fsync_enabled:
            fsync_directory(self.directory)
        return removed

    def close(self) -> None:
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1
