"""The Manager facade: one per manager node, engine-agnostic.

The host (the chaos simulator, the local harness, later the daemon) drives it:

* ``apply(index, data)`` for every committed Raft entry, in order, on every
  manager (returns the store's :class:`ApplyResult`);
* ``become_leader(now_ticks, barrier_index, term)`` / ``become_follower()`` when
  Raft leadership changes. Leader components start once the host has applied
  ``barrier_index`` (the last index of the log when leadership was gained),
  so they never act on a stale view (swarmkit waits likewise). A host whose
  log also carries other entries reports their indexes with
  ``note_applied(index)`` (or ``tick(now, applied_index=...)``); without it
  the components start after ``leader_barrier_timeout_ticks``;
* ``tick(now_ticks)`` returns proposals (bytes) to submit to Raft;
* ``handle_agent_message(msg, now_ticks)`` / ``take_agent_messages()`` carry
  the dispatcher's traffic with the workers' agents;
* ``api`` builds client proposals (create/update/scale/...); ``reads`` answers
  ls/ps/inspect/convergence from the local store on any manager.

Each component has at most one proposal in flight: it is not ticked again
until that proposal applies (or is presumed lost after
``proposal_timeout_ticks``, then the component resynchronises).
"""
from __future__ import annotations

from random import Random  # seeded instances only: never the global generator
from typing import Optional

from scheduler.allocator import Allocator
from scheduler.component import Component, Context
from scheduler.config import ManagerConfig
from scheduler.dispatcher import Dispatcher
from scheduler.enforcer import ConstraintEnforcer
from scheduler.errors import NotLeader
from scheduler.model import INGRESS_NETWORK
from scheduler.orchestrator import Orchestrator
from scheduler.reaper import TaskReaper
from scheduler.rebalancer import Rebalancer
from scheduler.scheduler import Scheduler
from scheduler.store import ApplyResult, Create, Store, Transaction
from scheduler.updater import Updater

API_RESULTS_KEPT_MAX = 4096


class Manager:
    # While nothing was fed to the components since a tick in which every
    # component marked ticks_only_after_input proposed nothing (or waited on
    # its proposal), only the others (dispatcher, orchestrator, updater: they
    # have clock-driven work) are ticked. Tests switch this off to compare
    # with ticking every component every tick.
    skip_quiet_components = True

    def __init__(self, manager_id: str, config: ManagerConfig = ManagerConfig(), seed: int = 0,
                 store: Optional[Store] = None) -> None:
        from scheduler.api import ClientAPI, Reads
        self.id = manager_id
        self.config = config
        self.store = store if store is not None else Store()
        self.rng = Random(seed)
        self.context = Context(self.store, config, 0)
        self.is_leader = False
        self.started = False
        self.barrier_index = 0
        self.components: list[Component] = []
        self.clocked_components: list[Component] = []   # those not ticks_only_after_input
        # Inputs fed to the components (events, results, starts), counted; and
        # the count when the input-driven ones last had nothing to propose.
        self.inputs = 0
        self.quiet_inputs = -1
        self.dispatcher: Optional[Dispatcher] = None
        self.sequence = 0
        self.in_flight: dict[int, tuple[Component, int]] = {}
        self.busy: set[str] = set()
        self.api_results: dict[int, ApplyResult] = {}
        self.log_applied_index = 0      # highest Raft index applied by the host, ours or not
        self.leader_since_tick = 0
        self.api = ClientAPI(self)
        self.reads = Reads(self.store)
        self.stats = {"proposals": 0, "proposal_timeouts": 0, "conflicts": 0, "barrier_timeouts": 0}

    # ------------------------------------------------------------- entries
    def note_applied(self, index: int) -> None:
        """The host applied Raft entry ``index`` to another state machine (a
        kv entry, the new term's no-op): lets the leader barrier pass."""
        if type(index) is int and index > self.log_applied_index:
            self.log_applied_index = index

    def apply(self, index: int, data: bytes) -> ApplyResult:
        self.note_applied(index)
        result = self.store.apply(index, data)
        if result.proposer == self.id:
            if result.origin == "api":
                self.api_results[result.sequence] = result
                if len(self.api_results) > API_RESULTS_KEPT_MAX:
                    del self.api_results[min(self.api_results)]
            elif self.is_leader and result.sequence in self.in_flight:
                component, _ = self.in_flight.pop(result.sequence)
                self.busy.discard(component.name)
                if not result.ok:
                    self.stats["conflicts"] += 1
                if self.started:
                    self.inputs += 1
                    component.on_result(result.ok, self.context)
        if self.started and result.events:
            self.inputs += 1
            for component in self.components:
                component.on_events(result.events)
        return result

    def snapshot(self) -> bytes:
        return self.store.snapshot()

    def restore(self, data: bytes) -> None:
        self.store.restore_into(data)
        if self.started:
            self.inputs += 1
            for component in self.components:
                component.start(self.context)

    # ---------------------------------------------------------- leadership
    def become_leader(self, now_ticks: int, barrier_index: int = 0, term: int = 0) -> None:
        """``term``: the Raft term of this leadership (any number that grows
        with each leadership will do); it keeps agent session ids unique
        across leaders (see Dispatcher)."""
        if self.is_leader:
            return
        self.is_leader = True
        self.started = False
        self.barrier_index = barrier_index
        self.leader_since_tick = now_ticks
        self.context.now_ticks = now_ticks
        self.dispatcher = Dispatcher(term)
        self.components = [self.dispatcher, Orchestrator(), Allocator(), Scheduler(), Updater(),
                           ConstraintEnforcer(), TaskReaper()]
        if self.config.rebalance_on_node_join:
            self.components.append(Rebalancer())
        self.clocked_components = [c for c in self.components if not c.ticks_only_after_input]
        self.quiet_inputs = -1
        self.in_flight.clear()
        self.busy.clear()

    def become_follower(self) -> None:
        self.is_leader = False
        self.started = False
        self.components = []
        self.clocked_components = []
        self.dispatcher = None
        self.in_flight.clear()
        self.busy.clear()

    # ---------------------------------------------------------------- tick
    def tick(self, now_ticks: int, applied_index: Optional[int] = None) -> list[bytes]:
        """``applied_index``: the host's Raft applied index, when it applies
        entries that are not ours (same as calling note_applied)."""
        self.context.now_ticks = now_ticks
        if applied_index is not None:
            self.note_applied(applied_index)
        if not self.is_leader:
            return []
        proposals: list[bytes] = []
        if not self.started:
            applied = max(self.store.applied_index, self.log_applied_index)
            if applied < self.barrier_index:
                if now_ticks - self.leader_since_tick < self.config.leader_barrier_timeout_ticks:
                    return []
                # A host that never reports other entries' indexes: start
                # anyway after the timeout (counted). Decisions on a stale view
                # fail their version checks; duplicates are cleaned up.
                self.stats["barrier_timeouts"] += 1
            self.started = True
            self.inputs += 1
            for component in self.components:
                component.start(self.context)
            if self.store.get("network", INGRESS_NETWORK.id) is None:
                proposals.append(self._propose_ops("bootstrap", [Create(INGRESS_NETWORK)], None))
        context = self.context
        if self.in_flight:
            for sequence, (component, proposed_at) in list(self.in_flight.items()):
                if now_ticks - proposed_at > self.config.proposal_timeout_ticks:
                    del self.in_flight[sequence]
                    self.busy.discard(component.name)
                    self.stats["proposal_timeouts"] += 1
                    self.inputs += 1
                    component.on_result(False, context)
        busy = self.busy
        inputs = self.inputs
        if inputs == self.quiet_inputs and self.skip_quiet_components:
            # (The skipped ones would propose nothing: the order of the
            # proposals of the others is the same as with all ticked.)
            for component in self.clocked_components:
                if busy and component.name in busy:
                    continue
                ops = component.tick(context)
                if ops:
                    proposals.append(self._propose_ops(component.name, ops, component))
            return proposals
        quiet = True
        for component in self.components:
            if busy and component.name in busy:
                continue   # (its result is an input: it is ticked again after it)
            ops = component.tick(context)
            if ops:
                proposals.append(self._propose_ops(component.name, ops, component))
                if component.ticks_only_after_input:
                    quiet = False
        if quiet:
            self.quiet_inputs = inputs
        return proposals

    def _propose_ops(self, origin: str, ops: list, component: Optional[Component]) -> bytes:
        self.sequence += 1
        self.stats["proposals"] += 1
        if component is not None:
            self.in_flight[self.sequence] = (component, self.context.now_ticks)
            self.busy.add(component.name)
        return Transaction(tuple(ops), origin, self.id, self.sequence).encode()

    def next_api_sequence(self) -> int:
        self.sequence += 1
        return self.sequence

    # -------------------------------------------------------------- agents
    def handle_agent_message(self, message: object, now_ticks: int) -> None:
        if not self.is_leader or self.dispatcher is None:
            raise NotLeader(f"manager {self.id} is not the leader; agents must talk to the leader")
        self.context.now_ticks = now_ticks
        self.dispatcher.handle(message, self.context)

    @property
    def has_agent_messages(self) -> bool:
        """Whether take_agent_messages() would return anything (a cheap test
        for hosts that poll it every tick)."""
        return self.dispatcher is not None and bool(self.dispatcher.outbox)

    def take_agent_messages(self) -> list[tuple[str, object]]:
        if self.dispatcher is None:
            return []
        return self.dispatcher.take_outbox()
