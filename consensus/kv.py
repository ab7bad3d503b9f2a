"""The replicated key-value state machine applied by every replica.

Deterministic: the same sequence of committed entries gives the same results and
the same ``snapshot()`` bytes on every replica (dict insertion order is part of
the state and is kept by snapshots).  It is pure - no clock, no IO.

Commands are msgpack arrays, encoded by :func:`encode_command`::

    [op, client_id, request_id, ack_below, key, value, expected]

- ``op``: one of :class:`KvOp` (get, put, delete, cas, append).
- ``client_id`` (int >= 0), ``request_id`` (int >= 0), ``ack_below`` (int >= 0):
  at-most-once execution (the RIFL idea, Lee et al., SOSP 2015, and the client
  sessions of the Raft thesis section 6.3).  A client numbers its requests; it
  re-sends a request that timed out with the SAME request id, and tells the
  server with ``ack_below`` that it has its answer for every id below that
  value, so those cached results can be dropped.  ``client_id`` 0 means "no
  session" (no deduplication).
- keys are ``str`` or ``bytes``; values are ``str`` or ``bytes``.

Because msgpack objects are self-delimiting, a log entry may hold several
commands simply concatenated; :meth:`KvStateMachine.apply_batch` applies them in
order.  Every malformed command yields an ``ERROR`` result, never an exception,
so a bad entry gives the same answer on every replica and cannot stop the apply
loop.

How deduplication meets unknown outcomes: a client whose request timed out does
not know whether it was applied.  Retrying with the same request id is safe
while the session still holds the result (the retry returns the cached result
instead of executing twice).  Sessions are bounded (``clients_max`` sessions,
least recently used evicted; ``results_per_client_max`` results each, oldest
dropped): a retry of a request whose cached result was evicted returns
``SESSION_EXPIRED`` - a definite "I cannot tell you", so the client must keep
reporting the original outcome as unknown rather than re-execute it.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Union

import msgpack

Key = Union[str, bytes]
Value = Union[str, bytes]


class KvOp(IntEnum):
    GET = 1
    PUT = 2
    DELETE = 3
    CAS = 4
    APPEND = 5


class KvStatus(IntEnum):
    OK = 0
    CAS_FAILED = 1  # the comparison failed; value holds the current value
    ERROR = 2  # malformed command; value holds the reason (str)
    STALE_REQUEST = 3  # request id below the client's ack_below: already answered
    SESSION_EXPIRED = 4  # a retry whose cached result was evicted: outcome unknown


@dataclass(frozen=True, slots=True)
class KvResult:
    """What applying one command returned.  ``value``: the read value (None when
    the key is absent) for get, the previous value for delete, the current value
    on CAS_FAILED, the reason on ERROR, None otherwise."""

    status: KvStatus
    value: Any = None

    @property
    def ok(self) -> bool:
        return self.status == KvStatus.OK

    def to_wire(self) -> list[Any]:
        return [int(self.status), self.value]

    @staticmethod
    def from_wire(raw: Any) -> KvResult:
        if not isinstance(raw, (list, tuple)) or len(raw) != 2 or not isinstance(raw[0], int):
            raise ValueError(f"not a kv result: {raw!r}")
        return KvResult(KvStatus(raw[0]), raw[1])


RESULT_OK = KvResult(KvStatus.OK)
_COMMAND_FIELDS = 7
_ID_LIMIT = 1 << 63
# The ops as plain ints for the apply path: comparing with a KvOp member costs
# an Enum class attribute read each time (about two global reads on CPython 3.11).
_GET, _PUT, _DELETE, _CAS, _APPEND = (int(KvOp.GET), int(KvOp.PUT), int(KvOp.DELETE), int(KvOp.CAS),
                                      int(KvOp.APPEND))
# One Packer for every command: msgpack.packb builds (and frees) a Packer and
# its buffer per call, a third of an encode_command.  Safe to share between
# threads with the C extension: pack() runs entirely in C under the GIL for the
# types a command holds (int, str, bytes, None; anything else raises and
# resets the buffer), and it resets its buffer after each call.
_pack_command = msgpack.Packer(use_bin_type=True).pack


def encode_command(
    op: KvOp,
    key: Key,
    value: Value | None = None,
    expected: Value | None = None,
    client_id: int = 0,
    request_id: int = 0,
    ack_below: int = 0,
) -> bytes:
    """Encode one command; see the module docstring for the layout."""
    return _pack_command([int(op), client_id, request_id, ack_below, key, value, expected])


def decode_command(raw: bytes) -> list[Any]:
    """Decode and validate one command; raises ValueError when malformed."""
    try:
        command = msgpack.unpackb(raw, use_list=True, raw=False, strict_map_key=True)
    except Exception as error:  # msgpack raises several types for garbage
        raise ValueError(f"undecodable command: {error}") from error
    reason = validate_command(command)
    if reason is not None:
        raise ValueError(reason)
    return command


def validate_command(command: Any) -> str | None:
    """Why ``command`` (a decoded msgpack object) is malformed, or None.
    Written with exact type checks (bool is not an int here) because it runs
    once per applied command on every replica."""
    if type(command) is not list or len(command) != _COMMAND_FIELDS:
        return f"a command is a list of {_COMMAND_FIELDS} fields"
    op, client_id, request_id, ack_below, key, value, expected = command
    if type(op) is not int or op < 1 or op > 5:
        return f"unknown op {op!r}"
    if type(client_id) is not int or type(request_id) is not int or type(ack_below) is not int:
        return "client_id, request_id and ack_below must be ints"
    if client_id < 0 or request_id < 0 or ack_below < 0 or client_id >= _ID_LIMIT or request_id >= _ID_LIMIT or ack_below >= _ID_LIMIT:
        return "client_id, request_id and ack_below must be in [0, 2**63)"
    key_type = type(key)
    if key_type is not str and key_type is not bytes:
        return f"key must be str or bytes: {key_type.__name__}"
    if op == 2 or op >= 4:  # put, cas, append carry a value
        value_type = type(value)
        if value_type is not str and value_type is not bytes:
            return f"{KvOp(op).name.lower()} needs a str or bytes value"
        if op == 4 and expected is not None and type(expected) is not str and type(expected) is not bytes:
            return "cas expected value must be str, bytes or None (absent)"
    return None


class _Session:
    """Cached results of one client, oldest first (ids grow per client)."""

    __slots__ = ("ack_below", "evicted_max", "results")

    def __init__(self, ack_below: int = 0, evicted_max: int = -1) -> None:
        self.ack_below = ack_below
        # Highest request id whose result the size bound dropped (-1: none).
        self.evicted_max = evicted_max
        # Insertion order is id order for a well-behaved client; retries may
        # arrive out of order, and then an entry lingers until it reaches the
        # front or the bound evicts it - harmless, the bound still holds.
        # An OrderedDict: its oldest entry is found in O(1), where a dict's
        # first key is found by stepping over every entry deleted before it
        # (13.5 us per apply once the bound evicts, 0.4 us before).
        self.results: OrderedDict[int, KvResult] = OrderedDict()


class KvStateMachine:
    """A dict of str|bytes -> str|bytes with at-most-once client sessions."""

    def __init__(self, clients_max: int = 1024, results_per_client_max: int = 32768) -> None:
        assert clients_max >= 1 and results_per_client_max >= 1, (clients_max, results_per_client_max)
        self.clients_max = clients_max
        self.results_per_client_max = results_per_client_max
        self.data: dict[Key, Value] = {}
        self._sessions: OrderedDict[int, _Session] = OrderedDict()  # least recently used first
        self.applied_commands = 0

    # ---- reads that do not go through the log (ReadIndex path) -------------
    def read(self, key: Key) -> Value | None:
        return self.data.get(key)

    # ---- applying committed entries -----------------------------------------
    def apply(self, command_bytes: bytes) -> KvResult:
        """Apply one command; a malformed one gives an ERROR result."""
        try:
            command = msgpack.unpackb(command_bytes, use_list=True, raw=False, strict_map_key=True)
        except Exception as error:
            self.applied_commands += 1
            return KvResult(KvStatus.ERROR, f"undecodable command: {type(error).__name__}")
        return self.apply_decoded(command)

    def apply_batch(self, batch_bytes: bytes) -> list[KvResult]:
        """Apply concatenated commands in order.  Undecodable trailing bytes give
        one ERROR result (and end the batch) - the same on every replica."""
        results: list[KvResult] = []
        unpacker = msgpack.Unpacker(raw=False, use_list=True, strict_map_key=True, max_buffer_size=max(len(batch_bytes), 1024))
        unpacker.feed(batch_bytes)
        consumed = 0
        try:
            for command in unpacker:
                consumed = unpacker.tell()
                results.append(self.apply_decoded(command))
        except Exception as error:
            self.applied_commands += 1
            results.append(KvResult(KvStatus.ERROR, f"undecodable command: {type(error).__name__}"))
            return results
        if consumed != len(batch_bytes):  # a truncated object at the end
            self.applied_commands += 1
            results.append(KvResult(KvStatus.ERROR, "truncated command"))
        return results

    def apply_decoded(self, command: Any) -> KvResult:
        reason = validate_command(command)
        if reason is not None:
            self.applied_commands += 1
            return KvResult(KvStatus.ERROR, reason)
        return self.apply_valid(command)

    def apply_valid(self, command: list[Any]) -> KvResult:
        """Apply a command that :func:`validate_command` accepted.  For callers
        that decode and validate an entry once for several replicas in one
        process (the simulator's managers): each replica still executes it
        against its own state.  ``command`` is only read, never changed."""
        self.applied_commands += 1
        op, client_id, request_id, ack_below, key, value, expected = command
        if client_id == 0:
            if op == _PUT:  # the common case, inlined
                self.data[key] = value
                return RESULT_OK
            return self._execute(op, key, value, expected)
        session = self._sessions.get(client_id)
        if session is None:
            session = _Session(ack_below)
            self._sessions[client_id] = session
            if len(self._sessions) > self.clients_max:
                self._sessions.popitem(last=False)
        else:
            # Refresh recency deterministically (same on every replica).
            self._sessions.move_to_end(client_id)
        if ack_below > session.ack_below:
            session.ack_below = ack_below
            results = session.results
            while results:
                oldest = next(iter(results))
                if oldest >= ack_below:
                    break
                del results[oldest]
        if request_id < session.ack_below:
            return KvResult(KvStatus.STALE_REQUEST, f"request {request_id} below acknowledged {session.ack_below}")
        cached = session.results.get(request_id)
        if cached is not None:
            return cached
        if request_id <= session.evicted_max:
            # Maybe executed, its result evicted by the per-client bound: cannot tell.
            return KvResult(KvStatus.SESSION_EXPIRED, f"result of request {request_id} no longer cached")
        if op == _PUT:  # the common case, inlined
            self.data[key] = value
            result = RESULT_OK
        else:
            result = self._execute(op, key, value, expected)
        session.results[request_id] = result
        if len(session.results) > self.results_per_client_max:
            evicted, _ = session.results.popitem(last=False)
            if evicted > session.evicted_max:
                session.evicted_max = evicted
        return result

    def _execute(self, op: int, key: Key, value: Any, expected: Any) -> KvResult:
        data = self.data
        if op == _PUT:
            data[key] = value
            return RESULT_OK
        if op == _GET:
            return KvResult(KvStatus.OK, data.get(key))
        if op == _DELETE:
            return KvResult(KvStatus.OK, data.pop(key, None))
        if op == _CAS:
            current = data.get(key)
            if current != expected or (current is not None and type(current) is not type(expected)):
                return KvResult(KvStatus.CAS_FAILED, current)
            data[key] = value
            return RESULT_OK
        assert op == _APPEND, op
        current = data.get(key)
        if current is None:
            data[key] = value
        elif type(current) is not type(value):
            return KvResult(KvStatus.ERROR, "append of a value of another type (str vs bytes)")
        else:
            data[key] = current + value
        return RESULT_OK

    # ---- snapshots ------------------------------------------------------------
    def snapshot(self) -> bytes:
        sessions = [
            [client_id, session.ack_below, session.evicted_max, [[rid, int(r.status), r.value] for rid, r in session.results.items()]]
            for client_id, session in self._sessions.items()
        ]
        return msgpack.packb(
            [1, list(self.data.items()), sessions, self.applied_commands, self.clients_max, self.results_per_client_max],
            use_bin_type=True,
        )

    def restore(self, snapshot_bytes: bytes) -> None:
        """Replace the state with a snapshot; raises ValueError when malformed
        (a snapshot is produced by a replica, so a bad one is a real error)."""
        try:
            version, items, sessions, applied, clients_max, per_client = msgpack.unpackb(
                snapshot_bytes, use_list=True, raw=False, strict_map_key=False
            )
            if version != 1:
                raise ValueError(f"unknown kv snapshot version {version}")
            data: dict[Key, Value] = {key: value for key, value in items}
            restored: OrderedDict[int, _Session] = OrderedDict()
            for client_id, ack_below, evicted_max, results in sessions:
                session = _Session(ack_below, evicted_max)
                for rid, status, value in results:
                    session.results[rid] = KvResult(KvStatus(status), value)
                restored[client_id] = session
        except ValueError:
            raise
        except Exception as error:
            raise ValueError(f"malformed kv snapshot: {error}") from error
        self.data = data
        self._sessions = restored
        self.applied_commands = applied
        self.clients_max = clients_max
        self.results_per_client_max = per_client

    def session_count(self) -> int:
        return len(self._sessions)
