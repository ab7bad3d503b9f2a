"""The speed fast paths of the core (RaftLog.term's stable-index path,
find_conflict stopping at the first new entry, limit_size without
size_bytes()) against straightforward reference versions, on random logs:
compacted storage, a stable part, an unstable tail that may shadow stale
stable entries, and a pending snapshot; and the core's own constructors
(make_message, make_ready) against the public ones."""
from __future__ import annotations

from typing import Optional

from hypothesis import given
from hypothesis import strategies as st

from consensus.errors import Compacted, Unavailable
from consensus.log import RaftLog
from consensus.progress import Inflights, quorum_index
from consensus.storage import MemoryStorage, limit_size, trim_to_size
from consensus.types import (
    ConfState,
    Entry,
    HardState,
    Message,
    MessageType,
    ReadState,
    Ready,
    Snapshot,
    SnapshotMetadata,
    SoftState,
    StateRole,
    make_message,
    make_ready,
)


def _reference_limit(entries: list[Entry], max_size_bytes: Optional[int]) -> list[Entry]:
    if max_size_bytes is None or not entries:
        return list(entries)
    total = entries[0].size_bytes()
    count = 1
    while count < len(entries):
        total += entries[count].size_bytes()
        if total > max_size_bytes:
            break
        count += 1
    return list(entries[:count])


@given(
    st.lists(st.binary(max_size=40), max_size=12),
    st.one_of(st.none(), st.integers(0, 300), st.sampled_from([-1, 2**63, 2**80])),
)
def test_limit_size_matches_reference(payloads: list[bytes], max_size_bytes: Optional[int]) -> None:
    entries = [Entry(1, position + 1, data=data) for position, data in enumerate(payloads)]
    assert limit_size(entries, max_size_bytes) == _reference_limit(entries, max_size_bytes)
    assert limit_size(tuple(entries), max_size_bytes) == _reference_limit(entries, max_size_bytes)


@st.composite
def logs(draw: st.DrawFn) -> RaftLog:
    stable_terms = draw(st.lists(st.integers(1, 4), max_size=10).map(sorted))
    storage = MemoryStorage(ConfState((1,)))
    storage.append([Entry(term, position + 1) for position, term in enumerate(stable_terms)])
    compact = draw(st.integers(0, len(stable_terms)))
    if compact:
        storage.create_snapshot(compact, None, b"s")
        storage.compact(compact)
    log = RaftLog(storage)
    if draw(st.booleans()) and storage.last_index() >= 1:
        # An unstable tail that shadows stale stable entries (a follower that
        # truncated a conflicting suffix and has not persisted the new one).
        start = draw(st.integers(max(storage.first_index(), 1), storage.last_index() + 1))
        top = max([5] + stable_terms)
        log.append([Entry(top + 1, start + k) for k in range(draw(st.integers(1, 4)))])
    elif draw(st.booleans()):
        log.append([Entry(5, storage.last_index() + 1 + k) for k in range(draw(st.integers(0, 3)))])
    if draw(st.booleans()):
        index = log.last_index() + draw(st.integers(1, 3))
        log.restore(Snapshot(SnapshotMetadata(index, 7, ConfState((1,))), b"x"))
    return log


def _reference_term(log: RaftLog, index: int) -> tuple[str, int]:
    """RaftLog.term as it was before the fast paths (result or exception kind)."""
    dummy = log.first_index() - 1
    if index < dummy:
        return "compacted", 0
    if index > log.last_index():
        return "unavailable", 0
    if index >= log.unstable_offset:
        return "ok", log.unstable_entries[index - log.unstable_offset].term
    snap = log.unstable_snapshot
    if snap is not None and index == snap.metadata.index:
        return "ok", snap.metadata.term
    try:
        return "ok", log.storage.term(index)
    except Compacted:
        return "compacted", 0
    except Unavailable:
        return "unavailable", 0


@given(logs(), st.data())
def test_term_and_find_conflict_match_reference(log: RaftLog, data: st.DataObject) -> None:
    for index in range(0, log.last_index() + 4):
        try:
            got = ("ok", log.term(index))
        except Compacted:
            got = ("compacted", 0)
        except Unavailable:
            got = ("unavailable", 0)
        assert got == _reference_term(log, index), (index, log.describe())
    start = data.draw(st.integers(1, log.last_index() + 2))
    terms = data.draw(st.lists(st.integers(1, 8), max_size=5))
    entries = [Entry(term, start + k) for k, term in enumerate(terms)]
    expected = 0
    for entry in entries:
        if not log.match_term(entry.index, entry.term):
            expected = entry.index
            break
    assert log.find_conflict(entries) == expected


def _reference_slice(log: RaftLog, lo: int, hi: int, max_size_bytes: Optional[int]) -> list[Entry]:
    """RaftLog.slice as it was before the fast paths (bounds already checked)."""
    if lo == hi:
        return []
    out: list[Entry] = []
    offset = log.unstable_offset
    if lo < offset:
        out = log.storage.entries(lo, min(hi, offset), max_size_bytes)
        if len(out) < min(hi, offset) - lo:
            return out
    if hi > offset:
        start = max(lo, offset)
        out.extend(log.unstable_entries[start - offset : hi - offset])
    return limit_size(out, max_size_bytes)


@given(logs(), st.data())
def test_slice_matches_reference(log: RaftLog, data: st.DataObject) -> None:
    first = log.first_index()
    last = log.last_index()
    lo = data.draw(st.integers(first, last + 1))
    hi = data.draw(st.integers(lo, last + 1))
    max_size_bytes = data.draw(st.sampled_from([None, 0, 16, 40, 100, 2**70]))
    got = log.slice(lo, hi, max_size_bytes)
    assert got == _reference_slice(log, lo, hi, max_size_bytes), (lo, hi, max_size_bytes, log.describe())
    assert type(got) is list
    assert log.entries_from(lo, max_size_bytes) == _reference_slice(log, lo, last + 1, max_size_bytes)


@given(st.lists(st.integers(0, 6), max_size=7))
def test_quorum_index_is_the_majority_match(matches: list[int]) -> None:
    expected = sorted(matches, reverse=True)[len(matches) // 2] if matches else 0
    assert quorum_index(matches) == expected
    assert quorum_index(tuple(matches)) == expected
    assert quorum_index(iter(matches)) == expected


@given(st.lists(st.binary(max_size=40), max_size=8), st.sampled_from([None, -1, 0, 16, 40, 100, 2**70]))
def test_trim_to_size_is_limit_size_in_place(payloads: list[bytes], max_size_bytes: Optional[int]) -> None:
    entries = [Entry(1, position + 1, data=data) for position, data in enumerate(payloads)]
    owned = list(entries)
    assert trim_to_size(owned, max_size_bytes) is owned
    assert owned == limit_size(entries, max_size_bytes)


@given(st.integers(1, 4), st.sampled_from([0, 50, 100]),
       st.lists(st.tuples(st.sampled_from(["add", "free", "reset"]), st.integers(0, 12), st.integers(0, 60))))
def test_inflights_matches_a_fifo_model(max_messages: int, max_bytes: int, operations: list) -> None:
    """Inflights (a list since this stop) against the FIFO it models."""
    window = Inflights(max_messages, max_bytes)
    model: list[tuple[int, int]] = []
    last = 0
    for operation, index, size in operations:
        model_full = len(model) >= max_messages or 0 < max_bytes <= sum(size for _, size in model)
        assert window.full() == model_full
        if operation == "add" and not model_full:
            last += 1 + index % 3
            window.add(last, size)
            model.append((last, size))
        elif operation == "free":
            window.free_le(index)
            while model and model[0][0] <= index:
                model.pop(0)
        elif operation == "reset":
            window.reset()
            model.clear()
        assert window.count() == len(model)
        assert window.bytes_in_flight == sum(size for _, size in model)


# Any values, as a Message accepts from a peer (the core validates them in
# RaftNode._validate, not the constructor): ints of any size, wrong types.
_ANY = st.one_of(st.integers(-(2**70), 2**70), st.booleans(), st.none(), st.binary(max_size=4), st.text(max_size=3))
_MESSAGE_FIELDS = st.tuples(
    st.one_of(st.sampled_from(list(MessageType)), _ANY),  # type
    _ANY, _ANY, _ANY, _ANY, _ANY,  # to, frm, term, log_term, index
    st.one_of(st.lists(st.builds(Entry, st.integers(0, 9), st.integers(0, 9)), max_size=3).map(tuple), _ANY),
    _ANY, _ANY, _ANY,  # commit, reject, reject_hint
    st.one_of(st.none(), st.just(Snapshot(SnapshotMetadata(3, 2, ConfState((1, 2))), b"image"))),
    _ANY, _ANY, _ANY,  # context, snap_offset, snap_done
)


@given(_MESSAGE_FIELDS, st.integers(3, 14))
def test_make_message_builds_the_same_message(fields: tuple, given_count: int) -> None:
    """make_message with the first ``given_count`` fields (the rest default)
    is the Message the public constructor builds: equal, same repr, and every
    field the very object passed."""
    built = make_message(*fields[:given_count])
    reference = Message(*fields[:given_count])
    assert type(built) is Message
    assert built == reference and repr(built) == repr(reference) and hash(built) == hash(reference)
    names = ("type", "to", "frm", "term", "log_term", "index", "entries", "commit", "reject", "reject_hint",
             "snapshot", "context", "snap_offset", "snap_done")
    for name, value in zip(names, fields[:given_count]):
        assert getattr(built, name) is value
    try:
        built.term = 5  # type: ignore[misc]  # frozen, as Message
    except AttributeError:
        pass
    else:
        raise AssertionError("make_message built a mutable message")


@given(st.booleans(), st.booleans(), st.lists(st.integers(1, 5), max_size=3))
def test_make_ready_builds_the_same_ready(with_soft: bool, must_sync: bool, indexes: list[int]) -> None:
    entries = tuple(Entry(1, index) for index in indexes)
    message = Message(MessageType.APP, 2, 1, 1, entries=entries)
    fields = (
        SoftState(1, StateRole.LEADER) if with_soft else None,
        HardState(1, 1, len(entries)),
        entries,
        None,
        entries[:1],
        (message,),
        (),
        (ReadState(1, b"r1"),),
        must_sync,
    )
    built = make_ready(*fields)
    reference = Ready(*fields)
    assert type(built) is Ready
    assert built == reference and repr(built) == repr(reference)


def test_send_routes_by_after_persist_message_types() -> None:
    """RaftNode._send tests the type by identity; it must route exactly as
    membership in AFTER_PERSIST_MESSAGE_TYPES says, for every type."""
    from consensus.raft import Config, RaftNode
    from consensus.types import AFTER_PERSIST_MESSAGE_TYPES

    node = RaftNode(Config(1, voters=(1, 2, 3)), MemoryStorage())
    for message_type in MessageType:
        node.msgs = []
        node.msgs_after_persist = []
        message = make_message(message_type, 2, 1, 1)
        node._send(message)
        after = message_type in AFTER_PERSIST_MESSAGE_TYPES
        assert node.msgs_after_persist == ([message] if after else []), message_type
        assert node.msgs == ([] if after else [message]), message_type
