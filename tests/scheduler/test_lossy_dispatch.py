"""Agent <-> dispatcher traffic over lossy, duplicating, reordering links.

The dispatcher sends a node its full set of assignments only when that set
changes, on a new session, or when a heartbeat shows the agent does not hold
the last set sent (there is no stream underneath to redeliver a lost one);
an agent repeats a task state with its heartbeats only until a HeartbeatAck
acknowledges it. These tests check that this anti-entropy still converges:
after the faults stop, every agent holds exactly the tasks the store assigns
it, the store has every state the agents observed, and every service runs
its replicas, with any seed.
"""
from __future__ import annotations

from random import Random

from hypothesis import given, settings, strategies as st

from scheduler.cluster import LocalCluster
from scheduler.component import Context
from scheduler.config import ManagerConfig
from scheduler.dispatcher import Dispatcher
from scheduler.messages import Assignments, Heartbeat, HeartbeatAck, Register, RegisterAck
from scheduler.model import ServiceMode, ServiceSpec, Task, TaskState, TaskStatus, TaskTemplate
from scheduler.store import Store
from tests.scheduler.test_components import commit

CONFIG = ManagerConfig(heartbeat_period_ticks=5, heartbeat_grace_multiplier=3)


class LossyCluster(LocalCluster):
    """LocalCluster whose agent traffic (both ways) is dropped, duplicated and
    delayed by 0-7 ticks at random while ``faulty`` (then delivered in a
    tick or not at all: in flight messages keep their delays)."""

    def __init__(self, *args, link_seed: int = 0, loss: float = 0.3, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.link_rng = Random(link_seed)
        self.loss = loss
        self.faulty = True
        # (due tick, send order, direction, node, message)
        self.in_flight: list[tuple[int, int, str, str, object]] = []
        self.sent_total = 0

    def _send(self, direction: str, node: str, message: object) -> None:
        copies = 1
        if self.faulty:
            roll = self.link_rng.random()
            copies = 0 if roll < self.loss else 2 if roll < self.loss + 0.1 else 1
        for _ in range(copies):
            delay = self.link_rng.randint(0, 7) if self.faulty else 0
            self.sent_total += 1
            self.in_flight.append((self.now + delay, self.sent_total, direction, node, message))

    def step(self) -> None:
        self.now += 1
        leader = self.leader
        for name in sorted(self.agents):
            if self.alive[name]:
                for message in self.agents[name].tick(self.now):
                    self._send("up", name, message)
        due = sorted(entry for entry in self.in_flight if entry[0] <= self.now)
        self.in_flight = [entry for entry in self.in_flight if entry[0] > self.now]
        for _, _, direction, node, message in due:
            if direction == "up":
                leader.handle_agent_message(message, self.now)
            elif self.alive.get(node):
                self.agents[node].receive(message, self.now)
        for data in leader.tick(self.now):
            self.submit(data)
        for node, message in leader.take_agent_messages():
            self._send("down", node, message)

    def agents_hold_their_assignments(self) -> bool:
        store = self.store
        for name, agent in self.agents.items():
            assigned = {task.id for task in store.tasks_on_node(name).values()
                        if task.status.state >= TaskState.ASSIGNED and
                        not (task.status.state >= TaskState.COMPLETE and
                             task.desired_state > TaskState.RUNNING)}
            if set(agent.tasks) != assigned:
                return False
        return True

    def store_has_the_agents_states(self) -> bool:
        """Every state an agent observed reached the store (reports are
        repeated until acknowledged)."""
        store = self.store
        for name, agent in self.agents.items():
            for task_id, local in agent.tasks.items():
                task = store.get("task", task_id)
                if task is not None and task.node_id == name and task.status.state < local.state:
                    return False
        return True


def _service(name: str, replicas: int) -> ServiceSpec:
    return ServiceSpec(name, ServiceMode.REPLICATED, replicas, TaskTemplate(command=("nginx",)))


def _run_with_upsets(cluster: LossyCluster, rng: Random, ticks: int, upsets: bool) -> None:
    """Run; with ``upsets``, now and then a node dies or comes back, or the
    leadership moves (old dispatchers' messages may still be in flight, under
    session ids the new dispatcher hands out again)."""
    for _ in range(ticks):
        roll = rng.random()
        if upsets and roll < 0.01:
            node = rng.choice(sorted(cluster.agents))
            if cluster.alive[node]:
                cluster.kill_node(node)
            else:
                cluster.restart_node(node)
        elif upsets and roll < 0.015:
            cluster.change_leader(rng.randrange(len(cluster.managers)))
        cluster.step()


@settings(deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.1, 0.3, 0.6]), st.booleans())
def test_lossy_links_converge_once_they_heal(seed: int, loss: float, upsets: bool) -> None:
    print("seed", seed, "loss", loss, "upsets", upsets)
    cluster = LossyCluster(managers=2, workers=3, seed=seed, config=CONFIG, link_seed=seed,
                           loss=loss)
    rng = Random(seed)
    cluster.propose(cluster.leader.api.create_service(_service("web", rng.randint(1, 6))))
    _run_with_upsets(cluster, rng, rng.randint(20, 120), upsets)
    cluster.propose(cluster.leader.api.scale("web", rng.randint(0, 6)))
    cluster.propose(cluster.leader.api.create_service(_service("api", rng.randint(1, 3))))
    _run_with_upsets(cluster, rng, rng.randint(0, 120), upsets)
    cluster.faulty = False
    for node in cluster.agents:
        if not cluster.alive[node]:
            cluster.restart_node(node)
    cluster.run_until(lambda: cluster.converged("web") and cluster.converged("api") and
                      cluster.agents_hold_their_assignments() and cluster.store_has_the_agents_states(),
                      ticks_max=600)


def test_the_lossy_runs_do_lose_assignments() -> None:
    # The test above is not vacuous: with these links, sets get lost and are
    # re-sent on a heartbeat.
    cluster = LossyCluster(managers=1, workers=3, seed=5, config=CONFIG, link_seed=5, loss=0.3)
    cluster.propose(cluster.leader.api.create_service(_service("web", 6)))
    cluster.run(200)
    cluster.faulty = False
    cluster.run_until(lambda: cluster.converged("web") and cluster.agents_hold_their_assignments())
    assert cluster.leader.dispatcher.stats["assignments_resent"] > 0


def _registered(node: str = "n1") -> tuple[Dispatcher, Context, int]:
    store = Store()
    context = Context(store, CONFIG, 0)
    dispatcher = Dispatcher()
    dispatcher.start(context)
    dispatcher.handle(Register(node, node), context)
    session = dispatcher.sessions[node]
    commit(store, dispatcher.tick(context))
    return dispatcher, context, session


def test_a_heartbeat_holding_the_last_set_gets_an_ack_and_no_set() -> None:
    dispatcher, context, session = _registered()
    sets = [m for _, m in dispatcher.take_outbox() if isinstance(m, Assignments)]
    assert len(sets) == 1 and sets[0].results_in > 0
    dispatcher.handle(Heartbeat("n1", session, sets[0].results_in), context)
    dispatcher.tick(context)
    assert [type(m) for _, m in dispatcher.take_outbox()] == [HeartbeatAck]


def test_a_heartbeat_missing_the_last_set_gets_it_again_with_a_higher_number() -> None:
    dispatcher, context, session = _registered()
    first = [m for _, m in dispatcher.take_outbox() if isinstance(m, Assignments)][0]
    dispatcher.handle(Heartbeat("n1", session, 0), context)        # the set was lost
    dispatcher.tick(context)
    again = [m for _, m in dispatcher.take_outbox()]
    assert len(again) == 1 and isinstance(again[0], Assignments)
    assert again[0].tasks == first.tasks and again[0].results_in > first.results_in
    # A number this dispatcher never sent (a former leader's set with a
    # session id that collides): the next set is numbered above it.
    dispatcher.handle(Heartbeat("n1", session, again[0].results_in + 100), context)
    dispatcher.tick(context)
    third = [m for _, m in dispatcher.take_outbox()]
    assert isinstance(third[0], Assignments) and third[0].results_in > again[0].results_in + 100
    assert dispatcher.stats["assignments_resent"] == 2


def test_the_agent_applies_only_newer_sets_and_reports_the_one_it_holds() -> None:
    from scheduler.agent import Agent
    from scheduler.runtime import SimulatedRuntime

    agent = Agent("n1", "n1", SimulatedRuntime(Random(1)), heartbeat_period_ticks=5)
    agent.tick(0)
    agent.receive(RegisterAck("n1", 3, 5), 0)
    task = Task("t", "s", 1, "n1", status=TaskStatus(TaskState.ASSIGNED))
    agent.receive(Assignments("n1", 3, (task,), results_in=7), 0)
    agent.receive(Assignments("n1", 3, (), results_in=6), 1)       # overtaken by set 7: ignored
    assert set(agent.tasks) == {"t"}
    beat = [m for m in agent.tick(5) if isinstance(m, Heartbeat)]
    assert beat[0].assignments_applied == 7
    agent.receive(HeartbeatAck("n1", 3), 5)                          # changes nothing
    agent.receive(Assignments("n1", 3, (), results_in=8), 6)
    assert not agent.tasks
    # A new session: sets are numbered afresh, and the heartbeat says none is held.
    agent.receive(RegisterAck("n1", 4, 5), 7)
    assert [m for m in agent.tick(12) if isinstance(m, Heartbeat)][0].assignments_applied == 0
    agent.receive(Assignments("n1", 4, (task,), results_in=1), 13)
    assert set(agent.tasks) == {"t"}


def test_the_agent_repeats_a_state_with_its_heartbeats_until_acknowledged() -> None:
    from scheduler.agent import Agent
    from scheduler.messages import StatusReport
    from scheduler.runtime import SimulatedRuntime

    agent = Agent("n1", "n1", SimulatedRuntime(Random(1), (1, 1)), heartbeat_period_ticks=5)
    agent.tick(0)
    agent.receive(RegisterAck("n1", 3, 5), 0)
    task = Task("t", "s", 1, "n1", status=TaskStatus(TaskState.ASSIGNED))
    agent.receive(Assignments("n1", 3, (task,), results_in=1), 0)
    first = agent.tick(1)                                           # ACCEPTED, at once
    assert isinstance(first[0], StatusReport) and first[0].updates[0][1].state == TaskState.ACCEPTED
    for now in range(2, 5):
        agent.tick(now)                                             # up to RUNNING
    beat = [m for m in agent.tick(5) if isinstance(m, Heartbeat)][0]
    assert [status.state for _, status in beat.updates] == [TaskState.RUNNING]
    agent.receive(HeartbeatAck("n1", 3, beat.beat - 1), 5)         # an older heartbeat's ack
    agent.receive(HeartbeatAck("n1", 4, beat.beat), 5)             # another session's
    again = [m for m in agent.tick(10) if isinstance(m, Heartbeat)][0]
    assert again.updates == beat.updates                            # still unacknowledged
    agent.receive(HeartbeatAck("n1", 3, again.beat), 10)
    quiet = [m for m in agent.tick(15) if isinstance(m, Heartbeat)][0]
    assert quiet.updates == ()


def test_a_heartbeat_with_states_is_acknowledged_once_they_are_buffered() -> None:
    dispatcher, context, session = _registered()
    held = [m for _, m in dispatcher.take_outbox() if isinstance(m, Assignments)][0].results_in
    running = TaskStatus(TaskState.RUNNING)
    dispatcher.handle(Heartbeat("n1", session, held, (("t", running),), 9), context)
    assert dispatcher.take_outbox() == [("n1", HeartbeatAck("n1", session, 9))]
    assert dispatcher.reports == {"t": ("n1", running)}
    full = Dispatcher()
    full.start(context)
    full.handle(Register("n1", "n1"), context)
    full.tick(context)
    held = [m for _, m in full.take_outbox() if isinstance(m, Assignments)][0].results_in
    small = ManagerConfig(status_buffer_max=1)
    full.reports["other"] = ("n2", running)
    full.handle(Heartbeat("n1", full.sessions["n1"], held, (("t", running),), 4),
                Context(context.store, small, 0))
    # The buffer was full: not acknowledged (beat 0), so the agent repeats it.
    assert full.take_outbox() == [("n1", HeartbeatAck("n1", full.sessions["n1"], 0))]
