"""What a run leaves behind: the summary table, results.json, the PNG timeline,
and the failure file that ``shoal chaos replay`` re-runs.

Drivers-only code (files, terminal): the simulation itself never calls it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from chaos.runner import RunResult

FAILURE_FORMAT = "shoal-chaos-failure/1"
STATUS_STYLE = {"pass": "green", "fail": "bold red", "unknown": "yellow", "skipped": "dim"}


def history_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def print_summary(result: RunResult, console: Console | None = None) -> None:
    console = console or Console()
    experiment = result.experiment
    stats = result.stats
    console.print(f"[bold]{experiment.name}[/] seed {experiment.seed}: {len(experiment.managers)} managers, "
                  f"{len(experiment.workers)} workers, {len(experiment.schedule)} fault events, "
                  f"{stats.get('sim_seconds', 0):.1f} simulated s in {stats.get('wall_seconds', 0):.2f} wall s "
                  f"({stats.get('speedup', 0):,.0f}x real time)")
    table = Table(title="checkers")
    table.add_column("checker")
    table.add_column("verdict")
    table.add_column("summary", overflow="fold")
    for check in result.checks:
        style = STATUS_STYLE.get(check.status, "")
        table.add_row(check.name, f"[{style}]{check.status.upper()}[/]", check.summary)
    console.print(table)
    windows = result.quorum_windows()
    if windows:
        table = Table(title="unavailable windows (writes not served)")
        for column in ("from s", "to s", "duration ms", "writes", "expected", "during"):
            table.add_column(column, justify="right" if column != "during" else "left")
        for window in windows:
            expected = "[green]yes[/]" if window["expected"] else "[bold red]NO[/]"
            table.add_row(f"{window['start_ms'] / 1000:.2f}", f"{window['end_ms'] / 1000:.2f}",
                          str(window["duration_ms"]), str(window["writes"]), expected,
                          "; ".join(window.get("causes", []))[:80])
        console.print(table)
    failovers = result.failover_times()
    if failovers:
        table = Table(title="failovers (leader lost -> next leader)")
        for column in ("leader lost at s", "old leader", "new leader", "term", "took ms"):
            table.add_column(column, justify="right")
        for item in failovers:
            table.add_row(f"{item['lost_ms'] / 1000:.2f}", item["old"], item["new"] or "-", str(item["term"] or "-"),
                          "-" if item["took_ms"] is None else str(item["took_ms"]))
        console.print(table)
    times = result.convergence_times()
    if times:
        table = Table(title="service convergence")
        for column in ("at s", "service", "operation", "converged after ms"):
            table.add_column(column, justify="right")
        for item in times:
            took = item["converged_after_ms"]
            table.add_row(f"{item['at_ms'] / 1000:.2f}", item["service"], item["operation"],
                          "[yellow]not before next op[/]" if took is None else str(took))
        console.print(table)
    for check in result.checks:
        if check.failed and check.lines:
            console.print(f"[bold red]{check.name}[/] failed:")
            for line in check.lines[:40]:
                console.print(line, markup=False, highlight=False)


def write_results_json(result: RunResult, path: Path) -> None:
    document: dict[str, Any] = {
        "experiment": result.experiment.to_dict(),
        "passed": result.passed,
        "checks": [check.to_dict() for check in result.checks],
        "stats": result.stats,
        "failovers": result.failover_times(),
        "timeline": result.timeline.to_dict(),
    }
    path.write_text(json.dumps(document, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")


def save_failure(result: RunResult, path: Path) -> Path:
    """A self-contained file from which ``shoal chaos replay`` re-runs the failure."""
    document = {
        "format": FAILURE_FORMAT,
        "experiment": result.experiment.to_dict(),
        "failed": sorted(check.name for check in result.checks if check.failed),
        "history_sha256": result.history_sha256,
        "summary": {check.name: check.summary for check in result.checks},
    }
    path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def write_timeline_png(result: RunResult, path: Path) -> None:
    """Three panels over virtual time: leadership per manager (bars labelled by
    term), client operations (latency, coloured by outcome), running tasks per
    service; fault bands shaded across all of them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timeline = result.timeline
    managers = [node.name for node in result.experiment.managers]
    figure, (lead_axis, ops_axis, task_axis) = plt.subplots(
        3, 1, figsize=(12, 7.5), sharex=True, gridspec_kw={"height_ratios": [1.2, 1.6, 1.0]})
    end_s = max(timeline.end_ms, 1) / 1000
    colours = ["#e45756", "#4c78a8", "#f58518", "#54a24b", "#b279a2", "#9d755d", "#bab0ac"]
    for position, band in enumerate(timeline.faults):
        start_s = band.start_ms / 1000
        stop_s = (band.end_ms if band.end_ms is not None else timeline.end_ms) / 1000
        for axis in (lead_axis, ops_axis, task_axis):
            axis.axvspan(start_s, max(stop_s, start_s + 0.05), color=colours[position % len(colours)], alpha=0.12)
        lead_axis.text(start_s, len(managers) - 0.35 + 0.0, band.label, fontsize=7, rotation=0,
                       va="bottom", ha="left", clip_on=True)
    rows = {name: index for index, name in enumerate(managers)}
    for span in timeline.leaders:
        if span.node not in rows:
            continue
        width = max((span.end_ms - span.start_ms) / 1000, 0.05)
        lead_axis.barh(rows[span.node], width, left=span.start_ms / 1000, height=0.6, color="#4c78a8")
        if width > end_s / 60:
            lead_axis.text(span.start_ms / 1000 + width / 2, rows[span.node], f"t{span.term}", ha="center",
                           va="center", fontsize=7, color="white")
    lead_axis.set_yticks(range(len(managers)), managers)
    lead_axis.set_ylim(-0.6, len(managers) + 0.4)
    lead_axis.set_ylabel("leader")
    lead_axis.set_title(f"{result.experiment.name} - seed {result.experiment.seed}")

    points: dict[str, tuple[list[float], list[float]]] = {"ok": ([], []), "fail": ([], []), "info": ([], [])}
    invoked: dict[int, int] = {}
    for op in result.history:
        if op.type == "invoke":
            invoked[op.process] = op.time_ns
        elif op.process in invoked:
            start_ns = invoked.pop(op.process)
            xs, ys = points[op.type]
            xs.append(op.time_ns / 1e9)
            ys.append(max((op.time_ns - start_ns) / 1e6, 0.1))
    for kind, colour in (("ok", "#54a24b"), ("fail", "#e45756"), ("info", "#f58518")):
        xs, ys = points[kind]
        if xs:
            ops_axis.scatter(xs, ys, s=4, color=colour, label=f"{kind} ({len(xs)})", alpha=0.7)
    ops_axis.set_yscale("log")
    ops_axis.set_ylabel("op latency ms")
    if any(points[kind][0] for kind in points):
        ops_axis.legend(loc="upper right", fontsize=7, markerscale=3)

    series: dict[str, tuple[list[float], list[int]]] = {}
    for sample in result.samples:
        for service in sample.services:
            running = sum(1 for task in sample.tasks if task.service == service.name and task.state == "running")
            xs, ys = series.setdefault(service.name, ([], []))
            xs.append(sample.time_ms / 1000)
            ys.append(running)
    for name, (xs, ys) in sorted(series.items()):
        task_axis.step(xs, ys, where="post", label=name)
    if series:
        task_axis.legend(loc="upper right", fontsize=7)
    task_axis.set_ylabel("running tasks")
    task_axis.set_xlabel("virtual time (s)")
    task_axis.set_xlim(0, end_s)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
