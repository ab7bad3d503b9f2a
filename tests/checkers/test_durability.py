"""Durability checker: no acknowledged write lost, judged against final observations."""
from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given, note
from hypothesis import strategies as st
from register_histories import Recorded, recorded_histories

from chaos.checkers.durability import check_durability
from chaos.checkers.linearizability import KVModel, RegisterModel
from chaos.history import History


def build(*events: tuple[Any, ...]) -> History:
    """Events: (process, "invoke", f, value[, key]) or (process, "ok"|"fail"|"info", value)."""
    history = History()
    for time_ns, event in enumerate(events):
        if event[1] == "invoke":
            history.invoke(event[0], event[2], event[4] if len(event) > 4 else None, event[3], time_ns)
        else:
            history.complete(event[0], event[1], event[2], time_ns)
    return history


def two_puts() -> History:
    return build((0, "invoke", "put", "1", "k"), (0, "ok", None), (0, "invoke", "put", "2", "k"), (0, "ok", None))


def test_last_acknowledged_write_visible_is_ok() -> None:
    result = check_durability(two_puts(), {"final-read": {"k": "2"}})
    assert result.verdict == "ok" and result.lost_writes == ()


def test_final_value_of_an_overwritten_write_loses_the_later_one() -> None:
    result = check_durability(two_puts(), {"final-read": {"k": "1"}})
    assert result.verdict == "illegal"
    [lost] = result.lost_writes
    assert lost.operation.input == "2" and (lost.invoke_index, lost.return_index) == (2, 3)
    assert "lost" in "\n".join(result.report_lines())
    json.dumps(result.to_dict())


def test_value_never_written_or_absent_loses_the_last_write() -> None:
    for final in ("zzz", None):
        result = check_durability(two_puts(), {"m1": {"k": final}})
        assert [lost.operation.input for lost in result.lost_writes] == ["2"], final
    # A complete snapshot without the key observed it absent.
    assert check_durability(two_puts(), {"m1": {}}).verdict == "illegal"
    assert check_durability(two_puts(), {"m1": {}}, complete_snapshots=False).verdict == "ok"


def test_concurrent_or_unknown_overwrite_explains_the_final_value() -> None:
    concurrent = build((0, "invoke", "put", "1", "k"), (1, "invoke", "put", "2", "k"), (0, "ok", None),
                       (1, "ok", None))
    for final in ("1", "2"):
        assert check_durability(concurrent, {"m": {"k": final}}).verdict == "ok", final
    unknown = build((0, "invoke", "put", "1", "k"), (0, "ok", None), (1, "invoke", "put", "2", "k"),
                    (1, "info", None))
    for final in ("1", "2"):
        assert check_durability(unknown, {"m": {"k": final}}).verdict == "ok", final
    # A failed write did not happen: it explains nothing.
    failed = build((0, "invoke", "put", "1", "k"), (0, "ok", None), (1, "invoke", "put", "2", "k"),
                   (1, "fail", None))
    assert check_durability(failed, {"m": {"k": "2"}}).verdict == "illegal"


def test_delete_cas_and_append() -> None:
    h = build((0, "invoke", "put", "a", "k"), (0, "ok", None), (0, "invoke", "delete", None, "k"), (0, "ok", None))
    assert check_durability(h, {"m": {}}).verdict == "ok"
    assert [lost.operation.f for lost in check_durability(h, {"m": {"k": "a"}}).lost_writes] == ["delete"]
    cas = build((0, "invoke", "put", "a", "k"), (0, "ok", None), (0, "invoke", "cas", ["a", "b"], "k"),
                (0, "ok", ["a", "b"]))
    assert check_durability(cas, {"m": {"k": "b"}}).verdict == "ok"
    assert [lost.operation.f for lost in check_durability(cas, {"m": {"k": "a"}}).lost_writes] == ["cas"]
    appends = build((0, "invoke", "append", "x", "k"), (1, "invoke", "append", "y", "k"), (0, "ok", None),
                    (1, "ok", None))
    assert check_durability(appends, {"m": {"k": "yx"}}).verdict == "ok"
    lost = check_durability(appends, {"m": {"k": "x"}}).lost_writes
    assert [write.operation.input for write in lost] == ["y"]


def test_each_observer_is_judged_on_its_own() -> None:
    result = check_durability(two_puts(), {"manager-1": {"k": "2"}, "manager-2": {"k": "1"}})
    assert result.verdict == "illegal"
    assert {(key.observer, key.verdict) for key in result.keys} == {("manager-1", "ok"), ("manager-2", "illegal")}
    assert {lost.observer for lost in result.lost_writes} == {"manager-2"}


def test_final_value_explained_by_no_order_is_illegal_without_a_single_lost_write() -> None:
    # put 1, put 2, a read sees 2, then an unknown put 3: the final value 1 cannot come back.
    h = build((0, "invoke", "put", "1", "k"), (0, "ok", None), (0, "invoke", "put", "2", "k"), (0, "ok", None),
              (1, "invoke", "get", None, "k"), (1, "ok", "2"), (2, "invoke", "put", "3", "k"), (2, "info", None))
    result = check_durability(h, {"m": {"k": "1"}})
    assert result.lost_writes == ()
    assert result.verdict == "illegal"
    assert "no linearization" in result.keys[0].reason and result.keys[0].prefix is not None
    assert check_durability(h, {"m": {"k": "3"}}).verdict == "ok"


def test_non_linearizable_history_is_judged_by_lost_writes_only() -> None:
    stale = build((0, "invoke", "put", "1", "k"), (0, "ok", None), (1, "invoke", "get", None, "k"), (1, "ok", "9"))
    result = check_durability(stale, {"m": {"k": "1"}})
    assert result.verdict == "ok" and "judged by rule 1" in result.keys[0].reason


def test_register_histories_use_the_key_none() -> None:
    h = build((0, "invoke", "write", 1), (0, "ok", 1), (1, "invoke", "write", 2), (1, "ok", 2))
    assert check_durability(h, {"final-read": {None: 2}}, RegisterModel()).verdict == "ok"
    assert check_durability(h, {"final-read": {None: 1}}, RegisterModel()).verdict == "illegal"


def test_unknown_writes_nobody_read_cannot_explain_an_unwritten_value() -> None:
    events: list[tuple[Any, ...]] = [(p, "invoke", "put", f"v{p}", "k") for p in range(40)]
    events += [(99, "invoke", "get", None, "k"), (99, "ok", None)]
    result = check_durability(build(*events), {"m": {"k": "never"}}, KVModel(), time_limit_s=None)
    assert result.verdict == "illegal" and result.lost_writes == ()


def test_search_time_limit_gives_unknown() -> None:
    # Many overlapping writes acknowledged together: each may have been overwritten by another,
    # so rule 1 names none, and proving that no order ends with a value nobody wrote means
    # exploring every subset of them.
    events: list[tuple[Any, ...]] = [(p, "invoke", "put", f"v{p}", "k") for p in range(40)]
    events += [(p, "ok", None) for p in range(40)]
    ticks = itertools.count()
    result = check_durability(build(*events), {"m": {"k": "never"}}, KVModel(), time_limit_s=1.0,
                              clock=lambda: next(ticks) * 0.01)
    assert result.verdict == "unknown" and result.keys[0].reason == "time limit reached"


@given(st.booleans(), recorded_histories(kv=True))
def test_true_final_state_is_durable_and_an_unwritten_one_is_not(corrupt: bool, recorded: Recorded) -> None:
    note("\n".join(op.to_json() for op in recorded.history))
    final = dict(recorded.final)
    if corrupt:
        final["x"] = "never-written"
    result = check_durability(recorded.history, {"observer": final}, KVModel(), time_limit_s=None)
    note("\n".join(result.report_lines()))
    assert result.verdict == ("illegal" if corrupt else "ok")
