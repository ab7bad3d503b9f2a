"""Client <-> server protocol: length-prefixed msgpack frames over TCP.

Request:  ``[tag, kind, body]``  (tag: the client's u64 correlation id)
Response: ``[tag, status, payload]``

Kinds and bodies:
- ``KV``: body is one encoded kv command (consensus.kv.encode_command).  A
  GET with ``client_id`` 0 is a linearizable read through ReadIndex (not
  logged); every other command is proposed to the log.
- ``STATUS``: body nil; payload {id, role, term, leader, commit, applied, ...}.
- ``TRANSFER``: body the target node id (leadership transfer).
- ``CONF_CHANGE``: body ``[type, node_id, "host:port" or ""]``.
- ``BLOCK``: body a list of peer ids - test hook: drop Raft traffic to and
  from them (an empty list heals).
- ``SNAPSHOT``: body nil - take a snapshot and compact now.

Statuses (definite vs unknown outcome matters to a client):
- ``OK``: payload is the kv result ``[kv_status, value]`` (or admin data);
- ``NOT_LEADER``: definitely not applied; payload the leader hint (id or 0);
- ``DROPPED``: definitely not applied (backpressure, transfer in progress ...);
- ``TIMEOUT``: UNKNOWN outcome - it may still be applied later;
- ``BAD_REQUEST``: malformed request, definitely not applied.
"""
from __future__ import annotations

from enum import IntEnum


class RequestKind(IntEnum):
    KV = 0
    STATUS = 1
    TRANSFER = 2
    CONF_CHANGE = 3
    BLOCK = 4
    SNAPSHOT = 5


class ResponseStatus(IntEnum):
    OK = 0
    NOT_LEADER = 1
    DROPPED = 2
    TIMEOUT = 3
    BAD_REQUEST = 4


DEFINITE_FAILURES = frozenset({ResponseStatus.NOT_LEADER, ResponseStatus.DROPPED, ResponseStatus.BAD_REQUEST})
CLIENT_FRAME_BYTES_MAX = 4 * 1024 * 1024


def parse_address(text: str) -> tuple[str, int]:
    """"host:port" -> (host, port); raises ValueError with a clear message."""
    host, separator, port = text.rpartition(":")
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {text!r}")
    return host, int(port)


def parse_node_addresses(text: str) -> dict[int, tuple[str, int]]:
    """"1=127.0.0.1:7001,2=..." -> {1: ("127.0.0.1", 7001), ...}."""
    nodes: dict[int, tuple[str, int]] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        node, separator, address = item.partition("=")
        if not separator or not node.strip().isdigit() or int(node) <= 0:
            raise ValueError(f"expected id=host:port with a positive id, got {item!r}")
        if int(node) in nodes:
            raise ValueError(f"node id {node} listed twice")
        nodes[int(node)] = parse_address(address.strip())
    if not nodes:
        raise ValueError("no nodes given")
    return nodes
