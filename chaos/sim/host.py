"""Simulated processes: a manager (RaftNode + Application + SimDisk) and a
plain process (a worker: anything that exchanges packets, no Raft).

A host turns the core's Ready into simulated effects, in the order the
Ready docstring prescribes: send ``messages`` now; write the Ready to the
SimDisk and fsync after ``fsync_latency_us``; only then send
``messages_after_persist``, install the snapshot, apply committed entries,
serve reads and ``advance``.
"""
from __future__ import annotations

import random
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol, Sequence

from consensus.errors import ConfChangeError, MalformedMessage, NotLeader, RaftError
from consensus.raft import Config, RaftNode
from consensus.types import ConfChange, ConfState, EntryType, Message, Ready, StateRole

from chaos.sim.app import Application
from chaos.sim.client import FAIL, OK, ClientOp, DeferredCall
from chaos.sim.disk import SimDisk
from chaos.sim.rng import derive_rng

_LEADER = StateRole.LEADER
_CONF_CHANGE = EntryType.CONF_CHANGE

if TYPE_CHECKING:
    from chaos.sim.simulation import Simulation

# Bound on packets held for a paused process (its socket buffer).
PAUSED_INBOX_PACKETS_MAX = 10_000


class _PausableHost:
    """Pause and resume, shared by managers and plain processes: a paused host
    holds incoming packets (up to PAUSED_INBOX_PACKETS_MAX, the rest dropped and
    counted) and handles them in arrival order when it resumes."""

    sim: "Simulation"
    node_id: int
    alive: bool
    paused: bool
    inbox: deque[tuple[int, Sequence[Any]]]
    dropped_messages: int

    def _handle_packet(self, src: int, items: Sequence[Any]) -> None:
        raise NotImplementedError

    def receive(self, src: int, items: Sequence[Any]) -> None:
        """A packet from ``src`` arrives (the simulation's delivery event)."""
        if self._admits(src, items):
            self._handle_packet(src, items)

    def _admits(self, src: int, items: Sequence[Any]) -> bool:
        """Whether an arriving packet is handled now: not when its link was
        cut while it was in flight or the host is down; a paused host holds it."""
        sim = self.sim
        blocked = sim.network.blocked
        if blocked and (src, self.node_id) in blocked:
            return False  # cut while in flight
        if sim._trace_on:
            sim.trace.append((sim.now_us, "recv", src, self.node_id))
        if not self.alive:
            return False
        if self.paused:
            self._hold(src, items)
            return False
        return True

    def _hold(self, src: int, items: Sequence[Any]) -> None:
        if len(self.inbox) < PAUSED_INBOX_PACKETS_MAX:
            self.inbox.append((src, items))
        else:
            self.dropped_messages += len(items)

    def pause(self) -> None:
        if self.alive:
            self.paused = True

    def resume(self) -> None:
        if not self.alive or not self.paused:
            return
        self.paused = False
        while self.inbox and self.alive and not self.paused:
            src, items = self.inbox.popleft()
            self._handle_packet(src, items)


class ManagerHost(_PausableHost):
    """One Raft manager.  ``raft`` and ``app`` are None while crashed."""

    def __init__(self, sim: "Simulation", node_id: int, founding: Optional[ConfState]) -> None:
        self.sim = sim
        self.node_id = node_id
        # Founding members bootstrap the membership into their log on first start.
        self.founding = founding or ConfState()
        self.disk = SimDisk()
        self.raft: Optional[RaftNode] = None
        self.app: Optional[Application] = None
        self.alive = False
        self.paused = False
        self.incarnation = 0
        self.tick_interval_us = sim.config.tick_interval_us
        self.inbox: deque[tuple[int, Sequence[Any]]] = deque()
        self.syncing: Optional[Ready] = None
        self.pending_proposals: dict[int, tuple[int, ClientOp]] = {}
        self.pending_reads: dict[bytes, tuple[ClientOp, Any]] = {}
        self.waiting_reads: list[tuple[int, bytes]] = []
        self.leader_id = 0
        self.rng: random.Random = derive_rng(sim.seed, "app", node_id, 0)
        self.snapshot_index = 0
        self.dropped_messages = 0
        self.dropped_proposals = 0
        self.applied_entries = 0
        # Read once per Ready: the simulation's config does not change in a run.
        self.fsync_latency_us = sim.config.fsync_latency_us
        self.snapshot_every_entries = sim.config.snapshot_every_entries

    # ---------------------------------------------------------- HostContext
    @property
    def now_us(self) -> int:
        return self.sim.now_us

    @property
    def is_leader(self) -> bool:
        return self.raft is not None and self.raft.role is _LEADER

    @property
    def applied_index(self) -> int:
        return self.raft.log.applied if self.raft is not None else 0

    def send(self, dst: int, payload: Any) -> None:
        """Send a non-Raft payload to another process."""
        if self.alive and not self.paused:
            self.sim._send_packet(self.node_id, dst, [payload])

    def propose(self, data: bytes, callback: Optional[Callable[[Any], None]] = None) -> None:
        """Propose from inside the application (leader-only components).
        ``callback(ClientResult)`` if given; errors are counted, not raised."""
        self.sim.propose(self.node_id, data, callback=callback, timeout_us=self.sim.config.client_timeout_us)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        assert not self.alive, f"node {self.node_id} already running"
        self.incarnation += 1
        sim = self.sim
        storage = self.disk.durable
        snapshot = storage.snapshot()
        cfg = sim.config
        raft_config = Config(
            id=self.node_id,
            voters=self.founding.voters,
            learners=self.founding.learners,
            election_ticks=cfg.election_ticks,
            heartbeat_ticks=cfg.heartbeat_ticks,
            pre_vote=cfg.pre_vote,
            check_quorum=cfg.check_quorum,
            read_only_option=cfg.read_only_option,
            applied=snapshot.metadata.index,
            rng=derive_rng(sim.seed, "raft", self.node_id, self.incarnation),
            **cfg.raft_overrides,
        )
        self.raft = RaftNode(raft_config, storage)
        self.app = sim.app_factory(self.node_id)
        if not snapshot.is_empty():
            self.app.restore(snapshot.data)
        self.snapshot_index = snapshot.metadata.index
        self.rng = derive_rng(sim.seed, "app", self.node_id, self.incarnation)
        self.alive = True
        self.paused = False
        self.syncing = None
        self.leader_id = 0
        self.inbox.clear()
        sim._join_ticks(self)
        self.drain()

    def crash(self, lose_unsynced: bool) -> None:
        if not self.alive:
            return
        self.alive = False
        self.paused = False
        self.sim._leave_ticks(self)
        self.disk.crash(lose_unsynced)
        self.raft = None
        self.app = None
        self.syncing = None
        self.inbox.clear()
        # Pending client operations are left to their timeouts: unknown outcome.
        self.pending_proposals.clear()
        self.pending_reads.clear()
        self.waiting_reads.clear()

    # --------------------------------------------------------------- inputs
    def tick_now(self) -> None:
        """One Raft tick (called by the simulation's tick grid)."""
        if not self.alive or self.paused:
            return
        raft = self.raft
        assert raft is not None and self.app is not None
        if self.sim._trace_on:
            self.sim.trace.append((self.sim.now_us, "tick", self.node_id))
        raft.tick()
        proposals = self.app.on_tick(self)
        for data in proposals or ():
            if raft.role is _LEADER:
                try:
                    raft.propose(data)
                except RaftError:
                    self.dropped_proposals += 1
            else:
                self.dropped_proposals += 1
        self.drain()

    def receive(self, src: int, items: Sequence[Any]) -> None:
        # The base class's receive with the common packet (one Raft message)
        # handled inline: this runs for nearly every simulated event.
        if not self._admits(src, items):
            return
        if len(items) == 1 and type(items[0]) is Message:
            try:
                self.raft.step(items[0])
            except MalformedMessage:
                self.dropped_messages += 1
            self.drain()
            return
        self._handle_packet(src, items)

    def _handle_packet(self, src: int, items: Sequence[Any]) -> None:
        raft = self.raft
        assert raft is not None and self.app is not None
        for item in items:
            if isinstance(item, Message):
                try:
                    raft.step(item)
                except MalformedMessage:
                    self.dropped_messages += 1
            elif isinstance(item, DeferredCall):
                item.call()
                if not self.alive:
                    return
            else:
                self.app.on_message(self, src, item)
        self.drain()

    def client_propose(self, op: ClientOp, data: bytes, conf_change: Optional[ConfChange] = None) -> None:
        raft = self.raft
        assert raft is not None
        try:
            if conf_change is not None:
                index = raft.propose_conf_change(conf_change)
            else:
                index = raft.propose(data)
        except NotLeader as error:
            op.complete(self.sim.now_us, FAIL, None, error=f"not leader (hint {error.leader_hint})")
            return
        except (RaftError, ConfChangeError) as error:
            op.complete(self.sim.now_us, FAIL, None, error=str(error))
            return
        self.pending_proposals[index] = (raft.term, op)
        self.drain()

    def client_read(self, op: ClientOp, query: Any) -> None:
        raft = self.raft
        assert raft is not None
        context = b"r%d" % op.op_id
        try:
            raft.read_index(context)
        except NotLeader as error:
            op.complete(self.sim.now_us, FAIL, None, error=f"not leader (hint {error.leader_hint})")
            return
        self.pending_reads[context] = (op, query)
        self.drain()

    # ---------------------------------------------------------------- Ready
    def drain(self) -> None:
        """Hand every available Ready to the simulated world."""
        raft = self.raft
        sim = self.sim
        while self.alive and self.syncing is None and raft.has_ready():
            rd = raft.ready()
            if sim._ready_observers:
                for observer in sim._ready_observers:
                    observer.on_ready(sim, self, rd)
            soft_state = rd.soft_state
            if soft_state is not None and soft_state.leader_id != self.leader_id:
                self.leader_id = soft_state.leader_id
                sim._trace_event("lead", self.node_id, raft.term, self.leader_id)
                assert self.app is not None
                self.app.on_leader_change(self, self.leader_id)
                if not self.alive:
                    return
            if rd.messages:
                self._send_messages(rd.messages)
            if rd.must_sync:
                self.disk.write(rd.snapshot, rd.entries, rd.hard_state)
                latency = self.fsync_latency_us
                if latency > 0:
                    self.syncing = rd
                    sim._schedule(latency, self._on_fsync, self.incarnation, rd)
                    return
                self.disk.sync()
            elif rd.hard_state is not None:
                # Only the commit index moved: written without waiting for an
                # fsync (etcd MustSync); harmless if a crash loses it.
                self.disk.write_lazy(rd.hard_state)
            self._finish(rd)

    def _on_fsync(self, incarnation: int, rd: Ready) -> None:
        if incarnation != self.incarnation or not self.alive or self.syncing is not rd:
            return
        self.disk.sync()
        self.syncing = None
        if self.sim._trace_on:
            self.sim.trace.append((self.sim.now_us, "fsync", self.node_id))
        self._finish(rd)
        self.drain()

    def _send_messages(self, messages: tuple[Message, ...]) -> None:
        # One packet per destination, in first-appearance order.  A packet's
        # items may be the Ready's own tuple (never mutated; a one-message
        # Ready is the common case).
        sim = self.sim
        count = len(messages)
        if count == 1:
            sim._send_packet(self.node_id, messages[0].to, messages)
            return
        if count == 2:  # a leader's pair of appends or heartbeats (three managers): no grouping dict
            first = messages[0]
            second = messages[1]
            if first.to != second.to:
                sim._send_packet(self.node_id, first.to, [first])
                sim._send_packet(self.node_id, second.to, [second])
                return
        by_destination: dict[int, list[Any]] = {}
        for message in messages:
            items = by_destination.get(message.to)
            if items is None:
                by_destination[message.to] = [message]
            else:
                items.append(message)
        for dst, items in by_destination.items():
            sim._send_packet(self.node_id, dst, items)

    def _finish(self, rd: Ready) -> None:
        raft = self.raft
        app = self.app
        assert raft is not None and app is not None
        sim = self.sim
        if rd.messages_after_persist:
            self._send_messages(rd.messages_after_persist)
        if rd.snapshot is not None:
            app.restore(rd.snapshot.data)
            self.snapshot_index = rd.snapshot.metadata.index
            sim._trace_event("install", self.node_id, rd.snapshot.metadata.index, rd.snapshot.metadata.term)
            # Proposals covered by the snapshot: outcome unknown here (timeout).
        committed = rd.committed_entries
        if committed:
            now = sim.now_us
            pending = self.pending_proposals
            for entry in committed:
                result: Any = None
                if entry.type == _CONF_CHANGE:
                    result = raft.apply_conf_change(ConfChange.decode(entry.data))
                    sim._trace_event("conf", self.node_id, entry.index, result.voters, result.learners)
                elif entry.data:
                    result = app.apply(entry)
                if pending:
                    waiting = pending.pop(entry.index, None)
                    if waiting is not None:
                        term, op = waiting
                        if term == entry.term:
                            op.complete(now, OK, result, None, entry.index)
                        else:
                            op.complete(now, FAIL, None, error=f"entry {entry.index} was replaced by term {entry.term}")
            self.applied_entries += len(committed)
            if sim._apply_observers:
                for observer in sim._apply_observers:
                    observer.on_apply(sim, self, committed)
        if rd.read_states:
            for read_state in rd.read_states:
                if read_state.context in self.pending_reads:
                    self.waiting_reads.append((read_state.index, read_state.context))
        raft.advance(rd)
        if self.waiting_reads:
            self._serve_reads()
        every = self.snapshot_every_entries
        if every > 0 and raft.log.applied - self.snapshot_index >= every:
            self._maybe_snapshot()

    def _serve_reads(self) -> None:
        applied = self.raft.log.applied
        still: list[tuple[int, bytes]] = []
        for index, context in self.waiting_reads:
            if index <= applied:
                entry = self.pending_reads.pop(context, None)
                if entry is not None:
                    op, query = entry
                    op.complete(self.sim.now_us, OK, self.app.read(query), None, index)
            else:
                still.append((index, context))
        self.waiting_reads = still

    def _maybe_snapshot(self) -> None:
        every = self.sim.config.snapshot_every_entries
        raft = self.raft
        if every <= 0 or raft is None:
            return
        applied = raft.log.applied
        if applied - self.snapshot_index < every:
            return
        storage = self.disk.durable
        if applied > storage.last_index():
            return  # not yet durable (cannot happen: apply follows fsync)
        storage.create_snapshot(applied, raft.conf_state(), self.app.snapshot())
        keep = self.sim.config.snapshot_keep_entries
        if applied - keep > storage.first_index():
            storage.compact(applied - keep)
        self.snapshot_index = applied
        self.sim._trace_event("snapshot", self.node_id, applied)


class SimProcess(Protocol):
    """A non-Raft simulated process (e.g. a swarm worker)."""

    def on_start(self, ctx: "ProcessHost") -> None: ...

    def on_message(self, ctx: "ProcessHost", src: int, payload: Any) -> None: ...

    def on_tick(self, ctx: "ProcessHost") -> None: ...


class ProcessHost(_PausableHost):
    """Runs a SimProcess built by ``factory(address)`` at every (re)start.
    Context for the process: address, now_us, rng, send(dst, payload)."""

    def __init__(self, sim: "Simulation", address: int, factory: Callable[[int], SimProcess]) -> None:
        self.sim = sim
        self.address = address
        self.node_id = address
        self.factory = factory
        self.process: Optional[SimProcess] = None
        self.alive = False
        self.paused = False
        self.incarnation = 0
        self.tick_interval_us = sim.config.tick_interval_us
        self.inbox: deque[tuple[int, Sequence[Any]]] = deque()
        self.rng = derive_rng(sim.seed, "process", address, 0)
        self.dropped_messages = 0

    @property
    def now_us(self) -> int:
        return self.sim.now_us

    def send(self, dst: int, payload: Any) -> None:
        if self.alive and not self.paused:
            self.sim._send_packet(self.address, dst, [payload])

    def start(self) -> None:
        assert not self.alive
        self.incarnation += 1
        self.rng = derive_rng(self.sim.seed, "process", self.address, self.incarnation)
        self.process = self.factory(self.address)
        self.alive = True
        self.paused = False
        self.inbox.clear()
        self.sim._join_ticks(self)
        self.process.on_start(self)

    def crash(self, lose_unsynced: bool = False) -> None:
        if self.alive:
            self.sim._leave_ticks(self)
        self.alive = False
        self.paused = False
        self.process = None
        self.inbox.clear()

    def tick_now(self) -> None:
        if self.alive and not self.paused:
            self.process.on_tick(self)

    def _handle_packet(self, src: int, items: Sequence[Any]) -> None:
        for item in items:
            if not self.alive or self.paused:
                break
            self.process.on_message(self, src, item)


# >>> compiled twin: the build cuts this block (consensus/_build_core_c.py)
from chaos.sim._select_c import swap_in  # noqa: E402

swap_in(globals(), "host")
# <<< compiled twin
