"""Typed errors of the Raft core.

Expected conditions (not leader, dropped proposal, compacted log ...) are
``RaftError`` subclasses with a message that says what happened and what to
do.  Broken invariants raise ``InvariantViolation`` with the node's state in
the message (etcd: "was the raft log corrupted, truncated, or lost?").
"""
from __future__ import annotations

from typing import Optional


class RaftError(Exception):
    """Base of every error the core raises on purpose."""


class NotLeader(RaftError):
    """The operation needs the leader; ``leader_hint`` is the last known
    leader id (None when unknown, e.g. during an election)."""

    def __init__(self, leader_hint: Optional[int], message: str = "") -> None:
        self.leader_hint = leader_hint
        hint = f"try node {leader_hint}" if leader_hint else "leader unknown, retry later"
        super().__init__(message or f"not the leader ({hint})")


class ProposalDropped(RaftError):
    """A proposal was refused and will never be in the log (safe to retry):
    a leadership transfer is in progress, a conf change is already pending,
    the node was removed, ..."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"proposal dropped: {reason}")


class UncommittedLimitExceeded(ProposalDropped):
    """Backpressure: the leader holds more uncommitted entry bytes than
    ``Config.max_uncommitted_entries_bytes``; retry after commits catch up."""

    def __init__(self, uncommitted_bytes: int, limit_bytes: int) -> None:
        self.uncommitted_bytes = uncommitted_bytes
        self.limit_bytes = limit_bytes
        super().__init__(f"uncommitted entries hold {uncommitted_bytes} bytes, limit {limit_bytes}")


class Compacted(RaftError):
    """The requested index is at or below the storage's compaction point."""


class SnapshotTemporarilyUnavailable(RaftError):
    """The storage cannot produce a snapshot right now; the leader retries."""


class Unavailable(RaftError):
    """The requested index is beyond the last stored entry."""


class ConfChangeError(RaftError):
    """A membership change that is malformed or not allowed now."""


class MalformedMessage(RaftError):
    """A message from the network that the core refuses without changing any
    state: a local-only type, a wrong recipient, negative fields, entries that
    do not follow each other ... ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"malformed message refused: {reason}")


class StepLocalMessage(MalformedMessage):
    """A local-only message type (HUP, BEAT, PROP ...) arrived from the network."""


class InvariantViolation(AssertionError):
    """A broken invariant of the core; the message carries the state dump.
    Subclasses AssertionError: it is a bug, not an expected condition."""
