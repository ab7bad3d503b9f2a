"""Optional rebalancing when a node joins or returns (Swarm's most requested
missing feature; off by default: ``ManagerConfig.rebalance_on_node_join``).

When a node becomes READY, replicated services whose running tasks differ by
more than one between eligible nodes are evened out with the update
machinery's start-first move: a successor is created in the slot of a task on
the most loaded node (at most ``update.parallelism`` slots per service at a
time); the scheduler places it on the least loaded node (the old task still
counts where it runs); once the successor runs, the orchestrator retires the
old task (one live task per slot). Availability never dips: the old task runs
until its successor does.
"""
from __future__ import annotations

from typing import Iterable

from scheduler.component import SERVICE_ID, Component, Context
from scheduler.constraints import node_matches, parse_constraints
from scheduler.model import NodeAvailability, NodeStatus, ServiceMode, TaskState, UpdateState
from scheduler.orchestrator import host_ports_of, initial_state_of
from scheduler.restart import next_task_id
from scheduler.store import BULK_ACTIONS, CreateTasks, Event


class Rebalancer(Component):
    name = "rebalancer"
    ticks_only_after_input = True    # (see Component; no clock-driven work)

    def __init__(self) -> None:
        self.dirty: set[str] = set()
        self.rebalancing: set[str] = set()

    def start(self, context: Context) -> None:
        self.dirty = set(self.rebalancing)

    def on_events(self, events: Iterable[Event]) -> None:
        for event in events:
            if event.action in BULK_ACTIONS:
                if self.rebalancing:
                    self.dirty |= self.rebalancing.intersection(map(SERVICE_ID, event.obj))
                continue
            if event.kind == "node" and event.action != "delete":
                node, old = event.obj, event.old
                if node.status == NodeStatus.READY and (old is None or old.status != NodeStatus.READY or
                                                        old.availability != node.availability):
                    self.dirty.add("*")
            elif event.kind == "task" and event.obj.service_id in self.rebalancing:
                if event.old is None or event.old.status.state != event.obj.status.state:
                    self.dirty.add(event.obj.service_id)

    def tick(self, context: Context) -> list:
        if not self.dirty:
            return []
        store = context.store
        targets = set(store.objects["service"]) if "*" in self.dirty else self.dirty
        self.dirty = set()
        ops: list = []
        for service_id in sorted(targets):
            service = store.get("service", service_id)
            if service is None or service.spec.mode != ServiceMode.REPLICATED:
                self.rebalancing.discard(service_id)
                continue
            status = service.update_status
            if status is not None and status.state in (UpdateState.UPDATING, UpdateState.ROLLBACK_STARTED):
                continue   # the updater is moving tasks already
            constraints = parse_constraints(service.spec.task.placement.constraints)
            eligible = {node.id: 0 for node in store.list("node")
                        if node.status == NodeStatus.READY and node.availability == NodeAvailability.ACTIVE
                        and node_matches(constraints, node)}
            slots: dict[int, list] = {}
            for task in store.tasks_of_service(service_id).values():
                if task.desired_state <= TaskState.RUNNING:
                    slots.setdefault(task.slot, []).append(task)
            if not eligible or any(len(tasks) > 1 or tasks[0].status.state != TaskState.RUNNING
                                   for tasks in slots.values()):
                if any(len(tasks) > 1 for tasks in slots.values()):
                    self.rebalancing.add(service_id)   # a move is in flight: look again when it lands
                continue
            by_node: dict[str, list[int]] = {}
            for slot, (task,) in slots.items():
                if task.node_id in eligible:
                    eligible[task.node_id] += 1
                    by_node.setdefault(task.node_id, []).append(slot)
            moves = max(1, service.spec.update.parallelism or len(slots))
            rows = []
            counts = dict(eligible)
            while len(rows) < moves:
                busiest = max(sorted(counts), key=lambda n: counts[n])
                idlest = min(sorted(counts), key=lambda n: counts[n])
                if counts[busiest] - counts[idlest] <= 1:
                    break
                slot = sorted(by_node[busiest])[-1]
                by_node[busiest].remove(slot)
                counts[busiest] -= 1
                counts[idlest] += 1
                rows.append((next_task_id(service_id, slot, store.applied_index), slot, ""))
            if rows:
                self.rebalancing.add(service_id)
                ops.append(CreateTasks(service_id, service.spec_version, service.spec.task, TaskState.RUNNING,
                                       tuple(rows), context.now_ticks, host_ports_of(service),
                                       initial_state_of(service)))
            else:
                self.rebalancing.discard(service_id)
        return ops
