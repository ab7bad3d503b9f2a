"""Pending ReadIndex requests on the leader (etcd-io/raft read_only.go;
Raft thesis 6.4): a read is served at the commit index the leader had when
the request arrived, once a quorum has acknowledged a heartbeat carrying
the request's context (proving the leader was still the leader then)."""
from __future__ import annotations

import enum

from consensus.types import Message, NodeId


class ReadOnlyOption(enum.Enum):
    SAFE = "safe"              # ReadIndex with a quorum heartbeat round (thesis 6.4)
    # Leader's lease (needs check_quorum; thesis 6.4.1): no heartbeat round,
    # but only safe with bounded clock drift and no process pauses - a leader
    # paused past its lease answers stale reads when it resumes (the
    # simulator finds this within a few hundred random schedules).
    LEASE_BASED = "lease"
    # Planted bug for the chaos harness: every node answers at once with its
    # own commit index, leader or not, with no confirmation.  NOT linearizable.
    UNSAFE_NO_READ_INDEX = "unsafe_no_read_index"


class ReadIndexStatus:
    """One pending ReadIndex request: the commit index it will be served at
    and the voters that acknowledged the heartbeat round carrying it.  A
    plain class (a dataclass's default_factory costs more than the request)."""

    __slots__ = ("request", "index", "acks")

    def __init__(self, request: Message, index: int) -> None:
        self.request = request
        self.index = index
        self.acks: set[NodeId] = set()

    def __repr__(self) -> str:
        return f"ReadIndexStatus(request={self.request!r}, index={self.index!r}, acks={self.acks!r})"


class ReadOnly:
    __slots__ = ("pending", "queue", "max_pending")

    def __init__(self, max_pending: int) -> None:
        self.pending: dict[bytes, ReadIndexStatus] = {}
        self.queue: list[bytes] = []
        self.max_pending = max_pending

    def add_request(self, index: int, request: Message) -> bool:
        """Queue a request; False if its context is already pending or the
        queue is full (bounded: the driver times the read out)."""
        context = request.context
        if context in self.pending or len(self.queue) >= self.max_pending:
            return False
        self.pending[context] = ReadIndexStatus(request, index)
        self.queue.append(context)
        return True

    def recv_ack(self, node_id: NodeId, context: bytes) -> set[NodeId]:
        status = self.pending.get(context)
        if status is None:
            return set()
        status.acks.add(node_id)
        return status.acks

    def advance(self, context: bytes) -> list[ReadIndexStatus]:
        """Release every request queued up to and including ``context`` (a
        heartbeat round confirming a later request confirms the earlier ones)."""
        if context not in self.pending:
            return []
        released: list[ReadIndexStatus] = []
        position = self.queue.index(context)
        for ctx in self.queue[: position + 1]:
            released.append(self.pending.pop(ctx))
        del self.queue[: position + 1]
        return released

    def last_pending_context(self) -> bytes:
        return self.queue[-1] if self.queue else b""

    def reset(self) -> None:
        self.pending.clear()
        self.queue.clear()


# >>> compiled twin: the build cuts this block (consensus/_build_core_c.py)
from consensus._select_c import swap_in  # noqa: E402

swap_in(globals(), "read_only")
# <<< compiled twin
