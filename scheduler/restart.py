"""Restart supervisor (swarmkit manager/orchestrator/restart/restart.go).

Decides whether a finished task is replaced (condition none / on-failure /
any; at most ``max_attempts`` restarts within ``window_ticks``), and starts
replacement tasks: a replacement is created with desired state READY and is
promoted to RUNNING only once its restart delay has passed AND the task it
replaces is no longer running on a live node. That same "stop before start"
gate gives the updater its stop-first order.

The attempt history and the delay timers are leader memory, as in swarmkit:
a new leader starts pending replacements without the remaining delay.
"""
from __future__ import annotations

from scheduler.model import NodeStatus, RestartCondition, Service, Task, TaskState

ATTEMPT_TICKS_KEPT_MAX = 64  # bound on remembered restarts per slot


def slot_key(task: Task) -> object:
    """Replicated tasks are grouped by slot, global ones by node."""
    return task.slot if task.slot else task.node_id


def next_task_id(service_id: str, key: object, view_index: int) -> str:
    """Deterministic id ``service.key.index`` where index is the store's
    applied index the decision was made at. Every manager derives the same id
    from the same view; two decisions for one slot from the same view (say the
    orchestrator and the updater) collide, so the second fails in the store
    instead of starting a second task for the slot; ids are never reused
    because the applied index only grows."""
    return f"{service_id}.{key}.{view_index}"


class RestartSupervisor:
    def __init__(self) -> None:
        self.attempts: dict[tuple[str, object], list[int]] = {}
        self.start_at_ticks: dict[str, int] = {}

    def reset(self) -> None:
        self.attempts.clear()
        self.start_at_ticks.clear()

    def should_restart(self, task: Task, service: Service, now_ticks: int) -> bool:
        policy = task.template.restart
        state = task.status.state
        if policy.condition == RestartCondition.NONE:
            return False
        if policy.condition == RestartCondition.ON_FAILURE and state == TaskState.COMPLETE and \
                task.status.exit_code == 0:
            return False
        if policy.max_attempts:
            ticks = self.attempts.get((service.id, slot_key(task)), [])
            if policy.window_ticks:
                ticks = [t for t in ticks if now_ticks - t <= policy.window_ticks]
            if len(ticks) >= policy.max_attempts:
                return False
        return True

    def record_restart(self, service_id: str, key: object, now_ticks: int, new_task_id: str,
                       delay_ticks: int) -> None:
        ticks = self.attempts.setdefault((service_id, key), [])
        ticks.append(now_ticks)
        del ticks[:-ATTEMPT_TICKS_KEPT_MAX]
        if delay_ticks:
            self.start_at_ticks[new_task_id] = now_ticks + delay_ticks

    def ready_to_start(self, task: Task, siblings: list[Task], store, now_ticks: int) -> tuple[bool, int]:
        """(may the READY task go RUNNING now?, tick to look again or 0)."""
        start_at = self.start_at_ticks.get(task.id, 0)
        if now_ticks < start_at:
            return False, start_at
        for other in siblings:
            if other.id == task.id or other.desired_state <= TaskState.RUNNING:
                continue
            if TaskState.ASSIGNED <= other.status.state <= TaskState.RUNNING and other.node_id:
                node = store.get("node", other.node_id)
                if node is not None and node.status != NodeStatus.DOWN:
                    return False, 0   # wait for the old task to stop (stop-first)
        self.start_at_ticks.pop(task.id, None)
        return True, 0
