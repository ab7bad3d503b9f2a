"""Simulator speed: simulated seconds per wall-clock second.

Clusters of 3 and 5 Raft managers (and 3 managers + 4 worker processes that
heartbeat a manager every tick) under a steady proposal load from a client
at the leader, with and without the Raft safety checker observing every
event.  Defaults: 100 ms ticks, 10-tick elections, 0.5-2 ms links, 1 ms
fsync.  Target (issue 2): >= 1000x real time for 3 nodes.  The CPU-time
column (process_time) is the one to trust on a shared machine: wall time
includes waiting for a core.
"""
from __future__ import annotations

import argparse
import time
from typing import Any

from benchmarks.common import print_table, write_json
from chaos.checkers.raft_safety import RaftSafetyChecker
from chaos.sim import MILLISECOND_US, SECOND_US, KVApp, SimConfig, Simulation

DESCRIPTION = "deterministic simulator speed (simulated seconds per wall second, 3/5 managers, proposal load)"


class HeartbeatWorker:
    def __init__(self, address: int) -> None:
        self.address = address
        self.count = 0

    def on_start(self, ctx: Any) -> None:
        pass

    def on_tick(self, ctx: Any) -> None:
        self.count += 1
        ctx.send(1 + self.count % 3, ("heartbeat", self.address, self.count))

    def on_message(self, ctx: Any, src: int, payload: Any) -> None:
        pass


def run_case(managers: int, workers: int, proposals_per_second: int, sim_seconds: int, checker: bool,
             seed: int, trace: bool = True) -> dict[str, Any]:
    # trace=True is SimConfig's default (every event recorded for trace_digest);
    # chaos runs switch it off, so one case shows the simulator that way too.
    sim = Simulation(SimConfig(seed=seed, trace=trace))
    safety = RaftSafetyChecker() if checker else None
    if safety is not None:
        sim.add_observer(safety)
    sim.add_cluster(managers)
    for position in range(workers):
        sim.add_process(100 + position, HeartbeatWorker)
    interval_us = SECOND_US // proposals_per_second if proposals_per_second else 0
    committed = [0]

    def on_result(result: Any) -> None:
        if result.status == "ok":
            committed[0] += 1

    def client() -> None:
        leader = sim.leader()
        if leader is not None:
            sim.propose(leader, KVApp.put("k", sim.now_us), callback=on_result)
        sim.schedule(interval_us, client)

    if interval_us:
        sim.schedule(interval_us, client)
    sim.run_for(2 * SECOND_US)  # elect a leader first (not timed)
    start_events = sim.events_run
    start = time.perf_counter()
    start_cpu = time.process_time()
    sim.run_for(sim_seconds * SECOND_US)
    wall = time.perf_counter() - start
    cpu = time.process_time() - start_cpu
    return {
        "managers": managers,
        "workers": workers,
        "proposals_per_s": proposals_per_second,
        "checker": checker,
        "trace": trace,
        "sim_seconds": sim_seconds,
        "wall_seconds": wall,
        "speedup": sim_seconds / wall,
        "cpu_seconds": cpu,
        "speedup_cpu": sim_seconds / cpu if cpu > 0 else float("inf"),
        "events_per_wall_s": (sim.events_run - start_events) / wall,
        "events_per_sim_s": (sim.events_run - start_events) / sim_seconds,
        "committed": committed[0],
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench sim", description=DESCRIPTION)
    parser.add_argument("--sim-seconds", type=int, default=60, help="simulated seconds per case (default 60)")
    parser.add_argument("--rate", type=int, default=10, help="client proposals per simulated second (default 10)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="10 simulated seconds per case")
    parser.add_argument("--json", metavar="FILE", help="write results as JSON")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per case, the one with the least CPU time reported (default 3)")
    args = parser.parse_args(argv)
    seconds = 10 if args.quick else args.sim_seconds
    cases = [
        (3, 0, 0, False, True),
        (3, 0, args.rate, False, True),
        (3, 0, args.rate, False, False),
        (3, 0, args.rate, True, True),
        (5, 0, args.rate, False, True),
        (5, 0, args.rate, True, True),
        (3, 4, args.rate, True, True),
        (3, 0, 10 * args.rate, True, True),
    ]
    # Warm-up: imports are not charged to case 1, and this VM's CPU runs
    # slower for its first ~0.1 s of busy time (see benchmarks/chaos.py).
    run_case(3, 0, args.rate, 2, False, args.seed)
    run_case(3, 4, args.rate, seconds, True, args.seed)
    # Each case is deterministic (same seed, same events): the fastest of
    # several runs is the one least disturbed by other work on the machine.
    results = [min((run_case(m, w, rate, seconds, checker, args.seed, trace) for _ in range(max(1, args.repeat))),
                   key=lambda result: result["cpu_seconds"])
               for m, w, rate, checker, trace in cases]
    print_table(
        f"Simulator speed ({seconds} simulated s per case, tick 100 ms)",
        ["case", "prop/s", "checker", "trace", "committed", "events/sim s", "sim s / wall s",
         "sim s / CPU s"],
        [
            (f"{r['managers']}m" + (f"+{r['workers']}w" if r["workers"] else ""),
             r["proposals_per_s"], "on" if r["checker"] else "off", "on" if r["trace"] else "off",
             r["committed"], r["events_per_sim_s"], r["speedup"], r["speedup_cpu"])
            for r in results
        ],
    )
    write_json(args.json, {"area": "sim", "results": results})
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
