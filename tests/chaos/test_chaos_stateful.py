"""A hypothesis rule-based state machine over the simulated swarm: the rules are
faults, heals, client operations and time steps; the invariants are the
checkers (Raft safety after every step; linearizability, durability and
convergence once everything healed)."""
from __future__ import annotations

import random

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from chaos.checkers.convergence import check_convergence
from chaos.cluster import SimCluster
from chaos.experiment import Experiment, KvWorkload, ServiceOp, default_nodes
from chaos.history import History
from chaos.nemesis import Nemesis
from chaos.runner import derive_seeds, linearizability_check
from chaos.schedule import Event
from chaos.strategies import fault_events
from chaos.timeline import Timeline
from chaos.workloads import KvClients, ServiceClient

MANAGERS = ["m1", "m2", "m3"]
WORKERS = ["w1"]
STEP_MS = 100


class SwarmMachine(RuleBasedStateMachine):
    @initialize(seed=st.integers(0, 2**32 - 1))
    def start(self, seed: int) -> None:
        self.experiment = Experiment(name="stateful", seed=seed, nodes=default_nodes(3, 1),
                                     kv=KvWorkload(clients=3, key_count=2, interval_ms=100, timeout_ms=1000),
                                     services=(ServiceOp(0, "create", "web", replicas=2),))
        seeds = derive_seeds(seed)
        self.cluster = SimCluster(self.experiment, seeds["cluster"])
        self.timeline = Timeline()
        self.nemesis = Nemesis(self.cluster, MANAGERS, WORKERS, random.Random(seeds["nemesis"]), self.timeline)
        self.history = History()
        self.kv = KvClients(self.experiment.kv, self.history, random.Random(seeds["workload"]))
        self.services = ServiceClient(self.experiment.services, self.history, 1_000_000)
        self.samples = []
        self.now_ms = 0

    def _advance(self, duration_ms: int) -> None:
        for _ in range(duration_ms // STEP_MS):
            for request in self.kv.poll(self.now_ms):
                self.cluster.submit_kv(request, self._kv_done(request))
            for request in self.services.poll(self.now_ms):
                self.cluster.submit_service(request, lambda outcome, error, r=request:
                                            self.services.complete(r, outcome, self.cluster.now_ms, error))
            self.now_ms += STEP_MS
            self.cluster.run_until(self.now_ms)
            self.kv.expire(self.now_ms)
            self.services.expire(self.now_ms)

    def _kv_done(self, request):
        return lambda outcome, value, error: self.kv.complete(request, outcome, value, self.cluster.now_ms, error)

    @rule(event=fault_events(MANAGERS, WORKERS, duration_ms=0))
    def fault(self, event: Event) -> None:
        self.nemesis.apply(event, self.now_ms)

    @rule()
    def heal_everything(self) -> None:
        self.nemesis.apply(Event(self.now_ms, "heal-all"), self.now_ms)

    @rule(duration_ms=st.sampled_from([200, 1000, 3000]))
    def time_passes(self, duration_ms: int) -> None:
        self._advance(duration_ms)

    @invariant()
    def raft_is_safe(self) -> None:
        if hasattr(self, "cluster"):
            check = self.cluster.safety_check()
            assert check.status != "fail", "\n".join([check.summary] + check.lines)

    def teardown(self) -> None:
        if not hasattr(self, "cluster"):
            return
        self.nemesis.apply(Event(self.now_ms, "heal-all"), self.now_ms)
        heal_ms = self.now_ms
        self.kv.stop()
        for _ in range(150):  # 15 s of quiet, sampling the store
            self._advance(STEP_MS)
            sample = self.cluster.sample_store()
            if sample is not None:
                self.samples.append(sample)
        for check in (linearizability_check(self.history, 10.0), self.cluster.durability_check(self.history),
                      check_convergence(self.samples, heal_ms=heal_ms, bound_ms=12_000)):
            assert check.status != "fail", "\n".join([check.name, check.summary] + check.lines)


SwarmMachine.TestCase.settings = settings(max_examples=10, stateful_step_count=8, deadline=None)
test_swarm_machine = SwarmMachine.TestCase
