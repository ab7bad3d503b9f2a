"""Storage on disk: the write-ahead log plus snapshot files, read through memory.

``DurableStorage`` is a :class:`consensus.storage.MemoryStorage` (the core reads
the log from memory, fast) whose write side also goes to disk:

- :meth:`save` buffers a Ready's snapshot, entries and hard state as WAL records
  and updates memory; :meth:`sync` writes and fsyncs them with ONE fsync
  (group commit).  The driver sends ``Ready.messages_after_persist`` only after
  ``sync`` returned, which is what makes the hard state durable before any
  message that depends on it (Raft paper figure 2, "respond to RPCs only after
  updating stable storage").
- :meth:`create_snapshot` writes a snapshot file atomically and
  :meth:`compact` then drops memory and whole WAL segments below it.

Directory layout: ``<dir>/wal/*.wal`` and ``<dir>/snap/*.snap``.

Replay on open: the newest snapshot file, then every WAL record in order;
entries at or below the snapshot are skipped, an installed-snapshot marker
discards the entries logged before it (they were superseded by the leader's
snapshot), the last hard state wins.  Torn tails are cut, corruption in the
middle raises :class:`consensus.wal.WalCorruptError`.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Optional

import msgpack

from consensus.snapshot_files import SnapshotCorruptError, load_newest, write_snapshot
from consensus.storage import MemoryStorage
from consensus.types import ConfState, Entry, EntryType, HardState, Snapshot
from consensus.wal import SEGMENT_SIZE_BYTES_DEFAULT, RecordType, Wal, WalError, read_segments

_ENTRY_TYPES = (EntryType.NORMAL, EntryType.CONF_CHANGE)


def encode_entries(entries: Sequence[Entry]) -> bytes:
    flat: list = []
    for entry in entries:
        flat += (entry.term, entry.index, int(entry.type), entry.data)
    return msgpack.packb(flat, use_bin_type=True)


def decode_entries(payload: bytes) -> list[Entry]:
    flat = msgpack.unpackb(payload, raw=False)
    return [Entry(flat[i], flat[i + 1], _ENTRY_TYPES[flat[i + 2]], flat[i + 3]) for i in range(0, len(flat), 4)]


class SnapshotMissingError(WalError):
    def __init__(self, directory: str, index: int, newest: int) -> None:
        super().__init__(
            f"write-ahead log in {directory} refers to a snapshot at index {index}, "
            f"but the newest snapshot file is at index {newest}: snapshot files were lost"
        )


class DurableStorage(MemoryStorage):
    """MemoryStorage whose writes go to a write-ahead log first."""

    __slots__ = ("directory", "wal", "fsync_enabled", "snapshot_directory", "replayed_records")

    def __init__(self) -> None:  # use DurableStorage.open
        raise TypeError("use DurableStorage.open(directory, initial_conf_state)")

    @classmethod
    def open(
        cls,
        directory: str,
        initial_conf_state: Optional[ConfState] = None,
        fsync: bool = True,
        segment_size_bytes: int = SEGMENT_SIZE_BYTES_DEFAULT,
    ) -> "DurableStorage":
        """Open (or create) the storage in ``directory`` and replay it.
        ``initial_conf_state``: the membership of a cluster that has no
        snapshot yet (later changes come from conf-change entries)."""
        self = cls.__new__(cls)
        MemoryStorage.__init__(self, initial_conf_state)
        self.directory = directory
        self.fsync_enabled = fsync
        self.snapshot_directory = os.path.join(directory, "snap")
        wal_directory = os.path.join(directory, "wal")
        os.makedirs(wal_directory, exist_ok=True)
        snapshot = load_newest(self.snapshot_directory)
        if snapshot is not None:
            MemoryStorage.apply_snapshot(self, snapshot)
        base_index = self._snapshot.metadata.index
        segment_max: dict[int, int] = {}
        self.replayed_records = 0
        for sequence, record in read_segments(wal_directory):
            self.replayed_records += 1
            segment_max.setdefault(sequence, 0)
            if record.type == RecordType.ENTRIES:
                entries = decode_entries(record.payload)
                if entries:
                    segment_max[sequence] = max(segment_max[sequence], entries[-1].index)
                    self._replay_append(entries, wal_directory)
            elif record.type == RecordType.HARD_STATE:
                term, vote, commit = msgpack.unpackb(record.payload)
                self._hard_state = HardState(term, vote, commit)
            elif record.type == RecordType.SNAPSHOT:
                index, term, installed = msgpack.unpackb(record.payload)
                if index > base_index:
                    raise SnapshotMissingError(directory, index, base_index)
                if installed:
                    # Everything logged before the install was superseded.
                    del self._entries[1:]
        self.wal = Wal(wal_directory, segment_size_bytes, fsync, segment_max)
        if self._hard_state.commit < base_index and not self._hard_state.is_empty():
            # The commit index is written lazily (not fsynced), the snapshot
            # durably; a snapshot only covers committed entries, so its index
            # is a lower bound of the commit index.
            self._hard_state = HardState(self._hard_state.term, self._hard_state.vote, base_index)
        return self

    def _replay_append(self, entries: list[Entry], wal_directory: str) -> None:
        if entries[0].index > self.last_index() + 1:
            raise WalError(
                f"write-ahead log in {wal_directory} has a gap: entries resume at {entries[0].index} "
                f"after last index {self.last_index()}"
            )
        if entries[-1].index < self.first_index():
            # Every entry is covered by the snapshot, but when the record was
            # written it truncated the log from its first index on (Raft §5.3,
            # a conflicting suffix): entries logged before it above the
            # snapshot were gone from then on and must not come back.
            del self._entries[1:]
            return
        MemoryStorage.append(self, entries)

    # -- write side: buffered, then one fsync ------------------------------
    def save(self, hard_state: Optional[HardState], entries: Sequence[Entry], snapshot: Optional[Snapshot] = None) -> None:
        """Log a Ready's durable parts (snapshot first, then entries, then hard
        state) and update memory.  Durable only after :meth:`sync`."""
        if snapshot is not None and not snapshot.is_empty():
            self.apply_snapshot(snapshot)
        if entries:
            self.wal.append(RecordType.ENTRIES, encode_entries(entries), entries[-1].index)
            MemoryStorage.append(self, entries)
        if hard_state is not None:
            self._log_hard_state(hard_state)

    def _log_hard_state(self, hard_state: HardState) -> None:
        self.wal.append(RecordType.HARD_STATE, msgpack.packb((hard_state.term, hard_state.vote, hard_state.commit)))
        self._hard_state = hard_state

    def sync(self, fsync: bool = True) -> None:
        """Write and fsync everything saved since the last sync (group commit).
        ``fsync=False``: write only - for a Ready whose only durable change is
        the commit index (etcd MustSync is false then: commit may lag)."""
        if self.wal.sync(fsync):
            self.wal.rotate()
            # Older segments may be released later: the newest must hold the
            # current hard state on its own.
            self._log_hard_state(self._hard_state)
            self.wal.sync()

    # Overrides of MemoryStorage's write side, so that no write bypasses the log.
    def append(self, entries: Sequence[Entry]) -> None:
        self.save(None, entries)

    def set_hard_state(self, hard_state: HardState) -> None:
        self._log_hard_state(hard_state)

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Install a snapshot received from the leader: the file first (atomic,
        fsynced), then a WAL marker that supersedes the entries logged before."""
        if snapshot.metadata.index <= self._snapshot.metadata.index:
            return
        write_snapshot(self.snapshot_directory, snapshot, self.fsync_enabled)
        self.wal.append(RecordType.SNAPSHOT, msgpack.packb((snapshot.metadata.index, snapshot.metadata.term, True)))
        MemoryStorage.apply_snapshot(self, snapshot)

    def create_snapshot(self, index: int, conf_state: Optional[ConfState], data: bytes) -> Snapshot:
        """Record an application snapshot up to ``index`` durably (atomic file)."""
        previous = self._snapshot
        snapshot = MemoryStorage.create_snapshot(self, index, conf_state, data)
        if snapshot is not previous:
            write_snapshot(self.snapshot_directory, snapshot, self.fsync_enabled)
            self.wal.append(RecordType.SNAPSHOT, msgpack.packb((snapshot.metadata.index, snapshot.metadata.term, False)))
        return snapshot

    def compact(self, compact_index: int) -> None:
        """Drop entries before ``compact_index`` from memory, and the WAL
        segments wholly covered by the durable snapshot."""
        MemoryStorage.compact(self, min(compact_index, self._snapshot.metadata.index))
        self.sync()
        self.wal.release_before(self._snapshot.metadata.index)

    def close(self) -> None:
        self.wal.close()


__all__ = ["DurableStorage", "SnapshotMissingError", "SnapshotCorruptError", "encode_entries", "decode_entries"]
