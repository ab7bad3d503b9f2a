"""The nemesis on a fake cluster: selectors, partition shapes, condition records."""
from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaos.checkers.quorum import has_quorum
from chaos.nemesis import Nemesis, NemesisError
from chaos.schedule import Event, parse_fault_flag
from chaos.strategies import fault_events
from chaos.timeline import Timeline


class FakeCluster:
    def __init__(self, leader: str | None = "m1") -> None:
        self.current_leader = leader
        self.calls: list[tuple] = []
        self.blocked: frozenset = frozenset()

    def leader(self) -> str | None:
        return self.current_leader

    def __getattr__(self, name: str):
        def record(*args: object) -> None:
            self.calls.append((name, *args))
            if name == "set_blocked":
                self.blocked = args[0]
            if name == "crash" and args[0] == self.current_leader:
                self.current_leader = None
        return record


MANAGERS = ["m1", "m2", "m3", "m4", "m5"]
WORKERS = ["w1", "w2"]


def nemesis(leader: str | None = "m1", strict: bool = False) -> tuple[Nemesis, FakeCluster, Timeline]:
    cluster = FakeCluster(leader)
    timeline = Timeline()
    return Nemesis(cluster, MANAGERS, WORKERS, random.Random(1), timeline, strict=strict), cluster, timeline


def reach(blocked: frozenset, node: str, nodes: list[str]) -> set[str]:
    return {other for other in nodes if other != node and (node, other) not in blocked and (other, node) not in blocked}


def test_isolate_leader_cuts_both_directions() -> None:
    chaos, cluster, timeline = nemesis()
    chaos.apply(parse_fault_flag("1s:partition::mode=isolate-leader"), 1000)
    assert reach(cluster.blocked, "m1", MANAGERS + WORKERS) == set()
    assert reach(cluster.blocked, "m2", MANAGERS) == {"m3", "m4", "m5"}
    assert has_quorum(timeline.conditions[-1])
    chaos.apply(parse_fault_flag("2s:heal"), 2000)
    assert cluster.blocked == frozenset() and timeline.faults[-1].label == "isolate leader m1"


def test_majorities_ring_every_manager_sees_a_majority_but_not_all() -> None:
    chaos, cluster, timeline = nemesis()
    chaos.apply(parse_fault_flag("1s:partition::mode=majorities-ring"), 1000)
    seen = [frozenset(reach(cluster.blocked, node, MANAGERS) | {node}) for node in MANAGERS]
    assert all(len(group) == 3 for group in seen) and len(set(seen)) == 5
    assert has_quorum(timeline.conditions[-1])


def test_bridge_and_one_way() -> None:
    chaos, cluster, _ = nemesis()
    chaos.apply(parse_fault_flag("1s:partition::mode=bridge"), 1000)
    bridges = [node for node in MANAGERS if reach(cluster.blocked, node, MANAGERS) == set(MANAGERS) - {node}]
    assert len(bridges) == 1
    chaos.apply(parse_fault_flag("2s:partition::mode=one-way"), 2000)
    assert ("m1", "m2") in cluster.blocked and ("m2", "m1") not in cluster.blocked


def test_kill_majority_then_restart_lifo_and_heal_all() -> None:
    chaos, cluster, timeline = nemesis()
    chaos.apply(Event(1000, "kill-majority"), 1000)
    assert len(chaos.killed) == 3 and chaos.killed[0] == "m1"
    assert not has_quorum(timeline.conditions[-1])
    last = chaos.killed[-1]
    chaos.apply(Event(2000, "restart", "killed"), 2000)
    assert last not in chaos.killed and ("restart", last) in cluster.calls
    chaos.apply(Event(3000, "heal-all"), 3000)
    assert chaos.quiet and has_quorum(timeline.conditions[-1])
    assert [band.label.split()[0] for band in timeline.faults].count("kill") == 3


def test_skips_are_recorded_or_raised_in_strict_mode() -> None:
    chaos, _, timeline = nemesis(leader=None)
    chaos.apply(Event(1000, "kill-leader"), 1000)
    assert chaos.skipped and "no leader" in timeline.applied[-1][1]
    strict, _, _ = nemesis(strict=True)
    with pytest.raises(NemesisError):
        strict.apply(Event(1000, "restart", "killed"), 1000)


def test_links_clocks_drain_membership() -> None:
    chaos, cluster, timeline = nemesis()
    chaos.apply(parse_fault_flag("1s:link::mode=lossy,loss_probability=0.5"), 1000)
    assert timeline.conditions[-1].degraded and cluster.calls[-1][0] == "set_link_faults"
    chaos.apply(parse_fault_flag("2s:clock-drift:m2:rate=2.0"), 2000)
    chaos.apply(parse_fault_flag("3s:drain:w1"), 3000)
    chaos.apply(parse_fault_flag("4s:demote:m5"), 4000)
    assert "m5" not in chaos.voters and timeline.conditions[-1].voters == frozenset(MANAGERS[:4])
    chaos.apply(parse_fault_flag("5s:heal-all"), 5000)
    assert not timeline.conditions[-1].degraded and ("set_clock_rate", "m2", 1.0) in cluster.calls


@given(st.lists(fault_events(MANAGERS, WORKERS, duration_ms=10_000), max_size=12), st.integers(0, 1000))
def test_any_event_sequence_keeps_the_records_consistent(events: list[Event], seed: int) -> None:
    chaos = Nemesis(FakeCluster(), MANAGERS, WORKERS, random.Random(seed), Timeline())
    for event in sorted(events, key=lambda event: event.at_ms):
        chaos.apply(event, event.at_ms)
    conditions = chaos.timeline.conditions
    assert [c.time_ms for c in conditions] == sorted(c.time_ms for c in conditions)
    assert set(chaos.killed).isdisjoint(chaos.paused)
    chaos.apply(Event(20_000, "heal-all"), 20_000)
    assert chaos.quiet and conditions[-1].up == frozenset(MANAGERS)
