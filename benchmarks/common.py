"""Shared helpers for benchmark areas: repeated timing, tables, JSON output.

Benchmarks report ratios against peers measured in the same run; absolute
times on a shared 2-core machine mean little on their own.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from rich.console import Console
from rich.table import Table


def median_seconds(function: Callable[[], object], repeats: int = 7, inner_loops: int = 1) -> float:
    """Median wall time of one call of ``function`` over ``repeats`` samples.

    Each sample runs ``inner_loops`` calls so short kernels are timed above the
    clock's resolution; the median resists the noise of a shared machine.
    """
    if repeats < 1 or inner_loops < 1:
        raise ValueError("repeats and inner_loops must be at least 1")
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner_loops):
            function()
        samples.append((time.perf_counter() - start) / inner_loops)
    return statistics.median(samples)


def machine_description() -> dict[str, Any]:
    return {
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    table = Table(title=title)
    for position, column in enumerate(columns):
        # First column names the case; the rest are figures, aligned right.
        table.add_column(column, justify="left" if position == 0 else "right")
    for row in rows:
        table.add_row(*(format_cell(cell) for cell in row))
    Console().print(table)


def format_cell(cell: object) -> str:
    if isinstance(cell, float):
        if cell == 0:
            return "0"
        if abs(cell) >= 1000:
            return f"{cell:,.0f}"
        if abs(cell) >= 10:
            return f"{cell:.1f}"
        return f"{cell:.3g}"
    return str(cell)


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    if not path:
        return
    document = {"machine": machine_description(), **payload}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2, sort_keys=True)
        handle.write("\n")
