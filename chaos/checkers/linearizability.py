"""Linearizability checker for register and key-value histories.

Entry point: :func:`check_linearizability` (history, model, time limit) ->
:class:`LinearizabilityResult`.  The search is Wing and Gong's, with Lowe's
memoization of ``(linearized set, model state)`` (see ``search.py``); the
history is first split by key - linearizability is local (Herlihy and Wing
1990, theorem 1), so a history is linearizable iff each key's sub-history is,
which turns one exponential search into many small ones (Porcupine's
``Partition``; Horn and Kroening's P-compositionality).

Verdicts: ``ok`` (a linearization exists, one is returned per key),
``illegal`` (none exists; the longest partial linearization found is
returned, with the operations that could not come next), ``unknown`` (the
time limit or step bound was reached first - never a hang).  An illegal key
makes the whole history illegal even if other keys ran out of time.

Real time is the order of events in the history (see ``operations.py``).
``fail`` operations did not happen and are dropped; ``info`` operations and
invocations that never completed may take effect at any time after their
invocation, or never.

Beyond Porcupine, the search prunes with reductions that keep it exact (each
is argued in ``search.py`` and checked against brute force in the tests):
reads are linearized as soon as they are legal; an unknown-outcome operation
is only linearized when a later operation can observe it (never right before
a blind write, never when it changes nothing); identical unknown operations
are interchangeable.  Histories whose writes carry unique values (as
Jepsen's generators do) stay small to search even with many timeouts; with
a handful of values repeated across hundreds of timeouts an *illegal*
history can still exhaust the bounds and come back ``unknown``.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from chaos.checkers.models import ILLEGAL, KVModel, Model, ModelError, RegisterModel
from chaos.checkers.operations import Operation, pair_operations
from chaos.checkers.search import CONFIGURATIONS_MAX, Budget, BudgetExhausted, SearchOutcome, search_slices, stop
from chaos.history import History, Op

Verdict = Literal["ok", "illegal", "unknown"]

__all__ = ["IllegalPrefix", "KVModel", "KeyVerdict", "LinearizabilityResult", "ModelError",
           "RegisterModel", "check_linearizability", "check_operations"]


@dataclass(frozen=True, slots=True)
class IllegalPrefix:
    """The furthest partial linearization of one key, and where it got stuck.

    ``linearized[k]`` took the object to ``states[k + 1]`` (``states[0]`` is
    the initial state).  ``blocked`` returned before it could be linearized;
    ``pending`` are the operations that were candidates to come next, each with
    why it could not (``impossible`` from the last state, or ``dead end``: it
    was legal but everything after it was already explored and failed).
    """

    key: Hashable
    linearized: tuple[Operation, ...]
    states: tuple[str, ...]
    blocked: Operation | None
    pending: tuple[tuple[Operation, str], ...]

    def lines(self) -> list[str]:
        """Human-readable lines for a report."""
        out = [f"key {self.key!r}: furthest partial linearization ({len(self.linearized)} operations), "
               f"initial state {self.states[0]}"]
        for operation, state in zip(self.linearized, self.states[1:]):
            out.append(f"  {operation.describe()}   => {state}")
        if self.blocked is not None:
            out.append(f"  stuck: {self.blocked.describe()} returned before it could be linearized")
        for operation, why in self.pending:
            out.append(f"  cannot come next: {operation.describe()} ({why})")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": jsonable(self.key),
            "linearized": [{"operation": operation.id, "describe": operation.describe(), "state_after": state}
                           for operation, state in zip(self.linearized, self.states[1:])],
            "initial_state": self.states[0],
            "blocked": None if self.blocked is None else self.blocked.id,
            "pending": [{"operation": operation.id, "describe": operation.describe(), "why": why}
                        for operation, why in self.pending],
        }


@dataclass(frozen=True, slots=True)
class KeyVerdict:
    """The verdict for one key (one partition) of the history."""

    key: Hashable
    verdict: Verdict
    operations: int
    steps: int
    cache_size: int
    reason: str = ""  # why unknown
    linearization: tuple[int, ...] = ()  # operation ids, when ok
    prefix: IllegalPrefix | None = None  # when illegal (or unknown: progress so far)


@dataclass(frozen=True, slots=True)
class LinearizabilityResult:
    """The verdict of a whole history, with one :class:`KeyVerdict` per key."""

    verdict: Verdict
    model: str
    keys: tuple[KeyVerdict, ...]
    operations: int  # operations checked (after dropping fail and unknown reads)
    dropped: int  # operations that constrain nothing (fail, reads with unknown outcome)
    ignored: int  # operations the model does not know (e.g. service operations), skipped
    steps: int
    elapsed_s: float = 0.0
    key_verdicts: dict[Hashable, Verdict] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    @property
    def illegal_keys(self) -> list[KeyVerdict]:
        return [key for key in self.keys if key.verdict == "illegal"]

    def report_lines(self) -> list[str]:
        """A summary line, then the illegal prefix of every illegal key."""
        counts = {v: sum(1 for key in self.keys if key.verdict == v) for v in ("ok", "illegal", "unknown")}
        lines = [f"linearizability ({self.model}): {self.verdict} - {self.operations} operations, "
                 f"{len(self.keys)} keys ({counts['ok']} ok, {counts['illegal']} illegal, "
                 f"{counts['unknown']} unknown), {self.steps} search steps, {self.elapsed_s:.3f} s"]
        for key in self.keys:
            if key.verdict == "unknown":
                lines.append(f"key {key.key!r}: unknown ({key.reason})")
            if key.verdict == "illegal" and key.prefix is not None:
                lines.extend(key.prefix.lines())
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "model": self.model,
            "operations": self.operations,
            "dropped": self.dropped,
            "ignored": self.ignored,
            "steps": self.steps,
            "elapsed_s": self.elapsed_s,
            "keys": [{"key": jsonable(key.key), "verdict": key.verdict, "operations": key.operations,
                      "steps": key.steps, "reason": key.reason,
                      "illegal_prefix": None if key.prefix is None or key.verdict == "ok" else key.prefix.to_dict()}
                     for key in self.keys],
        }


def jsonable(value: Any) -> Any:
    """A key or value as JSON can hold it (repr for anything else)."""
    return value if value is None or isinstance(value, (str, int, float, bool)) else repr(value)


def check_linearizability(history: History | Sequence[Op], model: Model | None = None, *,
                          time_limit_s: float | None = 10.0, steps_max: int | None = None,
                          clock: Callable[[], float] | None = None,
                          ignore_unknown_functions: bool = True, all_keys: bool = False,
                          configurations_max: int = CONFIGURATIONS_MAX) -> LinearizabilityResult:
    """Check a Jepsen-style history against ``model`` (default: ``KVModel()``, absent = None).

    ``time_limit_s`` / ``steps_max`` bound the whole check (None = no bound);
    when one is reached the keys not yet decided are ``unknown``.  ``clock``
    (seconds, monotonic) defaults to ``time.perf_counter``; inject one to make
    the limit deterministic.  Operations whose ``f`` the model does not know
    are skipped and counted (``ignored``) unless ``ignore_unknown_functions`` is
    False, when they raise :class:`ModelError`.  The first illegal key stops
    the search of the others (left ``unknown``) unless ``all_keys`` is True.
    ``configurations_max`` bounds the memory of each key's search (its cache
    of configurations); reaching it makes that key ``unknown``.
    """
    return check_operations(pair_operations(history), model, time_limit_s=time_limit_s, steps_max=steps_max,
                            clock=clock, ignore_unknown_functions=ignore_unknown_functions, all_keys=all_keys,
                            configurations_max=configurations_max)


def check_operations(operations: Sequence[Operation], model: Model | None = None, *,
                     time_limit_s: float | None = 10.0, steps_max: int | None = None,
                     clock: Callable[[], float] | None = None,
                     ignore_unknown_functions: bool = True, all_keys: bool = False,
                     configurations_max: int = CONFIGURATIONS_MAX) -> LinearizabilityResult:
    """As :func:`check_linearizability`, on already paired operations."""
    if model is None:
        model = KVModel()
    if time_limit_s is not None and time_limit_s < 0:
        raise ValueError(f"time_limit_s must be >= 0, got {time_limit_s}")
    if steps_max is not None and steps_max < 0:
        raise ValueError(f"steps_max must be >= 0, got {steps_max}")
    if configurations_max < 1:
        raise ValueError(f"configurations_max must be >= 1, got {configurations_max}")
    if clock is None:
        clock = time.perf_counter
    started = clock()
    deadline = None if time_limit_s is None else started + time_limit_s
    budget = Budget(steps_max, deadline, clock)

    partitions: dict[Hashable, list[tuple[Operation, tuple[Any, ...]]]] = {}
    dropped = ignored = 0
    for operation in operations:
        try:
            call = model.compile(operation)
        except ModelError:
            if not ignore_unknown_functions or operation.f in ("read", "write", "cas", "get", "put",
                                                                "append", "delete"):
                raise
            ignored += 1
            continue
        if call is None:
            dropped += 1
            continue
        partitions.setdefault(model.partition_key(operation), []).append((operation, call))

    order = sorted(partitions, key=lambda key: (len(partitions[key]), repr(key)))
    verdicts = _check_partitions([(key, partitions[key]) for key in order], model, budget, all_keys,
                                 configurations_max)
    overall: Verdict = "ok"
    if any(v.verdict == "illegal" for v in verdicts):
        overall = "illegal"
    elif any(v.verdict == "unknown" for v in verdicts):
        overall = "unknown"
    return LinearizabilityResult(
        verdict=overall, model=model.name, keys=tuple(verdicts),
        operations=sum(len(p) for p in partitions.values()), dropped=dropped, ignored=ignored,
        steps=budget.steps, elapsed_s=clock() - started,
        key_verdicts={v.key: v.verdict for v in verdicts})


def _check_partitions(partitions: list[tuple[Hashable, list[tuple[Operation, tuple[Any, ...]]]]], model: Model,
                      budget: Budget, all_keys: bool, configurations_max: int) -> list[KeyVerdict]:
    """Run every key's search, interleaved in slices of BUDGET_CHECK_STEPS steps.

    Interleaving stands in for Porcupine's one goroutine per partition: a key
    that is quickly shown illegal is found even when another key's search is
    long (proving a key illegal means exhausting its search space).  Unless
    ``all_keys``, the first illegal key stops the others (their verdict is
    ``unknown``), as Porcupine's non-verbose check does.
    """
    outcomes: dict[int, SearchOutcome] = {}
    live: dict[int, Any] = {}
    for position, (_, members) in enumerate(partitions):
        calls = [call for _, call in members]
        live[position] = search_slices(
            calls, [operation.invoke_index for operation, _ in members],
            [operation.return_index for operation, _ in members], model.initial_state(), model.step,
            [model.observes_only(call) for call in calls], [model.blind_write(call) for call in calls],
            configurations_max)
    charged = dict.fromkeys(live, 0)
    stop_reason = ""
    while live and not stop_reason:
        for position in list(live):
            try:
                steps = next(live[position])
            except StopIteration as finished:
                outcome: SearchOutcome = finished.value
                outcomes[position] = outcome
                del live[position]
                steps = outcome.steps
                if outcome.verdict == "illegal" and not all_keys:
                    stop_reason = f"not finished: key {partitions[position][0]!r} is already illegal"
            try:
                budget.charge(steps - charged[position])
                charged[position] = steps
            except BudgetExhausted as exhausted:
                stop_reason = stop_reason or exhausted.reason
            if stop_reason:
                break
    for position, slices in live.items():
        outcomes[position] = stop(slices, stop_reason)
    return [_key_verdict(key, members, outcomes[position], model)
            for position, (key, members) in enumerate(partitions)]


def _key_verdict(key: Hashable, members: list[tuple[Operation, tuple[Any, ...]]], outcome: SearchOutcome,
                 model: Model) -> KeyVerdict:
    calls = [call for _, call in members]
    operations = [operation for operation, _ in members]
    if outcome.verdict == "ok":
        return KeyVerdict(key, "ok", len(members), outcome.steps, outcome.cache_size,
                          linearization=tuple(operations[n].id for n in outcome.linearization))
    prefix = _illegal_prefix(key, outcome, operations, calls, model)
    return KeyVerdict(key, outcome.verdict, len(members), outcome.steps, outcome.cache_size,  # type: ignore[arg-type]
                      reason=outcome.reason, prefix=prefix)


def _illegal_prefix(key: Hashable, outcome: SearchOutcome, operations: list[Operation],
                    calls: list[tuple[Any, ...]], model: Model) -> IllegalPrefix:
    last_state = outcome.prefix_states[-1]
    pending = []
    for number in outcome.pending:
        why = "impossible" if model.step(last_state, calls[number]) is ILLEGAL else "dead end"
        pending.append((operations[number], f"{why} from state {model.describe_state(last_state)}"))
    return IllegalPrefix(
        key=key,
        linearized=tuple(operations[n] for n in outcome.prefix),
        states=tuple(model.describe_state(s) for s in outcome.prefix_states),
        blocked=operations[outcome.blocked] if outcome.blocked >= 0 else None,
        pending=tuple(pending))
