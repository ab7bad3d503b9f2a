"""Shrinking a failing fault schedule to a 1-minimal one.

Hypothesis already shrinks what it generated; this goes further on any
failing experiment (also one from a file or a sweep): it removes events until
removing any single remaining event makes the failure disappear (a 1-minimal
schedule in the sense of Zeller and Hildebrandt's delta debugging, TSE 2002).
The simulation is deterministic, so "the failure disappears" is a plain
re-run; the predicate is "the same checker still fails".

Cost: ddmin needs O(n^2) runs in the worst case; ``runs_max`` bounds it, and
the result then is the smallest failing schedule found so far (still failing,
maybe not 1-minimal; ``ShrinkResult.minimal`` says which).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chaos.experiment import Experiment
from chaos.schedule import Event, Schedule


@dataclass
class ShrinkResult:
    experiment: Experiment
    runs: int
    minimal: bool  # True: removing any single event makes the failure disappear
    removed: int


def _with(experiment: Experiment, events: list[Event]) -> Experiment:
    return experiment.replace(schedule=Schedule(events))


def shrink(experiment: Experiment, fails: Callable[[Experiment], bool], runs_max: int = 200) -> ShrinkResult:
    """Remove events from ``experiment.schedule`` while ``fails`` stays true.

    ``fails(experiment)`` must be true on entry (checked, it costs one run).
    """
    events = list(experiment.schedule.events)
    runs = 1
    if not fails(experiment):
        raise ValueError("shrink needs a failing experiment: the given one passes")
    original = len(events)
    granularity = 2
    # ddmin: try dropping chunks of decreasing size, then single events.
    while len(events) >= 1 and runs < runs_max:
        chunk = max(1, len(events) // granularity)
        reduced = False
        start = 0
        while start < len(events) and runs < runs_max:
            candidate = events[:start] + events[start + chunk:]
            runs += 1
            if fails(_with(experiment, candidate)):
                events = candidate
                reduced = True
                # Same position now holds the next chunk; do not advance.
            else:
                start += chunk
        if reduced:
            granularity = max(granularity - 1, 2)
            continue
        if chunk == 1:
            break  # every single removal was tried and none kept the failure: 1-minimal
        granularity = min(granularity * 2, len(events))
    # Leaving the loop under budget means a full pass of single removals failed to reduce.
    minimal = runs < runs_max
    return ShrinkResult(_with(experiment, events), runs, minimal, original - len(events))


def is_one_minimal(experiment: Experiment, fails: Callable[[Experiment], bool]) -> bool:
    """True when removing any single event of the schedule makes ``fails`` false."""
    events = list(experiment.schedule.events)
    return not any(fails(_with(experiment, events[:i] + events[i + 1:])) for i in range(len(events)))


def simplify_events(experiment: Experiment, fails: Callable[[Experiment], bool]) -> Experiment:
    """After removal: drop optional parameters (lose_unpersisted ...) that the failure does not need."""
    events = list(experiment.schedule.events)
    for position, event in enumerate(events):
        if not event.params:
            continue
        plain = Event(event.at_ms, event.fault, event.target, ())
        candidate = events[:position] + [plain] + events[position + 1:]
        if fails(_with(experiment, candidate)):
            events = candidate
    return _with(experiment, events)
