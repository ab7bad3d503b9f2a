"""Linearizability checker on small hand-written histories it must accept or reject."""
from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from chaos.checkers.linearizability import (KVModel, ModelError, RegisterModel, check_linearizability,
                                            check_operations)
from chaos.checkers.operations import pair_operations
from chaos.history import History, HistoryError, Op


def build(*events: tuple[Any, ...]) -> History:
    """Events: (process, "invoke", f, value[, key]) or (process, "ok"|"fail"|"info", value)."""
    history = History()
    for time_ns, event in enumerate(events):
        if event[1] == "invoke":
            key = event[4] if len(event) > 4 else None
            history.invoke(event[0], event[2], key, event[3], time_ns)
        else:
            history.complete(event[0], event[1], event[2], time_ns)
    return history


def register(history: History, **options: Any) -> str:
    return check_linearizability(history, RegisterModel(**options), time_limit_s=None).verdict


# ---- register: accepted --------------------------------------------------------

def test_empty_history_is_linearizable() -> None:
    result = check_linearizability(History(), RegisterModel())
    assert result.verdict == "ok" and result.keys == () and result.operations == 0


def test_sequential_write_then_read() -> None:
    h = build((0, "invoke", "write", 1), (0, "ok", 1), (1, "invoke", "read", None), (1, "ok", 1))
    assert register(h) == "ok"


def test_initial_read_sees_nil() -> None:
    assert register(build((0, "invoke", "read", None), (0, "ok", None))) == "ok"
    assert register(build((0, "invoke", "read", None), (0, "ok", None)), initial=0) == "illegal"


def test_concurrent_read_may_see_old_or_new_value() -> None:
    for seen in (None, 1):
        h = build((0, "invoke", "write", 1), (1, "invoke", "read", None), (1, "ok", seen), (0, "ok", 1))
        assert register(h) == "ok", seen


def test_concurrent_writes_either_order() -> None:
    for last in (1, 2):
        h = build((0, "invoke", "write", 1), (1, "invoke", "write", 2), (0, "ok", 1), (1, "ok", 2),
                  (2, "invoke", "read", None), (2, "ok", last))
        assert register(h) == "ok"


# ---- register: rejected --------------------------------------------------------

def test_stale_read_is_illegal() -> None:
    h = build((0, "invoke", "write", 1), (0, "ok", 1), (0, "invoke", "write", 2), (0, "ok", 2),
              (1, "invoke", "read", None), (1, "ok", 1))
    result = check_linearizability(h, RegisterModel())
    assert result.verdict == "illegal"
    prefix = result.keys[0].prefix
    assert prefix is not None
    assert [op.input for op in prefix.linearized] == [1, 2]
    assert prefix.blocked is not None and prefix.blocked.f == "read" and prefix.blocked.output == 1
    assert any("impossible" in why for _, why in prefix.pending)
    text = "\n".join(result.report_lines())
    assert "stuck" in text and "read() -> 1" in text


def test_lost_write_is_illegal() -> None:
    h = build((0, "invoke", "write", 1), (0, "ok", 1), (1, "invoke", "read", None), (1, "ok", None))
    assert register(h) == "illegal"


def test_read_of_a_value_never_written_is_illegal() -> None:
    h = build((0, "invoke", "write", 1), (1, "invoke", "read", None), (1, "ok", 7), (0, "ok", 1))
    assert register(h) == "illegal"


def test_read_cannot_see_a_write_invoked_after_it_returned() -> None:
    h = build((1, "invoke", "read", None), (1, "ok", 1), (0, "invoke", "write", 1), (0, "ok", 1))
    assert register(h) == "illegal"


def test_reads_cannot_flip_flop_between_concurrent_writes() -> None:
    # w1 and w2 overlap; a reader sees 1, then 2, then 1 again: no single order explains it.
    h = build((0, "invoke", "write", 1), (1, "invoke", "write", 2),
              (2, "invoke", "read", None), (2, "ok", 1), (2, "invoke", "read", None), (2, "ok", 2),
              (2, "invoke", "read", None), (2, "ok", 1), (0, "ok", 1), (1, "ok", 2))
    assert register(h) == "illegal"


# ---- cas ------------------------------------------------------------------------

def test_cas_applies_only_on_match() -> None:
    ok = build((0, "invoke", "write", 1), (0, "ok", 1), (0, "invoke", "cas", [1, 2]), (0, "ok", [1, 2]),
               (1, "invoke", "read", None), (1, "ok", 2))
    assert register(ok) == "ok"
    wrong = build((0, "invoke", "write", 1), (0, "ok", 1), (0, "invoke", "cas", [3, 2]), (0, "ok", [3, 2]))
    assert register(wrong) == "illegal"


def test_failed_cas_did_not_happen_by_default() -> None:
    # 'fail' = certainly did not happen: dropped, even though its comparison would have matched.
    h = build((0, "invoke", "write", 1), (0, "ok", 1), (0, "invoke", "cas", [1, 2]), (0, "fail", [1, 2]),
              (1, "invoke", "read", None), (1, "ok", 1))
    assert register(h) == "ok"
    # In Jepsen/Knossos cas-register histories a failed cas means "the comparison failed".
    assert register(h, cas_fail_is_mismatch=True) == "illegal"


def test_cas_ok_false_means_comparison_failed() -> None:
    mismatch = build((0, "invoke", "write", 1), (0, "ok", 1), (0, "invoke", "cas", [2, 3]), (0, "ok", False),
                     (1, "invoke", "read", None), (1, "ok", 1))
    assert register(mismatch) == "ok"
    impossible = build((0, "invoke", "write", 1), (0, "ok", 1), (0, "invoke", "cas", [1, 3]), (0, "ok", False))
    assert register(impossible) == "illegal"


def test_unknown_cas_may_or_may_not_apply() -> None:
    for seen in (1, 2):
        h = build((0, "invoke", "write", 1), (0, "ok", 1), (0, "invoke", "cas", [1, 2]), (0, "info", None),
                  (1, "invoke", "read", None), (1, "ok", seen))
        assert register(h) == "ok", seen


def test_malformed_cas_value_is_a_model_error() -> None:
    h = build((0, "invoke", "cas", 5), (0, "ok", 5))
    with pytest.raises(ModelError, match=r"\[expected, new\]"):
        check_linearizability(h, RegisterModel())


# ---- unknown outcomes -------------------------------------------------------------

def test_info_write_may_apply_or_not() -> None:
    for seen in (None, 1):
        h = build((0, "invoke", "write", 1), (0, "info", None), (1, "invoke", "read", None), (1, "ok", seen))
        assert register(h) == "ok", seen


def test_info_write_cannot_be_undone() -> None:
    h = build((0, "invoke", "write", 1), (0, "info", None), (1, "invoke", "read", None), (1, "ok", 1),
              (1, "invoke", "read", None), (1, "ok", None))
    assert register(h) == "illegal"


def test_info_write_may_apply_long_after_it_was_invoked() -> None:
    h = build((0, "invoke", "write", 1), (0, "info", None), (1, "invoke", "read", None), (1, "ok", None),
              (1, "invoke", "read", None), (1, "ok", None), (1, "invoke", "read", None), (1, "ok", 1))
    assert register(h) == "ok"


def test_invocation_never_completed_is_unknown() -> None:
    h = build((0, "invoke", "write", 1), (1, "invoke", "read", None), (1, "ok", 1))
    assert register(h) == "ok"
    assert pair_operations(h)[0].status == "info" and pair_operations(h)[0].return_index is None


def test_info_read_and_failed_write_constrain_nothing() -> None:
    h = build((0, "invoke", "write", 1), (0, "fail", None), (1, "invoke", "read", None), (1, "info", None),
              (2, "invoke", "read", None), (2, "ok", None))
    result = check_linearizability(h, RegisterModel())
    assert result.verdict == "ok" and result.dropped == 2 and result.operations == 1
    assert register(build((0, "invoke", "write", 1), (0, "fail", None), (1, "invoke", "read", None),
                          (1, "ok", 1))) == "illegal"


# ---- key-value store --------------------------------------------------------------

def kv(history: History, **options: Any) -> Any:
    return check_linearizability(history, KVModel(**options), time_limit_s=None, all_keys=True)


def test_kv_keys_are_independent_and_reported_per_key() -> None:
    h = build((0, "invoke", "put", "a", "x"), (0, "ok", None), (0, "invoke", "put", "b", "y"), (0, "ok", None),
              (1, "invoke", "get", None, "x"), (1, "ok", "a"), (1, "invoke", "get", None, "y"), (1, "ok", "stale"))
    result = kv(h)
    assert result.verdict == "illegal"
    assert result.key_verdicts == {"x": "ok", "y": "illegal"}
    assert [key.key for key in result.illegal_keys] == ["y"]


def test_kv_absent_initial_value_and_delete() -> None:
    h = build((0, "invoke", "get", None, "k"), (0, "ok", None), (0, "invoke", "put", "v", "k"), (0, "ok", None),
              (0, "invoke", "delete", None, "k"), (0, "ok", None), (1, "invoke", "get", None, "k"), (1, "ok", None))
    assert kv(h).verdict == "ok"
    assert kv(h, initial="").verdict == "illegal"  # reads of None never match an empty-string store


def test_kv_append_and_cas_on_absent() -> None:
    h = build((0, "invoke", "append", "a", "k"), (0, "ok", None), (0, "invoke", "append", "b", "k"), (0, "ok", None),
              (1, "invoke", "get", None, "k"), (1, "ok", "ab"),
              (1, "invoke", "cas", [None, "z"], "j"), (1, "ok", [None, "z"]),
              (1, "invoke", "get", None, "j"), (1, "ok", "z"))
    assert kv(h).verdict == "ok"
    swapped = build((0, "invoke", "append", "a", "k"), (0, "ok", None), (0, "invoke", "append", "b", "k"),
                    (0, "ok", None), (1, "invoke", "get", None, "k"), (1, "ok", "ba"))
    assert kv(swapped, initial="").verdict == "illegal"


def test_service_operations_are_ignored_unless_asked() -> None:
    h = build((0, "invoke", "service-create", {"name": "web"}), (0, "ok", None),
              (1, "invoke", "put", "v", "k"), (1, "ok", None))
    result = check_linearizability(h)
    assert result.verdict == "ok" and result.ignored == 1
    with pytest.raises(ModelError, match="service-create"):
        check_linearizability(h, ignore_unknown_functions=False)


def test_first_illegal_key_stops_the_others_unless_all_keys() -> None:
    events: list[tuple[Any, ...]] = [(0, "invoke", "put", "v", "bad"), (0, "ok", None),
                                      (0, "invoke", "get", None, "bad"), (0, "ok", "other")]
    # A key whose search is long: many overlapping writes and a read of nothing written.
    events += [(process, "invoke", "put", f"v{process}", "slow") for process in range(1, 25)]
    events += [(process, "ok", None) for process in range(1, 25)]
    events += [(99, "invoke", "get", None, "slow"), (99, "ok", "never")]
    h = build(*events)
    quick = check_linearizability(h, steps_max=2_000_000)
    assert quick.verdict == "illegal"
    assert quick.key_verdicts["bad"] == "illegal" and quick.key_verdicts["slow"] == "unknown"
    assert "already illegal" in next(k.reason for k in quick.keys if k.key == "slow")


# ---- bounds ------------------------------------------------------------------------

def pathological_history(width: int) -> History:
    """``width`` concurrent acknowledged writes, then a read of a value never
    written: illegal, but proving it explores every subset of the writes."""
    events: list[tuple[Any, ...]] = [(p, "invoke", "write", p) for p in range(width)]
    events += [(p, "ok", p) for p in range(width)]
    events += [(width, "invoke", "read", None), (width, "ok", -1)]
    return build(*events)


def test_time_limit_answers_unknown() -> None:
    ticks = itertools.count()
    clock = lambda: next(ticks) * 0.01  # noqa: E731 - each look at the clock is 10 ms later
    result = check_linearizability(pathological_history(40), RegisterModel(), time_limit_s=1.0, clock=clock)
    assert result.verdict == "unknown"
    assert result.keys[0].reason == "time limit reached"
    assert result.keys[0].prefix is not None  # progress so far is still reported
    assert "unknown (time limit reached)" in "\n".join(result.report_lines())


def test_step_bound_answers_unknown() -> None:
    result = check_linearizability(pathological_history(40), RegisterModel(), time_limit_s=None, steps_max=50_000)
    assert result.verdict == "unknown" and "step bound" in result.keys[0].reason
    assert result.steps <= 50_000 + 4096


def test_small_pathological_history_is_decided() -> None:
    assert register(pathological_history(8)) == "illegal"


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="time_limit_s"):
        check_linearizability(History(), time_limit_s=-1)
    with pytest.raises(ValueError, match="steps_max"):
        check_linearizability(History(), steps_max=-5)


# ---- inputs and outputs -------------------------------------------------------------

def test_raw_op_lists_are_checked_too() -> None:
    ops = [Op(0, 0, "invoke", "write", None, 1), Op(1, 0, "ok", "write", None, 1),
           Op(2, 1, "invoke", "read", None, None), Op(3, 1, "ok", "read", None, 2)]
    assert check_linearizability(ops, RegisterModel()).verdict == "illegal"
    with pytest.raises(HistoryError, match="no open invocation"):
        pair_operations([Op(0, 0, "ok", "read", None, 1)])
    with pytest.raises(HistoryError, match="invoked twice"):
        pair_operations([Op(0, 0, "invoke", "read", None, None), Op(1, 0, "invoke", "read", None, None)])


def test_result_is_json_serialisable_and_deterministic() -> None:
    h = build((0, "invoke", "write", 1), (0, "ok", 1), (1, "invoke", "read", None), (1, "ok", 2),
              (2, "invoke", "write", 3))
    first = check_linearizability(h, RegisterModel()).to_dict()
    second = check_linearizability(h, RegisterModel()).to_dict()
    first.pop("elapsed_s"), second.pop("elapsed_s")
    assert first == second
    encoded = json.dumps(first)
    assert '"illegal"' in encoded and "read() -> 2" in encoded


def test_ok_result_carries_a_linearization() -> None:
    h = build((0, "invoke", "write", 1), (1, "invoke", "read", None), (1, "ok", None), (0, "ok", 1),
              (1, "invoke", "read", None), (1, "ok", 1))
    result = check_operations(pair_operations(h), RegisterModel())
    assert result.ok
    assert result.keys[0].linearization == (1, 0, 2)


def test_operation_descriptions() -> None:
    h = build((0, "invoke", "cas", [1, 2], "k"), (0, "ok", False), (1, "invoke", "put", "v", "k"),
              (1, "info", None), (2, "invoke", "get", None, "k"), (2, "ok", None))
    described = [operation.describe() for operation in pair_operations(h)]
    assert described == ["p0 cas('k', 1, 2) -> mismatch [#0..#1]", "p1 put('k', 'v') -> info [#2..never]",
                         "p2 get('k') -> nil [#4..#5]"]


# ---- reductions for unknown outcomes ------------------------------------------------

def test_many_unknown_writes_with_unique_values_are_decided() -> None:
    """A long run with a timeout every few operations and a stale read at the end.  Without
    the unknown-outcome reductions every subset of the timed-out writes is a configuration
    (2**60 here); with them the search stays small."""
    events: list[tuple[Any, ...]] = []
    process = 1
    for round_number in range(60):
        events += [(0, "invoke", "write", round_number * 10), (0, "ok", None)]
        events += [(process, "invoke", "write", round_number * 10 + 1), (process, "info", None)]
        process += 1
        events += [(0, "invoke", "read", None), (0, "ok", round_number * 10)]
    ok = check_linearizability(build(*events), RegisterModel(), time_limit_s=None, steps_max=1_000_000)
    assert ok.verdict == "ok"
    stale = build(*events, (0, "invoke", "read", None), (0, "ok", 0))
    result = check_linearizability(stale, RegisterModel(), time_limit_s=None, steps_max=1_000_000)
    assert result.verdict == "illegal"


def test_unknown_write_explains_a_late_read_even_among_blind_writes() -> None:
    # The unknown write of 5 must land between the last acknowledged write and the read.
    h = build((0, "invoke", "write", 5), (0, "info", None), (1, "invoke", "write", 1), (1, "ok", None),
              (1, "invoke", "write", 2), (1, "ok", None), (1, "invoke", "read", None), (1, "ok", 5),
              (1, "invoke", "read", None), (1, "ok", 5))
    assert register(h) == "ok"
    twice = build((0, "invoke", "write", 5), (0, "info", None), (1, "invoke", "write", 1), (1, "ok", None),
                  (1, "invoke", "read", None), (1, "ok", 5), (1, "invoke", "write", 2), (1, "ok", None),
                  (1, "invoke", "read", None), (1, "ok", 5))
    assert register(twice) == "illegal"  # one unknown write cannot apply twice
    two_twins = build((0, "invoke", "write", 5), (0, "info", None), (2, "invoke", "write", 5), (2, "info", None),
                      (1, "invoke", "write", 1), (1, "ok", None), (1, "invoke", "read", None), (1, "ok", 5),
                      (1, "invoke", "write", 2), (1, "ok", None), (1, "invoke", "read", None), (1, "ok", 5))
    assert register(two_twins) == "ok"  # ... but two identical ones can


def test_configuration_bound_answers_unknown() -> None:
    result = check_linearizability(pathological_history(40), RegisterModel(), time_limit_s=None,
                                   configurations_max=10_000)
    assert result.verdict == "unknown" and "cached configurations" in result.keys[0].reason
    with pytest.raises(ValueError, match="configurations_max"):
        check_linearizability(History(), configurations_max=0)


def test_search_kernel_directly() -> None:
    from chaos.checkers.models import READ, WRITE, _step
    from chaos.checkers.search import Budget, search

    calls = [(WRITE, 1), (READ, 1), (READ, None)]
    # write [0, 3], read 1 [1, 2], read nil [4, 5]: the last read cannot see the write undone.
    outcome = search(calls, [0, 1, 4], [3, 2, 5], None, _step, Budget(), [False, True, True], [True, False, False])
    assert outcome.verdict == "illegal" and outcome.prefix == [0, 1] and outcome.blocked == 2
    fine = search(calls[:2], [0, 1], [3, 2], None, _step, Budget())
    assert fine.verdict == "ok" and fine.linearization == [0, 1]
    with pytest.raises(AssertionError):
        search(calls[:1], [5], [3], None, _step, Budget())  # returns before it is invoked


class CounterModel:
    """A user's own model through the same protocol: ``add`` n, ``read`` the total."""

    name = "counter"

    def initial_state(self) -> int:
        return 0

    def partition_key(self, operation: Any) -> Any:
        return operation.key

    def compile(self, operation: Any) -> tuple[Any, ...] | None:
        if operation.f not in ("add", "read"):
            raise ModelError(f"a counter has add/read, not {operation.f!r}")
        if operation.status == "fail" or (operation.f == "read" and operation.status == "info"):
            return None
        return ("add", operation.input) if operation.f == "add" else ("read", operation.output)

    def step(self, state: int, call: tuple[Any, ...]) -> Any:
        from chaos.checkers.models import ILLEGAL
        if call[0] == "add":
            return state + call[1]
        return state if state == call[1] else ILLEGAL

    def observes_only(self, call: tuple[Any, ...]) -> bool:
        return call[0] == "read"

    def blind_write(self, call: tuple[Any, ...]) -> bool:
        return False

    def final_read(self, key: Any, value: Any) -> tuple[str, Any]:
        return "read", value

    def describe_state(self, state: int) -> str:
        return str(state)


def test_a_user_model_plugs_in() -> None:
    h = build((0, "invoke", "add", 2), (1, "invoke", "add", 3), (0, "ok", None), (2, "invoke", "read", None),
              (2, "ok", 2), (1, "ok", None), (2, "invoke", "read", None), (2, "ok", 5))
    assert check_linearizability(h, CounterModel()).verdict == "ok"
    bad = build((0, "invoke", "add", 2), (0, "ok", None), (2, "invoke", "read", None), (2, "ok", 3))
    assert check_linearizability(bad, CounterModel()).verdict == "illegal"
