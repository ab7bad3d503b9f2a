"""pytest plugin for chaos suites (registered as the ``shoal_chaos`` pytest11 entry point).

Options:
  --chaos-seed N          seed for the ``chaos_seed`` / ``chaos_cluster`` fixtures
                          (default: a fixed 0, so runs are reproducible)
  --chaos-replay FILE     the ``chaos_replay`` fixture loads this saved failure;
                          tests marked ``chaos_replay`` re-run it
  --chaos-report-dir DIR  where failing chaos tests write their report
                          (history.jsonl, results.json, failure.json)

Fixtures:
  chaos_seed              the seed (int)
  chaos_cluster           a factory: ``chaos_cluster(managers=3, workers=1, faults=[...])``
                          returns the RunResult of that experiment under the seed
  chaos_replay            the SavedFailure from --chaos-replay (skips without it)

When a test that ran a chaos experiment fails, the plugin writes the report of
its last run to the report directory and adds the replay command to the
failure's output.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("shoal-chaos", "Shoal chaos experiments")
    group.addoption("--chaos-seed", type=int, default=None, help="seed for chaos fixtures (default 0)")
    group.addoption("--chaos-replay", default=None, metavar="FILE", help="a saved failure.json to replay")
    group.addoption("--chaos-report-dir", default=None, metavar="DIR",
                    help="where failing chaos tests write their report (default: pytest's tmp dir)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos_replay: re-runs the failure given by --chaos-replay")


@pytest.fixture
def chaos_seed(request: pytest.FixtureRequest) -> int:
    # getoption with a default: the fixtures also work when the plugin was
    # registered after option parsing (tests/chaos/conftest.py in a checkout).
    seed = request.config.getoption("--chaos-seed", None)
    return 0 if seed is None else int(seed)


@pytest.fixture
def chaos_cluster(chaos_seed: int) -> Iterator[Callable[..., Any]]:
    from chaos.testing import make_experiment, run_experiment

    def run(**options: Any) -> Any:
        options.setdefault("seed", chaos_seed)
        return run_experiment(make_experiment(**options))

    yield run


@pytest.fixture
def chaos_replay(request: pytest.FixtureRequest) -> Any:
    from chaos.replay import load_failure

    path = request.config.getoption("--chaos-replay", None)
    if not path:
        pytest.skip("no --chaos-replay FILE given")
    return load_failure(path)


def _report_dir(config: pytest.Config, nodeid: str) -> Path:
    base = config.getoption("--chaos-report-dir", None) or os.environ.get("SHOAL_CHAOS_REPORT_DIR")
    if base is None:
        base = str(config._tmp_path_factory.getbasetemp() / "chaos-reports")  # type: ignore[attr-defined]
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in nodeid)[-120:]
    return Path(base) / safe


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    from chaos import testing

    if call.when == "setup":
        # makereport(setup) runs before the test body: forget earlier tests' runs.
        testing.last_results.clear()
    outcome = yield
    report = outcome.get_result()
    if call.when != "call" or not report.failed or not testing.last_results:
        return
    result = testing.last_results[-1]
    from chaos.runner import encode_history, write_outputs

    directory = _report_dir(item.config, item.nodeid)

    encoded = encode_history(result.history)
    try:
        write_outputs(result, directory, encoded, write_png=False)
        from chaos.report import save_failure

        failure = result.failure_file or save_failure(result, directory / "failure.json")
        report.sections.append(("shoal chaos", f"report written to {directory}\n"
                                               f"replay with: shoal chaos replay {failure}\n{result.explain()}"))
    except OSError as error:  # the report is a courtesy; never mask the real failure
        report.sections.append(("shoal chaos", f"could not write the chaos report: {error}"))
