"""Experiments: a cluster shape, workloads and a fault schedule, from YAML or flags.

An experiment file (see docs/chaos.md and chaos/experiments/*.yaml)::

    name: seed-story
    seed: 7
    duration: 60s            # virtual time of the fault phase
    settle: 20s              # quiet time after it, faults healed, for convergence
    cluster:
      managers: 3            # or an explicit list:
      workers: 1             # nodes: [{name: docker1, role: manager, labels: {zone: a}}]
    workload:
      kv: {clients: 3, keys: 3, interval: 200ms, timeout: 1s, mix: {get: 2, put: 2, cas: 1}}
      services:
        - {at: 2s, op: create, name: my-nginx, replicas: 3}
        - {at: 8s, op: scale, name: my-nginx, replicas: 5}
    faults:
      - {at: 20s, fault: kill-leader}
      - {at: 30s, fault: restart, target: killed}
    checkers: [raft-safety, linearizability, durability, quorum, convergence, vip]

Everything is validated when loaded; a problem is an ``ExperimentError`` (or a
``ScheduleError`` from the fault list) whose message names the field, and the
CLI turns either into exit code 2.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from chaos.schedule import Event, Schedule, ScheduleError, parse_duration_ms, parse_fault_flag

CHECKERS: tuple[str, ...] = ("raft-safety", "linearizability", "durability", "quorum", "convergence", "vip")
SERVICE_OPS: tuple[str, ...] = ("create", "scale", "update", "remove")
KV_OPS: tuple[str, ...] = ("get", "put", "cas")
MANAGERS_MAX = 9
WORKERS_MAX = 64
DURATION_MS_MAX = 3_600_000
EXPERIMENTS_DIR = Path(__file__).resolve().parent / "experiments"


class ExperimentError(ValueError):
    """An experiment file or flag that cannot be run; the message names the field."""


@dataclass(frozen=True)
class NodeSpec:
    name: str
    role: str = "worker"  # "manager" or "worker"
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def is_manager(self) -> bool:
        return self.role == "manager"


@dataclass(frozen=True)
class KvWorkload:
    """Register clients: each does one operation at a time on one of ``key_count``
    keys, waits up to ``timeout_ms`` for the answer, then thinks ``interval_ms``."""

    clients: int = 3
    key_count: int = 3
    interval_ms: int = 200
    timeout_ms: int = 1000
    mix: tuple[tuple[str, int], ...] = (("get", 2), ("put", 2), ("cas", 1))


@dataclass(frozen=True)
class ServiceOp:
    """One timed service operation (the seed's `docker service create/scale/update/rm`)."""

    at_ms: int
    op: str
    name: str
    replicas: int | None = None
    command: str | None = None
    constraints: tuple[str, ...] = ()
    mode: str = "replicated"

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"at_ms": self.at_ms, "op": self.op, "name": self.name}
        if self.replicas is not None:
            document["replicas"] = self.replicas
        if self.command is not None:
            document["command"] = self.command
        if self.constraints:
            document["constraints"] = list(self.constraints)
        if self.mode != "replicated":
            document["mode"] = self.mode
        return document


@dataclass(frozen=True)
class Timing:
    """Raft timing in ticks of ``tick_ms`` virtual milliseconds.  swarmkit's
    defaults are a 1 s tick, election 10 ticks, heartbeat 1; the simulator runs
    a 100 ms tick (1 s election timeout) so that a 60 s experiment holds several
    elections, while keeping the event count - and so the wall time - low."""

    tick_ms: int = 100
    election_ticks: int = 10
    heartbeat_ticks: int = 1


@dataclass(frozen=True)
class Experiment:
    name: str = "experiment"
    seed: int = 0
    duration_ms: int = 60_000
    settle_ms: int = 20_000
    nodes: tuple[NodeSpec, ...] = ()
    kv: KvWorkload | None = field(default_factory=KvWorkload)
    services: tuple[ServiceOp, ...] = ()
    schedule: Schedule = field(default_factory=Schedule)
    checkers: tuple[str, ...] = CHECKERS
    timing: Timing = field(default_factory=Timing)
    convergence_bound_ms: int = 20_000
    # Test-only switches handed to the Raft Config (planted bugs); empty in real runs.
    raft_unsafe: tuple[tuple[str, Any], ...] = ()

    @property
    def managers(self) -> tuple[NodeSpec, ...]:
        return tuple(node for node in self.nodes if node.is_manager)

    @property
    def workers(self) -> tuple[NodeSpec, ...]:
        return tuple(node for node in self.nodes if not node.is_manager)

    @property
    def election_timeout_ms(self) -> int:
        return self.timing.tick_ms * self.timing.election_ticks

    def replace(self, **changes: Any) -> Experiment:
        return dataclasses.replace(self, **changes)

    # ---- serialisation (results.json and saved failures hold this) ---------
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seed": self.seed,
            "duration_ms": self.duration_ms,
            "settle_ms": self.settle_ms,
            "cluster": {"nodes": [
                {"name": node.name, "role": node.role, "labels": dict(node.labels)} for node in self.nodes
            ]},
            "workload": {
                "kv": None if self.kv is None else {
                    "clients": self.kv.clients, "keys": self.kv.key_count,
                    "interval_ms": self.kv.interval_ms, "timeout_ms": self.kv.timeout_ms,
                    "mix": dict(self.kv.mix),
                },
                "services": [op.to_dict() for op in self.services],
            },
            "faults": self.schedule.to_list(),
            "checkers": list(self.checkers),
            "timing": dataclasses.asdict(self.timing),
            "convergence_bound_ms": self.convergence_bound_ms,
            "raft_unsafe": dict(self.raft_unsafe),
        }

    @staticmethod
    def from_dict(document: Any, source: str = "experiment") -> Experiment:
        return _parse(document, source)


def default_nodes(managers: int, workers: int) -> tuple[NodeSpec, ...]:
    _check_shape(managers, workers)
    return tuple([NodeSpec(f"m{i}", "manager") for i in range(1, managers + 1)]
                 + [NodeSpec(f"w{i}", "worker") for i in range(1, workers + 1)])


def _check_shape(managers: int, workers: int) -> None:
    if not isinstance(managers, int) or isinstance(managers, bool) or not 1 <= managers <= MANAGERS_MAX:
        raise ExperimentError(f"managers must be an integer from 1 to {MANAGERS_MAX}, got {managers!r}")
    if not isinstance(workers, int) or isinstance(workers, bool) or not 0 <= workers <= WORKERS_MAX:
        raise ExperimentError(f"workers must be an integer from 0 to {WORKERS_MAX}, got {workers!r}")


def _int(document: Mapping[str, Any], key: str, default: int, low: int, high: int, where: str) -> int:
    value = document.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ExperimentError(f"{where}.{key} must be an integer from {low} to {high}, got {value!r}")
    return value


def _duration(document: Mapping[str, Any], keys: Sequence[str], default: int, where: str,
              low: int = 0, high: int = DURATION_MS_MAX) -> int:
    """Read ``key`` (seconds when a bare number, or '2s'/'1500ms') or ``key_ms``."""
    seconds_key, ms_key = keys
    if seconds_key in document and ms_key in document:
        raise ExperimentError(f"{where}: give either {seconds_key!r} or {ms_key!r}, not both")
    try:
        if ms_key in document:
            value = parse_duration_ms(document[ms_key], f"{where}.{ms_key}")
        elif seconds_key in document:
            raw = document[seconds_key]
            if isinstance(raw, (int, float)) and not isinstance(raw, bool):
                raw = f"{raw}s"
            value = parse_duration_ms(raw, f"{where}.{seconds_key}")
        else:
            value = default
    except ScheduleError as error:
        raise ExperimentError(str(error)) from error
    if not low <= value <= high:
        raise ExperimentError(f"{where}.{seconds_key} must be within {low} and {high} ms, got {value} ms")
    return value


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ExperimentError(f"{where} must be a mapping, got {type(value).__name__}")
    return value


def _unknown_keys(document: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    unknown = sorted(set(document) - set(known))
    if unknown:
        raise ExperimentError(f"{where}: unknown field(s) {', '.join(map(str, unknown))} "
                              f"(known: {', '.join(known)})")


def _parse_nodes(cluster: Mapping[str, Any]) -> tuple[NodeSpec, ...]:
    _unknown_keys(cluster, ("managers", "workers", "nodes"), "cluster")
    if "nodes" in cluster:
        if "managers" in cluster or "workers" in cluster:
            raise ExperimentError("cluster: give either 'nodes' or 'managers'/'workers', not both")
        raw_nodes = cluster["nodes"]
        if not isinstance(raw_nodes, list) or not raw_nodes:
            raise ExperimentError("cluster.nodes must be a non-empty list")
        nodes = []
        for position, raw in enumerate(raw_nodes):
            where = f"cluster.nodes[{position}]"
            raw = _mapping(raw, where)
            _unknown_keys(raw, ("name", "role", "labels"), where)
            name = raw.get("name")
            if not isinstance(name, str) or not name or not name.replace("-", "").replace("_", "").isalnum():
                raise ExperimentError(f"{where}.name must be a non-empty name of letters, digits, - and _")
            role = raw.get("role", "worker")
            if role not in ("manager", "worker"):
                raise ExperimentError(f"{where}.role must be manager or worker, got {role!r}")
            labels = _mapping(raw.get("labels"), f"{where}.labels")
            nodes.append(NodeSpec(name, role, tuple(sorted((str(k), str(v)) for k, v in labels.items()))))
        names = [node.name for node in nodes]
        if len(set(names)) != len(names):
            raise ExperimentError(f"cluster.nodes: duplicate node names in {names}")
        managers = sum(node.is_manager for node in nodes)
        _check_shape(managers, len(nodes) - managers)
        return tuple(nodes)
    return default_nodes(cluster.get("managers", 3), cluster.get("workers", 4))


def _parse_kv(raw: Any) -> KvWorkload | None:
    if raw is None or raw is False:
        return None
    document = _mapping(raw, "workload.kv")
    _unknown_keys(document, ("clients", "keys", "interval", "interval_ms", "timeout", "timeout_ms", "mix"),
                  "workload.kv")
    mix_raw = _mapping(document.get("mix", {"get": 2, "put": 2, "cas": 1}), "workload.kv.mix")
    mix = []
    for op, weight in mix_raw.items():
        if op not in KV_OPS:
            raise ExperimentError(f"workload.kv.mix: unknown operation {op!r} (known: {', '.join(KV_OPS)})")
        if not isinstance(weight, int) or isinstance(weight, bool) or weight < 0:
            raise ExperimentError(f"workload.kv.mix.{op} must be a non-negative integer weight, got {weight!r}")
        mix.append((op, weight))
    # Canonical order: a JSON round trip (sort_keys) must not change the workload.
    mix.sort(key=lambda item: KV_OPS.index(item[0]))
    if not any(weight for _op, weight in mix):
        raise ExperimentError("workload.kv.mix needs at least one positive weight")
    return KvWorkload(
        clients=_int(document, "clients", 3, 1, 64, "workload.kv"),
        key_count=_int(document, "keys", 3, 1, 64, "workload.kv"),
        interval_ms=_duration(document, ("interval", "interval_ms"), 200, "workload.kv", low=1),
        timeout_ms=_duration(document, ("timeout", "timeout_ms"), 1000, "workload.kv", low=1),
        mix=tuple(mix),
    )


def _parse_services(raw: Any) -> tuple[ServiceOp, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ExperimentError("workload.services must be a list of timed operations")
    ops = []
    for position, item in enumerate(raw):
        where = f"workload.services[{position}]"
        document = _mapping(item, where)
        _unknown_keys(document, ("at", "at_ms", "op", "name", "replicas", "command", "constraints", "mode"),
                      where)
        op = document.get("op")
        if op not in SERVICE_OPS:
            raise ExperimentError(f"{where}.op must be one of {', '.join(SERVICE_OPS)}, got {op!r}")
        name = document.get("name")
        if not isinstance(name, str) or not name:
            raise ExperimentError(f"{where}.name must be a service name")
        replicas = document.get("replicas")
        if replicas is not None and (not isinstance(replicas, int) or isinstance(replicas, bool)
                                     or not 0 <= replicas <= 10_000):
            raise ExperimentError(f"{where}.replicas must be an integer from 0 to 10000, got {replicas!r}")
        if op == "scale" and replicas is None:
            raise ExperimentError(f"{where}: scale needs 'replicas'")
        mode = document.get("mode", "replicated")
        if mode not in ("replicated", "global"):
            raise ExperimentError(f"{where}.mode must be replicated or global, got {mode!r}")
        constraints = document.get("constraints", [])
        if not isinstance(constraints, list) or not all(isinstance(c, str) and ("==" in c or "!=" in c)
                                                        for c in constraints):
            raise ExperimentError(f"{where}.constraints must be a list like ['node.role==worker']")
        command = document.get("command")
        if command is not None and not isinstance(command, str):
            raise ExperimentError(f"{where}.command must be a string")
        ops.append(ServiceOp(_duration(document, ("at", "at_ms"), 0, where), op, name,
                             replicas, command, tuple(constraints), mode))
    return tuple(sorted(ops, key=lambda op: op.at_ms))


def _parse(document: Any, source: str) -> Experiment:
    if not isinstance(document, Mapping):
        raise ExperimentError(f"{source}: an experiment is a mapping (name, seed, cluster, workload, "
                              f"faults ...), got {type(document).__name__}")
    _unknown_keys(document, ("name", "seed", "duration", "duration_ms", "settle", "settle_ms", "cluster",
                             "workload", "faults", "checkers", "timing", "convergence_bound",
                             "convergence_bound_ms", "raft_unsafe", "description"), source)
    seed = document.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise ExperimentError(f"{source}: seed must be a non-negative integer, got {seed!r}")
    nodes = _parse_nodes(_mapping(document.get("cluster"), "cluster"))
    workload = _mapping(document.get("workload", {"kv": {}}), "workload")
    _unknown_keys(workload, ("kv", "services"), "workload")
    try:
        schedule = Schedule.from_list(document.get("faults"))
    except ScheduleError as error:
        raise type(error)(f"{source}: faults: {error}") from error
    checkers = document.get("checkers", list(CHECKERS))
    if not isinstance(checkers, list) or not all(name in CHECKERS for name in checkers):
        raise ExperimentError(f"{source}: checkers must be a list drawn from {', '.join(CHECKERS)}, "
                              f"got {checkers!r}")
    timing_raw = _mapping(document.get("timing"), "timing")
    _unknown_keys(timing_raw, ("tick_ms", "election_ticks", "heartbeat_ticks"), "timing")
    timing = Timing(
        tick_ms=_int(timing_raw, "tick_ms", 100, 1, 1000, "timing"),
        election_ticks=_int(timing_raw, "election_ticks", 10, 2, 1000, "timing"),
        heartbeat_ticks=_int(timing_raw, "heartbeat_ticks", 1, 1, 100, "timing"),
    )
    if timing.heartbeat_ticks >= timing.election_ticks:
        raise ExperimentError("timing.heartbeat_ticks must be below timing.election_ticks")
    unsafe = _mapping(document.get("raft_unsafe"), "raft_unsafe")
    experiment = Experiment(
        name=str(document.get("name", source)),
        seed=seed,
        duration_ms=_duration(document, ("duration", "duration_ms"), 60_000, source, low=100),
        settle_ms=_duration(document, ("settle", "settle_ms"), 20_000, source),
        nodes=nodes,
        kv=_parse_kv(workload.get("kv", {})),
        services=_parse_services(workload.get("services")),
        schedule=schedule,
        checkers=tuple(checkers),
        timing=timing,
        convergence_bound_ms=_duration(document, ("convergence_bound", "convergence_bound_ms"), 20_000,
                                       source, low=1),
        raft_unsafe=tuple(sorted((str(k), v) for k, v in unsafe.items())),
    )
    validate_targets(experiment)
    return experiment


def validate_targets(experiment: Experiment) -> None:
    """Every named target of the schedule must be a node of the cluster."""
    from chaos.schedule import SELECTORS

    names = {node.name for node in experiment.nodes}
    for event in experiment.schedule:
        if event.target is not None and event.target not in SELECTORS and event.target not in names:
            raise ExperimentError(f"fault {event.fault} at {event.at_ms} ms targets unknown node "
                                  f"{event.target!r} (nodes: {', '.join(sorted(names))})")
        for key in ("groups", "from", "to", "nodes"):
            value = dict(event.params).get(key)
            if value is None:
                continue
            flat = [item for group in value for item in (group if isinstance(group, (list, tuple)) else [group])]
            for item in flat:
                if item not in names:
                    raise ExperimentError(f"fault {event.fault} at {event.at_ms} ms names unknown node "
                                          f"{item!r} in {key!r} (nodes: {', '.join(sorted(names))})")
    if experiment.schedule.last_fault_ms > experiment.duration_ms:
        raise ExperimentError(f"a fault at {experiment.schedule.last_fault_ms} ms is after the end of "
                              f"the experiment ({experiment.duration_ms} ms); raise 'duration'")
    service_names = set()
    for op in experiment.services:
        if op.op == "create":
            service_names.add(op.name)
        elif op.name not in service_names:
            raise ExperimentError(f"service operation {op.op} at {op.at_ms} ms on {op.name!r}, "
                                  f"which no earlier 'create' made")


def load_experiment(path: str | Path) -> Experiment:
    """Read an experiment file; unreadable or invalid files raise ExperimentError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ExperimentError(f"cannot read experiment file {path}: {error.strerror or error}") from error
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ExperimentError(f"{path} is not valid YAML: {error}") from error
    return _parse(document, path.name)


def default_experiment() -> Experiment:
    """The built-in default: chaos/experiments/default.yaml (the seed's story)."""
    return load_experiment(EXPERIMENTS_DIR / "default.yaml")


def apply_flags(experiment: Experiment, *, seed: int | None = None, managers: int | None = None,
                workers: int | None = None, duration_s: float | None = None,
                faults: Sequence[str] | None = None) -> Experiment:
    """Command-line overrides.  ``--managers``/``--workers`` replace the node list
    with generated names (m1.., w1..); ``--faults`` replaces the whole schedule."""
    changes: dict[str, Any] = {}
    if seed is not None:
        if seed < 0:
            raise ExperimentError(f"--seed must be a non-negative integer, got {seed}")
        changes["seed"] = seed
    if managers is not None or workers is not None:
        changes["nodes"] = default_nodes(
            managers if managers is not None else len(experiment.managers),
            workers if workers is not None else len(experiment.workers))
    if duration_s is not None:
        if not duration_s == duration_s or not 0.1 <= duration_s <= DURATION_MS_MAX / 1000:
            raise ExperimentError(f"--duration must be between 0.1 and {DURATION_MS_MAX // 1000} seconds, "
                                  f"got {duration_s}")
        changes["duration_ms"] = int(round(duration_s * 1000))
        if faults is None:
            # A shorter run keeps the file's events that still fit in it.
            changes["schedule"] = Schedule(event for event in experiment.schedule
                                           if event.at_ms <= changes["duration_ms"])
    if faults is not None:
        events: list[Event] = []
        for item in faults:
            # One event per item; several items may share one argument, separated by ';'.
            for piece in item.split(";"):
                if piece.strip():
                    events.append(parse_fault_flag(piece.strip()))
        changes["schedule"] = Schedule(events)
    if "nodes" in changes and faults is None:
        # Named targets from the file may not exist in the new shape: keep only selectors.
        from chaos.schedule import SELECTORS

        names = {node.name for node in changes["nodes"]}
        kept = [event for event in changes.get("schedule", experiment.schedule)
                if (event.target is None or event.target in SELECTORS or event.target in names)
                and not any(key in dict(event.params) for key in ("groups", "from", "to", "nodes"))]
        changes["schedule"] = Schedule(kept)
    result = experiment.replace(**changes)
    validate_targets(result)
    return result
