"""Real server processes on loopback for the crash and cluster tests.

Every process is started with ``python -m consensus serve`` on random free
ports and killed in ``close()`` (the fixtures call it in teardown, also when a
test fails).  Faults: SIGKILL, restart, and the BLOCK test hook that makes a
node's transport drop traffic to and from chosen peers.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Optional

from consensus.client import KvClient
from consensus.server_protocol import RequestKind

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_ports(count: int) -> list[int]:
    sockets, ports = [], []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
        ports.append(sock.getsockname()[1])
    for sock in sockets:
        sock.close()
    return ports


class Cluster:
    def __init__(
        self, size: int, data_root: str, fsync: bool = True, extra_args: tuple[str, ...] = (),
        initial_members: Optional[list[int]] = None,
    ) -> None:
        """``initial_members``: the nodes of the bootstrap membership (default:
        all); the others are started with ``--join`` and added later."""
        self.size = size
        self.initial_members = initial_members or list(range(1, size + 1))
        self.data_root = data_root
        self.fsync = fsync
        self.extra_args = extra_args
        ports = free_ports(2 * size)
        self.raft_ports = {n: ports[n - 1] for n in range(1, size + 1)}
        self.client_ports = {n: ports[size + n - 1] for n in range(1, size + 1)}
        self.processes: dict[int, subprocess.Popen] = {}

    @property
    def client_addresses(self) -> dict[int, tuple[str, int]]:
        return {n: ("127.0.0.1", p) for n, p in self.client_ports.items()}

    def data_dir(self, node: int) -> str:
        return os.path.join(self.data_root, f"n{node}")

    def command(self, node: int) -> list[str]:
        joining = node not in self.initial_members
        peers = ",".join(
            f"{n}=127.0.0.1:{p}" for n, p in sorted(self.raft_ports.items()) if joining or n in self.initial_members
        )
        command = [
            sys.executable, "-m", "consensus", "serve", "--id", str(node), "--peers", peers,
            "--client-port", str(self.client_ports[node]), "--data-dir", self.data_dir(node),
            "--log-level", "WARNING", *self.extra_args,
        ]
        if not self.fsync:
            command.append("--no-fsync")
        if joining:
            command.append("--join")
        return command

    def start(self, node: Optional[int] = None) -> None:
        for n in [node] if node is not None else self.initial_members:
            log = open(os.path.join(self.data_root, f"n{n}.log"), "ab")
            self.processes[n] = subprocess.Popen(self.command(n), cwd=REPOSITORY, stdout=log, stderr=subprocess.STDOUT)
            log.close()

    def kill(self, node: int) -> None:
        process = self.processes.pop(node)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def close(self) -> None:
        for node in list(self.processes):
            self.kill(node)

    def log_text(self, node: int) -> str:
        with open(os.path.join(self.data_root, f"n{node}.log"), "rb") as handle:
            return handle.read().decode(errors="replace")

    # ---- asyncio helpers ------------------------------------------------------
    def client(self, **options: Any) -> KvClient:
        return KvClient(self.client_addresses, **options)

    async def status(self, node: int, timeout_s: float = 1.0) -> Optional[dict]:
        client = KvClient({node: self.client_addresses[node]}, request_timeout_s=timeout_s)
        try:
            return await client.request(RequestKind.STATUS, None, node)
        except Exception:
            return None
        finally:
            await client.close()

    async def admin(self, node: int, kind: RequestKind, body: Any) -> Any:
        client = KvClient({node: self.client_addresses[node]}, request_timeout_s=2.0)
        try:
            return await client.request(kind, body, node)
        finally:
            await client.close()

    async def wait_leader(self, among: Optional[list[int]] = None, timeout_s: float = 10.0, not_node: int = 0) -> int:
        deadline = time.monotonic() + timeout_s
        nodes = among or sorted(self.processes)
        while time.monotonic() < deadline:
            for node in nodes:
                status = await self.status(node)
                if status and status["role"] == "LEADER" and node != not_node:
                    return node
            await asyncio.sleep(0.05)
        raise AssertionError(f"no leader among {nodes} within {timeout_s} s")

    async def wait_converged(self, nodes: list[int], timeout_s: float = 10.0) -> list[dict]:
        """Wait until ``nodes`` have applied the same index with the same kv digest."""
        deadline = time.monotonic() + timeout_s
        statuses: list = []
        while time.monotonic() < deadline:
            statuses = [await self.status(node) for node in nodes]
            if all(statuses) and len({(s["applied"], s["kv_digest"]) for s in statuses}) == 1:
                return statuses
            await asyncio.sleep(0.1)
        raise AssertionError(f"nodes {nodes} did not converge: {statuses}")
