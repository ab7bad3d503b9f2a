"""A key-value client that finds the leader, retries, and is honest about
unknown outcomes.

- It sends to the node it believes leads; on NOT_LEADER it follows the hint
  (or tries the next node), on a connection error it tries the next node.
- Every write carries (client_id, request_id, ack_below) so a retry of the same
  request is applied at most once (see consensus.kv).
- Definite failures (the request certainly did not and will not take effect)
  raise :class:`RequestFailed`.  When a request may have been applied - it was
  sent and then the answer timed out or the connection broke, and the retries
  did not settle it - :class:`OutcomeUnknown` is raised.  A Jepsen-style
  history records the first as ``fail`` and the second as ``info``.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import os
from typing import Any, Optional

import msgpack

from consensus.kv import KvOp, KvResult, KvStatus, encode_command
from consensus.server_protocol import CLIENT_FRAME_BYTES_MAX, RequestKind, ResponseStatus
from consensus.transport_framing import LENGTH, FrameDecoder, FrameTooLarge

Address = tuple[str, int]


class ClientError(Exception):
    """Base of the client's errors."""


class RequestFailed(ClientError):
    """Definitely not applied (and never will be)."""


class OutcomeUnknown(ClientError):
    """Maybe applied, maybe not, maybe later: the request timed out."""


class CasFailed(ClientError):
    """A compare-and-set whose comparison failed; ``current`` is the value seen."""

    def __init__(self, current: Any) -> None:
        self.current = current
        super().__init__(f"compare-and-set failed: current value is {current!r}")


class _ConnectionLost(Exception):
    pass


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: Optional[asyncio.Transport] = None
        self.decoder = FrameDecoder(CLIENT_FRAME_BYTES_MAX)
        self.waiting: dict[int, asyncio.Future] = {}
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
        except FrameTooLarge:
            self._fail_all()
            return
        for payload in frames:
            try:
                tag, status, body = msgpack.unpackb(payload, raw=False)
            except Exception:
                self._fail_all()
                return
            future = self.waiting.pop(tag, None)
            if future is not None and not future.done():
                future.set_result((status, body))

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._fail_all()

    def _fail_all(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        waiting, self.waiting = self.waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(_ConnectionLost())

    def send(self, tag: int, kind: int, body: Any) -> asyncio.Future:
        payload = msgpack.packb([tag, kind, body], use_bin_type=True)
        future = asyncio.get_running_loop().create_future()
        self.waiting[tag] = future
        assert self.transport is not None
        self.transport.write(LENGTH.pack(len(payload)) + payload)
        return future


class KvClient:
    """Async client; ``servers`` maps node id to its client address."""

    def __init__(
        self,
        servers: dict[int, Address],
        client_id: Optional[int] = None,
        request_timeout_s: float = 2.0,
        attempts_max: int = 6,
        total_timeout_s: float = 10.0,
    ) -> None:
        if not servers:
            raise ValueError("no servers given")
        self.servers = dict(servers)
        self.client_id = client_id if client_id is not None else int.from_bytes(os.urandom(8), "big") >> 1 or 1
        self.request_timeout_s = request_timeout_s
        self.attempts_max = attempts_max
        self.total_timeout_s = total_timeout_s
        self.leader_guess: int = next(iter(self.servers))
        self._connections: dict[int, _Connection] = {}
        self._tags = itertools.count(1)
        self._request_ids = itertools.count(1)
        self._inflight_heap: list[int] = []
        self._done: set[int] = set()

    async def _connection(self, node: int) -> _Connection:
        connection = self._connections.get(node)
        if connection is None or connection.closed:
            host, port = self.servers[node]
            loop = asyncio.get_running_loop()
            _transport, connection = await asyncio.wait_for(
                loop.create_connection(_Connection, host, port), self.request_timeout_s
            )
            self._connections[node] = connection
        return connection

    def _next_node(self, node: int) -> int:
        nodes = sorted(self.servers)
        return nodes[(nodes.index(node) + 1) % len(nodes)] if node in nodes else nodes[0]

    async def request(self, kind: RequestKind, body: Any, node: Optional[int] = None) -> Any:
        """Send an admin/raw request to one node (no retries); returns the payload."""
        connection = await self._connection(node if node is not None else self.leader_guess)
        status, payload = await asyncio.wait_for(connection.send(next(self._tags), int(kind), body), self.request_timeout_s)
        if status != ResponseStatus.OK:
            raise RequestFailed(f"{ResponseStatus(status).name}: {payload!r}")
        return payload

    async def change_membership(self, change_type: int, node_id: int, raft_address: str = "") -> Any:
        """Propose one membership change (ConfChangeType) on the leader,
        following NOT_LEADER hints; returns [voters, learners] once applied."""
        node = self.leader_guess
        for _attempt in range(self.attempts_max):
            try:
                connection = await self._connection(node)
                status, payload = await asyncio.wait_for(
                    connection.send(next(self._tags), int(RequestKind.CONF_CHANGE), [change_type, node_id, raft_address]),
                    self.request_timeout_s,
                )
            except (OSError, asyncio.TimeoutError, _ConnectionLost):
                node = self._next_node(node)
                continue
            if status == ResponseStatus.OK:
                self.leader_guess = node
                return payload
            if status == ResponseStatus.NOT_LEADER:
                node = payload if payload in self.servers and payload != node else self._next_node(node)
                continue
            if status == ResponseStatus.TIMEOUT:
                raise OutcomeUnknown(f"membership change timed out on node {node}: {payload}")
            if status == ResponseStatus.DROPPED:
                await asyncio.sleep(0.1)  # e.g. another change pending: retry
                continue
            raise RequestFailed(f"membership change refused: {ResponseStatus(status).name} {payload}")
        raise OutcomeUnknown("membership change: no definite answer")

    # ---- the kv operations ---------------------------------------------------
    async def get(self, key: Any) -> Any:
        """Linearizable read (ReadIndex on the leader)."""
        return (await self._execute(KvOp.GET, key, None, None, session=False)).value

    async def put(self, key: Any, value: Any) -> None:
        await self._execute(KvOp.PUT, key, value, None)

    async def delete(self, key: Any) -> Any:
        return (await self._execute(KvOp.DELETE, key, None, None)).value

    async def append(self, key: Any, value: Any) -> None:
        await self._execute(KvOp.APPEND, key, value, None)

    async def cas(self, key: Any, expected: Any, new: Any) -> None:
        """Set ``key`` to ``new`` if it holds ``expected`` (None: absent); raises CasFailed."""
        result = await self._execute(KvOp.CAS, key, new, expected)
        if result.status == KvStatus.CAS_FAILED:
            raise CasFailed(result.value)

    async def _execute(self, op: KvOp, key: Any, value: Any, expected: Any, session: bool = True) -> KvResult:
        if session:
            request_id = next(self._request_ids)
            heapq.heappush(self._inflight_heap, request_id)
            ack_below = self._ack_below()
            command = encode_command(op, key, value, expected, self.client_id, request_id, ack_below)
        else:
            request_id = 0
            command = encode_command(op, key, value, expected)
        try:
            return await self._send_with_retries(command)
        finally:
            if session:
                self._done.add(request_id)

    def _ack_below(self) -> int:
        heap = self._inflight_heap
        while heap and heap[0] in self._done:
            self._done.discard(heapq.heappop(heap))
        return heap[0] if heap else 0

    async def _send_with_retries(self, command: bytes) -> KvResult:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_timeout_s
        maybe_applied = False
        last_problem = "no attempt made"
        node = self.leader_guess
        for attempt in range(self.attempts_max):
            if loop.time() >= deadline:
                break
            try:
                connection = await self._connection(node)
            except (OSError, asyncio.TimeoutError) as error:
                last_problem = f"node {node} unreachable: {error!r}"
                node = self._next_node(node)
                await asyncio.sleep(min(0.05 * (attempt + 1), 0.3))
                continue
            future = connection.send(next(self._tags), int(RequestKind.KV), command)
            try:
                status, payload = await asyncio.wait_for(future, min(self.request_timeout_s, max(0.01, deadline - loop.time())))
            except asyncio.TimeoutError:
                maybe_applied = True
                last_problem = f"node {node} did not answer in {self.request_timeout_s} s"
                node = self._next_node(node)
                continue
            except _ConnectionLost:
                maybe_applied = True
                last_problem = f"connection to node {node} lost after sending"
                node = self._next_node(node)
                continue
            if status == ResponseStatus.OK:
                self.leader_guess = node
                result = KvResult.from_wire(payload)
                if result.status == KvStatus.SESSION_EXPIRED:
                    raise OutcomeUnknown(f"result no longer cached by the server: {result.value}")
                if result.status == KvStatus.ERROR:
                    raise RequestFailed(f"the state machine refused the command: {result.value}")
                return result
            if status == ResponseStatus.NOT_LEADER:
                last_problem = f"node {node} is not the leader (hint {payload})"
                node = payload if payload in self.servers and payload != node else self._next_node(node)
                if not payload:
                    await asyncio.sleep(0.05)
                continue
            if status == ResponseStatus.TIMEOUT:
                maybe_applied = True
                last_problem = f"node {node} timed the request out"
                continue
            if status == ResponseStatus.DROPPED:
                last_problem = f"node {node} dropped the request: {payload}"
                await asyncio.sleep(0.02 * (attempt + 1))
                continue
            raise RequestFailed(f"node {node} refused the request: {ResponseStatus(status).name} {payload!r}")
        if maybe_applied:
            raise OutcomeUnknown(f"outcome unknown after {self.attempts_max} attempts: {last_problem}")
        raise RequestFailed(f"not applied: {last_problem}")

    async def close(self) -> None:
        for connection in self._connections.values():
            if connection.transport is not None:
                connection.transport.close()
        self._connections.clear()
