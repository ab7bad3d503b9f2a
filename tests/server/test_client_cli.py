"""The client's honesty about outcomes (fake servers on loopback) and the
command line's refusal of bad arguments (exit status 2)."""
from __future__ import annotations

import asyncio

import msgpack
import pytest

from consensus.__main__ import main
from consensus.client import KvClient, OutcomeUnknown, RequestFailed
from consensus.server_protocol import ResponseStatus, parse_node_addresses
from consensus.transport_framing import FrameDecoder, frame

from tests.server.cluster_harness import free_ports


async def fake_server(port: int, answer):
    """A client port that answers every request with ``answer(tag)`` (or not at all: None)."""

    async def handle(reader, writer) -> None:
        decoder = FrameDecoder()
        while data := await reader.read(65536):
            for payload in decoder.feed(data):
                tag, _kind, _body = msgpack.unpackb(payload)
                reply = answer(tag)
                if reply is not None:
                    writer.write(frame(msgpack.packb(reply, use_bin_type=True)))
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)


def test_unreachable_servers_are_a_definite_failure() -> None:
    (port,) = free_ports(1)

    async def scenario() -> None:
        client = KvClient({1: ("127.0.0.1", port)}, request_timeout_s=0.2, attempts_max=3)
        with pytest.raises(RequestFailed):
            await client.put("k", "v")

    asyncio.run(scenario())


@pytest.mark.parametrize("answer", [lambda tag: None, lambda tag: [tag, int(ResponseStatus.TIMEOUT), "slow"]])
def test_a_request_without_a_definite_answer_is_an_unknown_outcome(answer) -> None:
    (port,) = free_ports(1)

    async def scenario() -> None:
        server = await fake_server(port, answer)
        client = KvClient({1: ("127.0.0.1", port)}, request_timeout_s=0.1, attempts_max=3, total_timeout_s=2.0)
        with pytest.raises(OutcomeUnknown):
            await client.put("k", "v")
        await client.close()
        server.close()

    asyncio.run(scenario())


def test_not_leader_hint_is_followed() -> None:
    follower_port, leader_port = free_ports(2)

    async def scenario() -> None:
        follower = await fake_server(follower_port, lambda tag: [tag, int(ResponseStatus.NOT_LEADER), 2])
        leader = await fake_server(leader_port, lambda tag: [tag, int(ResponseStatus.OK), [0, "value"]])
        client = KvClient({1: ("127.0.0.1", follower_port), 2: ("127.0.0.1", leader_port)})
        assert await client.get("k") == "value"
        assert client.leader_guess == 2
        await client.close()
        follower.close()
        leader.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--id", "4", "--peers", "1=127.0.0.1:7001", "--client-port", "8001", "--data-dir", "/tmp/x"],
        ["serve", "--id", "1", "--peers", "1=nowhere", "--client-port", "8001", "--data-dir", "/tmp/x"],
        ["serve", "--id", "0", "--peers", "1=127.0.0.1:7001", "--client-port", "8001", "--data-dir", "/tmp/x"],
        ["serve", "--id", "1", "--peers", "1=127.0.0.1:7001"],
        ["client", "--servers", "1=127.0.0.1:8001", "put", "only-a-key"],
        ["client", "--servers", "1=127.0.0.1:8001", "frobnicate"],
        ["client", "--servers", "", "get", "k"],
    ],
)
def test_bad_arguments_exit_2(argv, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "error" in capsys.readouterr().err


def test_node_address_parsing() -> None:
    assert parse_node_addresses("1=127.0.0.1:7001, 2=localhost:7002") == {1: ("127.0.0.1", 7001), 2: ("localhost", 7002)}
    for bad in ("1=127.0.0.1", "x=127.0.0.1:1", "1=a:1,1=b:2", "1=h:99999"):
        with pytest.raises(ValueError):
            parse_node_addresses(bad)
