"""The planted-bug switches are real bugs that the checks here catch.

* ``ReadOnlyOption.UNSAFE_NO_READ_INDEX`` (reads served from the local commit
  index without ReadIndex) is caught by the read-linearizability check from
  random schedules within a small budget of seeds.
* ``Config(unsafe_skip_figure8_commit_rule=True)`` is shown breaking state
  machine safety step by step in scenarios/figure8_unsafe_switch.txt; here we
  check the switch changes behaviour exactly where figure 8 says.
"""
from __future__ import annotations

import random

from chaos.sim.fuzz import ACTIONS, Step, run_schedule
from consensus.read_only import ReadOnlyOption

SEED_BUDGET = 30


def random_steps(seed: int) -> list[Step]:
    rng = random.Random(seed)
    return [Step(rng.randint(0, 3000), rng.choice(ACTIONS), rng.randint(0, 63), rng.randint(0, 63))
            for _ in range(rng.randint(1, 20))]


def test_unsafe_local_reads_are_caught_within_budget() -> None:
    for seed in range(SEED_BUDGET):
        result = run_schedule(seed, 3, random_steps(seed), read_only_option=ReadOnlyOption.UNSAFE_NO_READ_INDEX,
                              check_liveness=False)
        if result.linearizability_errors:
            assert "stale read" in result.linearizability_errors[0]
            return
    raise AssertionError(f"planted read bug not found in {SEED_BUDGET} seeds")


def test_safe_reads_pass_the_same_schedules() -> None:
    for seed in range(10):
        result = run_schedule(seed, 3, random_steps(seed), check_liveness=False)
        assert not result.linearizability_errors, (seed, result.linearizability_errors[:2])


def figure8_in_the_simulator(unsafe: bool) -> list[str]:
    """Paper figure 8 played on the simulator with state-triggered faults;
    returns the safety violations the checker recorded."""
    from chaos.checkers.raft_safety import RaftSafetyChecker
    from chaos.sim import SECOND_US, KVApp, SimConfig, Simulation

    sim = Simulation(SimConfig(seed=8, pre_vote=False, check_quorum=False, raft_overrides={
        "unsafe_skip_figure8_commit_rule": unsafe, "max_size_per_msg_bytes": 1}))
    checker = RaftSafetyChecker(raise_on_violation=False)
    sim.add_observer(checker)
    ids = sim.add_cluster(5)
    assert sim.run_until(lambda s: s.leader() is not None, 10 * SECOND_US)
    sim.run_for(SECOND_US)
    first = sim.leader()
    buddy = next(n for n in ids if n != first)
    rest = [n for n in ids if n not in (first, buddy)]
    # (a) the leader's entry X reaches only one other node.
    sim.partition([first, buddy], rest)
    sim.propose(first, KVApp.put("x", "X"))
    sim.run_for(SECOND_US)
    index_x = sim.managers[first].raft.log.last_index()
    # (b) a leader of the other side appends its no-op at X's index and dies at once.
    sim.crash(first)
    sim.crash(buddy)
    sim.heal()
    assert sim.run_until(lambda s: s.leader() in rest, 20 * SECOND_US, check_every_us=50)
    second = sim.leader()
    assert sim.managers[second].raft.log.last_index() == index_x
    sim.isolate(second)  # its in-flight appends die with it
    sim.crash(second)
    sim.run_for(SECOND_US // 10)
    # (c) the first leader returns, wins, and copies X to a majority; crash it
    # the moment its commit index covers X.
    sim.restart(first)
    sim.restart(buddy)
    sim.run_until(lambda s: s.leader() in (first, buddy) and s.managers[s.leader()].raft.log.committed >= index_x,
                  30 * SECOND_US, check_every_us=50)
    sim.isolate(first)  # (drops their in-flight appends of the new entry)
    sim.isolate(buddy)
    sim.crash(first)
    sim.crash(buddy)
    sim.run_for(SECOND_US // 10)  # let what they had in flight be dropped
    # (d) the second leader returns; the two remaining nodes may elect it.
    sim.heal()
    sim.restart(second)
    for _ in range(100):  # it campaigns until it wins (its log beats theirs)
        if sim.leader() == second:
            break
        host = sim.managers[second]
        host.raft.campaign()
        host.drain()
        sim.run_for(SECOND_US // 20)
    sim.run_for(10 * SECOND_US)
    return [v.property for v in checker.violations]


def test_figure8_switch_is_caught_by_the_checker_in_the_simulator() -> None:
    assert figure8_in_the_simulator(unsafe=False) == []
    violations = figure8_in_the_simulator(unsafe=True)
    assert violations, "the planted figure-8 bug went unnoticed"
    assert violations[0] in ("state machine safety", "leader completeness", "committed entry lost")


test_figure8_switch_is_caught_by_the_checker_in_the_simulator.planted_bug = True  # type: ignore[attr-defined]


FIGURE8_SCHEDULE = [
    Step(0, "trap_new_leader"),   # the next leader dies as soon as it is elected
    Step(0, "isolate_leader"),    # the current leader keeps appending, alone
    Step(4000, "heal"),
    Step(0, "trap_commit"),       # kill a leader that commits an older-term entry
    Step(4000, "restart"),        # the trapped leader returns with its conflicting entry
    Step(4000, "heal"),
]


def test_figure8_switch_is_found_by_a_six_step_fuzz_schedule() -> None:
    from chaos.checkers.raft_safety import RaftSafetyViolation

    unsafe = {"unsafe_skip_figure8_commit_rule": True, "max_size_per_msg_bytes": 1}
    found = []
    for seed in range(12):
        try:
            run_schedule(seed, 3, FIGURE8_SCHEDULE, raft_overrides=unsafe, check_liveness=False)
        except RaftSafetyViolation as violation:
            found.append((seed, violation.property))
    assert found, "the figure-8 schedule never tripped the planted bug"
    for seed in range(6):  # and the same schedule is harmless without the bug
        assert run_schedule(seed, 3, FIGURE8_SCHEDULE, raft_overrides={"max_size_per_msg_bytes": 1}).ok
