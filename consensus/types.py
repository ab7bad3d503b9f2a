"""Value types of the Raft core: log entries, persistent state, messages, Ready.

Everything here is a frozen dataclass (or an enum): the core hands these out
and never mutates them afterwards, so a driver may keep, queue, encode or
compare them freely.  The shapes follow etcd-io/raft's raftpb and rawnode.go,
with snake_case names.

Node ids are positive ``int`` (1, 2, 3 ...); ``NONE`` (0) means "no node"
(no vote cast, leader unknown).  Ints keep messages small and comparisons
cheap; a driver that wants names maps them at its edge.

Units: indexes and terms are plain counts starting at 1 (index 0 / term 0 is
the empty log's sentinel), sizes are bytes (``*_bytes``), time is ticks.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Optional

NodeId = int
NONE: NodeId = 0

# True in the compiled copy of this module (consensus._types_c, built by
# consensus/_build_core_c.py), whose Message and Ready have C slots.
_COMPILED = __name__.endswith("_c")


class EntryType(enum.IntEnum):
    """NORMAL carries application data; CONF_CHANGE carries an encoded ConfChange."""

    NORMAL = 0
    CONF_CHANGE = 1


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry.  An entry with empty ``data`` and type NORMAL is the
    no-op a new leader appends at the start of its term (Raft thesis 6.4)."""

    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""

    def size_bytes(self) -> int:
        # A fixed 16 bytes of header (term + index) plus the payload; what the
        # flow-control bounds (max_size_per_msg_bytes ...) count.
        return 16 + len(self.data)


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be on stable storage before any message that depends on it
    is sent (Raft paper figure 2: currentTerm, votedFor; plus the commit index
    so a restart does not re-apply from zero - commit may lag, never lead)."""

    term: int = 0
    vote: NodeId = NONE
    commit: int = 0

    def is_empty(self) -> bool:
        return self.term == 0 and self.vote == NONE and self.commit == 0


EMPTY_HARD_STATE = HardState()


@dataclass(frozen=True, slots=True)
class ConfState:
    """The membership a log prefix ends in.

    ``voters`` count towards quorums; ``learners`` receive the log but never
    vote.  ``voters_outgoing`` and ``learners_next`` exist for etcd's shape
    (joint consensus) and are always empty here: this core changes membership
    one voter at a time (see consensus/confchange.py for why).
    """

    voters: tuple[NodeId, ...] = ()
    learners: tuple[NodeId, ...] = ()
    voters_outgoing: tuple[NodeId, ...] = ()
    learners_next: tuple[NodeId, ...] = ()
    auto_leave: bool = False

    def is_empty(self) -> bool:
        return not self.voters and not self.learners


@dataclass(frozen=True, slots=True)
class SnapshotMetadata:
    """The last entry a snapshot covers and the membership at that point."""

    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An application-supplied image of the state machine up to ``metadata.index``."""

    metadata: SnapshotMetadata = field(default_factory=SnapshotMetadata)
    data: bytes = b""

    def is_empty(self) -> bool:
        return self.metadata.index == 0


EMPTY_SNAPSHOT = Snapshot()


class MessageType(enum.IntEnum):
    """Message kinds.  The LOCAL ones are produced by the core for itself
    (timers, proposals) and are refused when they arrive from the network."""

    # local only (etcd: MsgHup, MsgBeat, MsgProp, MsgCheckQuorum)
    HUP = 0
    BEAT = 1
    PROP = 2
    CHECK_QUORUM = 3
    # network
    APP = 10
    APP_RESP = 11
    VOTE = 12
    VOTE_RESP = 13
    PRE_VOTE = 14
    PRE_VOTE_RESP = 15
    HEARTBEAT = 16
    HEARTBEAT_RESP = 17
    SNAP = 18          # one chunk of an InstallSnapshot (snap_offset, snap_done)
    READ_INDEX = 19    # follower -> leader forward of a ReadIndex request
    READ_INDEX_RESP = 20
    TIMEOUT_NOW = 21   # leader -> transferee: start an election right now
    TRANSFER_LEADER = 22  # any node -> leader: please transfer to msg.frm / hint
    FORWARD_PROP = 23  # follower -> leader forward of a proposal (optional)


LOCAL_MESSAGE_TYPES: frozenset[MessageType] = frozenset(
    {MessageType.HUP, MessageType.BEAT, MessageType.PROP, MessageType.CHECK_QUORUM}
)

# These message types carry a promise about durable state (a vote, "I have
# these entries") and therefore travel in Ready.messages_after_persist; every
# other type may be sent at once (etcd rawnode / thesis 10.2.1: the leader may
# send appends while it persists).  As in etcd-io/raft's raft.send, a
# heartbeat response goes at once: it promises nothing durable (the commit
# index it carries back may lag, and a term learned from the heartbeat is
# only binding through a vote, which waits).  VOTE (a candidate's request,
# sent before its own vote for itself is durable in etcd) stays here: the
# stricter order costs a candidate one fsync of latency, nothing else.
AFTER_PERSIST_MESSAGE_TYPES: frozenset[MessageType] = frozenset(
    {
        MessageType.VOTE,
        MessageType.VOTE_RESP,
        MessageType.APP_RESP,
    }
)


@dataclass(frozen=True, init=False)
class Message:
    """A Raft message between two nodes (etcd raftpb.Message).

    Field meanings by type:
      APP        index/log_term: the entry preceding ``entries``; commit.
      APP_RESP   index: the last index now matching (or rejected index);
                 reject/reject_hint/log_term: fast-backtracking hint (etcd's
                 findConflictByTerm: hint index and the term there).
      VOTE/PRE_VOTE  index/log_term: the candidate's last entry; context
                 b"transfer" when caused by a leadership transfer.
      HEARTBEAT  commit (capped at the follower's match); context: ReadIndex id.
      SNAP       snapshot (metadata and one chunk of data), snap_offset (byte
                 offset of the chunk), snap_done (last chunk).
      READ_INDEX / READ_INDEX_RESP  context: the request id; index: read index.
    """

    type: MessageType
    to: NodeId
    frm: NodeId
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    snapshot: Optional[Snapshot] = None
    context: bytes = b""
    snap_offset: int = 0
    snap_done: bool = False

    # Hand-written __init__: one dict update instead of the frozen dataclass's
    # fourteen object.__setattr__ calls (3x faster; messages are built on every
    # step).  Still frozen: assignment raises FrozenInstanceError.
    def __init__(
        self,
        type: MessageType,
        to: NodeId,
        frm: NodeId,
        term: int = 0,
        log_term: int = 0,
        index: int = 0,
        entries: tuple[Entry, ...] = (),
        commit: int = 0,
        reject: bool = False,
        reject_hint: int = 0,
        snapshot: Optional[Snapshot] = None,
        context: bytes = b"",
        snap_offset: int = 0,
        snap_done: bool = False,
    ) -> None:
        if _COMPILED:
            # The compiled class (consensus/_types_c.pxd) has C slots, no __dict__.
            _fill_message(self, type, to, frm, term, log_term, index, entries, commit, reject, reject_hint,
                          snapshot, context, snap_offset, snap_done)
            return
        d = self.__dict__  # item stores: faster still than one update(**kwargs)
        d["type"] = type
        d["to"] = to
        d["frm"] = frm
        d["term"] = term
        d["log_term"] = log_term
        d["index"] = index
        d["entries"] = entries
        d["commit"] = commit
        d["reject"] = reject
        d["reject_hint"] = reject_hint
        d["snapshot"] = snapshot
        d["context"] = context
        d["snap_offset"] = snap_offset
        d["snap_done"] = snap_done

    @property
    def sender(self) -> NodeId:
        """Alias of ``frm`` (``from`` is a Python keyword)."""
        return self.frm


def make_message(
    type: MessageType,
    to: NodeId,
    frm: NodeId,
    term: int = 0,
    log_term: int = 0,
    index: int = 0,
    entries: tuple[Entry, ...] = (),
    commit: int = 0,
    reject: bool = False,
    reject_hint: int = 0,
    snapshot: Optional[Snapshot] = None,
    context: bytes = b"",
    snap_offset: int = 0,
    snap_done: bool = False,
) -> Message:
    """``Message(...)`` for the core's own hot paths: the same fields, the
    same result.  Compiled (cpdef in consensus/_types_c.pxd) it is a C call
    that fills the slots of a bare instance: no argument tuple, keyword
    parsing or ``__init__`` dispatch (those cost more than the message itself
    when the core builds one per step).  Users keep calling ``Message``."""
    if not _COMPILED:
        return Message(
            type, to, frm, term, log_term, index, entries, commit, reject, reject_hint, snapshot, context,
            snap_offset, snap_done,
        )
    m = Message.__new__(Message)
    _fill_message(m, type, to, frm, term, log_term, index, entries, commit, reject, reject_hint, snapshot, context,
                  snap_offset, snap_done)
    return m


def _fill_message(
    m: Message, type: MessageType, to: NodeId, frm: NodeId, term: int, log_term: int, index: int,
    entries: tuple[Entry, ...], commit: int, reject: bool, reject_hint: int, snapshot: Optional[Snapshot],
    context: bytes, snap_offset: int, snap_done: bool,
) -> None:
    """The compiled Message's slot stores, shared by ``Message.__init__`` and
    ``make_message`` (an inline C function there; only the compiled class
    runs it - the pure twin's instances are frozen and filled through
    ``__dict__``)."""
    m.type = type
    m.to = to
    m.frm = frm
    m.term = term
    m.log_term = log_term
    m.index = index
    m.entries = entries
    m.commit = commit
    m.reject = reject
    m.reject_hint = reject_hint
    m.snapshot = snapshot
    m.context = context
    m.snap_offset = snap_offset
    m.snap_done = snap_done


@dataclass(frozen=True, slots=True)
class ReadState:
    """A ReadIndex answer: once the application has applied up to ``index``,
    a read of its state is linearizable for the request tagged ``context``."""

    index: int
    context: bytes


class StateRole(enum.IntEnum):
    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2
    PRE_CANDIDATE = 3


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state worth telling the application about when it changes."""

    leader_id: NodeId = NONE
    role: StateRole = StateRole.FOLLOWER


@dataclass(frozen=True, init=False)
class Ready:
    """Work the core has collected for the driver (etcd rawnode.Ready).

    The driver handles one Ready at a time, in this order:
      1. send ``messages`` (they do not depend on anything unpersisted: the
         leader's appends and heartbeats, pre-votes ...) - may overlap 2;
      2. persist ``snapshot`` (if any), ``entries`` and ``hard_state`` (if
         not None) to stable storage, fsync;
      3. only then send ``messages_after_persist`` (votes, vote replies,
         append replies: promises about durable state);
      4. apply ``committed_entries`` (after step 2: some of them may be in
         ``entries``); install ``snapshot`` into the state machine before them;
      5. serve ``read_states`` once applied up to their index;
      6. call ``RaftNode.advance(ready)``.
    """

    soft_state: Optional[SoftState] = None
    hard_state: Optional[HardState] = None
    entries: tuple[Entry, ...] = ()
    snapshot: Optional[Snapshot] = None
    committed_entries: tuple[Entry, ...] = ()
    messages: tuple[Message, ...] = ()
    messages_after_persist: tuple[Message, ...] = ()
    read_states: tuple[ReadState, ...] = ()
    # True when step 2 must be durable (fsync) before step 3 (etcd MustSync):
    # new entries, a snapshot, or a changed term or vote.  A hard state whose
    # only change is the commit index may be written lazily (commit can be
    # recomputed after a restart; it may lag, never lead).
    must_sync: bool = False

    def __init__(
        self,
        soft_state: Optional[SoftState] = None,
        hard_state: Optional[HardState] = None,
        entries: tuple[Entry, ...] = (),
        snapshot: Optional[Snapshot] = None,
        committed_entries: tuple[Entry, ...] = (),
        messages: tuple[Message, ...] = (),
        messages_after_persist: tuple[Message, ...] = (),
        read_states: tuple[ReadState, ...] = (),
        must_sync: bool = False,
    ) -> None:
        if _COMPILED:
            self.soft_state = soft_state
            self.hard_state = hard_state
            self.entries = entries
            self.snapshot = snapshot
            self.committed_entries = committed_entries
            self.messages = messages
            self.messages_after_persist = messages_after_persist
            self.read_states = read_states
            self.must_sync = must_sync
            return
        # As for Message: one dict update, still frozen afterwards.
        d = self.__dict__
        d["soft_state"] = soft_state
        d["hard_state"] = hard_state
        d["entries"] = entries
        d["snapshot"] = snapshot
        d["committed_entries"] = committed_entries
        d["messages"] = messages
        d["messages_after_persist"] = messages_after_persist
        d["read_states"] = read_states
        d["must_sync"] = must_sync


def make_ready(
    soft_state: Optional[SoftState],
    hard_state: Optional[HardState],
    entries: tuple[Entry, ...],
    snapshot: Optional[Snapshot],
    committed_entries: tuple[Entry, ...],
    messages: tuple[Message, ...],
    messages_after_persist: tuple[Message, ...],
    read_states: tuple[ReadState, ...],
    must_sync: bool,
) -> Ready:
    """``Ready(...)`` with every field given, for ``RaftNode.ready`` (a C call
    compiled, as ``make_message``)."""
    if not _COMPILED:
        return Ready(
            soft_state, hard_state, entries, snapshot, committed_entries, messages, messages_after_persist,
            read_states, must_sync,
        )
    rd = Ready.__new__(Ready)
    rd.soft_state = soft_state
    rd.hard_state = hard_state
    rd.entries = entries
    rd.snapshot = snapshot
    rd.committed_entries = committed_entries
    rd.messages = messages
    rd.messages_after_persist = messages_after_persist
    rd.read_states = read_states
    rd.must_sync = must_sync
    return rd


class ConfChangeType(enum.IntEnum):
    ADD_NODE = 0          # add a voter, or promote a learner to voter
    REMOVE_NODE = 1
    ADD_LEARNER_NODE = 2  # add a learner, or demote a voter to learner


@dataclass(frozen=True, slots=True)
class ConfChange:
    """One membership change; the payload of a CONF_CHANGE entry."""

    type: ConfChangeType
    node_id: NodeId
    context: bytes = b""

    def encode(self) -> bytes:
        # type (1 byte) | node id (8 bytes big endian) | context
        return bytes([int(self.type)]) + int(self.node_id).to_bytes(8, "big") + self.context

    @staticmethod
    def decode(data: bytes) -> "ConfChange":
        from consensus.errors import ConfChangeError

        if len(data) < 9:
            raise ConfChangeError(f"conf change payload too short: {len(data)} bytes")
        try:
            kind = ConfChangeType(data[0])
        except ValueError:
            raise ConfChangeError(f"unknown conf change type {data[0]}") from None
        node_id = int.from_bytes(data[1:9], "big")
        if node_id <= 0:
            raise ConfChangeError(f"conf change names node id {node_id}; ids are positive")
        return ConfChange(kind, node_id, bytes(data[9:]))


# >>> compiled twin: the build cuts this block (consensus/_build_core_c.py)
from consensus._select_c import swap_in  # noqa: E402

swap_in(globals(), "types")
# <<< compiled twin
