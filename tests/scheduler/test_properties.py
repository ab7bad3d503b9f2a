"""Property tests over random clusters, specs and fault sequences.

Safety is checked after every tick while faults run (states never move
backwards, assignments honour constraints, no slot runs twice); liveness
after the faults stop: every service converges within a bounded number of
ticks. Seeds are drawn by hypothesis and printed on failure.
"""
from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings, strategies as st

from scheduler.checks import MonotonicWatch, constraint_violations_at_assignment, placement_violations
from scheduler.cluster import LocalCluster
from scheduler.config import ManagerConfig
from scheduler.model import (FailureAction, NodeAvailability, Placement, RestartPolicy, ServiceMode, ServiceSpec,
                             TaskState, TaskTemplate, UpdateConfig, UpdateOrder)

FAST = ManagerConfig(heartbeat_period_ticks=5, heartbeat_grace_multiplier=3)
CONVERGENCE_TICKS_MAX = 1500
ZONES = ("a", "b", "c")

service_specs = st.builds(
    lambda index, mode, replicas, constraint, spread, parallelism, order: ServiceSpec(
        name=f"svc{index}", mode=mode, replicas=replicas if mode == ServiceMode.REPLICATED else 0,
        task=TaskTemplate(command=("v1",), restart=RestartPolicy(delay_ticks=2),
                          placement=Placement(constraints=constraint, preferences=spread)),
        update=UpdateConfig(parallelism=parallelism, order=order, monitor_ticks=3,
                            failure_action=FailureAction.CONTINUE)),
    st.just(0), st.sampled_from([ServiceMode.REPLICATED, ServiceMode.REPLICATED, ServiceMode.GLOBAL]),
    st.integers(0, 9), st.sampled_from([(), ("node.labels.zone==a",), ("node.labels.zone!=b",)]),
    st.sampled_from([(), ("spread=node.labels.zone",)]), st.integers(1, 3),
    st.sampled_from([UpdateOrder.STOP_FIRST, UpdateOrder.START_FIRST]))

events = st.lists(st.one_of(
    st.tuples(st.just("scale"), st.integers(0, 2), st.integers(0, 9)),
    st.tuples(st.just("update"), st.integers(0, 2), st.integers(0, 0)),
    st.tuples(st.just("drain"), st.integers(0, 5), st.integers(0, 0)),
    st.tuples(st.just("activate"), st.integers(0, 5), st.integers(0, 0)),
    st.tuples(st.just("kill"), st.integers(0, 5), st.integers(0, 0)),
    st.tuples(st.just("revive"), st.integers(0, 5), st.integers(0, 0)),
    st.tuples(st.just("relabel"), st.integers(1, 5), st.integers(0, 2)),
    st.tuples(st.just("crash-task"), st.integers(0, 1000), st.integers(0, 0)),
    st.tuples(st.just("run"), st.integers(1, 40), st.integers(0, 0))), max_size=15)


def check_step(cluster: LocalCluster, watch: MonotonicWatch, problems: list) -> None:
    problems += placement_violations(cluster.store)
    assert not problems and not watch.violations, (problems, watch.violations)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), workers=st.integers(2, 6),
       specs=st.lists(service_specs, min_size=1, max_size=3), script=events)
def test_random_clusters_stay_safe_and_converge(seed, workers, specs, script) -> None:
    cluster = LocalCluster(managers=1, workers=workers, seed=seed, config=FAST,
                           labels=lambda i: {"zone": ZONES[i % 3] if i else "a"})
    watch, problems = MonotonicWatch(), []
    cluster.observers.append(watch.observe)
    cluster.observers.append(lambda r: problems.extend(constraint_violations_at_assignment(r, cluster.store))
                             if r is not None else None)
    cluster.run(2)
    api = cluster.leader.api
    names = []
    for index, spec in enumerate(specs):
        spec = dataclasses.replace(spec, name=f"svc{index}")
        assert cluster.propose(api.create_service(spec)).ok
        names.append(spec.name)
    node_ids = sorted(cluster.agents)
    version = 1
    for action, a, b in script:
        if action == "scale":
            service = cluster.store.service_named(names[a % len(names)])
            if service.spec.mode == ServiceMode.REPLICATED:
                cluster.propose(api.scale(service.spec.name, b))
        elif action == "update":
            service = cluster.store.service_named(names[a % len(names)])
            version += 1
            task = dataclasses.replace(service.spec.task, command=(f"v{version}",))
            cluster.propose(api.update_service(service.spec.name, dataclasses.replace(service.spec, task=task)))
        elif action in ("drain", "activate"):
            node_id = node_ids[a % len(node_ids)]
            if cluster.store.get("node", node_id) is not None:
                cluster.propose(api.update_node(node_id, availability=NodeAvailability.DRAIN if action == "drain"
                                                else NodeAvailability.ACTIVE))
        elif action == "kill":
            node_id = node_ids[a % len(node_ids)]
            if node_id != "m1":    # the harness's leader process stays up
                cluster.kill_node(node_id)
        elif action == "revive":
            cluster.restart_node(node_ids[a % len(node_ids)])
        elif action == "relabel":   # m1 keeps zone a, so every constraint stays satisfiable
            node_id = node_ids[1 + a % (len(node_ids) - 1)]
            if cluster.store.get("node", node_id) is not None:
                cluster.propose(api.update_node(node_id, labels={"zone": ZONES[b]}))
        elif action == "crash-task":
            running = sorted((name, task_id) for name in node_ids if cluster.alive[name]
                             for task_id in cluster.agents[name].runtime.running)
            if running:
                name, task_id = running[a % len(running)]
                cluster.agents[name].runtime.fail_task(task_id)
        for _ in range(b if action == "run" else 1):
            cluster.step()
            check_step(cluster, watch, problems)
    # Faults stop: every node back and active.
    for node_id in node_ids:
        cluster.restart_node(node_id)
        if cluster.store.get("node", node_id) is not None:
            cluster.propose(api.update_node(node_id, availability=NodeAvailability.ACTIVE))
    for _ in range(CONVERGENCE_TICKS_MAX):
        if all(cluster.converged(name) for name in names):
            break
        cluster.step()
        check_step(cluster, watch, problems)
    else:
        raise AssertionError(f"seed {seed}: not converged within {CONVERGENCE_TICKS_MAX} ticks: "
                             f"{[cluster.leader.reads.convergence(n) for n in names]} "
                             f"{[cluster.leader.reads.service_inspect(n)['update_status'] for n in names]}")
    # Global services: exactly one running task per eligible node.
    for name in names:
        service = cluster.store.service_named(name)
        if service.spec.mode == ServiceMode.GLOBAL:
            nodes = [t.node_id for t in cluster.leader.reads.running_tasks(service)]
            assert len(nodes) == len(set(nodes)) == cluster.leader.reads.desired_count(service)


@settings(deadline=None)
@given(seed=st.integers(0, 2**32 - 1), replicas=st.integers(1, 8), parallelism=st.integers(1, 4),
       workers=st.integers(1, 5))
def test_stop_first_update_keeps_replicas_minus_parallelism_running(seed, replicas, parallelism, workers) -> None:
    cluster = LocalCluster(managers=1, workers=workers, seed=seed, config=FAST)
    cluster.run(2)
    spec = ServiceSpec(name="web", replicas=replicas, task=TaskTemplate(command=("v1",)),
                       update=UpdateConfig(parallelism=parallelism, delay_ticks=2, monitor_ticks=2))
    assert cluster.propose(cluster.leader.api.create_service(spec)).ok
    cluster.run_until(lambda: cluster.converged("web"))
    new_spec = dataclasses.replace(spec, task=TaskTemplate(command=("v2",)))
    assert cluster.propose(cluster.leader.api.update_service("web", new_spec)).ok
    service_id = cluster.store.service_named("web").id
    for _ in range(CONVERGENCE_TICKS_MAX):
        cluster.step()
        running = sum(1 for t in cluster.store.tasks_of_service(service_id).values()
                      if t.status.state == TaskState.RUNNING)
        assert running >= replicas - parallelism, f"seed {seed}: {running} running during the update"
        if cluster.converged("web"):
            break
    else:
        raise AssertionError(f"seed {seed}: update did not finish")
