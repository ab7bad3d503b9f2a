"""The Manager on 3 simulated Raft managers + 4 workers (chaos/sim through
chaos.cluster.SimCluster): the leader is killed in the middle of a rolling
update; the new leader's updater resumes from the store and the service
converges with every replica on the new spec."""
from __future__ import annotations

import pytest

cluster_module = pytest.importorskip("chaos.cluster")
from chaos.experiment import ServiceOp  # noqa: E402
from chaos.testing import make_experiment  # noqa: E402
from chaos.workloads import ServiceRequest  # noqa: E402
from scheduler.model import TaskState, UpdateState  # noqa: E402

REPLICAS = 6


def leader_manager(cluster):
    leader = cluster.sim.leader()
    return None if leader is None else cluster.sim.managers[leader].app.swarm.manager


def submit(cluster, op: ServiceOp, outcomes: list) -> None:
    request = ServiceRequest(0, op, cluster.now_ms, cluster.now_ms + 5000)
    cluster.submit_service(request, lambda outcome, error: outcomes.append((op.op, outcome, error)))


def run_until(cluster, predicate, limit_ms: int, step_ms: int = 100) -> None:
    while not predicate():
        assert cluster.now_ms < limit_ms, f"not reached by {limit_ms} ms"
        cluster.run_until(cluster.now_ms + step_ms)


@pytest.mark.parametrize("seed", [11, 12, 13, 14, 15])
def test_leader_killed_mid_update_resumes_on_new_leader(seed: int) -> None:
    experiment = make_experiment(managers=3, workers=4, seed=seed, duration_ms=60_000, settle_ms=20_000,
                                 checkers=("convergence",))
    cluster = cluster_module.SimCluster(experiment, seed)
    outcomes: list = []
    submit(cluster, ServiceOp(0, "create", "my-nginx", replicas=REPLICAS, command="nginx"), outcomes)
    run_until(cluster, lambda: leader_manager(cluster) is not None and
              leader_manager(cluster).store.service_named("my-nginx") is not None and
              leader_manager(cluster).reads.convergence("my-nginx").converged, 20_000)
    submit(cluster, ServiceOp(0, "update", "my-nginx", command="nginx v2"), outcomes)

    def mid_update() -> bool:
        manager = leader_manager(cluster)
        service = manager.store.service_named("my-nginx") if manager else None
        if service is None or service.spec.task.command != ("nginx", "v2"):
            return False
        new_running = [t for t in manager.store.tasks_of_service(service.id).values()
                       if t.template.command == ("nginx", "v2") and t.status.state == TaskState.RUNNING]
        return 1 <= len(new_running) < REPLICAS - 1
    run_until(cluster, mid_update, 40_000, step_ms=20)
    old_leader = cluster.leader()
    cluster.crash(old_leader, lose_unpersisted=False)
    run_until(cluster, lambda: cluster.leader() not in (None, old_leader), 50_000)

    def done() -> bool:
        manager = leader_manager(cluster)
        if manager is None or manager.id == old_leader:
            return False
        service = manager.store.service_named("my-nginx")
        return service.update_status.state == UpdateState.COMPLETED and \
            manager.reads.convergence("my-nginx").converged
    run_until(cluster, done, 90_000)
    manager = leader_manager(cluster)
    running = manager.reads.running_tasks(manager.store.service_named("my-nginx"))
    assert len(running) == REPLICAS
    assert {t.template.command for t in running} == {("nginx", "v2")}
    assert old_leader not in {t.node_id for t in running}      # its node went down; tasks moved
    assert len({t.slot for t in running}) == REPLICAS
    assert [o for o in outcomes if o[1] != "ok"] == []
