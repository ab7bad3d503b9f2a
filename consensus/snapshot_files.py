"""Snapshot files, written atomically: temporary file, fsync, rename, fsync dir.

A file ``snap-<term>-<index>.snap`` holds one framed record (the WAL framing:
length, crc32, type) whose payload is msgpack
``[index, term, voters, learners, data]``.  A crash at any point leaves either
the old set of files or the new complete file (plus maybe a ``.tmp`` that
:func:`load_newest` deletes); a file that fails its checksum raises
:class:`SnapshotCorruptError` naming it (it was complete when renamed, so the
damage happened on disk and must not be ignored silently).
"""
from __future__ import annotations

import os

import msgpack

from consensus.types import ConfState, Snapshot, SnapshotMetadata
from consensus.wal import HEADER_SIZE, RecordType, WalError, _parse_at, encode_record, fsync_directory

SNAPSHOT_SUFFIX = ".snap"
SNAPSHOTS_KEPT = 2


class SnapshotCorruptError(WalError):
    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"corrupt snapshot file {path}: {reason}")


def snapshot_name(term: int, index: int) -> str:
    return f"snap-{term:016d}-{index:016d}{SNAPSHOT_SUFFIX}"


def encode_snapshot(snapshot: Snapshot) -> bytes:
    meta = snapshot.metadata
    payload = msgpack.packb(
        [meta.index, meta.term, list(meta.conf_state.voters), list(meta.conf_state.learners), snapshot.data],
        use_bin_type=True,
    )
    return encode_record(RecordType.SNAPSHOT, payload)


def decode_snapshot(data: bytes, path: str = "<memory>") -> Snapshot:
    record_type, end, reason = _parse_at(data, 0)
    if reason is not None or record_type != RecordType.SNAPSHOT or end != len(data):
        raise SnapshotCorruptError(path, reason or "not exactly one snapshot record")
    try:
        index, term, voters, learners, payload = msgpack.unpackb(data[HEADER_SIZE:end], raw=False)
        conf = ConfState(voters=tuple(voters), learners=tuple(learners))
        return Snapshot(SnapshotMetadata(index, term, conf), bytes(payload))
    except Exception as error:
        raise SnapshotCorruptError(path, f"undecodable payload: {error}") from error


def write_snapshot(directory: str, snapshot: Snapshot, fsync: bool = True) -> str:
    """Write ``snapshot`` atomically; returns its path.  Keeps the newest
    SNAPSHOTS_KEPT files and deletes older ones."""
    os.makedirs(directory, exist_ok=True)
    meta = snapshot.metadata
    path = os.path.join(directory, snapshot_name(meta.term, meta.index))
    temporary = path + ".tmp"
    data = encode_snapshot(snapshot)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    if fsync:
        fsync_directory(directory)
    for old in list_snapshots(directory)[:-SNAPSHOTS_KEPT]:
        os.unlink(old[2])
    return path


def list_snapshots(directory: str) -> list[tuple[int, int, str]]:
    """(index, term, path) of every complete snapshot file, oldest first."""
    found = []
    if not os.path.isdir(directory):
        return found
    for name in os.listdir(directory):
        if not (name.startswith("snap-") and name.endswith(SNAPSHOT_SUFFIX)):
            continue
        parts = name[len("snap-") : -len(SNAPSHOT_SUFFIX)].split("-")
        if len(parts) == 2 and all(part.isdigit() for part in parts):
            found.append((int(parts[1]), int(parts[0]), os.path.join(directory, name)))
    found.sort()
    return found


def load_newest(directory: str) -> Snapshot | None:
    """The newest snapshot, or None.  Removes leftover temporary files."""
    if not os.path.isdir(directory):
        return None
    for name in os.listdir(directory):
        if name.endswith(SNAPSHOT_SUFFIX + ".tmp"):
            os.unlink(os.path.join(directory, name))
    snapshots = list_snapshots(directory)
    if not snapshots:
        return None
    index, term, path = snapshots[-1]
    with open(path, "rb") as handle:
        snapshot = decode_snapshot(handle.read(), path)
    if snapshot.metadata.index != index or snapshot.metadata.term != term:
        raise SnapshotCorruptError(path, f"contents say index {snapshot.metadata.index} term {snapshot.metadata.term}")
    return snapshot
