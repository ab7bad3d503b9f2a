"""Simulated stable storage with explicit fsync points.

``durable`` is what survives a crash (a MemoryStorage the Raft core reads).
Writes of a Ready are first *pending*; the simulator completes them with
``sync()`` after the node's fsync latency.  A crash either loses pending
writes (``lose_unsynced=True``: the power-cut case) or lets them land (the
OS flushed its page cache) - both are legal for Raft, because nothing that
depends on them (``messages_after_persist``) was sent before the sync.
"""
from __future__ import annotations

from typing import Optional

from consensus.storage import MemoryStorage
from consensus.types import ConfState, Entry, HardState, Snapshot


class SimDisk:
    __slots__ = ("durable", "pending", "syncs", "writes_lost")

    def __init__(self, conf_state: Optional[ConfState] = None) -> None:
        self.durable = MemoryStorage(conf_state)
        # (snapshot, entries, hard_state) writes not yet fsynced, in order.
        self.pending: list[tuple[Optional[Snapshot], tuple[Entry, ...], Optional[HardState]]] = []
        self.syncs = 0
        self.writes_lost = 0

    def write(self, snapshot: Optional[Snapshot], entries: tuple[Entry, ...], hard_state: Optional[HardState]) -> None:
        self.pending.append((snapshot, entries, hard_state))

    def write_lazy(self, hard_state: HardState) -> None:
        """A commit-only hard state change: no fsync is awaited.  It lands
        behind any pending writes (so it never runs ahead of them)."""
        if self.pending:
            self.pending.append((None, (), hard_state))
        else:
            self.durable.set_hard_state(hard_state)

    def sync(self) -> None:
        """fsync: every pending write becomes durable, in order."""
        durable = self.durable
        for snapshot, entries, hard_state in self.pending:
            if snapshot is not None:
                durable.apply_snapshot(snapshot)
            if entries:
                durable.append(entries)
            if hard_state is not None:
                durable.set_hard_state(hard_state)
        self.pending.clear()
        self.syncs += 1

    def crash(self, lose_unsynced: bool) -> None:
        if lose_unsynced:
            self.writes_lost += len(self.pending)
            self.pending.clear()
        else:
            self.sync()


# >>> compiled twin: the build cuts this block (consensus/_build_core_c.py)
from chaos.sim._select_c import swap_in  # noqa: E402

swap_in(globals(), "disk")
# <<< compiled twin
