"""RaftLog (stable storage + unstable tail), Progress/Inflights and
MemoryStorage against simple models."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from consensus.errors import Compacted, InvariantViolation
from consensus.log import RaftLog
from consensus.progress import Inflights, Progress, ProgressState, VoteResult, quorum_index, tally
from consensus.storage import MemoryStorage
from consensus.types import ConfState, Entry


def entries_with_terms(terms: list[int], start: int = 1) -> list[Entry]:
    return [Entry(term, start + position) for position, term in enumerate(terms)]


def test_maybe_append_truncates_conflicts_and_commits() -> None:
    storage = MemoryStorage()
    storage.append(entries_with_terms([1, 1, 2]))
    log = RaftLog(storage)
    last, ok = log.maybe_append(1, 1, 2, entries_with_terms([1, 3, 3], start=2))
    assert ok and last == 4
    assert [log.term(i) for i in range(1, 5)] == [1, 1, 3, 3]
    assert log.committed == 2
    # A mismatch at the previous entry is refused.
    assert log.maybe_append(4, 9, 4, []) == (0, False)
    # Conflicting with a committed entry is a broken invariant.
    try:
        log.maybe_append(0, 0, 2, entries_with_terms([7]))
    except InvariantViolation:
        pass
    else:
        raise AssertionError("overwrote a committed entry")


def test_find_conflict_by_term_skips_a_whole_term() -> None:
    storage = MemoryStorage()
    storage.append(entries_with_terms([1, 1, 2, 2, 2, 5, 5]))
    log = RaftLog(storage)
    assert log.find_conflict_by_term(7, 3) == (5, 2)
    assert log.find_conflict_by_term(7, 5) == (7, 5)
    assert log.find_conflict_by_term(7, 0) == (0, 0)


def test_stable_to_ignores_replaced_entries() -> None:
    log = RaftLog(MemoryStorage())
    log.append(entries_with_terms([1, 1]))
    log.append([Entry(2, 2)])  # replaces index 2 before it was persisted
    log.stable_to(2, 1)  # the persisted version was term 1: keep the new one unstable
    assert log.unstable_entries == [Entry(2, 2)] or log.unstable_entries[-1] == Entry(2, 2)


def test_is_up_to_date_compares_last_term_then_length() -> None:
    storage = MemoryStorage()
    storage.append(entries_with_terms([1, 2, 2]))
    log = RaftLog(storage)
    assert log.is_up_to_date(3, 2) and log.is_up_to_date(1, 3)
    assert not log.is_up_to_date(2, 2) and not log.is_up_to_date(9, 1)


def test_inflights_bound_messages_and_bytes() -> None:
    window = Inflights(3, max_bytes=100)
    window.add(5, 40)
    window.add(6, 40)
    assert not window.full()
    window.add(7, 40)
    assert window.full()
    window.free_le(6)
    assert window.count() == 1 and window.bytes_in_flight == 40 and not window.full()


def test_progress_probe_and_replicate() -> None:
    pr = Progress(10, 4, 0, False)
    assert pr.state == ProgressState.PROBE and not pr.is_paused()
    pr.sent_entries(2, 20)
    assert pr.is_paused()  # one probe at a time
    assert pr.maybe_decr_to(9, 4)  # rejected at 9, follower's last index 4
    assert pr.next == 5
    assert not pr.maybe_decr_to(9, 4)  # stale rejection
    assert pr.maybe_update(7)
    pr.become_replicate()
    assert pr.next == 8
    for _ in range(4):
        pr.sent_entries(1, 10)
    assert pr.is_paused()


def test_quorum_and_tally() -> None:
    assert quorum_index([5, 3, 9]) == 5
    assert quorum_index([5, 3, 9, 1]) == 3
    assert quorum_index([]) == 0
    assert tally([1, 2, 3], {1: True, 2: True}) == VoteResult.WON
    assert tally([1, 2, 3], {1: True, 2: False, 3: False}) == VoteResult.LOST
    assert tally([1, 2, 3, 4], {1: True, 2: True}) == VoteResult.PENDING


@given(st.lists(st.tuples(st.sampled_from(["append", "compact"]), st.integers(1, 30), st.integers(1, 4)), max_size=30))
def test_memory_storage_matches_a_list_model(operations: list[tuple[str, int, int]]) -> None:
    storage = MemoryStorage(ConfState((1,)))
    model: dict[int, int] = {}  # index -> term
    compacted = 0
    for kind, index, term in operations:
        last = storage.last_index()
        if kind == "append":
            start = max(compacted + 1, min(index, last + 1))
            new = [Entry(term, start + k) for k in range(3)]
            storage.append(new)
            for key in [k for k in model if k >= start]:
                del model[key]
            for entry in new:
                model[entry.index] = entry.term
        else:
            target = min(index, last)
            if target > compacted:
                storage.compact(target)
                compacted = target
        assert storage.first_index() == compacted + 1
        assert storage.last_index() == (max(model) if model else compacted)
        for i in range(compacted + 1, storage.last_index() + 1):
            assert storage.term(i) == model[i]
        if compacted > 0:
            try:
                storage.term(compacted - 1)
            except Compacted:
                pass
            else:
                raise AssertionError(f"term({compacted - 1}) below the compaction point answered")
