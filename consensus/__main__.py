"""Command line: ``python -m consensus serve ...`` and ``python -m consensus client ...``.

    python -m consensus serve --id 1 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 \\
        --client-port 8001 --data-dir /tmp/n1 [--no-fsync]
    python -m consensus client --servers 1=127.0.0.1:8001,2=... put k v | get k | cas k old new | delete k | status

Bad arguments exit with status 2 and a message (argparse's convention).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from typing import Optional

from consensus.server_protocol import RequestKind, parse_node_addresses


def _node_addresses(text: str) -> dict[int, tuple[str, int]]:
    try:
        return parse_node_addresses(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer: {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m consensus", description="Durable Raft key-value server and client")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run one Raft server")
    serve.add_argument("--id", type=_positive_int, required=True, help="this node's id (positive)")
    serve.add_argument("--peers", type=_node_addresses, required=True, help="id=host:port of every node's Raft port, this one included")
    serve.add_argument("--client-port", type=_positive_int, required=True, help="TCP port for clients")
    serve.add_argument("--client-host", default="127.0.0.1")
    serve.add_argument("--data-dir", required=True, help="directory for the write-ahead log and snapshots")
    serve.add_argument("--join", action="store_true", help="join a running cluster: start outside the membership and wait to be added (add-learner, then promote)")
    serve.add_argument("--no-fsync", action="store_true", help="do not fsync (benchmarks only: a machine crash may lose acknowledged writes)")
    serve.add_argument("--tick-ms", type=_positive_float, default=10.0)
    serve.add_argument("--election-ticks", type=_positive_int, default=15)
    serve.add_argument("--heartbeat-ticks", type=_positive_int, default=5)
    serve.add_argument("--request-timeout-s", type=_positive_float, default=1.5)
    serve.add_argument("--snapshot-every-entries", type=_positive_int, default=20000)
    serve.add_argument("--compaction-margin-entries", type=int, default=500, help="entries kept behind a snapshot for slow followers")
    serve.add_argument("--segment-size-bytes", type=_positive_int, default=64 * 1024 * 1024)
    serve.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    client = commands.add_parser("client", help="one key-value or admin request")
    client.add_argument("--servers", type=_node_addresses, required=True, help="id=host:port of the servers' client ports")
    client.add_argument("--timeout-s", type=_positive_float, default=5.0)
    client.add_argument(
        "operation",
        choices=["get", "put", "delete", "cas", "append", "status", "transfer", "block", "snapshot", "add-learner", "promote", "remove"],
    )
    client.add_argument("arguments", nargs="*")
    return parser


_ARITY = {
    "get": 1, "put": 2, "delete": 1, "cas": 3, "append": 2, "status": 0, "transfer": 1, "snapshot": 0,
    "add-learner": 2, "promote": 1, "remove": 1,
}


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args, parser)
    return _client(args, parser)


def _serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from consensus.server import ServerConfig, serve
    from consensus.wal import WalError

    if args.id not in args.peers:
        parser.error(f"--id {args.id} is not among --peers ({sorted(args.peers)})")
    if args.election_ticks <= args.heartbeat_ticks:
        parser.error("--election-ticks must exceed --heartbeat-ticks")
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = ServerConfig(
        node_id=args.id,
        peers=args.peers,
        client_address=(args.client_host, args.client_port),
        data_dir=args.data_dir,
        fsync=not args.no_fsync,
        tick_s=args.tick_ms / 1000.0,
        election_ticks=args.election_ticks,
        heartbeat_ticks=args.heartbeat_ticks,
        request_timeout_s=args.request_timeout_s,
        snapshot_every_entries=args.snapshot_every_entries,
        compaction_margin_entries=max(0, args.compaction_margin_entries),
        segment_size_bytes=args.segment_size_bytes,
        join=args.join,
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve(config, stop)

    try:
        asyncio.run(run())
    except WalError as error:
        # Corrupt log or snapshot: refuse to start, say where.
        print(f"error: {error}", file=sys.stderr)
        return 3
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _client(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from consensus.client import CasFailed, ClientError, KvClient, OutcomeUnknown

    operation = args.operation
    if operation == "block":
        if not args.arguments or not all(a.isdigit() for a in args.arguments[1:]) or not args.arguments[0].isdigit():
            parser.error("block needs: NODE [PEER ...] (an empty peer list heals)")
    elif len(args.arguments) != _ARITY[operation]:
        parser.error(f"{operation} takes {_ARITY[operation]} argument(s), got {len(args.arguments)}")

    async def run() -> int:
        client = KvClient(args.servers, request_timeout_s=args.timeout_s, total_timeout_s=args.timeout_s * 2)
        try:
            a = args.arguments
            if operation == "get":
                print(json.dumps(await client.get(a[0])))
            elif operation == "put":
                await client.put(a[0], a[1])
                print("ok")
            elif operation == "append":
                await client.append(a[0], a[1])
                print("ok")
            elif operation == "delete":
                print(json.dumps(await client.delete(a[0])))
            elif operation == "cas":
                await client.cas(a[0], None if a[1] == "" else a[1], a[2])
                print("ok")
            elif operation == "status":
                for node in sorted(args.servers):
                    try:
                        print(json.dumps(await client.request(RequestKind.STATUS, None, node)))
                    except (ClientError, OSError, asyncio.TimeoutError) as error:
                        print(json.dumps({"id": node, "error": repr(error)}))
            elif operation == "transfer":
                status = await client.request(RequestKind.STATUS, None)
                leader = status["leader"] or next(iter(args.servers))
                await client.request(RequestKind.TRANSFER, int(a[0]), leader)
                print("ok")
            elif operation in ("add-learner", "promote", "remove"):
                from consensus.types import ConfChangeType

                if not a[0].isdigit() or int(a[0]) <= 0:
                    print(f"error: node id must be a positive integer, got {a[0]!r}", file=sys.stderr)
                    return 2
                kind = {"add-learner": ConfChangeType.ADD_LEARNER_NODE, "promote": ConfChangeType.ADD_NODE, "remove": ConfChangeType.REMOVE_NODE}[operation]
                address = a[1] if operation == "add-learner" else ""
                print(json.dumps(await client.change_membership(int(kind), int(a[0]), address)))
            elif operation == "snapshot":
                print(await client.request(RequestKind.SNAPSHOT, None))
            elif operation == "block":
                print(await client.request(RequestKind.BLOCK, [int(p) for p in a[1:]], int(a[0])))
            return 0
        except CasFailed as error:
            print(f"cas failed: current value {error.current!r}", file=sys.stderr)
            return 1
        except OutcomeUnknown as error:
            print(f"unknown outcome: {error}", file=sys.stderr)
            return 4
        except (ClientError, OSError, asyncio.TimeoutError) as error:
            print(f"failed: {error!r}", file=sys.stderr)
            return 1
        finally:
            await client.close()

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
