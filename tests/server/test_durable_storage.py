"""DurableStorage against MemoryStorage: random writes, reopen, same state."""
from __future__ import annotations

import os
import tempfile

import pytest
from hypothesis import example, given, strategies as st

from consensus.durable_storage import DurableStorage
from consensus.snapshot_files import SnapshotCorruptError, list_snapshots
from consensus.storage import MemoryStorage
from consensus.types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata
from consensus.wal import WalCorruptError, list_segments

CONF = ConfState(voters=(1, 2, 3))

actions = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 6), st.integers(1, 5), st.binary(max_size=600)),
        st.tuples(st.just("hard"), st.integers(0, 3), st.integers(0, 3), st.integers(0, 40)),
        st.tuples(st.just("snapshot"), st.integers(0, 10), st.binary(max_size=20), st.none()),
        st.tuples(st.just("install"), st.integers(1, 20), st.binary(max_size=20), st.none()),
        st.tuples(st.just("reopen"), st.none(), st.none(), st.none()),
    ),
    max_size=40,
)


def state_of(storage: MemoryStorage):
    entries = storage.entries(storage.first_index(), storage.last_index() + 1)
    return (
        storage.initial_state(),
        storage.first_index(),
        storage.last_index(),
        storage.term(storage.first_index() - 1),
        entries,
        storage.snapshot(),
    )


@given(actions)
# Found by hypothesis: an overwrite at index 1 (term 4) truncates index 2
# (term 3), then a snapshot at 1 covers the overwrite's whole record; replay
# once brought index 2 back.
@example([("append", 0, 1, b""), ("append", 0, 1, b""), ("append", 2, 1, b""), ("snapshot", 1, b"", None)])
def test_durable_storage_matches_memory_storage_across_reopens(steps) -> None:
    with tempfile.TemporaryDirectory() as directory:
        durable = DurableStorage.open(directory, CONF, fsync=False, segment_size_bytes=4096)
        model = MemoryStorage(CONF)
        term = 1
        for kind, a, b, c in steps:
            if kind == "append":
                # Overwrite from somewhere in the log (a conflicting suffix) or extend.
                start = max(model.first_index(), model.last_index() + 1 - a)
                term += 1
                entries = [Entry(term, start + k, data=c) for k in range(b)]
                durable.save(None, entries)
                model.append(entries)
            elif kind == "hard":
                # A snapshot covers committed entries only: commit >= its index.
                hard = HardState(term + a, b, max(c, model.snapshot().metadata.index))
                durable.save(hard, [])
                model.set_hard_state(hard)
            elif kind == "snapshot":
                index = model.first_index() - 1 + a
                if index > model.last_index() or index <= model.snapshot().metadata.index:
                    continue
                # Snapshots cover committed entries: the commit index is at least there.
                current = model.initial_state()[0]
                if current.commit < index:
                    raised = HardState(current.term, current.vote, index)
                    durable.save(raised, [])
                    model.set_hard_state(raised)
                durable.create_snapshot(index, None, b)
                model.create_snapshot(index, None, b)
                durable.compact(index)
                model.compact(index)
            elif kind == "install":
                index = model.last_index() + a - 10
                if index <= model.snapshot().metadata.index:
                    continue
                term += 1
                snapshot = Snapshot(SnapshotMetadata(index, term, CONF), b)
                # The core commits up to an installed snapshot in the same Ready.
                current = model.initial_state()[0]
                raised = HardState(max(current.term, term), current.vote, max(current.commit, index))
                durable.save(raised, [], snapshot)
                model.apply_snapshot(snapshot)
                model.set_hard_state(raised)
            else:
                durable.sync()
                durable.close()
                durable = DurableStorage.open(directory, CONF, fsync=False, segment_size_bytes=4096)
            assert state_of(durable) == state_of(model)
        durable.sync()
        durable.close()
        reopened = DurableStorage.open(directory, CONF, fsync=False, segment_size_bytes=4096)
        assert state_of(reopened) == state_of(model)
        reopened.close()


def test_compaction_removes_old_segments_and_keeps_two_snapshots() -> None:
    with tempfile.TemporaryDirectory() as directory:
        storage = DurableStorage.open(directory, CONF, fsync=True, segment_size_bytes=4096)
        for index in range(1, 101):
            storage.save(HardState(1, 1, index), [Entry(1, index, data=bytes(200))])
            storage.sync()
            if index % 25 == 0:
                storage.create_snapshot(index, None, b"state-%d" % index)
                storage.compact(index)
        assert len(list_snapshots(os.path.join(directory, "snap"))) == 2
        assert len(list_segments(os.path.join(directory, "wal"))) <= 3
        assert storage.wal.fsync_count > 0
        storage.close()
        reopened = DurableStorage.open(directory, CONF)
        assert reopened.snapshot().data == b"state-100" and reopened.last_index() == 100
        assert reopened.initial_state()[0] == HardState(1, 1, 100)
        reopened.close()


def test_corrupt_middle_record_refuses_to_open() -> None:
    with tempfile.TemporaryDirectory() as directory:
        storage = DurableStorage.open(directory, CONF, fsync=False)
        for index in range(1, 6):
            storage.save(HardState(1, 1, index), [Entry(1, index, data=b"x" * 50)])
            storage.sync()
        storage.close()
        (_sequence, path), = list_segments(os.path.join(directory, "wal"))
        with open(path, "r+b") as handle:
            handle.seek(30)
            handle.write(b"\xff")
        with pytest.raises(WalCorruptError) as caught:
            DurableStorage.open(directory, CONF)
        assert caught.value.path == path


def test_corrupt_snapshot_file_is_refused() -> None:
    with tempfile.TemporaryDirectory() as directory:
        storage = DurableStorage.open(directory, CONF, fsync=False)
        storage.save(None, [Entry(1, 1), Entry(1, 2)])
        storage.create_snapshot(2, None, b"image")
        storage.close()
        (_i, _t, path), = list_snapshots(os.path.join(directory, "snap"))
        with open(path, "r+b") as handle:
            handle.seek(-1, os.SEEK_END)
            handle.write(b"!")
        with pytest.raises(SnapshotCorruptError, match="snap-"):
            DurableStorage.open(directory, CONF)
