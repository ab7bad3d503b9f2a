"""A rule-based state machine over the whole control plane (hypothesis
stateful testing): operators and faults are rules, safety invariants run
after every step, and teardown demands convergence once faults stop."""
from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from scheduler.checks import MonotonicWatch, constraint_violations_at_assignment, placement_violations
from scheduler.cluster import LocalCluster
from scheduler.config import ManagerConfig
from scheduler.model import (FailureAction, NodeAvailability, Placement, ServiceMode, ServiceSpec, TaskTemplate,
                             UpdateConfig, UpdateOrder)

NODES = ("m1", "w1", "w2", "w3")
CONVERGENCE_TICKS_MAX = 1500


class ControlPlane(RuleBasedStateMachine):
    @initialize(seed=st.integers(0, 2**32 - 1))
    def boot(self, seed: int) -> None:
        self.seed = seed
        self.cluster = LocalCluster(managers=1, workers=3, seed=seed,
                                    config=ManagerConfig(heartbeat_period_ticks=4),
                                    labels=lambda i: {"zone": "ab"[i % 2]})
        self.watch = MonotonicWatch()
        self.problems: list[str] = []
        self.cluster.observers.append(self._observe)
        self.cluster.run(2)
        self.names: list[str] = []
        self.version = 0

    def _observe(self, result) -> None:
        self.watch.observe(result)
        if result is not None:
            self.problems += constraint_violations_at_assignment(result, self.cluster.store)

    @precondition(lambda self: len(self.names) < 3)
    @rule(replicas=st.integers(0, 8), global_mode=st.booleans(), zone=st.sampled_from([None, "a"]),
          order=st.sampled_from(list(UpdateOrder)))
    def create(self, replicas: int, global_mode: bool, zone, order) -> None:
        name = f"svc{len(self.names)}"
        constraints = (f"node.labels.zone=={zone}",) if zone else ()
        spec = ServiceSpec(name=name, mode=ServiceMode.GLOBAL if global_mode else ServiceMode.REPLICATED,
                           replicas=0 if global_mode else replicas,
                           task=TaskTemplate(command=("v0",), placement=Placement(constraints=constraints)),
                           update=UpdateConfig(parallelism=2, order=order, monitor_ticks=2,
                                               failure_action=FailureAction.CONTINUE))
        assert self.cluster.propose(self.cluster.leader.api.create_service(spec)).ok
        self.names.append(name)

    @precondition(lambda self: self.names)
    @rule(which=st.integers(0, 2), replicas=st.integers(0, 8))
    def scale(self, which: int, replicas: int) -> None:
        service = self.cluster.store.service_named(self.names[which % len(self.names)])
        if service.spec.mode == ServiceMode.REPLICATED:
            self.cluster.propose(self.cluster.leader.api.scale(service.spec.name, replicas))

    @precondition(lambda self: self.names)
    @rule(which=st.integers(0, 2))
    def update(self, which: int) -> None:
        service = self.cluster.store.service_named(self.names[which % len(self.names)])
        self.version += 1
        task = dataclasses.replace(service.spec.task, command=(f"v{self.version}",))
        self.cluster.propose(self.cluster.leader.api.update_service(service.spec.name,
                                                                    dataclasses.replace(service.spec, task=task)))

    @rule(node=st.sampled_from(NODES), availability=st.sampled_from(list(NodeAvailability)))
    def set_availability(self, node: str, availability: NodeAvailability) -> None:
        if self.cluster.store.get("node", node) is not None:
            self.cluster.propose(self.cluster.leader.api.update_node(node, availability=availability))

    @rule(node=st.sampled_from(NODES[1:]))
    def kill(self, node: str) -> None:
        self.cluster.kill_node(node)

    @rule(node=st.sampled_from(NODES[1:]))
    def revive(self, node: str) -> None:
        self.cluster.restart_node(node)

    @rule(ticks=st.integers(1, 30))
    def run(self, ticks: int) -> None:
        for _ in range(ticks):
            self.cluster.step()
            self.check()

    @invariant()
    def check(self) -> None:
        if not hasattr(self, "cluster"):
            return
        self.problems += placement_violations(self.cluster.store)
        assert not self.problems and not self.watch.violations, (self.seed, self.problems, self.watch.violations)

    def teardown(self) -> None:
        if not hasattr(self, "cluster"):
            return
        for node in NODES:
            self.cluster.restart_node(node)
            if self.cluster.store.get("node", node) is not None:
                self.cluster.propose(self.cluster.leader.api.update_node(node,
                                                                         availability=NodeAvailability.ACTIVE))
        for _ in range(CONVERGENCE_TICKS_MAX):
            if all(self.cluster.converged(name) for name in self.names):
                return
            self.cluster.step()
            self.check()
        raise AssertionError(f"seed {self.seed}: no convergence within {CONVERGENCE_TICKS_MAX} ticks: "
                             f"{[self.cluster.leader.reads.convergence(n) for n in self.names]}")


ControlPlane.TestCase.settings = settings(deadline=None, stateful_step_count=25,
                                          suppress_health_check=[HealthCheck.too_slow])
TestControlPlane = ControlPlane.TestCase
