"""Manager tunables, all in ticks (see model.TICKS_PER_SECOND) and counts."""
from __future__ import annotations

from dataclasses import dataclass

from scheduler.errors import InvalidSpec
from scheduler.model import TICKS_PER_SECOND


@dataclass(frozen=True, slots=True)
class ManagerConfig:
    # Dispatcher: swarmkit's 5 s heartbeat period and a grace of 3 periods.
    heartbeat_period_ticks: int = 5 * TICKS_PER_SECOND
    heartbeat_grace_multiplier: int = 3
    # Task reaper: swarmkit's default TaskHistoryRetentionLimit.
    task_history_limit: int = 5
    # Scheduler: nodes where a service failed >= failures_max times within the
    # window go last (swarmkit maxFailures=5, monitorFailures=5 min).
    failure_window_ticks: int = 300 * TICKS_PER_SECOND
    failures_max: int = 5
    # A proposal not applied within this many ticks is presumed lost; the
    # component that made it resynchronises from the store.
    proposal_timeout_ticks: int = 50
    # A new leader whose host never reports the barrier index as applied
    # starts its components after this many ticks anyway (counted).
    leader_barrier_timeout_ticks: int = 20
    # Bound on buffered status updates waiting for the next dispatcher flush.
    status_buffer_max: int = 200_000
    # Optional rebalancing when a node joins or returns (off by default, as in
    # Swarm; Shoal moves tasks with the update machinery so availability holds).
    rebalance_on_node_join: bool = False

    def __post_init__(self) -> None:
        for name in ("heartbeat_period_ticks", "heartbeat_grace_multiplier", "proposal_timeout_ticks",
                     "status_buffer_max", "leader_barrier_timeout_ticks"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidSpec(f"{name} must be a positive integer, got {value!r}")
        for name in ("task_history_limit", "failure_window_ticks", "failures_max"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise InvalidSpec(f"{name} must be a non-negative integer, got {value!r}")

    @property
    def heartbeat_timeout_ticks(self) -> int:
        return self.heartbeat_period_ticks * self.heartbeat_grace_multiplier
