"""Wire encoding of Raft messages between peers: a version byte, then msgpack.

``encode_message(message) -> bytes`` and ``decode_message(bytes) -> Message``.
Layout after the version byte (one msgpack array, positional for size)::

    [type, to, frm, term, log_term, index, entries, commit, reject,
     reject_hint, snapshot, context, snap_offset, snap_done]

``entries`` is a flat array ``[term, index, type, data, term, index, ...]``;
``snapshot`` is nil or ``[index, term, voters, learners, data]``.

Decoding validates every field and raises :class:`MalformedFrame` (never any
other exception) for bytes that are not a well-formed message; the transport
counts it and closes that connection.  Local-only message types (HUP, PROP ...)
are refused here too: they must never arrive from the network
(etcd-io/raft raft.go "local message" checks).
"""
from __future__ import annotations

from typing import Any

import msgpack

from consensus.types import (
    LOCAL_MESSAGE_TYPES,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)

WIRE_VERSION = 1
_VERSION_BYTE = bytes((WIRE_VERSION,))
_ENTRY_TYPES = {int(t): t for t in EntryType}
_MESSAGE_TYPES = {int(t): t for t in MessageType if t not in LOCAL_MESSAGE_TYPES}
_FIELDS = 14
_INT_MAX = 1 << 63


class MalformedFrame(ValueError):
    """Bytes from a peer that do not decode to a valid message."""


def encode_message(message: Message) -> bytes:
    flat: list[Any] = []
    for entry in message.entries:
        flat += (entry.term, entry.index, int(entry.type), entry.data)
    snapshot = message.snapshot
    if snapshot is not None:
        meta = snapshot.metadata
        encoded_snapshot: Any = [meta.index, meta.term, list(meta.conf_state.voters), list(meta.conf_state.learners), snapshot.data]
    else:
        encoded_snapshot = None
    return _VERSION_BYTE + msgpack.packb(
        [
            int(message.type),
            message.to,
            message.frm,
            message.term,
            message.log_term,
            message.index,
            flat,
            message.commit,
            message.reject,
            message.reject_hint,
            encoded_snapshot,
            message.context,
            message.snap_offset,
            message.snap_done,
        ],
        use_bin_type=True,
    )


def _check_int(name: str, value: Any) -> int:
    if type(value) is not int or value < 0 or value >= _INT_MAX:
        raise MalformedFrame(f"{name} must be a non-negative int: {value!r}")
    return value


def _check_ids(name: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise MalformedFrame(f"{name} must be a list")
    return tuple(_check_int(name, item) for item in value)


def decode_message(frame: bytes) -> Message:
    if not frame or frame[0] != WIRE_VERSION:
        raise MalformedFrame(f"unknown wire version {frame[0] if frame else None}")
    try:
        fields = msgpack.unpackb(memoryview(frame)[1:], raw=False, use_list=True, strict_map_key=True)
    except Exception as error:  # msgpack raises several types on garbage
        raise MalformedFrame(f"undecodable message: {type(error).__name__}: {error}") from None
    if not isinstance(fields, list) or len(fields) != _FIELDS:
        raise MalformedFrame(f"a message is a list of {_FIELDS} fields")
    kind, to, frm, term, log_term, index, flat, commit, reject, reject_hint, snapshot, context, snap_offset, snap_done = fields
    message_type = _MESSAGE_TYPES.get(kind) if type(kind) is int else None
    if message_type is None:
        raise MalformedFrame(f"message type {kind!r} is unknown or local-only")
    for name, value in (("to", to), ("frm", frm), ("term", term), ("log_term", log_term), ("index", index),
                        ("commit", commit), ("reject_hint", reject_hint), ("snap_offset", snap_offset)):
        _check_int(name, value)
    if type(reject) is not bool or type(snap_done) is not bool:
        raise MalformedFrame("reject and snap_done must be booleans")
    if type(context) is not bytes:
        raise MalformedFrame("context must be bytes")
    if not isinstance(flat, list) or len(flat) % 4:
        raise MalformedFrame("entries must be a flat list of 4-tuples")
    entries = []
    for position in range(0, len(flat), 4):
        entry_term, entry_index, entry_type, data = flat[position : position + 4]
        if type(entry_term) is not int or type(entry_index) is not int or entry_term < 0 or entry_index < 0:
            raise MalformedFrame("entry term and index must be non-negative ints")
        if type(data) is not bytes or entry_type not in _ENTRY_TYPES:
            raise MalformedFrame("entry data must be bytes with a known type")
        entries.append(Entry(entry_term, entry_index, _ENTRY_TYPES[entry_type], data))
    decoded_snapshot = None
    if snapshot is not None:
        if not isinstance(snapshot, list) or len(snapshot) != 5:
            raise MalformedFrame("snapshot must be [index, term, voters, learners, data]")
        snap_index, snap_term, voters, learners, data = snapshot
        conf = ConfState(voters=_check_ids("voters", voters), learners=_check_ids("learners", learners))
        if type(data) is not bytes:
            raise MalformedFrame("snapshot data must be bytes")
        decoded_snapshot = Snapshot(
            SnapshotMetadata(_check_int("snapshot index", snap_index), _check_int("snapshot term", snap_term), conf), data
        )
    return Message(
        message_type, to, frm, term, log_term, index, tuple(entries), commit, reject, reject_hint,
        decoded_snapshot, context, snap_offset, snap_done,
    )
