"""The Raft core: a deterministic, IO-free state machine (etcd-io/raft's raft.go
and rawnode.go, rewritten in Python).

Drive it with ``tick()``, ``step(message)``, ``propose(data)``,
``read_index(context)``, ``transfer_leadership(target)`` and
``propose_conf_change(change)``; collect work with ``has_ready()`` /
``ready()``; handle the Ready as its docstring says (persist, then send
``messages_after_persist``, apply committed entries); then ``advance(ready)``.
Only one Ready is outstanding at a time.

Roles are handlers picked by ``role`` (``_step_role`` / ``tick``) rather
than subclasses.  Time is ticks; the randomized election timeout is drawn from an
injected ``random.Random``.  Safety notes:

* The leader counts ITSELF towards a commit quorum only for entries it has
  persisted (acknowledged in ``advance``), so commits never rely on an
  unpersisted leader log (thesis 10.2.1 "the leader may write its log in
  parallel with replication").
* Commit only by counting replicas of current-term entries (paper figure 8,
  section 5.4.2) - unless the planted-bug switch
  ``Config.unsafe_skip_figure8_commit_rule`` is set (tests only).
* CheckQuorum is evaluated every tick against the last tick each voter was
  heard from, so a leader cut off from a majority steps down within one
  election timeout (plus one tick).
"""
from __future__ import annotations

from random import Random  # seeded instances only: never the global generator
from dataclasses import dataclass, field
from typing import Optional, Sequence

from consensus import confchange
from consensus.errors import (
    Compacted,
    ConfChangeError,
    InvariantViolation,
    MalformedMessage,
    NotLeader,
    ProposalDropped,
    RaftError,
    SnapshotTemporarilyUnavailable,
    StepLocalMessage,
    Unavailable,
    UncommittedLimitExceeded,
)
from consensus.log import RaftLog
from consensus.progress import Progress, ProgressState, VoteResult, quorum_index, tally
from consensus.read_only import ReadOnly, ReadOnlyOption
from consensus.storage import Storage
from consensus.types import (
    LOCAL_MESSAGE_TYPES,
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    NodeId,
    Ready,
    ReadState,
    Snapshot,
    SoftState,
    StateRole,
    make_message,
    make_ready,
)

__all__ = ["Config", "RaftNode", "Status", "ReadOnlyOption", "ConfigError", "TRANSFER_CONTEXT"]

TRANSFER_CONTEXT = b"transfer"  # context of votes caused by a leadership transfer
_INT_FIELDS = ("term", "log_term", "index", "commit", "reject_hint", "snap_offset")  # Message fields that must be ints

MT = MessageType

# The core builds its messages with ``make_message`` (a C call when compiled,
# which cannot take keyword arguments): Message's fields in order, trailing
# defaults omitted - type, to, frm, term, log_term, index, entries, commit,
# reject, reject_hint, snapshot, context, snap_offset, snap_done.


# Enum members as module constants: attribute lookups on an Enum class cost
# more than a global load, and these are read on every message.
_APP = MT.APP
_APP_RESP = MT.APP_RESP
_FORWARD_PROP = MT.FORWARD_PROP
_HEARTBEAT = MT.HEARTBEAT
_HEARTBEAT_RESP = MT.HEARTBEAT_RESP
_PRE_VOTE = MT.PRE_VOTE
_PRE_VOTE_RESP = MT.PRE_VOTE_RESP
_READ_INDEX = MT.READ_INDEX
_READ_INDEX_RESP = MT.READ_INDEX_RESP
_SNAP = MT.SNAP
_TIMEOUT_NOW = MT.TIMEOUT_NOW
_TRANSFER_LEADER = MT.TRANSFER_LEADER
_VOTE = MT.VOTE
_VOTE_RESP = MT.VOTE_RESP
_ROLE_CANDIDATE = StateRole.CANDIDATE
_ROLE_FOLLOWER = StateRole.FOLLOWER
_ROLE_LEADER = StateRole.LEADER
_ROLE_PRE_CANDIDATE = StateRole.PRE_CANDIDATE
_PR_PROBE = ProgressState.PROBE
_PR_REPLICATE = ProgressState.REPLICATE
_PR_SNAPSHOT = ProgressState.SNAPSHOT
_ENTRY_NORMAL = EntryType.NORMAL
_ENTRY_CONF_CHANGE = EntryType.CONF_CHANGE
_READ_SAFE = ReadOnlyOption.SAFE
_READ_UNSAFE_NO_READ_INDEX = ReadOnlyOption.UNSAFE_NO_READ_INDEX


class ConfigError(RaftError, ValueError):
    """A Config that cannot work (e.g. lease reads without check_quorum)."""


@dataclass
class Config:
    """Settings of one Raft node.  ``voters``/``learners`` give the founding
    membership of a NEW cluster: on a founding member's first start (empty
    storage) they are written into the log as committed conf-change entries
    1..n (see ``RaftNode._bootstrap``); otherwise they are ignored and the
    membership comes from storage (snapshot ConfState, or ConfState given to
    MemoryStorage) plus the conf changes applied from the log.  A node joining
    an existing cluster starts with none and waits for the leader.  Sizes are bytes, times are ticks;
    0 for a ``max_*_bytes`` bound means unlimited."""

    id: NodeId
    voters: Sequence[NodeId] = ()
    learners: Sequence[NodeId] = ()
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    pre_vote: bool = True
    check_quorum: bool = True
    read_only_option: ReadOnlyOption = ReadOnlyOption.SAFE
    max_size_per_msg_bytes: int = 1 << 20
    max_inflight_msgs: int = 256
    max_inflight_bytes: int = 0
    max_uncommitted_entries_bytes: int = 0
    max_committed_size_per_ready_bytes: int = 64 << 20
    max_pending_read_index: int = 4096
    snapshot_chunk_bytes: int = 64 << 10
    # A snapshot transfer not acknowledged within this many ticks is retried.
    snapshot_timeout_ticks: int = 0  # 0 = 2 * election_ticks
    require_caught_up_learner: bool = True
    applied: int = 0
    rng: Random = field(default_factory=lambda: Random(0))
    # ---- planted bugs for the chaos harness; never set these in production ----
    unsafe_skip_figure8_commit_rule: bool = False

    def validate(self) -> None:
        if self.id <= 0:
            raise ConfigError(f"node id must be positive, got {self.id}")
        if self.heartbeat_ticks <= 0:
            raise ConfigError("heartbeat_ticks must be positive")
        if self.election_ticks <= self.heartbeat_ticks:
            raise ConfigError("election_ticks must be greater than heartbeat_ticks")
        if self.max_inflight_msgs <= 0:
            raise ConfigError("max_inflight_msgs must be positive")
        if self.snapshot_chunk_bytes <= 0:
            raise ConfigError("snapshot_chunk_bytes must be positive")
        if self.read_only_option == ReadOnlyOption.LEASE_BASED and not self.check_quorum:
            raise ConfigError("lease-based reads require check_quorum=True (thesis 6.4.1)")
        overlap = set(self.voters) & set(self.learners)
        if overlap:
            raise ConfigError(f"nodes {sorted(overlap)} are both voter and learner")


@dataclass(frozen=True)
class Status:
    id: NodeId
    term: int
    vote: NodeId
    commit: int
    applied: int
    last_index: int
    leader_id: NodeId
    role: StateRole
    voters: tuple[NodeId, ...]
    learners: tuple[NodeId, ...]
    progress: dict[NodeId, tuple[str, int, int]]  # id -> (state, match, next); leader only
    lead_transferee: NodeId


class RaftNode:
    """One Raft participant.  See the module docstring for how to drive it."""

    def __init__(self, config: Config, storage: Storage) -> None:
        config.validate()
        self.config = config
        self.id = config.id
        self.storage = storage
        self.rng = config.rng
        self.log = RaftLog(storage)
        self.term = 0
        self.vote = NONE
        self.lead = NONE
        self.role = _ROLE_FOLLOWER
        self.election_timeout = config.election_ticks
        self.heartbeat_timeout = config.heartbeat_ticks
        self.randomized_election_timeout = self.election_timeout
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.ticks = 0  # total ticks seen; a local clock for CheckQuorum
        self.leader_since_tick = 0
        self.voters: frozenset[NodeId] = frozenset()
        self.learners: frozenset[NodeId] = frozenset()
        self.progress: dict[NodeId, Progress] = {}
        self.votes: dict[NodeId, bool] = {}
        self.msgs: list[Message] = []
        self.msgs_after_persist: list[Message] = []
        self.read_states: list[ReadState] = []
        self.read_only = ReadOnly(config.max_pending_read_index)
        self.pending_read_index_messages: list[Message] = []
        self.pending_conf_index = 0
        self.uncommitted_bytes = 0
        self.lead_transferee = NONE
        self.incoming_snapshot: Optional[tuple[NodeId, int, object, bytearray]] = None
        self.snapshot_timeout_ticks = config.snapshot_timeout_ticks or 2 * config.election_ticks
        self._outstanding: Optional[Ready] = None

        hard_state, conf_state = storage.initial_state()
        bootstrap = (
            conf_state.is_empty()
            and hard_state.is_empty()
            and storage.last_index() == 0
            and bool(config.voters or config.learners)
        )
        self._apply_conf_state(conf_state)
        if not hard_state.is_empty():
            if not (self.log.committed <= hard_state.commit <= self.log.last_index()):
                raise InvariantViolation(
                    f"node {self.id}: hard state commit {hard_state.commit} out of range "
                    f"[{self.log.committed}, {self.log.last_index()}]; was the log corrupted, truncated, or lost?"
                )
            self.log.committed = hard_state.commit
            self.term = hard_state.term
            self.vote = hard_state.vote
        if config.applied:
            self.log.applied_to(config.applied)
        self._become_follower(self.term, NONE)
        if bootstrap:
            self._bootstrap(config.voters, config.learners)
        self._prev_soft = SoftState(self.lead, self.role)
        self._prev_hard = self.hard_state()

    # ------------------------------------------------------------------ info
    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def soft_state(self) -> SoftState:
        return SoftState(self.lead, self.role)

    def conf_state(self) -> ConfState:
        return confchange.to_conf_state(self.voters, self.learners)

    @property
    def is_leader(self) -> bool:
        return self.role is _ROLE_LEADER

    def promotable(self) -> bool:
        """May this node campaign?  Only voters (etcd promotable)."""
        return self.id in self.voters

    def status(self) -> Status:
        progress = {}
        if self.role is _ROLE_LEADER:
            progress = {nid: (pr.state.name, pr.match, pr.next) for nid, pr in sorted(self.progress.items())}
        return Status(
            self.id, self.term, self.vote, self.log.committed, self.log.applied, self.log.last_index(),
            self.lead, self.role, tuple(sorted(self.voters)), tuple(sorted(self.learners)), progress,
            self.lead_transferee,
        )

    def describe(self) -> str:
        """State dump used in InvariantViolation messages."""
        return (
            f"node {self.id} role={self.role.name} term={self.term} vote={self.vote} lead={self.lead} "
            f"voters={sorted(self.voters)} learners={sorted(self.learners)} {self.log.describe()} "
            f"progress={ {k: v for k, v in sorted(self.progress.items())} }"
        )

    # ------------------------------------------------------------ membership
    def _bootstrap(self, voters: Sequence[NodeId], learners: Sequence[NodeId]) -> None:
        """A founding member's first start (etcd RawNode.Bootstrap): the
        initial membership is written INTO THE LOG as committed conf-change
        entries of term 1 (indexes 1..n, the same on every founding member),
        so a node that joins later learns it by replication like any other
        change.  Applied here at once; re-applying them later is a no-op."""
        changes = [ConfChange(ConfChangeType.ADD_NODE, v) for v in sorted(set(voters))]
        changes += [ConfChange(ConfChangeType.ADD_LEARNER_NODE, v) for v in sorted(set(learners))]
        self._become_follower(1, NONE)
        entries = [
            Entry(1, position + 1, EntryType.CONF_CHANGE, change.encode()) for position, change in enumerate(changes)
        ]
        self.log.append(entries)
        self.log.commit_to(len(entries))
        self.voters = frozenset(voters)
        self.learners = frozenset(learners)
        self._sync_progress()

    def _apply_conf_state(self, conf_state: ConfState) -> None:
        self.voters = frozenset(conf_state.voters)
        self.learners = frozenset(conf_state.learners)
        self._sync_progress()

    def _sync_progress(self) -> None:
        members = self.voters | self.learners
        for node_id in list(self.progress):
            if node_id not in members:
                del self.progress[node_id]
        next_index = self.log.last_index() + 1
        for node_id in members:
            pr = self.progress.get(node_id)
            if pr is None:
                pr = Progress(next_index, self.config.max_inflight_msgs, self.config.max_inflight_bytes, False)
                pr.recent_active = True  # etcd: a new member counts as active
                pr.last_active_tick = self.ticks
                if node_id == self.id:
                    pr.match = self.log.persisted_last_index()
                self.progress[node_id] = pr
            pr.is_learner = node_id in self.learners

    # ----------------------------------------------------------------- roles
    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.election_timeout + self.rng.randrange(self.election_timeout)
        self.votes = {}
        self.lead_transferee = NONE
        self.incoming_snapshot = None
        last = self.log.last_index()
        persisted = self.log.persisted_last_index()
        for node_id, pr in self.progress.items():
            fresh = Progress(last + 1, self.config.max_inflight_msgs, self.config.max_inflight_bytes, pr.is_learner)
            fresh.last_active_tick = self.ticks
            fresh.recent_active = True
            if node_id == self.id:
                fresh.match = persisted
            self.progress[node_id] = fresh
        self.pending_conf_index = 0
        self.uncommitted_bytes = 0
        self.read_only.reset()
        self.pending_read_index_messages = []

    def _become_follower(self, term: int, lead: NodeId) -> None:
        self._reset(term)
        self.lead = lead
        self.role = _ROLE_FOLLOWER

    def _become_pre_candidate(self) -> None:
        if self.role is _ROLE_LEADER:
            raise InvariantViolation(f"leader cannot become pre-candidate; {self.describe()}")
        # PreVote does not bump the term or change the vote (thesis 9.6).
        self.votes = {}
        self.lead = NONE
        self.role = _ROLE_PRE_CANDIDATE

    def _become_candidate(self) -> None:
        if self.role is _ROLE_LEADER:
            raise InvariantViolation(f"leader cannot become candidate; {self.describe()}")
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = _ROLE_CANDIDATE

    def _become_leader(self) -> None:
        if self.role is _ROLE_FOLLOWER:
            raise InvariantViolation(f"follower cannot become leader directly; {self.describe()}")
        self._reset(self.term)
        self.lead = self.id
        self.role = _ROLE_LEADER
        self.leader_since_tick = self.ticks
        own = self.progress.get(self.id)
        if own is not None:
            own.become_replicate()
            own.match = self.log.persisted_last_index()
            own.next = self.log.last_index() + 1
        # Conservatively treat every unapplied entry as a possible conf change
        # (etcd): no new change until everything we have is applied.
        self.pending_conf_index = self.log.last_index()
        # The no-op of thesis 6.4 / paper 5.4.2: commits the previous terms'
        # entries indirectly and lets ReadIndex know the commit index is current.
        self._append_entries([Entry(self.term, self.log.last_index() + 1, EntryType.NORMAL, b"")])

    # -------------------------------------------------------------- messages
    def _send(self, message: Message) -> None:
        # ``t in AFTER_PERSIST_MESSAGE_TYPES`` spelt as identity tests: the
        # core only sends MessageType members (its own, or a validated peer's
        # when forwarding); a test checks the two agree for every type.
        t = message.type
        if t is _APP_RESP or t is _VOTE_RESP or t is _VOTE:
            self.msgs_after_persist.append(message)
        else:
            self.msgs.append(message)

    # ----------------------------------------------------------------- ticks
    def tick(self) -> None:
        """Advance logical time by one tick."""
        self.ticks += 1
        # The role picks the handler (an identity test: roles are the
        # StateRole singletons, set only by the _become_* methods).
        if self.role is _ROLE_LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self._hup(transfer=False)

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.config.check_quorum and not self._quorum_recently_active():
            # A leader cut off from a majority stops serving (thesis 6.2).
            self._become_follower(self.term, NONE)
            return
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.lead_transferee != NONE:
                self.lead_transferee = NONE  # the transfer did not finish in time
        for node_id, pr in self.progress.items():
            if pr.state is _PR_SNAPSHOT and node_id != self.id:
                pr.snapshot_elapsed_ticks += 1
                if pr.snapshot_elapsed_ticks >= self.snapshot_timeout_ticks:
                    pr.become_probe()  # snapshot presumed lost; retry
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            self._bcast_heartbeat(self.read_only.last_pending_context())

    def _quorum_recently_active(self) -> bool:
        if self.ticks - self.leader_since_tick < self.election_timeout:
            return True
        horizon = self.ticks - self.election_timeout
        active = 0
        for node_id in self.voters:
            if node_id == self.id:
                active += 1
                continue
            pr = self.progress.get(node_id)
            if pr is not None and pr.last_active_tick > horizon:
                active += 1
        return active >= len(self.voters) // 2 + 1

    # -------------------------------------------------------------- election
    def _has_unapplied_conf_change(self) -> bool:
        if self.log.applied >= self.log.committed:
            return False
        lo = max(self.log.applied + 1, self.log.first_index())
        try:
            pending = self.log.slice(lo, self.log.committed + 1)
        except (Compacted, Unavailable):
            return False
        for entry in pending:  # a loop: no closures in compiled methods
            if entry.type == _ENTRY_CONF_CHANGE:
                return True
        return False

    def _hup(self, transfer: bool) -> None:
        if self.role is _ROLE_LEADER or not self.promotable():
            return
        if self._has_unapplied_conf_change():
            return  # etcd: do not campaign with a membership that is about to change
        if self.config.pre_vote and not transfer:
            self._campaign(pre_vote=True, transfer=False)
        else:
            self._campaign(pre_vote=False, transfer=transfer)

    def _campaign(self, pre_vote: bool, transfer: bool) -> None:
        if pre_vote:
            self._become_pre_candidate()
            vote_type = _PRE_VOTE
            term = self.term + 1
        else:
            self._become_candidate()
            vote_type = _VOTE
            term = self.term
        if self._poll(self.id, True) == VoteResult.WON:
            # Single voter: won at once.
            if pre_vote:
                self._campaign(pre_vote=False, transfer=transfer)
            else:
                self._become_leader()
            return
        last = self.log.last_index()
        last_term = self.log.last_term()
        context = TRANSFER_CONTEXT if transfer else b""
        for node_id in sorted(self.voters):
            if node_id == self.id:
                continue
            self._send(make_message(vote_type, node_id, self.id, term, last_term, last, (), 0, False, 0, None, context))

    def _poll(self, node_id: NodeId, granted: bool) -> VoteResult:
        self.votes.setdefault(node_id, granted)
        return tally(self.voters, self.votes)

    # ------------------------------------------------------------------ step
    def step(self, message: Message) -> None:
        """Feed one message from the network.  Malformed messages and local-only
        types raise MalformedMessage / StepLocalMessage before any state changes."""
        self._validate(message)
        self._step_any(message)

    def _validate(self, message: Message) -> None:
        # Runs for every message from the network: fields are read once into
        # locals; the checks and their messages are unchanged.
        if type(message) is not Message and not isinstance(message, Message):
            raise MalformedMessage(f"expected a Message, got {type(message).__name__}")
        m = message  # a Message from here on (typed so in consensus/_raft_c.pxd)
        t = m.type
        if type(t) is not MessageType:  # an Enum with members cannot be subclassed
            raise MalformedMessage(f"unknown message type {t!r}")
        if t in LOCAL_MESSAGE_TYPES:
            raise StepLocalMessage(f"local-only message type {t.name} from node {m.frm}")
        if m.to != self.id:
            raise MalformedMessage(f"{t.name} addressed to {m.to}, this is node {self.id}")
        frm = m.frm
        if type(frm) is not int or frm <= 0 or frm == self.id:
            raise MalformedMessage(f"{t.name} has invalid sender {frm!r}")
        term = m.term
        index = m.index
        log_term = m.log_term
        commit = m.commit
        reject_hint = m.reject_hint
        snap_offset = m.snap_offset
        if not (
            type(term) is int and type(index) is int and type(log_term) is int
            and type(commit) is int and type(reject_hint) is int and type(snap_offset) is int
        ):
            bad = [name for name in _INT_FIELDS if type(getattr(m, name)) is not int]
            raise MalformedMessage(f"{t.name} from {frm}: fields {bad} are not ints")
        if type(m.context) is not bytes or type(m.entries) is not tuple or type(m.reject) is not bool:
            raise MalformedMessage(f"{t.name} from {frm}: context/entries/reject of the wrong type")
        if term < 0 or index < 0 or log_term < 0 or commit < 0 or reject_hint < 0 or snap_offset < 0:
            raise MalformedMessage(f"{t.name} from {frm} has a negative field")
        if log_term > term and (t is _APP or t is _VOTE or t is _PRE_VOTE):
            # PRE_VOTE carries term+1 so log_term <= term still holds.
            raise MalformedMessage(f"{t.name} from {frm}: log_term {log_term} > term {term}")
        entries = m.entries
        if entries:
            if t is not _APP:
                raise MalformedMessage(f"{t.name} from {frm} carries entries")
            expected = index + 1
            for entry in entries:
                if not isinstance(entry, Entry) or type(entry.index) is not int or entry.index != expected:
                    raise MalformedMessage(f"APP from {frm}: entries not consecutive from {index + 1}")
                entry_term = entry.term
                if type(entry_term) is not int or entry_term > term or entry_term < log_term or entry_term <= 0:
                    raise MalformedMessage(f"APP from {frm}: entry {entry.index} has term {entry_term}")
                if not isinstance(entry.data, (bytes, bytearray)) or not isinstance(entry.type, EntryType):
                    raise MalformedMessage(f"APP from {frm}: entry {entry.index} is malformed")
                expected += 1
        if t is _SNAP:
            snap = m.snapshot
            if (
                not isinstance(snap, Snapshot)
                or type(snap.metadata.index) is not int
                or type(snap.metadata.term) is not int
                or type(snap.data) is not bytes
                or snap.metadata.index <= 0
                or snap.metadata.term <= 0
            ):
                raise MalformedMessage(f"SNAP from {m.frm} without a valid snapshot")
            cs = snap.metadata.conf_state
            for v in tuple(cs.voters) + tuple(cs.learners):  # a loop: no closures in compiled methods
                if type(v) is not int or v <= 0:
                    raise MalformedMessage(f"SNAP from {m.frm}: membership with invalid node ids")
            if snap.metadata.term > m.term:
                raise MalformedMessage(f"SNAP from {m.frm}: snapshot term beyond message term")
        elif m.snapshot is not None:
            raise MalformedMessage(f"{t.name} from {frm} carries a snapshot")
        if term == 0 and t in (_APP, _HEARTBEAT, _SNAP, _VOTE, _PRE_VOTE, _TIMEOUT_NOW):
            raise MalformedMessage(f"{t.name} from {frm} without a term")

    def _step_any(self, m: Message) -> None:
        t = m.type
        if m.term == self.term and t is not _VOTE and t is not _PRE_VOTE:
            # The common case (same term, not a vote): none of the term rules
            # below apply.
            self._step_role(m)
            return
        if m.term == 0:
            pass  # term-less requests (READ_INDEX, TRANSFER_LEADER, FORWARD_PROP)
        elif m.term > self.term:
            if m.type is _VOTE or m.type is _PRE_VOTE:
                force = m.context == TRANSFER_CONTEXT
                in_lease = (
                    self.config.check_quorum and self.lead != NONE and self.election_elapsed < self.election_timeout
                )
                if not force and in_lease:
                    # We heard from a live leader within the minimum election
                    # timeout: ignore a disruptive candidate (thesis 4.2.3).
                    return
            if m.type is _PRE_VOTE:
                pass  # never change term for a pre-vote
            elif m.type is _PRE_VOTE_RESP and not m.reject:
                pass  # granted pre-votes carry the future term; bumped on winning
            elif m.type is _APP or m.type is _HEARTBEAT or m.type is _SNAP:
                self._become_follower(m.term, m.frm)
            else:
                self._become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.config.check_quorum or self.config.pre_vote) and (m.type is _HEARTBEAT or m.type is _APP):
                # Tell a stale leader about the new term so it steps down; with
                # check_quorum/pre_vote we would otherwise ignore it silently.
                self._send(make_message(_APP_RESP, m.frm, self.id, self.term))
            elif m.type is _PRE_VOTE:
                self._send(make_message(_PRE_VOTE_RESP, m.frm, self.id, self.term, 0, 0, (), 0, True))
            return

        if m.type is _VOTE or m.type is _PRE_VOTE:
            can_vote = (
                self.vote == m.frm
                or (self.vote == NONE and self.lead == NONE)
                or (m.type is _PRE_VOTE and m.term > self.term)
            )
            resp = _VOTE_RESP if m.type is _VOTE else _PRE_VOTE_RESP
            if can_vote and self.log.is_up_to_date(m.index, m.log_term):
                self._send(make_message(resp, m.frm, self.id, m.term))
                if m.type is _VOTE:
                    self.election_elapsed = 0
                    self.vote = m.frm
            else:
                self._send(make_message(resp, m.frm, self.id, self.term, 0, 0, (), 0, True))
            return
        self._step_role(m)

    def _step_role(self, m: Message) -> None:
        # Identity tests: roles are StateRole singletons (see tick).
        role = self.role
        if role is _ROLE_LEADER:
            self._step_leader(m)
        elif role is _ROLE_FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    # -------------------------------------------------------- leader handlers
    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t is _READ_INDEX:
            self._leader_read_index(m)
            return
        if t is _FORWARD_PROP:
            for entry in m.entries:
                try:
                    self.propose(entry.data)
                except RaftError:
                    pass  # forwarded proposals are best effort; the client times out
            return
        pr = self.progress.get(m.frm)
        if pr is None:
            return  # not a member (any more)
        if t is _APP_RESP:
            pr.recent_active = True  # _mark_active inlined
            pr.last_active_tick = self.ticks
            if m.reject:
                next_probe = m.reject_hint
                if m.log_term > 0:
                    next_probe, _ = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
                if pr.maybe_decr_to(m.index, next_probe):
                    if pr.state is _PR_REPLICATE:
                        pr.become_probe()
                    self._send_append(m.frm, pr)
                return
            old_paused = pr.is_paused()
            if pr.maybe_update(m.index):
                if pr.state is _PR_PROBE:
                    pr.become_replicate()
                elif pr.state is _PR_SNAPSHOT and pr.match >= pr.pending_snapshot:
                    pr.become_probe()
                    pr.become_replicate()
                elif pr.state is _PR_REPLICATE:
                    pr.inflights.free_le(m.index)
                if self._maybe_commit():
                    self._bcast_append()
                elif old_paused:
                    self._send_append(m.frm, pr)
                # Stream what is left within the flow-control window.
                while pr.state is _PR_REPLICATE and self._send_append(m.frm, pr, send_if_empty=False):
                    pass
                if m.frm == self.lead_transferee and pr.match == self.log.last_index():
                    self._send(make_message(_TIMEOUT_NOW, m.frm, self.id, self.term))
            return
        if t is _HEARTBEAT_RESP:
            pr.recent_active = True  # _mark_active inlined
            pr.last_active_tick = self.ticks
            pr.msg_app_flow_paused = False
            if pr.match < self.log.last_index() or pr.state is _PR_PROBE:
                self._send_append(m.frm, pr)
            if self.config.read_only_option is not _READ_SAFE or not m.context:
                return
            acks = self.read_only.recv_ack(m.frm, m.context)
            if len(acks & self.voters) < len(self.voters) // 2 + 1:
                return
            for status in self.read_only.advance(m.context):
                self._respond_read_index(status.request, status.index)
            return
        if t is _TRANSFER_LEADER:
            self._leader_transfer(m.frm)
            return
        # VOTE_RESP, stale responses and anything else: nothing to do.

    def _mark_active(self, pr: Progress) -> None:
        pr.recent_active = True
        pr.last_active_tick = self.ticks

    def _leader_transfer(self, target: NodeId) -> None:
        pr = self.progress.get(target)
        if pr is None or pr.is_learner or target not in self.voters:
            return
        if self.lead_transferee != NONE:
            if self.lead_transferee == target:
                return
            self.lead_transferee = NONE
        if target == self.id:
            return
        self.election_elapsed = 0  # the transfer must finish within one election timeout
        self.lead_transferee = target
        if pr.match == self.log.last_index():
            self._send(make_message(_TIMEOUT_NOW, target, self.id, self.term))
        else:
            self._send_append(target, pr)

    def _committed_entry_in_current_term(self) -> bool:
        return self.log.term_or_zero(self.log.committed) == self.term

    def _leader_read_index(self, m: Message) -> None:
        if len(self.voters) == 1 and self.id in self.voters:  # == {self.id}, without building a set
            self._respond_read_index(m, self.log.committed)
            return
        if not self._committed_entry_in_current_term():
            # Thesis 6.4 step 1: the commit index is only known to be current
            # once an entry of this term commits; hold the request until then.
            if len(self.pending_read_index_messages) < self.config.max_pending_read_index:
                self.pending_read_index_messages.append(m)
            return
        self._serve_read_index(m)

    def _serve_read_index(self, m: Message) -> None:
        option = self.config.read_only_option
        if option is _READ_SAFE:
            if self.read_only.add_request(self.log.committed, m):
                self.read_only.recv_ack(self.id, m.context)
                self._bcast_heartbeat(m.context)
        else:
            self._respond_read_index(m, self.log.committed)

    def _respond_read_index(self, request: Message, index: int) -> None:
        if request.frm in (NONE, self.id):
            self.read_states.append(ReadState(index, request.context))
        else:
            self._send(
                make_message(
                    _READ_INDEX_RESP, request.frm, self.id, self.term, 0, index, (), 0, False, 0, None,
                    request.context,
                )
            )

    def _release_pending_read_index(self) -> None:
        if not self.pending_read_index_messages or not self._committed_entry_in_current_term():
            return
        pending, self.pending_read_index_messages = self.pending_read_index_messages, []
        for m in pending:
            self._serve_read_index(m)

    def _maybe_commit(self) -> bool:
        matches = []
        progress = self.progress
        for v in self.voters:  # a loop: pr is typed Progress in the .pxd (slot reads)
            pr = progress.get(v)
            if pr is not None:
                matches.append(pr.match)
        if len(matches) != len(self.voters):
            raise InvariantViolation(f"voter without progress; {self.describe()}")
        index = quorum_index(matches)
        if self.config.unsafe_skip_figure8_commit_rule:
            # PLANTED BUG (tests only): commit by counting replicas of entries
            # of any term - exactly what paper figure 8 shows is unsafe.
            if index > self.log.committed:
                self.log.commit_to(index)
                self._release_pending_read_index()
                return True
            return False
        if self.log.maybe_commit(index, self.term):
            self._release_pending_read_index()
            return True
        return False

    def _send_append(self, to: NodeId, pr: Progress, send_if_empty: bool = True) -> bool:
        if pr.is_paused():
            return False
        if not send_if_empty and pr.next == self.log.last_index() + 1:
            # Nothing to send, and term(last index) always exists: the slow
            # path below would return False too.
            return False
        prev_index = pr.next - 1
        try:
            prev_term = self.log.term(prev_index)
            entries = self.log.entries_from(pr.next, self.config.max_size_per_msg_bytes)
        except (Compacted, Unavailable):
            return self._send_snapshot(to, pr)
        if not entries and not send_if_empty:
            return False
        size = 0
        for entry in entries:
            size += 16 + len(entry.data)
        self._send(
            make_message(_APP, to, self.id, self.term, prev_term, prev_index, tuple(entries), self.log.committed)
        )
        pr.sent_entries(len(entries), size)
        return True

    def _send_snapshot(self, to: NodeId, pr: Progress) -> bool:
        if not pr.recent_active:
            return False
        try:
            snapshot = self.log.snapshot()
        except SnapshotTemporarilyUnavailable:
            return False
        if snapshot.is_empty():
            raise InvariantViolation(f"need a snapshot for node {to} but storage has none; {self.describe()}")
        pr.become_snapshot(snapshot.metadata.index)
        data = snapshot.data
        chunk = self.config.snapshot_chunk_bytes
        offset = 0
        while True:
            part = data[offset : offset + chunk]
            done = offset + chunk >= len(data)
            self._send(
                make_message(
                    _SNAP, to, self.id, self.term, 0, 0, (), 0, False, 0, Snapshot(snapshot.metadata, part), b"",
                    offset, done,
                )
            )
            if done:
                break
            offset += chunk
        return True

    def _bcast_append(self) -> None:
        for node_id, pr in self.progress.items():
            if node_id != self.id:
                self._send_append(node_id, pr)

    def _bcast_heartbeat(self, context: bytes) -> None:
        committed = self.log.committed
        for node_id, pr in self.progress.items():
            if node_id == self.id:
                continue
            # Never tell a follower to commit beyond what it is known to hold.
            commit = min(pr.match, committed)
            self._send(
                make_message(_HEARTBEAT, node_id, self.id, self.term, 0, 0, (), commit, False, 0, None, context)
            )

    def _append_entries(self, entries: list[Entry]) -> None:
        self.log.append(entries)
        # Our own progress advances in advance(), once these are persisted.

    # ----------------------------------------------------- candidate handlers
    def _step_candidate(self, m: Message) -> None:
        t = m.type
        if t is _APP:
            self._become_follower(m.term, m.frm)
            self._handle_append(m)
        elif t is _HEARTBEAT:
            self._become_follower(m.term, m.frm)
            self._handle_heartbeat(m)
        elif t is _SNAP:
            self._become_follower(m.term, m.frm)
            self._handle_snapshot(m)
        elif (t is _PRE_VOTE_RESP and self.role is _ROLE_PRE_CANDIDATE) or (
            t is _VOTE_RESP and self.role is _ROLE_CANDIDATE
        ):
            result = self._poll(m.frm, not m.reject)
            if result == VoteResult.WON:
                if self.role is _ROLE_PRE_CANDIDATE:
                    self._campaign(pre_vote=False, transfer=False)
                else:
                    self._become_leader()
                    self._bcast_append()
            elif result == VoteResult.LOST:
                self._become_follower(self.term, NONE)
        # TIMEOUT_NOW, READ_INDEX ... are ignored while campaigning.

    # ------------------------------------------------------ follower handlers
    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t is _APP:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_append(m)
        elif t is _HEARTBEAT:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_heartbeat(m)
        elif t is _SNAP:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_snapshot(m)
        elif t is _TIMEOUT_NOW:
            # Leadership transfer (thesis 3.10): campaign now, skipping PreVote.
            self._hup(transfer=True)
        elif t is _READ_INDEX_RESP:
            self.read_states.append(ReadState(m.index, m.context))
        elif (t is _READ_INDEX or t is _TRANSFER_LEADER or t is _FORWARD_PROP) and self.lead != NONE:
            # Relay to the leader, keeping the original sender: the leader
            # answers it directly (and TRANSFER_LEADER's sender is the target).
            self._send(make_message(t, self.lead, m.frm, 0, 0, 0, m.entries, 0, False, 0, None, m.context))

    def _handle_append(self, m: Message) -> None:
        if m.index < self.log.committed:
            self._send(make_message(_APP_RESP, m.frm, self.id, self.term, 0, self.log.committed))
            return
        last_new, ok = self.log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if ok:
            self._send(make_message(_APP_RESP, m.frm, self.id, self.term, 0, last_new))
            return
        hint_index = min(m.index, self.log.last_index())
        hint_index, hint_term = self.log.find_conflict_by_term(hint_index, m.log_term)
        self._send(
            make_message(_APP_RESP, m.frm, self.id, self.term, hint_term, m.index, (), 0, True, hint_index)
        )

    def _handle_heartbeat(self, m: Message) -> None:
        self.log.commit_to(min(m.commit, self.log.last_index()))
        self._send(make_message(_HEARTBEAT_RESP, m.frm, self.id, self.term, 0, 0, (), 0, False, 0, None, m.context))

    def _handle_snapshot(self, m: Message) -> None:
        snap = m.snapshot
        assert snap is not None
        meta = snap.metadata
        if m.snap_offset == 0:
            self.incoming_snapshot = (m.frm, meta.index, meta, bytearray())
        current = self.incoming_snapshot
        if current is None or current[0] != m.frm or current[2] != meta or len(current[3]) != m.snap_offset:
            # A chunk out of order (lost or duplicated): drop the transfer; the
            # leader retries after its snapshot timeout.
            self.incoming_snapshot = None
            return
        buffer = current[3]
        buffer.extend(snap.data)
        if not m.snap_done:
            return
        self.incoming_snapshot = None
        full = Snapshot(meta, bytes(buffer))
        if self._restore(full):
            self._send(make_message(_APP_RESP, m.frm, self.id, self.term, 0, self.log.last_index()))
        else:
            self._send(make_message(_APP_RESP, m.frm, self.id, self.term, 0, self.log.committed))

    def _restore(self, snapshot: Snapshot) -> bool:
        meta = snapshot.metadata
        if meta.index <= self.log.committed:
            return False
        if self.role is not _ROLE_FOLLOWER:
            raise InvariantViolation(f"restoring a snapshot while {self.role.name}; {self.describe()}")
        cs = meta.conf_state
        if self.id not in cs.voters and self.id not in cs.learners:
            return False  # etcd: a snapshot whose membership omits us is refused
        if self.log.match_term(meta.index, meta.term):
            # We already have the log up to there: fast-forward the commit.
            self.log.commit_to(meta.index)
            return False
        self.log.restore(snapshot)
        self.progress = {}
        self._apply_conf_state(cs)
        return True

    # ------------------------------------------------------------ public API
    def propose(self, data: bytes) -> int:
        """Append ``data`` as a new entry on the leader; returns its index.
        Raises NotLeader (with a hint), ProposalDropped or
        UncommittedLimitExceeded.  Committed-ness is learnt by applying."""
        # bytes(data) of a bytes object is that object, but costs a __bytes__
        # lookup and call; skip it for the common case.
        return self._propose_entry(_ENTRY_NORMAL, data if type(data) is bytes else bytes(data))

    def _propose_entry(self, entry_type: EntryType, data: bytes) -> int:
        if self.role is not _ROLE_LEADER:
            raise NotLeader(self.lead or None)
        if self.id not in self.progress:
            raise ProposalDropped("this node is no longer a member")
        if self.lead_transferee != NONE:
            raise ProposalDropped(f"leadership transfer to {self.lead_transferee} in progress")
        limit = self.config.max_uncommitted_entries_bytes
        size = len(data)
        if limit > 0 and self.uncommitted_bytes > 0 and self.uncommitted_bytes + size > limit:
            raise UncommittedLimitExceeded(self.uncommitted_bytes + size, limit)
        self.uncommitted_bytes += size
        index = self.log.last_index() + 1
        self._append_entries([Entry(self.term, index, entry_type, data)])
        self._bcast_append()
        return index

    def propose_conf_change(self, change: ConfChange) -> int:
        """Propose one membership change (see consensus/confchange.py); it takes
        effect when the application applies the entry and calls
        ``apply_conf_change``.  Returns the entry index."""
        if self.role is not _ROLE_LEADER:
            raise NotLeader(self.lead or None)
        if self.pending_conf_index > self.log.applied:
            raise ProposalDropped(
                f"a conf change is pending (index {self.pending_conf_index}, applied {self.log.applied})"
            )
        if not self._committed_entry_in_current_term():
            raise ProposalDropped("leader has not yet committed an entry in its term")
        confchange.validate(change, self.voters, self.learners)
        if change.type == ConfChangeType.ADD_NODE and self.config.require_caught_up_learner:
            pr = self.progress.get(change.node_id)
            if change.node_id not in self.learners or pr is None:
                raise ConfChangeError(f"add node {change.node_id} as a learner first, then promote it")
            if pr.match < self.log.committed:
                raise ConfChangeError(
                    f"learner {change.node_id} is not caught up (match {pr.match} < commit {self.log.committed})"
                )
        index = self._propose_entry(EntryType.CONF_CHANGE, change.encode())
        self.pending_conf_index = index
        return index

    def apply_conf_change(self, change: ConfChange) -> ConfState:
        """Make an applied CONF_CHANGE entry take effect; returns the new
        membership (pass it to Storage.create_snapshot later)."""
        voters, learners = confchange.apply(change, self.voters, self.learners)
        self.voters, self.learners = voters, learners
        self._sync_progress()
        if self.role is _ROLE_LEADER:
            if self.id not in self.voters:
                # Removed or demoted: step down (thesis 4.2.2); a remaining
                # voter times out and takes over.
                self._become_follower(self.term, NONE)
            else:
                if self.lead_transferee != NONE and self.lead_transferee not in self.voters:
                    self.lead_transferee = NONE
                if self._maybe_commit():
                    self._bcast_append()
                else:
                    for node_id, pr in self.progress.items():
                        if node_id != self.id:
                            # Probe new members at once (match 0); others only if behind.
                            self._send_append(node_id, pr, send_if_empty=pr.match == 0)
        elif self.role in (_ROLE_CANDIDATE, _ROLE_PRE_CANDIDATE) and self.id not in self.voters:
            self._become_follower(self.term, NONE)
        return self.conf_state()

    def read_index(self, context: bytes) -> None:
        """Ask for a linearizable read point tagged ``context`` (unique per
        request).  The answer appears later as a ReadState in a Ready; no
        answer (leader change, loss) means the driver times the read out."""
        if type(context) is not bytes:  # see propose
            context = bytes(context)
        if not context:
            raise ValueError("read_index needs a non-empty, unique context")
        if self.config.read_only_option is _READ_UNSAFE_NO_READ_INDEX:
            # PLANTED BUG (tests only): serve from the local commit index.
            self.read_states.append(ReadState(self.log.committed, context))
            return
        if self.role is _ROLE_LEADER:
            self._leader_read_index(make_message(_READ_INDEX, self.id, NONE, 0, 0, 0, (), 0, False, 0, None, context))
        elif self.lead != NONE:
            self._send(make_message(_READ_INDEX, self.lead, self.id, 0, 0, 0, (), 0, False, 0, None, context))
        else:
            raise NotLeader(None, "no leader known to confirm the read; retry later")

    def transfer_leadership(self, target: NodeId) -> None:
        """Hand leadership to voter ``target`` (thesis 3.10): the leader
        catches it up, then sends TIMEOUT_NOW.  Proposals are dropped
        meanwhile; the transfer is abandoned after one election timeout."""
        if self.role is _ROLE_LEADER:
            self._leader_transfer(target)
        elif self.lead != NONE:
            # etcd convention: TRANSFER_LEADER's sender field names the transferee.
            self._send(make_message(_TRANSFER_LEADER, self.lead, target, 0))
        else:
            raise NotLeader(None, "no leader known to transfer leadership from")

    def campaign(self) -> None:
        """Start an election now (as if the election timeout had elapsed)."""
        self._hup(transfer=False)

    def report_snapshot(self, node_id: NodeId, failed: bool) -> None:
        """Driver feedback on a snapshot transfer (etcd ReportSnapshot)."""
        pr = self.progress.get(node_id)
        if self.role is not _ROLE_LEADER or pr is None or pr.state is not _PR_SNAPSHOT:
            return
        if failed:
            pr.pending_snapshot = 0
        pr.become_probe()
        pr.msg_app_flow_paused = True  # wait for a heartbeat reply before probing

    def report_unreachable(self, node_id: NodeId) -> None:
        pr = self.progress.get(node_id)
        if self.role is _ROLE_LEADER and pr is not None and pr.state is _PR_REPLICATE:
            pr.become_probe()

    def force_new_cluster(self) -> None:
        """LOUDLY UNSAFE recovery from a lost quorum (``docker swarm init
        --force-new-cluster``): make this node the only voter, whatever the
        others think.  Entries the lost majority committed but this node never
        saw are gone for good, and if the "lost" nodes come back they form a
        second cluster with a diverging history.  Call it on a freshly
        restarted node only, with the other nodes permanently retired.

        It appends (and commits locally, without any quorum) one REMOVE_NODE
        conf change per other member, so the log itself records the rewrite;
        the application applies them like any conf change.
        """
        others = sorted((self.voters | self.learners) - {self.id})
        self._become_follower(self.term + 1, NONE)
        last = self.log.last_index()
        entries = [
            Entry(self.term, last + 1 + position, EntryType.CONF_CHANGE,
                  ConfChange(ConfChangeType.REMOVE_NODE, node_id).encode())
            for position, node_id in enumerate(others)
        ]
        if entries:
            self.log.append(entries)
        self.voters = frozenset({self.id})
        self.learners = frozenset()
        self._sync_progress()
        self.log.commit_to(self.log.last_index())

    # ----------------------------------------------------------------- Ready
    def has_ready(self) -> bool:
        if self._outstanding is not None:
            return False
        log = self.log
        prev_hard = self._prev_hard
        prev_soft = self._prev_soft
        return bool(
            self.msgs
            or self.msgs_after_persist
            or self.read_states
            or log.unstable_entries
            or log.unstable_snapshot is not None
            or log.committed != prev_hard.commit
            or self.term != prev_hard.term
            or self.vote != prev_hard.vote
            or self.lead != prev_soft.leader_id
            or self.role is not prev_soft.role  # roles are StateRole singletons
            or (log.committed > log.applied and log.has_next_committed_entries())
        )

    def ready(self) -> Ready:
        """Collect the pending work; call ``advance`` with it before the next one."""
        if self._outstanding is not None:
            raise InvariantViolation(f"ready() called before advance() of the previous Ready; {self.describe()}")
        log = self.log
        soft = None
        prev_soft = self._prev_soft
        if self.lead != prev_soft.leader_id or self.role is not prev_soft.role:
            soft = SoftState(self.lead, self.role)
            self._prev_soft = soft
        unstable = log.unstable_entries
        snapshot = log.unstable_snapshot
        must_sync = bool(unstable) or snapshot is not None
        hard = None
        previous = self._prev_hard
        term = self.term
        vote = self.vote
        commit = log.committed
        if term != previous.term or vote != previous.vote:
            must_sync = True
            hard = self._prev_hard = HardState(term, vote, commit)
        elif commit != previous.commit:
            hard = self._prev_hard = HardState(term, vote, commit)
        committed = (
            log.next_committed_entries(self.config.max_committed_size_per_ready_bytes) if commit > log.applied else ()
        )
        if committed and self.role is _ROLE_LEADER and self.uncommitted_bytes:
            released = 0
            for entry in committed:
                released += len(entry.data)
            self.uncommitted_bytes = max(0, self.uncommitted_bytes - released)
        msgs = self.msgs
        after = self.msgs_after_persist
        reads = self.read_states
        rd = make_ready(
            soft,
            hard,
            tuple(unstable) if unstable else (),
            snapshot,
            tuple(committed) if committed else (),
            tuple(msgs) if msgs else (),
            tuple(after) if after else (),
            tuple(reads) if reads else (),
            must_sync,
        )
        # Fresh lists only for the ones handed out (an empty one stays).
        if msgs:
            self.msgs = []
        if after:
            self.msgs_after_persist = []
        if reads:
            self.read_states = []
        self._outstanding = rd
        return rd

    def advance(self, rd: Ready) -> None:
        """The driver persisted ``rd``, sent its messages and applied its
        committed entries."""
        if rd is not self._outstanding:
            raise InvariantViolation(f"advance() with a Ready that is not the outstanding one; {self.describe()}")
        self._outstanding = None
        done = rd  # the Ready ready() built: typed in the .pxd, so its fields are slot reads
        log = self.log
        snapshot = done.snapshot
        if snapshot is not None:
            log.stable_snapshot_to(snapshot.metadata.index)
            if snapshot.metadata.index > log.applied:
                log.applied = snapshot.metadata.index
        committed = done.committed_entries
        if committed:
            last_applied = committed[-1]
            log.applied_to(last_applied.index)
        entries = done.entries
        if entries:
            last = entries[-1]
            log.stable_to(last.index, last.term)
            if self.role is _ROLE_LEADER:
                own = self.progress.get(self.id)
                if own is not None and own.maybe_update(min(last.index, log.persisted_last_index())):
                    if self._maybe_commit():
                        self._bcast_append()


# >>> compiled twin: the build cuts this block (consensus/_build_core_c.py)
from consensus._select_c import swap_in  # noqa: E402

swap_in(globals(), "raft")
# <<< compiled twin
