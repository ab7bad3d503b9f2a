"""Hunting for a failure: random fault schedules within a budget, then shrinking.

``hunt(base, budget)`` runs ``base`` with up to ``budget`` random schedules
(``chaos.strategies.random_schedule`` by default, or any ``make``, e.g.
``churn_schedule_for``; seeded by the run's seed, so a hunt is reproducible), stops at the first run in which a checker fails, and
shrinks that schedule with ``chaos.shrink.shrink`` until removing any single
event makes the failure disappear.  The planted-bug tests use it to show that
the harness finds a Raft that skips ReadIndex or the figure-8 commit rule.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from chaos.experiment import Experiment
from chaos.runner import RunResult, run_experiment
from chaos.shrink import ShrinkResult, shrink
from chaos.strategies import leader_churn_schedule, random_schedule


@dataclass
class HuntResult:
    tried: int
    failing: Experiment | None = None
    result: RunResult | None = None
    shrunk: ShrinkResult | None = None

    @property
    def found(self) -> bool:
        return self.failing is not None


def schedule_for(base: Experiment, seed: int, events: int) -> Experiment:
    managers = [node.name for node in base.managers]
    workers = [node.name for node in base.workers]
    schedule = random_schedule(random.Random(seed), managers, workers, base.duration_ms, events)
    return base.replace(seed=seed, schedule=schedule)


def churn_schedule_for(base: Experiment, seed: int, events: int) -> Experiment:
    """``make`` for ``hunt``: a leader-churn schedule (``leader_churn_schedule``)."""
    managers = [node.name for node in base.managers]
    workers = [node.name for node in base.workers]
    schedule = leader_churn_schedule(random.Random(seed), managers, workers, base.duration_ms, events)
    return base.replace(seed=seed, schedule=schedule)


def hunt(base: Experiment, budget: int, *, events: int = 10, first_seed: int = 0, shrink_runs_max: int = 150,
         make: Callable[[Experiment, int, int], Experiment] = schedule_for) -> HuntResult:
    """Try ``budget`` seeds; shrink the first failure (same failing checkers)."""
    if budget < 1:
        raise ValueError(f"budget must be at least 1, got {budget}")
    for tried, seed in enumerate(range(first_seed, first_seed + budget), start=1):
        experiment = make(base, seed, events)
        result = run_experiment(experiment, write_png=False)
        if result.passed:
            continue
        wanted = set(result.failed_checkers)

        def fails(candidate: Experiment) -> bool:
            return bool(wanted & set(run_experiment(candidate, write_png=False).failed_checkers))

        shrunk = shrink(experiment, fails, runs_max=shrink_runs_max)
        return HuntResult(tried, experiment, result, shrunk)
    return HuntResult(budget)
