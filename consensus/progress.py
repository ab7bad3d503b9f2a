"""What the leader knows about each follower (etcd-io/raft tracker/).

Progress states (etcd tracker/progress.go, Raft thesis 10.2.1 pipelining):
  PROBE     - we do not know where the follower's log matches; send one
              append at a time and wait for the answer (or a heartbeat reply).
  REPLICATE - matching; stream appends optimistically, bounded by Inflights.
  SNAPSHOT  - the entries it needs are compacted; a snapshot is on its way.
"""
from __future__ import annotations

import enum
from typing import Iterable, Optional

from consensus.types import NodeId


class ProgressState(enum.IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


# Members as module constants (cheaper than Enum attribute lookups on hot paths).
# ``state`` only ever holds one of them, so the methods test it by identity
# (an IntEnum ``==`` that fails goes through int's rich comparison).
_PROBE = ProgressState.PROBE
_REPLICATE = ProgressState.REPLICATE
_SNAPSHOT = ProgressState.SNAPSHOT


class Inflights:
    """Bounded window of append messages in flight to one follower: at most
    ``max_messages`` messages and (if > 0) ``max_bytes`` payload bytes."""

    __slots__ = ("max_messages", "max_bytes", "_queue", "bytes_in_flight")

    def __init__(self, max_messages: int, max_bytes: int = 0) -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        # (last index, size) per message, oldest first.  A list, not a deque:
        # the window holds a few messages (at most max_messages), and the
        # compiled twin reads and cuts a typed list without method calls.
        self._queue: list[tuple[int, int]] = []
        self.bytes_in_flight = 0

    def add(self, last_index: int, size_bytes: int) -> None:
        if self.full():
            raise AssertionError(f"inflights full: {len(self._queue)} messages, {self.bytes_in_flight} bytes")
        self._queue.append((last_index, size_bytes))
        self.bytes_in_flight += size_bytes

    def free_le(self, index: int) -> None:
        """Forget every message whose last index is <= ``index`` (acknowledged)."""
        queue = self._queue
        count = 0
        freed = 0
        for last_index, size_bytes in queue:
            if last_index > index:
                break
            freed += size_bytes
            count += 1
        if count:
            del queue[:count]
            self.bytes_in_flight -= freed

    def full(self) -> bool:
        return len(self._queue) >= self.max_messages or (0 < self.max_bytes <= self.bytes_in_flight)

    def count(self) -> int:
        return len(self._queue)

    def reset(self) -> None:
        self._queue.clear()
        self.bytes_in_flight = 0


class Progress:
    __slots__ = (
        "match", "next", "state", "pending_snapshot", "recent_active", "last_active_tick",
        "msg_app_flow_paused", "inflights", "is_learner", "snapshot_elapsed_ticks",
    )

    def __init__(self, next_index: int, max_inflight_messages: int, max_inflight_bytes: int, is_learner: bool) -> None:
        self.match = 0
        self.next = next_index
        self.state = _PROBE
        self.pending_snapshot = 0
        self.recent_active = False
        self.last_active_tick = 0
        self.msg_app_flow_paused = False
        self.inflights = Inflights(max_inflight_messages, max_inflight_bytes)
        self.is_learner = is_learner
        self.snapshot_elapsed_ticks = 0

    def __repr__(self) -> str:
        return (
            f"Progress(state={self.state.name} match={self.match} next={self.next} "
            f"learner={self.is_learner} paused={self.msg_app_flow_paused} "
            f"inflight={self.inflights.count()} pending_snapshot={self.pending_snapshot})"
        )

    def _reset_state(self, state: ProgressState) -> None:
        self.msg_app_flow_paused = False
        self.pending_snapshot = 0
        self.snapshot_elapsed_ticks = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        if self.state is _SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(_PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(_PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(_REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset_state(_SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def sent_entries(self, entry_count: int, size_bytes: int) -> None:
        if self.state is _REPLICATE:
            if entry_count:
                self.next += entry_count
                self.inflights.add(self.next - 1, size_bytes)
        elif self.state is _PROBE:
            # One probe at a time: wait for its answer or a heartbeat reply.
            self.msg_app_flow_paused = True

    def maybe_update(self, index: int) -> bool:
        """An append up to ``index`` was acknowledged; False if stale."""
        updated = False
        if self.match < index:
            self.match = index
            updated = True
            self.msg_app_flow_paused = False
        self.next = max(self.next, index + 1)
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """An append at ``rejected`` was refused; move next back (etcd MaybeDecrTo)."""
        if self.state is _REPLICATE:
            if rejected <= self.match:
                return False  # stale rejection
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False  # stale: not the probe we sent last
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.msg_app_flow_paused = False
        return True

    def is_paused(self) -> bool:
        if self.state is _PROBE:
            return self.msg_app_flow_paused
        if self.state is _REPLICATE:
            return self.inflights.full()
        return True


def quorum_index(matches: Iterable[int]) -> int:
    """The highest index replicated on a majority of the given match indexes
    (0 for an empty set: no quorum, nothing commits)."""
    ordered = list(matches)
    count = len(ordered)
    if count == 3:
        # Three voters (the common cluster): the median, without a sort.
        a = ordered[0]
        b = ordered[1]
        c = ordered[2]
        if a > b:
            a, b = b, a
        # now a <= b: the median is b if b <= c, else the larger of a and c
        if b <= c:
            return b
        return c if c > a else a
    if not count:
        return 0
    # Ascending (no keyword argument to parse): the (n // 2)-th largest of n
    # is at n - 1 - n // 2.
    ordered.sort()
    return ordered[count - 1 - count // 2]


def majority(count: int) -> int:
    return count // 2 + 1


class VoteResult(enum.IntEnum):
    PENDING = 0
    WON = 1
    LOST = 2


def tally(voters: Iterable[NodeId], votes: dict[NodeId, bool]) -> VoteResult:
    voter_list = list(voters)
    need = majority(len(voter_list))
    granted = 0
    rejected = 0
    for v in voter_list:  # a loop: no closures in compiled functions
        vote = votes.get(v)
        if vote is True:
            granted += 1
        elif vote is False:
            rejected += 1
    if granted >= need:
        return VoteResult.WON
    if len(voter_list) - rejected < need:
        return VoteResult.LOST
    return VoteResult.PENDING


def optional_progress(progress: dict[NodeId, Progress], node_id: NodeId) -> Optional[Progress]:
    return progress.get(node_id)


# >>> compiled twin: the build cuts this block (consensus/_build_core_c.py)
from consensus._select_c import swap_in  # noqa: E402

swap_in(globals(), "progress")
# <<< compiled twin
