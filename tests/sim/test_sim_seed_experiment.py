"""The seed's experiment on the simulator: Raft needs a majority alive.

2 voters, crash one -> nothing commits; 3 voters, crash one -> commits;
crash two -> nothing commits; restart -> commits resume, nothing committed
lost.  Safety is checked after every event by RaftSafetyChecker.
"""
from __future__ import annotations

from chaos.checkers.raft_safety import RaftSafetyChecker
from chaos.sim import OK, SECOND_US, KVApp, SimConfig, Simulation


def make_cluster(voters: int, seed: int) -> tuple[Simulation, RaftSafetyChecker]:
    sim = Simulation(SimConfig(seed=seed))
    checker = RaftSafetyChecker()
    sim.add_observer(checker)
    sim.add_cluster(voters)
    assert sim.run_until(lambda s: s.leader() is not None, 10 * SECOND_US), f"no leader (seed {seed})"
    return sim, checker


def try_commits(sim: Simulation, count: int = 5, wait_us: int = 6 * SECOND_US) -> list[str]:
    """Clients send ``count`` writes to every live manager (whoever leads);
    returns the statuses of the ones that were sent to the leader, or to all
    when there is no leader."""
    statuses: list[str] = []
    ops = []
    for i in range(count):
        for node_id in sim.live_managers():
            ops.append(sim.propose(node_id, KVApp.put("k", f"{sim.now_us}-{i}-{node_id}"), timeout_us=wait_us // 2))
        sim.run_for(wait_us // count)
    sim.run_for(wait_us)
    statuses = [op.result.status for op in ops if op.result is not None]
    return statuses


def committed_values(sim: Simulation, node_id: int) -> int:
    return sim.managers[node_id].app.applied_count


def test_two_voters_crash_one_nothing_commits() -> None:
    for seed in range(3):
        sim, checker = make_cluster(2, seed)
        assert OK in try_commits(sim)
        sim.crash(sim.leader() or 1)
        statuses = try_commits(sim)
        assert OK not in statuses, f"seed {seed}: a write committed with 1 of 2 voters up"
        # Also when the follower (not the leader) is the one that dies.
        sim2, _ = make_cluster(2, seed + 100)
        leader = sim2.leader()
        sim2.crash(3 - leader)
        assert OK not in try_commits(sim2), f"seed {seed + 100}: committed without the follower"
        assert checker.ok


def test_three_voters_survive_one_crash_not_two_and_recover() -> None:
    for seed in range(3):
        sim, checker = make_cluster(3, seed)
        assert OK in try_commits(sim)
        first = sim.leader()
        sim.crash(first, lose_unsynced=True)
        assert OK in try_commits(sim), f"seed {seed}: 2 of 3 voters up but nothing committed"
        second = sim.leader()
        assert second is not None and second != first
        sim.crash(second, lose_unsynced=True)
        assert OK not in try_commits(sim), f"seed {seed}: committed with 1 of 3 voters up"
        survivor = sim.live_managers()[0]
        applied_before = committed_values(sim, survivor)
        sim.restart(first)
        assert sim.run_until(lambda s: s.leader() is not None, 10 * SECOND_US)
        assert OK in try_commits(sim), f"seed {seed}: commits did not resume after restart"
        sim.restart(second)
        sim.run_for(5 * SECOND_US)
        # Nothing committed is lost: every node applied at least what was
        # applied before and all agree (the checker verified each entry).
        counts = {n: committed_values(sim, n) for n in sim.live_managers()}
        assert min(counts.values()) >= applied_before
        assert len(set(counts.values())) == 1, counts
        assert checker.ok and checker.max_committed_index > 0
