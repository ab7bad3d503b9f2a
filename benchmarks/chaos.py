"""Chaos harness speed: simulated time per wall second, and random schedules per minute.

Two figures (issue 7 targets):
- simulation speed with 3 managers + 4 workers under the kv workload and a
  service, no faults: simulated seconds per wall second (target >= 1000x);
- random 60-simulated-second fault schedules per minute per core with every
  checker on (target >= 100), run one after another in this process.

    python -m benchmarks chaos [--quick] [--json FILE] [--schedules N] [--repeat N]
"""
from __future__ import annotations

import argparse
import random
import time

from benchmarks.common import print_table, write_json

DESCRIPTION = "chaos harness: simulated seconds per wall second; random 60 s schedules per minute per core"


def _experiment(seed: int, duration_ms: int, settle_ms: int, random_faults: bool):
    from chaos.experiment import Experiment, KvWorkload, ServiceOp, default_nodes
    from chaos.schedule import Schedule
    from chaos.strategies import random_schedule

    nodes = default_nodes(3, 4)
    schedule = Schedule()
    if random_faults:
        schedule = random_schedule(random.Random(seed), [n.name for n in nodes if n.is_manager],
                                   [n.name for n in nodes if not n.is_manager], duration_ms)
    return Experiment(name="bench", seed=seed, duration_ms=duration_ms, settle_ms=settle_ms, nodes=nodes,
                      kv=KvWorkload(clients=3, key_count=3, interval_ms=100, timeout_ms=1000),
                      services=(ServiceOp(1000, "create", "web", replicas=4),), schedule=schedule,
                      convergence_bound_ms=max(settle_ms, 1))


SPEED_CASE = ("3 managers + 4 workers, kv (3 clients, 100 ms think time) + a 4-replica service, "
              "no faults")


def warm_up() -> None:
    """Unmeasured runs first: imports, code objects and the first Cython module
    loads would otherwise be charged to the first measured case, and this VM's
    CPU runs slower for the first ~0.1 s of busy time (measured 2026-11-27: a
    120 s run right after a 2 s warm-up took ~1,000x real time, after 0.3 s
    of busy looping ~1,600x, the same as every later run)."""
    from chaos.runner import run_experiment

    experiment = _experiment(1, 2000, 0, random_faults=False).replace(checkers=("raft-safety",))
    run_experiment(experiment, write_png=False)
    for _ in range(2):
        run_experiment(_experiment(1, 120_000, 0, random_faults=False).replace(checkers=()), write_png=False)


def measure_speed(duration_s: float, safety: bool, repeat: int = 1) -> dict:
    """Time of the simulation loop only (checkers after the run excluded); the
    best of ``repeat`` identical runs (same seed, same history), since other
    work on a shared machine only ever adds time."""
    from chaos.runner import run_experiment

    experiment = _experiment(1, int(duration_s * 1000), 0, random_faults=False)
    experiment = experiment.replace(checkers=("raft-safety",) if safety else ())
    results = [run_experiment(experiment, write_png=False) for _ in range(max(1, repeat))]
    assert len({result.history_sha256 for result in results}) == 1, "same seed, different histories"
    result = results[0]
    wall_s = min(result.stats["simulation_wall_seconds"] for result in results)
    cpu_s = min(result.stats["simulation_cpu_seconds"] for result in results)
    return {"case": SPEED_CASE, "checker": "figure-3" if safety else "none", "runs": len(results),
            "sim_seconds": duration_s, "wall_seconds": round(wall_s, 3),
            "cpu_seconds": round(cpu_s, 3), "speedup": round(duration_s / wall_s, 1),
            "speedup_cpu": round(duration_s / max(cpu_s, 1e-9), 1),
            "events": result.stats.get("sim_events", 0),
            "packets": result.stats.get("packets_sent", 0),
            "operations": result.stats.get("operations", 0)}


def measure_schedules(count: int, duration_s: float) -> dict:
    from chaos.runner import run_experiment

    started = time.perf_counter()
    verdicts: dict[str, int] = {}
    for seed in range(count):
        result = run_experiment(_experiment(1000 + seed, int(duration_s * 1000), 10_000, random_faults=True),
                                write_png=False)
        for check in result.checks:
            key = f"{check.name}:{check.status}"
            verdicts[key] = verdicts.get(key, 0) + 1
    wall_s = time.perf_counter() - started
    return {"case": f"{count} random {duration_s:.0f} s schedules (+10 s settle), all checkers",
            "schedules": count, "wall_seconds": round(wall_s, 3),
            "schedules_per_minute": round(60 * count / wall_s, 1), "verdicts": verdicts}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks chaos", description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="shorter runs (smoke test)")
    parser.add_argument("--schedules", type=int, default=0, help="random schedules to run (default 5, quick 2)")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--repeat", type=int, default=0,
                        help="runs per speed case, best one reported (default 5, quick 1)")
    args = parser.parse_args(argv)
    duration_s = 20.0 if args.quick else 120.0
    warm_up()
    # Each run takes ~0.15 s: on a shared VM one slowed-down run is common, so
    # report the best of several (as timeit does).
    repeat = args.repeat or (1 if args.quick else 5)
    speeds = [measure_speed(duration_s, safety=False, repeat=repeat),
              measure_speed(duration_s, safety=True, repeat=repeat)]
    schedules = measure_schedules(args.schedules or (2 if args.quick else 5), 60.0)
    print(f"simulation speed: {SPEED_CASE}; best of {repeat} runs per case; figure-3 = the Raft safety"
          " checker after every event; the CPU columns are the ones to trust on a shared machine")
    print_table("chaos simulation speed",
                ["checker", "sim s", "wall s", "x real time", "cpu s", "x (cpu)", "events", "packets",
                 "ops"],
                [[s["checker"], s["sim_seconds"], s["wall_seconds"], s["speedup"], s["cpu_seconds"],
                  s["speedup_cpu"], s["events"], s["packets"], s["operations"]] for s in speeds])
    print_table("random schedules per minute per core", ["case", "wall s", "schedules / min"],
                [[schedules["case"], schedules["wall_seconds"], schedules["schedules_per_minute"]]])
    print("verdicts:", ", ".join(f"{key}={value}" for key, value in sorted(schedules["verdicts"].items())))
    write_json(args.json, {"area": "chaos", "speed": speeds, "schedules": schedules,
                           "targets": {"speedup_min": 1000, "schedules_per_minute_min": 100}})
    return 0
