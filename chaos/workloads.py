"""Client workloads recorded Jepsen-style: key-value registers and service operations.

Each kv client is one process doing one operation at a time (get, put or cas
on one of a few keys), recorded as an ``invoke`` and then ``ok``, ``fail``
(certainly did not happen: refused with "no quorum", or a cas whose
comparison failed) or ``info`` (unknown: the timeout expired).  A process that
got ``info`` is retired and the client continues under a fresh process number,
as Jepsen does, so that the checkers never see two open operations of one
process.  Written values are unique ("<process>.<n>") so that a read names the
write it saw.

The drivers are sans-IO like the rest of the harness: ``poll(now_ms)`` returns
the requests to send now, ``complete(...)`` records an answer, ``expire(now_ms)``
turns overdue requests into ``info``.  ``chaos.cluster`` delivers them.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

from chaos.experiment import KvWorkload, ServiceOp
from chaos.history import History

Outcome = Literal["ok", "fail", "info"]
NS_PER_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class KvRequest:
    """One kv operation in flight.  ``client_id`` is the kv session id (the
    process number + 1; 0 would mean "no session" to consensus/kv.py)."""

    process: int
    request_id: int
    f: str  # get, put, cas
    key: str
    value: str | None
    expected: str | None
    invoked_ms: int
    deadline_ms: int

    @property
    def client_id(self) -> int:
        return self.process + 1


class _KvRequestDraft:
    """A KvRequest under construction (see chaos.history._OpDraft): plain slots
    of the same layout, filled by ordinary stores, then given the frozen class.
    One is built per kv operation; the frozen dataclass __init__ costs four times
    as much (an ``object.__setattr__`` by name per field)."""

    __slots__ = KvRequest.__slots__


@dataclass(frozen=True)
class ServiceRequest:
    process: int
    op: ServiceOp
    invoked_ms: int
    deadline_ms: int


class KvClients:
    """``clients`` concurrent register clients over ``key_count`` keys."""

    def __init__(self, spec: KvWorkload, history: History, rng: random.Random, first_process: int = 0) -> None:
        self.spec = spec
        self.history = history
        self.rng = rng
        self.keys = [f"k{i}" for i in range(spec.key_count)]
        self.ops = [op for op, weight in spec.mix for _ in range(weight)]
        assert self.ops, "a kv workload needs at least one weighted operation"
        self.next_process = first_process
        # slot -> current process; each slot is one logical client thread.
        self.processes: list[int] = []
        self.next_free_ms: list[int] = []
        self.in_flight: dict[int, KvRequest] = {}
        self.last_seen: dict[str, str | None] = {}
        self.written = 0
        self.request_ids = 0
        self.stopped = False
        for slot in range(spec.clients):
            self.processes.append(self._fresh_process())
            # Stagger the clients so they do not all fire on the same tick.
            self.next_free_ms.append(slot * max(1, spec.interval_ms // max(1, spec.clients)))

    def _fresh_process(self) -> int:
        process = self.next_process
        self.next_process += 1
        return process

    def poll(self, now_ms: int) -> list[KvRequest]:
        if self.stopped:
            return []
        requests = []
        for slot, process in enumerate(self.processes):
            if process in self.in_flight or now_ms < self.next_free_ms[slot]:
                continue
            requests.append(self._invoke(process, now_ms))
        return requests

    def _invoke(self, process: int, now_ms: int) -> KvRequest:
        choice = self.rng.choice
        f = choice(self.ops)
        key = choice(self.keys)
        value: str | None = None
        expected: str | None = None
        recorded: Any = None
        if f in ("put", "cas"):
            self.written += 1
            value = f"{process}.{self.written}"
            recorded = value
            if f == "cas":
                expected = self.last_seen.get(key)
                recorded = [expected, value]
        self.request_ids += 1
        # KvRequest(process, request_id, f, key, value, expected, invoked_ms, deadline_ms), built faster.
        request: Any = _KvRequestDraft()
        request.process = process
        request.request_id = self.request_ids
        request.f = f
        request.key = key
        request.value = value
        request.expected = expected
        request.invoked_ms = now_ms
        request.deadline_ms = now_ms + self.spec.timeout_ms
        request.__class__ = KvRequest
        self.history.invoke(process, f, key, recorded, now_ms * NS_PER_MS)
        self.in_flight[process] = request
        return request

    def complete(self, request: KvRequest, outcome: Outcome, value: Any, now_ms: int,
                 error: str | None = None) -> bool:
        """Record the answer to ``request``; False when it is stale (already timed out)."""
        process = request.process
        current = self.in_flight.get(process)
        if current is None or current.request_id != request.request_id:
            return False
        del self.in_flight[process]
        f = request.f
        if f == "get":
            recorded = value if outcome == "ok" else None
        elif f == "cas":
            recorded = [request.expected, request.value]
        else:
            recorded = request.value
        self.history.complete(process, outcome, recorded, now_ms * NS_PER_MS, error)
        if outcome == "ok":
            self.last_seen[request.key] = value if f == "get" else request.value
        elif f == "cas" and outcome == "fail" and error and error.startswith("cas mismatch"):
            self.last_seen[request.key] = value
        slot = self.processes.index(process)
        if outcome == "info":
            self.processes[slot] = self._fresh_process()
        self.next_free_ms[slot] = now_ms + self.spec.interval_ms
        return True

    def expire(self, now_ms: int) -> list[KvRequest]:
        """Turn requests past their deadline into ``info`` (unknown outcome)."""
        for request in self.in_flight.values():
            if request.deadline_ms <= now_ms:
                break
        else:
            return []  # the common case: called every tick
        overdue = [request for request in self.in_flight.values() if request.deadline_ms <= now_ms]
        for request in sorted(overdue, key=lambda request: request.process):
            self.complete(request, "info", None, now_ms, error=f"timeout after {self.spec.timeout_ms} ms")
        return overdue

    def stop(self) -> None:
        self.stopped = True


class ServiceClient:
    """The timed service operations of an experiment, one process each (a person
    typing `docker service ...`), recorded as ``service-<op>`` with the service
    name as key and the replica count as value."""

    TIMEOUT_MS = 5000

    def __init__(self, ops: tuple[ServiceOp, ...], history: History, first_process: int) -> None:
        self.pending = list(ops)
        self.history = history
        self.next_process = first_process
        self.in_flight: dict[int, ServiceRequest] = {}
        self.done: list[tuple[int, str, str, Outcome]] = []  # (at_ms, service, op, outcome)

    def poll(self, now_ms: int) -> list[ServiceRequest]:
        due = []
        while self.pending and self.pending[0].at_ms <= now_ms:
            op = self.pending.pop(0)
            process = self.next_process
            self.next_process += 1
            request = ServiceRequest(process, op, now_ms, now_ms + self.TIMEOUT_MS)
            self.history.invoke(process, f"service-{op.op}", op.name, op.replicas, now_ms * NS_PER_MS)
            self.in_flight[process] = request
            due.append(request)
        return due

    def complete(self, request: ServiceRequest, outcome: Outcome, now_ms: int, error: str | None = None) -> bool:
        if self.in_flight.get(request.process) is not request:
            return False
        del self.in_flight[request.process]
        self.history.complete(request.process, outcome, request.op.replicas, now_ms * NS_PER_MS, error=error)
        self.done.append((request.invoked_ms, request.op.name, request.op.op, outcome))
        return True

    def expire(self, now_ms: int) -> None:
        if not self.in_flight:
            return  # the common case: called every tick
        for request in sorted(self.in_flight.values(), key=lambda request: request.process):
            if request.deadline_ms <= now_ms:
                self.complete(request, "info", now_ms, error=f"timeout after {self.TIMEOUT_MS} ms")
