"""What a simulated manager hosts besides its RaftNode: the application.

A manager node = RaftNode + an ``Application`` (the replicated state machine
plus any leader-only components).  A fresh Application is built by the
simulation's ``app_factory(node_id)`` at start and at every restart (volatile
state is lost; it is rebuilt from the snapshot and the log).

The host calls, all on the simulation's one thread:

  apply(entry) -> result     for every committed NORMAL entry with data, in
                             log order, exactly once per incarnation (entries
                             covered by a restored snapshot are skipped).  The
                             result goes back to the client that proposed it.
                             Must be deterministic.
  snapshot() -> bytes        the state after the last applied entry.
  restore(data)              replace the state by a snapshot's data.
  read(query) -> value       answer a linearizable read once applied up to the
                             read index (ReadIndex); must not change state.
  on_leader_change(ctx, leader_id)   the Raft leader this node knows changed
                             (leader_id 0 = unknown); ctx.is_leader says if it
                             is this node.
  on_tick(ctx) -> proposals  once per Raft tick; returned bytes are proposed
                             (if this node leads; otherwise dropped and counted).
  on_message(ctx, src, payload)   a non-Raft packet from another process
                             (a worker's heartbeat, a dispatcher call ...).

``HostContext`` (the ``ctx`` above) lets the application act: node_id,
now_us, is_leader, leader_id, rng (its own seeded generator), send(dst,
payload) over the simulated network, propose(data, callback=None) and
applied_index.
"""
from __future__ import annotations

import json
import random
from typing import Any, Callable, Optional, Protocol, Sequence

from consensus.types import Entry


class HostContext(Protocol):
    node_id: int
    rng: random.Random

    @property
    def now_us(self) -> int: ...

    @property
    def is_leader(self) -> bool: ...

    @property
    def leader_id(self) -> int: ...

    @property
    def applied_index(self) -> int: ...

    def send(self, dst: int, payload: Any) -> None: ...

    def propose(self, data: bytes, callback: Optional[Callable[[Any], None]] = None) -> None: ...


class Application(Protocol):
    def apply(self, entry: Entry) -> Any: ...

    def snapshot(self) -> bytes: ...

    def restore(self, data: bytes) -> None: ...

    def read(self, query: Any) -> Any: ...

    def on_leader_change(self, ctx: HostContext, leader_id: int) -> None: ...

    def on_tick(self, ctx: HostContext) -> Sequence[bytes]: ...

    def on_message(self, ctx: HostContext, src: int, payload: Any) -> None: ...


class BaseApplication:
    """Defaults for the hooks an application does not need."""

    def apply(self, entry: Entry) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def snapshot(self) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def restore(self, data: bytes) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def read(self, query: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def on_leader_change(self, ctx: HostContext, leader_id: int) -> None:
        return None

    def on_tick(self, ctx: HostContext) -> Sequence[bytes]:
        return ()

    def on_message(self, ctx: HostContext, src: int, payload: Any) -> None:
        return None


class KVApp(BaseApplication):
    """A tiny key-value register store for the simulator's own tests.

    Commands are JSON: ``{"op": "put", "k": key, "v": value}`` or
    ``{"op": "cas", "k": key, "from": old, "to": new}``.  ``apply`` returns
    ``[ok, value, version]`` (version: how many writes the key has had).
    ``read(key)`` returns the value (None if absent); ``read(("v", key))``
    returns ``[value, version]``.  ``applied_count`` counts applied commands.
    """

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.versions: dict[str, int] = {}
        self.applied_count = 0

    @staticmethod
    def put(key: str, value: Any) -> bytes:
        return json.dumps({"op": "put", "k": key, "v": value}, sort_keys=True).encode()

    @staticmethod
    def cas(key: str, expected: Any, new: Any) -> bytes:
        return json.dumps({"op": "cas", "k": key, "from": expected, "to": new}, sort_keys=True).encode()

    def apply(self, entry: Entry) -> Any:
        self.applied_count += 1
        try:
            command = json.loads(entry.data)
            op = command["op"]
            key = str(command["k"])
        except (ValueError, KeyError, TypeError):
            return [False, "malformed command"]  # deterministic refusal, same on every node
        if op == "put":
            self.data[key] = command.get("v")
            self.versions[key] = self.versions.get(key, 0) + 1
            return [True, command.get("v"), self.versions[key]]
        if op == "cas":
            if self.data.get(key) != command.get("from"):
                return [False, self.data.get(key), self.versions.get(key, 0)]
            self.data[key] = command.get("to")
            self.versions[key] = self.versions.get(key, 0) + 1
            return [True, command.get("to"), self.versions[key]]
        return [False, f"unknown op {op!r}"]

    def snapshot(self) -> bytes:
        return json.dumps({"data": self.data, "versions": self.versions, "n": self.applied_count}, sort_keys=True).encode()

    def restore(self, data: bytes) -> None:
        state = json.loads(data) if data else {"data": {}, "versions": {}, "n": 0}
        self.data = dict(state["data"])
        self.versions = dict(state["versions"])
        self.applied_count = int(state["n"])

    def read(self, query: Any) -> Any:
        if isinstance(query, tuple) and len(query) == 2 and query[0] == "v":
            key = str(query[1])
            return [self.data.get(key), self.versions.get(key, 0)]
        return self.data.get(str(query))
