"""Invariant checks over a store, for tests and the chaos checkers.

Safety (must hold at every step, faults or not):
* no task's observed or desired state ever moves backwards (watch events);
* a RUNNING task whose desired state is RUNNING sits on a node that satisfies
  its constraints (checked when it is placed; node changes are followed by
  the constraint enforcer, so this is checked only for the placement);
* no replicated slot has two RUNNING tasks of the current spec.
Liveness (after faults stop): every service converges (Reads.convergence).
"""
from __future__ import annotations

from scheduler.constraints import node_matches, parse_constraints
from scheduler.model import ServiceMode, TaskState
from scheduler.store import Store, expand


class MonotonicWatch:
    """Feed it every ApplyResult; it records any backwards state move."""

    def __init__(self) -> None:
        self.violations: list[str] = []
        self.seen: dict[str, tuple[int, int]] = {}

    def observe(self, result) -> None:
        if result is None:
            return
        for event in expand(result.events):
            if event.kind != "task" or event.action == "delete":
                continue
            task = event.obj
            previous = self.seen.get(task.id)
            current = (int(task.status.state), int(task.desired_state))
            if previous is not None and (current[0] < previous[0] or current[1] < previous[1]):
                self.violations.append(f"task {task.id}: {previous} -> {current}")
            self.seen[task.id] = current


def placement_violations(store: Store, running_per_slot_max: int = 1) -> list[str]:
    """Slots running more than ``running_per_slot_max`` tasks of the current
    spec. 1 holds at every step unless rebalancing is on: its start-first
    moves run the successor beside the old task until the orchestrator retires
    the old one (pass 2 then; convergence still demands exactly one)."""
    problems = []
    for service in store.list("service"):
        running_slots: dict[object, list[str]] = {}
        for task in store.tasks_of_service(service.id).values():
            if not task.node_id or task.status.state < TaskState.ASSIGNED:
                continue
            if task.desired_state == TaskState.RUNNING and task.status.state == TaskState.RUNNING and \
                    task.template == service.spec.task:
                key = task.slot if service.spec.mode == ServiceMode.REPLICATED else task.node_id
                running_slots.setdefault(key, []).append(task.id)
        for key, task_ids in sorted(running_slots.items(), key=lambda item: str(item[0])):
            if len(task_ids) > running_per_slot_max:
                problems.append(f"slot {key} of {service.spec.name} runs {len(task_ids)} times: {sorted(task_ids)}")
    return problems


def constraint_violations_at_assignment(result, store: Store) -> list[str]:
    """For an ApplyResult: every task that just became ASSIGNED must be on a
    node matching its constraints, ready and active."""
    problems = []
    for event in expand(result.events):
        if event.kind != "task" or event.action != "update":
            continue
        task, old = event.obj, event.old
        if task.status.state == TaskState.ASSIGNED and old.status.state < TaskState.ASSIGNED:
            node = store.get("node", task.node_id)
            if node is None:
                problems.append(f"task {task.id} assigned to unknown node {task.node_id}")
            elif not node_matches(parse_constraints(task.template.placement.constraints), node):
                problems.append(f"task {task.id} assigned to {node.id} violating "
                                f"{task.template.placement.constraints} (labels {node.labels})")
    return problems
