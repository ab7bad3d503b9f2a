"""Filter pipeline, explanations, group placement, spread preferences."""
from __future__ import annotations

from hypothesis import given, strategies as st

from scheduler.model import (Node, NodeAvailability, NodeStatus, Placement, Resources, Task, TaskTemplate,
                             labels_from)
from scheduler.placement import NodeInfo, Pipeline, schedule_group, water_fill


def nodes(count: int, **kwargs) -> list[NodeInfo]:
    labels = kwargs.pop("labels", lambda i: {})
    return [NodeInfo(Node(f"n{i:03d}", f"n{i:03d}", status=NodeStatus.READY, labels=labels_from(labels(i)),
                          **kwargs)) for i in range(count)]


def tasks(count: int, service: str = "s1", **template) -> list[Task]:
    shared = TaskTemplate(**template)
    return [Task(f"{service}.{i}", service, i + 1, template=shared) for i in range(count)]


def place(group, infos, now=0):
    result = schedule_group(group, infos, Pipeline(), now, 3000, 5)
    for task, node_id in result.assignments:
        next(i for i in infos if i.node.id == node_id).add_task(task)
    return result


def per_node(result) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, node_id in result.assignments:
        counts[node_id] = counts.get(node_id, 0) + 1
    return counts


def test_spreads_evenly_and_fills_least_loaded_first() -> None:
    infos = nodes(4)
    place(tasks(3, "other"), infos)                       # n000..n002 carry one other task each
    result = place(tasks(6), infos)
    counts = per_node(result)
    assert sorted(counts.values()) == [1, 1, 2, 2]
    assert counts["n003"] == 2                            # least total load gets the extra


def test_explanations_name_the_filter() -> None:
    infos = nodes(5)
    result = place(tasks(1, placement=Placement(constraints=("node.labels.zone==mars",))), infos)
    assert result.explanation == "no suitable node (scheduling constraints not satisfied on 5 nodes)"
    infos[0].node = Node("n000", "n000", status=NodeStatus.DOWN)
    infos[1].node = Node("n001", "n001", status=NodeStatus.READY, availability=NodeAvailability.DRAIN)
    result = place(tasks(1, placement=Placement(constraints=("node.labels.zone==mars",))), infos)
    assert result.explanation == ("no suitable node (2 nodes not available for new tasks; "
                                  "scheduling constraints not satisfied on 3 nodes)")


def test_resources_bound_the_group() -> None:
    infos = nodes(3, resources=Resources(nano_cpus=2_000_000_000, memory_bytes=1 << 30))
    result = place(tasks(10, reservations=Resources(nano_cpus=1_000_000_000)), infos)
    assert len(result.assignments) == 6 and len(result.unplaced) == 4
    assert result.explanation == "no suitable node (insufficient resources on 3 nodes)"


def test_max_replicas_per_node_and_host_ports() -> None:
    infos = nodes(2)
    result = place(tasks(5, placement=Placement(max_replicas_per_node=2)), infos)
    assert len(result.assignments) == 4
    assert "max replicas per node limit exceeded on 2 nodes" in result.explanation
    infos = nodes(3)
    group = [Task(f"p.{i}", "p", i + 1, host_ports=(("tcp", 8080),)) for i in range(4)]
    result = place(group, infos)
    assert len(result.assignments) == 3
    assert "host-mode port already in use on 3 nodes" in result.explanation


def test_spread_preference_balances_label_values_first() -> None:
    # 4 nodes in zone a, 1 in zone b: spread gives each zone half.
    infos = nodes(5, labels=lambda i: {"zone": "a" if i < 4 else "b"})
    result = place(tasks(6, placement=Placement(preferences=("spread=node.labels.zone",))), infos)
    counts = per_node(result)
    assert counts["n004"] == 3
    assert sum(counts.get(f"n00{i}", 0) for i in range(4)) == 3


def test_nodes_where_the_service_failed_go_last() -> None:
    infos = nodes(2)
    for tick in range(5):
        infos[0].record_failure("s1", tick)
    result = place(tasks(1), infos, now=10)
    assert result.assignments[0][1] == "n001"


def test_water_fill() -> None:
    assert water_fill([0, 0, 0], [5, 5, 5], 4) == [2, 1, 1]
    assert water_fill([3, 0], [10, 10], 5) == [1, 4]
    assert water_fill([0, 0], [1, 0], 5) == [1, 0]


@given(st.integers(1, 12), st.integers(0, 60), st.integers(0, 3), st.integers(0, 2**32))
def test_spread_differs_by_at_most_one_on_homogeneous_nodes(node_count, task_count, zones, seed) -> None:
    infos = nodes(node_count, labels=lambda i: {"zone": str((i * 7 + seed) % zones)} if zones else {})
    constraint = ("node.labels.zone!=0",) if zones > 1 else ()
    if task_count == 0:
        return
    result = place(tasks(task_count, placement=Placement(constraints=constraint)), infos)
    eligible = [i for i in infos if not constraint or dict(i.node.labels)["zone"] != "0"]
    counts = [i.by_service.get("s1", 0) for i in eligible]
    assert sum(counts) == (task_count if eligible else 0)
    if counts:
        assert max(counts) - min(counts) <= 1
    for task, node_id in result.assignments:     # constraints never violated
        node = next(i.node for i in infos if i.node.id == node_id)
        assert not constraint or dict(node.labels)["zone"] != "0"
