"""Orchestrators (swarmkit manager/orchestrator/replicated and global) with
the restart supervisor and node-failure handling, as one leader component:
all three write the tasks of one service, so one reconcile per dirty service
keeps their decisions in one consistent transaction.

Replicated: slots 1..replicas, each wanting one task with desired state <=
RUNNING. Scaling up fills the lowest free slots; scaling down removes first
slots whose task is not running, then from the nodes holding the most tasks
of the service (swarmkit replicated/services.go). Tasks on nodes that are
down or drained are replaced elsewhere (node failure handling).

Global: one task per node that is ready, active and satisfies the
constraints; tasks on drained, down, removed or no-longer-matching nodes are
shut down; nodes that join get a task.
"""
from __future__ import annotations

import heapq
from typing import Iterable

from operator import ne

from scheduler.component import DESIRED, STATE, Component, Context
from scheduler.constraints import node_matches, parse_constraints
from scheduler.model import NodeAvailability, NodeStatus, Service, ServiceMode, Task, TaskState, UpdateState
from scheduler.restart import RestartSupervisor, next_task_id, slot_key
from scheduler.store import CreateTasks, Event, PatchTask

LIVE = TaskState.RUNNING   # a task is "live" while its desired state is <= RUNNING
_INTERESTING_STATES = frozenset(s for s in TaskState if s == TaskState.RUNNING or s >= TaskState.COMPLETE)


def host_ports_of(service: Service) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((p.protocol, p.published_port) for p in service.spec.ports if p.host_mode))


def initial_state_of(service: Service) -> TaskState:
    """Tasks with nothing to allocate (no networks, no routing-mesh ports)
    are created PENDING, saving a whole allocator round trip per task; a
    deliberate shortcut over swarmkit, whose allocator passes them through."""
    needs_allocation = bool(service.spec.task.networks) or any(not p.host_mode for p in service.spec.ports)
    return TaskState.NEW if needs_allocation else TaskState.PENDING


class Orchestrator(Component):
    name = "orchestrator"

    def __init__(self) -> None:
        self.supervisor = RestartSupervisor()
        self.dirty: set[str] = set()
        self.all_dirty = True
        self.wakeups: dict[str, int] = {}

    def start(self, context: Context) -> None:
        self.all_dirty = True
        self.dirty.clear()

    def on_events(self, events: Iterable[Event]) -> None:
        for event in events:
            kind = event.kind
            if event.action == "create-many":
                continue   # creations never need a reconcile
            if event.action == "update-many":
                news, olds = event.obj, event.old
                if _INTERESTING_STATES.isdisjoint(map(STATE, news)) and not any(map(ne, map(DESIRED, news),
                                                                                        map(DESIRED, olds))):
                    continue   # e.g. 100k tasks moving to PENDING or ASSIGNED
                for task, old in zip(news, olds):
                    state = task.status.state
                    if old.desired_state != task.desired_state or (
                            old.status.state != state and (state >= TaskState.COMPLETE or state == TaskState.RUNNING)):
                        self.dirty.add(task.service_id)
                continue
            if kind == "task":
                # Creations never need a reconcile (whoever created the task
                # accounted for it); changes of desired state, a task reaching
                # RUNNING or a terminal state, or a live task vanishing do.
                task, old = event.obj, event.old
                if old is None:
                    continue
                if event.action == "delete":
                    if task.desired_state <= LIVE:
                        self.dirty.add(task.service_id)
                    continue
                state = task.status.state
                if old.desired_state != task.desired_state or (
                        old.status.state != state and (state >= TaskState.COMPLETE or state == TaskState.RUNNING)):
                    self.dirty.add(task.service_id)
            elif kind == "service":
                self.dirty.add(event.obj.id)
            elif kind == "node":
                # Any node change may matter to global services and to the
                # tasks on that node; a full pass is cheap next to its rarity.
                self.all_dirty = True

    def tick(self, context: Context) -> list:
        if self.skip_idle_ticks and not self.all_dirty and not self.dirty and not self.wakeups:
            return []   # idle tick: nothing marked by events, nothing to wake (the full pass would do nothing)
        store = context.store
        now = context.now_ticks
        if self.all_dirty:
            self.all_dirty = False
            targets = set(store.objects["service"]) | set(store.tasks_by_service) | self.dirty
            self.dirty.clear()
        else:
            targets = self.dirty
            self.dirty = set()
        for service_id, tick in list(self.wakeups.items()):
            if tick <= now:
                targets.add(service_id)
                del self.wakeups[service_id]
        ops: list = []
        for service_id in sorted(targets):
            service = store.get("service", service_id)
            if service is None:
                self._remove_all(store.tasks_of_service(service_id).values(), ops)
            elif service.spec.mode == ServiceMode.REPLICATED:
                self._reconcile_replicated(service, context, ops)
            else:
                self._reconcile_global(service, context, ops)
        return ops

    # ------------------------------------------------------------- helpers
    def _remove_all(self, tasks: Iterable[Task], ops: list) -> None:
        for task in sorted(tasks, key=lambda t: t.id):
            if task.desired_state < TaskState.REMOVE:
                ops.append(PatchTask(task.id, task.version, desired_state=TaskState.REMOVE))

    def _wake(self, service_id: str, tick: int) -> None:
        if tick:
            current = self.wakeups.get(service_id)
            self.wakeups[service_id] = tick if current is None else min(current, tick)

    def _restart(self, service: Service, task: Task, siblings: list[Task], context: Context, ops: list,
                 new_rows: list, delay: bool) -> None:
        """Replace ``task``: shut it down, create its successor (desired READY)."""
        ops.append(PatchTask(task.id, task.version, desired_state=TaskState.SHUTDOWN))
        key = slot_key(task)
        new_id = next_task_id(service.id, key, context.store.applied_index)
        if any(row[0] == new_id for row in new_rows):
            return   # the slot already gets a successor in this reconcile
        new_rows.append((new_id, task.slot, task.node_id if not task.slot else ""))
        delay_ticks = service.spec.task.restart.delay_ticks if delay else 0
        self.supervisor.record_restart(service.id, key, context.now_ticks, new_id, delay_ticks)
        self._wake(service.id, context.now_ticks + delay_ticks)

    def _replace(self, service: Service, alive: list[Task], failing: list, siblings: list[Task], context: Context,
                 ops: list, restart_rows: list, touched: set) -> None:
        """Shut down the failing tasks of one slot; create a successor only
        when no other live task remains in the slot (during a start-first
        update the slot may hold two)."""
        if not failing:
            return
        survivors = len(alive) - len(failing)
        for task, delay in failing:
            if survivors:
                ops.append(PatchTask(task.id, task.version, desired_state=TaskState.SHUTDOWN))
            else:
                self._restart(service, task, siblings, context, ops, restart_rows, delay)
            touched.add(task.id)

    def _promote(self, service: Service, groups: dict, context: Context, ops: list, touched: set) -> None:
        for key in sorted(groups, key=str):
            siblings = groups[key]
            for task in siblings:
                if task.desired_state != TaskState.READY or task.id in touched:
                    continue
                ok, wake = self.supervisor.ready_to_start(task, siblings, context.store, context.now_ticks)
                if ok:
                    ops.append(PatchTask(task.id, task.version, desired_state=TaskState.RUNNING))
                    touched.add(task.id)
                else:
                    self._wake(service.id, wake)

    def _create(self, service: Service, rows: list, context: Context, ops: list, desired: TaskState) -> None:
        if rows:
            ops.append(CreateTasks(service.id, service.spec_version, service.spec.task, desired, tuple(rows),
                                   context.now_ticks, host_ports_of(service), initial_state_of(service)))

    # ----------------------------------------------------------- replicated
    def _reconcile_replicated(self, service: Service, context: Context, ops: list) -> None:
        store = context.store
        groups: dict[int, list[Task]] = {}
        for task in store.tasks_of_service(service.id).values():
            groups.setdefault(task.slot, []).append(task)
        live: dict[int, list[Task]] = {}
        for slot, tasks in groups.items():
            tasks.sort(key=lambda t: t.id)
            alive = [t for t in tasks if t.desired_state <= LIVE]
            if alive:
                live[slot] = alive
        touched: set[str] = set()
        # 1. Scale down first, so removed slots are not also restarted.
        excess = len(live) - service.spec.replicas
        if excess > 0:
            for slot in self._slots_to_remove(live, excess, store):
                for task in live.pop(slot):
                    ops.append(PatchTask(task.id, task.version, desired_state=TaskState.REMOVE))
                    touched.add(task.id)
        # 2. A slot with several live tasks of the same spec outside an update
        #    (a rebalancing move, or a proposal presumed lost that committed
        #    after all) keeps its newest running task once none is starting.
        updating = service.update_status is not None and service.update_status.state in (
            UpdateState.UPDATING, UpdateState.ROLLBACK_STARTED)
        if not updating:
            for slot in sorted(live):
                alive = live[slot]
                if len(alive) < 2 or not all(t.template == service.spec.task for t in alive):
                    continue
                if any(t.status.state < TaskState.RUNNING for t in alive):
                    continue   # a successor is still starting (a start-first move): wait for it
                running = [t for t in alive if t.status.state == TaskState.RUNNING]
                if not running:
                    continue   # all ended: the restart logic below deals with them
                keep = max(running, key=lambda t: (t.created_at_ticks, t.id))   # the newest running one
                for task in alive:
                    if task is not keep:
                        ops.append(PatchTask(task.id, task.version, desired_state=TaskState.SHUTDOWN))
                        touched.add(task.id)
                live[slot] = [keep]
        # 3. Restarts and node failure handling.
        restart_rows: list = []
        for slot in sorted(live):
            failing = []
            for task in live[slot]:
                if task.node_id:
                    node = store.get("node", task.node_id)
                    if node is None or node.status == NodeStatus.DOWN or node.availability == NodeAvailability.DRAIN:
                        failing.append((task, False))
                        continue
                if task.status.state >= TaskState.COMPLETE and \
                        self.supervisor.should_restart(task, service, context.now_ticks):
                    failing.append((task, True))
            self._replace(service, live[slot], failing, groups[slot], context, ops, restart_rows, touched)
        self._create(service, restart_rows, context, ops, TaskState.READY)
        # 4. Scale up into the lowest free slots.
        missing = service.spec.replicas - len(live)
        rows = []
        slot = 1
        while missing > 0:
            if slot not in live:
                rows.append((next_task_id(service.id, slot, store.applied_index), slot, ""))
                missing -= 1
            slot += 1
        self._create(service, rows, context, ops, TaskState.RUNNING)
        # 5. Start READY successors whose predecessors stopped.
        self._promote(service, groups, context, ops, touched)

    @staticmethod
    def _slots_to_remove(live: dict[int, list[Task]], excess: int, store) -> list[int]:
        chosen: list[int] = []
        running_slots = []
        for slot in sorted(live, reverse=True):
            if any(t.status.state == TaskState.RUNNING for t in live[slot]):
                running_slots.append(slot)
            elif len(chosen) < excess:
                chosen.append(slot)           # not running: cheapest to remove
        if len(chosen) >= excess:
            return chosen
        per_node: dict[str, int] = {}
        node_of: dict[int, str] = {}
        for slot in running_slots:
            node_id = next((t.node_id for t in live[slot] if t.status.state == TaskState.RUNNING), "")
            node_of[slot] = node_id
            per_node[node_id] = per_node.get(node_id, 0) + 1
        # Lazy heap: (-tasks of the service on the slot's node, -slot).
        heap = [(-per_node[node_of[s]], -s) for s in running_slots]
        heapq.heapify(heap)
        while len(chosen) < excess and heap:
            negative_count, negative_slot = heapq.heappop(heap)
            slot = -negative_slot
            current = per_node[node_of[slot]]
            if -negative_count != current:
                heapq.heappush(heap, (-current, negative_slot))
                continue
            chosen.append(slot)
            per_node[node_of[slot]] = current - 1
        return chosen

    # --------------------------------------------------------------- global
    def _reconcile_global(self, service: Service, context: Context, ops: list) -> None:
        store = context.store
        constraints = parse_constraints(service.spec.task.placement.constraints)
        groups: dict[str, list[Task]] = {}
        for task in store.tasks_of_service(service.id).values():
            groups.setdefault(task.node_id, []).append(task)
        for tasks in groups.values():
            tasks.sort(key=lambda t: t.id)
        touched: set[str] = set()
        rows: list = []
        restart_rows: list = []
        live_groups: dict[str, list[Task]] = {}
        for node in store.list("node"):
            tasks = groups.pop(node.id, [])
            alive = [t for t in tasks if t.desired_state <= LIVE]
            keep = node.status != NodeStatus.DOWN and node.availability != NodeAvailability.DRAIN and \
                node_matches(constraints, node)
            if not keep:
                for task in alive:
                    ops.append(PatchTask(task.id, task.version, desired_state=TaskState.SHUTDOWN))
                    touched.add(task.id)
                continue
            live_groups[node.id] = tasks
            failing = [(task, True) for task in alive if task.status.state >= TaskState.COMPLETE and
                       self.supervisor.should_restart(task, service, context.now_ticks)]
            self._replace(service, alive, failing, tasks, context, ops, restart_rows, touched)
            if not alive and node.status == NodeStatus.READY and node.availability == NodeAvailability.ACTIVE:
                rows.append((next_task_id(service.id, node.id, store.applied_index), 0, node.id))
        for node_id in sorted(groups):   # tasks on nodes that no longer exist
            for task in groups[node_id]:
                if task.desired_state <= LIVE:
                    ops.append(PatchTask(task.id, task.version, desired_state=TaskState.SHUTDOWN))
                    touched.add(task.id)
        self._create(service, restart_rows, context, ops, TaskState.READY)
        self._create(service, rows, context, ops, TaskState.RUNNING)
        self._promote(service, live_groups, context, ops, touched)
