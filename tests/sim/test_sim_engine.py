"""The simulator itself: determinism, network faults, disks, pause, drift,
hosted applications and worker processes, client outcomes."""
from __future__ import annotations

from typing import Any

import pytest

from chaos.checkers.raft_safety import RaftSafetyChecker
from chaos.sim import (
    FAIL,
    MILLISECOND_US,
    OK,
    SECOND_US,
    TIMEOUT,
    BaseApplication,
    ClientResult,
    KVApp,
    LinkConfig,
    SimConfig,
    Simulation,
    derive_rng,
    derive_seed,
)
from chaos.sim.fuzz import Step, run_schedule
from consensus.types import ConfChange, ConfChangeType, Entry


def busy_run(seed: int) -> Simulation:
    sim = Simulation(SimConfig(seed=seed, default_link=LinkConfig(loss=0.05, duplicate=0.05, reorder=0.1)))
    sim.add_observer(RaftSafetyChecker())
    sim.add_cluster(3)
    rng = sim.client_rng
    for step in range(60):
        sim.run_for(rng.randrange(200 * MILLISECOND_US))
        node = rng.choice(sim.live_managers())
        sim.propose(node, KVApp.put("k", step))
        if step == 20:
            sim.crash(sim.leader() or 1, lose_unsynced=True)
        if step == 35:
            sim.restart(sim.managers[1].node_id) if not sim.managers[1].alive else None
            for node_id in list(sim.managers):
                if not sim.managers[node_id].alive:
                    sim.restart(node_id)
        if step == 40:
            sim.partition([1], [2, 3])
        if step == 50:
            sim.heal()
    sim.run_for(3 * SECOND_US)
    return sim


def test_same_seed_gives_byte_identical_trace() -> None:
    first = busy_run(11)
    second = busy_run(11)
    assert len(first.trace) > 1000
    assert first.trace_digest() == second.trace_digest()
    assert busy_run(12).trace_digest() != first.trace_digest()


def test_fuzz_runs_are_deterministic() -> None:
    steps = [Step(500, "partition", 5, 0), Step(1500, "crash", 1, 1), Step(800, "heal"), Step(900, "restart", 0)]
    a = run_schedule(3, 3, steps)
    b = run_schedule(3, 3, steps)
    assert a.sim.trace_digest() == b.sim.trace_digest()


def test_derived_seeds_are_stable_and_independent() -> None:
    assert derive_seed(1, "network") == derive_seed(1, "network")
    assert derive_seed(1, "network") != derive_seed(1, "raft", 1)
    assert derive_seed(1, "raft", 1, 1) != derive_seed(2, "raft", 1, 1)
    # A known value pins the derivation (SHA-256, not hash()).
    assert derive_rng(0, "x").random() == derive_rng(0, "x").random()


def test_link_config_is_validated() -> None:
    with pytest.raises(ValueError):
        LinkConfig(loss=1.5)
    with pytest.raises(ValueError):
        LinkConfig(delay_us_min=10, delay_us_max=5)


def test_one_way_partition_and_total_loss() -> None:
    sim = Simulation(SimConfig(seed=1))
    sim.add_cluster(3)
    sim.run_until(lambda s: s.leader() is not None, 10 * SECOND_US)
    leader = sim.leader()
    others = [n for n in sim.managers if n != leader]
    # Leader can send but not hear: CheckQuorum makes it step down.
    for other in others:
        sim.block(other, leader)
    sim.run_for(3 * SECOND_US)
    assert sim.leader() != leader or sim.managers[leader].raft.term > 1
    sim.heal()
    sim.set_default_link(LinkConfig(loss=1.0))
    sim.run_for(3 * SECOND_US)
    assert sim.network.packets_dropped > 0
    sim.set_default_link(LinkConfig())
    assert sim.run_until(lambda s: s.leader() is not None, 10 * SECOND_US)


def test_crash_can_lose_unsynced_writes_and_restart_recovers_durable_state() -> None:
    sim = Simulation(SimConfig(seed=2, fsync_latency_us=50 * MILLISECOND_US))
    checker = RaftSafetyChecker()
    sim.add_observer(checker)
    sim.add_cluster(3)
    sim.run_until(lambda s: s.leader() is not None, 10 * SECOND_US)
    leader = sim.leader()
    host = sim.managers[leader]
    for i in range(5):
        sim.propose(leader, KVApp.put("k", i))
    # The leader's fsync is still pending: crash it losing the write.
    assert host.disk.pending
    durable_before = host.disk.durable.last_index()
    sim.crash(leader, lose_unsynced=True)
    assert host.disk.writes_lost >= 1
    assert host.disk.durable.last_index() == durable_before
    sim.restart(leader)
    sim.run_for(5 * SECOND_US)
    assert checker.ok
    assert host.raft.log.committed >= durable_before


def test_pause_queues_packets_and_resume_delivers_them() -> None:
    sim = Simulation(SimConfig(seed=3))
    sim.add_cluster(3)
    sim.run_until(lambda s: s.leader() is not None, 10 * SECOND_US)
    follower = next(n for n in sim.managers if n != sim.leader())
    sim.pause(follower)
    op = sim.read(follower, "k", timeout_us=SECOND_US)
    sim.run_for(500 * MILLISECOND_US)
    assert sim.managers[follower].inbox
    sim.run_for(SECOND_US)
    assert op.result.status == TIMEOUT  # a paused server never answered in time
    sim.resume(follower)
    assert not sim.managers[follower].inbox
    sim.run_for(SECOND_US)


def test_clock_drift_changes_tick_rate() -> None:
    sim = Simulation(SimConfig(seed=4))
    sim.add_cluster(3)
    sim.set_clock_drift(2, 2.0)
    sim.run_for(10 * SECOND_US)
    assert sim.managers[2].raft.ticks > 1.8 * sim.managers[1].raft.ticks
    with pytest.raises(ValueError):
        sim.set_clock_drift(1, 100.0)


def test_client_outcomes_ok_fail_timeout() -> None:
    sim = Simulation(SimConfig(seed=5))
    sim.add_cluster(3)
    sim.run_until(lambda s: s.leader() is not None, 10 * SECOND_US)
    leader = sim.leader()
    follower = next(n for n in sim.managers if n != leader)
    ok = sim.propose(leader, KVApp.put("k", 1))
    refused = sim.propose(follower, KVApp.put("k", 2))
    assert refused.result.status == FAIL and f"hint {leader}" in refused.result.error
    sim.run_for(SECOND_US)
    assert ok.result.status == OK and ok.result.value == [True, 1, 1]
    read = sim.read(follower, "k")
    sim.run_for(SECOND_US)
    assert read.result.status == OK and read.result.value == 1
    sim.isolate(leader)
    stuck = sim.propose(leader, KVApp.put("k", 3), timeout_us=500 * MILLISECOND_US)
    sim.run_for(SECOND_US)
    assert stuck.result.status == TIMEOUT
    sim.crash(follower)
    down = sim.propose(follower, KVApp.put("k", 4))
    assert down.result.status == FAIL


def test_conf_change_through_the_client_api() -> None:
    sim = Simulation(SimConfig(seed=6))
    checker = RaftSafetyChecker()
    sim.add_observer(checker)
    sim.add_cluster(3)
    sim.add_manager(4)
    sim.managers[4].start()
    sim.run_until(lambda s: s.leader() is not None, 10 * SECOND_US)
    sim.run_for(SECOND_US)
    leader = sim.leader()
    op = sim.conf_change(leader, ConfChange(ConfChangeType.ADD_LEARNER_NODE, 4))
    sim.run_for(SECOND_US)
    assert op.result.status == OK and op.result.value.learners == (4,)
    op = sim.conf_change(sim.leader(), ConfChange(ConfChangeType.ADD_NODE, 4))
    sim.run_for(SECOND_US)
    assert op.result.status == OK and op.result.value.voters == (1, 2, 3, 4)
    assert sim.managers[4].raft.voters == {1, 2, 3, 4}
    assert checker.ok


class CountingApp(KVApp):
    """A manager application with a leader-only component: while leading it
    proposes one command every 5 ticks and answers worker heartbeats."""

    def __init__(self) -> None:
        super().__init__()
        self.ticks = 0
        self.leader_changes: list[int] = []
        self.worker_messages: list[tuple[int, Any]] = []

    def on_leader_change(self, ctx: Any, leader_id: int) -> None:
        self.leader_changes.append(leader_id)

    def on_tick(self, ctx: Any) -> list[bytes]:
        self.ticks += 1
        if ctx.is_leader and self.ticks % 5 == 0:
            return [KVApp.put("tick", ctx.now_us)]
        return []

    def on_message(self, ctx: Any, src: int, payload: Any) -> None:
        self.worker_messages.append((src, payload))
        ctx.send(src, ("ack", payload[1]))


class Worker:
    def __init__(self, address: int) -> None:
        self.address = address
        self.acks: list[int] = []
        self.sent = 0

    def on_start(self, ctx: Any) -> None:
        pass

    def on_tick(self, ctx: Any) -> None:
        self.sent += 1
        ctx.send(1 + self.sent % 3, ("heartbeat", self.sent))

    def on_message(self, ctx: Any, src: int, payload: Any) -> None:
        self.acks.append(payload[1])


def test_hosted_application_hooks_and_workers() -> None:
    sim = Simulation(SimConfig(seed=8), app_factory=lambda node_id: CountingApp())
    checker = RaftSafetyChecker()
    sim.add_observer(checker)
    sim.add_cluster(3)
    worker_host = sim.add_process(100, Worker)
    sim.run_for(10 * SECOND_US)
    leader = sim.leader()
    apps = {n: sim.managers[n].app for n in sim.managers}
    assert all(app.leader_changes and app.leader_changes[-1] == leader for app in apps.values())
    assert all(app.data.get("tick") is not None for app in apps.values())  # proposals from on_tick committed
    assert worker_host.process.acks  # managers answered the worker over the network
    assert sum(len(app.worker_messages) for app in apps.values()) >= worker_host.process.sent - 5
    sim.crash(100)
    sim.restart(100)
    assert worker_host.process.sent == 0  # volatile state rebuilt by the factory
    assert checker.ok


def test_base_application_defaults() -> None:
    class Minimal(BaseApplication):
        def apply(self, entry: Entry) -> Any:
            return None

    app = Minimal()
    assert app.on_tick(None) == () and app.on_message(None, 1, None) is None  # type: ignore[arg-type]


def test_snapshots_and_compaction_in_the_simulator() -> None:
    sim = Simulation(SimConfig(seed=9, snapshot_every_entries=5, snapshot_keep_entries=2))
    checker = RaftSafetyChecker()
    sim.add_observer(checker)
    sim.add_cluster(3)
    sim.run_until(lambda s: s.leader() is not None, 10 * SECOND_US)
    victim = next(n for n in sim.managers if n != sim.leader())
    sim.crash(victim)
    for i in range(30):
        sim.propose(sim.leader(), KVApp.put("k", i))
        sim.run_for(50 * MILLISECOND_US)
    assert sim.managers[sim.leader()].disk.durable.first_index() > 10
    sim.restart(victim)
    sim.run_for(5 * SECOND_US)
    assert sim.managers[victim].app.data["k"] == 29  # caught up through an InstallSnapshot
    assert any(event[1] == "install" and event[2] == victim for event in sim.trace)
    assert checker.ok


def test_force_new_cluster_recovers_a_lost_quorum_in_the_simulator() -> None:
    sim = Simulation(SimConfig(seed=10))
    sim.add_cluster(3)
    assert sim.run_until(lambda s: s.leader() is not None, 10 * SECOND_US)
    ok = sim.propose(sim.leader(), KVApp.put("k", "before"))
    sim.run_for(SECOND_US)
    assert ok.result.status == OK
    survivor = 3
    for node_id in (1, 2):
        sim.crash(node_id)
    sim.run_for(5 * SECOND_US)
    assert sim.leader() is None  # 1 of 3 voters: no quorum, no leader
    host = sim.managers[survivor]
    host.raft.force_new_cluster()  # the operator's loudly unsafe recovery
    host.drain()
    assert sim.run_until(lambda s: s.leader() == survivor, 5 * SECOND_US)
    after = sim.propose(survivor, KVApp.put("k", "after"))
    sim.run_for(SECOND_US)
    assert after.result.status == OK
    assert host.raft.voters == {survivor} and host.app.data["k"] == "after"


def test_client_results_are_frozen_values() -> None:
    # A hand-written __init__ (C slots when compiled) keeps the dataclass's
    # value semantics: equality, repr and no assignment.
    result = ClientResult(3, "propose", OK, [True, 1, 1], None, 2, 7, 100, 250)
    assert result == ClientResult(3, "propose", OK, [True, 1, 1], None, 2, 7, 100, 250)
    assert result != ClientResult(3, "propose", FAIL, error="not leader")
    assert repr(ClientResult(1, "read", TIMEOUT)) == (
        "ClientResult(op_id=1, kind='read', status='timeout', value=None, error=None, node=0, index=0, "
        "invoke_us=0, complete_us=0)")
    with pytest.raises(AttributeError):
        result.status = FAIL  # type: ignore[misc]
