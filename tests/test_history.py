"""Histories: recording rules and the JSONL round trip."""
from __future__ import annotations

from pathlib import Path

import pytest

from chaos.history import History, HistoryError, Op


def test_round_trip_through_jsonl(tmp_path: Path) -> None:
    history = History()
    history.invoke(0, "put", "x", 1, 10, node="m1")
    history.invoke(1, "get", "x", None, 11)
    history.complete(0, "ok", 1, 20)
    history.complete(1, "info", None, 30, error="timeout")
    path = tmp_path / "history.jsonl"
    history.write_jsonl(path)
    again = History.read_jsonl(path)
    assert again.ops == history.ops
    assert again.ops[3].error == "timeout" and again.ops[2].node == "m1"


def test_completion_without_invocation_is_refused() -> None:
    history = History()
    with pytest.raises(HistoryError, match="no open invocation"):
        history.complete(3, "ok", None, 1)


def test_double_invoke_is_refused() -> None:
    history = History()
    history.invoke(0, "get", "x", None, 1)
    with pytest.raises(HistoryError, match="invoked twice"):
        history.invoke(0, "get", "x", None, 2)


def test_bad_lines_are_typed_errors() -> None:
    with pytest.raises(HistoryError):
        Op.from_json("{not json")
    with pytest.raises(HistoryError):
        Op.from_json('{"index": 0, "process": 0, "type": "maybe", "f": "get"}')
