"""Scheduler benchmark: place N tasks on M nodes (creation -> all ASSIGNED),
and a rolling update of 1000 replicas in simulated and wall time.

Wall and CPU (process) time are both reported: on a shared machine the
CPU time is the fairer figure. The placement cases run the whole leader pipeline through a Manager whose
proposals are committed at once (encode -> apply -> events): orchestrator
creates the tasks, the allocator moves them to PENDING, the scheduler places
each (service, spec) group once with a heap. swarmkit's own figure for 100k
tasks on 1k nodes (moby/swarmkit PR 193) is 22.6 s; it is quoted, not
measured here.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import time

from benchmarks.common import print_table, write_json
from scheduler.cluster import LocalCluster
from scheduler.config import ManagerConfig
from scheduler.manager import Manager
from scheduler.model import (TICKS_PER_SECOND, Node, NodeStatus, ServiceSpec, TaskState, TaskTemplate,
                             UpdateConfig)
from scheduler.store import Create, Transaction

DESCRIPTION = "scheduler: 1k-100k tasks on 1k-10k nodes to ASSIGNED; rolling update of 1000 replicas"
TARGETS_SECONDS = {(10_000, 1_000): 0.2, (100_000, 1_000): 2.0}
SWARMKIT_PR193_SECONDS = {(100_000, 1_000): 22.6}


def schedule_case(tasks: int, nodes: int) -> dict:
    manager = Manager("m1", seed=1)
    index = 0

    def commit(data: bytes) -> None:
        nonlocal index
        index += 1
        result = manager.apply(index, data)
        assert result.ok, result.error

    commit(Transaction(tuple(Create(Node(f"n{i:05d}", f"n{i:05d}", status=NodeStatus.READY))
                             for i in range(nodes)), "setup").encode())
    manager.become_leader(0, index)
    for data in manager.tick(0):
        commit(data)
    gc.collect()
    start = time.perf_counter()
    start_cpu = time.process_time()
    proposal = manager.api.create_service(ServiceSpec(name="bench", replicas=tasks))
    commit(proposal.data)
    ticks = 0
    scheduler = manager.components[3]
    while True:
        ticks += 1
        assert ticks < 50, "placement did not finish"
        proposals = manager.tick(ticks)
        for data in proposals:
            commit(data)
        # Cheap stop test inside the clock (every task created, none left
        # pending in the scheduler, nothing proposed); verified in full below.
        if not proposals and not scheduler.pending and \
                len(manager.store.tasks_of_service(proposal.object_id)) == tasks:
            break
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - start_cpu
    assert all(t.status.state == TaskState.ASSIGNED
               for t in manager.store.tasks_of_service(proposal.object_id).values()), "not all ASSIGNED"
    per_node = [info.by_service.get(proposal.object_id, 0) for info in
                manager.components[3].infos.values()]
    assert max(per_node) - min(per_node) <= 1, "unbalanced placement"
    return {"tasks": tasks, "nodes": nodes, "seconds": seconds, "cpu_seconds": cpu_seconds, "ticks": ticks,
            "tasks_per_second": tasks / seconds}


def rolling_update_case(replicas: int, workers: int, parallelism: int) -> dict:
    config = ManagerConfig()
    cluster = LocalCluster(managers=1, workers=workers, seed=7, config=config, start_latency_ticks=(1, 3))
    cluster.run(2)
    spec = ServiceSpec(name="web", replicas=replicas, task=TaskTemplate(command=("v1",)),
                       update=UpdateConfig(parallelism=parallelism, delay_ticks=0, monitor_ticks=TICKS_PER_SECOND))
    assert cluster.propose(cluster.leader.api.create_service(spec)).ok
    cluster.run_until(lambda: cluster.converged("web"), 5000)
    start_wall = time.perf_counter()
    start_cpu = time.process_time()
    start_ticks = cluster.now
    assert cluster.propose(cluster.leader.api.update_service(
        "web", dataclasses.replace(spec, task=TaskTemplate(command=("v2",))))).ok
    cluster.run_until(lambda: cluster.converged("web"), 20000)
    ticks = cluster.now - start_ticks
    return {"replicas": replicas, "workers": workers, "parallelism": parallelism,
            "simulated_seconds": ticks / TICKS_PER_SECOND, "ticks": ticks,
            "wall_seconds": time.perf_counter() - start_wall, "cpu_seconds": time.process_time() - start_cpu}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks scheduler", description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="small cases only (CI smoke run)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    cases = [(1_000, 1_000), (10_000, 1_000)] if args.quick else \
        [(1_000, 1_000), (10_000, 1_000), (100_000, 1_000), (100_000, 10_000)]
    placements = [schedule_case(tasks, nodes) for tasks, nodes in cases]
    rows = []
    for case in placements:
        key = (case["tasks"], case["nodes"])
        target = TARGETS_SECONDS.get(key)
        peer = SWARMKIT_PR193_SECONDS.get(key)
        rows.append([f"{case['tasks']:,} tasks / {case['nodes']:,} nodes", case["seconds"], case["cpu_seconds"],
                     case["tasks_per_second"],
                     case["ticks"], "-" if target is None else f"<= {target}",
                     "-" if peer is None else f"{peer} (quoted)"])
    print_table("Placement: service creation -> all tasks ASSIGNED (wall time)",
                ["case", "wall s", "cpu s", "tasks/s (wall)", "ticks", "target s", "swarmkit PR 193 s"], rows)
    update = rolling_update_case(200 if args.quick else 1000, 20 if args.quick else 100, 50)
    print_table("Rolling update (stop-first, parallelism 50, monitor 1 s)",
                ["replicas", "workers", "simulated s", "ticks", "wall s", "cpu s"],
                [[update["replicas"], update["workers"], update["simulated_seconds"], update["ticks"],
                  update["wall_seconds"], update["cpu_seconds"]]])
    write_json(args.json, {"area": "scheduler", "placement": placements, "rolling_update": update})
    return 0
