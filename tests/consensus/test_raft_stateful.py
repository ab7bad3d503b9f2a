"""A hypothesis state machine driving three RaftNodes message by message:
any delivery order, drops, duplicates, ticks, proposals, crashes and
restarts (raiden-style: messages in flight are a bundle the rules pick
from).  After every rule: election safety, log matching, leader
completeness and state machine safety."""
from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from consensus.errors import RaftError
from consensus.types import EntryType
from raft_network import Net

NODES = (1, 2, 3)


class RaftMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.net = Net(NODES, seed=0)
        self.leaders: dict[int, int] = {}
        self.committed: dict[int, tuple[int, bytes]] = {}
        self.counter = 0

    def _process_readies(self) -> None:
        for node_id in NODES:
            if node_id not in self.net.down:
                while self.net.handle_ready(node_id):
                    pass

    @rule(node=st.sampled_from(NODES), count=st.integers(1, 25))
    def tick(self, node: int, count: int) -> None:
        if node not in self.net.down:
            self.net.tick(node, count)
        self._process_readies()

    @rule(position=st.integers(0, 1000))
    def deliver(self, position: int) -> None:
        queue = self.net.queue
        if queue:
            message = queue.pop(position % len(queue))
            if message.to not in self.net.down:
                self.net.nodes[message.to].step(message)
        self._process_readies()

    @rule(position=st.integers(0, 1000))
    def drop(self, position: int) -> None:
        if self.net.queue:
            self.net.queue.pop(position % len(self.net.queue))

    @rule(position=st.integers(0, 1000))
    def duplicate(self, position: int) -> None:
        if self.net.queue:
            self.net.queue.append(self.net.queue[position % len(self.net.queue)])

    @rule(node=st.sampled_from(NODES))
    def propose(self, node: int) -> None:
        if node in self.net.down:
            return
        self.counter += 1
        try:
            self.net.nodes[node].propose(b"v%d" % self.counter)
        except RaftError:
            pass
        self._process_readies()

    @rule(node=st.sampled_from(NODES))
    def crash(self, node: int) -> None:
        self.net.crash(node)

    @rule(node=st.sampled_from(NODES))
    def restart(self, node: int) -> None:
        if node in self.net.down:
            self.net.start(node)
            self._process_readies()

    @invariant()
    def election_safety(self) -> None:
        for node_id, node in self.net.nodes.items():
            if node.is_leader and node_id not in self.net.down:
                holder = self.leaders.setdefault(node.term, node_id)
                assert holder == node_id, f"two leaders in term {node.term}: {holder} and {node_id}"

    @invariant()
    def log_matching(self) -> None:
        logs = {n: self.net.nodes[n].log for n in NODES}
        for a in NODES:
            for b in NODES:
                if a >= b:
                    continue
                la, lb = logs[a], logs[b]
                top = min(la.last_index(), lb.last_index())
                low = max(la.first_index(), lb.first_index())
                for index in range(top, low - 1, -1):
                    if la.term(index) == lb.term(index):
                        for i in range(low, index + 1):
                            assert la.term(i) == lb.term(i), f"logs of {a} and {b} match at {index} but not at {i}"
                        break

    @invariant()
    def state_machine_safety_and_leader_completeness(self) -> None:
        for node_id in NODES:
            for entry in self.net.applied[node_id]:
                value = (entry.term, entry.data)
                seen = self.committed.setdefault(entry.index, value)
                assert seen == value, f"index {entry.index}: {seen} vs {value} at node {node_id}"
        for node_id, node in self.net.nodes.items():
            if node.is_leader and node_id not in self.net.down and self.committed:
                top = max(self.committed)
                assert node.log.last_index() >= top, f"leader {node_id} lacks committed entry {top}"
                if top >= node.log.first_index():
                    assert node.log.term(top) == self.committed[top][0]


RaftMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestRaftStateful = RaftMachine.TestCase


def test_entries_applied_are_normal_or_conf() -> None:
    assert {EntryType.NORMAL, EntryType.CONF_CHANGE} == set(EntryType)
