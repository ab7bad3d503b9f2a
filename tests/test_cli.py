"""The `shoal` command's dispatch: help, unknown commands, exit codes."""
from __future__ import annotations

import pytest

from shoal.cli import SUBCOMMANDS, main


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


def test_no_arguments_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: shoal" in capsys.readouterr().out


def test_unknown_command_is_exit_2_with_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "'frobnicate' is not a shoal command" in capsys.readouterr().err


def test_bench_lists_areas(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench"]) == 0
    assert "usage: python -m benchmarks" in capsys.readouterr().out


def test_bench_unknown_area_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "no-such-area"]) == 2
    assert "unknown area" in capsys.readouterr().err
