"""Public hypothesis strategies: cluster shapes, workloads, fault schedules, experiments.

For users' own property-based suites (see docs/chaos.md)::

    from hypothesis import given
    from chaos.strategies import experiments
    from chaos.testing import run_experiment

    @given(experiments(duration_ms=20_000))
    def test_my_cluster_survives(experiment):
        result = run_experiment(experiment)
        assert result.passed, result.explain()

Every strategy shrinks towards fewer nodes, fewer events and earlier times, so
a failing example is small before ``chaos.shrink`` even starts.
"""
from __future__ import annotations

import random
from collections.abc import Sequence

from hypothesis import strategies as st

from chaos.experiment import CHECKERS, Experiment, KvWorkload, NodeSpec, ServiceOp, Timing, default_nodes
from chaos.schedule import TRAP_MOMENTS, Event, Schedule

# Faults drawn by default, in shrink order (hypothesis prefers earlier choices).
DEFAULT_FAULTS: tuple[str, ...] = (
    "kill-leader", "restart", "heal", "partition", "kill", "heal-all", "pause", "resume",
    "link", "link-heal", "clock-drift", "clock-heal", "kill-majority",
)
PARTITION_MODES = ("isolate-leader", "random-halves", "majorities-ring", "bridge", "one-way")


@st.composite
def cluster_shapes(draw: st.DrawFn, managers: st.SearchStrategy[int] | None = None,
                   workers: st.SearchStrategy[int] | None = None) -> tuple[NodeSpec, ...]:
    """Node lists: by default 1, 3 or 5 managers (odd, as Raft advises) and 0-4 workers."""
    manager_count = draw(managers if managers is not None else st.sampled_from([3, 1, 5]))
    worker_count = draw(workers if workers is not None else st.integers(0, 4))
    return default_nodes(manager_count, worker_count)


@st.composite
def kv_workloads(draw: st.DrawFn) -> KvWorkload:
    return KvWorkload(
        clients=draw(st.integers(1, 5)),
        key_count=draw(st.integers(1, 3)),
        interval_ms=draw(st.sampled_from([100, 50, 200, 20])),
        timeout_ms=draw(st.sampled_from([1000, 500, 2000])),
        mix=(("get", draw(st.integers(0, 3))), ("put", draw(st.integers(1, 3))), ("cas", draw(st.integers(0, 2)))),
    )


@st.composite
def fault_events(draw: st.DrawFn, managers: Sequence[str], workers: Sequence[str], duration_ms: int,
                 faults: Sequence[str] = DEFAULT_FAULTS) -> Event:
    """One event at a time within [0, duration_ms] on the named nodes."""
    nodes = list(managers) + list(workers)
    at_ms = draw(st.integers(0, duration_ms // 100)) * 100
    fault = draw(st.sampled_from(list(faults)))
    node_target = st.sampled_from(["random-manager", "leader", "follower", *nodes])
    params: dict[str, object] = {}
    target: str | None = None
    if fault in ("kill", "pause", "clock-drift"):
        target = draw(node_target)
    if fault in ("kill", "kill-leader", "kill-majority"):
        if draw(st.booleans()):
            params["lose_unpersisted"] = True
    if fault == "restart":
        target = "killed"
    if fault == "resume":
        target = "paused"
    if fault == "partition":
        params["mode"] = draw(st.sampled_from(PARTITION_MODES))
    if fault == "link":
        mode = draw(st.sampled_from(["lossy", "slow", "duplicating", "reordering"]))
        params["mode"] = mode
        if mode == "lossy":
            params["loss_probability"] = draw(st.sampled_from([0.1, 0.3, 0.5]))
        if mode == "slow":
            params["delay_ms"] = draw(st.sampled_from([20, 100, 300]))
    if fault == "clock-drift":
        params["rate"] = draw(st.sampled_from([1.5, 0.5, 2.0]))
    if fault == "kill-next-leader":
        params["when"] = draw(st.sampled_from(list(TRAP_MOMENTS)))
    return Event(at_ms, fault, target, tuple(sorted(params.items())))


@st.composite
def schedules(draw: st.DrawFn, managers: Sequence[str], workers: Sequence[str] = (), duration_ms: int = 30_000,
              max_events: int = 8, faults: Sequence[str] = DEFAULT_FAULTS) -> Schedule:
    events = draw(st.lists(fault_events(managers, workers, duration_ms, faults), max_size=max_events))
    return Schedule(events)


@st.composite
def service_workloads(draw: st.DrawFn, duration_ms: int, name: str = "web") -> tuple[ServiceOp, ...]:
    if not draw(st.booleans()):
        return ()
    ops = [ServiceOp(1000, "create", name, replicas=draw(st.integers(1, 4)))]
    for _ in range(draw(st.integers(0, 3))):
        at_ms = draw(st.integers(2, max(2, duration_ms // 1000))) * 1000
        ops.append(ServiceOp(at_ms, "scale", name, replicas=draw(st.integers(0, 6))))
    return tuple(sorted(ops, key=lambda op: op.at_ms))


@st.composite
def experiments(draw: st.DrawFn, duration_ms: int = 30_000, max_events: int = 8,
                shapes: st.SearchStrategy[tuple[NodeSpec, ...]] | None = None,
                faults: Sequence[str] = DEFAULT_FAULTS, checkers: Sequence[str] = CHECKERS,
                services: bool = True) -> Experiment:
    """Whole experiments with a seed; every field is drawn so that it shrinks."""
    nodes = draw(shapes if shapes is not None else cluster_shapes())
    managers = [node.name for node in nodes if node.is_manager]
    workers = [node.name for node in nodes if not node.is_manager]
    return Experiment(
        name="hypothesis",
        seed=draw(st.integers(0, 2**32 - 1)),
        duration_ms=duration_ms,
        settle_ms=10_000,
        nodes=nodes,
        kv=draw(kv_workloads()),
        services=draw(service_workloads(duration_ms)) if services else (),
        schedule=draw(schedules(managers, workers, duration_ms, max_events, faults)),
        checkers=tuple(checkers),
        timing=Timing(),
        convergence_bound_ms=10_000,
    )


def random_schedule(rng: random.Random, managers: Sequence[str], workers: Sequence[str] = (),
                    duration_ms: int = 60_000, events: int = 8,
                    faults: Sequence[str] = DEFAULT_FAULTS) -> Schedule:
    """A schedule drawn from a seeded generator, without hypothesis (for sweeps and
    benchmarks): the same choices as ``fault_events`` with ``rng`` deciding.

    Faults come in pairs with their heal a few seconds later, so that most of the
    run has some fault active but the cluster is not simply dead throughout.
    """
    nodes = list(managers) + list(workers)
    heal_of = {"kill": ("restart", "killed"), "kill-leader": ("restart", "killed"),
               "kill-majority": ("heal-all", None), "pause": ("resume", "paused"),
               "partition": ("heal", None), "link": ("link-heal", None), "clock-drift": ("clock-heal", None),
               "kill-next-leader": ("restart", "all")}
    drawn: list[Event] = []
    starters = [fault for fault in faults if fault in heal_of]
    for _ in range(max(0, events // 2)):
        at_ms = rng.randrange(0, max(1, duration_ms - 2000) // 100) * 100
        fault = rng.choice(starters)
        params: dict[str, object] = {}
        target: str | None = None
        if fault in ("kill", "pause", "clock-drift"):
            target = rng.choice(["random-manager", "leader", "follower", *nodes])
        if fault in ("kill", "kill-leader") and rng.random() < 0.3:
            params["lose_unpersisted"] = True
        if fault == "partition":
            params["mode"] = rng.choice(PARTITION_MODES)
        if fault == "link":
            params["mode"] = rng.choice(["lossy", "slow", "duplicating", "reordering"])
        if fault == "clock-drift":
            params["rate"] = rng.choice([0.5, 1.5, 2.0])
        if fault == "kill-next-leader":
            params["when"] = rng.choice(TRAP_MOMENTS)
        drawn.append(Event(at_ms, fault, target, tuple(sorted(params.items()))))
        heal, heal_target = heal_of[fault]
        heal_ms = min(duration_ms, at_ms + rng.randrange(10, 80) * 100)
        drawn.append(Event(heal_ms, heal, heal_target))
    return Schedule(drawn)


# Leader churn, as Jepsen's Raft tests run it: cycles of a leader fault (isolate
# the leader, a minority that keeps the leader, kill the leader) and its heal
# a few seconds later, each cycle with a state-triggered trap armed at its
# start (kill the next leader the moment it is elected, or right after its
# first commit), cycles at short intervals that may overlap.
CHURN_FAULTS: tuple[tuple[str, tuple[tuple[str, object], ...], str, str | None], ...] = (
    ("partition", (("mode", "isolate-leader"),), "heal", None),
    ("partition", (("mode", "leader-minority"),), "heal", None),
    ("kill-leader", (), "restart", "all"),
)


def leader_churn_schedule(rng: random.Random, managers: Sequence[str], workers: Sequence[str] = (),
                          duration_ms: int = 20_000, events: int = 12, cycle_ms_min: int = 500,
                          cycle_ms_max: int = 3000, fault_ms_min: int = 1500,
                          fault_ms_max: int = 4000) -> Schedule:
    """Cycles of (arm a ``kill-next-leader`` trap, a leader fault, its heal after
    ``fault_ms_min`` .. ``fault_ms_max``), a new cycle every ``cycle_ms_min`` ..
    ``cycle_ms_max`` (on 100 ms steps), until ``events`` events; events past
    ``duration_ms`` are dropped (the run heals everything at ``duration_ms``).
    Seeded by ``rng`` only; ``managers``/``workers`` are accepted for the same
    signature as ``random_schedule`` (targets are selectors).
    """
    if not 0 <= cycle_ms_min <= cycle_ms_max or not 0 <= fault_ms_min <= fault_ms_max:
        raise ValueError("need 0 <= min <= max for the cycle and fault durations")
    drawn: list[Event] = []
    at_ms = rng.randrange(5, 31) * 100
    while len(drawn) + 3 <= max(3, events) and at_ms < duration_ms:
        fault, params, heal, heal_target = rng.choice(CHURN_FAULTS)
        drawn.append(Event(at_ms, "kill-next-leader", None, (("when", rng.choice(TRAP_MOMENTS)),)))
        drawn.append(Event(at_ms, fault, None, params))
        heal_ms = at_ms + rng.randrange(fault_ms_min // 100, fault_ms_max // 100 + 1) * 100
        if heal_ms < duration_ms:
            drawn.append(Event(heal_ms, heal, heal_target))
        at_ms += rng.randrange(cycle_ms_min // 100, cycle_ms_max // 100 + 1) * 100
    return Schedule(drawn)
