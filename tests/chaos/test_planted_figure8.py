"""The figure-8 planted bug (a Raft that commits entries of older terms by
counting replicas, Raft paper section 5.4.2 and figure 8) is found from random
leader-churn schedules and shrunk to at most 10 events.

Budget: up to 60 random 20 s leader-churn schedules
(``chaos.hunt.churn_schedule_for``, 18 events: cycles of an armed
``kill-next-leader`` trap, an isolate-leader / leader-minority partition or a
leader kill, and its heal) on 3 managers with 4 clients, seeds 0..59; the
first failure is shrunk with at most 150 runs.  Measured 2026-11-27 11:31 UTC
(after heartbeat responses were sent before the fsync): 17 of the first 80 seeds fail
(seed 0 is the first, so the hunt tries 1 schedule), 0.06-0.1 s of wall time
per run (median 0.095 s); this file takes about 7 s; without the planted bug
the first 60 schedules all pass.
"""
from __future__ import annotations

import pytest

from chaos.experiment import Experiment, KvWorkload, default_nodes
from chaos.hunt import churn_schedule_for, hunt
from chaos.runner import run_experiment
from chaos.shrink import is_one_minimal

FIGURE8_BUG = (("max_size_per_msg_bytes", 1), ("unsafe_skip_figure8_commit_rule", True))
# One entry per append, so that an old-term entry can reach a majority before
# the new leader's own no-op does (the window of figure 8 (c)).
ONE_ENTRY_PER_APPEND = (("max_size_per_msg_bytes", 1),)
BUDGET = 60
EVENTS = 18


def base_experiment(raft_unsafe: tuple = FIGURE8_BUG) -> Experiment:
    return Experiment(name="figure8-bug", duration_ms=20_000, settle_ms=5_000, nodes=default_nodes(3, 0),
                      kv=KvWorkload(clients=4, key_count=2, interval_ms=50, timeout_ms=500),
                      raft_unsafe=raft_unsafe, checkers=("raft-safety", "linearizability", "durability"))


@pytest.fixture(scope="module")
def figure8_hunt():
    return hunt(base_experiment(), budget=BUDGET, events=EVENTS, make=churn_schedule_for)


def test_figure8_bug_is_found_from_random_schedules_and_shrunk(figure8_hunt) -> None:
    found = figure8_hunt
    assert found.found, f"the figure-8 bug was not found in {BUDGET} leader-churn schedules"
    assert "raft-safety" in found.result.failed_checkers
    shrunk = found.shrunk.experiment
    assert len(shrunk.schedule) <= 10 and found.shrunk.minimal, shrunk.schedule.to_yaml()
    # Traps spring inside the simulation: the failure replays byte for byte.
    first, again = (run_experiment(shrunk, write_png=False) for _ in range(2))
    assert "raft-safety" in first.failed_checkers
    assert first.history_sha256 == again.history_sha256 and first.failed_checkers == again.failed_checkers
    failing = lambda e: "raft-safety" in run_experiment(e, write_png=False).failed_checkers  # noqa: E731
    assert is_one_minimal(shrunk, failing)
    # The shrunk schedule uses a state-triggered trap: timed faults alone land on
    # tick boundaries and miss the window.
    assert any(event.fault == "kill-next-leader" for event in shrunk.schedule)
    # The same schedule with the figure-8 rule in force (still one entry per append): no failure.
    assert run_experiment(shrunk.replace(raft_unsafe=ONE_ENTRY_PER_APPEND), write_png=False).passed


def test_the_failing_schedule_is_harmless_without_the_planted_bug(figure8_hunt) -> None:
    failing = figure8_hunt.failing
    assert failing is not None
    assert run_experiment(failing.replace(raft_unsafe=ONE_ENTRY_PER_APPEND), write_png=False).passed


# ---- the fault kinds the hunt uses, on their own -----------------------------------------

class _Target:
    """A cluster that can crash, restart and cut links but cannot report Raft state."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.blocked: frozenset = frozenset()

    def leader(self) -> str:
        return "m1"

    def crash(self, node: str, lose: bool) -> None:
        self.calls.append(("crash", node))

    def restart(self, node: str) -> None:
        self.calls.append(("restart", node))

    def set_blocked(self, blocked: frozenset) -> None:
        self.blocked = blocked


def _nemesis(managers: list[str]):
    import random

    from chaos.nemesis import Nemesis
    from chaos.timeline import Timeline

    target = _Target()
    timeline = Timeline()
    return Nemesis(target, managers, ["w1"], random.Random(3), timeline), target, timeline


def test_leader_minority_keeps_one_follower_with_the_leader_of_five() -> None:
    from chaos.schedule import parse_fault_flag

    managers = ["m1", "m2", "m3", "m4", "m5"]
    chaos, target, _timeline = _nemesis(managers)
    chaos.apply(parse_fault_flag("1s:partition::mode=leader-minority"), 1000)
    nodes = managers + ["w1"]
    reach = {a: {b for b in nodes if b != a and (a, b) not in target.blocked} for a in nodes}
    assert len(reach["m1"]) == 1 and reach["m1"] <= set(managers)
    companion = next(iter(reach["m1"]))
    rest = set(nodes) - {"m1", companion}
    assert all(reach[node] == rest - {node} for node in rest)
    three, target3, _ = _nemesis(["m1", "m2", "m3"])
    three.apply(parse_fault_flag("1s:partition::mode=leader-minority"), 1000)
    assert not any(("m1", other) not in target3.blocked for other in ("m2", "m3", "w1"))


def test_random_killed_restarts_one_of_the_killed_nodes() -> None:
    from chaos.schedule import Event

    chaos, target, _timeline = _nemesis(["m1", "m2", "m3"])
    chaos.apply(Event(1000, "kill", "m2"), 1000)
    chaos.apply(Event(1000, "kill", "m3"), 1000)
    chaos.apply(Event(2000, "restart", "random-killed"), 2000)
    restarted = [call[1] for call in target.calls if call[0] == "restart"]
    assert len(restarted) == 1 and restarted[0] in ("m2", "m3") and len(chaos.killed) == 1


def test_kill_next_leader_is_skipped_by_a_backend_without_raft_events() -> None:
    from chaos.schedule import Event

    chaos, target, _timeline = _nemesis(["m1", "m2", "m3"])
    chaos.apply(Event(1000, "kill-next-leader"), 1000)
    assert chaos.skipped and "cannot report" in chaos.skipped[-1][1] and not target.calls


@pytest.mark.parametrize("when", ["elected", "first-commit"])
def test_kill_next_leader_kills_the_next_leader_and_the_cluster_recovers(when: str) -> None:
    from chaos.schedule import Event, Schedule

    experiment = base_experiment(raft_unsafe=()).replace(
        seed=5, duration_ms=8_000, settle_ms=6_000,
        checkers=("raft-safety", "linearizability", "durability", "quorum", "convergence"),
        schedule=Schedule([Event(1000, "kill-next-leader", None, (("when", when),)),
                           Event(1000, "kill-leader"), Event(5000, "heal"),
                           Event(5000, "restart", "all")]))
    result = run_experiment(experiment, write_png=False)
    sprung = [text for _at, text in result.timeline.applied if text.startswith("trap:")]
    assert len(sprung) == 1, result.timeline.applied
    assert ("elected leader" if when == "elected" else "committed up to") in sprung[0]
    assert result.passed, result.explain()
