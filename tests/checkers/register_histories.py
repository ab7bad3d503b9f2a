"""Hypothesis strategy: histories recorded from a real sequential store with random concurrency.

Clients invoke operations; each operation takes effect at one instant (its
linearization point) chosen by the strategy between its invocation and its
completion; a client may time out (``info``) before or after its operation took
effect, and an operation that timed out may still take effect later - or never.
Every history built this way is linearizable by construction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from chaos.history import History

KEYS = ("x", "y")


@dataclass
class Recorded:
    history: History
    final: dict[Any, Any]  # key -> the store's value at the end
    written: set[Any] = field(default_factory=set)


@dataclass
class _Pending:
    process: int
    f: str
    key: Any
    value: Any
    applied: bool = False
    result: Any = None  # (type, value) of the completion once applied


def _apply(store: dict[Any, Any], pending: _Pending, cas_fail_as_ok_false: bool) -> None:
    current = store.get(pending.key)
    if pending.f in ("read", "get"):
        pending.result = ("ok", current)
    elif pending.f in ("write", "put"):
        store[pending.key] = pending.value
        pending.result = ("ok", pending.value)
    elif pending.f == "append":
        store[pending.key] = pending.value if current is None else current + pending.value
        pending.result = ("ok", None)
    elif pending.f == "delete":
        store.pop(pending.key, None)
        pending.result = ("ok", None)
    else:  # cas
        expected, new = pending.value
        if current == expected:
            store[pending.key] = new
            pending.result = ("ok", list(pending.value))
        else:
            pending.result = ("ok", False) if cas_fail_as_ok_false else ("fail", list(pending.value))
    pending.applied = True


# Weighted so histories grow and overlap; timeouts are rarer, as in real runs.
_ACTIONS = ("invoke",) * 4 + ("apply",) * 3 + ("complete",) * 3 + ("timeout", "zombie")
# For exercising unknown outcomes: a timeout as likely as a completion.
_ACTIONS_MANY_TIMEOUTS = ("invoke",) * 4 + ("apply",) * 2 + ("complete",) * 2 + ("timeout",) * 2 + ("zombie",) * 2


@st.composite
def recorded_histories(draw: st.DrawFn, kv: bool = False, actions_max: int = 80,
                       many_timeouts: bool = False) -> Recorded:
    """A linearizable history of a register (``kv=False``) or a two-key store."""
    actions = _ACTIONS_MANY_TIMEOUTS if many_timeouts else _ACTIONS
    processes = draw(st.integers(1, 5))
    cas_fail_as_ok_false = draw(st.booleans())
    functions = ("get", "put", "cas", "append", "delete") if kv else ("read", "write", "cas")
    values = st.sampled_from(["a", "b", "c"]) if kv else st.integers(0, 3)
    history = History()
    store: dict[Any, Any] = {}
    written: set[Any] = set()
    running: dict[int, _Pending] = {}  # process -> its operation in flight
    zombies: list[_Pending] = []  # timed out, not yet applied: may apply later or never
    next_process = processes
    idle = list(range(processes))
    clock = 0
    for _ in range(draw(st.integers(0, actions_max))):
        clock += 1
        action = draw(st.sampled_from(actions))
        if action == "invoke" and idle:
            process = idle.pop(draw(st.integers(0, len(idle) - 1)))
            f = draw(st.sampled_from(functions))
            key = draw(st.sampled_from(KEYS)) if kv else None
            value: Any = None
            if f in ("write", "put", "append"):
                value = draw(values)
                written.add(value)
            elif f == "cas":
                value = [draw(st.none() | values) if kv else draw(values), draw(values)]
                written.add(value[1])
            running[process] = _Pending(process, f, key, value)
            history.invoke(process, f, key, value, clock)
        elif action == "apply" and running:
            pending = running[draw(st.sampled_from(sorted(running)))]
            if not pending.applied:
                _apply(store, pending, cas_fail_as_ok_false)
        elif action == "complete" and running:
            process = draw(st.sampled_from(sorted(running)))
            pending = running[process]
            if not pending.applied:
                _apply(store, pending, cas_fail_as_ok_false)
            kind, value = pending.result
            history.complete(process, kind, value, clock)
            del running[process]
            idle.append(process)
        elif action == "timeout" and running:
            process = draw(st.sampled_from(sorted(running)))
            pending = running.pop(process)
            history.complete(process, "info", None, clock, error="timeout")
            if not pending.applied:
                zombies.append(pending)
            idle.append(next_process)  # Jepsen: a process with an unknown outcome is retired
            next_process += 1
        elif action == "zombie" and zombies:
            _apply(store, zombies.pop(draw(st.integers(0, len(zombies) - 1))), cas_fail_as_ok_false)
    final = {key: store.get(key) for key in (KEYS if kv else (None,))}
    return Recorded(history, final, written)
