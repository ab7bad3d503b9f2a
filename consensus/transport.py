"""Peer transport: asyncio TCP between Raft nodes, one outbound connection per peer.

Each node dials every peer and sends on that connection only; it accepts the
peers' connections and only receives on them.  A connection starts with a
hello frame (magic, wire version, sender id), then carries one encoded
:class:`consensus.types.Message` per length-prefixed frame.

Bounds and failure handling (Raft tolerates loss, so the transport drops
rather than blocks - etcd's rafthttp does the same with its bounded pipeline):
- ``queue_messages_max`` messages wait per peer while its socket buffer is
  full; beyond that a message is dropped and counted.  While a peer is not
  connected its messages are dropped (counted) instead of queued: a stale
  backlog delivered after a reconnect is useless to Raft.
- Reconnects use exponential backoff with jitter (``backoff_s_min`` ..
  ``backoff_s_max``), from an injected ``random.Random``.
- A frame above ``frame_bytes_max``, a malformed frame, a bad hello or a
  message whose sender / recipient does not match the connection closes that
  connection and is counted; nothing propagates into the server.
- ``block(peers)`` is a test hook: traffic to and from those peers is dropped
  (and counted) as if the network were partitioned.

Snapshots travel as the core's SNAP chunk messages, each below the frame limit.
"""
from __future__ import annotations

import asyncio
import logging
import random
import struct
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Optional

from consensus.codec import MalformedFrame, decode_message, encode_message
from consensus.transport_framing import FRAME_BYTES_MAX_DEFAULT, LENGTH, FrameDecoder, FrameTooLarge
from consensus.types import Message

logger = logging.getLogger(__name__)
HELLO = struct.Struct(">8sBQ")
HELLO_MAGIC = b"SHOALRFT"
HELLO_VERSION = 1
WRITE_BUFFER_BYTES_HIGH = 4 * 1024 * 1024

Address = tuple[str, int]


class _Inbound(asyncio.Protocol):
    """Receives frames from one peer."""

    def __init__(self, owner: "PeerTransport") -> None:
        self.owner = owner
        self.decoder = FrameDecoder(owner.frame_bytes_max)
        self.peer_id: Optional[int] = None
        self.transport: Optional[asyncio.Transport] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.owner._inbound.add(self)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.owner._inbound.discard(self)

    def _refuse(self, counter: str) -> None:
        self.owner.stats[counter] += 1
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        try:
            frames = self.decoder.feed(data)
        except FrameTooLarge:
            self._refuse("frames_oversized")
            return
        for payload in frames:
            if self.peer_id is None:
                if len(payload) != HELLO.size:
                    self._refuse("hellos_malformed")
                    return
                magic, version, peer_id = HELLO.unpack(payload)
                if magic != HELLO_MAGIC or version != HELLO_VERSION or peer_id not in owner.peers:
                    self._refuse("hellos_malformed")
                    return
                self.peer_id = peer_id
                continue
            try:
                message = decode_message(payload)
            except MalformedFrame:
                self._refuse("frames_malformed")
                return
            if message.frm != self.peer_id or message.to != owner.node_id:
                self._refuse("frames_misaddressed")
                return
            if self.peer_id in owner.blocked:
                owner.stats["received_dropped_blocked"] += 1
                continue
            owner.stats["received"] += 1
            try:
                owner.on_message(message)
            except Exception:  # a consumer bug: count and log it, keep receiving
                owner.stats["consumer_errors"] += 1
                logger.exception("message consumer failed on %r", message.type)


class _Outbound(asyncio.Protocol):
    """Sends frames to one peer; reconnects with jittered backoff."""

    def __init__(self, owner: "PeerTransport", peer_id: int) -> None:
        self.owner = owner
        self.peer_id = peer_id
        self.transport: Optional[asyncio.Transport] = None
        self.pending: list[bytes] = []
        self.paused = False
        self.lost = asyncio.Event()
        self.flush_scheduled = False

    # asyncio.Protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.lost.clear()
        self.paused = False
        hello = HELLO.pack(HELLO_MAGIC, HELLO_VERSION, self.owner.node_id)
        transport.write(LENGTH.pack(len(hello)) + hello)  # type: ignore[attr-defined]
        self.flush()

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.transport = None
        self.lost.set()

    def data_received(self, data: bytes) -> None:
        # Peers never answer on this connection; ignore anything they send.
        pass

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.flush()

    # sending
    def enqueue(self, encoded: bytes) -> None:
        owner = self.owner
        if self.transport is None:
            # Not connected: drop rather than deliver a stale backlog later
            # (Raft re-sends what matters; etcd drops to unreachable peers too).
            owner.stats["sent_dropped_disconnected"] += 1
            return
        if len(self.pending) >= owner.queue_messages_max:
            owner.stats["sent_dropped_queue_full"] += 1
            return
        self.pending.append(LENGTH.pack(len(encoded)) + encoded)
        if not self.flush_scheduled and self.transport is not None and not self.paused:
            self.flush_scheduled = True
            owner.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        transport = self.transport
        if transport is None or self.paused or not self.pending:
            return
        data = b"".join(self.pending)
        self.owner.stats["sent"] += len(self.pending)
        self.pending.clear()
        transport.write(data)

    async def run(self) -> None:
        owner = self.owner
        host, port = owner.peers[self.peer_id]
        backoff_s = owner.backoff_s_min
        loop = owner.loop
        while not owner.closed:
            try:
                await loop.create_connection(lambda: self, host, port)
            except OSError:
                owner.stats["connect_failures"] += 1
                # Full jitter between half and all of the current backoff.
                await asyncio.sleep(backoff_s * (0.5 + 0.5 * owner.rng.random()))
                backoff_s = min(owner.backoff_s_max, backoff_s * 2)
                continue
            owner.stats["connects"] += 1
            backoff_s = owner.backoff_s_min
            await self.lost.wait()
            if owner.closed:
                return
            # Messages queued for a dead connection are stale for Raft; drop.
            owner.stats["sent_dropped_disconnected"] += len(self.pending)
            self.pending.clear()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self.lost.set()


class PeerTransport:
    """Sends and receives Raft messages over TCP (see the module docstring)."""

    def __init__(
        self,
        node_id: int,
        listen: Address,
        peers: dict[int, Address],
        on_message: Callable[[Message], None],
        rng: Optional[random.Random] = None,
        queue_messages_max: int = 10000,
        frame_bytes_max: int = FRAME_BYTES_MAX_DEFAULT,
        backoff_s_min: float = 0.01,
        backoff_s_max: float = 0.5,
    ) -> None:
        if node_id in peers:
            raise ValueError(f"peers must not include this node ({node_id})")
        self.node_id = node_id
        self.listen = listen
        self.peers = dict(peers)
        self.on_message = on_message
        self.rng = rng or random.Random(node_id)
        self.queue_messages_max = queue_messages_max
        self.frame_bytes_max = frame_bytes_max
        self.backoff_s_min = backoff_s_min
        self.backoff_s_max = backoff_s_max
        self.stats: Counter[str] = Counter()
        self.blocked: set[int] = set()
        self.closed = False
        self._server: Optional[asyncio.base_events.Server] = None
        self._outbound: dict[int, _Outbound] = {}
        self._tasks: list[asyncio.Task] = []
        self._inbound: set[_Inbound] = set()
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        host, port = self.listen
        self._server = await self.loop.create_server(lambda: _Inbound(self), host, port, reuse_address=True)
        for peer_id in self.peers:
            self._start_peer(peer_id)

    def _start_peer(self, peer_id: int) -> None:
        outbound = _Outbound(self, peer_id)
        self._outbound[peer_id] = outbound
        self._tasks.append(self.loop.create_task(outbound.run()))

    def add_peer(self, peer_id: int, address: Address) -> None:
        """Membership grew: start dialing the new peer."""
        if peer_id == self.node_id or peer_id in self.peers:
            return
        self.peers[peer_id] = address
        if self.loop is not None:
            self._start_peer(peer_id)

    def send(self, message: Message) -> None:
        """Queue ``message`` for its recipient; never blocks, may drop (counted)."""
        outbound = self._outbound.get(message.to)
        if outbound is None:
            self.stats["sent_dropped_unknown_peer"] += 1
            return
        if message.to in self.blocked:
            self.stats["sent_dropped_blocked"] += 1
            return
        outbound.enqueue(encode_message(message))

    def send_many(self, messages: Iterable[Message]) -> None:
        for message in messages:
            self.send(message)
        self.flush()

    def flush(self) -> None:
        """Write every queued frame now (one write per peer) instead of at the
        next loop iteration: saves an iteration of latency per hop."""
        for outbound in self._outbound.values():
            if outbound.pending:
                outbound.flush()

    def block(self, peers: Iterable[int]) -> None:
        """Test hook: drop traffic to and from ``peers`` (replaces the set)."""
        self.blocked = set(peers)

    async def close(self) -> None:
        self.closed = True
        if self._server is not None:
            self._server.close()
        for outbound in self._outbound.values():
            outbound.close()
        for inbound in list(self._inbound):
            if inbound.transport is not None:
                inbound.transport.abort()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
