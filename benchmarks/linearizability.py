"""Linearizability checker speed on the shared oracle data (issue 7 target: all 108 in 10 s on one core).

Checks the 102 Jepsen etcd register histories and the 6 key-value histories
in ``<repo root>/../shared/data/linearizability`` (or ``--data DIR``), one
after another in this process, and reports the total and the worst history,
each the median of ``--repeats`` runs; parsing is timed apart.  Every verdict
is compared with the expected one (EXPECTED.tsv, the kv file names).

Then, as a stress case the shared data lacks, synthetic runs shaped like the
chaos harness's kv workload with many timeouts, recorded and with the last
read corrupted: decided quickly with unique written values (the harness's
choice); with a few repeated values the corrupted run may stay ``unknown``.

    python -m benchmarks linearizability [--repeats N] [--data DIR] [--json FILE] [--synthetic-limit-s S]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from benchmarks.common import print_table, write_json

DESCRIPTION = "linearizability checker: all 108 shared Jepsen/kv histories, total and worst time"

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "linearizability"
TIME_LIMIT_S = 60.0


def _cases(data: Path) -> list[tuple[str, str, Path, str]]:
    """(set, name, path, expected verdict) for every history."""
    cases = []
    etcd = data / "jepsen-etcd"
    for line in (etcd / "EXPECTED.tsv").read_text().splitlines():
        if line.strip():
            name, verdict = line.split()
            cases.append(("jepsen-etcd", name, etcd / name, "ok" if verdict == "linearizable" else "illegal"))
    for path in sorted((data / "kv").glob("c*-*.txt")):
        cases.append(("kv", path.name, path, "ok" if path.stem.endswith("-ok") else "illegal"))
    return cases


def measure(data: Path, repeats: int) -> dict:
    from chaos.checkers.jepsen_formats import read_jepsen_etcd_log, read_kv_edn
    from chaos.checkers.linearizability import KVModel, RegisterModel, check_linearizability

    rows = []
    for set_name, name, path, expected in _cases(data):
        started = time.perf_counter()
        history = read_jepsen_etcd_log(path) if set_name == "jepsen-etcd" else read_kv_edn(path)
        parse_s = time.perf_counter() - started
        model = RegisterModel(cas_fail_is_mismatch=True) if set_name == "jepsen-etcd" else KVModel(initial="")
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            result = check_linearizability(history, model, time_limit_s=TIME_LIMIT_S)
            samples.append(time.perf_counter() - started)
        rows.append({"set": set_name, "name": name, "events": len(history), "expected": expected,
                     "verdict": result.verdict, "agrees": result.verdict == expected, "steps": result.steps,
                     "check_s": statistics.median(samples), "parse_s": parse_s})
    return {"histories": rows}


def synthetic_history(seed: int, clients: int, operations: int, timeout_fraction: float, values: int | None):
    """A kv run like the chaos harness's: ``clients`` concurrent clients on 3 keys doing
    get/put/cas against a real store, a ``timeout_fraction`` of operations timing out (most
    of those still apply, up to 50 time units later).  ``values=None`` writes unique values
    (as the harness does); an int draws from that many values, so writes repeat."""
    import heapq
    import random

    from chaos.history import History

    rng = random.Random(seed)
    history = History()
    store: dict[str, str] = {}
    events: list[tuple[float, int, str, dict]] = []
    sequence = 0

    def later(at: float, kind: str, data: dict) -> None:
        nonlocal sequence
        sequence += 1
        heapq.heappush(events, (at, sequence, kind, data))

    def value() -> str:
        return f"v{sequence}.{rng.randrange(10**9)}" if values is None else str(rng.randrange(values))

    for process in range(clients):
        later(rng.random(), "invoke", {"process": process})
    next_process = clients
    invoked = 0
    while events and invoked < operations:
        at, _, kind, op = heapq.heappop(events)
        if kind == "invoke":
            f = rng.choice(["get", "put", "cas"])
            op.update(f=f, key=f"k{rng.randrange(3)}")
            op["value"] = None if f == "get" else value() if f == "put" else [
                rng.choice([None, *store.values()]) if store else None, value()]
            history.invoke(op["process"], f, op["key"], op["value"], int(at * 1000))
            invoked += 1
            if rng.random() < timeout_fraction:
                later(at + 5, "timeout", op)
                if f != "get" and rng.random() < 0.7:
                    later(at + rng.random() * 50, "apply", op)
            else:
                applied = at + rng.random() * 2
                later(applied, "apply", op)
                later(applied + rng.random() * 2, "respond", op)
        elif kind == "apply":
            current = store.get(op["key"])
            if op["f"] == "get":
                op["result"] = ("ok", current)
            elif op["f"] == "put":
                store[op["key"]] = op["value"]
                op["result"] = ("ok", op["value"])
            elif current == op["value"][0]:
                store[op["key"]] = op["value"][1]
                op["result"] = ("ok", op["value"])
            else:
                op["result"] = ("fail", op["value"])
        elif kind == "respond":
            history.complete(op["process"], op["result"][0], op["result"][1], int(at * 1000))
            later(at + rng.random(), "invoke", {"process": op["process"]})
        else:  # timeout: Jepsen retires the process
            history.complete(op["process"], "info", None, int(at * 1000), error="timeout")
            next_process += 1
            later(at + rng.random(), "invoke", {"process": next_process})
    return history


def with_stale_last_read(history):
    """The same history with its last completed get changed to a value nobody wrote."""
    from chaos.history import History, Op

    last = max(op.index for op in history if op.type == "ok" and op.f == "get")
    return History(Op(op.index, op.process, op.type, op.f, op.key, "never-written", op.time_ns)
                   if op.index == last else op for op in history)


def measure_synthetic(time_limit_s: float) -> list[dict]:
    from chaos.checkers.linearizability import KVModel, check_linearizability

    rows = []
    for values, label in ((None, "unique values"), (5, "5 values")):
        history = synthetic_history(1, clients=5, operations=2000, timeout_fraction=0.2, values=values)
        for case, candidate, expected in (("recorded", history, "ok"),
                                          ("read corrupted", with_stale_last_read(history), "illegal")):
            started = time.perf_counter()
            result = check_linearizability(candidate, KVModel(), time_limit_s=time_limit_s)
            rows.append({"case": f"{label}, {case}", "events": len(candidate), "expected": expected,
                         "verdict": result.verdict, "steps": result.steps,
                         "check_s": time.perf_counter() - started})
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    groups = {"jepsen-etcd": [r for r in rows if r["set"] == "jepsen-etcd"],
              "kv": [r for r in rows if r["set"] == "kv"], "all": rows}
    summary = []
    for label, members in groups.items():
        if not members:
            continue
        worst = max(members, key=lambda r: r["check_s"])
        summary.append({"set": label, "histories": len(members), "agree": sum(r["agrees"] for r in members),
                        "check_total_s": sum(r["check_s"] for r in members),
                        "parse_total_s": sum(r["parse_s"] for r in members),
                        "worst_s": worst["check_s"], "worst": worst["name"]})
    return summary


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks linearizability", description=DESCRIPTION)
    parser.add_argument("--repeats", type=int, default=3, help="runs per history; the median is kept")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the linearizability data directory")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--synthetic-limit-s", type=float, default=5.0,
                        help="time limit of each synthetic chaos-like history (0 skips them)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if not (args.data / "jepsen-etcd" / "EXPECTED.tsv").is_file():
        print(f"benchmarks linearizability: no data at {args.data} (pass --data DIR)")
        return 2
    payload = measure(args.data, args.repeats)
    summary = summarise(payload["histories"])
    print_table(f"Linearizability checker, shared histories (median of {args.repeats})",
                ["set", "count", "agree", "check s", "worst s", "worst", "parse s"],
                [[s["set"], s["histories"], s["agree"], s["check_total_s"], s["worst_s"], s["worst"],
                  s["parse_total_s"]] for s in summary])
    slowest = sorted(payload["histories"], key=lambda r: -r["check_s"])[:5]
    print_table("Slowest histories", ["history", "events", "verdict", "steps", "check s"],
                [[r["name"], r["events"], r["verdict"], r["steps"], r["check_s"]] for r in slowest])
    synthetic = measure_synthetic(args.synthetic_limit_s) if args.synthetic_limit_s > 0 else []
    if synthetic:
        print_table(f"Synthetic chaos-like kv runs: 5 clients, 2000 ops, 20% timeouts "
                    f"(limit {args.synthetic_limit_s:g} s)", ["case", "events", "expected", "verdict", "steps",
                                                              "check s"],
                    [[r["case"], r["events"], r["expected"], r["verdict"], r["steps"], r["check_s"]]
                     for r in synthetic])
    write_json(args.json, {"area": "linearizability", "repeats": args.repeats, "summary": summary,
                           "synthetic": synthetic, **payload})
    return 0 if all(r["agrees"] for r in payload["histories"]) else 1
