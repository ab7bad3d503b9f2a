"""The agent's runtime interface and a simulated runtime.

A real process runtime comes with the daemons; the simulated one runs in
ticks: a start takes ``start_latency_ticks`` (drawn from an injected
``random.Random``), commands can exit by themselves, and failures can be
injected. Commands understood by the simulation:

* ``("exit", "N", "AFTER")``: run for AFTER ticks (default 1) then exit with code N;
* ``("fail-on-start",)``: the start fails (task FAILED, exit code 126);
* anything else runs until stopped.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

from scheduler.model import TaskState, TaskTemplate


_NEVER = float("inf")   # no start or exit scheduled


@dataclass(frozen=True, slots=True)
class RuntimeEvent:
    task_id: str
    state: TaskState        # RUNNING, COMPLETE or FAILED
    exit_code: int = 0
    message: str = ""


class Runtime(Protocol):
    def start(self, task_id: str, template: TaskTemplate, now_ticks: int) -> None: ...

    def stop(self, task_id: str, now_ticks: int) -> None: ...

    def poll(self, now_ticks: int) -> list[RuntimeEvent]: ...

    # Optional: ``next_due_ticks``, a lower bound on the first tick at which
    # poll() can return an event. An agent with nothing else to do skips the
    # polls before it (Agent.skip_quiet_ticks); without it, every tick polls.


class SimulatedRuntime:
    # Tests switch this off to compare with a full pass on every poll.
    skip_idle_polls = True

    def __init__(self, rng: random.Random, start_latency_ticks: tuple[int, int] = (1, 3)) -> None:
        low, high = start_latency_ticks
        assert 0 <= low <= high, f"bad latency range {start_latency_ticks}"
        self.rng = rng
        self.latency = (low, high)
        self.starting: dict[str, tuple[int, TaskTemplate]] = {}   # task id -> (ready tick, template)
        self.running: dict[str, int] = {}                          # task id -> exit tick (0 = never)
        self.exit_codes: dict[str, int] = {}
        self.failures: list[RuntimeEvent] = []
        self.fail_starts_left = 0
        self.started_total = 0
        # A lower bound on the earliest tick at which a start completes or a
        # running task exits: a poll before it (with no injected failure)
        # would find nothing, so it returns at once. Removals (stop, crash)
        # leave it a valid bound; a full poll recomputes it exactly.
        self.next_due_ticks: float = _NEVER

    def start(self, task_id: str, template: TaskTemplate, now_ticks: int) -> None:
        if task_id in self.starting or task_id in self.running:
            return
        self.started_total += 1
        ready_at = now_ticks + self.rng.randint(*self.latency)
        self.starting[task_id] = (ready_at, template)
        if ready_at < self.next_due_ticks:
            self.next_due_ticks = ready_at

    def stop(self, task_id: str, now_ticks: int) -> None:
        self.starting.pop(task_id, None)
        self.running.pop(task_id, None)

    def fail_task(self, task_id: str, exit_code: int = 137) -> bool:
        """Kill a running task as if it crashed (reported on the next poll)."""
        if self.running.pop(task_id, None) is None:
            return False
        self.failures.append(RuntimeEvent(task_id, TaskState.FAILED, exit_code, "task: non-zero exit"))
        self.next_due_ticks = -_NEVER   # due at once (a full poll recomputes the bound)
        return True

    def fail_next_starts(self, count: int) -> None:
        self.fail_starts_left += count

    def stop_all(self) -> None:
        self.starting.clear()
        self.running.clear()

    def poll(self, now_ticks: int) -> list[RuntimeEvent]:
        if self.skip_idle_polls and now_ticks < self.next_due_ticks and not self.failures:
            return []   # most ticks: nothing starts or exits yet
        events, self.failures = self.failures, []
        for task_id in sorted(self.starting):
            ready_at, template = self.starting[task_id]
            if now_ticks < ready_at:
                continue
            del self.starting[task_id]
            command = template.command
            if command[0] == "fail-on-start" or self.fail_starts_left:
                if self.fail_starts_left:
                    self.fail_starts_left -= 1
                events.append(RuntimeEvent(task_id, TaskState.FAILED, 126, "starting container failed"))
                continue
            exit_after = 0
            if command[0] == "exit":
                self.exit_codes[task_id] = int(command[1]) if len(command) > 1 and command[1].isdigit() else 0
                exit_after = int(command[2]) if len(command) > 2 and command[2].isdigit() else 1
            self.running[task_id] = now_ticks + exit_after if exit_after else 0
            events.append(RuntimeEvent(task_id, TaskState.RUNNING))
        for task_id in sorted(self.running):
            exit_at = self.running[task_id]
            if exit_at and now_ticks >= exit_at:
                del self.running[task_id]
                code = self.exit_codes.pop(task_id, 0)
                events.append(RuntimeEvent(task_id, TaskState.COMPLETE if code == 0 else TaskState.FAILED, code,
                                           "finished" if code == 0 else "task: non-zero exit"))
        self.next_due_ticks = min((ready_at for ready_at, _ in self.starting.values()), default=_NEVER)
        for exit_at in self.running.values():
            if exit_at and exit_at < self.next_due_ticks:
                self.next_due_ticks = exit_at
        return events
