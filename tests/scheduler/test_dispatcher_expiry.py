"""The dispatcher skips its heartbeat-expiry scan on ticks where it could
change nothing; the decisions must equal a full scan on every tick."""
from __future__ import annotations

import random

from hypothesis import given, strategies as st

from scheduler.component import Context
from scheduler.config import ManagerConfig
from scheduler.dispatcher import Dispatcher
from scheduler.messages import Heartbeat, Register
from scheduler.store import Store, Transaction

CONFIG = ManagerConfig(heartbeat_period_ticks=5, heartbeat_grace_multiplier=3)


class FullScanDispatcher(Dispatcher):
    skip_idle_expiry_scans = False


def run(dispatcher_type: type, seed: int, ticks: int) -> list:
    """Random registrations and heartbeats of 4 nodes; every tick's ops,
    committed to the dispatcher's own store."""
    rng = random.Random(seed)
    store = Store()
    context = Context(store, CONFIG, 0)
    dispatcher = dispatcher_type()
    dispatcher.start(context)
    decisions = []
    for now in range(ticks):
        context.now_ticks = now
        for node in ("n1", "n2", "n3", "n4"):
            roll = rng.random()
            if roll < 0.03:
                dispatcher.handle(Register(node, node), context)
            elif roll < 0.25 and node in dispatcher.sessions:
                dispatcher.handle(Heartbeat(node, dispatcher.sessions[node]), context)
        ops = dispatcher.tick(context)
        dispatcher.take_outbox()
        decisions.append([repr(op) for op in ops])
        if ops:
            result = store.apply(store.applied_index + 1, Transaction(tuple(ops), "test").encode())
            dispatcher.on_result(result.ok, context)
    return decisions


@given(st.integers(0, 2**32 - 1))
def test_skipped_scans_decide_exactly_like_full_scans(seed: int) -> None:
    print("seed", seed)
    fast = run(Dispatcher, seed, 120)
    assert fast == run(FullScanDispatcher, seed, 120)


def test_the_random_runs_do_mark_nodes_down() -> None:
    # The comparison above is not vacuous: silent nodes are declared down.
    decisions = [op for seed in range(10) for ops in run(Dispatcher, seed, 120) for op in ops]
    assert any("heartbeat failure" in op for op in decisions)
