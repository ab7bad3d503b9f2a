"""The scheduler component (swarmkit manager/scheduler/scheduler.go): keeps
NodeInfo for every node from store events, and each tick places the PENDING
tasks, grouped by (service, spec version), with :func:`placement.schedule_group`.
Assignments move tasks to ASSIGNED with their node; tasks that fit nowhere
stay PENDING with the pipeline's explanation as their error. Decisions are
counted in NodeInfo at once (idempotently, by task id), so the next group in
the same tick sees them; a failed proposal triggers a rebuild from the store.
"""
from __future__ import annotations

from operator import attrgetter
from typing import Iterable

from scheduler.component import NODE_ID, TASK_ID, Component, Context
from scheduler.model import Task, TaskState, TaskStatus
from scheduler.placement import NodeInfo, Pipeline, is_active_on_node, schedule_group
from scheduler.store import BULK_ACTIONS, Event, PatchTask, PatchTasks, expand

ASSIGNED_MESSAGE = "scheduler assigned task to node"


def expand_bulk(events: Iterable[Event], scheduler: "Scheduler") -> Iterable[Event]:
    """Bulk events as per-task events, except the common bulk creation of
    unassigned PENDING tasks, which goes straight into the pending table."""
    for event in events:
        if event.action == "create-many":
            first = event.obj[0]
            if first.status.state == TaskState.PENDING and first.desired_state <= TaskState.RUNNING and \
                    not any(map(NODE_ID, event.obj)):
                scheduler.pending.update(zip(map(TASK_ID, event.obj), event.obj))
                scheduler.changed = True
                continue
        if event.action in BULK_ACTIONS:
            yield from expand((event,))
        else:
            yield event


_slot_order = attrgetter("slot", "id")   # C-level sort key: (slot, id)


class Scheduler(Component):
    name = "scheduler"
    ticks_only_after_input = True    # (see Component; no clock-driven work)

    def __init__(self) -> None:
        self.infos: dict[str, NodeInfo] = {}
        self.pending: dict[str, Task] = {}
        self.pipeline = Pipeline()
        self.resync = True
        self.changed = True
        self._sorted_infos: list[NodeInfo] | None = None

    def start(self, context: Context) -> None:
        self.resync = True

    def _rebuild(self, store) -> None:
        self.infos = {node.id: NodeInfo(node) for node in store.list("node")}
        self._sorted_infos = None
        self.pending = {}
        for task in store.objects["task"].values():
            if is_active_on_node(task):
                info = self.infos.get(task.node_id)
                if info is not None:
                    info.add_task(task)
            if task.status.state == TaskState.PENDING and task.desired_state <= TaskState.RUNNING:
                self.pending[task.id] = task
        self.changed = True

    def on_events(self, events: Iterable[Event]) -> None:
        if self.resync:
            return
        infos = self.infos
        pending = self.pending
        running = TaskState.RUNNING
        for event in expand_bulk(events, self):
            if event.kind == "task":
                task, old = event.obj, event.old
                # Fast path, the bulk of every big placement: our own decision
                # PENDING -> ASSIGNED committing (already counted on the node).
                if old is not None and not old.node_id and task.node_id and \
                        task.status.state <= running and task.desired_state <= running:
                    info = infos.get(task.node_id)
                    if info is not None and task.id in info.tasks:
                        pending.pop(task.id, None)
                        continue
                if old is not None and old.node_id and (event.action == "delete" or not is_active_on_node(task)):
                    info = infos.get(old.node_id)
                    if info is not None and old.id in info.tasks:
                        info.remove_task(old.id)
                        self.changed = True
                if event.action == "delete":
                    pending.pop(task.id, None)
                    continue
                if task.node_id and is_active_on_node(task):
                    info = infos.get(task.node_id)
                    if info is not None:
                        info.add_task(task)
                state = task.status.state
                if state == TaskState.PENDING and task.desired_state <= TaskState.RUNNING:
                    if task.id not in pending or (old is not None and old.status.state != state):
                        self.changed = True
                    pending[task.id] = task
                else:
                    pending.pop(task.id, None)
                if state in (TaskState.FAILED, TaskState.REJECTED) and old is not None and \
                        old.status.state != state and task.node_id in infos:
                    infos[task.node_id].record_failure(task.service_id, task.status.timestamp_ticks)
            elif event.kind == "node":
                self.changed = True
                self._sorted_infos = None
                if event.action == "delete":
                    infos.pop(event.obj.id, None)
                elif event.obj.id in infos:
                    infos[event.obj.id].node = event.obj
                else:
                    infos[event.obj.id] = NodeInfo(event.obj)

    def tick(self, context: Context) -> list:
        if self.resync:
            self.resync = False
            self._rebuild(context.store)
        if not self.pending or not self.changed:
            return []
        self.changed = False
        now = context.now_ticks
        config = context.config
        if self._sorted_infos is None:
            self._sorted_infos = [self.infos[key] for key in sorted(self.infos)]
        infos = self._sorted_infos
        groups: dict[tuple, list[Task]] = {}
        preassigned: list[Task] = []
        for task in self.pending.values():
            if task.node_id:
                preassigned.append(task)
            else:
                # Same service and spec version means the same template.
                groups.setdefault((task.service_id, task.spec_version), []).append(task)
        ops: list = []
        assigned = TaskStatus(TaskState.ASSIGNED, ASSIGNED_MESSAGE, "", now)
        for task in sorted(preassigned, key=lambda t: t.id):
            # Global tasks come with their node: only check that node (swarmkit does the same).
            info = self.infos.get(task.node_id)
            self.pipeline.set_task(task)
            if info is not None and self.pipeline.process(info):
                info.add_task(task)
                ops.append(PatchTask(task.id, task.version, status=assigned))
            else:
                self._unplaced(task, self.pipeline.explain(), now, ops)
        for key in sorted(groups):
            tasks = groups[key]
            tasks.sort(key=_slot_order)
            result = schedule_group(tasks, infos, self.pipeline, now, config.failure_window_ticks,
                                    config.failures_max)
            rows = []
            for info, placed in result.placements:
                info.add_group(placed)
                node_id = info.node.id
                rows += [(task.id, task.version, node_id, None) for task in placed]
            if rows:
                ops.append(PatchTasks(tuple(rows), assigned))
            for task in result.unplaced:
                self._unplaced(task, result.explanation, now, ops)
        return ops

    @staticmethod
    def _unplaced(task: Task, explanation: str, now: int, ops: list) -> None:
        if task.status.err != explanation:
            ops.append(PatchTask(task.id, task.version,
                                 status=TaskStatus(TaskState.PENDING, "pending task scheduling", explanation, now)))
