"""`shoal chaos sweep --random-faults [mixed|churn]`: which generator draws each seed's schedule."""
from __future__ import annotations

import pytest

from chaos.cli import main
from chaos.experiment import default_experiment
from chaos.sweep import seeded_experiment


def _faults(random_faults: bool | str, seed: int) -> list[str]:
    experiment = seeded_experiment(default_experiment(), seed, random_faults)
    return [event.fault for event in experiment.schedule.events]


def test_churn_generator_arms_leader_traps_and_mixed_is_the_default() -> None:
    churn = [fault for seed in range(4) for fault in _faults("churn", seed)]
    assert "kill-next-leader" in churn
    assert _faults(True, 3) == _faults("mixed", 3)
    assert _faults("churn", 3) != _faults("mixed", 3)


def test_same_seed_same_schedule() -> None:
    assert _faults("churn", 11) == _faults("churn", 11)


def test_unknown_generator_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "--seeds", "1", "--random-faults", "bogus"]) == 2
    assert "invalid choice" in capsys.readouterr().err
