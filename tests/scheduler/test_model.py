"""Model validation: bad specs are typed errors; states only move forward."""
from __future__ import annotations

import pytest

from scheduler.constraints import parse_constraints, parse_preferences
from scheduler.errors import ConstraintSyntaxError, InvalidSpec, StateRegression
from scheduler.model import (Node, NodeRole, Placement, PortConfig, Resources, RestartPolicy, ServiceMode, ServiceSpec,
                             Task, TaskState, TaskStatus, TaskTemplate, UpdateConfig, labels_from)


@pytest.mark.parametrize("build", [
    lambda: ServiceSpec(name="web", replicas=-1),
    lambda: ServiceSpec(name="-bad"),
    lambda: ServiceSpec(name="web", mode=ServiceMode.GLOBAL, replicas=3),
    lambda: TaskTemplate(command=()),
    lambda: TaskTemplate(env=("NOEQUALS",)),
    lambda: TaskTemplate(reservations=Resources(nano_cpus=2), limits=Resources(nano_cpus=1)),
    lambda: Resources(memory_bytes=-5),
    lambda: RestartPolicy(delay_ticks=-1),
    lambda: UpdateConfig(max_failure_ratio=1.5),
    lambda: UpdateConfig(parallelism=-1),
    lambda: PortConfig(target_port=0),
    lambda: PortConfig(target_port=80, host_mode=True),
    lambda: ServiceSpec(name="web", ports=(PortConfig(80, 8080), PortConfig(81, 8080))),
    lambda: Node("n1", "host", labels=(("b", "1"), ("a", "2"))),
])
def test_bad_specs_are_typed_errors(build) -> None:
    with pytest.raises(InvalidSpec):
        build()


@pytest.mark.parametrize("text", ["node.labels.zone=east", "zone==east", "node.role==boss", "node.id=="
                                  , "node.labels.==x", 42])
def test_bad_constraints_are_syntax_errors(text) -> None:
    with pytest.raises(ConstraintSyntaxError):
        Placement(constraints=(text,))


def test_bad_preferences_are_syntax_errors() -> None:
    with pytest.raises(ConstraintSyntaxError):
        parse_preferences(("spread=node.hostname",))
    with pytest.raises(ConstraintSyntaxError):
        parse_preferences(("pack=node.labels.zone",))


def test_constraints_match_like_swarmkit() -> None:
    node = Node("abc", "worker-1", NodeRole.WORKER, labels=labels_from({"zone": "East"}),
                engine_labels=labels_from({"os": "linux"}))
    match = lambda *texts: all(c.matches(node) for c in parse_constraints(texts))  # noqa: E731
    assert match("node.id==abc", "node.hostname==WORKER-1", "node.role==worker", "node.labels.zone==east")
    assert match("node.labels.rack!=r1", "engine.labels.os==linux", "node.platform.os==linux")
    assert not match("node.labels.zone!=east")
    assert not match("node.labels.rack==r1")
    assert not match("node.role==manager")


def test_task_states_only_move_forward() -> None:
    task = Task("t1", "s1", 1).with_status(TaskStatus(TaskState.RUNNING, timestamp_ticks=5))
    assert task.history[-1] == (int(TaskState.RUNNING), 5)
    with pytest.raises(StateRegression):
        task.with_status(TaskStatus(TaskState.ASSIGNED))
    assert task.with_status(TaskStatus(TaskState.FAILED)).state == TaskState.FAILED


def test_task_states_are_ordered_as_swarmkit() -> None:
    order = [TaskState.NEW, TaskState.PENDING, TaskState.ASSIGNED, TaskState.ACCEPTED, TaskState.PREPARING,
             TaskState.READY, TaskState.STARTING, TaskState.RUNNING, TaskState.COMPLETE, TaskState.SHUTDOWN,
             TaskState.FAILED, TaskState.REJECTED, TaskState.REMOVE, TaskState.ORPHANED]
    assert order == sorted(order)
