"""Raft safety invariants (Raft paper figure 3), checked while faults run.

``RaftSafetyChecker`` is a simulator observer (``sim.add_observer(checker)``)
fed after EVERY simulated event and on every Ready, apply, crash and restart.
It checks:

  election safety       at most one leader per term (ever, across the run);
  leader append-only    a leader never overwrites or deletes entries of its
                        own log during its term (each new Ready's entries
                        start after the last index it already had);
  log matching          two logs holding an entry with the same index and term
                        hold the same entry, preceded by the same term (so, by
                        induction, identical prefixes): every entry that enters
                        any log is checked against a registry of (index, term);
  leader completeness   a node that becomes leader holds the highest entry
                        known to be committed (and so, by log matching, all);
  state machine safety  no two nodes apply different entries at one index, and
                        each node applies a gap-free sequence;
  durability            committed entries are never lost across crashes: at
                        every crash, the highest committed entry is still on
                        the durable storage of enough nodes to form a quorum
                        (conservatively: a majority of the voter set minus one,
                        to allow the one-voter change a config may be behind).

A violation raises ``RaftSafetyViolation`` (an AssertionError) naming the
property, with the state of every manager printed, or - with
``raise_on_violation=False`` - is recorded in ``violations`` and the run
goes on (the chaos harness wants the first one with its time).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from consensus.errors import Compacted, Unavailable
from consensus.types import Entry, EntryType, Ready, StateRole

ELECTION_SAFETY = "election safety"
LEADER_APPEND_ONLY = "leader append-only"
LOG_MATCHING = "log matching"
LEADER_COMPLETENESS = "leader completeness"
STATE_MACHINE_SAFETY = "state machine safety"
DURABILITY = "committed entry lost"
_LEADER = StateRole.LEADER
PROPERTIES = (ELECTION_SAFETY, LEADER_APPEND_ONLY, LOG_MATCHING, LEADER_COMPLETENESS, STATE_MACHINE_SAFETY, DURABILITY)


class RaftSafetyViolation(AssertionError):
    """A Raft safety property failed; ``state`` is a dump of every manager."""

    def __init__(self, prop: str, detail: str, time_us: int, state: str) -> None:
        self.property = prop
        self.detail = detail
        self.time_us = time_us
        self.state = state
        super().__init__(f"[{prop}] at t={time_us}us: {detail}\n{state}")


@dataclass(frozen=True)
class Violation:
    property: str
    detail: str
    time_us: int
    state: str


def _majority(count: int) -> int:
    return count // 2 + 1


class RaftSafetyChecker:
    def __init__(self, raise_on_violation: bool = True) -> None:
        self.raise_on_violation = raise_on_violation
        self.violations: list[Violation] = []
        self.leader_of_term: dict[int, int] = {}
        self.leader_last_index: dict[tuple[int, int], int] = {}
        # (index, term) -> (prev_term or 0 if unknown, type, data)
        self.entry_registry: dict[tuple[int, int], tuple[int, EntryType, bytes]] = {}
        # index -> (term, type, data) of entries handed to an application
        self.committed: dict[int, tuple[int, EntryType, bytes]] = {}
        self.committed_quorum: dict[int, int] = {}
        self.max_committed_index = 0
        self.last_applied: dict[int, int] = {}
        self.last_commit: dict[tuple[int, int], int] = {}
        self.leaders_checked: set[tuple[int, int]] = set()
        self.steps_checked = 0
        # node id -> [RaftNode, last commit seen, leader term already checked]
        self._node_cache: dict[int, list[Any]] = {}

    # ------------------------------------------------------------ reporting
    def _violation(self, sim: Any, prop: str, detail: str) -> None:
        state = self.describe_state(sim)
        violation = Violation(prop, detail, sim.now_us, state)
        self.violations.append(violation)
        if self.raise_on_violation:
            raise RaftSafetyViolation(prop, detail, sim.now_us, state)

    @staticmethod
    def describe_state(sim: Any) -> str:
        lines = [f"seed={sim.seed} t={sim.now_us}us"]
        for node_id, host in sorted(sim.managers.items()):
            raft = host.raft
            durable = host.disk.durable
            if raft is None:
                lines.append(
                    f"  node {node_id}: DOWN durable last={durable.last_index()} hard={durable.hard_state()}"
                )
                continue
            tail = []
            for index in range(max(raft.log.first_index(), raft.log.last_index() - 5), raft.log.last_index() + 1):
                tail.append(f"{index}:t{raft.log.term_or_zero(index)}")
            lines.append(f"  {raft.describe()} paused={host.paused} tail=[{' '.join(tail)}]")
        return "\n".join(lines)

    # ------------------------------------------------------- observer hooks
    def after_step(self, sim: Any) -> None:
        # Runs after EVERY event, so it is written for speed: per node a small
        # cache [raft, last commit seen, leader term already checked] lets the
        # common case (nothing changed) skip the dict and set work.  The checks
        # are the same as a full rescan: the cache is keyed by the RaftNode
        # object (one per incarnation), and a term is cached only once this
        # node is known to be its sole leader.
        self.steps_checked += 1
        cache = self._node_cache
        for node_id, host in sim.managers.items():
            raft = host.raft
            if raft is None:
                continue
            log = raft.log
            committed = log.committed
            # RaftLog.last_index() inlined (same three cases), one call fewer per node and event.
            unstable = log.unstable_entries
            if unstable:
                last = log.unstable_offset + len(unstable) - 1
            elif log.unstable_snapshot is not None:
                last = log.unstable_snapshot.metadata.index
            else:
                last = log.storage.last_index()
            if not (log.applied <= committed <= last):
                self._violation(sim, STATE_MACHINE_SAFETY, f"node {node_id}: applied/commit/last out of order: {log.describe()}")
            seen = cache.get(node_id)
            if seen is None or seen[0] is not raft:
                seen = cache[node_id] = [raft, self.last_commit.get((node_id, host.incarnation), 0), 0]
                self.last_commit[(node_id, host.incarnation)] = seen[1]
            if committed != seen[1]:
                if committed < seen[1]:
                    self._violation(sim, STATE_MACHINE_SAFETY, f"node {node_id}: commit index went back {seen[1]} -> {committed}")
                seen[1] = committed
                self.last_commit[(node_id, host.incarnation)] = committed
            if raft.role is _LEADER:
                term = raft.term
                if seen[2] == term:
                    continue
                holder = self.leader_of_term.setdefault(term, node_id)
                if holder != node_id:
                    self._violation(sim, ELECTION_SAFETY, f"nodes {holder} and {node_id} are both leaders of term {term}")
                if (node_id, term) not in self.leaders_checked:
                    self.leaders_checked.add((node_id, term))
                    self._check_leader_completeness(sim, node_id, raft)
                if holder == node_id:
                    seen[2] = term

    def _check_leader_completeness(self, sim: Any, node_id: int, raft: Any) -> None:
        index = self.max_committed_index
        if index == 0:
            return
        term = self.committed[index][0]
        try:
            found = raft.log.term(index)
        except Compacted:
            return  # covered by its snapshot, which only holds committed state
        except Unavailable:
            self._violation(
                sim, LEADER_COMPLETENESS,
                f"node {node_id} leads term {raft.term} but its log ends at {raft.log.last_index()}, "
                f"before committed entry {index} (term {term})",
            )
            return
        if found != term:
            self._violation(
                sim, LEADER_COMPLETENESS,
                f"node {node_id} leads term {raft.term} with term {found} at index {index}; committed entry has term {term}",
            )

    def on_ready(self, sim: Any, host: Any, rd: Ready) -> None:
        raft = host.raft
        node_id = host.node_id
        if rd.entries:
            log = raft.log
            registry = self.entry_registry
            for entry in rd.entries:
                prev_term = log.term_or_zero(entry.index - 1) if entry.index > 1 else 0
                key = (entry.index, entry.term)
                seen = registry.get(key)
                if seen is None:
                    registry[key] = (prev_term, entry.type, entry.data)
                elif seen[1] != entry.type or seen[2] != entry.data or (seen[0] and prev_term and seen[0] != prev_term):
                    self._violation(
                        sim, LOG_MATCHING,
                        f"node {node_id} holds entry {key} = ({entry.type.name}, {entry.data!r}, prev term {prev_term}) "
                        f"but another log holds ({seen[1].name}, {seen[2]!r}, prev term {seen[0]})",
                    )
            if raft.role == StateRole.LEADER:
                lkey = (node_id, raft.term)
                last = self.leader_last_index.get(lkey)
                if last is not None and rd.entries[0].index <= last:
                    self._violation(
                        sim, LEADER_APPEND_ONLY,
                        f"leader {node_id} of term {raft.term} rewrote its log from index {rd.entries[0].index} (had {last})",
                    )
                self.leader_last_index[lkey] = rd.entries[-1].index
        if rd.committed_entries:
            self._record_committed(sim, node_id, rd.committed_entries, len(raft.voters), raft.log.applied)

    def _record_committed(
        self, sim: Any, node_id: int, entries: tuple[Entry, ...], voter_count: int, applied: int
    ) -> None:
        # The core's applied index moves only in advance(), so at Ready time it
        # is exactly the index the application applied last.
        expected = applied
        for entry in entries:
            if entry.index != expected + 1:
                self._violation(
                    sim, STATE_MACHINE_SAFETY,
                    f"node {node_id} applies index {entry.index} after {expected} (gap or repeat)",
                )
            expected = entry.index
            value = (entry.term, entry.type, entry.data)
            seen = self.committed.get(entry.index)
            if seen is None:
                self.committed[entry.index] = value
                self.committed_quorum[entry.index] = _majority(max(1, voter_count - 1))
                if entry.index > self.max_committed_index:
                    self.max_committed_index = entry.index
            elif seen != value:
                self._violation(
                    sim, STATE_MACHINE_SAFETY,
                    f"node {node_id} applies (term {entry.term}, {entry.data!r}) at index {entry.index}; "
                    f"another node applied (term {seen[0]}, {seen[2]!r})",
                )
        self.last_applied[node_id] = expected

    def on_crash(self, sim: Any, host: Any) -> None:
        index = self.max_committed_index
        if index == 0:
            return
        term = self.committed[index][0]
        holders = []
        for node_id, other in sim.managers.items():
            durable = other.disk.durable
            if durable.snapshot().metadata.index >= index:
                holders.append(node_id)
                continue
            try:
                if durable.term(index) == term:
                    holders.append(node_id)
            except (Compacted, Unavailable):
                pass
        needed = self.committed_quorum.get(index, 1)
        if len(holders) < needed:
            self._violation(
                sim, DURABILITY,
                f"after crashing node {host.node_id}, committed entry {index} (term {term}) is durable on "
                f"{sorted(holders)} only; at least {needed} nodes must hold it",
            )

    # --------------------------------------------------------------- report
    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "steps_checked": self.steps_checked,
            "terms_with_leader": len(self.leader_of_term),
            "max_committed_index": self.max_committed_index,
            "violations": [
                {"property": v.property, "detail": v.detail, "time_us": v.time_us} for v in self.violations
            ],
        }

    def first_violation(self) -> Optional[Violation]:
        return self.violations[0] if self.violations else None
