"""Jepsen-style operation histories: invoke, then ok / fail / info.

Every client operation is recorded twice: an ``invoke`` when the client sends
it, then one completion for the same process:

- ``ok``: it happened, with the value it returned;
- ``fail``: it certainly did not happen (e.g. a cas whose comparison failed,
  or a request refused before it reached the log);
- ``info``: unknown outcome (a timeout) - it may take effect at any time after
  its invocation, or never.  A process that got ``info`` is never reused: its
  next operation is recorded under a fresh process number, as Jepsen does.

Times are integers in nanoseconds of whatever clock the driver has (virtual in
the simulator, monotonic for real processes).  A history is written one JSON
object a line (``history.jsonl``).
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

OpType = Literal["invoke", "ok", "fail", "info"]
OP_TYPES: frozenset[str] = frozenset({"invoke", "ok", "fail", "info"})
_COMPLETION_TYPES: frozenset[str] = OP_TYPES - {"invoke"}


class HistoryError(ValueError):
    """A history that is malformed (unknown type, a completion with no invoke, ...)."""


@dataclass(frozen=True, slots=True)
class Op:
    """One event of a history.

    ``f`` names the operation: ``read``/``write``/``cas`` for a register,
    ``get``/``put``/``delete``/``cas``/``append`` for a key-value store, or a
    service operation (``service-create``, ``service-scale`` ...).  ``value`` is
    what the client sent on invoke and what it got back on completion; for a cas
    it is ``[expected, new]``.  ``error`` explains a fail or info.
    """

    index: int
    process: int
    type: OpType
    f: str
    key: str | None = None
    value: Any = None
    time_ns: int = 0
    node: str | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        if self.type not in OP_TYPES:
            raise HistoryError(f"operation type must be one of {sorted(OP_TYPES)}, got {self.type!r}")
        if self.index < 0 or self.time_ns < 0:
            raise HistoryError(f"index and time must be non-negative: {self!r}")

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, sort_keys=True)

    @staticmethod
    def from_json(line: str) -> Op:
        try:
            fields = json.loads(line)
            return Op(**fields)
        except (TypeError, json.JSONDecodeError) as error:
            raise HistoryError(f"not a history line: {line[:120]!r} ({error})") from error


class _OpDraft:
    """An Op under construction: the same slots, but plain ones, so that the
    recorder fills them with ordinary attribute stores and then makes the object
    an Op by assigning ``__class__`` (allowed because both classes have exactly
    the same slot layout).  A frozen dataclass sets each field through
    ``object.__setattr__`` by name; this is about a quarter of that cost, and the
    recorder builds two Ops per client operation."""

    __slots__ = Op.__slots__


def _recorded_op(index: int, process: int, type: str, f: str, key: str | None, value: Any, time_ns: int,
                 node: str | None, error: str | None) -> Op:
    """``Op(...)`` for the recorder, whose callers make ``Op.__post_init__``'s
    checks themselves (``index`` is the history's length, never negative)."""
    op: Any = _OpDraft()
    op.index = index
    op.process = process
    op.type = type
    op.f = f
    op.key = key
    op.value = value
    op.time_ns = time_ns
    op.node = node
    op.error = error
    op.__class__ = Op
    return op


class History:
    """An append-only list of operations with a recorder's bookkeeping.

    ``invoke`` returns the index of the invocation; ``complete`` records the
    completion for the same process and refuses a completion with no open
    invocation, so a malformed history cannot be built through this class.
    """

    def __init__(self, ops: Iterable[Op] = ()) -> None:
        self.ops: list[Op] = []
        self._open: dict[int, Op] = {}
        for op in ops:
            self._add(op)

    def _add(self, op: Op) -> Op:
        if op.index != len(self.ops):
            raise HistoryError(f"operation index {op.index} out of order (expected {len(self.ops)})")
        if op.type == "invoke":
            if op.process in self._open:
                raise HistoryError(f"process {op.process} invoked twice without completing: {op!r}")
            self._open[op.process] = op
        else:
            invoked = self._open.pop(op.process, None)
            if invoked is None:
                raise HistoryError(f"completion with no open invocation: {op!r}")
            if invoked.f != op.f:
                raise HistoryError(f"completion {op.f!r} does not match invocation {invoked.f!r}")
        self.ops.append(op)
        return op

    # invoke and complete keep _add's rules themselves (the index is the length
    # by construction): they run twice per client operation.
    def invoke(self, process: int, f: str, key: str | None, value: Any, time_ns: int,
               node: str | None = None) -> Op:
        ops = self.ops
        op = _recorded_op(len(ops), process, "invoke", f, key, value, time_ns, node, None)
        if time_ns < 0:
            raise HistoryError(f"index and time must be non-negative: {op!r}")
        if process in self._open:
            raise HistoryError(f"process {process} invoked twice without completing: {op!r}")
        self._open[process] = op
        ops.append(op)
        return op

    def complete(self, process: int, type: OpType, value: Any, time_ns: int,
                 error: str | None = None) -> Op:
        invoked = self._open.get(process)
        if invoked is None:
            raise HistoryError(f"process {process} has no open invocation to complete")
        if type not in _COMPLETION_TYPES or time_ns < 0:  # refused: the invocation stays open
            if type == "invoke":
                raise HistoryError("a completion cannot have type 'invoke'")
            if type not in OP_TYPES:
                raise HistoryError(f"operation type must be one of {sorted(OP_TYPES)}, got {type!r}")
            raise HistoryError(f"index and time must be non-negative: time_ns={time_ns}")
        del self._open[process]
        ops = self.ops
        op = _recorded_op(len(ops), process, type, invoked.f, invoked.key, value, time_ns, invoked.node,
                          error)
        ops.append(op)
        return op

    def open_processes(self) -> list[int]:
        return sorted(self._open)

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def __len__(self) -> int:
        return len(self.ops)

    def write_jsonl(self, path: str | Path) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            for op in self.ops:
                handle.write(op.to_json())
                handle.write("\n")

    @staticmethod
    def read_jsonl(path: str | Path) -> History:
        with open(path, encoding="utf-8") as handle:
            return History(Op.from_json(line) for line in handle if line.strip())
