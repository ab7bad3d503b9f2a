"""Task reaper (swarmkit manager/orchestrator/taskreaper): deletes tasks
nobody needs any more, so the store stays bounded.

* Per slot (replicated) or per node (global), keep at most
  ``task_history_limit`` dead tasks (newest first), delete the rest.
* Tasks with desired state REMOVE (scale-down, removed service) are deleted
  as soon as they are dead.
* Tasks of services that no longer exist are deleted once dead.

A task is dead when it will not run again: its desired state is past RUNNING
and it either reached a terminal state, never got past PENDING, or sits on a
node that is down or gone (that node's agent stops it when it returns, since
the task is no longer among its assignments).
"""
from __future__ import annotations

from typing import Iterable

from scheduler.component import DESIRED, DESIRED_PAST_RUNNING, Component, Context
from scheduler.model import NodeStatus, Task, TaskState
from scheduler.restart import slot_key
from scheduler.store import Delete, Event

DELETES_PER_TICK_MAX = 50_000  # bound on one reaper proposal


def is_dead(task: Task, store) -> bool:
    if task.desired_state <= TaskState.RUNNING:
        return False
    state = task.status.state
    if state >= TaskState.COMPLETE or state < TaskState.ASSIGNED or not task.node_id:
        return True
    node = store.get("node", task.node_id)
    return node is None or node.status == NodeStatus.DOWN


class TaskReaper(Component):
    name = "reaper"
    ticks_only_after_input = True    # (see Component; no clock-driven work)

    def __init__(self) -> None:
        self.dirty: set[str] = set()
        self.all_dirty = True

    def start(self, context: Context) -> None:
        self.all_dirty = True

    def on_events(self, events: Iterable[Event]) -> None:
        for event in events:
            if event.action == "create-many":
                continue
            if event.action == "update-many":
                if any(map(DESIRED_PAST_RUNNING, map(DESIRED, event.obj))):
                    self.dirty.update(t.service_id for t in event.obj if t.desired_state > TaskState.RUNNING)
                continue
            if event.kind == "task":
                task = event.obj
                if task.desired_state > TaskState.RUNNING and event.action != "delete":
                    self.dirty.add(task.service_id)
            elif event.kind == "service" and event.action == "delete":
                self.dirty.add(event.obj.id)
            elif event.kind == "node":
                self.all_dirty = True

    def tick(self, context: Context) -> list:
        if self.skip_idle_ticks and not self.all_dirty and not self.dirty:
            return []   # idle tick: no service marked by events (the full pass would do nothing)
        store = context.store
        if self.all_dirty:
            targets = set(store.tasks_by_service)
            self.all_dirty = False
        else:
            targets = self.dirty
        self.dirty = set()
        limit = context.config.task_history_limit
        ops: list = []
        for service_id in sorted(targets):
            service_exists = store.get("service", service_id) is not None
            by_key: dict[object, list[Task]] = {}
            for task in store.tasks_of_service(service_id).values():
                if not is_dead(task, store):
                    continue
                if not service_exists or task.desired_state == TaskState.REMOVE:
                    ops.append(Delete("task", task.id, task.version))
                else:
                    by_key.setdefault(slot_key(task), []).append(task)
            for key in sorted(by_key, key=str):
                dead = sorted(by_key[key], key=lambda t: (t.created_at_ticks, t.id), reverse=True)
                for task in dead[limit:]:
                    ops.append(Delete("task", task.id, task.version))
            if len(ops) >= DELETES_PER_TICK_MAX:
                self.dirty.add(service_id)   # finish next tick
                break
        return sorted(ops, key=lambda op: op.id)
