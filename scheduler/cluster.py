"""LocalCluster: a fast, deterministic in-process harness.

Managers share a trivial replicated log (a list; every proposal is
"committed" at once and applied to every manager in order), workers run an
:class:`Agent` over a :class:`SimulatedRuntime`, messages are delivered
within the same tick. One seed derives everything. It is what the unit and
end-to-end tests, the property tests and the benchmarks use; the Raft-backed
variant lives with the chaos simulator.
"""
from __future__ import annotations

from random import Random  # seeded instances only: never the global generator
from typing import Callable, Optional

from scheduler.agent import Agent
from scheduler.config import ManagerConfig
from scheduler.manager import Manager
from scheduler.messages import SessionInvalid
from scheduler.model import NodeRole, Resources
from scheduler.runtime import SimulatedRuntime

RUN_TICKS_MAX = 100_000   # bound on any run_until loop


class LocalCluster:
    def __init__(self, managers: int = 1, workers: int = 3, seed: int = 0,
                 config: ManagerConfig = ManagerConfig(), resources: Resources = Resources(),
                 labels: Optional[Callable[[int], dict]] = None, start_latency_ticks: tuple[int, int] = (1, 3),
                 managers_run_tasks: bool = True) -> None:
        assert managers >= 1 and workers >= 0, "need at least one manager"
        self.rng = Random(seed)
        self.config = config
        self.now = 0
        self.log: list[bytes] = []
        self.managers = [Manager(f"m{i + 1}", config, seed=self.rng.getrandbits(32)) for i in range(managers)]
        self.leader_index = 0
        self.term = 1  # a Raft term stand-in: one per leadership
        self.agents: dict[str, Agent] = {}
        self.alive: dict[str, bool] = {}
        self.observers: list[Callable] = []   # called with every leader ApplyResult
        names = [(f"m{i + 1}", NodeRole.MANAGER) for i in range(managers) if managers_run_tasks] + \
                [(f"w{i + 1}", NodeRole.WORKER) for i in range(workers)]
        for position, (name, role) in enumerate(names):
            node_labels = tuple(sorted((labels(position) if labels else {}).items()))
            runtime = SimulatedRuntime(Random(self.rng.getrandbits(32)), start_latency_ticks)
            self.agents[name] = Agent(name, name, runtime, int(role), resources, node_labels,
                                      heartbeat_period_ticks=config.heartbeat_period_ticks)
            self.alive[name] = True
        self.leader.become_leader(self.now, 0, self.term)

    @property
    def leader(self) -> Manager:
        return self.managers[self.leader_index]

    @property
    def store(self):
        return self.leader.store

    def submit(self, data: bytes):
        """Commit one entry: append to the log and apply on every manager."""
        self.log.append(data)
        index = len(self.log)
        result = None
        for manager in self.managers:
            outcome = manager.apply(index, data)
            if manager is self.leader:
                result = outcome
        for observer in self.observers:
            observer(result)
        return result

    def propose(self, proposal) -> object:
        """Submit a client API proposal; returns the ApplyResult (raises nothing)."""
        return self.submit(proposal.data)

    def step(self) -> None:
        self.now += 1
        leader = self.leader
        for name in sorted(self.agents):
            if not self.alive[name]:
                continue
            for message in self.agents[name].tick(self.now):
                leader.handle_agent_message(message, self.now)
        for data in leader.tick(self.now):
            self.submit(data)
        for node_id, message in leader.take_agent_messages():
            if self.alive.get(node_id):
                self.agents[node_id].receive(message, self.now)

    def run(self, ticks: int) -> None:
        for _ in range(ticks):
            self.step()

    def run_until(self, predicate: Callable[[], bool], ticks_max: int = 2000) -> int:
        """Step until ``predicate()``; returns ticks taken; AssertionError if it never holds."""
        assert ticks_max <= RUN_TICKS_MAX
        for taken in range(ticks_max + 1):
            if predicate():
                return taken
            self.step()
        raise AssertionError(f"condition not reached within {ticks_max} ticks (now={self.now}); "
                             f"nodes={self.leader.reads.node_ls()}")

    def converged(self, name: str) -> bool:
        return self.leader.reads.convergence(name).converged

    # ------------------------------------------------------------- faults
    def kill_node(self, node_id: str) -> None:
        """The node's process dies: its tasks stop and it stops heartbeating."""
        self.alive[node_id] = False
        self.agents[node_id].crash()

    def restart_node(self, node_id: str) -> None:
        self.alive[node_id] = True

    def change_leader(self, index: int) -> None:
        """Leadership moves (all entries are already applied everywhere here)."""
        self.leader.become_follower()
        self.leader_index = index
        self.term += 1
        self.leader.become_leader(self.now, len(self.log), self.term)
        for name, agent in self.agents.items():
            # Agents reconnect to the new leader's dispatcher.
            agent.receive(SessionInvalid(name), self.now)
