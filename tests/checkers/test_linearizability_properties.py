"""Property tests: histories recorded from a real sequential store are always accepted;
a completed read changed to a value never written is always rejected."""
from __future__ import annotations

from hypothesis import given, note
from hypothesis import strategies as st
from register_histories import Recorded, recorded_histories

from chaos.checkers.linearizability import KVModel, RegisterModel, check_linearizability
from chaos.history import History, Op

NEVER_WRITTEN = {False: 999, True: "never-written"}


def check(recorded: Recorded, kv: bool) -> str:
    model = KVModel() if kv else RegisterModel()
    result = check_linearizability(recorded.history, model, time_limit_s=None, steps_max=5_000_000, all_keys=True)
    note("\n".join(op.to_json() for op in recorded.history))
    note("\n".join(result.report_lines()))
    return result.verdict


@given(st.booleans().flatmap(lambda many: recorded_histories(many_timeouts=many)))
def test_register_histories_from_a_real_register_are_linearizable(recorded: Recorded) -> None:
    assert check(recorded, kv=False) == "ok"


@given(st.booleans().flatmap(lambda many: recorded_histories(kv=True, many_timeouts=many)))
def test_kv_histories_from_a_real_store_are_linearizable(recorded: Recorded) -> None:
    assert check(recorded, kv=True) == "ok"


@given(st.booleans(), st.data())
def test_a_read_of_a_value_never_written_is_illegal(kv: bool, data: st.DataObject) -> None:
    recorded = data.draw(recorded_histories(kv=kv))
    reads = [op.index for op in recorded.history if op.type == "ok" and op.f in ("read", "get")]
    if not reads:
        return
    target = data.draw(st.sampled_from(reads))
    mutated = [Op(op.index, op.process, op.type, op.f, op.key, NEVER_WRITTEN[kv], op.time_ns, op.node, op.error)
               if op.index == target else op for op in recorded.history]
    assert check(Recorded(History(mutated), recorded.final), kv) == "illegal"


@given(recorded_histories())
def test_verdict_is_deterministic(recorded: Recorded) -> None:
    first = check_linearizability(recorded.history, RegisterModel(), time_limit_s=None).to_dict()
    second = check_linearizability(recorded.history, RegisterModel(), time_limit_s=None).to_dict()
    first.pop("elapsed_s"), second.pop("elapsed_s")
    assert first == second


# ---- differential: the search against brute force on small, possibly illegal histories ----

def brute_force_verdict(history: History, model: RegisterModel | KVModel) -> str:
    """Try every order that respects real time (no cache, no pruning)."""
    from chaos.checkers.models import ILLEGAL
    from chaos.checkers.operations import pair_operations

    for key in {op.key for op in history}:
        members = [(operation, call) for operation in pair_operations(history) if operation.key == key
                   for call in [model.compile(operation)] if call is not None]

        def extend(done: frozenset[int], state: object) -> bool:
            remaining = [i for i in range(len(members)) if i not in done]
            if all(members[i][0].status == "info" for i in remaining):
                return True  # unknown outcomes may never have happened
            for i in remaining:
                invoked = members[i][0].invoke_index
                if any(members[j][0].return_index is not None and members[j][0].return_index < invoked
                       for j in remaining):
                    continue  # an operation that returned before this one was invoked comes first
                after = model.step(state, members[i][1])
                if after is not ILLEGAL and extend(done | {i}, after):
                    return True
            return False

        if not extend(frozenset(), model.initial_state()):
            return "illegal"
    return "ok"


@given(st.booleans(), st.booleans(), st.data())
def test_search_agrees_with_brute_force(kv: bool, many_timeouts: bool, data: st.DataObject) -> None:
    recorded = data.draw(recorded_histories(kv=kv, actions_max=24, many_timeouts=many_timeouts))
    reads = [op.index for op in recorded.history if op.type == "ok" and op.f in ("read", "get")]
    ops = list(recorded.history)
    if reads:  # perturb one read to any plausible value: the history may become illegal
        target = data.draw(st.sampled_from(reads))
        value = data.draw(st.sampled_from(sorted(recorded.written, key=repr) + [None]))
        ops = [Op(op.index, op.process, op.type, op.f, op.key, value, op.time_ns) if op.index == target else op
               for op in ops]
    history = History(ops)
    model = KVModel() if kv else RegisterModel()
    expected = brute_force_verdict(history, model)
    result = check_linearizability(history, model, time_limit_s=None, all_keys=True)
    note("\n".join(op.to_json() for op in history))
    note("\n".join(result.report_lines()))
    assert result.verdict == expected
