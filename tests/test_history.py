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


def test_recorded_ops_are_ordinary_frozen_ops() -> None:
    history = History()
    invoked = history.invoke(4, "cas", "k", ["a", "b"], 7, node="m2")
    completed = history.complete(4, "fail", ["a", "b"], 9, error="cas mismatch")
    assert type(invoked) is Op and type(completed) is Op
    assert invoked == Op(0, 4, "invoke", "cas", "k", ["a", "b"], 7, "m2")
    assert completed == Op(1, 4, "fail", "cas", "k", ["a", "b"], 9, "m2", "cas mismatch")
    put = History().invoke(1, "put", "k", "v", 3)
    built = Op(0, 1, "invoke", "put", "k", "v", 3)
    assert hash(put) == hash(built) and put.to_json() == built.to_json()
    with pytest.raises(AttributeError):
        invoked.value = "changed"  # type: ignore[misc]


@pytest.mark.parametrize("bad_type, time_ns", [("invoke", 5), ("maybe", 5), ("ok", -1)])
def test_bad_completions_are_refused_and_leave_the_invocation_open(bad_type: str, time_ns: int) -> None:
    history = History()
    history.invoke(0, "get", "x", None, 1)
    with pytest.raises(HistoryError):
        history.complete(0, bad_type, None, time_ns)  # type: ignore[arg-type]
    assert history.open_processes() == [0] and len(history) == 1
    history.complete(0, "ok", None, 2)
    assert history.open_processes() == [] and len(history) == 2


def test_negative_invoke_time_is_refused() -> None:
    history = History()
    with pytest.raises(HistoryError, match="non-negative"):
        history.invoke(0, "get", "x", None, -1)
    assert len(history) == 0 and history.open_processes() == []
