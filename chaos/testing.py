"""A public testing API for users' own property-based chaos suites.

    from hypothesis import given, settings
    from chaos.strategies import experiments
    from chaos.testing import assert_passes, run_experiment

    @settings(max_examples=20, deadline=None)
    @given(experiments(duration_ms=20_000, max_events=6))
    def test_swarm_survives(experiment):
        assert_passes(run_experiment(experiment))

``assert_passes`` raises ``ChaosFailure`` with every checker's verdict, the
failing details and a saved failure file (``shoal chaos replay FILE``).  The
pytest plugin (chaos.pytest_plugin) adds the ``chaos_cluster`` fixture, the
``--chaos-seed``, ``--chaos-replay`` and ``--chaos-report-dir`` options, and
writes the report of a failing test.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chaos.experiment import Experiment, KvWorkload, NodeSpec, ServiceOp, default_nodes
from chaos.runner import RunResult
from chaos.runner import run_experiment as _run_experiment
from chaos.schedule import Event, Schedule, parse_fault_flag

__all__ = ["ChaosFailure", "assert_passes", "make_experiment", "run_experiment", "last_results"]

# Results of the runs made through this module in this process, newest last
# (the pytest plugin writes the report of the last one when a test fails).
last_results: list[RunResult] = []
LAST_RESULTS_MAX = 4


class ChaosFailure(AssertionError):
    """A chaos run in which a checker failed; ``result`` holds everything."""

    def __init__(self, result: RunResult) -> None:
        self.result = result
        super().__init__(result.explain())


def make_experiment(*, managers: int = 3, workers: int = 1, seed: int = 0, duration_ms: int = 20_000,
                    settle_ms: int = 10_000, faults: Sequence[Event | str] = (), kv: KvWorkload | None = None,
                    services: Sequence[ServiceOp] = (), nodes: Sequence[NodeSpec] | None = None,
                    raft_unsafe: dict[str, Any] | None = None, **changes: Any) -> Experiment:
    """An experiment from keyword arguments; faults as Events or flag strings ('5s:kill-leader')."""
    events = [event if isinstance(event, Event) else parse_fault_flag(event) for event in faults]
    changes.setdefault("convergence_bound_ms", min(settle_ms, 20_000) or 1)
    return Experiment(name="test", seed=seed, duration_ms=duration_ms, settle_ms=settle_ms,
                      nodes=tuple(nodes) if nodes is not None else default_nodes(managers, workers),
                      kv=kv if kv is not None else KvWorkload(), services=tuple(services),
                      schedule=Schedule(events), raft_unsafe=tuple(sorted((raft_unsafe or {}).items())),
                      **changes)


def run_experiment(experiment: Experiment, out_dir: str | Path | None = None, **options: Any) -> RunResult:
    """Run in the simulator (no files unless ``out_dir``); remembers the result for the plugin."""
    result = _run_experiment(experiment, out_dir=out_dir, write_png=options.pop("write_png", False), **options)
    last_results.append(result)
    del last_results[:-LAST_RESULTS_MAX]
    return result


def assert_passes(result: RunResult, report_dir: str | Path | None = None) -> None:
    """Raise ChaosFailure (with a saved failure file) unless every checker passed."""
    if result.passed:
        return
    if result.failure_file is None:
        directory = Path(report_dir or os.environ.get("SHOAL_CHAOS_REPORT_DIR")
                         or tempfile.mkdtemp(prefix="shoal-chaos-"))
        from chaos.runner import encode_history, write_outputs

        encoded = encode_history(result.history)
        write_outputs(result, directory / f"seed-{result.experiment.seed}", encoded, write_png=False)
    raise ChaosFailure(result)
