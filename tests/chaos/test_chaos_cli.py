"""`shoal chaos` exit codes: 2 on bad input with a clear message (0/1 are in
test_chaos_runs.py, which needs the simulated cluster)."""
from __future__ import annotations

from pathlib import Path

import pytest

from chaos.cli import EXIT_BAD_INPUT, main


@pytest.mark.parametrize("argv, words", [
    (["run", "--seed", "-3"], "--seed"),
    (["run", "--managers", "0"], "managers"),
    (["run", "--workers", "-1"], "workers"),
    (["run", "--duration", "-5"], "--duration"),
    (["run", "--duration", "nan"], "--duration"),
    (["run", "--faults", "5s:explode"], "unknown fault"),
    (["run", "--faults", "soon:kill-leader"], "duration"),
    (["run", "--faults", "5s:kill:nobody"], "unknown node"),
    (["run", "--seed", "many"], "invalid int"),
    (["run", "no-such-file.yaml"], "cannot read"),
    (["frobnicate"], "invalid choice"),
    (["sweep", "--seeds", "0"], "--seeds"),
    (["replay", "no-such-failure.json"], "cannot read"),
])
def test_bad_input_exits_2(argv: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == EXIT_BAD_INPUT
    out = capsys.readouterr()
    assert words in (out.out + out.err).replace("\n", " ")


def test_bad_yaml_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("cluster: {managers: 3\nfaults: [")
    assert main(["run", str(path)]) == EXIT_BAD_INPUT
    assert "not valid YAML" in capsys.readouterr().err


def test_not_a_failure_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "failure.json"
    path.write_text('{"format": "something-else"}')
    assert main(["replay", str(path)]) == EXIT_BAD_INPUT
    assert "not a shoal chaos failure file" in capsys.readouterr().err


def test_faults_listing_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["faults"]) == 0
    assert "kill-leader" in capsys.readouterr().out
    assert main(["--help"]) == 0
