"""End to end on the in-process harness: the seed's scenario on 3 managers +
4 workers, restart policies, updates (pause, rollback, canary, start-first),
global services, drains, node failures, leader changes, secrets."""
from __future__ import annotations

import dataclasses

import pytest

from scheduler.checks import MonotonicWatch, constraint_violations_at_assignment, placement_violations
from scheduler.cluster import LocalCluster
from scheduler.config import ManagerConfig
from scheduler.messages import Assignments
from scheduler.model import (FailureAction, NodeAvailability, NodeStatus, Placement, PortConfig, RestartCondition,
                             RestartPolicy, ServiceMode, ServiceSpec, TaskState, TaskTemplate, UpdateConfig,
                             UpdateOrder, UpdateState)


class Checked(LocalCluster):
    """LocalCluster whose every committed entry is checked for safety."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.watch = MonotonicWatch()
        self.problems: list[str] = []
        self.observers.append(self._check)

    def _check(self, result) -> None:
        self.watch.observe(result)
        if result is not None:
            self.problems += constraint_violations_at_assignment(result, self.store)

    def step(self) -> None:
        super().step()
        self.problems += placement_violations(self.store, 2 if self.config.rebalance_on_node_join else 1)
        assert not self.problems and not self.watch.violations, (self.problems, self.watch.violations)

    def ok(self, proposal) -> None:
        result = self.propose(proposal)
        assert result.ok, result.error

    def settle(self, *names: str, ticks_max: int = 1500) -> int:
        return self.run_until(lambda: all(self.converged(n) for n in names), ticks_max)

    def running_count(self, name: str) -> int:
        return len(self.leader.reads.running_tasks(self.store.service_named(name)))


NGINX = ServiceSpec(name="my-nginx", replicas=3, task=TaskTemplate(command=("nginx",)), ports=(PortConfig(80),),
                    update=UpdateConfig(parallelism=2, delay_ticks=10, monitor_ticks=20))


def seed_cluster(seed: int = 1) -> Checked:
    cluster = Checked(managers=3, workers=4, seed=seed)
    cluster.run_until(lambda: len(cluster.store.objects["node"]) == 7)
    return cluster


def test_seed_scenario_converges_every_time() -> None:
    c = seed_cluster()
    api = c.leader.api
    c.ok(api.create_service(NGINX))
    c.settle("my-nginx")
    assert c.leader.reads.convergence("my-nginx").lines == ("overall progress: 3 out of 3 tasks",
                                                           "verify: Service converged")
    assert c.leader.reads.service_ls()[0]["ports"] == "*:30000->80/tcp"
    c.ok(api.scale("my-nginx", 5))
    c.settle("my-nginx")
    c.ok(api.scale("my-nginx", 1))
    c.settle("my-nginx")
    assert c.running_count("my-nginx") == 1
    c.ok(api.scale("my-nginx", 5))
    c.settle("my-nginx")
    # Rolling update of the command, parallelism 2, stop-first: never fewer than 5 - 2 running.
    updated = dataclasses.replace(NGINX, replicas=5, task=TaskTemplate(command=("nginx", "-g", "daemon off;")))
    c.ok(api.update_service("my-nginx", updated))
    service = c.store.service_named("my-nginx")
    lowest = 5
    while not c.converged("my-nginx"):
        c.step()
        running = sum(1 for t in c.store.tasks_of_service(service.id).values()
                      if t.status.state == TaskState.RUNNING and t.desired_state == TaskState.RUNNING)
        lowest = min(lowest, running)
        assert c.now < 2000
    assert lowest >= 3
    assert c.store.service_named("my-nginx").update_status.state == UpdateState.COMPLETED
    assert all(t.template.command == ("nginx", "-g", "daemon off;")
               for t in c.leader.reads.running_tasks(c.store.service_named("my-nginx")))
    c.ok(api.rollback("my-nginx"))
    c.settle("my-nginx")
    assert c.store.service_named("my-nginx").update_status.state == UpdateState.ROLLBACK_COMPLETED
    assert c.store.service_named("my-nginx").spec.task.command == ("nginx",)
    c.ok(api.create_service(ServiceSpec(name="monitor", mode=ServiceMode.GLOBAL, replicas=0)))
    c.settle("my-nginx", "monitor")
    assert c.running_count("monitor") == 7
    c.ok(api.update_node("w1", availability=NodeAvailability.DRAIN))
    c.settle("my-nginx", "monitor")
    assert c.running_count("monitor") == 6
    assert not any(t.desired_state <= TaskState.RUNNING for t in c.store.tasks_on_node("w1").values())
    c.kill_node("w2")
    c.run_until(lambda: c.store.get("node", "w2").status == NodeStatus.DOWN, 400)
    c.settle("my-nginx", "monitor")
    assert c.running_count("monitor") == 5 and c.running_count("my-nginx") == 5
    c.restart_node("w2")
    c.run_until(lambda: c.store.get("node", "w2").status == NodeStatus.READY, 400)
    c.settle("my-nginx", "monitor")
    assert c.running_count("monitor") == 6
    assert c.store.stats["malformed"] == 0


def test_leader_change_mid_update_resumes() -> None:
    c = seed_cluster(seed=3)
    c.ok(c.leader.api.create_service(dataclasses.replace(NGINX, replicas=6)))
    c.settle("my-nginx")
    updated = dataclasses.replace(NGINX, replicas=6, task=TaskTemplate(command=("nginx", "v2")))
    c.ok(c.leader.api.update_service("my-nginx", updated))
    c.run_until(lambda: any(t.template.command == ("nginx", "v2") and t.status.state == TaskState.RUNNING
                            for t in c.store.objects["task"].values()))
    c.change_leader(1)
    c.settle("my-nginx")
    assert c.store.service_named("my-nginx").update_status.state == UpdateState.COMPLETED
    assert {t.template.command for t in c.leader.reads.running_tasks(c.store.service_named("my-nginx"))} == \
        {("nginx", "v2")}


def failing_update(action: FailureAction) -> Checked:
    c = seed_cluster(seed=5)
    spec = ServiceSpec(name="api", replicas=4, task=TaskTemplate(command=("serve",)),
                       update=UpdateConfig(parallelism=1, monitor_ticks=10, failure_action=action))
    c.ok(c.leader.api.create_service(spec))
    c.settle("api")
    bad = dataclasses.replace(spec, task=TaskTemplate(command=("fail-on-start",),
                                                      restart=RestartPolicy(delay_ticks=5)))
    c.ok(c.leader.api.update_service("api", bad))
    return c


def test_failed_update_pauses() -> None:
    c = failing_update(FailureAction.PAUSE)
    c.run_until(lambda: c.store.service_named("api").update_status.state == UpdateState.PAUSED)
    assert "update paused due to failure" in c.store.service_named("api").update_status.message
    c.run(30)
    assert c.running_count("api") == 0   # the spec is the bad one; 3 old tasks still run
    old = [t for t in c.store.tasks_of_service(c.store.service_named("api").id).values()
           if t.status.state == TaskState.RUNNING and t.template.command == ("serve",)]
    assert len(old) == 3


def test_failed_update_rolls_back() -> None:
    c = failing_update(FailureAction.ROLLBACK)
    c.run_until(lambda: c.store.service_named("api").update_status.state == UpdateState.ROLLBACK_COMPLETED)
    c.settle("api")
    assert c.store.service_named("api").spec.task.command == ("serve",)


def test_start_first_and_canary() -> None:
    c = seed_cluster(seed=7)
    spec = ServiceSpec(name="web", replicas=4, task=TaskTemplate(command=("v1",)),
                       update=UpdateConfig(parallelism=1, order=UpdateOrder.START_FIRST, monitor_ticks=5,
                                           canary=True))
    c.ok(c.leader.api.create_service(spec))
    c.settle("web")
    c.ok(c.leader.api.update_service("web", dataclasses.replace(spec, task=TaskTemplate(command=("v2",)))))
    service_id = c.store.service_named("web").id
    lowest = 4
    c.run_until(lambda: c.store.service_named("web").update_status.state == UpdateState.PAUSED)
    status = c.store.service_named("web").update_status
    assert status.message.startswith("canary")
    versions = [t.template.command for t in c.store.tasks_of_service(service_id).values()
                if t.status.state == TaskState.RUNNING and t.desired_state == TaskState.RUNNING]
    assert sorted(versions) == [("v1",)] * 3 + [("v2",)]
    c.ok(c.leader.api.resume_update("web"))
    while not c.converged("web"):
        c.step()
        running = sum(1 for t in c.store.tasks_of_service(service_id).values()
                      if t.status.state == TaskState.RUNNING)
        lowest = min(lowest, running)
        assert c.now < 3000
    assert lowest >= 4   # start-first never dips below the replica count


def test_canary_health_period_continues_by_itself() -> None:
    c = seed_cluster(seed=8)
    spec = ServiceSpec(name="web", replicas=3, task=TaskTemplate(command=("v1",)),
                       update=UpdateConfig(parallelism=1, monitor_ticks=5, canary=True, canary_health_ticks=30))
    c.ok(c.leader.api.create_service(spec))
    c.settle("web")
    c.ok(c.leader.api.update_service("web", dataclasses.replace(spec, task=TaskTemplate(command=("v2",)))))
    c.settle("web")
    assert c.store.service_named("web").update_status.state == UpdateState.COMPLETED


@pytest.mark.parametrize("condition, exit_code, restarts", [
    (RestartCondition.NONE, 1, False), (RestartCondition.ON_FAILURE, 0, False),
    (RestartCondition.ON_FAILURE, 3, True), (RestartCondition.ANY, 0, True)])
def test_restart_conditions(condition, exit_code, restarts) -> None:
    c = seed_cluster(seed=2)
    spec = ServiceSpec(name="job", replicas=1, task=TaskTemplate(
        command=("exit", str(exit_code), "3"), restart=RestartPolicy(condition=condition, delay_ticks=2)))
    c.ok(c.leader.api.create_service(spec))
    c.run(60)
    created = len(c.store.tasks_of_service(c.store.service_named("job").id))
    assert (created > 1) == restarts


def test_max_attempts_bounds_restarts_and_reaper_bounds_history() -> None:
    c = seed_cluster(seed=2)
    spec = ServiceSpec(name="crash", replicas=1, task=TaskTemplate(
        command=("exit", "1", "2"), restart=RestartPolicy(delay_ticks=1, max_attempts=3)))
    c.ok(c.leader.api.create_service(spec))
    c.run(150)
    tasks = c.store.tasks_of_service(c.store.service_named("crash").id)
    assert len(tasks) == 4   # first run + 3 restarts, then the slot stays failed
    spec2 = ServiceSpec(name="loop", replicas=1, task=TaskTemplate(
        command=("exit", "1", "2"), restart=RestartPolicy(delay_ticks=1)))
    c.ok(c.leader.api.create_service(spec2))
    c.run(200)
    tasks = c.store.tasks_of_service(c.store.service_named("loop").id)
    assert len(tasks) <= ManagerConfig().task_history_limit + 1


def test_global_service_follows_labels_and_joins() -> None:
    c = seed_cluster(seed=4)
    spec = ServiceSpec(name="edge", mode=ServiceMode.GLOBAL, replicas=0,
                       task=TaskTemplate(placement=Placement(constraints=("node.labels.edge==yes",))))
    c.ok(c.leader.api.create_service(spec))
    c.run(20)
    assert c.running_count("edge") == 0 and c.converged("edge")
    c.ok(c.leader.api.update_node("w3", labels={"edge": "yes"}))
    c.ok(c.leader.api.update_node("w4", labels={"edge": "yes"}))
    c.settle("edge")
    assert {t.node_id for t in c.leader.reads.running_tasks(c.store.service_named("edge"))} == {"w3", "w4"}
    c.ok(c.leader.api.update_node("w3", labels={}))
    c.settle("edge")
    assert {t.node_id for t in c.leader.reads.running_tasks(c.store.service_named("edge"))} == {"w4"}


def test_constraint_enforcer_moves_replicated_tasks() -> None:
    c = seed_cluster(seed=6)
    for node in ("w1", "w2"):
        c.ok(c.leader.api.update_node(node, labels={"disk": "ssd"}))
    spec = ServiceSpec(name="db", replicas=2,
                       task=TaskTemplate(placement=Placement(constraints=("node.labels.disk==ssd",))))
    c.ok(c.leader.api.create_service(spec))
    c.settle("db")
    c.ok(c.leader.api.update_node("w1", labels={}))
    c.ok(c.leader.api.update_node("w3", labels={"disk": "ssd"}))
    c.settle("db")
    assert {t.node_id for t in c.leader.reads.running_tasks(c.store.service_named("db"))} == {"w2", "w3"}


def test_unschedulable_service_explains_itself() -> None:
    c = seed_cluster()
    spec = ServiceSpec(name="nowhere", replicas=2,
                       task=TaskTemplate(placement=Placement(constraints=("node.labels.zone==mars",))))
    c.ok(c.leader.api.create_service(spec))
    c.run(10)
    errors = {row["error"] for row in c.leader.reads.service_ps("nowhere")}
    assert errors == {"no suitable node (scheduling constraints not satisfied on 7 nodes)"}


def test_secrets_only_reach_nodes_that_use_them() -> None:
    c = seed_cluster()
    c.ok(c.leader.api.create_secret("db-password", b"hunter2"))
    c.ok(c.leader.api.create_secret("unused", b"x"))
    seen: dict[str, set] = {}
    original = c.leader.take_agent_messages

    def spy():
        out = original()
        for node_id, message in out:
            if isinstance(message, Assignments):
                seen[node_id] = {s.name for s in message.secrets}
        return out
    c.leader.take_agent_messages = spy
    spec = ServiceSpec(name="app", replicas=1, task=TaskTemplate(secrets=("db-password",)))
    c.ok(c.leader.api.create_service(spec))
    c.settle("app")
    node = c.leader.reads.running_tasks(c.store.service_named("app"))[0].node_id
    assert seen[node] == {"db-password"}
    assert all(not names for other, names in seen.items() if other != node)
    assert c.agents[node].secrets == {"db-password": b"hunter2"}


def test_overlay_allocation_and_exhaustion_is_an_error_on_the_task() -> None:
    c = seed_cluster()
    c.ok(c.leader.api.create_network("tiny", subnet="192.0.2.0/29"))   # 5 usable: gateway .1, hosts .2-.6
    spec = ServiceSpec(name="crowd", replicas=6, task=TaskTemplate(networks=("tiny",)))
    c.ok(c.leader.api.create_service(spec))
    c.run(20)
    service = c.store.service_named("crowd")
    assert service.endpoint.vips[0][1] == "192.0.2.2"
    addresses = sorted(t.networks[0][1] for t in c.store.tasks_of_service(service.id).values() if t.networks)
    assert addresses == ["192.0.2.3", "192.0.2.4", "192.0.2.5", "192.0.2.6"]
    errors = {row["error"] for row in c.leader.reads.service_ps("crowd") if row["error"]}
    assert errors == {"allocation failed: network " + c.store.list("network")[1].id +
                      ": subnet 192.0.2.0/29 has no free address"} or len(errors) == 1
    assert c.running_count("crowd") == 4
    c.ok(c.leader.api.scale("crowd", 4))
    c.settle("crowd")


def test_api_refusals_are_typed() -> None:
    from scheduler.errors import AlreadyExists, InvalidSpec, NotFound
    c = seed_cluster()
    c.ok(c.leader.api.create_service(NGINX))
    with pytest.raises(AlreadyExists):
        c.leader.api.create_service(NGINX)
    with pytest.raises(NotFound):
        c.leader.api.scale("nope", 3)
    with pytest.raises(InvalidSpec):
        c.leader.api.scale("my-nginx", -1)
    with pytest.raises(InvalidSpec):
        c.leader.api.rollback("my-nginx")
    with pytest.raises(NotFound):
        c.leader.api.create_service(ServiceSpec(name="x", task=TaskTemplate(secrets=("missing",))))
    # A concurrent change makes a stale proposal fail as a typed result.
    first = c.leader.api.scale("my-nginx", 4)
    second = c.leader.api.scale("my-nginx", 2)
    assert c.propose(first).ok
    assert not c.propose(second).ok


@pytest.mark.parametrize("rebalance", [False, True])
def test_rebalancing_on_node_return_is_optional(rebalance: bool) -> None:
    config = ManagerConfig(heartbeat_period_ticks=5, rebalance_on_node_join=rebalance)
    c = Checked(managers=1, workers=2, seed=9, config=config)
    c.run(3)
    spec = ServiceSpec(name="web", replicas=6, update=UpdateConfig(parallelism=1))
    c.ok(c.leader.api.create_service(spec))
    c.settle("web")
    c.kill_node("w2")
    c.run_until(lambda: c.store.get("node", "w2").status == NodeStatus.DOWN)
    c.settle("web")
    c.restart_node("w2")
    c.run_until(lambda: c.store.get("node", "w2").status == NodeStatus.READY)
    lowest = 6
    for _ in range(300):
        c.step()
        lowest = min(lowest, c.running_count("web"))
    assert lowest == 6                      # moves are start-first: never fewer than the replicas
    c.settle("web")
    counts = sorted(sum(1 for t in c.leader.reads.running_tasks(c.store.service_named("web")) if t.node_id == n)
                    for n in ("m1", "w1", "w2"))
    assert counts == ([2, 2, 2] if rebalance else [0, 3, 3])
