"""Liveness on the simulator: a partitioned minority leader steps down within
one election timeout (CheckQuorum); after faults stop with a majority up and
connected, a leader is elected within a bounded number of election timeouts
and proposals commit.  Safety is checked after every event throughout."""
from __future__ import annotations

import pytest

from chaos.checkers.raft_safety import RaftSafetyChecker
from chaos.sim import OK, SECOND_US, KVApp, SimConfig, Simulation
from consensus.types import StateRole


def cluster(voters: int, seed: int, **options: object) -> tuple[Simulation, RaftSafetyChecker]:
    sim = Simulation(SimConfig(seed=seed, **options))
    checker = RaftSafetyChecker()
    sim.add_observer(checker)
    sim.add_cluster(voters)
    assert sim.run_until(lambda s: s.leader() is not None, 10 * SECOND_US)
    return sim, checker


@pytest.mark.parametrize("voters", [3, 5])
@pytest.mark.parametrize("seed", range(4))
def test_partitioned_minority_leader_steps_down_within_one_election_timeout(voters: int, seed: int) -> None:
    sim, checker = cluster(voters, seed)
    cfg = sim.config
    election_us = cfg.election_ticks * cfg.tick_interval_us
    leader = sim.leader()
    sim.isolate(leader)
    cut_at = sim.now_us
    host = sim.managers[leader]
    stepped = sim.run_until(lambda s: host.raft.role != StateRole.LEADER, election_us + cfg.tick_interval_us, 1000)
    assert stepped, f"seed {seed}: isolated leader {leader} still leads after one election timeout"
    assert sim.now_us - cut_at <= election_us + cfg.tick_interval_us
    # Its proposals are refused now (typed NotLeader), the majority elects anew.
    op = sim.propose(leader, KVApp.put("k", "v"))
    assert op.result is not None and op.result.status == "fail"
    assert sim.run_until(lambda s: s.leader() not in (None, leader), 5 * election_us)
    sim.heal()
    sim.run_for(3 * election_us)
    assert checker.ok


@pytest.mark.parametrize("seed", range(6))
def test_leader_elected_and_commits_after_faults_stop(seed: int) -> None:
    sim, checker = cluster(5, seed)
    cfg = sim.config
    election_us = cfg.election_ticks * cfg.tick_interval_us
    rng = sim.fault_rng
    # A burst of faults: crashes, partitions and pauses.
    for _ in range(6):
        victim = rng.choice(sorted(sim.managers))
        choice = rng.randrange(3)
        if choice == 0:
            sim.crash(victim, lose_unsynced=True)
        elif choice == 1:
            sim.partition(rng.sample(sorted(sim.managers), 2))
        else:
            sim.pause(victim)
        sim.run_for(rng.randrange(election_us))
    # Faults stop: a majority (here: all) up and connected.
    sim.heal()
    for node_id, host in sim.managers.items():
        if not host.alive:
            sim.restart(node_id)
        elif host.paused:
            sim.resume(node_id)
    healed_at = sim.now_us
    bound_us = 6 * election_us
    assert sim.run_until(lambda s: s.leader() is not None, bound_us), f"seed {seed}: no leader in {bound_us} us"
    op = sim.propose(sim.leader(), KVApp.put("after", "faults"))
    sim.run_until(lambda s: op.done, 2 * election_us)
    assert op.result is not None and op.result.status == OK, f"seed {seed}: {op.result}"
    assert sim.now_us - healed_at <= bound_us + 2 * election_us
    assert checker.ok
