"""A tiny deterministic driver for RaftNode unit and scenario tests: nodes on
MemoryStorage, a message queue, cuttable links, and an optional log of every
message delivered (for transcripts).  No simulator, no time: tests say
exactly when to tick, campaign and deliver."""
from __future__ import annotations

import random
from typing import Callable, Iterable, Optional

from consensus.raft import Config, RaftNode
from consensus.storage import MemoryStorage
from consensus.types import ConfChange, ConfState, Entry, EntryType, HardState, Message, MessageType


def describe_message(m: Message) -> str:
    parts = [f"{m.frm}->{m.to} {m.type.name} term={m.term}"]
    if m.type in (MessageType.APP, MessageType.VOTE, MessageType.PRE_VOTE) or m.log_term:
        parts.append(f"logterm={m.log_term} index={m.index}")
    elif m.index:
        parts.append(f"index={m.index}")
    if m.entries:
        parts.append("entries=[" + " ".join(f"{e.index}/t{e.term}" for e in m.entries) + "]")
    if m.commit:
        parts.append(f"commit={m.commit}")
    if m.reject:
        parts.append(f"REJECT hint={m.reject_hint}")
    if m.snapshot is not None:
        md = m.snapshot.metadata
        parts.append(f"snap=i{md.index}/t{md.term} offset={m.snap_offset} done={m.snap_done}")
    if m.context:
        parts.append(f"ctx={m.context.decode(errors='replace')}")
    return " ".join(parts)


class Net:
    def __init__(self, voters: Iterable[int], learners: Iterable[int] = (), seed: int = 0, **config: object) -> None:
        self.voters = tuple(sorted(voters))
        self.learners = tuple(sorted(learners))
        self.config = config
        self.seed = seed
        self.storages: dict[int, MemoryStorage] = {}
        self.nodes: dict[int, RaftNode] = {}
        self.applied: dict[int, list[Entry]] = {}
        self.queue: list[Message] = []
        self.cut: set[tuple[int, int]] = set()
        self.down: set[int] = set()
        self.log_lines: Optional[list[str]] = None
        self.read_states: dict[int, list] = {}
        self.drop_filter: Optional[Callable[[Message], bool]] = None
        for node_id in self.voters + self.learners:
            # Founding members bootstrap the membership into their logs
            # (entries 1..n of term 1), as a real cluster does.
            self.storages[node_id] = MemoryStorage()
            self.start(node_id, founding=True)
        self.stabilize()  # persist and apply the bootstrap entries

    def start(self, node_id: int, founding: bool = False) -> RaftNode:
        """(Re)start ``node_id`` on its storage (a new, empty one if unknown:
        a joining node that waits for the leader)."""
        storage = self.storages.setdefault(node_id, MemoryStorage())
        node = RaftNode(
            Config(node_id, voters=self.voters if founding else (), learners=self.learners if founding else (),
                   rng=random.Random(self.seed * 1000 + node_id), applied=storage.snapshot().metadata.index,
                   **self.config),
            storage,
        )
        self.nodes[node_id] = node
        self.applied[node_id] = []  # a restarted node re-applies its log
        self.read_states.setdefault(node_id, [])
        self.down.discard(node_id)
        return node

    def set_log(self, node_id: int, terms: list[int], term: Optional[int] = None) -> None:
        """Give ``node_id`` a log with these entry terms (indexes 1..n) and
        restart it on that storage (figure-7 style setups)."""
        storage = MemoryStorage(ConfState(self.voters, self.learners))
        storage.append([Entry(t, i + 1, EntryType.NORMAL, f"{node_id}:{i + 1}".encode()) for i, t in enumerate(terms)])
        storage.set_hard_state(HardState(term if term is not None else max(terms, default=0), 0, 0))
        self.storages[node_id] = storage
        self.start(node_id)

    # -- driving ---------------------------------------------------------------
    def handle_ready(self, node_id: int) -> bool:
        node = self.nodes[node_id]
        if node_id in self.down or not node.has_ready():
            return False
        rd = node.ready()
        storage = self.storages[node_id]
        self.queue.extend(rd.messages)
        if rd.snapshot is not None:
            storage.apply_snapshot(rd.snapshot)
        storage.append(rd.entries)
        if rd.hard_state is not None:
            storage.set_hard_state(rd.hard_state)
        self.queue.extend(rd.messages_after_persist)
        for entry in rd.committed_entries:
            if entry.type == EntryType.CONF_CHANGE:
                node.apply_conf_change(ConfChange.decode(entry.data))
            self.applied[node_id].append(entry)
        self.read_states[node_id].extend(rd.read_states)
        node.advance(rd)
        return True

    def deliver_one(self) -> bool:
        if not self.queue:
            return False
        m = self.queue.pop(0)
        if (
            (m.frm, m.to) in self.cut or m.to in self.down or m.frm in self.down or m.to not in self.nodes
            or (self.drop_filter is not None and self.drop_filter(m))
        ):
            if self.log_lines is not None:
                self.log_lines.append(f"  dropped {describe_message(m)}")
            return True
        if self.log_lines is not None:
            self.log_lines.append(f"  {describe_message(m)}")
        self.nodes[m.to].step(m)
        return True

    def stabilize(self, rounds_max: int = 10_000) -> None:
        for _ in range(rounds_max):
            progressed = False
            for node_id in sorted(self.nodes):
                while self.handle_ready(node_id):
                    progressed = True
            while self.deliver_one():
                progressed = True
            if not progressed:
                return
        raise AssertionError("network did not stabilize")

    def tick(self, node_id: int, count: int = 1) -> None:
        for _ in range(count):
            self.nodes[node_id].tick()

    def tick_all(self, count: int = 1) -> None:
        for _ in range(count):
            for node_id in sorted(self.nodes):
                if node_id not in self.down:
                    self.nodes[node_id].tick()
            self.stabilize()

    def elect(self, node_id: int) -> None:
        self.nodes[node_id].campaign()
        self.stabilize()

    def isolate(self, node_id: int) -> None:
        for other in self.nodes:
            if other != node_id:
                self.cut.add((node_id, other))
                self.cut.add((other, node_id))

    def heal(self) -> None:
        self.cut.clear()

    def crash(self, node_id: int) -> None:
        self.down.add(node_id)

    def leader(self) -> Optional[int]:
        leaders = [n for n, node in self.nodes.items() if node.is_leader and n not in self.down]
        return max(leaders, key=lambda n: self.nodes[n].term) if leaders else None

    def log_terms(self, node_id: int) -> list[int]:
        log = self.nodes[node_id].log
        return [log.term(i) for i in range(log.first_index(), log.last_index() + 1)]
