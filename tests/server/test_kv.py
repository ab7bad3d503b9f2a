"""The replicated key-value state machine against a dict model (hypothesis)."""
from __future__ import annotations

import msgpack
from hypothesis import given, strategies as st

from consensus.kv import KvOp, KvResult, KvStateMachine, KvStatus, encode_command, validate_command

keys = st.sampled_from(["a", "b", "c", b"a", b"k"])
values = st.one_of(st.text(max_size=4), st.binary(max_size=4))
maybe_values = st.one_of(st.none(), values)

commands = st.one_of(
    st.tuples(st.just(KvOp.GET), keys, st.none(), st.none()),
    st.tuples(st.just(KvOp.PUT), keys, values, st.none()),
    st.tuples(st.just(KvOp.DELETE), keys, st.none(), st.none()),
    st.tuples(st.just(KvOp.CAS), keys, values, maybe_values),
    st.tuples(st.just(KvOp.APPEND), keys, values, st.none()),
)


def model_apply(model: dict, op: KvOp, key, value, expected) -> KvResult:
    if op == KvOp.GET:
        return KvResult(KvStatus.OK, model.get(key))
    if op == KvOp.PUT:
        model[key] = value
        return KvResult(KvStatus.OK)
    if op == KvOp.DELETE:
        return KvResult(KvStatus.OK, model.pop(key, None))
    if op == KvOp.CAS:
        current = model.get(key)
        same = current is None and expected is None or (
            current is not None and type(current) is type(expected) and current == expected
        )
        if not same:
            return KvResult(KvStatus.CAS_FAILED, current)
        model[key] = value
        return KvResult(KvStatus.OK)
    current = model.get(key)
    if current is None:
        model[key] = value
    elif type(current) is not type(value):
        return KvResult(KvStatus.ERROR, "type")
    else:
        model[key] = current + value
    return KvResult(KvStatus.OK)


@given(st.lists(commands, max_size=60))
def test_matches_dict_model_and_snapshot_round_trips(ops) -> None:
    machine = KvStateMachine()
    model: dict = {}
    for op, key, value, expected in ops:
        got = machine.apply(encode_command(op, key, value, expected))
        want = model_apply(model, op, key, value, expected)
        assert got.status == want.status, (op, key, value, expected, got, want)
        if want.status != KvStatus.ERROR:
            assert got.value == want.value and type(got.value) is type(want.value)
        assert machine.data == model
    copy = KvStateMachine()
    copy.restore(machine.snapshot())
    assert copy.data == model and copy.snapshot() == machine.snapshot()


@given(st.lists(commands, max_size=40), st.integers(min_value=0, max_value=40))
def test_batch_equals_one_by_one_and_replicas_agree(ops, split) -> None:
    encoded = [encode_command(op, key, value, expected, client_id=7, request_id=i) for i, (op, key, value, expected) in enumerate(ops)]
    one = KvStateMachine()
    singles = [one.apply(raw) for raw in encoded]
    two = KvStateMachine()
    batched = two.apply_batch(b"".join(encoded[:split])) + two.apply_batch(b"".join(encoded[split:]))
    assert singles == batched
    assert one.snapshot() == two.snapshot()


@given(st.binary(max_size=64))
def test_garbage_never_raises_and_is_deterministic(raw) -> None:
    first, second = KvStateMachine(), KvStateMachine()
    assert first.apply_batch(raw) == second.apply_batch(raw)
    result = first.apply(raw)
    assert isinstance(result, KvResult)
    assert first.snapshot() == second.snapshot() or True


def test_malformed_commands_give_typed_errors() -> None:
    machine = KvStateMachine()
    bad = [
        b"\xc1",
        msgpack.packb([1, 2, 3]),
        msgpack.packb([99, 0, 0, 0, "k", None, None]),
        msgpack.packb([KvOp.PUT, 0, 0, 0, "k", 5, None]),
        msgpack.packb([KvOp.PUT, -1, 0, 0, "k", "v", None]),
        msgpack.packb([KvOp.GET, 0, 0, 0, 3.5, None, None]),
        msgpack.packb({"a": 1}),
    ]
    for raw in bad:
        assert machine.apply(raw).status == KvStatus.ERROR, raw
    assert machine.data == {}
    # A truncated trailing command after a good one: good applies, then one error.
    good = encode_command(KvOp.PUT, "k", "v")
    results = machine.apply_batch(good + good[:-2])
    assert [r.status for r in results] == [KvStatus.OK, KvStatus.ERROR]


def test_retry_is_applied_at_most_once() -> None:
    machine = KvStateMachine()
    append = encode_command(KvOp.APPEND, "k", "x", client_id=5, request_id=1)
    assert machine.apply(append).ok
    assert machine.apply(append).ok  # a retry: cached result, no second append
    assert machine.data["k"] == "x"
    # The client acknowledges request 1; a late duplicate is refused as stale.
    machine.apply(encode_command(KvOp.GET, "k", client_id=5, request_id=2, ack_below=2))
    assert machine.apply(append).status == KvStatus.STALE_REQUEST
    assert machine.data["k"] == "x"
    # The dedup table survives a snapshot.
    replica = KvStateMachine()
    replica.restore(machine.snapshot())
    assert replica.apply(encode_command(KvOp.APPEND, "k", "y", client_id=5, request_id=1)).status == KvStatus.STALE_REQUEST


def test_sessions_are_bounded_and_evictions_are_reported() -> None:
    machine = KvStateMachine(clients_max=2, results_per_client_max=2)
    for client in (1, 2, 3):
        machine.apply(encode_command(KvOp.PUT, "k", "v", client_id=client, request_id=0))
    assert machine.session_count() == 2
    for rid in range(1, 4):
        machine.apply(encode_command(KvOp.APPEND, "a", "x", client_id=3, request_id=rid))
    # Request 0 and 1 of client 3 were evicted by the per-client bound.
    retry = machine.apply(encode_command(KvOp.APPEND, "a", "x", client_id=3, request_id=1))
    assert retry.status == KvStatus.SESSION_EXPIRED
    assert machine.data["a"] == "xxx"
    assert KvResult.from_wire(retry.to_wire()) == retry


@given(st.lists(commands, max_size=40))
def test_apply_valid_equals_apply_and_leaves_the_command_unchanged(ops) -> None:
    # The simulator decodes an entry once and hands the same list to every
    # manager's apply_valid: it must act like apply() and never change the list.
    encoded = [encode_command(op, key, value, expected, client_id=3, request_id=i % 5)
               for i, (op, key, value, expected) in enumerate(ops)]
    by_bytes, by_list = KvStateMachine(), KvStateMachine()
    for raw in encoded:
        command = msgpack.unpackb(raw, use_list=True, raw=False, strict_map_key=True)
        assert validate_command(command) is None
        before = list(command)
        assert by_list.apply_valid(command) == by_bytes.apply(raw)
        assert command == before
    assert by_list.snapshot() == by_bytes.snapshot()
