"""The one shape of every leader-only controller (swarmkit's orchestrators,
allocator, scheduler, dispatcher): started with a consistent view of the
store, fed watch events that only mark things dirty, and ticked to reconcile
the dirty set into store ops that the manager proposes through Raft. A
component never waits: a decision goes out as a proposal and comes back as
events once committed.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from operator import attrgetter, lt
from typing import Iterable

from scheduler.config import ManagerConfig
from scheduler.model import TaskState
from scheduler.store import Event, Store


# Field getters for scanning bulk events at C speed (map/any/set over them).
TASK_ID = attrgetter("id")
SERVICE_ID = attrgetter("service_id")
NODE_ID = attrgetter("node_id")
DESIRED = attrgetter("desired_state")
STATE = attrgetter("status.state")
NETWORKS = attrgetter("networks")
DESIRED_PAST_RUNNING = partial(lt, TaskState.RUNNING)   # f(state) == (RUNNING < state)


@dataclass(slots=True)
class Context:
    store: Store
    config: ManagerConfig
    now_ticks: int = 0


class Component:
    name = "component"
    # Components return at once from a tick with nothing marked dirty
    # (swarmkit's controllers react to store events; most ticks have none).
    # Tests switch this off to compare with the full pass on every tick.
    skip_idle_ticks = True
    # True for a component whose tick, once it proposed nothing, would again
    # propose nothing and change nothing until the manager feeds it something
    # (store events, its proposal's result, a start): what it decides depends
    # on the store and those inputs, not on the clock. The manager skips such
    # components while nothing was fed to them (Manager.skip_quiet_components).
    ticks_only_after_input = False

    def start(self, context: Context) -> None:
        """Leadership gained: full reconcile on the next tick."""

    def on_events(self, events: Iterable[Event]) -> None:
        """Mark dirty what the committed events touched."""

    def tick(self, context: Context) -> list:
        """Return store ops to propose as one transaction (empty: nothing)."""
        return []

    def on_result(self, ok: bool, context: Context) -> None:
        """The component's last proposal applied (ok) or failed/was lost: on
        failure, rebuild from the store (decisions were based on a stale view)."""
        if not ok:
            self.start(context)
