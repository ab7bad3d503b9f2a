"""Rolling updates and rollbacks (swarmkit manager/orchestrator/update/updater.go).

A service whose ``update_status`` is UPDATING or ROLLBACK_STARTED is moved,
batch by batch, to tasks built from its current spec:

* a batch is ``parallelism`` slots (0 = all); the next batch starts when the
  previous one is RUNNING and ``delay_ticks`` have passed;
* stop-first: the old task is shut down and its successor created with
  desired state READY; the orchestrator's start gate promotes it to RUNNING
  once the old one stopped. start-first: the successor starts at once and
  the old task is shut down when the successor runs;
* failures (successor tasks FAILED/REJECTED since the update started) above
  ``max_failure_ratio`` of the slots trigger ``failure_action``: pause,
  continue, or roll back (the previous spec becomes the spec again);
* after the last batch, ``monitor_ticks`` more of health, then COMPLETED;
* canary (Shoal's own): after the first batch, PAUSED until resumed, or until
  the batch stayed healthy for ``canary_health_ticks``.

Which slots are done is read from the store (a task is current when its
template equals the service's), so a new leader resumes an update where the
old one stopped; only the delay/monitor timers restart.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable, Optional

from scheduler.component import SERVICE_ID, Component, Context
from scheduler.model import (FailureAction, Service, Task, TaskState, UpdateOrder, UpdateState,
                             UpdateStatus, evolve)
from scheduler.orchestrator import host_ports_of, initial_state_of
from scheduler.restart import next_task_id, slot_key
from scheduler.store import BULK_ACTIONS, CreateTasks, Event, PatchTask, Update

ACTIVE_STATES = (UpdateState.UPDATING, UpdateState.ROLLBACK_STARTED)


@dataclass(slots=True)
class _Run:
    batch_done_tick: Optional[int] = None


def is_current(task: Task, service: Service) -> bool:
    return task.template is service.spec.task or task.template == service.spec.task


class Updater(Component):
    name = "updater"

    def __init__(self) -> None:
        self.runs: dict[str, _Run] = {}
        self.dirty: set[str] = set()
        self.wakeups: dict[str, int] = {}
        self.all_dirty = True
        self.active: set[str] = set()   # services with an update or rollback in progress

    def start(self, context: Context) -> None:
        self.runs.clear()
        self.all_dirty = True
        self.active = {s.id for s in context.store.objects["service"].values()
                       if s.update_status is not None and s.update_status.state in ACTIVE_STATES}

    def on_events(self, events: Iterable[Event]) -> None:
        active = self.active
        for event in events:
            kind = event.kind
            if event.action in BULK_ACTIONS:
                if active:
                    self.dirty |= active.intersection(map(SERVICE_ID, event.obj))
                continue
            if kind == "task":
                if event.obj.service_id in active:
                    self.dirty.add(event.obj.service_id)
            elif kind == "service":
                service = event.obj
                self.dirty.add(service.id)
                if event.action != "delete" and service.update_status is not None and \
                        service.update_status.state in ACTIVE_STATES:
                    active.add(service.id)
                else:
                    active.discard(service.id)

    def tick(self, context: Context) -> list:
        if self.skip_idle_ticks and not self.all_dirty and not self.dirty and not self.wakeups:
            return []   # idle tick: nothing marked by events, nothing to wake (the full pass would do nothing)
        store = context.store
        now = context.now_ticks
        if self.all_dirty:
            self.all_dirty = False
            self.dirty |= set(store.objects["service"])
        for service_id, tick in list(self.wakeups.items()):
            if tick <= now:
                self.dirty.add(service_id)
                del self.wakeups[service_id]
        targets, self.dirty = self.dirty, set()
        ops: list = []
        for service_id in sorted(targets):
            service = store.get("service", service_id)
            if service is None or service.update_status is None or service.update_status.state not in ACTIVE_STATES:
                self.runs.pop(service_id, None)
                continue
            self._advance(service, context, ops)
        return ops

    def _wake(self, service_id: str, tick: int) -> None:
        current = self.wakeups.get(service_id)
        self.wakeups[service_id] = tick if current is None else min(current, tick)

    def _set_status(self, service: Service, ops: list, **changes) -> None:
        ops.append(Update(evolve(service, update_status=evolve(service.update_status, **changes)), service.version))

    def _advance(self, service: Service, context: Context, ops: list) -> None:
        store = context.store
        now = context.now_ticks
        status = service.update_status
        rolling_back = status.state == UpdateState.ROLLBACK_STARTED
        config = service.spec.rollback if rolling_back else service.spec.update
        run = self.runs.setdefault(service.id, _Run())
        groups: dict[object, list[Task]] = {}
        for task in store.tasks_of_service(service.id).values():
            groups.setdefault(slot_key(task), []).append(task)
        outdated: list[object] = []
        in_progress = 0
        updated = 0
        failures: list[Task] = []
        for key in sorted(groups, key=lambda k: (isinstance(k, str), k)):
            tasks = sorted(groups[key], key=lambda t: t.id)
            live = [t for t in tasks if t.desired_state <= TaskState.RUNNING]
            for task in tasks:
                if task.status.state in (TaskState.FAILED, TaskState.REJECTED) and \
                        task.status.timestamp_ticks >= status.started_at_ticks and is_current(task, service):
                    failures.append(task)
            if not live:
                continue
            current = [t for t in live if is_current(t, service)]
            old = [t for t in live if not is_current(t, service)]
            if old and not current:
                outdated.append(key)
                continue
            if any(t.status.state == TaskState.RUNNING for t in current):
                if old:   # start-first: the successor runs, stop the old task now
                    for task in old:
                        ops.append(PatchTask(task.id, task.version, desired_state=TaskState.SHUTDOWN))
                    in_progress += 1
                else:
                    updated += 1
            else:
                in_progress += 1
        slots_total = max(1, len(outdated) + in_progress + updated)
        if failures and len(failures) > config.max_failure_ratio * slots_total and \
                config.failure_action != FailureAction.CONTINUE:
            first = failures[0]
            if config.failure_action == FailureAction.ROLLBACK and not rolling_back and service.previous_spec:
                self._rollback(service, now, ops, f"update rolled back due to failure or early termination "
                                                  f"of task {first.id}")
            else:
                state = UpdateState.ROLLBACK_PAUSED if rolling_back else UpdateState.PAUSED
                self._set_status(service, ops, state=state, message=f"update paused due to failure or early "
                                                                  f"termination of task {first.id}")
            return
        if in_progress:
            run.batch_done_tick = None
            return
        if run.batch_done_tick is None:
            run.batch_done_tick = now
        if not outdated:
            done_at = run.batch_done_tick + config.monitor_ticks
            if now < done_at:
                self._wake(service.id, done_at)
                return
            state = UpdateState.ROLLBACK_COMPLETED if rolling_back else UpdateState.COMPLETED
            self._set_status(service, ops, state=state, completed_at_ticks=now,
                             message="rollback completed" if rolling_back else "update completed")
            return
        if config.canary and not status.canary_passed and updated:
            if config.canary_health_ticks == 0:
                self._set_status(service, ops, state=UpdateState.ROLLBACK_PAUSED if rolling_back else
                                 UpdateState.PAUSED, message="canary: first batch running; resume to continue")
                return
            healthy_at = run.batch_done_tick + config.canary_health_ticks
            if now < healthy_at:
                self._wake(service.id, healthy_at)
                return
            self._set_status(service, ops, canary_passed=True, message="canary healthy; continuing")
            return
        start_at = run.batch_done_tick + config.delay_ticks if updated else 0
        if now < start_at:
            self._wake(service.id, start_at)
            return
        batch = outdated if config.parallelism == 0 else outdated[:config.parallelism]
        run.batch_done_tick = None
        rows = []
        for key in batch:
            tasks = groups[key]
            if config.order == UpdateOrder.STOP_FIRST:
                for task in tasks:
                    if task.desired_state <= TaskState.RUNNING:
                        ops.append(PatchTask(task.id, task.version, desired_state=TaskState.SHUTDOWN))
            slot = key if isinstance(key, int) else 0
            rows.append((next_task_id(service.id, key, store.applied_index), slot, "" if slot else key))
        desired = TaskState.READY if config.order == UpdateOrder.STOP_FIRST else TaskState.RUNNING
        ops.append(CreateTasks(service.id, service.spec_version, service.spec.task, desired, tuple(rows), now,
                               host_ports_of(service), initial_state_of(service)))

    @staticmethod
    def _rollback(service: Service, now: int, ops: list, message: str) -> None:
        previous = dataclasses.replace(service.previous_spec, replicas=service.spec.replicas)
        rolled = evolve(service, spec=previous, spec_version=service.spec_version + 1,
                        previous_spec=service.spec, previous_spec_version=service.spec_version,
                        update_status=UpdateStatus(UpdateState.ROLLBACK_STARTED, now, 0, message))
        ops.append(Update(rolled, service.version))
