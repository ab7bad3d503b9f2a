"""Unit tests of single components: dispatcher, agent and runtime, reaper,
allocator, manager plumbing."""
from __future__ import annotations

import random

from scheduler.agent import Agent
from scheduler.allocator import DYNAMIC_PORT_FIRST
from scheduler.cluster import LocalCluster
from scheduler.component import Context
from scheduler.config import ManagerConfig
from scheduler.dispatcher import Dispatcher
from scheduler.manager import Manager
from scheduler.messages import Assignments, Heartbeat, Register, RegisterAck, SessionInvalid, StatusReport
from scheduler.model import (NodeStatus, PortConfig, RestartPolicy, Service, ServiceSpec, Task, TaskState,
                             TaskStatus, TaskTemplate)
from scheduler.reaper import TaskReaper
from scheduler.runtime import SimulatedRuntime
from scheduler.store import Create, CreateTasks, PatchTask, Store, Transaction

CONFIG = ManagerConfig(heartbeat_period_ticks=5, heartbeat_grace_multiplier=3)


def commit(store: Store, ops: list) -> None:
    result = store.apply(store.applied_index + 1, Transaction(tuple(ops), "test").encode())
    assert result.ok, result.error


def test_dispatcher_registers_and_declares_silent_nodes_down_after_the_grace() -> None:
    store = Store()
    context = Context(store, CONFIG, 0)
    dispatcher = Dispatcher()
    dispatcher.start(context)
    dispatcher.handle(Register("n1", "n1"), context)
    assert isinstance(dispatcher.take_outbox()[0][1], RegisterAck)
    commit(store, dispatcher.tick(context))
    assert store.get("node", "n1").status == NodeStatus.READY
    for now in range(1, 16):                     # silent for exactly 5 x 3 ticks: still up
        context.now_ticks = now
        assert dispatcher.tick(context) == []
    context.now_ticks = 16
    ops = dispatcher.tick(context)
    assert len(ops) == 1 and ops[0].obj.status == NodeStatus.DOWN
    assert ops[0].obj.status_message == "heartbeat failure"
    dispatcher.take_outbox()
    dispatcher.handle(Heartbeat("n1", 1), context)  # the session died with the node
    assert isinstance(dispatcher.take_outbox()[0][1], SessionInvalid)


def test_dispatcher_batches_reports_and_drops_stale_ones() -> None:
    store = Store()
    context = Context(store, CONFIG, 0)
    dispatcher = Dispatcher()
    dispatcher.start(context)
    dispatcher.handle(Register("n1", "n1"), context)
    commit(store, dispatcher.tick(context))
    template = TaskTemplate()
    commit(store, [Create(Service("s", ServiceSpec(name="web"))),
                   CreateTasks("s", 1, template, TaskState.RUNNING, (("a", 1, "n1"), ("b", 2, "n1")), 0)])
    commit(store, [PatchTask("a", 2, status=TaskStatus(TaskState.ASSIGNED)),
                   PatchTask("b", 2, status=TaskStatus(TaskState.RUNNING))])
    dispatcher.handle(StatusReport("n1", 1, (("a", TaskStatus(TaskState.ACCEPTED)),
                                             ("a", TaskStatus(TaskState.PREPARING)),
                                             ("b", TaskStatus(TaskState.STARTING)),     # stale
                                             ("ghost", TaskStatus(TaskState.RUNNING)))), context)
    ops = dispatcher.tick(context)
    assert [(op.task_id, op.status.state) for op in ops] == [("a", TaskState.PREPARING)]
    dispatcher.take_outbox()
    dispatcher.on_events(store.apply(store.applied_index + 1, Transaction(tuple(ops)).encode()).events)
    dispatcher.tick(context)
    sent = [message for _, message in dispatcher.take_outbox() if isinstance(message, Assignments)]
    assert [t.id for t in sent[0].tasks] == ["a", "b"]


def test_agent_walks_a_task_through_its_states_and_stops_it() -> None:
    runtime = SimulatedRuntime(random.Random(1), start_latency_ticks=(2, 2))
    agent = Agent("n1", "n1", runtime, heartbeat_period_ticks=100)
    assert isinstance(agent.tick(0)[0], Register)
    agent.receive(RegisterAck("n1", 7, 100), 0)
    task = Task("t", "s", 1, "n1", status=TaskStatus(TaskState.ASSIGNED))
    agent.receive(Assignments("n1", 7, (task,), results_in=1), 0)
    seen = []
    for now in range(1, 10):
        for message in agent.tick(now):
            if isinstance(message, StatusReport):
                seen += [status.state for _, status in message.updates]
    assert seen == [TaskState.ACCEPTED, TaskState.PREPARING, TaskState.READY, TaskState.STARTING, TaskState.RUNNING]
    stopped = Task("t", "s", 1, "n1", desired_state=TaskState.SHUTDOWN, status=TaskStatus(TaskState.RUNNING))
    agent.receive(Assignments("n1", 7, (stopped,), results_in=2), 10)
    report = agent.tick(11)[-1]
    assert report.updates[0][1].state == TaskState.SHUTDOWN and not runtime.running
    agent.receive(Assignments("n1", 6, (), results_in=3), 12)         # an older session: ignored
    assert "t" in agent.tasks


def test_runtime_exits_and_injected_failures() -> None:
    runtime = SimulatedRuntime(random.Random(2), start_latency_ticks=(0, 0))
    runtime.start("ok", TaskTemplate(command=("exit", "0", "2")), 0)
    runtime.start("bad", TaskTemplate(command=("exit", "3", "1")), 0)
    runtime.start("boom", TaskTemplate(command=("fail-on-start",)), 0)
    runtime.start("long", TaskTemplate(command=("sleep",)), 0)
    events = {(e.task_id, e.state, e.exit_code) for now in range(4) for e in runtime.poll(now)}
    assert ("ok", TaskState.COMPLETE, 0) in events and ("bad", TaskState.FAILED, 3) in events
    assert ("boom", TaskState.FAILED, 126) in events and ("long", TaskState.RUNNING, 0) in events
    assert runtime.fail_task("long", 137)
    assert [(e.task_id, e.state, e.exit_code) for e in runtime.poll(5)] == [("long", TaskState.FAILED, 137)]
    runtime.fail_next_starts(1)
    runtime.start("next", TaskTemplate(), 6)
    assert runtime.poll(6)[0].state == TaskState.FAILED


def test_reaper_keeps_the_history_limit_per_slot() -> None:
    store = Store()
    template = TaskTemplate(restart=RestartPolicy())
    commit(store, [Create(Service("s", ServiceSpec(name="web")))])
    rows = tuple((f"s.1.{i}", 1, "") for i in range(9))
    commit(store, [CreateTasks("s", 1, template, TaskState.RUNNING, rows, 0)])
    commit(store, [PatchTask(f"s.1.{i}", 2, desired_state=TaskState.SHUTDOWN) for i in range(8)])
    reaper = TaskReaper()
    context = Context(store, ManagerConfig(task_history_limit=5), 0)
    reaper.start(context)
    ops = reaper.tick(context)
    assert len(ops) == 3                                      # 8 dead, keep 5
    commit(store, ops)
    assert "s.1.8" in store.objects["task"]                   # the live one stays


def test_published_ports_are_allocated_and_clashes_reported() -> None:
    cluster = LocalCluster(managers=1, workers=1, seed=1)
    cluster.run(2)
    api = cluster.leader.api
    assert cluster.propose(api.create_service(ServiceSpec(name="a", ports=(PortConfig(80), PortConfig(443))))).ok
    assert cluster.propose(api.create_service(ServiceSpec(name="b", ports=(PortConfig(80, 8080),)))).ok
    cluster.run(3)
    assert cluster.propose(api.create_service(ServiceSpec(name="c", ports=(PortConfig(81, 8080),)))).ok
    cluster.run(5)
    ports = {name: [p.published_port for p in cluster.store.service_named(name).endpoint.ports]
             for name in ("a", "b")}
    assert ports == {"a": [DYNAMIC_PORT_FIRST, DYNAMIC_PORT_FIRST + 1], "b": [8080]}
    assert cluster.store.service_named("c").endpoint is None
    errors = {row["error"] for row in cluster.leader.reads.service_ps("c")}
    assert any("port 8080/tcp is already in use" in e for e in errors)
    vips = {address for name in ("a", "b") for _, address in cluster.store.service_named(name).endpoint.vips}
    assert vips == {"10.0.0.2", "10.0.0.3"}                   # ingress 10.0.0.0/24, gateway .1


def test_manager_survives_garbage_and_lost_proposals() -> None:
    manager = Manager("m1", ManagerConfig(proposal_timeout_ticks=3), seed=1)
    assert manager.tick(0) == []                               # follower: nothing to propose
    assert not manager.apply(1, b"\x00garbage").ok
    manager.become_leader(1, 1)
    first = manager.tick(1)                                    # bootstrap ingress + nothing else
    assert len(first) == 1
    manager.apply(2, first[0])
    assert manager.store.get("network", "ingress") is not None
    proposal = manager.api.create_service(ServiceSpec(name="web", replicas=2))
    manager.apply(3, proposal.data)
    lost = manager.tick(2)                                     # the orchestrator's tasks: never committed
    assert lost and manager.busy
    again = [data for now in range(3, 9) for data in manager.tick(now)]
    assert manager.stats["proposal_timeouts"] == 1
    assert again                                               # resynchronised and proposed again
    assert manager.apply(4, again[0]).ok


def test_agent_session_ids_are_unique_across_leaderships() -> None:
    """A new leader's session ids are above every id an older leader issued
    (the term sits in the high bits), so an agent that held an old session
    takes the new leader's RegisterAck, and a deposed leader's late messages
    never carry a live session id."""
    from scheduler.runtime import SimulatedRuntime

    register = Register("w1", "w1")
    acks = []
    for term, registrations in ((3, 5), (4, 1)):
        manager = Manager("m1", ManagerConfig(), seed=1)
        manager.become_leader(0, 0, term)
        for _ in range(registrations):
            manager.handle_agent_message(register, 0)
        acks.append([message for _, message in manager.take_agent_messages() if isinstance(message, RegisterAck)])
    old_ids = [ack.session_id for ack in acks[0]]
    new_id = acks[1][0].session_id
    assert len(set(old_ids)) == 5 and new_id > max(old_ids)
    agent = Agent("w1", "w1", SimulatedRuntime(random.Random(1)), 0, heartbeat_period_ticks=10)
    agent.receive(acks[0][-1], 0)
    agent.receive(acks[1][0], 1)
    assert agent.session_id == new_id
