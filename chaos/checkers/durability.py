"""Durability: no acknowledged write is lost.

Input: a register or key-value history and one or more *final observations*
taken after the faults healed and the clients stopped - e.g. a final read of
every key, or each manager's applied key-value state - given as
``{observer name: {key: value}}`` (``None`` = absent; a register history has
the single key ``None``).

Definition.  Per observer and key k with observed final value F:

1. An acknowledged write is an operation on k that completed ``ok`` and
   changes state: write/put, delete, append, and a cas that applied.  It is
   *lost* when F does not reflect it and nothing may have overwritten it:
   - put/write v, cas [a, v]: F != v; delete: F is not absent; append v: v is
     not a substring of F;
   - and no other state-changing operation on k that may have taken effect
     after it - acknowledged or of unknown outcome (``info``), i.e. any whose
     return is not before its invocation - overwrites it (for an append, only
     a put/write/delete/cas can overwrite; a later append keeps it).
   A write reported lost is lost in every linearization: nothing can come
   after it and change the value away from it.
2. Then the exact test: the final observation becomes a read appended to k's
   sub-history, invoked after every recorded event, and the linearizability
   search runs on the extended sub-history.  If it is illegal while the
   sub-history without the final read is not, the final value cannot be
   explained by any order of the operations - e.g. it equals a value that was
   certainly overwritten - and the key fails with that reason even when rule 1
   names no single write.  Operations of unknown outcome may linearize after
   the final read (they may never apply), so take final observations only
   after the clients stopped.

Verdicts: ``ok``, ``illegal`` (a write lost or the final value unexplained),
``unknown`` (the search ran out of time and rule 1 found nothing).
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaos.checkers.linearizability import (IllegalPrefix, LinearizabilityResult, Verdict, jsonable,
                                            check_operations)
from chaos.checkers.models import (APPEND, CAS, CAS_MISMATCH, DELETE, READ, WRITE, KVModel, Model, ModelError,
                                   freeze)
from chaos.checkers.operations import Operation, pair_operations
from chaos.history import History, Op

__all__ = ["DurabilityResult", "KeyDurability", "LostWrite", "check_durability"]

FINAL_READ_PROCESS = -1


@dataclass(frozen=True, slots=True)
class LostWrite:
    """An acknowledged write that the final observation does not reflect."""

    observer: str
    key: Hashable
    operation: Operation
    final_value: Any

    @property
    def invoke_index(self) -> int:
        return self.operation.invoke_index

    @property
    def return_index(self) -> int | None:
        return self.operation.return_index

    def describe(self) -> str:
        return (f"{self.observer}: key {self.key!r} final value {self.final_value!r} lost "
                f"acknowledged {self.operation.describe()}")


@dataclass(frozen=True, slots=True)
class KeyDurability:
    observer: str
    key: Hashable
    final_value: Any
    verdict: Verdict
    lost: tuple[LostWrite, ...] = ()
    reason: str = ""
    prefix: IllegalPrefix | None = None


@dataclass(frozen=True, slots=True)
class DurabilityResult:
    verdict: Verdict
    keys: tuple[KeyDurability, ...]

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    @property
    def lost_writes(self) -> tuple[LostWrite, ...]:
        return tuple(lost for key in self.keys for lost in key.lost)

    def report_lines(self) -> list[str]:
        bad = [key for key in self.keys if key.verdict != "ok"]
        lines = [f"durability: {self.verdict} - {len(self.keys)} (observer, key) pairs, "
                 f"{len(self.lost_writes)} lost writes, {len(bad)} pairs not ok"]
        for key in bad:
            lines.append(f"{key.observer}: key {key.key!r} = {key.final_value!r}: {key.verdict} ({key.reason})")
            lines.extend(f"  lost: {lost.operation.describe()}" for lost in key.lost)
            if key.prefix is not None and not key.lost:
                lines.extend("  " + line for line in key.prefix.lines())
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "keys": [{"observer": key.observer, "key": jsonable(key.key), "final_value": jsonable(key.final_value),
                      "verdict": key.verdict, "reason": key.reason,
                      "lost": [{"operation": lost.operation.id, "invoke_index": lost.invoke_index,
                                "return_index": lost.return_index, "describe": lost.operation.describe()}
                               for lost in key.lost]}
                     for key in self.keys],
        }


def check_durability(history: History | Sequence[Op], final_states: Mapping[str, Mapping[Hashable, Any]],
                     model: Model | None = None, *, complete_snapshots: bool = True,
                     time_limit_s: float | None = 10.0, steps_max: int | None = None,
                     clock: Callable[[], float] | None = None) -> DurabilityResult:
    """Judge every (observer, key) pair; see the module docstring.

    ``complete_snapshots``: an observer's mapping is its whole state, so a key
    written in the history but missing from it was observed absent (the
    model's initial value).  With False only the keys present are judged.
    The time limit and step bound apply to each observer's search.
    """
    if model is None:
        model = KVModel()
    operations = pair_operations(history)
    compiled: list[tuple[Operation, tuple[Any, ...]]] = []
    for operation in operations:
        try:
            call = model.compile(operation)
        except ModelError:
            continue  # service operations and the like: not this checker's business
        if call is not None:
            compiled.append((operation, call))
    written_keys = {model.partition_key(operation) for operation, call in compiled if call[0] != READ}
    last_index = max([o.invoke_index for o in operations] + [o.return_index or 0 for o in operations] + [-1])
    baseline: LinearizabilityResult | None = None
    results: list[KeyDurability] = []
    for observer in sorted(final_states):
        snapshot = final_states[observer]
        keys = set(snapshot) | (written_keys if complete_snapshots else set())
        extra: list[Operation] = []
        for position, key in enumerate(sorted(keys, key=repr)):
            f, value = model.final_read(key, snapshot.get(key, model.initial_state()))
            extra.append(Operation(len(operations) + position, FINAL_READ_PROCESS, f, key, None, value, "ok",
                                   last_index + 1 + 2 * position, last_index + 2 + 2 * position))
        extended = check_operations(operations + extra, model, time_limit_s=time_limit_s, steps_max=steps_max,
                                    clock=clock, all_keys=True)
        extended_verdicts = {key.key: key for key in extended.keys}
        for final_read in extra:
            key = final_read.key
            final_value = final_read.output
            lost = tuple(LostWrite(observer, key, operation, final_value)
                         for operation in _lost_writes(key, freeze(final_value), compiled, model))
            searched = extended_verdicts.get(key)
            verdict: Verdict = "ok"
            reason = ""
            prefix = None
            if lost:
                verdict, reason = "illegal", f"{len(lost)} acknowledged write(s) lost"
            elif searched is not None and searched.verdict == "unknown":
                verdict, reason = "unknown", searched.reason
            elif searched is not None and searched.verdict == "illegal":
                if baseline is None:
                    baseline = check_operations(operations, model, time_limit_s=time_limit_s, steps_max=steps_max,
                                                clock=clock, all_keys=True)
                before = baseline.key_verdicts.get(key, "ok")
                if before == "ok":
                    verdict, reason, prefix = "illegal", "final value explained by no linearization", searched.prefix
                else:
                    # The history is already not linearizable (or undecided) on this key; rule 1
                    # found no lost write, and the search cannot separate the two failures.
                    verdict = "ok" if before == "illegal" else "unknown"
                    reason = f"sub-history without the final read is {before}; judged by rule 1 only"
            results.append(KeyDurability(observer, key, final_value, verdict, lost, reason, prefix))
    overall: Verdict = "ok"
    if any(key.verdict == "illegal" for key in results):
        overall = "illegal"
    elif any(key.verdict == "unknown" for key in results):
        overall = "unknown"
    return DurabilityResult(overall, tuple(results))


def _lost_writes(key: Hashable, final_value: Any, compiled: list[tuple[Operation, tuple[Any, ...]]],
                 model: Model) -> list[Operation]:
    """Rule 1 of the module docstring, for one key."""
    on_key = [(operation, call) for operation, call in compiled if model.partition_key(operation) == key]
    changers = [(operation, call) for operation, call in on_key
                if call[0] != READ and not (call[0] == CAS and call[3] == CAS_MISMATCH)]
    lost = []
    for operation, call in changers:
        if operation.status != "ok":
            continue  # only acknowledged writes can be lost
        kind = call[0]
        if kind == APPEND:
            reflected = isinstance(final_value, (str, bytes)) and type(final_value) is type(call[1]) \
                and call[1] in final_value
        elif kind == CAS:
            reflected = final_value == call[2]
        elif kind in (WRITE, DELETE):
            reflected = final_value == call[1]
        else:
            raise AssertionError(f"unexpected compiled operation {call!r}")
        if reflected:
            continue
        overwritten = False
        for other, other_call in changers:
            if other is operation or (kind == APPEND and other_call[0] == APPEND):
                continue
            # `other` may take effect after `operation` unless it returned before it was invoked.
            if other.return_index is None or other.return_index > operation.invoke_index:
                overwritten = True
                break
        if not overwritten:
            lost.append(operation)
    return lost
