"""Raft consensus: a sans-IO core (raft.py and friends), storage interfaces,
and - in separate modules owned by the durable-server work - WAL, transport,
server.  Import the core from here::

    from consensus import RaftNode, Config, MemoryStorage, Message, MessageType
"""
from consensus.errors import (
    Compacted,
    ConfChangeError,
    InvariantViolation,
    MalformedMessage,
    NotLeader,
    ProposalDropped,
    RaftError,
    SnapshotTemporarilyUnavailable,
    StepLocalMessage,
    Unavailable,
    UncommittedLimitExceeded,
)
from consensus.raft import Config, ConfigError, RaftNode, Status
from consensus.read_only import ReadOnlyOption
from consensus.storage import MemoryStorage, Storage
from consensus.types import (
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    NodeId,
    Ready,
    ReadState,
    Snapshot,
    SnapshotMetadata,
    SoftState,
    StateRole,
)

__all__ = [
    "Compacted", "ConfChangeError", "InvariantViolation", "MalformedMessage", "NotLeader", "ProposalDropped",
    "RaftError", "SnapshotTemporarilyUnavailable", "StepLocalMessage", "Unavailable", "UncommittedLimitExceeded",
    "Config", "ConfigError", "RaftNode", "Status", "ReadOnlyOption", "MemoryStorage", "Storage",
    "NONE", "ConfChange", "ConfChangeType", "ConfState", "Entry", "EntryType", "HardState", "Message",
    "MessageType", "NodeId", "Ready", "ReadState", "Snapshot", "SnapshotMetadata", "SoftState", "StateRole",
]
