"""Components return at once from ticks with nothing marked dirty, the
simulated runtime from polls before its next due start or exit, and an agent
skips its pass over the tasks after an Assignments message that changed none
of them, and its whole tick while nothing is due; the manager skips the
input-driven components while nothing was fed to them. All are switches
(Component.skip_idle_ticks, SimulatedRuntime.skip_idle_polls,
Agent.skip_settled_passes, Agent.skip_quiet_ticks,
Manager.skip_quiet_components): a
random scenario must commit byte for byte the same log, and leave the same
store and agents, with the shortcuts on as with the full pass on every tick."""
from __future__ import annotations

import dataclasses
import hashlib
import random

import pytest
from hypothesis import given, settings, strategies as st

from scheduler.agent import Agent
from scheduler.cluster import LocalCluster
from scheduler.component import Component
from scheduler.config import ManagerConfig
from scheduler.errors import SchedulerError
from scheduler.manager import Manager
from scheduler.model import (NodeAvailability, RestartPolicy, ServiceMode, ServiceSpec, TaskState, TaskTemplate)
from scheduler.runtime import SimulatedRuntime

CONFIG = ManagerConfig(heartbeat_period_ticks=5)
COMMANDS = (("serve",), ("exit", "0", "4"), ("exit", "3", "2"), ("fail-on-start",))


def scenario(seed: int, ticks: int = 160) -> tuple[str, list[str]]:
    """Random services, scales, updates, node drains, crashes, restarts,
    runtime failures and a leader change; returns the SHA-256 of the
    committed log and a per-agent summary (state of every local task)."""
    rng = random.Random(seed)
    cluster = LocalCluster(managers=2, workers=3, seed=seed, config=CONFIG)
    names: list[str] = []
    for now in range(ticks):
        roll = rng.random()
        api = cluster.leader.api
        try:
            if roll < 0.04 or not names and roll < 0.2:
                name = f"s{len(names)}"
                restart = RestartPolicy(delay_ticks=rng.choice((0, 3, 8)))
                template = TaskTemplate(command=rng.choice(COMMANDS), restart=restart)
                mode = ServiceMode.GLOBAL if rng.random() < 0.25 else ServiceMode.REPLICATED
                spec = ServiceSpec(name=name, mode=mode, replicas=0 if mode == ServiceMode.GLOBAL else
                                   rng.randint(1, 5), task=template)
                cluster.propose(api.create_service(spec))
                names.append(name)
            elif roll < 0.07 and names:
                cluster.propose(api.scale(rng.choice(names), rng.randint(0, 6)))
            elif roll < 0.09 and names:
                name = rng.choice(names)
                spec = cluster.store.get("service", cluster.store.service_by_name[name]).spec
                task = dataclasses.replace(spec.task, command=rng.choice(COMMANDS))
                cluster.propose(api.update_service(name, dataclasses.replace(spec, task=task)))
            elif roll < 0.10:
                node = rng.choice(sorted(cluster.agents))
                cluster.propose(api.update_node(node, availability=rng.choice(list(NodeAvailability))))
            elif roll < 0.12:
                node = rng.choice(sorted(cluster.agents))
                if cluster.alive[node]:
                    cluster.kill_node(node)
                else:
                    cluster.restart_node(node)
            elif roll < 0.16:
                runtime = cluster.agents[rng.choice(sorted(cluster.agents))].runtime
                if runtime.running:
                    runtime.fail_task(rng.choice(sorted(runtime.running)), rng.choice((1, 137)))
            elif roll < 0.17:
                cluster.agents[rng.choice(sorted(cluster.agents))].runtime.fail_next_starts(1)
            elif roll < 0.175:
                cluster.change_leader(1 - cluster.leader_index)
        except SchedulerError:
            pass   # e.g. scaling a global service: refused, nothing proposed
        cluster.step()
    log_digest = hashlib.sha256(b"".join(len(entry).to_bytes(4, "big") + entry for entry in cluster.log)).hexdigest()
    agents = [f"{name} {agent.session_id} " + ",".join(f"{task_id}:{local.state.name}"
                                                       for task_id, local in sorted(agent.tasks.items()))
              for name, agent in sorted(cluster.agents.items())]
    return log_digest, agents


def full_pass_scenario(seed: int, monkeypatch: pytest.MonkeyPatch) -> tuple[str, list[str]]:
    with monkeypatch.context() as patch:
        patch.setattr(Component, "skip_idle_ticks", False)
        patch.setattr(SimulatedRuntime, "skip_idle_polls", False)
        patch.setattr(Agent, "skip_settled_passes", False)
        patch.setattr(Agent, "skip_quiet_ticks", False)
        patch.setattr(Manager, "skip_quiet_components", False)
        return scenario(seed)


@settings(max_examples=30)   # two 160-tick cluster runs an example (~0.3 s): budget of the ci profile
@given(st.integers(0, 2**32 - 1))
def test_idle_shortcuts_decide_exactly_like_full_passes(seed: int) -> None:
    print("seed", seed)
    monkeypatch = pytest.MonkeyPatch()
    try:
        assert scenario(seed) == full_pass_scenario(seed, monkeypatch)
    finally:
        monkeypatch.undo()


def test_the_scenarios_are_not_vacuous() -> None:
    # The comparison above covers tasks that start, exit, fail and restart.
    cluster_states = [line for seed in range(4) for line in scenario(seed)[1]]
    text = " ".join(cluster_states)
    assert "RUNNING" in text and ("COMPLETE" in text or "FAILED" in text)


def test_runtime_poll_shortcut_keeps_its_bound() -> None:
    # The bound only ever lags behind (stops), never runs ahead of a due event.
    runtime = SimulatedRuntime(random.Random(7), (2, 2))
    template = TaskTemplate(command=("exit", "0", "3"))
    runtime.start("a", template, 0)
    runtime.start("b", template, 1)
    assert runtime.poll(1) == [] and runtime.next_due_ticks == 2
    assert [e.task_id for e in runtime.poll(2)] == ["a"]
    assert runtime.next_due_ticks == 3                      # b's start
    runtime.stop("b", 2)
    assert runtime.poll(3) == [] and runtime.next_due_ticks == 5   # recomputed: a exits at 5
    assert [(e.task_id, e.state) for e in runtime.poll(5)] == [("a", TaskState.COMPLETE)]
    assert runtime.next_due_ticks == float("inf")
    runtime.start("c", template, 9)
    assert runtime.fail_task("c") is False                  # still starting
    assert runtime.poll(10) == [] and [e.task_id for e in runtime.poll(11)] == ["c"]
    assert runtime.fail_task("c", 137) is True
    assert [(e.task_id, e.exit_code) for e in runtime.poll(11)] == [("c", 137)]   # failures skip the bound


class _InputDriven(Component):
    """Counts its ticks; proposes one op when the test asks it to."""
    name = "input-driven"
    ticks_only_after_input = True

    def __init__(self) -> None:
        self.ticks = 0
        self.propose_next: list = []

    def tick(self, context) -> list:
        self.ticks += 1
        ops, self.propose_next = self.propose_next, []
        return ops


def _leader_with(component: Component) -> Manager:
    manager = Manager("m1", CONFIG)
    manager.become_leader(0, 0)
    manager.components.append(component)
    return manager


def _commit(manager: Manager, data: bytes) -> None:
    manager.apply(manager.store.applied_index + 1, data)


def test_input_driven_components_are_ticked_again_after_each_input() -> None:
    from scheduler.model import Secret
    from scheduler.store import Create, Update

    component = _InputDriven()
    manager = _leader_with(component)
    for data in manager.tick(1):                     # start (an input): bootstrap proposal
        _commit(manager, data)                       # its events: an input
    manager.tick(2)
    ticks = component.ticks
    manager.tick(3)
    manager.tick(4)
    assert component.ticks == ticks                  # nothing fed since: skipped
    _commit(manager, manager.api.create_secret("s", b"x").data)   # events from a client
    manager.tick(5)
    assert component.ticks == ticks + 1
    component.propose_next = [Create(Secret("id2", "s2"))]
    _commit(manager, manager.api.create_secret("s3", b"x").data)
    proposals = manager.tick(6)                      # proposes: busy until its result
    assert proposals and component.ticks == ticks + 2
    manager.tick(7)
    assert component.ticks == ticks + 2
    for data in proposals:
        _commit(manager, data)                       # its result: an input
    manager.tick(8)
    assert component.ticks == ticks + 3
    manager.tick(9)
    assert component.ticks == ticks + 3
    # A proposal that fails (a version conflict) yields no events: its result
    # alone is the input.
    component.propose_next = [Update(Secret("id2", "s2", b"y"), 99)]
    _commit(manager, manager.api.create_secret("s4", b"x").data)
    failing = manager.tick(10)
    assert failing and component.ticks == ticks + 4
    manager.tick(11)                                 # busy: not ticked
    assert component.ticks == ticks + 4
    for data in failing:
        _commit(manager, data)
    assert manager.stats["conflicts"] == 1
    manager.tick(12)
    assert component.ticks == ticks + 5


def test_without_the_switch_every_component_ticks_every_tick(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Manager, "skip_quiet_components", False)
    component = _InputDriven()
    manager = _leader_with(component)
    for now in range(1, 6):
        manager.tick(now)
    assert component.ticks == 5
