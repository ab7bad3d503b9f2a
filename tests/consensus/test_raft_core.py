"""Unit tests of the sans-IO Raft core, driven by hand through raft_network.Net."""
from __future__ import annotations

import random

import pytest

from consensus.errors import (
    Compacted,
    ConfChangeError,
    InvariantViolation,
    NotLeader,
    ProposalDropped,
    StepLocalMessage,
    Unavailable,
    UncommittedLimitExceeded,
)
from consensus.raft import Config, ConfigError, RaftNode
from consensus.read_only import ReadOnlyOption
from consensus.storage import MemoryStorage
from consensus.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    StateRole,
)
from raft_network import Net

MT = MessageType


def test_single_node_leads_and_commits_only_after_persisting() -> None:
    node = RaftNode(Config(1, voters=(1,)), MemoryStorage(ConfState((1,))))
    node.campaign()
    assert node.is_leader
    storage = node.storage
    rd = node.ready()
    assert [e.data for e in rd.entries] == [b""]  # the no-op of the new term
    assert rd.committed_entries == ()  # not before the leader's own fsync
    storage.append(rd.entries)
    storage.set_hard_state(rd.hard_state)
    node.advance(rd)
    index = node.propose(b"hello")
    rd = node.ready()
    assert rd.committed_entries and rd.committed_entries[-1].index == index - 1
    storage.append(rd.entries)
    node.advance(rd)
    rd = node.ready()
    assert [e.data for e in rd.committed_entries] == [b"hello"]


def test_three_nodes_elect_replicate_and_agree() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    assert net.leader() == 1
    for i in range(10):
        net.nodes[1].propose(b"v%d" % i)
    net.stabilize()
    logs = {n: net.log_terms(n) for n in net.nodes}
    assert logs[1] == logs[2] == logs[3]
    applied = {n: [e.data for e in net.applied[n] if e.data and e.type == EntryType.NORMAL] for n in net.nodes}
    assert applied[1] == applied[2] == applied[3] == [b"v%d" % i for i in range(10)]


def test_not_leader_carries_hint() -> None:
    net = Net([1, 2, 3])
    with pytest.raises(NotLeader) as no_leader:
        net.nodes[2].propose(b"x")
    assert no_leader.value.leader_hint is None
    net.elect(1)
    with pytest.raises(NotLeader) as error:
        net.nodes[2].propose(b"x")
    assert error.value.leader_hint == 1
    assert "try node 1" in str(error.value)


def test_uncommitted_limit_is_backpressure() -> None:
    net = Net([1, 2, 3], max_uncommitted_entries_bytes=100)
    net.elect(1)
    net.isolate(1)
    leader = net.nodes[1]
    leader.propose(b"x" * 60)
    with pytest.raises(UncommittedLimitExceeded) as error:
        leader.propose(b"y" * 60)
    assert error.value.limit_bytes == 100
    assert isinstance(error.value, ProposalDropped)
    net.heal()
    net.tick_all(2)  # heartbeats reconnect; the entry commits; budget frees
    leader.propose(b"y" * 60)


def test_memory_storage_typed_errors() -> None:
    storage = MemoryStorage()
    storage.append([Entry(1, i) for i in range(1, 11)])
    storage.create_snapshot(5, ConfState((1,)), b"state")
    storage.compact(5)
    assert storage.first_index() == 6
    assert storage.term(5) == 1  # the dummy keeps the compaction point's term
    with pytest.raises(Compacted):
        storage.entries(3, 8)
    with pytest.raises(Compacted):
        storage.term(4)
    with pytest.raises(Unavailable):
        storage.entries(6, 20)
    with pytest.raises(Unavailable):
        storage.term(11)
    assert [e.index for e in storage.entries(6, 11, max_size_bytes=40)] == [6, 7]
    assert [e.index for e in storage.entries(6, 11, max_size_bytes=1)] == [6]  # at least one
    with pytest.raises(InvariantViolation):
        storage.append([Entry(2, 13)])  # a gap


def test_votes_and_append_acks_wait_for_persistence() -> None:
    net = Net([1, 2, 3], pre_vote=False)
    candidate = net.nodes[1]
    candidate.campaign()
    rd = candidate.ready()
    assert rd.hard_state is not None and rd.hard_state.vote == 1
    assert {m.type for m in rd.messages_after_persist} == {MT.VOTE}
    assert not rd.messages
    candidate.advance(rd)
    follower = net.nodes[2]
    vote = next(m for m in rd.messages_after_persist if m.to == 2)
    follower.step(vote)
    rd2 = follower.ready()
    assert [m.type for m in rd2.messages_after_persist] == [MT.VOTE_RESP]
    assert rd2.hard_state.vote == 1


def test_leader_appends_are_sent_before_persisting() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    leader = net.nodes[1]
    leader.propose(b"x")
    rd = leader.ready()
    assert rd.entries and any(m.type == MT.APP for m in rd.messages)
    leader.advance(rd)


def test_ready_must_be_advanced_before_the_next() -> None:
    net = Net([1])
    net.nodes[1].campaign()
    net.nodes[1].ready()
    assert not net.nodes[1].has_ready()
    with pytest.raises(InvariantViolation):
        net.nodes[1].ready()


def test_fast_backtracking_needs_few_round_trips() -> None:
    net = Net([1, 2, 3])
    # Follower 2 has a long divergent tail of term 2; the leader-to-be has term 3.
    net.set_log(1, [1] * 5 + [3] * 3, term=3)
    net.set_log(2, [1] * 5 + [2] * 50, term=2)
    net.set_log(3, [1] * 5 + [3] * 3, term=3)
    net.log_lines = []
    net.elect(1)
    rejects = [line for line in net.log_lines if "1->" not in line and "REJECT" in line and "2->1" in line]
    assert len(rejects) <= 2, net.log_lines
    assert net.log_terms(2) == net.log_terms(1)


def test_snapshot_sent_in_chunks_to_a_follower_behind_compaction() -> None:
    net = Net([1, 2, 3], snapshot_chunk_bytes=10)
    net.elect(1)
    net.crash(3)
    for i in range(20):
        net.nodes[1].propose(b"v%d" % i)
    net.stabilize()
    leader_storage = net.storages[1]
    applied = net.nodes[1].log.applied
    leader_storage.create_snapshot(applied, net.nodes[1].conf_state(), b"S" * 35)
    leader_storage.compact(applied)
    net.start(3)  # restarts with its old, short log
    net.log_lines = []
    net.tick_all(2)
    chunks = [line for line in net.log_lines if " SNAP " in line]
    assert len(chunks) == 4, chunks  # 35 bytes in chunks of 10
    assert "done=True" in chunks[-1]
    assert net.storages[3].snapshot().data == b"S" * 35
    assert net.nodes[3].log.last_index() == net.nodes[1].log.last_index()
    net.nodes[1].propose(b"after")
    net.stabilize()
    assert net.applied[3][-1].data == b"after"


def test_lost_snapshot_chunk_is_retried_after_timeout() -> None:
    net = Net([1, 2, 3], snapshot_chunk_bytes=10)
    net.elect(1)
    net.crash(3)
    for i in range(5):
        net.nodes[1].propose(b"v%d" % i)
    net.stabilize()
    applied = net.nodes[1].log.applied
    net.storages[1].create_snapshot(applied, net.nodes[1].conf_state(), b"S" * 35)
    net.storages[1].compact(applied)
    net.start(3)
    dropped = []

    def drop_second_chunk(m: Message) -> bool:
        if m.type == MT.SNAP and m.snap_offset == 10 and not dropped:
            dropped.append(m)
            return True
        return False

    net.drop_filter = drop_second_chunk
    net.tick_all(1)
    assert dropped
    assert net.storages[3].snapshot().metadata.index == 0  # incomplete: refused
    net.tick_all(net.nodes[1].snapshot_timeout_ticks + 2)
    assert net.storages[3].snapshot().metadata.index == applied


def test_leadership_transfer_and_dropped_proposals_meanwhile() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.crash(2)
    net.nodes[1].propose(b"x")
    net.stabilize()
    net.down.discard(2)
    net.nodes[1].transfer_leadership(2)
    with pytest.raises(ProposalDropped):
        net.nodes[1].propose(b"during transfer")
    net.stabilize()  # catches 2 up, sends TIMEOUT_NOW, 2 wins
    assert net.leader() == 2
    assert net.nodes[1].role == StateRole.FOLLOWER


def test_transfer_request_from_a_follower_is_forwarded() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.nodes[3].transfer_leadership(3)
    net.stabilize()
    assert net.leader() == 3


def test_read_index_on_leader_and_forwarded_from_follower() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.nodes[1].propose(b"a")
    net.stabilize()
    commit = net.nodes[1].log.committed
    net.nodes[1].read_index(b"r1")
    net.nodes[2].read_index(b"r2")
    net.stabilize()
    assert [(rs.index, rs.context) for rs in net.read_states[1]] == [(commit, b"r1")]
    assert [(rs.index, rs.context) for rs in net.read_states[2]] == [(commit, b"r2")]


def test_read_index_needs_a_quorum_heartbeat_round() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.isolate(1)
    net.nodes[1].read_index(b"r")
    net.stabilize()
    assert net.read_states[1] == []  # no quorum confirmed leadership
    with pytest.raises(ValueError):
        net.nodes[1].read_index(b"")


def test_read_index_waits_for_a_commit_in_the_leaders_term() -> None:
    net = Net([1, 2, 3], pre_vote=False, check_quorum=False)
    net.elect(1)
    net.nodes[1].propose(b"a")
    net.stabilize()
    net.isolate(1)
    net.nodes[2].campaign()
    # Stop before the new leader's no-op commits: only the vote round runs.
    for node_id in (2, 3):
        while net.handle_ready(node_id):
            pass
    while net.queue and net.queue[0].type != MT.APP:
        net.deliver_one()
        for node_id in (2, 3):
            while net.handle_ready(node_id):
                pass
    assert net.nodes[2].is_leader
    net.nodes[2].read_index(b"early")
    assert net.read_states[2] == []
    net.stabilize()
    assert [rs.context for rs in net.read_states[2]] == [b"early"]
    assert net.read_states[2][0].index >= net.nodes[2].log.committed - 0


def test_lease_reads_require_check_quorum() -> None:
    with pytest.raises(ConfigError):
        RaftNode(Config(1, voters=(1,), read_only_option=ReadOnlyOption.LEASE_BASED, check_quorum=False), MemoryStorage())


@pytest.mark.parametrize(
    "bad",
    [
        dict(id=0),
        dict(id=1, heartbeat_ticks=0),
        dict(id=1, election_ticks=1, heartbeat_ticks=1),
        dict(id=1, voters=(1, 2), learners=(2,)),
        dict(id=1, max_inflight_msgs=0),
    ],
)
def test_bad_config_is_a_typed_error(bad: dict) -> None:
    with pytest.raises(ConfigError):
        RaftNode(Config(**bad), MemoryStorage())


def test_check_quorum_leader_steps_down_within_one_election_timeout() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.tick_all(net.nodes[1].election_timeout)  # past the first window
    net.isolate(1)
    ticks = 0
    while net.nodes[1].is_leader:
        net.tick(1)
        ticks += 1
        assert ticks <= net.nodes[1].election_timeout + 1
    with pytest.raises(NotLeader):
        net.nodes[1].propose(b"x")


def test_membership_learner_first_then_promote_then_remove() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.start(4)  # a new, empty node
    leader = net.nodes[1]
    with pytest.raises(ConfChangeError):
        leader.propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 4))  # learner first
    leader.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER_NODE, 4))
    with pytest.raises(ProposalDropped):
        leader.propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 3))  # one at a time
    net.stabilize()
    assert leader.learners == {4}
    assert net.log_terms(4) == net.log_terms(1)
    leader.propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 4))
    net.stabilize()
    assert leader.voters == {1, 2, 3, 4} and net.nodes[4].voters == {1, 2, 3, 4}
    with pytest.raises(ConfChangeError):
        leader.propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 4))
    leader.propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 1))  # the leader removes itself
    net.stabilize()
    assert not leader.is_leader
    assert leader.voters == {2, 3, 4}
    net.tick_all(30)
    assert net.leader() in (2, 3, 4)


def test_conf_change_needs_a_commit_in_the_leaders_term() -> None:
    net = Net([1, 2, 3])
    net.nodes[1].campaign()
    while net.handle_ready(1):
        pass
    # Deliver the votes only; the no-op is not committed yet.
    while net.queue:
        m = net.queue.pop(0)
        if m.type in (MT.PRE_VOTE, MT.PRE_VOTE_RESP, MT.VOTE, MT.VOTE_RESP):
            net.nodes[m.to].step(m)
            for node_id in (1, 2, 3):
                while net.handle_ready(node_id):
                    pass
    assert net.nodes[1].is_leader
    with pytest.raises(ProposalDropped):
        net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER_NODE, 4))


def test_force_new_cluster_recovers_a_lost_quorum_unsafely() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.nodes[1].propose(b"before")
    net.stabilize()
    net.crash(1)
    net.crash(2)
    survivor = net.nodes[3]
    net.tick_all(50)
    assert net.leader() is None  # 1 of 3: no quorum
    survivor.force_new_cluster()
    net.stabilize()
    assert survivor.voters == {3}
    net.tick_all(30)
    assert net.leader() == 3
    survivor.propose(b"after")
    net.stabilize()
    assert [e.data for e in net.applied[3] if e.data and e.type == EntryType.NORMAL][-2:] == [b"before", b"after"]


def test_local_message_types_are_refused_from_the_network() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    node = net.nodes[2]
    before = (node.term, node.role, node.log.last_index(), node.log.committed)
    for kind in (MT.HUP, MT.BEAT, MT.PROP, MT.CHECK_QUORUM):
        with pytest.raises(StepLocalMessage):
            node.step(Message(kind, 2, 1, node.term))
    assert (node.term, node.role, node.log.last_index(), node.log.committed) == before


def test_learner_never_campaigns() -> None:
    net = Net([1, 2], learners=[3])
    net.tick_all(100)
    assert net.leader() in (1, 2)
    assert not net.nodes[3].promotable()
    net.crash(1)
    net.crash(2)
    net.tick_all(100)
    assert not net.nodes[3].is_leader


def test_randomized_election_timeout_in_range() -> None:
    node = RaftNode(Config(1, voters=(1, 2, 3), rng=random.Random(5)), MemoryStorage())
    seen = set()
    for _ in range(200):
        node._reset(node.term)
        seen.add(node.randomized_election_timeout)
    assert min(seen) >= node.election_timeout and max(seen) < 2 * node.election_timeout
    assert len(seen) > 5
