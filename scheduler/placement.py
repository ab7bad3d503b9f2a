"""Placement: per-node bookkeeping, the filter pipeline and group scheduling.

Follows swarmkit manager/scheduler (nodeinfo.go, filter.go, pipeline.go,
nodeset.go, scheduler.go scheduleTaskGroup) in shape:

* :class:`NodeInfo` keeps, per node, its active tasks (desired and observed
  state at most RUNNING), counts per service, reserved resources, bound host
  ports and recent failures per service.
* Filters have ``set_task`` (is the filter relevant to this task?), ``check``
  (does the node pass?) and ``explain`` (why N nodes did not); the
  :class:`Pipeline` runs them in order and remembers the first filter each node
  failed, which yields "no suitable node (scheduling constraints not satisfied
  on 5 nodes)".
* Identical tasks (same service and spec version) are placed as a group: the
  pipeline runs ONCE per node per group, each node's remaining capacity for the
  group is computed arithmetically, and one heap ordered by (recently failed
  too often, tasks of the service, total tasks) hands out tasks. Spread
  preferences split the group over label-value branches first, equalising the
  service's tasks per branch, recursively (swarmkit's decision tree).
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass


from scheduler.constraints import node_attribute, node_matches, parse_constraints, parse_preferences
from scheduler.model import NodeAvailability, NodeStatus, Task, TaskState

UNLIMITED = 1 << 62


def is_active_on_node(task: Task) -> bool:
    """Counts toward a node's load (swarmkit nodeinfo: desired and observed <= RUNNING)."""
    return bool(task.node_id) and task.desired_state <= TaskState.RUNNING and task.status.state <= TaskState.RUNNING


class NodeInfo:
    __slots__ = ("node", "tasks", "by_service", "total", "cpu_reserved", "memory_reserved", "host_ports",
                 "failures", "order")

    def __init__(self, node, order: int = 0) -> None:
        self.node = node
        self.tasks: dict[str, Task] = {}
        self.by_service: dict[str, int] = {}
        self.total = 0
        self.cpu_reserved = 0
        self.memory_reserved = 0
        self.host_ports: dict[tuple[str, int], int] = {}
        self.failures: dict[str, list[int]] = {}   # service id -> failure ticks (bounded)
        self.order = order

    def add_task(self, task: Task) -> None:
        """Idempotent by task id (decisions are counted before they commit)."""
        if task.id in self.tasks:
            self.tasks[task.id] = task
            return
        self.tasks[task.id] = task
        self.by_service[task.service_id] = self.by_service.get(task.service_id, 0) + 1
        self.total += 1
        reservations = task.template.reservations
        self.cpu_reserved += reservations.nano_cpus
        self.memory_reserved += reservations.memory_bytes
        for port in task.host_ports:
            self.host_ports[port] = self.host_ports.get(port, 0) + 1

    def add_group(self, tasks: list[Task]) -> None:
        """add_task for many identical tasks (same service, template, ports)
        not yet on this node: one counter update for the lot."""
        if not tasks:
            return
        known = self.tasks
        before = len(known)
        known.update({task.id: task for task in tasks})
        added = len(known) - before
        assert added == len(tasks), f"node {self.node.id}: group tasks already counted"
        first = tasks[0]
        self.by_service[first.service_id] = self.by_service.get(first.service_id, 0) + added
        self.total += added
        reservations = first.template.reservations
        self.cpu_reserved += reservations.nano_cpus * added
        self.memory_reserved += reservations.memory_bytes * added
        for port in first.host_ports:
            self.host_ports[port] = self.host_ports.get(port, 0) + added

    def remove_task(self, task_id: str) -> None:
        task = self.tasks.pop(task_id, None)
        if task is None:
            return
        count = self.by_service[task.service_id] - 1
        if count:
            self.by_service[task.service_id] = count
        else:
            del self.by_service[task.service_id]
        self.total -= 1
        reservations = task.template.reservations
        self.cpu_reserved -= reservations.nano_cpus
        self.memory_reserved -= reservations.memory_bytes
        for port in task.host_ports:
            left = self.host_ports[port] - 1
            if left:
                self.host_ports[port] = left
            else:
                del self.host_ports[port]
        assert self.total >= 0 and self.cpu_reserved >= 0, f"node {self.node.id} accounting broke: {self.total}"

    FAILURES_KEPT_MAX = 16

    def record_failure(self, service_id: str, now_ticks: int) -> None:
        ticks = self.failures.setdefault(service_id, [])
        ticks.append(now_ticks)
        del ticks[:-self.FAILURES_KEPT_MAX]

    def recent_failures(self, service_id: str, now_ticks: int, window_ticks: int) -> int:
        ticks = self.failures.get(service_id)
        if not ticks:
            return 0
        return sum(1 for tick in ticks if now_ticks - tick <= window_ticks)


# ------------------------------------------------------------------ filters

def _nodes(count: int) -> str:
    return f"{count} node" if count == 1 else f"{count} nodes"


class Filter:
    def set_task(self, task: Task) -> bool:
        raise NotImplementedError

    def check(self, info: NodeInfo) -> bool:
        raise NotImplementedError

    def explain(self, nodes: int) -> str:
        raise NotImplementedError


class ReadyFilter(Filter):
    def set_task(self, task: Task) -> bool:
        return True

    def check(self, info: NodeInfo) -> bool:
        node = info.node
        return node.status == NodeStatus.READY and node.availability == NodeAvailability.ACTIVE

    def explain(self, nodes: int) -> str:
        return f"{_nodes(nodes)} not available for new tasks"


class ResourceFilter(Filter):
    def __init__(self) -> None:
        self.cpu = 0
        self.memory = 0

    def set_task(self, task: Task) -> bool:
        self.cpu = task.template.reservations.nano_cpus
        self.memory = task.template.reservations.memory_bytes
        return bool(self.cpu or self.memory)

    def check(self, info: NodeInfo) -> bool:
        return capacity_for_resources(info, self.cpu, self.memory) > 0

    def explain(self, nodes: int) -> str:
        return f"insufficient resources on {_nodes(nodes)}"


def capacity_for_resources(info: NodeInfo, cpu: int, memory: int) -> int:
    capacity = UNLIMITED
    resources = info.node.resources
    if cpu:
        capacity = min(capacity, max(0, (resources.nano_cpus - info.cpu_reserved) // cpu))
    if memory:
        capacity = min(capacity, max(0, (resources.memory_bytes - info.memory_reserved) // memory))
    return capacity


class ConstraintFilter(Filter):
    def __init__(self) -> None:
        self.constraints = ()

    def set_task(self, task: Task) -> bool:
        self.constraints = parse_constraints(task.template.placement.constraints)
        return bool(self.constraints)

    def check(self, info: NodeInfo) -> bool:
        return node_matches(self.constraints, info.node)

    def explain(self, nodes: int) -> str:
        return f"scheduling constraints not satisfied on {_nodes(nodes)}"


class HostPortFilter(Filter):
    def __init__(self) -> None:
        self.ports = ()

    def set_task(self, task: Task) -> bool:
        self.ports = task.host_ports
        return bool(self.ports)

    def check(self, info: NodeInfo) -> bool:
        return not any(port in info.host_ports for port in self.ports)

    def explain(self, nodes: int) -> str:
        return f"host-mode port already in use on {_nodes(nodes)}"


class MaxReplicasFilter(Filter):
    def __init__(self) -> None:
        self.limit = 0
        self.service_id = ""

    def set_task(self, task: Task) -> bool:
        self.limit = task.template.placement.max_replicas_per_node
        self.service_id = task.service_id
        return self.limit > 0

    def check(self, info: NodeInfo) -> bool:
        return info.by_service.get(self.service_id, 0) < self.limit

    def explain(self, nodes: int) -> str:
        return f"max replicas per node limit exceeded on {_nodes(nodes)}"


class Pipeline:
    """Runs the enabled filters in order; counts the first failure per node."""

    def __init__(self) -> None:
        self.filters: list[Filter] = [ReadyFilter(), ResourceFilter(), ConstraintFilter(), HostPortFilter(),
                                      MaxReplicasFilter()]
        self.enabled: list[Filter] = []
        self.failures = [0] * len(self.filters)
        self._positions: list[int] = []

    def set_task(self, task: Task) -> None:
        self.enabled = []
        self._positions = []
        for position, candidate in enumerate(self.filters):
            if candidate.set_task(task):
                self.enabled.append(candidate)
                self._positions.append(position)
        self.failures = [0] * len(self.filters)

    def process(self, info: NodeInfo) -> bool:
        for position, candidate in zip(self._positions, self.enabled):
            if not candidate.check(info):
                self.failures[position] += 1
                return False
        return True

    def explain(self) -> str:
        parts = [f.explain(count) for f, count in zip(self.filters, self.failures) if count]
        if not parts:
            return "no suitable node (no nodes in the cluster)"
        return "no suitable node (" + "; ".join(parts) + ")"


# ----------------------------------------------------------- group placement

@dataclass(frozen=True, slots=True)
class GroupResult:
    placements: list             # [(NodeInfo, [task, ...])] - tasks given to each node
    unplaced: list               # [task]
    explanation: str = ""

    @property
    def assignments(self) -> list:
        """[(task, node id)], one per placed task."""
        return [(task, info.node.id) for info, tasks in self.placements for task in tasks]


def group_capacity(info: NodeInfo, task: Task) -> int:
    """How many more tasks like ``task`` fit on the node (filters that bound counts)."""
    reservations = task.template.reservations
    capacity = capacity_for_resources(info, reservations.nano_cpus, reservations.memory_bytes)
    limit = task.template.placement.max_replicas_per_node
    if limit:
        capacity = min(capacity, max(0, limit - info.by_service.get(task.service_id, 0)))
    if task.host_ports:
        capacity = min(capacity, 1)
    return capacity


def schedule_group(tasks: list[Task], infos: list[NodeInfo], pipeline: Pipeline, now_ticks: int,
                   failure_window_ticks: int, failures_max: int) -> GroupResult:
    """Place identical ``tasks`` (same service, same spec) on ``infos``."""
    assert tasks, "empty group"
    first = tasks[0]
    service_id = first.service_id
    pipeline.set_task(first)
    eligible = [info for info in infos if pipeline.process(info)]
    capacities = [group_capacity(info, first) for info in eligible]
    total_capacity = sum(min(c, len(tasks)) for c in capacities)
    if not eligible or total_capacity == 0:
        return GroupResult([], list(tasks), pipeline.explain())
    preferences = parse_preferences(first.template.placement.preferences)
    counts = _distribute(eligible, capacities, len(tasks), preferences, service_id, now_ticks,
                         failure_window_ticks, failures_max)
    placements = []
    position = 0
    for info, count in zip(eligible, counts):
        if count:
            placements.append((info, tasks[position:position + count]))
            position += count
    unplaced = list(tasks[position:])
    explanation = ""
    if unplaced:
        given = {id(info): count for info, count in zip(eligible, counts)}
        pipeline.set_task(first)
        for info in infos:
            if pipeline.process(info) and group_capacity(info, first) <= given.get(id(info), 0):
                pipeline.failures[_full_reason(info, first)] += 1
        explanation = pipeline.explain()
    return GroupResult(placements, unplaced, explanation)


def _full_reason(info: NodeInfo, task: Task) -> int:
    """Pipeline position of the filter that a full node would fail next."""
    if task.host_ports:
        return 3
    if task.template.placement.max_replicas_per_node:
        limit = task.template.placement.max_replicas_per_node
        reservations = task.template.reservations
        if capacity_for_resources(info, reservations.nano_cpus, reservations.memory_bytes) > 0 or \
                info.by_service.get(task.service_id, 0) >= limit:
            return 4
    return 1


def _distribute(eligible: list[NodeInfo], capacities: list[int], n: int, preferences: tuple[str, ...],
                service_id: str, now_ticks: int, window_ticks: int, failures_max: int) -> list[int]:
    """How many of the ``n`` tasks each eligible node gets."""
    counts = [0] * len(eligible)
    indexes = list(range(len(eligible)))
    _distribute_tree(indexes, eligible, capacities, n, preferences, service_id, now_ticks, window_ticks,
                     failures_max, counts)
    return counts


def _distribute_tree(indexes: list[int], eligible, capacities, n: int, preferences, service_id, now_ticks,
                     window_ticks, failures_max, counts: list[int]) -> int:
    if n <= 0:
        return 0
    if not preferences:
        return _fill_nodes(indexes, eligible, capacities, n, service_id, now_ticks, window_ticks, failures_max,
                           counts)
    key = preferences[0]
    branches: dict[str, list[int]] = {}
    for index in indexes:
        value = node_attribute(eligible[index].node, key)
        branches.setdefault("" if value is None else value, []).append(index)
    names = sorted(branches)
    existing = [sum(eligible[i].by_service.get(service_id, 0) for i in branches[name]) for name in names]
    capacity = [min(n, sum(min(capacities[i], n) for i in branches[name])) for name in names]
    shares = water_fill(existing, capacity, n)
    placed = 0
    for name, share in zip(names, shares):
        placed += _distribute_tree(branches[name], eligible, capacities, share, preferences[1:], service_id,
                                   now_ticks, window_ticks, failures_max, counts)
    return placed


def water_fill(existing: list[int], capacity: list[int], n: int) -> list[int]:
    """Give ``n`` units to bins so that existing+given is as level as possible
    (lowest first, ties by position), never over a bin's capacity."""
    given = [0] * len(existing)
    heap = [(existing[i], i) for i in range(len(existing)) if capacity[i] > 0]
    heapq.heapify(heap)
    while n > 0 and heap:
        level, i = heap[0]
        given[i] += 1
        n -= 1
        if given[i] < capacity[i]:
            heapq.heapreplace(heap, (level + 1, i))
        else:
            heapq.heappop(heap)
    return given


def _fill_nodes(indexes: list[int], eligible, capacities, n: int, service_id: str, now_ticks: int,
                window_ticks: int, failures_max: int, counts: list[int]) -> int:
    # Heap key: (failed too often recently, tasks of this service, total tasks, order).
    # Nodes where the service failed >= failures_max times in the window go last
    # (swarmkit scheduler.go nodeLess with maxFailures/monitorFailures).
    heap = []
    for i in indexes:
        if capacities[i] <= 0:
            continue
        info = eligible[i]
        penalty = 1 if failures_max and info.failures and \
            info.recent_failures(service_id, now_ticks, window_ticks) >= failures_max else 0
        heap.append((penalty, info.by_service.get(service_id, 0), info.total, i))
    heapq.heapify(heap)
    placed = 0
    replace = heapq.heapreplace
    while placed < n and heap:
        penalty, mine, total, i = heap[0]
        counts[i] += 1
        placed += 1
        if counts[i] < capacities[i]:
            replace(heap, (penalty, mine + 1, total + 1, i))
        else:
            heapq.heappop(heap)
    return placed
