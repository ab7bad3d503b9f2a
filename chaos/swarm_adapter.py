"""Glue between the simulated cluster (chaos.cluster) and the scheduler's
Manager facade and agents (scheduler/__init__.py documents that API).

Per manager node, a ``SwarmNode`` holds the scheduler ``Manager`` (the store
applied from committed entries, leader-only components) and the node's own
``Agent`` (managers run tasks too, as in Docker Swarm).  Workers are simulated
processes running an ``Agent`` over a ``SimulatedRuntime``.

Agent traffic rides the simulated network, so partitions and crashes hit it:
agents send ``("agent", message)`` to the manager they believe leads; a
manager that does not lead answers ``("redirect", leader_id)``; the leader's
dispatcher answers with ``("dispatch", message)``.  A worker that hears
nothing for ``SILENCE_TICKS_MAX`` tries the next manager (the dispatcher
answers every heartbeat: assignments, or a HeartbeatAck); agents on manager
nodes send to the leader Raft knows, so they get only the acks that
acknowledge task states.

Scheduler time is its own tick (``scheduler.model.TICKS_PER_SECOND``) derived
from the simulator's virtual clock.  Heartbeats run at 1 s with swarmkit's
grace of 3 periods (swarmkit's default period is 5 s; shorter here so that a
60 s experiment sees dead nodes declared down and their tasks replaced).
"""
from __future__ import annotations

import random
import shlex
from dataclasses import replace
from typing import Any

from chaos.checkers.convergence import NodeView, ServiceView, StoreSample, TaskView
from chaos.experiment import ServiceOp
from chaos.sim.rng import derive_seed

SILENCE_TICKS_MAX = 20
DEFAULT_COMMAND = ("nginx", "-g", "daemon off;")


class ServiceCommandError(ValueError):
    """A service operation the scheduler's API refused before proposing it."""


def scheduler_adapter(cluster: Any) -> Any:
    try:
        from scheduler.manager import Manager  # noqa: F401
    except ImportError:
        return None
    return SwarmAdapter(cluster)


class SwarmNode:
    """What one manager node runs besides Raft: the Manager and its own Agent."""

    def __init__(self, adapter: SwarmAdapter, name: str) -> None:
        from scheduler.agent import Agent
        from scheduler.manager import Manager
        from scheduler.model import NodeRole
        from scheduler.runtime import SimulatedRuntime

        self.name = name
        seed = derive_seed(adapter.seed, "swarm", name)
        self.manager = Manager(name, adapter.config, seed=seed)
        runtime = SimulatedRuntime(random.Random(seed ^ 1))
        self.agent = Agent(name, name, runtime, int(NodeRole.MANAGER), labels=adapter.labels.get(name, ()),
                           heartbeat_period_ticks=adapter.config.heartbeat_period_ticks)
        self.last_tick = -1
        self.vip_seen: dict[str, tuple[tuple[str, int], ...]] = {}
        # The last sample's views and the store state they were taken from
        # (see SwarmAdapter.sample).
        self.sample_key: tuple[int, Any] | None = None
        self.sample_views: tuple[tuple, tuple, tuple] = ((), (), ())


class SwarmAdapter:
    def __init__(self, cluster: Any) -> None:
        from scheduler.config import ManagerConfig
        from scheduler.messages import HeartbeatAck
        from scheduler.model import TICKS_PER_SECOND

        self.cluster = cluster
        self.heartbeat_ack_type = HeartbeatAck
        # Agents on manager nodes reach the leader Raft names (no silence to
        # detect): the dispatcher's heartbeat acks, a worker host's sign of
        # life from the leader, are sent to them only when they acknowledge
        # task states.
        self.manager_names = frozenset(cluster.names[node_id] for node_id in cluster.manager_ids)
        self.seed = cluster.sim_seed
        self.ticks_per_second = TICKS_PER_SECOND
        self.config = ManagerConfig(heartbeat_period_ticks=TICKS_PER_SECOND, heartbeat_grace_multiplier=3)
        self.labels = {node.name: node.labels for node in cluster.experiment.nodes}

    # ---- time -------------------------------------------------------------------
    def now_ticks(self, now_us: int) -> int:
        return now_us * self.ticks_per_second // 1_000_000

    # ---- the manager's state machine --------------------------------------------------
    def new_manager(self, name: str) -> SwarmNode:
        return SwarmNode(self, name)

    def apply(self, swarm: SwarmNode, index: int, data: bytes) -> Any:
        return swarm.manager.apply(index, data)

    def snapshot(self, swarm: SwarmNode) -> bytes:
        return swarm.manager.snapshot()

    def restore(self, swarm: SwarmNode, data: bytes) -> None:
        swarm.manager.restore(data)

    def leadership(self, swarm: SwarmNode, ctx: Any, is_leader: bool) -> None:
        if is_leader:
            # Components start once the store has applied the whole log as of now
            # (the new term's no-op included): never act on a stale view.
            swarm.manager.become_leader(self.now_ticks(ctx.now_us), ctx.raft.log.last_index(), ctx.raft.term)
        else:
            swarm.manager.become_follower()

    def tick(self, swarm: SwarmNode, ctx: Any) -> list[bytes]:
        # Runs on every manager every Raft tick: the now_ticks arithmetic and
        # the dispatcher flush test are inlined.
        now_ticks = ctx.now_us * self.ticks_per_second // 1_000_000
        if now_ticks == swarm.last_tick:
            return []
        swarm.last_tick = now_ticks
        for message in swarm.agent.tick(now_ticks):
            self._agent_to_leader(swarm, ctx, message, now_ticks)
        manager = swarm.manager
        proposals = manager.tick(now_ticks)
        if manager.is_leader and manager.has_agent_messages:   # (only a leader has a dispatcher)
            self._flush_dispatcher(swarm, ctx, now_ticks)
        return proposals

    def _agent_to_leader(self, swarm: SwarmNode, ctx: Any, message: Any, now_ticks: int) -> None:
        if swarm.manager.is_leader:
            swarm.manager.handle_agent_message(message, now_ticks)
        elif ctx.leader_id:
            ctx.send(ctx.leader_id, ("agent", message))

    def _flush_dispatcher(self, swarm: SwarmNode, ctx: Any, now_ticks: int) -> None:
        for node_name, message in swarm.manager.take_agent_messages():
            if type(message) is self.heartbeat_ack_type and not message.beat and \
                    node_name in self.manager_names:
                continue   # acknowledges no task states: nothing for a manager node
            if node_name == swarm.name:
                swarm.agent.receive(message, now_ticks)
            elif node_name in self.cluster.ids:
                ctx.send(self.cluster.ids[node_name], ("dispatch", message))

    def message(self, swarm: SwarmNode, ctx: Any, src_name: str, payload: Any) -> None:
        if not isinstance(payload, tuple) or len(payload) != 2:
            return  # not ours: counted by nobody, harmless
        kind, body = payload
        now_ticks = ctx.now_us * self.ticks_per_second // 1_000_000
        if kind == "agent":
            if swarm.manager.is_leader:
                swarm.manager.handle_agent_message(body, now_ticks)
                self._flush_dispatcher(swarm, ctx, now_ticks)
            else:
                ctx.send(self.cluster.ids[src_name], ("redirect", ctx.leader_id))
        elif kind == "dispatch":
            swarm.agent.receive(body, now_ticks)

    # ---- workers --------------------------------------------------------------------------
    def worker_factory(self) -> Any:
        return lambda address: WorkerProcess(self, address)

    # ---- client service operations ------------------------------------------------------------
    def service_command(self, op: ServiceOp, swarm: SwarmNode) -> bytes:
        from scheduler.errors import SchedulerError
        from scheduler.model import Placement, ServiceMode, ServiceSpec, TaskTemplate

        api = swarm.manager.api
        try:
            if op.op == "create":
                command = tuple(shlex.split(op.command)) if op.command else DEFAULT_COMMAND
                spec = ServiceSpec(op.name, ServiceMode.GLOBAL if op.mode == "global" else ServiceMode.REPLICATED,
                                   op.replicas if op.replicas is not None else 1,
                                   TaskTemplate(command=command, placement=Placement(constraints=op.constraints)))
                return api.create_service(spec).data
            if op.op == "scale":
                return api.scale(op.name, int(op.replicas or 0)).data
            if op.op == "update":
                service = swarm.manager.reads.service_inspect(op.name)
                spec = service["spec"]
                task = spec.task
                if op.command is not None:
                    task = replace(task, command=tuple(shlex.split(op.command)))
                if op.constraints:
                    task = replace(task, placement=replace(task.placement, constraints=op.constraints))
                spec = replace(spec, task=task, replicas=op.replicas if op.replicas is not None else spec.replicas)
                return api.update_service(op.name, spec).data
            if op.op == "remove":
                return api.remove_service(op.name).data
        except (SchedulerError, ValueError) as error:
            raise ServiceCommandError(f"{type(error).__name__}: {error}") from error
        raise ServiceCommandError(f"unknown service operation {op.op!r}")

    @staticmethod
    def service_outcome(value: Any) -> tuple[str, str | None]:
        ok = getattr(value, "ok", None)
        if ok is None:
            return "info", f"unexpected apply result {value!r}"
        if ok:
            return "ok", None
        return "fail", f"{type(value.error).__name__}: {value.error}"

    def operator_command(self, swarm: SwarmNode, node: str, availability: str | None = None,
                         role: str | None = None) -> bytes | None:
        from scheduler.errors import SchedulerError
        from scheduler.model import NodeAvailability, NodeRole

        try:
            return swarm.manager.api.update_node(
                node,
                availability=None if availability is None else NodeAvailability[availability.upper()],
                role=None if role is None else NodeRole[role.upper()]).data
        except (SchedulerError, ValueError, KeyError):
            return None

    # ---- views for the checkers -------------------------------------------------------------
    def sample(self, swarm: SwarmNode, now_ms: int) -> StoreSample:
        store = swarm.manager.store
        # The views are a function of the store's contents, which only change
        # when an entry is applied (applied_index moves) or a snapshot is
        # restored (a new objects table): between those, reuse the last ones.
        # The runner samples every 200 ms; the store changes far less often.
        key = swarm.sample_key
        if key is not None and key[0] == store.applied_index and key[1] is store.objects:
            services_view, tasks_view, nodes_view = swarm.sample_views
            return StoreSample(now_ms, services_view, tasks_view, nodes_view, store.applied_index)
        # (Imported here, on a miss only: an import statement costs ~0.6 us a call.)
        from scheduler.model import NodeStatus, ServiceMode, TaskState

        services = []
        names_by_id = {}
        for service in store.list("service"):
            spec = service.spec
            names_by_id[service.id] = spec.name
            services.append(ServiceView(spec.name, "global" if spec.mode == ServiceMode.GLOBAL else "replicated",
                                        spec.replicas, tuple(spec.task.placement.constraints)))
        nodes = []
        ready = set()
        for node in store.list("node"):
            if node.status == NodeStatus.READY:
                ready.add(node.id)
            nodes.append(NodeView(node.id, node.role.name.lower(), node.availability.name.lower(),
                                  node.status.name.lower(), tuple(node.labels)))
        tasks = []
        for task in store.list("task"):
            if task.service_id not in names_by_id:
                continue
            state = task.status.state
            observed = state.name.lower()
            if state == TaskState.RUNNING and task.node_id not in ready:
                observed = "unreachable"  # on a node that is not ready: not counted as running
            tasks.append(TaskView(names_by_id[task.service_id], task.slot or None, task.node_id or None, observed,
                                  task.desired_state.name.lower()))
        swarm.sample_key = (store.applied_index, store.objects)
        swarm.sample_views = (tuple(services), tuple(tasks), tuple(nodes))
        return StoreSample(now_ms, *swarm.sample_views, store.applied_index)

    def vip_backends(self, swarm: SwarmNode) -> list[tuple[str, tuple[tuple[str, int], ...]]]:
        """Services whose running backends changed with the last applied entry."""
        from scheduler.model import TaskState

        store = swarm.manager.store
        changed = []
        current: dict[str, tuple[tuple[str, int], ...]] = {}
        for service in store.list("service"):
            backends = sorted(f"{service.spec.name}.{task.slot or task.node_id}"
                              for task in store.tasks_of_service(service.id).values()
                              if task.status.state == TaskState.RUNNING and task.desired_state == TaskState.RUNNING)
            current[service.spec.name] = tuple((name, 1) for name in backends)
        for name, backends in sorted(current.items()):
            if swarm.vip_seen.get(name) != backends:
                changed.append((name, backends))
        swarm.vip_seen = current
        return changed


class WorkerProcess:
    """A worker node: an Agent over a SimulatedRuntime, talking to the leader."""

    def __init__(self, adapter: SwarmAdapter, address: int) -> None:
        self.adapter = adapter
        self.address = address
        self.name = adapter.cluster.names[address]
        self.agent: Any = None
        self.leader_guess = adapter.cluster.manager_ids[0]
        self.ticks_per_second = adapter.ticks_per_second
        self.last_tick = -1
        self.last_heard_tick = 0

    def on_start(self, ctx: Any) -> None:
        from scheduler.agent import Agent
        from scheduler.model import NodeRole
        from scheduler.runtime import SimulatedRuntime

        self.agent = Agent(self.name, self.name, SimulatedRuntime(random.Random(ctx.rng.getrandbits(32))),
                           int(NodeRole.WORKER), labels=self.adapter.labels.get(self.name, ()),
                           heartbeat_period_ticks=self.adapter.config.heartbeat_period_ticks)
        self.last_heard_tick = self.adapter.now_ticks(ctx.now_us)

    def on_tick(self, ctx: Any) -> None:
        now_ticks = ctx.now_us * self.ticks_per_second // 1_000_000
        if now_ticks == self.last_tick:
            return
        self.last_tick = now_ticks
        if now_ticks - self.last_heard_tick > SILENCE_TICKS_MAX:
            managers = self.adapter.cluster.manager_ids
            self.leader_guess = managers[(managers.index(self.leader_guess) + 1) % len(managers)]
            self.last_heard_tick = now_ticks
        for message in self.agent.tick(now_ticks):
            ctx.send(self.leader_guess, ("agent", message))

    def on_message(self, ctx: Any, src: int, payload: Any) -> None:
        if not isinstance(payload, tuple) or len(payload) != 2:
            return
        kind, body = payload
        now_ticks = ctx.now_us * self.ticks_per_second // 1_000_000
        if kind == "redirect":
            managers = self.adapter.cluster.manager_ids
            if body and body in managers:
                self.leader_guess = body
            else:
                self.leader_guess = managers[(managers.index(src) + 1) % len(managers)] if src in managers \
                    else managers[0]
            self.last_heard_tick = now_ticks
        elif kind == "dispatch":
            self.last_heard_tick = now_ticks
            self.agent.receive(body, now_ticks)
