"""Wire codec (round trip, garbage refused with MalformedFrame only) and the
TCP peer transport on loopback (delivery, bad frames counted, partitions)."""
from __future__ import annotations

import asyncio
import socket
import struct

import msgpack
import pytest
from hypothesis import given, strategies as st

from consensus.codec import MalformedFrame, decode_message, encode_message
from consensus.transport import HELLO, HELLO_MAGIC, HELLO_VERSION, PeerTransport
from consensus.transport_framing import FrameDecoder, FrameTooLarge, frame
from consensus.types import (
    LOCAL_MESSAGE_TYPES, ConfState, Entry, EntryType, Message, MessageType, Snapshot, SnapshotMetadata,
)

ints = st.integers(min_value=0, max_value=2**40)
entries = st.lists(st.builds(Entry, ints, ints, st.sampled_from(list(EntryType)), st.binary(max_size=20)), max_size=5)
snapshots = st.none() | st.builds(
    lambda i, t, v, d: Snapshot(SnapshotMetadata(i, t, ConfState(voters=tuple(v))), d),
    ints, ints, st.lists(st.integers(1, 9), max_size=5), st.binary(max_size=30),
)
network_types = st.sampled_from([t for t in MessageType if t not in LOCAL_MESSAGE_TYPES])
messages = st.builds(
    Message, network_types, ints, ints, ints, ints, ints, entries.map(tuple), ints, st.booleans(), ints,
    snapshots, st.binary(max_size=10), ints, st.booleans(),
)


@given(messages)
def test_codec_round_trip(message) -> None:
    assert decode_message(encode_message(message)) == message


@given(st.binary(max_size=80))
def test_garbage_raises_only_malformed_frame(raw) -> None:
    try:
        decode_message(raw)
    except MalformedFrame:
        pass


@given(messages, st.data())
def test_mutated_fields_raise_only_malformed_frame(message, data) -> None:
    fields = msgpack.unpackb(encode_message(message)[1:], raw=False)
    position = data.draw(st.integers(0, len(fields) - 1))
    fields[position] = data.draw(st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=3), st.floats(), st.lists(st.integers(-(2**63), 2**64 - 1), max_size=3)))
    try:
        decode_message(b"\x01" + msgpack.packb(fields, use_bin_type=True))
    except MalformedFrame:
        pass


def test_local_message_types_are_refused_from_the_wire() -> None:
    for kind in LOCAL_MESSAGE_TYPES:
        with pytest.raises(MalformedFrame, match="local-only"):
            decode_message(encode_message(Message(kind, 1, 2)))


@given(st.lists(st.binary(max_size=50), max_size=10), st.integers(1, 7))
def test_frame_decoder_reassembles_any_split(payloads, chunk) -> None:
    stream = b"".join(frame(p) for p in payloads)
    decoder = FrameDecoder()
    got = []
    for start in range(0, len(stream), chunk):
        got += decoder.feed(stream[start : start + chunk])
    assert got == payloads and decoder.buffered_bytes() == 0


def test_frame_decoder_refuses_oversized_before_buffering() -> None:
    with pytest.raises(FrameTooLarge):
        FrameDecoder(frame_bytes_max=100).feed(struct.pack(">I", 101))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_for(predicate, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def make_pair():
    ports = {1: free_port(), 2: free_port()}
    addresses = {n: ("127.0.0.1", p) for n, p in ports.items()}
    inbox: dict[int, list[Message]] = {1: [], 2: []}
    nodes = {
        n: PeerTransport(n, addresses[n], {m: a for m, a in addresses.items() if m != n}, inbox[n].append)
        for n in (1, 2)
    }
    return nodes, inbox, addresses


def test_transport_delivers_in_order_and_survives_bad_frames() -> None:
    async def scenario() -> None:
        nodes, inbox, addresses = make_pair()
        for node in nodes.values():
            await node.start()
        await wait_for(lambda: all(node.stats["connects"] >= 1 for node in nodes.values()))
        try:
            sent = [Message(MessageType.APP, 2, 1, term=1, index=i, entries=(Entry(1, i + 1, data=b"x" * 10),)) for i in range(500)]
            nodes[1].send_many(sent)
            await wait_for(lambda: len(inbox[2]) == 500)
            assert inbox[2] == sent
            # A stranger sends an oversized frame, a bad hello, garbage after a good hello.
            host, port = addresses[2]
            for payload in (
                struct.pack(">I", 1 << 30),
                frame(b"hello?"),
                frame(HELLO.pack(HELLO_MAGIC, HELLO_VERSION, 1)) + frame(b"\x01\xc1garbage"),
                frame(HELLO.pack(HELLO_MAGIC, HELLO_VERSION, 1)) + frame(encode_message(Message(MessageType.APP, 2, 3))),
            ):
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(payload)
                await writer.drain()
                assert await reader.read() == b""  # the server closed it
                writer.close()
            stats = nodes[2].stats
            assert (stats["frames_oversized"], stats["hellos_malformed"], stats["frames_malformed"], stats["frames_misaddressed"]) == (1, 1, 1, 1)
            # Still working afterwards, both ways.
            nodes[2].send(Message(MessageType.HEARTBEAT, 1, 2, term=1))
            await wait_for(lambda: len(inbox[1]) == 1)
        finally:
            for node in nodes.values():
                await node.close()

    asyncio.run(scenario())


def test_block_hook_partitions_and_heals_and_reconnect_after_restart() -> None:
    async def scenario() -> None:
        nodes, inbox, addresses = make_pair()
        for node in nodes.values():
            await node.start()
        await wait_for(lambda: all(node.stats["connects"] >= 1 for node in nodes.values()))
        try:
            nodes[1].block({2})
            nodes[1].send(Message(MessageType.HEARTBEAT, 2, 1, term=1))
            nodes[2].send(Message(MessageType.HEARTBEAT, 1, 2, term=1))
            await asyncio.sleep(0.2)
            assert inbox[1] == [] and inbox[2] == []
            assert nodes[1].stats["sent_dropped_blocked"] == 1 and nodes[1].stats["received_dropped_blocked"] == 1
            nodes[1].block(())
            # Node 2 restarts: node 1 reconnects with backoff and delivers again.
            await nodes[2].close()
            nodes[2] = PeerTransport(2, addresses[2], {1: addresses[1]}, inbox[2].append)
            await nodes[2].start()

            def delivered() -> bool:
                nodes[1].send(Message(MessageType.HEARTBEAT, 2, 1, term=2))
                return bool(inbox[2])

            await wait_for(delivered)
            assert nodes[1].stats["sent_dropped_disconnected"] >= 1  # while node 2 was away
        finally:
            for node in nodes.values():
                await node.close()

    asyncio.run(scenario())
