"""Every Simulation built in these tests carries a RaftSafetyChecker that
raises on the first violation: the figure-3 properties are checked after
every simulated event in every simulator test, not only where a test asks.
Tests of the planted-bug switches opt out with ``fn.planted_bug = True``."""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from chaos.checkers.raft_safety import RaftSafetyChecker
from chaos.sim import simulation as simulation_module


@pytest.fixture(autouse=True)
def safety_checked_simulations(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[list[RaftSafetyChecker]]:
    checkers: list[RaftSafetyChecker] = []
    if getattr(request.function, "planted_bug", False):
        # A test that switches a planted bug on checks the violations itself.
        yield checkers
        return
    original_init = simulation_module.Simulation.__init__

    def init_with_checker(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        checker = RaftSafetyChecker(raise_on_violation=True)
        self.add_observer(checker)
        checkers.append(checker)

    monkeypatch.setattr(simulation_module.Simulation, "__init__", init_with_checker)
    yield checkers
