"""``shoal chaos sweep``: one experiment over many seeds in parallel processes.

Each seed is an independent deterministic run (in its own process, so the
sweep uses every core); a failing seed leaves its ``failure.json`` under
``OUT/<seed>/`` for ``shoal chaos replay``.  The summary table lists every
failing seed and the totals.
"""
from __future__ import annotations

import multiprocessing
import os
import random
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from chaos.experiment import Experiment
from chaos.strategies import leader_churn_schedule, random_schedule

# Generators of random fault schedules a sweep can draw from: "mixed" draws every
# fault kind; "churn" cycles leader traps and leader partitions, the shape that
# reaches figure-8 histories (see docs/chaos.md and tests/chaos/test_planted_figure8.py).
SCHEDULE_GENERATORS = {"mixed": random_schedule, "churn": leader_churn_schedule}


def seeded_experiment(experiment: Experiment, seed: int, random_faults: bool | str) -> Experiment:
    """The experiment under ``seed``; with ``random_faults`` (True = "mixed", or a
    generator name) its schedule is replaced by one drawn from that seed."""
    changed = experiment.replace(seed=seed, name=f"{experiment.name}")
    if random_faults:
        generator = SCHEDULE_GENERATORS["mixed" if random_faults is True else random_faults]
        rng = random.Random(seed ^ 0x5EED)
        schedule = generator(rng, [n.name for n in experiment.managers], [n.name for n in experiment.workers],
                             duration_ms=experiment.duration_ms)
        changed = changed.replace(schedule=schedule)
    return changed


def _run_one(job: tuple[dict[str, Any], int, bool | str, str]) -> dict[str, Any]:
    from chaos.runner import run_experiment

    document, seed, random_faults, out_dir = job
    experiment = seeded_experiment(Experiment.from_dict(document), seed, random_faults)
    result = run_experiment(experiment, out_dir=None, write_png=False)
    row: dict[str, Any] = {
        "seed": seed, "passed": result.passed, "failed": result.failed_checkers,
        "statuses": {check.name: check.status for check in result.checks},
        "sim_seconds": result.stats.get("sim_seconds"), "wall_seconds": result.stats.get("wall_seconds"),
        "operations": result.stats.get("operations"), "failure_file": None,
    }
    if not result.passed:
        from chaos.runner import encode_history, write_outputs

        encoded = encode_history(result.history)
        write_outputs(result, Path(out_dir) / str(seed), encoded, write_png=False)
        row["failure_file"] = str(result.failure_file)
    return row


def run_sweep(experiment: Experiment, *, seeds: int, first_seed: int = 0, jobs: int = 0, random_faults: bool | str = False,
              out_dir: Path = Path("chaos-out/sweep"), console: Console | None = None) -> int:
    console = console or Console()
    jobs = jobs or os.cpu_count() or 1
    document = experiment.to_dict()
    work = [(document, seed, random_faults, str(out_dir)) for seed in range(first_seed, first_seed + seeds)]
    rows: list[dict[str, Any]] = []
    if jobs == 1:
        rows = [_run_one(job) for job in work]
    else:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            rows = list(pool.imap_unordered(_run_one, work))
    rows.sort(key=lambda row: row["seed"])
    table = Table(title=f"sweep of {experiment.name}: {seeds} seeds, {jobs} processes")
    for column in ("seed", "verdict", "failed checkers", "sim s", "wall s", "ops", "replay"):
        table.add_column(column)
    for row in rows:
        if row["passed"] and len(rows) > 20:
            continue  # long sweeps list only the failures
        verdict = "[green]pass[/]" if row["passed"] else "[bold red]FAIL[/]"
        table.add_row(str(row["seed"]), verdict, ", ".join(row["failed"]), f"{row['sim_seconds']:.0f}",
                      f"{row['wall_seconds']:.2f}", str(row["operations"]),
                      f"shoal chaos replay {row['failure_file']}" if row["failure_file"] else "")
    console.print(table)
    failed = [row for row in rows if not row["passed"]]
    unknown = sum(1 for row in rows if "unknown" in row["statuses"].values())
    console.print(f"{len(rows) - len(failed)} of {len(rows)} seeds passed, {len(failed)} failed, "
                  f"{unknown} with an 'unknown' verdict; total {sum(r['wall_seconds'] for r in rows):.1f} wall s "
                  f"of work")
    return 1 if failed else 0
