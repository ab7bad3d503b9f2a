"""The packet batch: slots, headroom, bounds, round trip of frames."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataplane.batch import BatchError, PacketBatch


@given(st.lists(st.binary(min_size=0, max_size=3000), min_size=1, max_size=40))
def test_frames_round_trip_and_stay_in_their_slots(frames: list[bytes]) -> None:
    batch = PacketBatch.from_frames(frames)
    assert batch.frames() == frames
    for index in range(batch.count):
        start, end = batch.slot_bounds(index)
        assert start + batch.headroom == batch.offsets[index]
        assert batch.offsets[index] + batch.lengths[index] <= end


def test_full_batch_refuses_more() -> None:
    batch = PacketBatch(2, slot_size=256, headroom=64)
    batch.append(b"a")
    batch.append(b"b")
    with pytest.raises(BatchError, match="full"):
        batch.append(b"c")


def test_frame_larger_than_slot_is_refused_not_truncated() -> None:
    batch = PacketBatch(1, slot_size=256, headroom=64)
    with pytest.raises(BatchError, match="does not fit"):
        batch.append(bytes(193))
    assert batch.count == 0


@pytest.mark.parametrize(
    "kwargs",
    [dict(capacity=0), dict(capacity=4, slot_size=64, headroom=64), dict(capacity=4, headroom=-1)],
)
def test_bad_geometry_is_a_typed_error(kwargs: dict) -> None:
    with pytest.raises(BatchError):
        PacketBatch(**kwargs)


def test_reset_and_copy_are_independent() -> None:
    batch = PacketBatch.from_frames([b"hello", b"world"])
    twin = batch.copy()
    batch.reset()
    assert batch.count == 0 and twin.frames() == [b"hello", b"world"]
    with pytest.raises(IndexError):
        batch.frame(0)
