"""Constraint enforcer (swarmkit manager/orchestrator/constraintenforcer):
when a node changes (labels, role, availability, resources), tasks on it
whose placement constraints no longer hold, or that no longer fit its
resources, are shut down; the orchestrators then place successors elsewhere.
"""
from __future__ import annotations

from typing import Iterable

from scheduler.component import Component, Context
from scheduler.constraints import node_matches, parse_constraints
from scheduler.model import TaskState
from scheduler.store import Event, PatchTask


class ConstraintEnforcer(Component):
    name = "enforcer"
    ticks_only_after_input = True    # (see Component; no clock-driven work)

    def __init__(self) -> None:
        self.dirty_nodes: set[str] = set()

    def start(self, context: Context) -> None:
        self.dirty_nodes = set(context.store.objects["node"])

    def on_events(self, events: Iterable[Event]) -> None:
        for event in events:
            if event.kind == "node" and event.action != "delete":
                self.dirty_nodes.add(event.obj.id)

    def tick(self, context: Context) -> list:
        if self.skip_idle_ticks and not self.dirty_nodes:
            return []   # idle tick: no node changed (the full pass would do nothing)
        store = context.store
        ops: list = []
        for node_id in sorted(self.dirty_nodes):
            node = store.get("node", node_id)
            if node is None:
                continue
            live = sorted((t for t in store.tasks_on_node(node_id).values()
                           if t.desired_state <= TaskState.RUNNING and t.status.state <= TaskState.RUNNING),
                          key=lambda t: t.id)
            cpu_left = node.resources.nano_cpus
            memory_left = node.resources.memory_bytes
            for task in live:
                if not node_matches(parse_constraints(task.template.placement.constraints), node):
                    ops.append(PatchTask(task.id, task.version, desired_state=TaskState.SHUTDOWN))
                    continue
                reservations = task.template.reservations
                cpu_left -= reservations.nano_cpus
                memory_left -= reservations.memory_bytes
                if (reservations.nano_cpus and cpu_left < 0) or (reservations.memory_bytes and memory_left < 0):
                    ops.append(PatchTask(task.id, task.version, desired_state=TaskState.SHUTDOWN))
                    cpu_left += reservations.nano_cpus
                    memory_left += reservations.memory_bytes
        self.dirty_nodes = set()
        return ops
