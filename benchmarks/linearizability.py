"""Linearizability checker speed on the shared oracle data (issue 7 target: all 108 in 10 s on one core).

Checks the 102 Jepsen etcd register histories and the 6 key-value histories
in ``<repo root>/../shared/data/linearizability`` (or ``--data DIR``), one
after another in this process, and reports the total and the worst history,
each the median of ``--repeats`` runs; parsing is timed apart.  Every verdict
is compared with the expected one (EXPECTED.tsv, the kv file names).

    python -m benchmarks linearizability [--repeats N] [--data DIR] [--json FILE]
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
    write_json(args.json, {"area": "linearizability", "repeats": args.repeats, "summary": summary, **payload})
    return 0 if all(r["agrees"] for r in payload["histories"]) else 1
