"""The durable Raft server: drives a RaftNode with a real clock, a WAL, TCP
peers and a key-value state machine, and serves clients over TCP.

One asyncio loop, one process.  The Ready loop (:meth:`RaftServer._ready_loop`)
follows the order written on :class:`consensus.types.Ready`:

1. send ``messages`` (appends, heartbeats - they promise nothing durable);
2. ``DurableStorage.save`` + ``sync`` - ONE write and fsync for everything the
   Ready carries (group commit: while an fsync runs in a worker thread the
   loop keeps receiving, and everything that arrived meanwhile is persisted by
   the next single fsync);
3. only then send ``messages_after_persist`` (votes, append acks);
4. apply committed entries to the kv, answer the waiting clients;
5. serve ReadIndex reads once applied up to their index; 6. ``advance``.

Client writes are batched: every write that arrives between two passes of the
loop becomes ONE log entry (concatenated msgpack commands, see consensus.kv),
so the per-request cost is a decode, an apply and an encode - no per-request
fsync, message or entry.  A proposal is matched to its result by (index, term):
propose() returns the index, and if a different term's entry is applied at
that index the proposal is definitely lost (log matching) and answered DROPPED.
Reads with no session (client_id 0) use ReadIndex (Raft thesis 6.4): one
read_index call per pass covers every read that arrived in that pass.

Timeouts answer TIMEOUT (unknown outcome): the proposal may still commit.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import itertools
import logging
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional

import msgpack

from consensus.durable_storage import DurableStorage
from consensus.errors import ConfChangeError, NotLeader, ProposalDropped, RaftError
from consensus.kv import KvOp, KvStateMachine, validate_command
from consensus.raft import Config, RaftNode
from consensus.server_protocol import CLIENT_FRAME_BYTES_MAX, RequestKind, ResponseStatus, parse_address
from consensus.transport import PeerTransport
from consensus.transport_framing import LENGTH, FrameDecoder, FrameTooLarge
from consensus.types import ConfChange, ConfChangeType, ConfState, EntryType, Message, MessageType, StateRole

logger = logging.getLogger(__name__)
Address = tuple[str, int]
_OK = int(ResponseStatus.OK)
_NOT_LEADER = int(ResponseStatus.NOT_LEADER)
_DROPPED = int(ResponseStatus.DROPPED)
_TIMEOUT = int(ResponseStatus.TIMEOUT)
_BAD_REQUEST = int(ResponseStatus.BAD_REQUEST)
_GET = int(KvOp.GET)
_KV = int(RequestKind.KV)


@dataclass
class ServerConfig:
    node_id: int
    peers: dict[int, Address]  # Raft addresses of every voter, this node included
    client_address: Address
    data_dir: str
    fsync: bool = True
    tick_s: float = 0.010
    election_ticks: int = 15  # randomized by the core in [15, 30) ticks: 150-300 ms
    heartbeat_ticks: int = 5  # 50 ms
    request_timeout_s: float = 1.5
    batch_bytes_max: int = 64 * 1024  # one log entry of client commands
    # Bound on the work of one pass of the Ready loop, so heartbeats and their
    # replies keep flowing under overload (a pass that blocks the loop for an
    # election timeout would make CheckQuorum depose a healthy leader).
    committed_bytes_per_ready_max: int = 64 * 1024
    max_inflight_bytes: int = 2 * 1024 * 1024  # per follower, bounds socket backlog ahead of heartbeats
    max_size_per_msg_bytes: int = 256 * 1024
    # Admission control: stop reading client sockets while this many commands
    # are proposed and not yet applied; resume below half (TCP pushes back).
    inflight_commands_max: int = 40000
    # Client requests handled per pass of the loop; the rest wait (reading
    # paused) for the next pass, so ticks and peer messages are never starved.
    requests_per_pass_max: int = 2000
    max_uncommitted_entries_bytes: int = 64 * 1024 * 1024
    max_inflight_msgs: int = 256
    # Snapshot when either bound is reached since the last one (entries are
    # batches of up to batch_bytes_max, so the byte bound usually fires first).
    snapshot_every_entries: int = 20000
    snapshot_every_bytes: int = 64 * 1024 * 1024
    compaction_margin_entries: int = 500  # entries kept behind a snapshot for slow followers
    segment_size_bytes: int = 64 * 1024 * 1024
    seed: Optional[int] = None
    # Joining an existing cluster: this node is not in the initial membership
    # (the voters are the other peers); a leader adds it with a conf change.
    join: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.node_id not in self.peers:
            raise ValueError(f"node id {self.node_id} is not among the peers {sorted(self.peers)}")
        if self.tick_s <= 0 or self.request_timeout_s <= 0:
            raise ValueError("tick_s and request_timeout_s must be positive")
        if self.election_ticks <= self.heartbeat_ticks:
            raise ValueError("election_ticks must exceed heartbeat_ticks")


class _ClientConnection(asyncio.Protocol):
    """One client TCP connection; requests are pipelined and tagged."""

    __slots__ = ("server", "transport", "decoder", "out", "backlog", "backlogged")

    def __init__(self, server: "RaftServer") -> None:
        self.server = server
        self.transport: Optional[asyncio.Transport] = None
        self.decoder = FrameDecoder(CLIENT_FRAME_BYTES_MAX)
        self.out: list[bytes] = []
        self.backlog: list[bytes] = []  # received request frames not yet handled
        self.backlogged = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.client_connections.add(self)
        if self.server.reading_paused:
            transport.pause_reading()  # type: ignore[attr-defined]

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.transport = None
        self.server.client_connections.discard(self)

    def data_received(self, data: bytes) -> None:
        server = self.server
        try:
            frames = self.decoder.feed(data)
        except FrameTooLarge:
            server.stats["client_frames_oversized"] += 1
            self.transport.abort()  # type: ignore[union-attr]
            return
        if self.backlog:
            self.backlog.extend(frames)
        else:
            self.backlog = frames
        self.drain()
        server.wake()

    def drain(self) -> None:
        """Handle backlogged requests within this pass's budget; pause reading
        while some are left (one loop pass must stay short, see
        ServerConfig.requests_per_pass_max)."""
        server = self.server
        backlog = self.backlog
        budget = server.request_budget
        if budget <= 0:
            take = 0
        else:
            take = min(budget, len(backlog))
            server.request_budget = budget - take
        for position in range(take):
            try:
                tag, kind, body = msgpack.unpackb(backlog[position], raw=False)
            except Exception:
                server.stats["client_frames_malformed"] += 1
                self.backlog = []
                if self.transport is not None:
                    self.transport.abort()
                return
            if kind == _KV:
                server.on_kv_request(self, tag, body)
            else:
                server.on_admin_request(self, tag, kind, body)
        if take < len(backlog):
            self.backlog = backlog[take:]
            if not self.backlogged:
                self.backlogged = True
                server.backlogged_connections.append(self)
                if self.transport is not None:
                    self.transport.pause_reading()
        else:
            self.backlog = []

    def respond(self, tag: int, status: int, payload: Any) -> None:
        out = self.out
        if not out:
            self.server.dirty_connections.append(self)
        encoded = msgpack.packb([tag, status, payload], use_bin_type=True)
        out.append(LENGTH.pack(len(encoded)))
        out.append(encoded)

    def flush(self) -> None:
        if self.transport is not None and self.out:
            self.transport.write(b"".join(self.out))
        self.out = []


class _Proposal:
    __slots__ = ("term", "waiters", "deadline", "kind")

    def __init__(self, term: int, waiters: list, deadline: float, kind: str = "kv") -> None:
        self.term = term
        self.waiters = waiters  # [(connection, tag)] in command order
        self.deadline = deadline
        self.kind = kind


class RaftServer:
    def __init__(self, config: ServerConfig) -> None:
        config.validate()
        self.config = config
        self.stats: Counter[str] = Counter()
        seed = config.seed if config.seed is not None else int.from_bytes(os.urandom(8), "big")
        self.rng = random.Random(seed)
        initial_voters = tuple(sorted(n for n in config.peers if not (config.join and n == config.node_id)))
        self.storage = DurableStorage.open(
            os.path.join(config.data_dir, "raft"),
            ConfState(voters=initial_voters),
            fsync=config.fsync,
            segment_size_bytes=config.segment_size_bytes,
        )
        self.kv = KvStateMachine()
        snapshot = self.storage.snapshot()
        if not snapshot.is_empty() and snapshot.data:
            self.kv.restore(snapshot.data)
        self.applied = snapshot.metadata.index
        self.last_snapshot_index = snapshot.metadata.index
        self.applied_bytes_since_snapshot = 0
        hard_state, _conf = self.storage.initial_state()
        self.durable_term_vote = (hard_state.term, hard_state.vote)
        self.node = RaftNode(
            Config(
                id=config.node_id,
                voters=initial_voters,
                election_ticks=config.election_ticks,
                heartbeat_ticks=config.heartbeat_ticks,
                max_uncommitted_entries_bytes=config.max_uncommitted_entries_bytes,
                max_inflight_msgs=config.max_inflight_msgs,
                max_committed_size_per_ready_bytes=config.committed_bytes_per_ready_max,
                max_inflight_bytes=config.max_inflight_bytes,
                max_size_per_msg_bytes=config.max_size_per_msg_bytes,
                applied=self.applied,
                rng=random.Random(self.rng.getrandbits(64)),
            ),
            self.storage,
        )
        self.transport = PeerTransport(
            config.node_id,
            config.peers[config.node_id],
            {n: a for n, a in config.peers.items() if n != config.node_id},
            self.on_peer_message,
            rng=random.Random(self.rng.getrandbits(64)),
        )
        self.dirty_connections: list[_ClientConnection] = []
        self.pending_commands: list[bytes] = []
        self.pending_waiters: list[tuple[_ClientConnection, int]] = []
        self.pending_bytes = 0
        self.inflight_commands = 0
        self.reading_paused = False
        self.client_connections: set[_ClientConnection] = set()
        self.backlogged_connections: list[_ClientConnection] = []
        self.request_budget = config.requests_per_pass_max
        self.proposals: dict[int, _Proposal] = {}
        self.pending_reads: list[tuple[_ClientConnection, int, Any]] = []
        self.read_contexts: dict[bytes, tuple[float, list]] = {}
        self.reads_waiting_apply: list[tuple[int, int, list]] = []  # heap of (index, seq, waiters)
        self._read_seq = itertools.count(1)
        self.leader_id = 0
        self.role = StateRole.FOLLOWER
        self._wakeup: Optional[asyncio.Event] = None
        self._tasks: list[asyncio.Task] = []
        self._client_server: Optional[asyncio.base_events.Server] = None
        self._executor: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self.closed = False

    # ------------------------------------------------------------ lifecycle
    def _gc_callback(self, phase: str, info: dict) -> None:
        # Garbage-collector pauses block the loop like any other work; they
        # are reported so a long one can be told apart from a slow pass.
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        pause_us = int((time.perf_counter() - self._gc_started) * 1e6)
        key = f"gc{info.get('generation', 0)}_pause_us_max"
        if pause_us > self.stats[key]:
            self.stats[key] = pause_us

    async def start(self) -> None:
        import gc

        self._gc_started = 0.0
        gc.callbacks.append(self._gc_callback)
        loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        if self.config.fsync:
            self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="wal-fsync")
        await self.transport.start()
        host, port = self.config.client_address
        self._client_server = await loop.create_server(lambda: _ClientConnection(self), host, port, reuse_address=True)
        self._tasks.append(loop.create_task(self._ready_loop()))
        self._tasks.append(loop.create_task(self._tick_loop()))
        self.wake()

    async def close(self) -> None:
        self.closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client_server is not None:
            self._client_server.close()
        await self.transport.close()
        self.storage.close()
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    # ------------------------------------------------------------ inputs
    def on_peer_message(self, message: Message) -> None:
        try:
            self.node.step(message)
        except RaftError as error:
            self.stats["peer_messages_refused"] += 1
            logger.debug("refused %s from %d: %s", message.type.name, message.frm, error)
        self.wake()

    def on_kv_request(self, connection: _ClientConnection, tag: int, body: Any) -> None:
        if type(body) is not bytes:
            connection.respond(tag, _BAD_REQUEST, "kv body must be an encoded command (bytes)")
            return
        if body[:2] == b"\x97\x01":  # fixarray(7), op GET: maybe a ReadIndex read
            try:
                command = msgpack.unpackb(body, raw=False)
            except Exception:
                command = None
            if command is not None and command[1] == 0 and validate_command(command) is None:
                if self.leader_id == 0:
                    connection.respond(tag, _NOT_LEADER, 0)
                    return
                self.pending_reads.append((connection, tag, command[4]))
                return
        if self.role != StateRole.LEADER:
            connection.respond(tag, _NOT_LEADER, self.leader_id)
            return
        self.pending_commands.append(body)
        self.pending_waiters.append((connection, tag))
        self.pending_bytes += len(body)
        if self.pending_bytes >= self.config.batch_bytes_max:
            self._propose_pending()

    def on_admin_request(self, connection: _ClientConnection, tag: int, kind: Any, body: Any) -> None:
        try:
            if kind == RequestKind.STATUS:
                connection.respond(tag, _OK, self.status())
            elif kind == RequestKind.BLOCK:
                peers = [int(p) for p in body]
                self.transport.block(peers)
                connection.respond(tag, _OK, sorted(self.transport.blocked))
            elif kind == RequestKind.TRANSFER:
                self.node.transfer_leadership(int(body))
                connection.respond(tag, _OK, None)
            elif kind == RequestKind.SNAPSHOT:
                self._take_snapshot()
                connection.respond(tag, _OK, self.last_snapshot_index)
            elif kind == RequestKind.CONF_CHANGE:
                change_type, node_id, address = body
                context = address.encode() if address else b""
                if address:
                    parse_address(address)
                change = ConfChange(ConfChangeType(change_type), int(node_id), context)
                index = self.node.propose_conf_change(change)
                deadline = time.monotonic() + self.config.request_timeout_s
                self._track(index, _Proposal(self.node.term, [(connection, tag)], deadline, "conf"))
                self.inflight_commands += 1
            else:
                connection.respond(tag, _BAD_REQUEST, f"unknown request kind {kind!r}")
        except NotLeader as error:
            connection.respond(tag, _NOT_LEADER, error.leader_hint or 0)
        except ProposalDropped as error:
            connection.respond(tag, _DROPPED, str(error))
        except (RaftError, ValueError, TypeError, KeyError) as error:
            connection.respond(tag, _BAD_REQUEST, f"{type(error).__name__}: {error}")

    def status(self) -> dict[str, Any]:
        status = self.node.status()
        return {
            "id": status.id,
            "role": status.role.name,
            "term": status.term,
            "leader": status.leader_id,
            "commit": status.commit,
            "applied": self.applied,
            "last_index": status.last_index,
            "voters": list(status.voters),
            "learners": list(status.learners),
            "snapshot_index": self.last_snapshot_index,
            "first_index": self.storage.first_index(),
            "kv_digest": self.kv_digest(),
            "kv_keys": len(self.kv.data),
            "fsyncs": self.storage.wal.fsync_count,
            "stats": dict(self.stats),
            "transport": dict(self.transport.stats),
        }

    def kv_digest(self) -> str:
        """A digest of the kv data (for divergence checks across replicas)."""
        import hashlib

        return hashlib.sha256(msgpack.packb(sorted(self.kv.data.items(), key=repr), use_bin_type=True)).hexdigest()[:16]

    # ------------------------------------------------------------ proposing
    def _propose_pending(self) -> None:
        if not self.pending_commands:
            return
        commands, waiters = self.pending_commands, self.pending_waiters
        self.pending_commands, self.pending_waiters, self.pending_bytes = [], [], 0
        try:
            index = self.node.propose(b"".join(commands))
        except NotLeader as error:
            hint = error.leader_hint or 0
            for connection, tag in waiters:
                connection.respond(tag, _NOT_LEADER, hint)
            return
        except ProposalDropped as error:
            reason = str(error)
            for connection, tag in waiters:
                connection.respond(tag, _DROPPED, reason)
            self.stats["proposals_dropped"] += 1
            return
        self.stats["entries_proposed"] += 1
        self._track(index, _Proposal(self.node.term, waiters, time.monotonic() + self.config.request_timeout_s))
        self.inflight_commands += len(waiters)
        if self.inflight_commands >= self.config.inflight_commands_max and not self.reading_paused:
            self._set_reading(paused=True)

    def _track(self, index: int, proposal: _Proposal) -> None:
        previous = self.proposals.pop(index, None)
        if previous is not None:
            # Our own log now holds a newer entry at that index (we lost and
            # regained leadership): the older proposal can never commit.
            self._settled(len(previous.waiters))
            self._answer_lost(previous)
        self.proposals[index] = proposal

    def _set_reading(self, paused: bool) -> None:
        self.reading_paused = paused
        self.stats["client_reading_paused" if paused else "client_reading_resumed"] += 1
        for connection in self.client_connections:
            if connection.transport is not None:
                if paused:
                    connection.transport.pause_reading()
                elif not connection.backlogged:
                    connection.transport.resume_reading()

    def _settled(self, count: int) -> None:
        self.inflight_commands -= count
        if self.reading_paused and self.inflight_commands <= self.config.inflight_commands_max // 2:
            self._set_reading(paused=False)

    def _issue_reads(self) -> None:
        if not self.pending_reads:
            return
        waiters, self.pending_reads = self.pending_reads, []
        context = next(self._read_seq).to_bytes(8, "big")
        try:
            self.node.read_index(context)
        except NotLeader as error:
            for connection, tag, _key in waiters:
                connection.respond(tag, _NOT_LEADER, error.leader_hint or 0)
            return
        self.read_contexts[context] = (time.monotonic() + self.config.request_timeout_s, waiters)

    # ------------------------------------------------------------ the loops
    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        tick_s = self.config.tick_s
        next_tick = loop.time() + tick_s
        next_sweep = loop.time() + 0.05
        while not self.closed:
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            now = loop.time()
            late_us = int((now - next_tick) * 1e6)
            if late_us > self.stats["tick_late_us_max"]:
                self.stats["tick_late_us_max"] = late_us
            # Catch up after a stall, but boundedly: when the loop is
            # overloaded, time slows down for Raft rather than firing a burst
            # of ticks before the peers' queued replies are read.
            ticks = min(2, int((now - next_tick) / tick_s) + 1)
            for _ in range(ticks):
                self.node.tick()
            next_tick += ticks * tick_s
            if next_tick < now:
                next_tick = now + tick_s
            if now >= next_sweep:
                self._expire(time.monotonic())
                next_sweep = now + 0.05
            self.wake()

    async def _ready_loop(self) -> None:
        assert self._wakeup is not None
        wakeup = self._wakeup
        loop = asyncio.get_running_loop()
        node = self.node
        storage = self.storage
        transport = self.transport
        while not self.closed:
            await wakeup.wait()
            wakeup.clear()
            pass_start = time.perf_counter()
            try:
                self._refill_budget()
                if self.role == StateRole.LEADER:
                    self._propose_pending()
                elif self.pending_commands:
                    self._reject_pending()
                self._issue_reads()
                while node.has_ready():
                    rd = node.ready()
                    if rd.soft_state is not None:
                        self._on_soft_state(rd.soft_state.leader_id, rd.soft_state.role)
                    if rd.messages:
                        transport.send_many(rd.messages)
                    after_persist = rd.messages_after_persist
                    if rd.hard_state is not None or rd.entries or rd.snapshot is not None:
                        storage.save(rd.hard_state, rd.entries, rd.snapshot)
                        if rd.must_sync and self._executor is not None:
                            after_persist = self._send_heartbeat_replies_early(rd)
                            # Group commit: the loop keeps receiving during the fsync.
                            await loop.run_in_executor(self._executor, storage.sync)
                        else:
                            # fsync off, or only the commit index changed (lazy).
                            storage.sync(fsync=rd.must_sync)
                        if rd.hard_state is not None:
                            self.durable_term_vote = (rd.hard_state.term, rd.hard_state.vote)
                    if after_persist:
                        transport.send_many(after_persist)
                    if rd.snapshot is not None and not rd.snapshot.is_empty():
                        self._install_snapshot(rd)
                    if rd.committed_entries:
                        self._apply(rd.committed_entries)
                    if rd.read_states:
                        self._on_read_states(rd.read_states)
                    node.advance(rd)
                    if self.role == StateRole.LEADER:
                        self._propose_pending()
                    self._issue_reads()
                    if node.has_ready():
                        # Let peer messages and ticks in between two Readys.
                        self._flush_clients()
                        self._note_pass(pass_start)
                        await asyncio.sleep(0)
                        pass_start = time.perf_counter()
                self._serve_reads()
                self._maybe_snapshot()
            except Exception:
                logger.exception("ready loop failed; stopping the server (state: %s)", node.describe())
                self._flush_clients()
                os._exit(70)
            self._flush_clients()
            self._note_pass(pass_start)

    def _send_heartbeat_replies_early(self, rd: Any) -> tuple:
        """Send HEARTBEAT_RESP messages before the fsync when they promise
        nothing the fsync is about: their term (and our vote) is already
        durable.  They carry no log position, only "I follow you in term T"
        (and a ReadIndex ack); making them wait for an fsync of unrelated
        entries lets a slow disk depose a healthy leader via CheckQuorum.
        Everything else (append and vote replies) still waits."""
        term, vote = self.durable_term_vote
        if rd.hard_state is not None and (rd.hard_state.term, rd.hard_state.vote) != (term, vote):
            return rd.messages_after_persist
        early = [m for m in rd.messages_after_persist if m.type == MessageType.HEARTBEAT_RESP and m.term == term]
        if not early:
            return rd.messages_after_persist
        self.transport.send_many(early)
        self.stats["heartbeat_replies_before_fsync"] += len(early)
        return tuple(m for m in rd.messages_after_persist if not (m.type == MessageType.HEARTBEAT_RESP and m.term == term))

    def _note_pass(self, pass_start: float) -> None:
        elapsed_us = int((time.perf_counter() - pass_start) * 1e6)
        if elapsed_us > self.stats["ready_pass_us_max"]:
            self.stats["ready_pass_us_max"] = elapsed_us

    def _refill_budget(self) -> None:
        self.request_budget = self.config.requests_per_pass_max
        if not self.backlogged_connections:
            return
        waiting, self.backlogged_connections = self.backlogged_connections, []
        for connection in waiting:
            connection.backlogged = False
            connection.drain()
            if not connection.backlogged and connection.transport is not None and not self.reading_paused:
                connection.transport.resume_reading()
        if self.backlogged_connections:
            self.wake()  # more next pass

    def _flush_clients(self) -> None:
        dirty, self.dirty_connections = self.dirty_connections, []
        for connection in dirty:
            connection.flush()

    def _reject_pending(self) -> None:
        waiters = self.pending_waiters
        self.pending_commands, self.pending_waiters, self.pending_bytes = [], [], 0
        for connection, tag in waiters:
            connection.respond(tag, _NOT_LEADER, self.leader_id)

    def _on_soft_state(self, leader_id: int, role: StateRole) -> None:
        if role != self.role:
            logger.info("node %d: %s -> %s (leader %d)", self.config.node_id, self.role.name, role.name, leader_id)
        self.leader_id = leader_id
        self.role = role
        if role != StateRole.LEADER:
            self._reject_pending()

    # ------------------------------------------------------------ applying
    def _install_snapshot(self, rd: Any) -> None:
        snapshot = rd.snapshot
        if snapshot.data:
            self.kv.restore(snapshot.data)
        else:
            self.kv = KvStateMachine()
        self.applied = snapshot.metadata.index
        self.last_snapshot_index = snapshot.metadata.index
        self.applied_bytes_since_snapshot = 0
        self.stats["snapshots_installed"] += 1

    def _apply(self, entries: Any) -> None:
        kv = self.kv
        proposals = self.proposals
        for entry in entries:
            index = entry.index
            if index <= self.applied:
                continue
            proposal = proposals.pop(index, None) if proposals else None
            if proposal is not None:
                self._settled(len(proposal.waiters))
            if entry.type == EntryType.NORMAL:
                if entry.data:
                    results = kv.apply_batch(entry.data)
                    if proposal is not None:
                        if proposal.term == entry.term and proposal.kind == "kv":
                            waiters = proposal.waiters
                            assert len(waiters) == len(results), (index, len(waiters), len(results))
                            for (connection, tag), result in zip(waiters, results):
                                connection.respond(tag, _OK, [result.status, result.value])
                        else:
                            self._answer_lost(proposal)
                elif proposal is not None:
                    self._answer_lost(proposal)
            else:
                self._apply_conf_change(entry, proposal)
            self.applied = index
            self.applied_bytes_since_snapshot += len(entry.data)
        self.stats["entries_applied"] += len(entries)

    def _answer_lost(self, proposal: _Proposal) -> None:
        # Another entry holds our index: ours can never commit (log matching).
        for connection, tag in proposal.waiters:
            connection.respond(tag, _DROPPED, "leadership changed before the entry committed")

    def _apply_conf_change(self, entry: Any, proposal: Optional[_Proposal]) -> None:
        try:
            change = ConfChange.decode(entry.data)
        except ConfChangeError as error:
            logger.error("skipping undecodable conf change at %d: %s", entry.index, error)
            return
        conf_state = self.node.apply_conf_change(change)
        if change.type != ConfChangeType.REMOVE_NODE and change.context:
            try:
                self.transport.add_peer(change.node_id, parse_address(change.context.decode()))
            except ValueError as error:
                logger.error("conf change for node %d has a bad address: %s", change.node_id, error)
        if proposal is not None:
            for connection, tag in proposal.waiters:
                if proposal.term == entry.term:
                    connection.respond(tag, _OK, [list(conf_state.voters), list(conf_state.learners)])
                else:
                    connection.respond(tag, _DROPPED, "leadership changed before the entry committed")

    def _on_read_states(self, read_states: Any) -> None:
        for read_state in read_states:
            pending = self.read_contexts.pop(read_state.context, None)
            if pending is None:
                continue
            heapq.heappush(self.reads_waiting_apply, (read_state.index, next(self._read_seq), pending[1]))

    def _serve_reads(self) -> None:
        heap = self.reads_waiting_apply
        kv = self.kv
        while heap and heap[0][0] <= self.applied:
            _index, _seq, waiters = heapq.heappop(heap)
            for connection, tag, key in waiters:
                connection.respond(tag, _OK, [0, kv.read(key)])

    def _expire(self, now: float) -> None:
        proposals = self.proposals
        if proposals:
            expired = [index for index, proposal in proposals.items() if proposal.deadline <= now]
            for index in expired:
                proposal = proposals.pop(index)
                self._settled(len(proposal.waiters))
                for connection, tag in proposal.waiters:
                    connection.respond(tag, _TIMEOUT, "no commit within the request timeout: outcome unknown")
                self.stats["proposals_timed_out"] += 1
        if self.read_contexts:
            expired_reads = [c for c, (deadline, _w) in self.read_contexts.items() if deadline <= now]
            for context in expired_reads:
                for connection, tag, _key in self.read_contexts.pop(context)[1]:
                    connection.respond(tag, _TIMEOUT, "read not confirmed within the request timeout")
        self._flush_clients()

    # ------------------------------------------------------------ snapshots
    def _maybe_snapshot(self) -> None:
        if (
            self.applied - self.last_snapshot_index >= self.config.snapshot_every_entries
            or self.applied_bytes_since_snapshot >= self.config.snapshot_every_bytes
        ):
            self._take_snapshot()

    def _take_snapshot(self) -> None:
        index = self.applied
        if index <= self.last_snapshot_index:
            return
        self.storage.create_snapshot(index, self.node.conf_state(), self.kv.snapshot())
        self.last_snapshot_index = index
        self.applied_bytes_since_snapshot = 0
        compact_index = index - self.config.compaction_margin_entries
        if compact_index > self.storage.first_index():
            self.storage.compact(compact_index)
        self.stats["snapshots_taken"] += 1


async def serve(config: ServerConfig, stop: Optional[asyncio.Event] = None) -> None:
    """Run a server until ``stop`` is set (or forever)."""
    server = RaftServer(config)
    await server.start()
    logger.info(
        "node %d serving: raft %s:%d, clients %s:%d, data %s, fsync %s",
        config.node_id, *config.peers[config.node_id], *config.client_address, config.data_dir, config.fsync,
    )
    try:
        await (stop.wait() if stop is not None else asyncio.Event().wait())
    finally:
        await server.close()
