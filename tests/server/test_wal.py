"""Write-ahead log framing and recovery: random records, cut points, bit flips."""
from __future__ import annotations

import os
import tempfile

import pytest
from hypothesis import given, strategies as st

from consensus.wal import HEADER_SIZE, RecordType, Wal, WalCorruptError, list_segments, read_segments

record_types = st.sampled_from([RecordType.ENTRIES, RecordType.HARD_STATE, RecordType.METADATA])
records = st.lists(st.tuples(record_types, st.binary(max_size=300)), min_size=1, max_size=30)


def write_all(directory: str, items, segment_size_bytes: int = 4096, sync_every: int = 3) -> None:
    wal = Wal(directory, segment_size_bytes=segment_size_bytes, fsync=False)
    for position, (record_type, payload) in enumerate(items):
        wal.append(record_type, payload)
        if position % sync_every == 0 and wal.sync():
            wal.rotate()
    wal.close()


def read_all(directory: str):
    return [(record.type, record.payload) for _sequence, record in read_segments(directory)]


@given(records, st.integers(min_value=1, max_value=5))
def test_round_trip_across_segments(items, sync_every) -> None:
    with tempfile.TemporaryDirectory() as directory:
        write_all(directory, items, sync_every=sync_every)
        assert read_all(directory) == items
        # Reopening appends after what is there.
        wal = Wal(directory, segment_size_bytes=4096, fsync=False)
        wal.append(RecordType.METADATA, b"more")
        wal.close()
        assert read_all(directory) == items + [(RecordType.METADATA, b"more")]


@given(records, st.data())
def test_torn_tail_is_cut_to_the_last_good_record(items, data) -> None:
    with tempfile.TemporaryDirectory() as directory:
        write_all(directory, items, segment_size_bytes=1 << 20)
        (_sequence, path), = list_segments(directory)
        size = os.path.getsize(path)
        cut = data.draw(st.integers(min_value=0, max_value=size), label="cut")
        with open(path, "r+b") as handle:
            handle.truncate(cut)
        # The records wholly before the cut survive, nothing else.
        kept, end = [], 0
        for record_type, payload in items:
            end += HEADER_SIZE + len(payload)
            if end > cut:
                break
            kept.append((record_type, payload))
        assert read_all(directory) == kept
        assert os.path.getsize(path) == sum(HEADER_SIZE + len(p) for _t, p in kept)
        assert read_all(directory) == kept  # idempotent


@given(records.filter(lambda items: len(items) >= 2), st.data())
def test_bit_flip_in_the_middle_is_refused_with_file_and_offset(items, data) -> None:
    with tempfile.TemporaryDirectory() as directory:
        write_all(directory, items, segment_size_bytes=1 << 20)
        (_sequence, path), = list_segments(directory)
        victim = data.draw(st.integers(min_value=0, max_value=len(items) - 2), label="victim record")
        start = sum(HEADER_SIZE + len(p) for _t, p in items[:victim])
        length = HEADER_SIZE + len(items[victim][1])
        bit = data.draw(st.integers(min_value=0, max_value=length * 8 - 1), label="bit")
        with open(path, "r+b") as handle:
            handle.seek(start + bit // 8)
            byte = handle.read(1)[0]
            handle.seek(start + bit // 8)
            handle.write(bytes([byte ^ (1 << (bit % 8))]))
        with pytest.raises(WalCorruptError) as caught:
            read_all(directory)
        assert caught.value.path == path and caught.value.offset == start
        assert path in str(caught.value) and str(start) in str(caught.value)


def test_corruption_in_a_sealed_segment_is_refused() -> None:
    with tempfile.TemporaryDirectory() as directory:
        write_all(directory, [(RecordType.ENTRIES, bytes(1000))] * 12, segment_size_bytes=4096, sync_every=1)
        segments = list_segments(directory)
        assert len(segments) >= 2
        first = segments[0][1]
        size = os.path.getsize(first)
        with open(first, "r+b") as handle:
            handle.truncate(size - 5)  # a "torn" record, but not in the newest segment
        with pytest.raises(WalCorruptError, match="sealed segment"):
            read_all(directory)


def test_release_before_keeps_the_current_segment() -> None:
    with tempfile.TemporaryDirectory() as directory:
        wal = Wal(directory, segment_size_bytes=4096, fsync=False)
        for index in range(1, 13):
            wal.append(RecordType.ENTRIES, bytes(1000), entry_index_max=index)
            if wal.sync():
                wal.rotate()
        before = list_segments(directory)
        removed = wal.release_before(6)
        after = list_segments(directory)
        assert removed and len(after) == len(before) - len(removed)
        assert after[-1][0] == wal.sequence
        assert wal.release_before(1 << 40) and list_segments(directory)[-1][0] == wal.sequence
        wal.close()
