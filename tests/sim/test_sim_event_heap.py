"""The simulator's event heap (chaos/sim/simulation.py _sift_push/_sift_pop,
used by the compiled simulator; the pure twin uses heapq): for entries whose
(time_us, sequence) keys are unique, any sequence of pushes and pops returns
exactly what heapq returns.  Both implementations are checked: the compiled
module's functions when this process runs compiled, and the source's own
(executed from the source text without the compiled-twin block, so no
swap-in replaces them)."""
from __future__ import annotations

import heapq
import importlib
import sys
import types
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

import chaos.sim._select_c as sim_select_c
from consensus import _build_core_c as build_c

SOURCE = Path(__file__).resolve().parents[2] / "chaos" / "sim" / "simulation.py"


def _pure_functions() -> tuple[Callable[..., Any], Callable[..., Any]]:
    text = build_c._TWIN_BLOCK.sub("", SOURCE.read_text(encoding="utf-8"))
    module = types.ModuleType("pure_simulation_for_tests")  # not ending in _c: _COMPILED is False
    sys.modules[module.__name__] = module  # dataclasses look their module up
    try:
        exec(compile(text, str(SOURCE), "exec"), module.__dict__)  # noqa: S102 - our own source
    finally:
        del sys.modules[module.__name__]
    assert module._COMPILED is False
    return module._sift_push, module._sift_pop


IMPLEMENTATIONS = {"pure": _pure_functions()}
if sim_select_c.implementation() == "cython":  # never mix the compiled classes into a pure process
    compiled = importlib.import_module("chaos.sim._simulation_c")
    IMPLEMENTATIONS["compiled"] = (compiled._sift_push, compiled._sift_pop)

# An operation: push an entry at this time (the sequence number is the
# operation's position, unique as in Simulation._schedule), or pop (None).
operations = st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=50)), max_size=200)


@pytest.mark.parametrize("name", sorted(IMPLEMENTATIONS))
@given(steps=operations)
def test_the_event_heap_pops_what_heapq_pops(name: str, steps: list) -> None:
    push, pop = IMPLEMENTATIONS[name]
    ours: list = []
    reference: list = []
    for sequence, time_us in enumerate(steps):
        if time_us is None:
            if reference:
                assert pop(ours) == heapq.heappop(reference), f"{name}: steps {steps}"
            else:
                with pytest.raises(IndexError):
                    pop(ours)
        else:
            entry = (time_us, sequence, "fn", "a", sequence)
            push(ours, entry)
            heapq.heappush(reference, entry)
    while reference:
        assert pop(ours) == heapq.heappop(reference), f"{name}: steps {steps}"
    assert ours == []
