"""Store: versioned all-or-nothing transactions, typed results for conflicts
and malformed entries, deterministic snapshots."""
from __future__ import annotations

from hypothesis import given, strategies as st

from scheduler.errors import AlreadyExists, MalformedEntry, NotFound, StateRegression, VersionConflict
from scheduler.model import Node, NodeStatus, Service, ServiceSpec, TaskState, TaskStatus, evolve
from scheduler.store import (Assert, Create, CreateTasks, Delete, PatchTask, PatchTasks, ReportStatus, Store,
                             Transaction, Update)

SPEC = ServiceSpec(name="web", replicas=2)


def fresh() -> Store:
    store = Store()
    result = store.apply(1, Transaction((Create(Service("s1", SPEC)), Create(Node("n1", "n1", status=NodeStatus.READY)),
                                         CreateTasks("s1", 1, SPEC.task, TaskState.RUNNING,
                                                     (("t1", 1, "n1"), ("t2", 2, "")), 0)), "test").encode())
    assert result.ok, result.error
    return store


def apply(store: Store, *ops):
    return store.apply(store.applied_index + 1, Transaction(tuple(ops), "test").encode())


def test_versions_are_raft_indexes_and_conflicts_are_typed() -> None:
    store = fresh()
    service = store.get("service", "s1")
    assert service.version == 1
    result = apply(store, Update(evolve(service, spec=ServiceSpec(name="web", replicas=5)), 1))
    assert result.ok and store.get("service", "s1").version == 2
    stale = apply(store, Update(evolve(service, spec=ServiceSpec(name="web", replicas=7)), 1))
    assert not stale.ok and isinstance(stale.error, VersionConflict)
    assert store.get("service", "s1").spec.replicas == 5


def test_transactions_are_all_or_nothing() -> None:
    store = fresh()
    before = store.snapshot()
    result = apply(store, PatchTask("t1", 1, desired_state=TaskState.SHUTDOWN),
                   Create(Service("s2", ServiceSpec(name="other"))),
                   Delete("task", "t2", 99))
    assert not result.ok and isinstance(result.error, VersionConflict)
    assert store.get("task", "t1").desired_state == TaskState.RUNNING
    assert store.get("service", "s2") is None
    assert store.snapshot()[5:] == before[5:] or store.applied_index == 2


def test_typed_errors_for_each_refusal() -> None:
    store = fresh()
    assert isinstance(apply(store, Create(Service("s9", SPEC))).error, AlreadyExists)   # name taken
    assert isinstance(apply(store, Delete("task", "nope", 0)).error, NotFound)
    assert isinstance(apply(store, Assert("service", "s1", 7)).error, VersionConflict)
    assert apply(store, Assert("service", "zzz", 0)).ok
    assert isinstance(apply(store, CreateTasks("s1", 1, SPEC.task, TaskState.RUNNING, (("t1", 1, ""),), 0)).error,
                      AlreadyExists)
    running = apply(store, PatchTask("t1", 1, status=TaskStatus(TaskState.RUNNING)))
    assert running.ok
    back = apply(store, PatchTask("t1", running.index, status=TaskStatus(TaskState.ASSIGNED)))
    assert isinstance(back.error, StateRegression)
    back = apply(store, PatchTasks((("t1", running.index, None, None),), TaskStatus(TaskState.PENDING)))
    assert isinstance(back.error, StateRegression)


def test_agent_reports_are_forward_only_and_stale_ones_counted() -> None:
    store = fresh()
    assert apply(store, ReportStatus("t1", "n1", TaskStatus(TaskState.RUNNING))).ok
    result = apply(store, ReportStatus("t1", "n1", TaskStatus(TaskState.STARTING)),
                   ReportStatus("t1", "other-node", TaskStatus(TaskState.FAILED)),
                   ReportStatus("ghost", "n1", TaskStatus(TaskState.FAILED)))
    assert result.ok and result.events == ()
    assert store.stats["status_regressions_dropped"] == 3
    assert store.get("task", "t1").status.state == TaskState.RUNNING


def test_bulk_patch_and_indexes() -> None:
    store = fresh()
    result = apply(store, PatchTasks((("t2", 1, "n1", (("net", "10.0.1.2"),)),), TaskStatus(TaskState.ASSIGNED)))
    assert result.ok
    task = store.get("task", "t2")
    assert task.node_id == "n1" and task.networks == (("net", "10.0.1.2"),) and task.version == result.index
    assert set(store.tasks_on_node("n1")) == {"t1", "t2"}
    assert apply(store, Delete("task", "t2", 0)).ok
    assert set(store.tasks_on_node("n1")) == {"t1"} and set(store.tasks_of_service("s1")) == {"t1"}


def test_snapshot_restore_roundtrip_is_deterministic() -> None:
    store = fresh()
    apply(store, PatchTask("t1", 1, status=TaskStatus(TaskState.RUNNING, "x", "", 3)))
    data = store.snapshot()
    restored = Store.restore(data)
    assert restored.snapshot() == data
    assert restored.get("task", "t1") == store.get("task", "t1")
    assert restored.applied_index == store.applied_index
    other = Store()
    other.restore_into(data)
    assert other.snapshot() == data


def test_stale_index_and_wrong_types_are_results() -> None:
    store = fresh()
    assert not store.apply(1, b"").ok
    assert isinstance(store.apply(5, "text").error, MalformedEntry)
    for bad in ([1, "", "", 0, [], [["zz"]]], [1, "", "", 0, [], [["p", "t1", "x", None, None, None, None]]],
                [1, "", "", 0, [], [["c", "service", ["s3"]]]], [2, "", "", 0, [], []],
                [1, "", "", 0, [[1, 2]], []]):
        from scheduler import codec
        result = store.apply(store.applied_index + 1, codec.pack(bad))
        assert not result.ok and isinstance(result.error, MalformedEntry), bad


@given(st.binary(max_size=200))
def test_garbage_never_raises(data: bytes) -> None:
    store = fresh()
    result = store.apply(2, data)
    assert isinstance(result.error, (MalformedEntry, type(None)))


@given(st.lists(st.one_of(st.none(), st.integers(-2**63, 2**63 - 1), st.text(max_size=5), st.binary(max_size=5),
                          st.lists(st.integers(-2**63, 2**63 - 1), max_size=3)), max_size=8))
def test_structured_garbage_never_raises(value) -> None:
    from scheduler import codec
    store = fresh()
    ops = [["p"] + value, ["c", "task", value], ["P", None, None, [value]]]
    result = store.apply(2, codec.pack([1, "", "", 0, [], ops]))
    assert not result.ok


def test_restore_rejects_garbage() -> None:
    import pytest
    with pytest.raises(MalformedEntry):
        Store.restore(b"\x93\x01\x02")
