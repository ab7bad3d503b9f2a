"""The pytest plugin and the public testing API, as a user's suite sees them."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.testing import ChaosFailure, assert_passes, make_experiment, run_experiment

REPO = Path(__file__).resolve().parents[2]

USER_SUITE = '''
from chaos.testing import assert_passes, make_experiment, run_experiment


def test_leader_crash_is_survived(chaos_cluster, chaos_seed):
    assert chaos_seed == 7
    assert_passes(chaos_cluster(managers=3, workers=0, duration_ms=8000, settle_ms=4000,
                                faults=["3s:kill-leader", "6s:restart:killed"]))


def test_user_expectation_fails(chaos_cluster):
    # Any failing test that ran a chaos experiment gets its report written.
    result = chaos_cluster(managers=3, workers=0, duration_ms=4000, settle_ms=2000, faults=["2s:kill-leader"])
    assert result.failover_times() == [], "a user expectation that does not hold"
'''


def test_user_suite_with_seed_option_and_report_on_failure(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(USER_SUITE)
    reports = tmp_path / "reports"
    environment = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:shoal_chaos", "-p", "chaos.pytest_plugin",
         "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path / "test_user.py"),
         "--chaos-seed", "7", "--chaos-report-dir", str(reports)],
        capture_output=True, text=True, cwd=tmp_path, env=environment, timeout=300)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 1, output
    assert "1 failed, 1 passed" in output
    assert "replay with: shoal chaos replay" in output
    failures = list(reports.rglob("failure.json"))
    assert len(failures) == 1 and (failures[0].parent / "history.jsonl").exists()


def test_assert_passes_raises_with_the_replay_file(tmp_path: Path) -> None:
    passing = run_experiment(make_experiment(managers=1, workers=0, duration_ms=3000, settle_ms=2000))
    assert_passes(passing)
    # A convergence bound no swarm can meet: the checker must fail.
    from chaos.experiment import ServiceOp

    failing = run_experiment(make_experiment(managers=1, workers=1, duration_ms=2000, settle_ms=4000,
                                             services=[ServiceOp(1900, "create", "web", replicas=2)],
                                             convergence_bound_ms=1))
    assert failing.failed_checkers == ["convergence"], failing.explain()
    with pytest.raises(ChaosFailure, match="replay with: shoal chaos replay"):
        assert_passes(failing, report_dir=tmp_path)
    assert list(tmp_path.rglob("failure.json"))


def test_fixtures_without_options(chaos_seed: int, chaos_cluster) -> None:
    assert chaos_seed == 0
    result = chaos_cluster(managers=1, workers=1, duration_ms=2000, settle_ms=2000)
    assert result.passed, result.explain()
