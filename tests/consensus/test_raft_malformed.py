"""Malformed or unknown messages from a peer are refused with a typed error
(MalformedMessage) and leave the node's state untouched; well-formed ones
never raise anything but are handled."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.errors import MalformedMessage, StepLocalMessage
from consensus.types import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from raft_network import Net

small = st.integers(-3, 40)
entries = st.lists(
    st.builds(Entry, term=small, index=small, type=st.sampled_from(list(EntryType)), data=st.binary(max_size=8)),
    max_size=4,
)
snapshots = st.none() | st.builds(
    Snapshot,
    metadata=st.builds(SnapshotMetadata, index=small, term=small,
                       conf_state=st.builds(ConfState, voters=st.lists(st.integers(1, 4), max_size=3).map(tuple))),
    data=st.binary(max_size=16),
)
messages = st.builds(
    Message,
    type=st.sampled_from(list(MessageType)) | st.integers(-1, 99),
    to=st.sampled_from([2, 2, 2, 1, 0, 7]),
    frm=st.sampled_from([1, 3, 0, -1, 2, 9]),
    term=small,
    log_term=small,
    index=small,
    entries=entries.map(tuple),
    commit=small,
    reject=st.booleans(),
    reject_hint=small,
    snapshot=snapshots,
    context=st.binary(max_size=4),
    snap_offset=small,
    snap_done=st.booleans(),
)


def fingerprint(net: Net, node_id: int) -> tuple:
    node = net.nodes[node_id]
    log = node.log
    return (
        node.term, node.vote, node.lead, node.role, log.last_index(), log.committed, log.applied,
        tuple(log.unstable_entries), len(node.msgs), len(node.msgs_after_persist), node.election_elapsed,
    )


@settings(deadline=None)
@given(st.lists(messages, min_size=1, max_size=6), st.sampled_from([1, 2]))
def test_random_messages_are_refused_typed_or_handled(batch: list[Message], receiver: int) -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    for message in batch:
        message = Message(**{**{f: getattr(message, f) for f in Message.__dataclass_fields__}, "to": message.to if message.to != 2 else receiver})
        before = fingerprint(net, receiver)
        try:
            net.nodes[receiver].step(message)
        except MalformedMessage:
            assert fingerprint(net, receiver) == before, f"refused {message} but state changed"
        # Whatever was accepted, the node's own invariants still hold.
        log = net.nodes[receiver].log
        assert log.applied <= log.committed <= log.last_index()
        net.stabilize()


def test_specific_malformed_messages() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    node = net.nodes[2]
    term = node.term
    cases = [
        Message(MessageType.APP, 3, 1, term),  # wrong recipient
        Message(MessageType.APP, 2, 2, term),  # from itself
        Message(MessageType.APP, 2, 1, term, 0, 5, (Entry(term, 7),)),  # not consecutive
        Message(MessageType.APP, 2, 1, term, 0, 5, (Entry(term + 1, 6),)),  # entry term beyond message term
        Message(MessageType.APP, 2, 1, -1),  # negative term
        Message(MessageType.SNAP, 2, 1, term),  # snapshot missing
        Message(MessageType.HEARTBEAT, 2, 1, 0),  # no term
        Message(MessageType.VOTE_RESP, 2, 1, term, snapshot=Snapshot(SnapshotMetadata(1, 1), b"")),
        Message(99, 2, 1, term),  # unknown type  # type: ignore[arg-type]
        # The core tests message types by identity after _validate: a plain
        # int with a member's value is refused, as are type-dependent defects.
        Message(10, 2, 1, term),  # APP's value, not the member  # type: ignore[arg-type]
        Message(MessageType.HEARTBEAT, 2, 1, term, 0, 0, (Entry(term, 1),)),  # entries on a non-APP
        Message(MessageType.APP, 2, 1, term, term + 1, 0),  # log_term beyond term
        Message(MessageType.VOTE, 2, 1, term + 1, term + 2, 0),  # a vote's log_term beyond its term
        Message(MessageType.APP, 2, 1, "1"),  # wrong field type  # type: ignore[arg-type]
        "not a message",  # type: ignore[arg-type]
    ]
    for bad in cases:
        before = fingerprint(net, 2)
        try:
            node.step(bad)  # type: ignore[arg-type]
        except MalformedMessage as error:
            assert error.reason
        else:
            raise AssertionError(f"accepted {bad!r}")
        assert fingerprint(net, 2) == before
    try:
        node.step(Message(MessageType.HUP, 2, 1, term))
    except StepLocalMessage:
        pass
    else:
        raise AssertionError("HUP accepted from the network")
