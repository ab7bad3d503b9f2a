"""The Raft log as the core sees it: stable entries in Storage plus an
unstable tail (entries and maybe a snapshot) not yet persisted.

Follows etcd-io/raft log.go and log_unstable.go.  ``committed`` and
``applied`` live here too; invariant: applied <= committed <= last_index.
"""
from __future__ import annotations

from typing import Optional, Sequence

from consensus.errors import Compacted, InvariantViolation, Unavailable
from consensus.storage import MemoryStorage, Storage, limit_size, trim_to_size
from consensus.types import Entry, Snapshot


class RaftLog:
    __slots__ = (
        "storage", "memory_storage", "unstable_entries", "unstable_offset", "unstable_snapshot", "committed", "applied",
    )

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        # The same object when it is a MemoryStorage (the simulator's and the
        # durable server's): the compiled core types this field, so its reads
        # below become C calls instead of Python method calls.  None for any
        # other Storage implementation, which is read through ``storage``.
        self.memory_storage: Optional[MemoryStorage] = storage if isinstance(storage, MemoryStorage) else None
        first = storage.first_index()
        last = storage.last_index()
        self.unstable_entries: list[Entry] = []
        self.unstable_offset = last + 1  # index of unstable_entries[0]
        self.unstable_snapshot: Optional[Snapshot] = None
        # Everything up to the compaction point is committed and applied.
        self.committed = first - 1
        self.applied = first - 1

    def describe(self) -> str:
        return (
            f"log(first={self.first_index()} last={self.last_index()} committed={self.committed} "
            f"applied={self.applied} unstable_offset={self.unstable_offset} "
            f"unstable={len(self.unstable_entries)} pending_snapshot="
            f"{self.unstable_snapshot.metadata.index if self.unstable_snapshot else None})"
        )

    # -- indexes and terms ---------------------------------------------------
    def first_index(self) -> int:
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.metadata.index + 1
        memory = self.memory_storage
        if memory is not None:
            return memory.first_index()
        return self.storage.first_index()

    def last_index(self) -> int:
        if self.unstable_entries:
            return self.unstable_offset + (len(self.unstable_entries) - 1)  # one int object op, not two
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.metadata.index
        memory = self.memory_storage
        if memory is not None:
            return memory.last_index()
        return self.storage.last_index()

    def persisted_last_index(self) -> int:
        """Last index whose entry (with its current term) is on stable storage."""
        if self.unstable_snapshot is not None:
            return 0  # the stable log is about to be replaced wholesale
        memory = self.memory_storage
        stored_last = memory.last_index() if memory is not None else self.storage.last_index()
        return min(self.unstable_offset - 1, stored_last)

    def term(self, index: int) -> int:
        """Term at ``index``; raises Compacted / Unavailable outside the log."""
        offset = self.unstable_offset
        if index >= offset:  # fast path: the unstable tail (the common case on a leader)
            position = index - offset
            if position < len(self.unstable_entries):
                entry = self.unstable_entries[position]  # typed Entry in consensus/_log_c.pxd
                return entry.term
        elif self.unstable_snapshot is None:
            # Second fast path: a stable index.  Storage answers whenever the
            # checks below would pass (same dummy, and index < offset <= last+1);
            # if it raises, fall through so the exceptions are exactly ours.
            memory = self.memory_storage
            try:
                return memory.term(index) if memory is not None else self.storage.term(index)
            except (Compacted, Unavailable):
                pass
        dummy = self.first_index() - 1
        if index < dummy:
            raise Compacted(f"index {index} is compacted (first index {dummy + 1})")
        last = self.last_index()
        if index > last:
            raise Unavailable(f"index {index} is beyond last index {last}")
        if index >= self.unstable_offset:
            return self.unstable_entries[index - self.unstable_offset].term
        snap = self.unstable_snapshot
        if snap is not None and index == snap.metadata.index:
            return snap.metadata.term
        return self.storage.term(index)

    def term_or_zero(self, index: int) -> int:
        try:
            return self.term(index)
        except (Compacted, Unavailable):
            return 0

    def last_term(self) -> int:
        return self.term(self.last_index())

    def match_term(self, index: int, term: int) -> bool:
        try:
            return self.term(index) == term
        except (Compacted, Unavailable):
            return False

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Raft paper 5.4.1: is a candidate's log at least as up to date as ours?"""
        our_term = self.last_term()
        return last_term > our_term or (last_term == our_term and last_index >= self.last_index())

    # -- appending -----------------------------------------------------------
    def find_conflict(self, entries: Sequence[Entry]) -> int:
        """Index of the first entry that is new or conflicts with ours, else 0."""
        if not entries:
            return 0  # a heartbeat-like append: no last_index() to compute
        last = self.last_index()
        for entry in entries:
            if entry.index > last:
                return entry.index  # new: match_term would catch Unavailable
            if not self.match_term(entry.index, entry.term):
                return entry.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """Largest (i, t) with i <= index and log term t <= term (etcd
        findConflictByTerm): the fast-backtracking hint of Raft thesis 5.3."""
        index = min(index, self.last_index())
        while index > 0:
            try:
                found = self.term(index)
            except (Compacted, Unavailable):
                return index, 0
            if found <= term:
                return index, found
            index -= 1
        return 0, 0

    def maybe_append(self, index: int, log_term: int, committed: int, entries: Sequence[Entry]) -> tuple[int, bool]:
        """Follower side of AppendEntries (paper figure 2, receiver steps 2-5)."""
        if not self.match_term(index, log_term):
            return 0, False
        last_new = index + len(entries)
        conflict = self.find_conflict(entries)
        if conflict:
            if conflict <= self.committed:
                raise InvariantViolation(
                    f"entry {conflict} conflicts with a committed entry; {self.describe()}"
                )
            self.append(entries[conflict - index - 1 :])
        self.commit_to(min(committed, last_new))
        return last_new, True

    def append(self, entries: Sequence[Entry]) -> int:
        if not entries:
            return self.last_index()
        first_new = entries[0].index
        if first_new - 1 < self.committed:
            raise InvariantViolation(f"append at {first_new} would overwrite committed entries; {self.describe()}")
        offset = self.unstable_offset
        held = len(self.unstable_entries)
        if first_new == offset + held:
            self.unstable_entries.extend(entries)
        elif first_new <= offset:
            # Replaces the whole unstable tail and shadows stale stable entries.
            self.unstable_offset = first_new
            self.unstable_entries = list(entries)
        else:
            del self.unstable_entries[first_new - offset :]
            self.unstable_entries.extend(entries)
        return self.last_index()

    # -- reading -------------------------------------------------------------
    def slice(self, lo: int, hi: int, max_size_bytes: Optional[int] = None) -> list[Entry]:
        """Entries [lo, hi) from storage and the unstable tail."""
        if lo > hi:
            raise InvariantViolation(f"invalid slice {lo} > {hi}")
        first = self.first_index()
        if lo < first:
            raise Compacted(f"entries from {lo} are compacted (first index {first})")
        if hi > self.last_index() + 1:
            raise Unavailable(f"slice up to {hi - 1} beyond last index {self.last_index()}")
        if lo == hi:
            return []
        offset = self.unstable_offset
        if lo >= offset:
            # Only the unstable tail (a leader's appends): one fresh list.
            return trim_to_size(self.unstable_entries[lo - offset : hi - offset], max_size_bytes)
        memory = self.memory_storage
        if memory is not None:
            # A fresh list, already within the size limit.
            out = memory.entries(lo, min(hi, offset), max_size_bytes)
            if hi <= offset or len(out) < offset - lo:
                return out  # all from storage, or its size limit was hit
            out.extend(self.unstable_entries[: hi - offset])
            return trim_to_size(out, max_size_bytes)
        out = self.storage.entries(lo, min(hi, offset), max_size_bytes)
        if len(out) < min(hi, offset) - lo:
            return out  # size limit hit inside storage
        if hi > offset:
            out.extend(self.unstable_entries[: hi - offset])
        return limit_size(out, max_size_bytes)

    def entries_from(self, index: int, max_size_bytes: Optional[int] = None) -> list[Entry]:
        last = self.last_index()
        if index > last:
            return []
        return self.slice(index, last + 1, max_size_bytes)

    def snapshot(self) -> Snapshot:
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot
        return self.storage.snapshot()

    def has_pending_snapshot(self) -> bool:
        return self.unstable_snapshot is not None

    def has_next_committed_entries(self) -> bool:
        if self.committed <= self.applied or self.unstable_snapshot is not None:
            return False
        return self.committed > max(self.applied, self.first_index() - 1)

    def next_committed_entries(self, max_size_bytes: Optional[int] = None) -> list[Entry]:
        if self.committed <= self.applied or self.unstable_snapshot is not None:
            return []  # the common case, without first_index()
        lo = max(self.applied + 1, self.first_index())
        if self.committed + 1 <= lo:
            return []
        return self.slice(lo, self.committed + 1, max_size_bytes)

    # -- moving the marks ----------------------------------------------------
    def commit_to(self, index: int) -> None:
        if index <= self.committed:
            return  # commit never decreases
        if index > self.last_index():
            raise InvariantViolation(f"commit to {index} is beyond the last index; {self.describe()}")
        self.committed = index

    def maybe_commit(self, index: int, term: int) -> bool:
        """Advance commit to ``index`` only if that entry is of ``term`` (the
        leader's current term): paper figure 8 / section 5.4.2."""
        if index > self.committed and self.term_or_zero(index) == term:
            self.commit_to(index)
            return True
        return False

    def applied_to(self, index: int) -> None:
        if index == 0:
            return
        if index > self.committed or index < self.applied:
            raise InvariantViolation(f"applied({index}) out of range; {self.describe()}")
        self.applied = index

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to ``index`` (of ``term``) are persisted: drop them from
        the unstable tail unless they were replaced meanwhile."""
        entries = self.unstable_entries
        position = index - self.unstable_offset
        if position < 0 or position >= len(entries):
            return
        entry = entries[position]
        if entry.term != term:
            return
        if position + 1 == len(entries):
            self.unstable_entries = []  # the whole tail (the common case): no slice to delete
        else:
            del entries[: position + 1]
        self.unstable_offset = index + 1

    def stable_snapshot_to(self, index: int) -> None:
        if self.unstable_snapshot is not None and self.unstable_snapshot.metadata.index == index:
            self.unstable_snapshot = None

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the log by ``snapshot`` (to be persisted and installed)."""
        self.committed = snapshot.metadata.index
        self.unstable_offset = snapshot.metadata.index + 1
        self.unstable_entries = []
        self.unstable_snapshot = snapshot


# >>> compiled twin: the build cuts this block (consensus/_build_core_c.py)
from consensus._select_c import swap_in  # noqa: E402

swap_in(globals(), "log")
# <<< compiled twin
