"""Service convergence: once faults heal, every service reaches its desired tasks.

Swarm's promise ("verify: Service converged") as a checker, on samples of the
leader's store taken by the runner.  After ``heal_ms`` (the last fault healed
and a quorum back) the store must, within ``bound_ms`` and until the end:

- reach, and keep until the end, a state that runs exactly ``replicas`` tasks of each replicated service, and one task per
  eligible node of each global service (ready, active, constraints hold);
- never run one slot twice (replicated: a (service, slot) pair; global: a
  (service, node) pair);
- run every task on a node that satisfies the service's placement
  constraints (``node.role==worker``, ``node.hostname!=x``,
  ``node.labels.zone==a`` ... matched case-insensitively, as swarmkit does).

The checker evaluates constraints itself rather than calling the scheduler's
matcher, so that a bug there cannot hide from it.  It also measures, for each
service operation, how long the service took to converge after it.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chaos.checkers.result import CheckResult


@dataclass(frozen=True)
class ServiceView:
    name: str
    mode: str = "replicated"  # or "global"
    replicas: int = 1
    constraints: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeView:
    name: str
    role: str = "worker"
    availability: str = "active"  # active, pause, drain
    status: str = "ready"  # ready, down, unknown
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TaskView:
    service: str
    slot: int | None
    node: str | None
    state: str  # observed state, lower case: running, failed, ...
    desired: str = "running"


@dataclass(frozen=True)
class StoreSample:
    time_ms: int
    services: tuple[ServiceView, ...] = ()
    tasks: tuple[TaskView, ...] = ()
    nodes: tuple[NodeView, ...] = ()
    version: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"time_ms": self.time_ms, "version": self.version,
                "services": [vars_of(service) for service in self.services],
                "tasks": [vars_of(task) for task in self.tasks],
                "nodes": [vars_of(node) for node in self.nodes]}


def vars_of(view: Any) -> dict[str, Any]:
    return {name: (list(map(list, value)) if name == "labels" else list(value) if isinstance(value, tuple)
                   else value) for name, value in view.__dict__.items()}


class ConstraintError(ValueError):
    """A placement constraint the checker cannot parse."""


def constraint_holds(constraint: str, node: NodeView) -> bool:
    for operator in ("==", "!="):
        if operator in constraint:
            key, value = (part.strip() for part in constraint.split(operator, 1))
            break
    else:
        raise ConstraintError(f"constraint {constraint!r} has neither == nor !=")
    if key in ("node.hostname", "node.id"):
        actual: str | None = node.name
    elif key == "node.role":
        actual = node.role
    elif key.startswith("node.labels."):
        actual = dict(node.labels).get(key[len("node.labels."):])
    else:
        raise ConstraintError(f"constraint key {key!r} is not node.id, node.hostname, node.role or node.labels.X")
    same = actual is not None and actual.lower() == value.lower()
    return same if operator == "==" else not same


def eligible(service: ServiceView, node: NodeView) -> bool:
    return (node.status == "ready" and node.availability == "active"
            and all(constraint_holds(c, node) for c in service.constraints))


@dataclass
class SampleJudgement:
    converged: bool
    problems: list[str] = field(default_factory=list)  # why not converged
    violations: list[str] = field(default_factory=list)  # slot twice, constraint broken


def judge(sample: StoreSample, only: str | None = None) -> SampleJudgement:
    """Is the store converged, and does it break a safety rule right now?"""
    nodes = {node.name: node for node in sample.nodes}
    judgement = SampleJudgement(True)
    for service in sample.services:
        if only is not None and service.name != only:
            continue
        running = [task for task in sample.tasks if task.service == service.name and task.state == "running"]
        if service.mode == "global":
            wanted = sorted(name for name, node in nodes.items() if eligible(service, node))
            per_node = Counter(task.node for task in running)
            twice = sorted(str(name) for name, count in per_node.items() if count > 1)
            if twice:
                judgement.violations.append(f"{service.name}: global task running twice on {', '.join(twice)}")
            missing = [name for name in wanted if per_node.get(name, 0) == 0]
            if missing or len(running) != len(wanted):
                judgement.converged = False
                judgement.problems.append(f"{service.name}: {len(running)} running, want one on each of "
                                          f"{', '.join(wanted) or 'no node'}")
        else:
            per_slot = Counter(task.slot for task in running)
            twice = sorted(str(slot) for slot, count in per_slot.items() if count > 1)
            if twice:
                judgement.violations.append(f"{service.name}: slot(s) {', '.join(twice)} running twice")
            if len(running) != service.replicas:
                judgement.converged = False
                judgement.problems.append(f"{service.name}: {len(running)} of {service.replicas} tasks running")
        for task in running:
            node = nodes.get(task.node or "")
            if node is None:
                judgement.violations.append(f"{service.name}: task slot {task.slot} running on unknown node "
                                            f"{task.node!r}")
                continue
            broken = [c for c in service.constraints if not constraint_holds(c, node)]
            if broken:
                judgement.violations.append(f"{service.name}: task slot {task.slot} runs on {node.name}, "
                                            f"violating {', '.join(broken)}")
    if judgement.violations:
        judgement.converged = False
    return judgement


def check_convergence(samples: Sequence[StoreSample], *, heal_ms: int, bound_ms: int,
                      operations: Sequence[tuple[int, str, str]] = ()) -> CheckResult:
    """Judge store ``samples`` (time-ordered) against the convergence promise.

    ``operations`` are (time_ms, service, label) of service operations, for the
    per-operation convergence times in the report.
    """
    if bound_ms <= 0:
        raise ValueError(f"bound_ms must be positive, got {bound_ms}")
    ordered = sorted(samples, key=lambda sample: sample.time_ms)
    if not ordered or not any(sample.services for sample in ordered):
        return CheckResult("convergence", "skipped", "no services in the run")
    deadline_ms = heal_ms + bound_ms
    after = [sample for sample in ordered if sample.time_ms >= heal_ms]
    if not after:
        return CheckResult("convergence", "unknown",
                           f"no store sample after faults healed at {heal_ms} ms (run too short)")
    # The final converged streak: healing itself can make a service diverge for a
    # while (a restarted node reports the tasks it lost; the restart policy waits
    # its delay), so what counts is converging for good, within the bound.
    judgements = [judge(sample) for sample in after]
    streak_start: int | None = None
    for position in range(len(after) - 1, -1, -1):
        if not judgements[position].converged:
            break
        streak_start = position
    converged_at = None if streak_start is None else after[streak_start].time_ms
    violations: list[str] = []
    last_problems = judgements[-1].problems + judgements[-1].violations
    times = operation_convergence_times(ordered, operations)
    details: dict[str, Any] = {"heal_ms": heal_ms, "bound_ms": bound_ms, "converged_at_ms": converged_at,
                               "operation_times": times, "violations": violations[:50]}
    if converged_at is None:
        lines = [f"  at {after[-1].time_ms} ms: {text}" for text in last_problems[:10]]
        ran_long_enough = after[-1].time_ms >= deadline_ms
        status = "fail" if ran_long_enough else "unknown"
        return CheckResult("convergence", status,
                           f"not converged {after[-1].time_ms - heal_ms} ms after faults healed "
                           f"(bound {bound_ms} ms)", lines, details)
    took_ms = converged_at - heal_ms
    if took_ms > bound_ms:
        violations.insert(0, f"converged {took_ms} ms after faults healed, bound {bound_ms} ms")
    if violations:
        return CheckResult("convergence", "fail", f"{len(violations)} violation(s) after healing",
                           [f"  {text}" for text in violations[:20]], details)
    return CheckResult("convergence", "pass",
                       f"converged {took_ms} ms after faults healed (bound {bound_ms} ms); "
                       f"{len(times)} service operation(s) timed", [], details)


def operation_convergence_times(samples: Sequence[StoreSample],
                                operations: Sequence[tuple[int, str, str]]) -> list[dict[str, Any]]:
    """For each (time_ms, service, label): first later sample where that service converged."""
    result = []
    for position, (time_ms, service, label) in enumerate(operations):
        # Until the next operation on the same service (others do not interrupt it).
        next_ms = next((later[0] for later in operations[position + 1:] if later[1] == service), None)
        converged_ms = None
        for sample in samples:
            if sample.time_ms < time_ms or (next_ms is not None and sample.time_ms >= next_ms):
                continue
            if label == "remove":
                done = not any(view.name == service for view in sample.services) and not any(
                    task.service == service and task.state == "running" for task in sample.tasks)
            else:
                done = any(view.name == service for view in sample.services) and judge(sample, only=service).converged
            if done:
                converged_ms = sample.time_ms
                break
        result.append({"at_ms": time_ms, "service": service, "operation": label,
                       "converged_after_ms": None if converged_ms is None else converged_ms - time_ms})
    return result
