"""Pair a Jepsen-style history's events into operations with call and return times.

The checker's notion of time is the position of an event in the history (its
``index``), not ``time_ns``: the recorder appends events in the order they
happened, so positions give the real-time order exactly and never tie, while
two clocks' nanoseconds could.  An operation whose outcome is unknown
(``info``, or invoked and never completed) gets ``return_index = None``: it
may take effect at any point after its invocation, or never (Porcupine gives
such operations a return at the end of the history; Knossos does the same).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from chaos.history import History, HistoryError, Op

Status = Literal["ok", "fail", "info"]


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation: its invocation and its completion (if any)."""

    id: int  # position among the history's operations, in invocation order
    process: int
    f: str
    key: str | None
    input: Any  # the value sent on invoke
    output: Any  # the value returned on completion (None when unknown)
    status: Status
    invoke_index: int
    return_index: int | None  # None: unknown outcome, may apply until the end of time
    invoke_time_ns: int = 0
    return_time_ns: int | None = None

    def describe(self) -> str:
        """One line a report can print, e.g. ``p3 cas(1, 2) -> ok [#12..#15]``: the
        event positions of the invocation and of the completion (``never`` for an
        unknown outcome)."""
        if self.f in ("read", "get"):
            call = f"{self.f}()" if self.key is None else f"{self.f}({self.key!r})"
            result = "?" if self.status != "ok" else _show(self.output)
        else:
            argument = _show(self.input)
            if self.f == "cas" and isinstance(self.input, (list, tuple)) and len(self.input) == 2:
                argument = f"{_show(self.input[0])}, {_show(self.input[1])}"
            prefix = "" if self.key is None else f"{self.key!r}, "
            call = f"{self.f}({prefix}{argument})"
            result = self.status if not (self.status == "ok" and self.output is False) else "mismatch"
        end = "never" if self.return_index is None else f"#{self.return_index}"
        return f"p{self.process} {call} -> {result} [#{self.invoke_index}..{end}]"


def _show(value: Any) -> str:
    return "nil" if value is None else repr(value)


def pair_operations(history: History | list[Op]) -> list[Operation]:
    """Operations of ``history`` in invocation order.

    ``fail`` operations are kept (status ``fail``); the models decide to drop
    them.  Invocations still open at the end are unknown (``info``).
    Event positions in the list are the times (for a History they equal
    ``Op.index``).  A completion must follow an invoke of the same process -
    History already guarantees it; a raw list is checked here.
    """
    ops = history.ops if isinstance(history, History) else list(history)
    open_calls: dict[int, int] = {}  # process -> position in `slots`
    slots: list[list[Any]] = []  # [invoke position, invoke, completion position, completion]
    for position, op in enumerate(ops):
        if op.type == "invoke":
            if op.process in open_calls:
                raise HistoryError(f"process {op.process} invoked twice without completing (event #{position})")
            open_calls[op.process] = len(slots)
            slots.append([position, op, None, None])
        else:
            slot = open_calls.pop(op.process, None)
            if slot is None:
                raise HistoryError(f"completion with no open invocation at event #{position}: {op!r}")
            slots[slot][2:] = [position, op]
    operations = []
    for number, (invoke_index, invoke, complete_index, complete) in enumerate(slots):
        if complete is None or complete.type == "info":
            status: Status = "info"
            output = None
            return_index = None
            return_time = None
        else:
            status = complete.type
            output = complete.value
            return_index = complete_index
            return_time = complete.time_ns
        operations.append(Operation(number, invoke.process, invoke.f, invoke.key, invoke.value, output,
                                    status, invoke_index, return_index, invoke.time_ns, return_time))
    return operations
