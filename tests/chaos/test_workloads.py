"""The kv client workload: the requests it builds, completion and expiry rules."""
from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaos.experiment import KvWorkload
from chaos.history import History
from chaos.workloads import KvClients, KvRequest


def _clients(seed: int = 1, **spec: int) -> tuple[KvClients, History]:
    history = History()
    return KvClients(KvWorkload(**spec), history, random.Random(seed)), history


def test_built_requests_are_ordinary_frozen_kv_requests() -> None:
    clients, history = _clients(clients=3, interval_ms=100, timeout_ms=1000)
    requests = clients.poll(0)
    assert len(requests) == 1 and len(history) == 1  # the other two are staggered
    request = requests[0]
    assert type(request) is KvRequest
    again = KvRequest(request.process, request.request_id, request.f, request.key, request.value,
                      request.expected, request.invoked_ms, request.deadline_ms)
    assert request == again and hash(request) == hash(again) and repr(request) == repr(again)
    assert request.deadline_ms == 1000 and request.client_id == request.process + 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.key = "other"  # type: ignore[misc]


@given(seed=st.integers(0, 2**32 - 1))
def test_invocations_record_what_the_requests_carry(seed: int) -> None:
    clients, history = _clients(seed, clients=3, key_count=3, interval_ms=10, timeout_ms=50)
    now_ms = 0
    for _ in range(40):
        start = len(history)
        for position, request in enumerate(clients.poll(now_ms)):
            invoked = history.ops[start + position]
            assert invoked.process == request.process and invoked.f == request.f, seed
            assert invoked.key == request.key, seed
            expected_value = [request.expected, request.value] if request.f == "cas" else request.value
            assert invoked.value == expected_value and invoked.time_ns == now_ms * 1_000_000, seed
            assert (request.value is None) == (request.f == "get"), seed
        now_ms += 10
        for request in list(clients.in_flight.values()):
            if (request.request_id + seed) % 3 == 0:
                clients.complete(request, "ok", request.value, now_ms)
        clients.expire(now_ms)
    assert all(op.type in ("invoke", "ok", "info") for op in history), seed
    assert sorted(history.open_processes()) == sorted(clients.in_flight), seed


def test_expire_only_touches_overdue_requests() -> None:
    clients, history = _clients(clients=2, interval_ms=100, timeout_ms=1000)
    first = clients.poll(0)
    second = clients.poll(50)
    assert clients.expire(999) == [] and len(history) == 2
    assert clients.expire(1000) == first
    assert history.ops[-1].type == "info" and history.ops[-1].error == "timeout after 1000 ms"
    assert list(clients.in_flight.values()) == second
    # The expired process is retired: the slot goes on under a fresh process number.
    assert first[0].process not in clients.processes
    # A late answer to the expired request is stale.
    assert clients.complete(first[0], "ok", None, 1001) is False
