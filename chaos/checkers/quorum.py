"""Quorum availability: writes succeed exactly when a majority of managers can talk.

The seed's lesson ("with two managers, stopping one makes the other unusable;
Raft needs a majority alive") as a checker.  From the nemesis' record of the
fault state (``chaos.timeline.Condition``) it computes, for every moment,
whether a quorum exists: more than half of the voting managers up (not
crashed, not paused) and connected in both directions to one of them (the
star a leader needs; see ``has_quorum``).
Then, for every write in the history:

- a write acknowledged while no quorum existed at any moment of its life is a
  violation (Raft may only commit with a majority);
- a write invoked at least ``grace_ms`` after the last change of the fault
  state, whose whole timeout fits in a quorum interval without degraded links,
  must succeed (leader election takes at most about two randomized election
  timeouts: the grace);
- a write invoked at least ``grace_ms`` into an interval without quorum, whose
  whole timeout fits in it, must fail, and the failure should say "no quorum"
  (with ``require_clear_errors`` a timeout there is a violation too).

Writes inside a grace period or a degraded-link interval promise nothing.
The report lists every observed unavailable window (consecutive writes that did
not succeed) and whether it was expected.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chaos.checkers.result import CheckResult
from chaos.history import History, Op
from chaos.timeline import Condition

WRITE_FUNCTIONS: frozenset[str] = frozenset({"put", "cas", "delete", "append", "write"})
NO_QUORUM_TEXT = "no quorum"
CAS_MISMATCH_TEXT = "cas mismatch"


def has_quorum(condition: Condition) -> bool:
    """True when some up voter is connected, in both directions, to enough other
    up voters to make a majority with itself.

    That is what Raft needs to elect a leader and commit (the leader's star:
    votes and append replies travel both ways between it and each member of a
    majority; the members need not reach each other - Jepsen's majorities ring
    keeps such stars).  It is necessary for any commit, so a write acknowledged
    without it is a violation; it is sufficient for liveness with PreVote and
    CheckQuorum, which keep the nodes outside the star from disrupting it.
    """
    voters = sorted(condition.voters)
    if not voters:
        return False
    needed = len(voters) // 2 + 1
    candidates = [node for node in voters if node in condition.up]
    if len(candidates) < needed:
        return False
    blocked = condition.blocked
    for centre in candidates:
        reach = sum(1 for other in candidates
                    if other == centre or ((centre, other) not in blocked and (other, centre) not in blocked))
        if reach >= needed:
            return True
    return False


@dataclass(frozen=True)
class Segment:
    start_ms: int
    end_ms: int
    quorum: bool
    degraded: bool
    cause: str


def segments(conditions: Sequence[Condition], end_ms: int) -> list[Segment]:
    ordered = sorted(conditions, key=lambda condition: condition.time_ms)
    result = []
    for position, condition in enumerate(ordered):
        stop = ordered[position + 1].time_ms if position + 1 < len(ordered) else max(end_ms, condition.time_ms)
        if stop > condition.time_ms or position + 1 == len(ordered):
            result.append(Segment(condition.time_ms, stop, has_quorum(condition), condition.degraded,
                                  condition.cause))
    return result


@dataclass(frozen=True)
class WriteOutcome:
    invoke: Op
    completion: Op | None

    @property
    def served(self) -> bool:
        """It took effect (ok), or was executed and refused by its comparison."""
        if self.completion is None:
            return False
        if self.completion.type == "ok":
            return True
        return self.completion.type == "fail" and CAS_MISMATCH_TEXT in (self.completion.error or "")

    @property
    def clear_refusal(self) -> bool:
        return (self.completion is not None and self.completion.type == "fail"
                and NO_QUORUM_TEXT in (self.completion.error or ""))


def _writes(history: History | Sequence[Op]) -> list[WriteOutcome]:
    open_by_process: dict[int, Op] = {}
    result: list[WriteOutcome] = []
    for op in history:
        if op.f not in WRITE_FUNCTIONS:
            continue
        if op.type == "invoke":
            open_by_process[op.process] = op
        else:
            invoked = open_by_process.pop(op.process, None)
            if invoked is not None:
                result.append(WriteOutcome(invoked, op))
    result.extend(WriteOutcome(op, None) for op in open_by_process.values())
    result.sort(key=lambda write: (write.invoke.time_ns, write.invoke.index))
    return result


def check_quorum(history: History | Sequence[Op], conditions: Sequence[Condition], *, end_ms: int,
                 grace_ms: int, timeout_ms: int, require_clear_errors: bool = False) -> CheckResult:
    """Judge every write of ``history`` against the quorum implied by ``conditions``."""
    if grace_ms < 0 or timeout_ms <= 0:
        raise ValueError(f"grace_ms must be >= 0 and timeout_ms > 0, got {grace_ms}, {timeout_ms}")
    spans = segments(conditions, end_ms)
    writes = _writes(history)
    if not spans or not writes:
        return CheckResult("quorum", "skipped", "no writes or no fault record to judge")

    def overlapping(start_ms: int, stop_ms: int) -> list[Segment]:
        return [span for span in spans if span.start_ms <= stop_ms and span.end_ms >= start_ms]

    def containing(start_ms: int, stop_ms: int) -> Segment | None:
        for span in spans:
            if span.start_ms <= start_ms and stop_ms <= span.end_ms:
                return span
        return None

    violations: list[str] = []
    unexpected_ops: set[int] = set()
    counts = {"served": 0, "refused_clearly": 0, "refused_unclear": 0, "timed_out": 0,
              "expected_available": 0, "expected_unavailable": 0, "no_promise": 0}
    for write in writes:
        invoke_ms = write.invoke.time_ns // 1_000_000
        complete_ms = (write.completion.time_ns // 1_000_000 if write.completion is not None
                       else invoke_ms + timeout_ms)
        if write.served:
            counts["served"] += 1
        elif write.clear_refusal:
            counts["refused_clearly"] += 1
        elif write.completion is not None and write.completion.type == "fail":
            counts["refused_unclear"] += 1
        else:
            counts["timed_out"] += 1
        lifetime = overlapping(invoke_ms, complete_ms)
        if write.served and write.completion is not None and write.completion.type == "ok" \
                and lifetime and not any(span.quorum for span in lifetime):
            violations.append(f"write {write.invoke.f} {write.invoke.key}={write.invoke.value!r} "
                              f"(process {write.invoke.process}) acknowledged at {complete_ms} ms although "
                              f"no quorum existed from {invoke_ms} ms: {lifetime[0].cause}")
            unexpected_ops.add(write.invoke.index)
            continue
        span = containing(invoke_ms, invoke_ms + timeout_ms)
        if span is None or invoke_ms < span.start_ms + grace_ms or span.degraded:
            counts["no_promise"] += 1
            continue
        if span.quorum:
            counts["expected_available"] += 1
            if not write.served:
                outcome = "timed out" if write.completion is None or write.completion.type == "info" else \
                    f"failed: {write.completion.error}"
                violations.append(f"write {write.invoke.f} {write.invoke.key} (process {write.invoke.process}) "
                                  f"invoked at {invoke_ms} ms {outcome}, although a quorum had been "
                                  f"up and connected since {span.start_ms} ms (grace {grace_ms} ms)")
                unexpected_ops.add(write.invoke.index)
        else:
            counts["expected_unavailable"] += 1
            if require_clear_errors and not write.served and not write.clear_refusal:
                violations.append(f"write {write.invoke.f} {write.invoke.key} invoked at {invoke_ms} ms "
                                  f"without quorum did not fail with a clear {NO_QUORUM_TEXT!r} error")
                unexpected_ops.add(write.invoke.index)

    windows = unavailable_windows(writes, unexpected_ops, spans, end_ms)
    expected_windows = sum(1 for window in windows if window["expected"])
    quorum_lost_ms = sum(span.end_ms - span.start_ms for span in spans if not span.quorum)
    details: dict[str, Any] = {
        "counts": counts,
        "windows": windows,
        "no_quorum_intervals": [[span.start_ms, span.end_ms, span.cause] for span in spans if not span.quorum],
        "quorum_lost_ms": quorum_lost_ms,
        "grace_ms": grace_ms,
        "violations": violations[:50],
    }
    summary = (f"{counts['served']} of {len(writes)} writes served; {len(windows)} unavailable window(s), "
               f"{expected_windows} expected; quorum lost for {quorum_lost_ms} ms")
    lines = [f"  {text}" for text in violations[:20]]
    if len(violations) > 20:
        lines.append(f"  ... and {len(violations) - 20} more")
    status = "fail" if violations else "pass"
    if violations:
        summary = f"{len(violations)} violation(s): " + summary
    return CheckResult("quorum", status, summary, lines, details)


def unavailable_windows(writes: Sequence[WriteOutcome], unexpected_ops: set[int], spans: Sequence[Segment],
                        end_ms: int) -> list[dict[str, Any]]:
    """Maximal runs of writes (by invocation time) that were not served."""
    windows: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for write in writes:
        invoke_ms = write.invoke.time_ns // 1_000_000
        if write.served:
            if current is not None:
                current["end_ms"] = invoke_ms
                windows.append(current)
                current = None
            continue
        if current is None:
            current = {"start_ms": invoke_ms, "end_ms": end_ms, "writes": 0, "expected": True}
        current["writes"] += 1
        if write.invoke.index in unexpected_ops:
            current["expected"] = False
    if current is not None:
        windows.append(current)
    for window in windows:
        # Conditions in force during the window (a positive overlap), or the one it began in.
        causes = [span.cause for span in spans if span.cause and (
            (span.start_ms < window["end_ms"] and span.end_ms > window["start_ms"])
            or span.start_ms <= window["start_ms"] < span.end_ms)]
        window["duration_ms"] = window["end_ms"] - window["start_ms"]
        window["causes"] = sorted(set(causes))[:5]
    return windows
