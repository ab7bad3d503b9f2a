"""The worker agent (swarmkit agent/): registers with the dispatcher, sends
heartbeats, runs its assigned tasks through a :class:`Runtime`, and reports
observed states in one batched StatusReport per tick.

A changed task state goes out at once in a StatusReport, and again with every
heartbeat until the dispatcher's HeartbeatAck for that heartbeat says it was
taken (the links may lose messages; swarmkit's reporter retries
UpdateTaskStatus likewise); on every new session, every task's state is
reported again (a new leader's dispatcher has none of them). Heartbeats say
which numbered set of assignments the agent holds; the dispatcher sends the
set again when that is not its last (see scheduler/dispatcher.py). Sets are
full (swarmkit's COMPLETE type): the agent applies only one newer than the
set it holds, so a set delayed behind a newer one changes nothing.

A task walks ACCEPTED -> PREPARING -> READY one state per tick, then (if its
desired state is RUNNING) STARTING -> RUNNING via the runtime. Desired state
past RUNNING stops it (SHUTDOWN); a task missing from the assignments is
stopped and forgotten. Reports only ever move a task forward.
"""
from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import Optional

from scheduler.messages import (Assignments, Heartbeat, HeartbeatAck, Register, RegisterAck,
                                SessionInvalid, StatusReport)
from scheduler.model import Resources, Task, TaskState, TaskStatus
from scheduler.runtime import Runtime

REGISTER_RETRY_TICKS = 10
STEPS_BEFORE_START = (TaskState.ACCEPTED, TaskState.PREPARING, TaskState.READY)
# Members as module constants for the per-tick paths (an Enum class attribute
# lookup costs about two global reads on CPython 3.11).
_READY, _STARTING, _RUNNING = TaskState.READY, TaskState.STARTING, TaskState.RUNNING
_COMPLETE, _SHUTDOWN = TaskState.COMPLETE, TaskState.SHUTDOWN
_TASK_ID = attrgetter("id")


@dataclass(slots=True)
class _Local:
    task: Task
    state: TaskState
    exit_code: int = 0
    status: Optional[TaskStatus] = None     # the last status reported


class Agent:
    # A repeated Assignments message (one per heartbeat) holding the very task
    # objects the agent has leaves a settled agent settled: its next tick
    # skips the pass over the tasks, which would step none (a step depends
    # only on a task's local state and its assigned task). Tests switch this
    # off to compare with a pass after every Assignments message.
    skip_settled_passes = True
    # A tick before the next heartbeat or registration retry is due, with no
    # task to step, nothing to report, nothing received since the last tick
    # and the runtime's next start or exit not yet due (a runtime that keeps
    # the bound next_due_ticks) would do nothing: it returns at once. Most
    # ticks are such. Tests switch this off to compare with full ticks.
    skip_quiet_ticks = True

    def __init__(self, node_id: str, hostname: str, runtime: Runtime, role: int = 0,
                 resources: Resources = Resources(), labels: tuple = (), address: str = "",
                 heartbeat_period_ticks: int = 50) -> None:
        self.node_id = node_id
        self.hostname = hostname
        self.runtime = runtime
        self.role = role
        self.resources = resources
        self.labels = labels
        self.address = address
        self.heartbeat_period_ticks = heartbeat_period_ticks
        self.session_id = 0
        self.last_register_tick = -REGISTER_RETRY_TICKS
        self.last_heartbeat_tick = 0
        self.tasks: dict[str, _Local] = {}
        self.secrets: dict[str, bytes] = {}
        self.configs: dict[str, bytes] = {}
        self.changed: dict[str, TaskStatus] = {}
        # Task states sent but not yet acknowledged (latest per task), and the
        # updates the last heartbeat (number ``beat``) carried.
        self.unacked: dict[str, TaskStatus] = {}
        self.beat = 0
        self.beat_updates: tuple = ()
        self.plain_heartbeat: Optional[Heartbeat] = None   # the last heartbeat without updates
        # The set of assignments held: its session and its results_in number.
        self.assignments_session = 0
        self.assignments_applied = 0
        # False once a pass over the tasks found none to step; set again by
        # anything that can give one a step (an assignment, a state move).
        # Idle ticks (most of them) then skip the pass: a tick costs less.
        self.unsettled = False
        # The tick before which a tick does nothing, as far as the agent's own
        # state goes (0: the next tick must run); see skip_quiet_ticks.
        self.quiet_until_ticks = 0
        self.runtime_with_bound = runtime if hasattr(runtime, "next_due_ticks") else None

    # ---------------------------------------------------------- inbound
    def receive(self, message: object, now_ticks: int) -> None:
        # Most frequent first: the answer to every heartbeat.
        if isinstance(message, HeartbeatAck):
            # The host's sign of life from the leader; it may also acknowledge
            # the updates of our last heartbeat (not a newer state since).
            if message.beat and message.beat == self.beat and message.session_id == self.session_id:
                unacked = self.unacked
                for task_id, status in self.beat_updates:
                    if unacked.get(task_id) is status:
                        del unacked[task_id]
                self.beat_updates = ()
            return   # nothing for the next tick to do
        self.quiet_until_ticks = 0   # what follows may give the next tick work
        if isinstance(message, Assignments):
            if message.session_id < self.session_id or not self.session_id:
                return   # from a session we already left
            if message.session_id == self.assignments_session and \
                    message.results_in <= self.assignments_applied:
                return   # not newer than the set held: a duplicate, or overtaken by a newer one
            # A newer session than we know: our later Register was accepted and
            # its RegisterAck is still on its way (links reorder).
            self.session_id = message.session_id
            self.assignments_session = message.session_id
            self.assignments_applied = message.results_in
            if not self.skip_settled_passes:
                self.unsettled = True
            assigned = dict(zip(map(_TASK_ID, message.tasks), message.tasks))
            gone = self.tasks.keys() - assigned.keys()
            if gone:
                for task_id in sorted(gone):
                    self.runtime.stop(task_id, now_ticks)
                    del self.tasks[task_id]
                    # Not ours any more (the store knows it ended, or moved or
                    # deleted it): its state needs no acknowledgement.
                    self.unacked.pop(task_id, None)
            for task_id, task in assigned.items():
                local = self.tasks.get(task_id)
                if local is None:
                    self.unsettled = True
                    local = self.tasks[task_id] = _Local(task, max(task.status.state, TaskState.ASSIGNED))
                    if TaskState.ASSIGNED < local.state < TaskState.COMPLETE:
                        # The store says it was started here, but this agent does
                        # not run it (it restarted): report it lost so it is replaced.
                        self._move(local, TaskState.FAILED if task.desired_state <= TaskState.RUNNING
                                   else TaskState.SHUTDOWN, now_ticks, "task lost: agent restarted")
                elif local.task is not task:
                    local.task = task
                    self.unsettled = True
            # (No new dicts when there were none and are none: the common case.)
            if message.secrets or self.secrets:
                self.secrets = {s.name: s.data for s in message.secrets}
            if message.configs or self.configs:
                self.configs = {c.name: c.data for c in message.configs}
        elif isinstance(message, RegisterAck):
            if message.session_id < self.session_id:
                return   # an older registration's answer arriving late
            self.session_id = message.session_id
            if self.assignments_session != message.session_id:
                # Sets are numbered per session: none held in this one yet.
                self.assignments_session = self.assignments_applied = 0
            self.heartbeat_period_ticks = message.heartbeat_period_ticks
            self.last_heartbeat_tick = now_ticks
            # A new session (new leader, or we were declared down): report
            # every task's state again, since reports in flight may be lost.
            for task_id, local in self.tasks.items():
                if local.status is not None:
                    self.changed[task_id] = local.status
        elif isinstance(message, SessionInvalid):
            self.session_id = 0
            self.assignments_session = self.assignments_applied = 0
        else:
            raise TypeError(f"agent cannot handle {type(message).__name__}")

    def crash(self) -> None:
        """The node's process died: everything local is lost."""
        stop_all = getattr(self.runtime, "stop_all", None)
        if stop_all is not None:
            stop_all()
        self.tasks.clear()
        self.changed.clear()
        self.unacked.clear()
        self.beat_updates = ()
        self.session_id = 0
        self.assignments_session = self.assignments_applied = 0
        self.quiet_until_ticks = 0

    # --------------------------------------------------------- outbound
    def tick(self, now_ticks: int) -> list[object]:
        if now_ticks < self.quiet_until_ticks:
            runtime = self.runtime_with_bound
            if runtime is not None and now_ticks < runtime.next_due_ticks and self.skip_quiet_ticks:
                return []
        out: list[object] = []
        if not self.session_id:
            if now_ticks - self.last_register_tick >= REGISTER_RETRY_TICKS:
                self.last_register_tick = now_ticks
                out.append(Register(self.node_id, self.hostname, self.role, self.resources, self.labels,
                                    self.address))
            self.quiet_until_ticks = self.last_register_tick + REGISTER_RETRY_TICKS
            return out
        heartbeat_due = now_ticks - self.last_heartbeat_tick >= self.heartbeat_period_ticks
        if heartbeat_due:
            self.last_heartbeat_tick = now_ticks
        for event in self.runtime.poll(now_ticks):
            local = self.tasks.get(event.task_id)
            if local is not None and event.state > local.state:
                local.exit_code = event.exit_code
                self._move(local, event.state, now_ticks, event.message, event.exit_code)
        if self.unsettled:
            self._step_tasks(now_ticks)
        changed = self.changed
        if heartbeat_due:
            # The heartbeat carries every state not acknowledged yet (this
            # tick's changes included; bounded by the node's tasks).
            unacked = self.unacked
            if changed:
                unacked.update(changed)
                self.changed = {}
            held = self.assignments_applied if self.assignments_session == self.session_id else 0
            if unacked:
                self.beat += 1
                self.beat_updates = tuple(sorted(unacked.items()))
                out.append(Heartbeat(self.node_id, self.session_id, held, self.beat_updates,
                                     self.beat))
            else:
                # Most heartbeats: nothing to acknowledge (no number), the same
                # message until the session or the set held changes. Messages
                # are frozen: one object serves them all (building one costs ~1 us).
                self.beat_updates = ()
                plain = self.plain_heartbeat
                if plain is None or plain.session_id != self.session_id or \
                        plain.assignments_applied != held:
                    plain = self.plain_heartbeat = Heartbeat(self.node_id, self.session_id, held)
                out.append(plain)
        elif changed:
            out.append(StatusReport(self.node_id, self.session_id, tuple(sorted(changed.items()))))
            self.unacked.update(changed)
            self.changed = {}
        # Nothing to do before the next heartbeat unless a task has a step to
        # make (then _step_tasks left unsettled set).
        self.quiet_until_ticks = 0 if self.unsettled else \
            self.last_heartbeat_tick + self.heartbeat_period_ticks
        return out

    def _step_tasks(self, now_ticks: int) -> None:
        """One step for every task that has one to make (in task id order)."""
        self.unsettled = False  # any _move below sets it again
        for task_id in sorted(self.tasks):
            local = self.tasks[task_id]
            desired = local.task.desired_state
            if desired > _RUNNING:
                if local.state < _COMPLETE:
                    self.runtime.stop(task_id, now_ticks)
                    self._move(local, _SHUTDOWN, now_ticks, "shutdown")
                continue
            if local.state < _READY:
                following = next(s for s in STEPS_BEFORE_START if s > local.state)
                self._move(local, following, now_ticks, following.name.lower())
            elif local.state == _READY and desired == _RUNNING:
                self._move(local, _STARTING, now_ticks, "starting")
                self.runtime.start(task_id, local.task.template, now_ticks)

    def _move(self, local: _Local, state: TaskState, now_ticks: int, message: str, exit_code: int = 0) -> None:
        assert state > local.state, f"agent {self.node_id}: {local.task.id} {local.state.name}->{state.name}"
        local.state = state
        self.unsettled = True
        err = message if state in (TaskState.FAILED, TaskState.REJECTED) else ""
        local.status = TaskStatus(state, message, err, now_ticks, exit_code)
        self.changed[local.task.id] = local.status
