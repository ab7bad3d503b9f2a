"""The cluster's objects: nodes, services (and their specs), tasks, networks,
secrets, configs.

Shapes follow moby/swarmkit api/objects.proto and api/specs.proto, trimmed to
what Shoal runs. Every object is a frozen dataclass that validates itself in
``__post_init__`` (bad specs raise :class:`~scheduler.errors.InvalidSpec`); the
store stamps ``version`` with the Raft index of the write that produced it.

Time is in ticks. Defaults assume ``TICKS_PER_SECOND`` = 10 (one tick 100 ms),
so swarmkit's 5 s restart delay is 50 ticks; every figure is configurable.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Optional

from scheduler.constraints import parse_constraints, parse_preferences
from scheduler.errors import InvalidSpec, StateRegression

TICKS_PER_SECOND = 10
TASK_HISTORY_ENTRIES_MAX = 16  # bound on the per-task state history kept inline


class TaskState(enum.IntEnum):
    """Observed/desired task states, ordered: a task only moves forward
    (swarmkit api/types.proto TaskState)."""
    NEW = 0
    PENDING = 64
    ASSIGNED = 192
    ACCEPTED = 256
    PREPARING = 320
    READY = 384
    STARTING = 448
    RUNNING = 512
    COMPLETE = 576
    SHUTDOWN = 640
    FAILED = 704
    REJECTED = 768
    REMOVE = 800
    ORPHANED = 832


TERMINAL_STATES = frozenset({TaskState.COMPLETE, TaskState.SHUTDOWN, TaskState.FAILED,
                             TaskState.REJECTED, TaskState.REMOVE, TaskState.ORPHANED})


def is_terminal(state: TaskState) -> bool:
    return state >= TaskState.COMPLETE


class NodeRole(enum.IntEnum):
    WORKER = 0
    MANAGER = 1


class NodeAvailability(enum.IntEnum):
    ACTIVE = 0
    PAUSE = 1
    DRAIN = 2


class NodeStatus(enum.IntEnum):
    UNKNOWN = 0
    DOWN = 1
    READY = 2
    DISCONNECTED = 3


class ServiceMode(enum.IntEnum):
    REPLICATED = 0
    GLOBAL = 1


class RestartCondition(enum.IntEnum):
    NONE = 0
    ON_FAILURE = 1
    ANY = 2


class UpdateOrder(enum.IntEnum):
    STOP_FIRST = 0
    START_FIRST = 1


class FailureAction(enum.IntEnum):
    PAUSE = 0
    CONTINUE = 1
    ROLLBACK = 2


class UpdateState(enum.IntEnum):
    UPDATING = 1
    PAUSED = 2
    COMPLETED = 3
    ROLLBACK_STARTED = 4
    ROLLBACK_PAUSED = 5
    ROLLBACK_COMPLETED = 6


_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidSpec(f"{kind} name {name!r} is invalid (1-63 chars of [a-zA-Z0-9_.-], starting alphanumeric)")


def _check_int(what: str, value: int, low: int = 0, high: Optional[int] = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise InvalidSpec(f"{what} must be an integer {bound}, got {value!r}")


def _check_labels(what: str, labels: tuple) -> None:
    if not isinstance(labels, tuple):
        raise InvalidSpec(f"{what} must be a tuple of (key, value) pairs")
    keys = []
    for pair in labels:
        if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(x, str) for x in pair) and pair[0]):
            raise InvalidSpec(f"{what}: bad label {pair!r}")
        keys.append(pair[0])
    if keys != sorted(set(keys)):
        raise InvalidSpec(f"{what}: keys must be unique and sorted (use labels_from)")


def labels_from(mapping: dict[str, str] | None) -> tuple[tuple[str, str], ...]:
    """Canonical (sorted) label tuple from a dict."""
    return tuple(sorted((mapping or {}).items()))


# --------------------------------------------------------------------- specs

@dataclass(frozen=True, slots=True)
class Resources:
    nano_cpus: int = 0
    memory_bytes: int = 0

    def __post_init__(self) -> None:
        _check_int("nano_cpus", self.nano_cpus)
        _check_int("memory_bytes", self.memory_bytes)


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """swarmkit defaults: condition any, delay 5 s, unlimited attempts."""
    condition: RestartCondition = RestartCondition.ANY
    delay_ticks: int = 5 * TICKS_PER_SECOND
    max_attempts: int = 0          # 0 = unlimited
    window_ticks: int = 0          # 0 = attempts counted over the task's whole life

    def __post_init__(self) -> None:
        if not isinstance(self.condition, RestartCondition):
            raise InvalidSpec(f"restart condition must be a RestartCondition, got {self.condition!r}")
        _check_int("restart delay_ticks", self.delay_ticks)
        _check_int("restart max_attempts", self.max_attempts)
        _check_int("restart window_ticks", self.window_ticks)


@dataclass(frozen=True, slots=True)
class Placement:
    """Constraints like ``node.labels.zone==east``; preferences like
    ``spread=node.labels.zone`` (hierarchical, in order)."""
    constraints: tuple[str, ...] = ()
    preferences: tuple[str, ...] = ()
    max_replicas_per_node: int = 0   # 0 = unlimited

    def __post_init__(self) -> None:
        if not isinstance(self.constraints, tuple) or not isinstance(self.preferences, tuple):
            raise InvalidSpec("constraints and preferences must be tuples of strings")
        parse_constraints(self.constraints)   # raises ConstraintSyntaxError
        parse_preferences(self.preferences)
        _check_int("max_replicas_per_node", self.max_replicas_per_node)


@dataclass(frozen=True, slots=True)
class TaskTemplate:
    command: tuple[str, ...] = ("true",)
    env: tuple[str, ...] = ()
    reservations: Resources = Resources()
    limits: Resources = Resources()
    restart: RestartPolicy = RestartPolicy()
    placement: Placement = Placement()
    networks: tuple[str, ...] = ()     # network names
    secrets: tuple[str, ...] = ()      # secret names
    configs: tuple[str, ...] = ()      # config names

    def __post_init__(self) -> None:
        for what in ("command", "env", "networks", "secrets", "configs"):
            value = getattr(self, what)
            if not isinstance(value, tuple) or not all(isinstance(x, str) for x in value):
                raise InvalidSpec(f"task {what} must be a tuple of strings, got {value!r}")
        if not self.command:
            raise InvalidSpec("task command must not be empty")
        for entry in self.env:
            if "=" not in entry:
                raise InvalidSpec(f"env entry {entry!r} must be KEY=VALUE")
        if self.limits.nano_cpus and self.reservations.nano_cpus > self.limits.nano_cpus:
            raise InvalidSpec("cpu reservation exceeds the cpu limit")
        if self.limits.memory_bytes and self.reservations.memory_bytes > self.limits.memory_bytes:
            raise InvalidSpec("memory reservation exceeds the memory limit")


@dataclass(frozen=True, slots=True)
class UpdateConfig:
    """swarmkit defaults: parallelism 1, no delay, stop-first, monitor 5 s,
    failure action pause, max failure ratio 0. ``canary`` is Shoal's own: pause
    after the first batch until resumed, or until it has stayed healthy for
    ``canary_health_ticks`` (when > 0)."""
    parallelism: int = 1               # 0 = all at once
    delay_ticks: int = 0
    order: UpdateOrder = UpdateOrder.STOP_FIRST
    monitor_ticks: int = 5 * TICKS_PER_SECOND
    failure_action: FailureAction = FailureAction.PAUSE
    max_failure_ratio: float = 0.0
    canary: bool = False
    canary_health_ticks: int = 0

    def __post_init__(self) -> None:
        _check_int("update parallelism", self.parallelism)
        _check_int("update delay_ticks", self.delay_ticks)
        _check_int("update monitor_ticks", self.monitor_ticks)
        _check_int("canary_health_ticks", self.canary_health_ticks)
        if not isinstance(self.order, UpdateOrder) or not isinstance(self.failure_action, FailureAction):
            raise InvalidSpec("update order / failure_action must be UpdateOrder / FailureAction")
        if not isinstance(self.max_failure_ratio, (int, float)) or not 0.0 <= self.max_failure_ratio <= 1.0:
            raise InvalidSpec(f"max_failure_ratio must be within [0, 1], got {self.max_failure_ratio!r}")
        if not isinstance(self.canary, bool):
            raise InvalidSpec("canary must be a bool")


PROTOCOLS = ("tcp", "udp", "sctp")


@dataclass(frozen=True, slots=True)
class PortConfig:
    target_port: int
    published_port: int = 0            # 0 = allocate from 30000-32767 (ingress mode)
    protocol: str = "tcp"
    host_mode: bool = False            # publish on the task's node only (no routing mesh)

    def __post_init__(self) -> None:
        _check_int("target_port", self.target_port, 1, 65535)
        _check_int("published_port", self.published_port, 0, 65535)
        if self.protocol not in PROTOCOLS:
            raise InvalidSpec(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.host_mode and self.published_port == 0:
            raise InvalidSpec("host-mode ports need an explicit published_port")


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str
    mode: ServiceMode = ServiceMode.REPLICATED
    replicas: int = 1
    task: TaskTemplate = TaskTemplate()
    update: UpdateConfig = UpdateConfig()
    rollback: UpdateConfig = UpdateConfig()
    ports: tuple[PortConfig, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        _check_name("service", self.name)
        if not isinstance(self.mode, ServiceMode):
            raise InvalidSpec(f"mode must be a ServiceMode, got {self.mode!r}")
        _check_int("replicas", self.replicas)
        if self.mode == ServiceMode.GLOBAL and self.replicas not in (0, 1):
            raise InvalidSpec("a global service takes no replica count")
        if not isinstance(self.ports, tuple) or not all(isinstance(p, PortConfig) for p in self.ports):
            raise InvalidSpec("ports must be a tuple of PortConfig")
        seen = set()
        for port in self.ports:
            if port.published_port:
                key = (port.protocol, port.published_port)
                if key in seen:
                    raise InvalidSpec(f"published port {port.published_port}/{port.protocol} given twice")
                seen.add(key)
        _check_labels("service labels", self.labels)


# ------------------------------------------------------------------- objects

@dataclass(frozen=True, slots=True)
class Node:
    id: str
    hostname: str
    role: NodeRole = NodeRole.WORKER
    availability: NodeAvailability = NodeAvailability.ACTIVE
    status: NodeStatus = NodeStatus.UNKNOWN
    status_message: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    engine_labels: tuple[tuple[str, str], ...] = ()
    resources: Resources = Resources()
    address: str = ""
    platform_os: str = "linux"
    platform_arch: str = "x86_64"
    version: int = 0

    def __post_init__(self) -> None:
        if not self.id or not isinstance(self.id, str):
            raise InvalidSpec("node id must be a non-empty string")
        _check_name("node host", self.hostname)
        _check_labels("node labels", self.labels)
        _check_labels("engine labels", self.engine_labels)


@dataclass(frozen=True, slots=True)
class UpdateStatus:
    state: UpdateState
    started_at_ticks: int = 0
    completed_at_ticks: int = 0
    message: str = ""
    canary_passed: bool = False


@dataclass(frozen=True, slots=True)
class ServiceEndpoint:
    """What the allocator gave the service: one VIP per network, the
    resolved ports (published ports filled in)."""
    vips: tuple[tuple[str, str], ...] = ()        # (network id, address)
    ports: tuple[PortConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class Service:
    id: str
    spec: ServiceSpec
    spec_version: int = 1
    previous_spec: Optional[ServiceSpec] = None
    previous_spec_version: int = 0
    update_status: Optional[UpdateStatus] = None
    endpoint: Optional[ServiceEndpoint] = None
    created_at_ticks: int = 0
    version: int = 0

    def __post_init__(self) -> None:
        if not self.id or not isinstance(self.id, str):
            raise InvalidSpec("service id must be a non-empty string")
        if not isinstance(self.spec, ServiceSpec):
            raise InvalidSpec("service spec must be a ServiceSpec")
        _check_int("spec_version", self.spec_version, 1)


@dataclass(frozen=True, slots=True)
class TaskStatus:
    state: TaskState = TaskState.NEW
    message: str = ""
    err: str = ""
    timestamp_ticks: int = 0
    exit_code: int = 0


@dataclass(frozen=True)   # no __slots__: evolve() copies __dict__, the cheapest copy at 100k tasks
class Task:
    id: str
    service_id: str
    slot: int                          # replicated: 1..n; global: 0
    node_id: str = ""                  # global tasks are created with it set
    spec_version: int = 1
    template: TaskTemplate = TaskTemplate()
    desired_state: TaskState = TaskState.RUNNING
    status: TaskStatus = TaskStatus()
    networks: tuple[tuple[str, str], ...] = ()    # (network id, address)
    host_ports: tuple[tuple[str, int], ...] = ()  # (protocol, port) bound on the node
    history: tuple[tuple[int, int], ...] = ()     # (state, tick), bounded
    created_at_ticks: int = 0
    version: int = 0

    def __post_init__(self) -> None:
        if not self.id or not isinstance(self.id, str):
            raise InvalidSpec("task id must be a non-empty string")
        if not isinstance(self.slot, int) or self.slot < 0:
            raise InvalidSpec(f"task slot must be >= 0, got {self.slot!r}")
        if not isinstance(self.desired_state, TaskState) or not isinstance(self.status.state, TaskState):
            raise InvalidSpec("task states must be TaskState values")

    @property
    def state(self) -> TaskState:
        return self.status.state

    def with_status(self, status: TaskStatus) -> "Task":
        """The task moved to ``status``; refuses to move backwards."""
        if status.state < self.status.state:
            raise StateRegression(f"task {self.id}: {self.status.state.name} -> {status.state.name} moves backwards")
        history = self.history
        if status.state != self.status.state:
            history = (history + ((int(status.state), status.timestamp_ticks),))[-TASK_HISTORY_ENTRIES_MAX:]
        return evolve(self, status=status, history=history)


@dataclass(frozen=True, slots=True)
class Network:
    id: str
    name: str
    vni: int
    subnet: str                         # "10.0.1.0/24"
    gateway: str
    driver: str = "overlay"
    ingress: bool = False
    version: int = 0

    def __post_init__(self) -> None:
        _check_name("network", self.name)
        _check_int("vni", self.vni, 4096, (1 << 24) - 1)


@dataclass(frozen=True, slots=True)
class Secret:
    id: str
    name: str
    data: bytes = b""
    version: int = 0

    def __post_init__(self) -> None:
        _check_name("secret", self.name)
        if not isinstance(self.data, bytes) or len(self.data) > 500 * 1024:
            raise InvalidSpec("secret data must be bytes of at most 500 KiB (swarmkit's limit)")


@dataclass(frozen=True, slots=True)
class Config:
    id: str
    name: str
    data: bytes = b""
    version: int = 0

    def __post_init__(self) -> None:
        _check_name("config", self.name)
        if not isinstance(self.data, bytes) or len(self.data) > 500 * 1024:
            raise InvalidSpec("config data must be bytes of at most 500 KiB")


KINDS: dict[str, type] = {"node": Node, "service": Service, "task": Task, "network": Network,
                          "secret": Secret, "config": Config}


def kind_of(obj: object) -> str:
    return _KIND_BY_TYPE[type(obj)]


_KIND_BY_TYPE = {cls: name for name, cls in KINDS.items()}
_SLOTS_BY_TYPE: dict[type, tuple[str, ...]] = {}


def evolve(obj, **changes):
    """Copy of a frozen slots dataclass with ``changes``, without re-running
    validation (the caller changes only fields it already validated). Much
    cheaper than dataclasses.replace, which matters at 100k tasks."""
    cls = type(obj)
    if cls is Task:
        new = object.__new__(Task)
        values = new.__dict__
        values.update(obj.__dict__)
        values.update(changes)
        return new
    names = _SLOTS_BY_TYPE.get(cls)
    if names is None:
        names = _SLOTS_BY_TYPE[cls] = tuple(cls.__dataclass_fields__)
    new = object.__new__(cls)
    setter = object.__setattr__
    for name in names:
        setter(new, name, changes[name] if name in changes else getattr(obj, name))
    return new


INGRESS_NETWORK = Network(id="ingress", name="ingress", vni=4096, subnet="10.0.0.0/24",
                          gateway="10.0.0.1", ingress=True)
