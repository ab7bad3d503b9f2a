"""Raft benchmark: 3 local server processes of ours vs PySyncObj, same client load.

Both systems serve the same client protocol (consensus.server_protocol: framed
msgpack ``[tag, kind, body]``), so ONE load generator drives both:
- closed loop with 1, 100 and 20000 requests in flight: committed ops/s, p50/p99;
- open loop at 15000 ops/s offered: p50/p99 measured from the SCHEDULED send
  time (no coordinated omission);
- open loop beyond saturation (1.5x the measured peak): does throughput hold?
- leader SIGKILL -> first committed write on a new leader, over N trials;
- each with fsync on and off.

Every request is a put of a 10-byte value (``encode_command(PUT, key, value)``,
no client session, so no deduplication work on our side either).  The load
generator is a separate process (asyncio, pipelined requests over a few
connections, precomputed request frames), sent to the leader.  The machine has
2 cores shared by 3 servers + the generator (+ other work): nothing is pinned,
so every figure includes that contention.

PySyncObj (pysyncobj from PyPI) runs as a tiny server (``_pysyncobj_server``
below): a SyncObj subclass with a replicated ``put``, its own ticking thread
(autoTick, the library's normal mode), and an asyncio client port; callbacks
are handed back to the loop in batches.  "fsync on" for PySyncObj means its
durable mode, ``journalFile`` (an mmap'd journal; PySyncObj 0.3.x does not
fsync per commit), reported as such.

Run: ``python -m benchmarks raft [--quick] [--json FILE]``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional

import msgpack

DESCRIPTION = "Raft server: 3 processes of ours vs PySyncObj - throughput at 1/100/20000 in flight, open-loop latency, saturation, leader failover, fsync on/off"

PAYLOAD = b"0123456789"  # 10 bytes
OK, NOT_LEADER, DROPPED, TIMEOUT = 0, 1, 2, 3
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------- load generator
def _put_frame(tag: int, key: bytes) -> bytes:
    from consensus.kv import KvOp, encode_command

    body = msgpack.packb([tag, 0, encode_command(KvOp.PUT, key, PAYLOAD)], use_bin_type=True)
    return len(body).to_bytes(4, "big") + body


class _LoadConnection(asyncio.Protocol):
    def __init__(self, generator: "_Generator") -> None:
        from consensus.transport_framing import FrameDecoder

        self.generator = generator
        self.decoder = FrameDecoder(1 << 24)
        self.transport: Optional[asyncio.Transport] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        generator = self.generator
        unpackb = msgpack.unpackb
        resend = []
        for payload in self.decoder.feed(data):
            tag, status, _result = unpackb(payload)
            again = generator.completed(tag, status, now)
            if again is not None:
                resend.append(again)
        if resend and self.transport is not None:
            self.transport.write(b"".join(resend))

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.generator.lost_connections += 1


class _Generator:
    """Closed loop: ``inflight`` slots, each resends its precomputed frame when
    answered.  Open loop: tags scheduled at ``rate``; latency from schedule."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.closed_loop = spec["mode"] == "closed"
        self.running = True
        self.window_end = 0.0
        self.latencies: list[float] = []
        self.ok_in_window = 0
        self.errors: dict[int, int] = {}
        self.lost_connections = 0
        self.sent_at: dict[int, float] = {}
        self.frames: list[bytes] = []

    def completed(self, tag: int, status: int, now: float) -> Optional[bytes]:
        sent = self.sent_at.pop(tag, None)
        if sent is None:
            return None
        if status == OK:
            if now <= self.window_end:
                self.ok_in_window += 1
                self.latencies.append(now - sent)
        else:
            self.errors[status] = self.errors.get(status, 0) + 1
        if self.closed_loop and self.running and now < self.window_end:
            self.sent_at[tag] = now
            return self.frames[tag]
        return None


async def _run_generator(spec: dict) -> dict:
    loop = asyncio.get_running_loop()
    host, port = spec["address"]
    generator = _Generator(spec)
    connections_count = spec["connections"]
    connections = []
    for _ in range(connections_count):
        _transport, protocol = await loop.create_connection(lambda: _LoadConnection(generator), host, port)
        connections.append(protocol)
    duration_s = spec["duration_s"]
    keys = [b"key%04d" % i for i in range(1000)]
    if generator.closed_loop:
        inflight = spec["inflight"]
        generator.frames = [_put_frame(tag, keys[tag % 1000]) for tag in range(inflight)]
        start = time.perf_counter()
        generator.window_end = start + duration_s
        batches: list[list[bytes]] = [[] for _ in connections]
        for tag in range(inflight):
            generator.sent_at[tag] = start
            batches[tag % connections_count].append(generator.frames[tag])
        for connection, batch in zip(connections, batches):
            connection.transport.write(b"".join(batch))
        await asyncio.sleep(duration_s)
        generator.running = False
        elapsed = duration_s
        await asyncio.sleep(0.05)
    else:
        rate = spec["rate"]
        pool = 1 << 18  # distinct precomputed frames; tags are unique while fewer than this are in flight
        frames = [_put_frame(tag, keys[tag % 1000]) for tag in range(pool)]
        start = time.perf_counter()
        generator.window_end = start + duration_s
        sent = 0
        position = 0
        while True:
            now = time.perf_counter()
            if now >= generator.window_end:
                break
            due = int((now - start) * rate) - sent
            if due > 0 and len(generator.sent_at) + due < pool:
                batches = [[] for _ in connections]
                for k in range(due):
                    tag = (sent + k) % pool
                    generator.sent_at[tag] = start + (sent + k) / rate  # scheduled time
                    batches[position % connections_count].append(frames[tag])
                    position += 1
                for connection, batch in zip(connections, batches):
                    if batch:
                        connection.transport.write(b"".join(batch))
                sent += due
            elif due > 0:
                generator.errors[-1] = generator.errors.get(-1, 0) + due  # generator cap reached: not sent
                sent += due
            await asyncio.sleep(0.001)
        elapsed = duration_s
        # Answers after the window do not count towards throughput.
        await asyncio.sleep(0.05)
    for connection in connections:
        if connection.transport is not None:
            connection.transport.abort()
    latencies = sorted(generator.latencies)

    def percentile(q: float) -> Optional[float]:
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000.0

    return {
        "ops_per_s": generator.ok_in_window / elapsed,
        "ok": generator.ok_in_window,
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "errors": {str(k): v for k, v in generator.errors.items()},
        "lost_connections": generator.lost_connections,
    }


def run_load(spec: dict) -> dict:
    """Run the generator in its own process (so it has its own GIL)."""
    command = [sys.executable, "-m", "benchmarks.raft", "_loadgen", json.dumps(spec)]
    result = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=spec["duration_s"] + 60)
    if result.returncode != 0:
        raise RuntimeError(f"load generator failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- PySyncObj server
def _pysyncobj_server(argv: list[str]) -> int:
    import threading

    from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated

    parser = argparse.ArgumentParser(prog="_pysyncobj_server")
    parser.add_argument("--self", required=True)
    parser.add_argument("--partners", required=True)
    parser.add_argument("--client-port", type=int, required=True)
    parser.add_argument("--journal", default=None)
    args = parser.parse_args(argv)

    class KvObject(SyncObj):
        def __init__(self) -> None:
            conf = SyncObjConf(journalFile=args.journal, dynamicMembershipChange=False)
            super().__init__(args.self, args.partners.split(","), conf)
            self.data: dict = {}

        @replicated
        def put(self, key: bytes, value: bytes) -> bool:
            self.data[key] = value
            return True

    obj = KvObject()
    done: list = []
    lock = threading.Lock()
    scheduled = [False]

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        from consensus.transport_framing import FrameDecoder

        def flush() -> None:
            with lock:
                items = done[:]
                done.clear()
                scheduled[0] = False
            touched = set()
            for connection, tag, result, error in items:
                status = OK if error == FAIL_REASON.SUCCESS else (DROPPED if error in (FAIL_REASON.QUEUE_FULL, FAIL_REASON.MISSING_LEADER, FAIL_REASON.NOT_LEADER) else TIMEOUT)
                body = msgpack.packb([tag, status, [0, None]])
                connection.out.append(len(body).to_bytes(4, "big") + body)
                touched.add(connection)
            for connection in touched:
                if connection.transport is not None and not connection.transport.is_closing():
                    connection.transport.write(b"".join(connection.out))
                connection.out.clear()

        class Connection(asyncio.Protocol):
            def __init__(self) -> None:
                self.decoder = FrameDecoder(1 << 24)
                self.out: list[bytes] = []
                self.transport = None

            def connection_made(self, transport) -> None:
                self.transport = transport

            def data_received(self, data: bytes) -> None:
                for payload in self.decoder.feed(data):
                    tag, kind, body = msgpack.unpackb(payload)
                    if kind == 1:
                        status = obj.getStatus()
                        reply = msgpack.packb([tag, OK, {"role": "LEADER" if status["state"] == 2 else "FOLLOWER"}])
                        self.transport.write(len(reply).to_bytes(4, "big") + reply)
                        continue
                    command = msgpack.unpackb(body)
                    connection = self

                    def callback(result, error, tag=tag) -> None:
                        with lock:
                            done.append((connection, tag, result, error))
                            if scheduled[0]:
                                return
                            scheduled[0] = True
                        loop.call_soon_threadsafe(flush)

                    obj.put(command[4], command[5], callback=callback)

        host, port = "127.0.0.1", args.client_port
        await loop.create_server(Connection, host, port, reuse_address=True)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()

    asyncio.run(serve())
    return 0


# --------------------------------------------------------------------------- clusters
def _free_ports(count: int) -> list[int]:
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


class BenchCluster:
    def __init__(self, system: str, fsync: bool, root: str) -> None:
        self.system = system
        self.fsync = fsync
        self.root = root
        ports = _free_ports(6)
        self.raft_ports = {n: ports[n - 1] for n in (1, 2, 3)}
        self.client_ports = {n: ports[n + 2] for n in (1, 2, 3)}
        self.processes: dict[int, subprocess.Popen] = {}

    def command(self, node: int) -> list[str]:
        if self.system == "shoal":
            peers = ",".join(f"{n}=127.0.0.1:{p}" for n, p in sorted(self.raft_ports.items()))
            command = [
                sys.executable, "-m", "consensus", "serve", "--id", str(node), "--peers", peers,
                "--client-port", str(self.client_ports[node]), "--data-dir", os.path.join(self.root, f"n{node}"),
            ]
            return command + ([] if self.fsync else ["--no-fsync"])
        partners = ",".join(f"127.0.0.1:{p}" for n, p in sorted(self.raft_ports.items()) if n != node)
        command = [
            sys.executable, "-m", "benchmarks.raft", "_pysyncobj_server", "--self", f"127.0.0.1:{self.raft_ports[node]}",
            "--partners", partners, "--client-port", str(self.client_ports[node]),
        ]
        if self.fsync:
            command += ["--journal", os.path.join(self.root, f"journal{node}")]
        return command

    def start(self, node: Optional[int] = None) -> None:
        for n in [node] if node is not None else [1, 2, 3]:
            log = open(os.path.join(self.root, f"{self.system}{n}.log"), "ab")
            self.processes[n] = subprocess.Popen(self.command(n), cwd=REPOSITORY, stdout=log, stderr=subprocess.STDOUT)
            log.close()

    def kill(self, node: int) -> None:
        process = self.processes.pop(node)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def close(self) -> None:
        for node in list(self.processes):
            self.kill(node)

    async def request(self, node: int, kind: int, body: Any, timeout_s: float = 1.0) -> Optional[tuple]:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.client_ports[node]), timeout_s)
        except (OSError, asyncio.TimeoutError):
            return None
        try:
            payload = msgpack.packb([1, kind, body], use_bin_type=True)
            writer.write(len(payload).to_bytes(4, "big") + payload)
            header = await asyncio.wait_for(reader.readexactly(4), timeout_s)
            data = await asyncio.wait_for(reader.readexactly(int.from_bytes(header, "big")), timeout_s)
            _tag, status, result = msgpack.unpackb(data, raw=False)
            return status, result
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            return None
        finally:
            writer.close()

    async def leader(self, timeout_s: float = 15.0) -> int:
        """The node that says it leads and has committed a write."""
        from consensus.kv import KvOp, encode_command

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for node in sorted(self.processes):
                answer = await self.request(node, 1, None)
                if answer and answer[0] == OK and answer[1].get("role") == "LEADER":
                    put = await self.request(node, 0, encode_command(KvOp.PUT, b"warm", PAYLOAD), 3.0)
                    if put and put[0] == OK:
                        return node
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.system}: no leader within {timeout_s} s")

    async def all_up(self, timeout_s: float = 20.0) -> None:
        """Every process answers a status request (a restarted node is back)."""
        deadline = time.monotonic() + timeout_s
        for node in sorted(self.processes):
            while not await self.request(node, 1, None):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.system}: node {node} not up within {timeout_s} s")
                await asyncio.sleep(0.05)

    async def failover_s(self, timeout_s: float = 10.0) -> float:
        """SIGKILL the leader; seconds until a put commits on a survivor."""
        from consensus.kv import KvOp, encode_command

        await self.all_up()
        leader = await self.leader()
        survivors = [n for n in sorted(self.processes) if n != leader]
        streams = [await asyncio.open_connection("127.0.0.1", self.client_ports[n]) for n in survivors]
        body = encode_command(KvOp.PUT, b"failover", PAYLOAD)
        committed = asyncio.get_running_loop().create_future()

        async def probe(reader, writer) -> None:
            # Pipelined: a new put every 5 ms whatever happened to the last
            # (a request forwarded to the dead leader may never be answered).
            async def read_answers() -> None:
                while not committed.done():
                    header = await reader.readexactly(4)
                    _tag, status, _result = msgpack.unpackb(await reader.readexactly(int.from_bytes(header, "big")))
                    if status == OK and not committed.done():
                        committed.set_result(time.monotonic())

            reading = asyncio.create_task(read_answers())
            tag = 0
            try:
                while not committed.done() and not reading.done():
                    tag += 1
                    payload = msgpack.packb([tag, 0, body], use_bin_type=True)
                    writer.write(len(payload).to_bytes(4, "big") + payload)
                    await asyncio.sleep(0.005)
            finally:
                reading.cancel()

        self.kill(leader)
        start = time.monotonic()
        tasks = [asyncio.create_task(probe(reader, writer)) for reader, writer in streams]
        try:
            finished = await asyncio.wait_for(committed, timeout_s)
        finally:
            for task in tasks:
                task.cancel()
            for _reader, writer in streams:
                writer.close()
        self.start(leader)
        return finished - start


# --------------------------------------------------------------------------- the run
def measure_system(system: str, fsync: bool, quick: bool, trials: int) -> dict:
    root = tempfile.mkdtemp(prefix=f"bench-raft-{system}-")
    cluster = BenchCluster(system, fsync, root)
    duration_s = 1.0 if quick else 2.0
    results: dict[str, Any] = {}
    try:
        cluster.start()

        def leader_address() -> tuple[str, int]:
            # Found again before every case: a leader change during one case
            # (counted in its errors) must not make the next ones hit a follower.
            return ("127.0.0.1", cluster.client_ports[asyncio.run(cluster.leader())])

        for inflight, connections in ((1, 1), (100, 4), (20000, 8)):
            results[f"closed_{inflight}"] = run_load(
                {"mode": "closed", "address": leader_address(), "inflight": inflight, "connections": connections, "duration_s": duration_s}
            )
        results["open_15000"] = run_load({"mode": "open", "address": leader_address(), "rate": 15000, "connections": 4, "duration_s": duration_s})
        peak = max(results[f"closed_{n}"]["ops_per_s"] for n in (1, 100, 20000))
        offered = max(1.5 * peak, peak + 5000)
        saturation = run_load({"mode": "open", "address": leader_address(), "rate": offered, "connections": 8, "duration_s": duration_s})
        saturation["offered_per_s"] = offered
        results["saturation"] = saturation
        results["peak_ops_per_s"] = peak
        results["refused_total"] = sum(
            sum(case.get("errors", {}).values()) for case in results.values() if isinstance(case, dict)
        )
        failovers: list[Optional[float]] = []
        for _ in range(trials):
            try:
                failovers.append(asyncio.run(cluster.failover_s()))
            except (asyncio.TimeoutError, RuntimeError, OSError) as error:
                failovers.append(None)
                results.setdefault("failover_errors", []).append(repr(error))
                if failovers[-2:] == [None, None]:
                    # Two failed trials in a row: the cluster is not recovering;
                    # stop rather than spend minutes on timeouts (reported).
                    break
        measured = sorted(f for f in failovers if f is not None)
        results["failover_s"] = failovers
        results["failover_trials_ok"] = f"{len(measured)}/{trials}"
        results["failover_p50_s"] = measured[len(measured) // 2] if measured else None
        results["failover_p99_s"] = measured[min(len(measured) - 1, int(0.99 * len(measured)))] if measured else None
    finally:
        cluster.close()
        shutil.rmtree(root, ignore_errors=True)
    return results


def _ratio(ours: Any, theirs: Any) -> str:
    if not isinstance(ours, (int, float)) or not isinstance(theirs, (int, float)) or not ours or not theirs:
        return "-"
    return f"{ours / theirs:.2f}x"


def main(argv: list[str]) -> int:
    if argv and argv[0] == "_loadgen":
        print(json.dumps(asyncio.run(_run_generator(json.loads(argv[1])))))
        return 0
    if argv and argv[0] == "_pysyncobj_server":
        return _pysyncobj_server(argv[1:])
    from benchmarks.common import print_table, write_json

    parser = argparse.ArgumentParser(prog="python -m benchmarks raft", description=DESCRIPTION)
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument("--quick", action="store_true", help="shorter runs, 3 failover trials")
    parser.add_argument("--systems", default="shoal,pysyncobj")
    parser.add_argument("--fsync", default="off,on", help="off, on or off,on")
    parser.add_argument("--trials", type=int, default=None, help="leader-kill trials per configuration (default 10, quick 3)")
    args = parser.parse_args(argv)
    systems = [s for s in args.systems.split(",") if s]
    modes = [m for m in args.fsync.split(",") if m]
    if not set(systems) <= {"shoal", "pysyncobj"} or not set(modes) <= {"off", "on"} or not systems or not modes:
        parser.error("--systems takes shoal,pysyncobj and --fsync takes off,on")
    trials = args.trials if args.trials is not None else (3 if args.quick else 10)
    results: dict[str, dict] = {}
    for mode in modes:
        for system in systems:
            print(f"measuring {system} fsync {mode} ...", file=sys.stderr, flush=True)
            results[f"{system}/fsync-{mode}"] = measure_system(system, mode == "on", args.quick, trials)
    for mode in modes:
        ours = results.get(f"shoal/fsync-{mode}", {})
        theirs = results.get(f"pysyncobj/fsync-{mode}", {})
        rows = []

        def figure(result: dict, case: str, field: str) -> Optional[float]:
            value = result.get(case, {}).get(field) if case else result.get(field)
            return value

        for label, case, field in (
            ("ops/s, 1 in flight", "closed_1", "ops_per_s"),
            ("  p50 ms", "closed_1", "p50_ms"),
            ("  p99 ms", "closed_1", "p99_ms"),
            ("ops/s, 100 in flight", "closed_100", "ops_per_s"),
            ("  p99 ms", "closed_100", "p99_ms"),
            ("ops/s, 20000 in flight", "closed_20000", "ops_per_s"),
            ("  p50 ms", "closed_20000", "p50_ms"),
            ("  p99 ms", "closed_20000", "p99_ms"),
            ("open 15000/s: ops/s", "open_15000", "ops_per_s"),
            ("  p50 ms", "open_15000", "p50_ms"),
            ("  p99 ms", "open_15000", "p99_ms"),
            ("peak ops/s", "", "peak_ops_per_s"),
            ("saturation: offered/s", "saturation", "offered_per_s"),
            ("saturation: ops/s", "saturation", "ops_per_s"),
            ("leader kill -> commit p50 s", "", "failover_p50_s"),
            ("leader kill -> commit p99 s", "", "failover_p99_s"),
            ("leader kill trials ok", "", "failover_trials_ok"),
            ("requests refused (all cases)", "", "refused_total"),
        ):
            a, b = figure(ours, case, field), figure(theirs, case, field)
            rows.append((label, a if a is not None else "-", b if b is not None else "-", _ratio(a, b)))
        print_table(f"Raft, 3 processes, fsync {mode} (ours vs PySyncObj, ratio = ours/theirs)", ["case", "shoal", "pysyncobj", "ratio"], rows)
    write_json(args.json, {"benchmark": "raft", "quick": args.quick, "trials": trials, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
