"""Dispatcher (swarmkit manager/dispatcher): the leader's side of the
worker sessions.

* Registration creates or refreshes the Node object (status READY) and opens
  a session; heartbeats keep it. A node silent for ``heartbeat_period_ticks``
  x ``heartbeat_grace_multiplier`` (swarmkit: 5 s x 3) is marked DOWN, and the
  orchestrators replace its tasks. A new leader gives every node a fresh
  grace period, as swarmkit's dispatcher does on start.
* Status reports (and the task states a heartbeat carries) are buffered
  (bounded; overflow counted) and written back as one transaction per tick of
  forward-only :class:`ReportStatus` ops. A heartbeat's states are
  acknowledged in its HeartbeatAck once all are buffered: the agent stops
  repeating them. A proposal that fails queues them again; a lost leadership
  ends the sessions, and agents report every state again to the new leader.
* Assignments: each node gets its full task list (and only the secrets and
  configs those tasks use) whenever what it must run changed, numbered
  (swarmkit's AssignmentsMessage.ResultsIn). swarmkit sends a complete set
  once per session on a stream and then only changes; our links can lose
  messages with no stream underneath, so a heartbeat says which set the agent
  holds, and the node's set is sent again when that is not the last one sent
  (else the heartbeat gets a small HeartbeatAck, swarmkit's HeartbeatResponse).
"""
from __future__ import annotations

from typing import Iterable

from operator import ne

from scheduler.component import NODE_ID, STATE, TASK_ID, Component, Context
from scheduler.messages import (Assignments, Heartbeat, HeartbeatAck, Register, RegisterAck,
                                SessionInvalid, StatusReport)
from scheduler.model import Node, NodeRole, NodeStatus, TaskState, evolve
from scheduler.store import Create, Event, ReportStatus, Update

# Members as module constants for _assign's per-task tests (an Enum class
# attribute lookup costs about two global reads on CPython 3.11).
_ASSIGNED, _RUNNING, _COMPLETE = TaskState.ASSIGNED, TaskState.RUNNING, TaskState.COMPLETE


SESSION_TERM_SHIFT = 32  # session ids: term << 32 | registrations in that term


class Dispatcher(Component):
    name = "dispatcher"
    # Tests switch this off to compare with a full expiry scan on every tick.
    skip_idle_expiry_scans = True

    def __init__(self, term: int = 0) -> None:
        self.sessions: dict[str, int] = {}           # node id -> session id
        self.last_heartbeat: dict[str, int] = {}     # node id -> tick
        # Session ids are unique across leaderships: the leader's term in the
        # high bits. swarmkit draws random ids; ours stay deterministic. With
        # every leader counting from 1, a new leader's ids repeated a deposed
        # one's, so the deposed leader's late messages could pass an agent's
        # session check, and the agent ignored a new leader's lower ids.
        self.session_counter = term << SESSION_TERM_SHIFT
        self.registrations: dict[str, Register] = {}
        self.reports: dict[str, tuple] = {}          # task id -> (node id, status), latest wins
        self.proposed_reports: dict[str, tuple] = {} # reports in the proposal in flight
        self.outbox: list[tuple[str, object]] = []
        self.sent: dict[str, tuple] = {}             # node id -> fingerprint of the last assignments
        self.sent_results: dict[str, int] = {}       # node id -> results_in of the last assignments
        self.results_counter = 0                     # numbers the sets sent (never goes back)
        self.plain_acks: dict[str, HeartbeatAck] = {}   # node id -> its last ack without a beat
        self.dirty_nodes: set[str] = set()
        # The oldest heartbeat entry plus the timeout, as of the last look: a
        # lower bound on the first tick at which any node can be due to expire,
        # since entries only ever move forward (see tick).
        self.expiry_due_ticks = -1
        self.started = False
        self.stats = {"reports_dropped_overflow": 0, "reports_unknown_session": 0,
                      "nodes_marked_down": 0, "assignments_resent": 0}

    def start(self, context: Context) -> None:
        if not self.started:
            self.started = True
            # Fresh grace for every node known to the store.
            for node_id in context.store.objects["node"]:
                self.last_heartbeat[node_id] = context.now_ticks
        self.dirty_nodes = set(context.store.objects["node"])
        self.sent.clear()

    # ------------------------------------------------------------ messages
    def handle(self, message: object, context: Context) -> None:
        now = context.now_ticks
        # Most frequent first: a heartbeat and a status report from every node
        # every heartbeat period; registrations are rare.
        if isinstance(message, Heartbeat):
            node_id = message.node_id
            if self.sessions.get(node_id) != message.session_id:
                self.outbox.append((node_id, SessionInvalid(node_id)))
                return
            self.last_heartbeat[node_id] = now
            # The task states it carries, acknowledged only if all were taken.
            beat = 0
            if message.updates and self._take_reports(node_id, message.updates, context):
                beat = message.beat
            applied = message.assignments_applied
            if applied == self.sent_results.get(node_id):
                if beat:
                    ack = HeartbeatAck(node_id, message.session_id, beat)
                else:
                    # Most heartbeats: an ack that acknowledges no states, the
                    # same for the whole session. Messages are frozen: one
                    # object serves them all (building one costs ~0.7 us).
                    ack = self.plain_acks.get(node_id)
                    if ack is None or ack.session_id != message.session_id:
                        ack = self.plain_acks[node_id] = HeartbeatAck(node_id, message.session_id)
                self.outbox.append((node_id, ack))
                return
            # The agent does not hold the last set sent: it was lost, or is
            # still on its way (then this resend is redundant, and harmless).
            # Send the full set again (bounded by the node's tasks) under a new
            # number, above the agent's if it holds a number this dispatcher
            # never sent (a former leader's set under a colliding session id).
            self.stats["assignments_resent"] += 1
            if applied > self.results_counter:
                self.results_counter = applied
            self.sent.pop(node_id, None)
            self.dirty_nodes.add(node_id)
        elif isinstance(message, StatusReport):
            node_id = message.node_id
            if self.sessions.get(node_id) != message.session_id:
                self.stats["reports_unknown_session"] += 1
                self.outbox.append((node_id, SessionInvalid(node_id)))
                return
            self.last_heartbeat[node_id] = now
            self._take_reports(node_id, message.updates, context)
        elif isinstance(message, Register):
            self.session_counter += 1
            self.sessions[message.node_id] = self.session_counter
            self.last_heartbeat[message.node_id] = now
            self.registrations[message.node_id] = message
            self.sent.pop(message.node_id, None)
            self.dirty_nodes.add(message.node_id)
            self.outbox.append((message.node_id, RegisterAck(message.node_id, self.session_counter,
                                                             context.config.heartbeat_period_ticks)))
        else:
            raise TypeError(f"dispatcher cannot handle {type(message).__name__}")

    def _take_reports(self, node_id: str, updates: tuple, context: Context) -> bool:
        """Buffer a node's task states (latest per task wins); False if the
        bounded buffer had to drop any."""
        reports = self.reports
        buffer_max = context.config.status_buffer_max
        taken = True
        for task_id, status in updates:
            if len(reports) >= buffer_max and task_id not in reports:
                self.stats["reports_dropped_overflow"] += 1
                taken = False
                continue
            reports[task_id] = (node_id, status)
        return taken

    def on_events(self, events: Iterable[Event]) -> None:
        for event in events:
            if event.action == "create-many":
                continue   # new tasks are NEW or PENDING: not yet any agent's business
            if event.action == "update-many":
                news, olds = event.obj, event.old
                if max(map(STATE, news)) < TaskState.ASSIGNED and not any(map(ne, map(NODE_ID, news),
                                                                              map(NODE_ID, olds))):
                    continue
                self.dirty_nodes.update(map(NODE_ID, news))
                self.dirty_nodes.update(map(NODE_ID, olds))
                self.dirty_nodes.discard("")
                continue
            if event.kind == "task":
                task, old = event.obj, event.old
                if task.status.state < TaskState.ASSIGNED and (old is None or old.node_id == task.node_id):
                    continue   # not yet the node's business (agents only see ASSIGNED and later)
                if task.node_id:
                    self.dirty_nodes.add(task.node_id)
                if old is not None and old.node_id and old.node_id != task.node_id:
                    self.dirty_nodes.add(old.node_id)
            elif event.kind in ("secret", "config"):
                self.dirty_nodes.update(self.sessions)

    # ---------------------------------------------------------------- tick
    def tick(self, context: Context) -> list:
        store = context.store
        now = context.now_ticks
        ops: list = []
        # Registrations -> Node objects.
        registrations = self.registrations
        if registrations:
            for node_id in sorted(registrations):
                message = registrations[node_id]
                node = store.get("node", node_id)
                if node is None:
                    ops.append(Create(Node(node_id, message.hostname, NodeRole(message.role),
                                           status=NodeStatus.READY, labels=message.labels,
                                           resources=message.resources, address=message.address)))
                elif node.status != NodeStatus.READY or node.resources != message.resources or \
                        node.address != message.address:
                    ops.append(Update(evolve(node, status=NodeStatus.READY, status_message="",
                                             resources=message.resources, address=message.address),
                                      node.version))
            registrations.clear()
        # Heartbeat expiry -> DOWN (a node refreshed by a registration above is not).
        # The scan changes something only for a store node without a heartbeat
        # entry yet, or one silent for longer than the timeout; when every node
        # has an entry and the oldest entry of all is recent, it would do
        # nothing (most ticks): skip it. Entries only move forward (heartbeats,
        # registrations and start() write the current tick; new entries get the
        # current tick), so the oldest entry plus the timeout, once computed, is
        # a lower bound until the next look (ticks never go back): the min() is
        # taken again only past it.
        last_heartbeat = self.last_heartbeat
        if not self.skip_idle_expiry_scans or now > self.expiry_due_ticks or \
                not last_heartbeat.keys() >= store.objects["node"].keys():
            timeout = context.config.heartbeat_timeout_ticks
            if not self.skip_idle_expiry_scans or not last_heartbeat or \
                    now - min(last_heartbeat.values()) > timeout or \
                    not last_heartbeat.keys() >= store.objects["node"].keys():
                self._expire_silent_nodes(store, ops, now, timeout)
            self.expiry_due_ticks = min(last_heartbeat.values()) + timeout if last_heartbeat else -1
        # Buffered status reports -> one transaction.
        reports = self.reports
        if reports:
            self.proposed_reports = dict(reports)
            for task_id in sorted(reports):
                node_id, status = reports[task_id]
                task = store.get("task", task_id)
                if task is None or task.node_id != node_id or status.state <= task.status.state:
                    continue   # unknown, moved, or stale: the store would drop it anyway
                ops.append(ReportStatus(task_id, node_id, status))
            reports.clear()
        elif self.proposed_reports:
            self.proposed_reports = {}
        # Assignments for nodes whose work changed.
        if self.dirty_nodes:
            for node_id in sorted(self.dirty_nodes):
                session = self.sessions.get(node_id)
                if session is None:
                    continue
                self._assign(node_id, session, store)
            self.dirty_nodes = set()
        return ops

    def _expire_silent_nodes(self, store, ops: list, now: int, timeout: int) -> None:
        """Mark DOWN every READY node silent for more than ``timeout`` ticks
        (a node first seen here gets its grace period from now)."""
        refreshed = {op.obj.id for op in ops if type(op) is Update} if ops else ()
        last_heartbeat = self.last_heartbeat
        down = NodeStatus.DOWN
        for node in store.list("node"):
            if node.status == down or node.id in refreshed:
                continue
            last = last_heartbeat.setdefault(node.id, now)
            if now - last > timeout:
                self.sessions.pop(node.id, None)
                self.stats["nodes_marked_down"] += 1
                ops.append(Update(evolve(node, status=NodeStatus.DOWN, status_message="heartbeat failure"),
                                  node.version))

    def on_result(self, ok: bool, context: Context) -> None:
        """A failed proposal (a node update conflicted, or it was lost) must
        not lose the agents' reports it carried: queue them again unless a
        newer report for the task arrived meanwhile."""
        if not ok:
            for task_id, report in self.proposed_reports.items():
                self.reports.setdefault(task_id, report)
            self.start(context)
        self.proposed_reports = {}

    def _assign(self, node_id: str, session: int, store) -> None:
        tasks = []
        for task in store.tasks_on_node(node_id).values():
            state = task.status.state
            if state < _ASSIGNED:
                continue
            if state >= _COMPLETE and task.desired_state > _RUNNING:
                continue
            tasks.append(task)
        tasks.sort(key=TASK_ID)
        # What the agent acts on: the task set and desired states, and the
        # secrets and configs those tasks name (their versions).
        fingerprint = tuple((t.id, int(t.desired_state)) for t in tasks)
        # Only the secrets and configs these tasks name (none to look for when
        # the store holds none, or no task names any: the common case).
        secrets: tuple = ()
        configs: tuple = ()
        if store.objects["secret"]:
            secret_names = {name for t in tasks for name in t.template.secrets}
            if secret_names:
                secrets = tuple(s for s in store.list("secret") if s.name in secret_names)
        if store.objects["config"]:
            config_names = {name for t in tasks for name in t.template.configs}
            if config_names:
                configs = tuple(c for c in store.list("config") if c.name in config_names)
        if secrets or configs:
            fingerprint = (fingerprint, tuple((s.id, s.version) for s in secrets),
                           tuple((c.id, c.version) for c in configs))
        if self.sent.get(node_id) == fingerprint:
            return
        self.sent[node_id] = fingerprint
        self.results_counter += 1
        self.sent_results[node_id] = self.results_counter
        self.outbox.append((node_id, Assignments(node_id, session, tuple(tasks), secrets, configs,
                                                 self.results_counter)))

    def take_outbox(self) -> list[tuple[str, object]]:
        out, self.outbox = self.outbox, []
        return out
