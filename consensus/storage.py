"""The Storage interface the core reads its stable log from, and MemoryStorage.

Shape of etcd-io/raft storage.go with snake_case names.  The core only READS
storage; the driver WRITES it while handling a Ready (append the entries,
set the hard state, apply a snapshot), then calls ``RaftNode.advance``.
Index conventions: storage holds a dummy entry at ``first_index() - 1``
(the snapshot's index/term, or 0/0), so ``term(first_index() - 1)`` works.
"""
from __future__ import annotations

from typing import Optional, Protocol, Sequence

from consensus.errors import Compacted, InvariantViolation, SnapshotTemporarilyUnavailable, Unavailable
from consensus.types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata

__all__ = ["Storage", "MemoryStorage", "limit_size", "trim_to_size", "Compacted", "Unavailable", "SnapshotTemporarilyUnavailable"]


class Storage(Protocol):
    """Read side of stable storage, as the core uses it."""

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The persisted hard state and the membership at the last snapshot
        (or the initial membership of a fresh cluster)."""
        ...

    def entries(self, lo: int, hi: int, max_size_bytes: Optional[int] = None) -> list[Entry]:
        """Entries [lo, hi).  Raises Compacted if lo <= the compaction point,
        Unavailable if hi > last_index()+1.  With ``max_size_bytes``, returns
        a prefix whose total Entry.size_bytes() fits, but at least one entry."""
        ...

    def term(self, index: int) -> int:
        """Term of the entry at ``index``, for first_index()-1 <= index <=
        last_index().  Raises Compacted below, Unavailable above."""
        ...

    def first_index(self) -> int:
        """Index of the first available entry (snapshot index + 1)."""
        ...

    def last_index(self) -> int:
        """Index of the last stored entry (snapshot index if none)."""
        ...

    def snapshot(self) -> Snapshot:
        """The most recent snapshot; may raise SnapshotTemporarilyUnavailable."""
        ...


def limit_size(entries: Sequence[Entry], max_size_bytes: Optional[int]) -> list[Entry]:
    """The longest prefix of ``entries`` within ``max_size_bytes`` (at least one)."""
    if max_size_bytes is None or not entries:
        return list(entries)
    count = _count_within(entries, max_size_bytes)
    return list(entries) if count == len(entries) else list(entries[:count])


def trim_to_size(entries: list[Entry], max_size_bytes: Optional[int]) -> list[Entry]:
    """``limit_size`` for a list the caller owns: cut in place and returned
    (the log's reads build a fresh list anyway; no second copy)."""
    if max_size_bytes is not None and len(entries) > 1:
        count = _count_within(entries, max_size_bytes)
        if count < len(entries):
            del entries[count:]
    return entries


def _count_within(entries: Sequence[Entry], max_size_bytes: int) -> int:
    """How many leading entries fit in ``max_size_bytes`` (at least one)."""
    # Entry.size_bytes() inlined (16 + len(data)): this runs for every append sent.
    total = 0
    count = 0
    for entry in entries:
        total += 16 + len(entry.data)
        if count and total > max_size_bytes:
            break
        count += 1
    return count


class MemoryStorage:
    """Storage kept in memory; also the write side used by tests and the simulator.

    ``_entries[0]`` is the dummy entry at the compaction point (etcd's
    MemoryStorage layout), so position ``i`` holds index ``offset + i``.
    """

    __slots__ = ("_hard_state", "_snapshot", "_entries")

    def __init__(self, conf_state: Optional[ConfState] = None) -> None:
        self._hard_state = HardState()
        self._snapshot = Snapshot(SnapshotMetadata(0, 0, conf_state or ConfState()), b"")
        self._entries: list[Entry] = [Entry(0, 0)]

    # -- read side (Storage) ------------------------------------------------
    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard_state, self._snapshot.metadata.conf_state

    def _offset(self) -> int:
        return self._entries[0].index

    # The reads below name the dummy entry (and the entry found) in a local:
    # typed Entry in consensus/_storage_c.pxd, so their fields are slot reads.
    def first_index(self) -> int:
        dummy = self._entries[0]
        return dummy.index + 1

    def last_index(self) -> int:
        dummy = self._entries[0]
        return dummy.index + (len(self._entries) - 1)

    def term(self, index: int) -> int:
        entries = self._entries
        dummy = entries[0]
        offset = dummy.index
        if index < offset:
            raise Compacted(f"index {index} is compacted (first available {offset + 1})")
        position = index - offset
        if position >= len(entries):
            raise Unavailable(f"index {index} is beyond the last index {self.last_index()}")
        found = entries[position]
        return found.term

    def entries(self, lo: int, hi: int, max_size_bytes: Optional[int] = None) -> list[Entry]:
        dummy = self._entries[0]
        offset = dummy.index
        if lo <= offset:
            raise Compacted(f"entries from {lo} are compacted (first available {offset + 1})")
        if hi > self.last_index() + 1:
            raise Unavailable(f"entries up to {hi - 1} requested, last index {self.last_index()}")
        if lo >= hi:
            return []
        return trim_to_size(self._entries[lo - offset : hi - offset], max_size_bytes)

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # -- write side ----------------------------------------------------------
    def set_hard_state(self, hard_state: HardState) -> None:
        self._hard_state = hard_state

    def hard_state(self) -> HardState:
        return self._hard_state

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Replace the whole log with ``snapshot`` (a follower installing one).
        A snapshot older than the current one is ignored."""
        if snapshot.metadata.index <= self._snapshot.metadata.index:
            return
        self._snapshot = snapshot
        self._entries = [Entry(snapshot.metadata.term, snapshot.metadata.index)]

    def create_snapshot(self, index: int, conf_state: Optional[ConfState], data: bytes) -> Snapshot:
        """Record an application snapshot of the state up to ``index`` (which
        must be stored); does not compact - call ``compact`` for that."""
        if index <= self._snapshot.metadata.index:
            return self._snapshot
        if index > self.last_index():
            raise InvariantViolation(f"snapshot index {index} is beyond last index {self.last_index()}")
        term = self.term(index)
        cs = conf_state if conf_state is not None else self._snapshot.metadata.conf_state
        self._snapshot = Snapshot(SnapshotMetadata(index, term, cs), bytes(data))
        return self._snapshot

    def compact(self, compact_index: int) -> None:
        """Discard entries before ``compact_index`` (which becomes the dummy)."""
        offset = self._entries[0].index
        if compact_index <= offset:
            return
        if compact_index > self.last_index():
            raise InvariantViolation(f"compact {compact_index} is beyond last index {self.last_index()}")
        position = compact_index - offset
        self._entries = [Entry(self._entries[position].term, compact_index)] + self._entries[position + 1 :]

    def append(self, entries: Sequence[Entry]) -> None:
        """Append entries, truncating any conflicting suffix (the first new
        entry's index may be anywhere in (first_index-1, last_index+1])."""
        if not entries:
            return
        first = self.first_index()
        last_new = entries[-1].index
        if last_new < first:
            return  # all already compacted
        if entries[0].index < first:
            entries = entries[first - entries[0].index :]
        offset = entries[0].index - self._entries[0].index
        if offset > len(self._entries):
            raise InvariantViolation(
                f"append leaves a gap: last index {self.last_index()}, new entries start at {entries[0].index}"
            )
        del self._entries[offset:]
        self._entries.extend(entries)

    def clone(self) -> "MemoryStorage":
        """An independent copy (the simulator keeps durable images this way)."""
        other = MemoryStorage.__new__(MemoryStorage)
        other._hard_state = self._hard_state
        other._snapshot = self._snapshot
        other._entries = list(self._entries)
        return other


# >>> compiled twin: the build cuts this block (consensus/_build_core_c.py)
from consensus._select_c import swap_in  # noqa: E402

swap_in(globals(), "storage")
# <<< compiled twin
