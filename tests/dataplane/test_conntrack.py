"""Connection tracking: bounded, timeouts on an injected clock, hits keep their value, twin agreement."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from dataplane import conntrack, conntrack_c, conntrack_py
from dataplane.conntrack import ConnTrack, ConnTrackError, Timeouts

TIMEOUTS = Timeouts(syn_sent_ns=50, established_ns=1000, fin_wait_ns=200, closed_ns=20, udp_ns=300)
SYN, SYN_ACK, ACK, FIN, RST = 0x02, 0x12, 0x10, 0x11, 0x04


def both(
    capacity: int, window: int, timeouts: Timeouts = TIMEOUTS, seed: int = 3
) -> list[ConnTrack]:
    tables = []
    for module in (conntrack_c, conntrack_py):
        table = ConnTrack(capacity, probe_window=window, timeouts=timeouts, seed=seed)
        table_kernel = module
        table.track_kernel = table_kernel  # type: ignore[attr-defined]
        tables.append(table)
    return tables


def run_track(
    table: ConnTrack, module, key: tuple, flags: int, now: int, value: int, is_reply: bool
) -> tuple:
    original = conntrack.kernel
    conntrack.kernel = module
    try:
        return table.track(*key, flags, now, value, is_reply=is_reply)
    finally:
        conntrack.kernel = original


operations = st.lists(
    st.tuples(
        st.integers(0, 11),  # which flow (few, so they collide and repeat)
        st.sampled_from([SYN, SYN_ACK, ACK, FIN, RST, 0x18]),
        st.integers(0, 400),  # clock advance
        st.booleans(),  # reply direction
        st.sampled_from(["track", "track", "track", "sweep"]),
    ),
    min_size=1,
    max_size=80,
)


@given(st.integers(1, 12), st.integers(1, 8), operations, st.integers(0, 2**128 - 1))
def test_bounded_hits_keep_value_and_twin_agrees(
    capacity: int, window: int, steps: list, seed: int
) -> None:
    note(f"capacity={capacity} window={window} seed={seed}")
    tables = [
        ConnTrack(capacity, probe_window=window, timeouts=TIMEOUTS, seed=seed) for _ in range(2)
    ]
    flows = [
        (6 if index % 3 else 17, 0xC0000200 + index, 0xC6120000 + index % 2, 1000 + index, 80)
        for index in range(12)
    ]
    model: dict[tuple, int] = {}  # flow -> value given when it was (re)inserted
    now = 0
    for step, (flow_index, flags, advance, is_reply, action) in enumerate(steps):
        now += advance
        key = flows[flow_index]
        if action == "sweep":
            freed = [
                run_sweep(table, module, now)
                for table, module in zip(tables, (conntrack_c, conntrack_py))
            ]
            assert freed[0] == freed[1]
        else:
            results = [
                run_track(table, module, key, flags, now, step, is_reply)
                for table, module in zip(tables, (conntrack_c, conntrack_py))
            ]
            assert results[0] == results[1], (step, results)
            value, _state, is_new = results[0]
            if is_new:
                model[key] = value
                assert value == step
            elif value != -1:
                assert value == model[key], (
                    "a hit must return the value stored when the flow was inserted"
                )
        assert (tables[0].table == tables[1].table).all()
        assert (tables[0].counter_array == tables[1].counter_array).all()
        for table in tables:
            assert 0 <= table.occupied <= capacity, table
            assert table.occupied == len(table.entries())
            assert table.table.nbytes == table.memory_bytes == 32 * capacity


def run_sweep(table: ConnTrack, module, now: int) -> int:
    original = conntrack.kernel
    conntrack.kernel = module
    try:
        return table.sweep(now)
    finally:
        conntrack.kernel = original


FLOW_TCP = (6, 0xC0000201, 0xC612000A, 40000, 80)
FLOW_UDP = (17, 0xC0000201, 0xC612000A, 40000, 53)


@pytest.mark.parametrize("module", [conntrack_c, conntrack_py])
@pytest.mark.parametrize(
    ("flow", "packets", "state", "timeout"),
    [
        (FLOW_TCP, [SYN], "SYN_SENT", TIMEOUTS.syn_sent_ns),
        (FLOW_TCP, [SYN, ACK], "ESTABLISHED", TIMEOUTS.established_ns),
        (FLOW_TCP, [ACK], "ESTABLISHED", TIMEOUTS.established_ns),
        (FLOW_TCP, [SYN, ACK, FIN], "FIN_WAIT", TIMEOUTS.fin_wait_ns),
        (FLOW_TCP, [SYN, ACK, RST], "CLOSED", TIMEOUTS.closed_ns),
        (FLOW_TCP, [SYN, ACK, FIN, RST], "CLOSED", TIMEOUTS.closed_ns),
        (FLOW_UDP, [0], "UDP", TIMEOUTS.udp_ns),
    ],
)
def test_timeouts_expire_as_configured(
    module, flow: tuple, packets: list[int], state: str, timeout: int
) -> None:
    for probe, expect_new in ((timeout - 1, False), (timeout, True)):
        table = ConnTrack(64, timeouts=TIMEOUTS)
        now = 1_000_000
        for flags in packets:
            result = run_track(table, module, flow, flags, now, 7, False)
        assert result[1] == state
        # Probe with a packet that does not change the state (a bare ACK, or UDP).
        flags = 0 if flow[0] == 17 else ACK
        if state == "SYN_SENT":
            flags = SYN_ACK  # the server's answer keeps SYN_SENT
        value, _, is_new = run_track(table, module, flow, flags, now + probe, 8, False)
        assert is_new is expect_new, (state, probe)
        assert value == (8 if expect_new else 7)
        if expect_new:
            assert table.counters["expired"] == 1


@pytest.mark.parametrize("module", [conntrack_c, conntrack_py])
def test_client_syn_reopens_a_closed_entry(module) -> None:
    table = ConnTrack(16, timeouts=TIMEOUTS)
    run_track(table, module, FLOW_TCP, SYN, 0, 1, False)
    run_track(table, module, FLOW_TCP, RST, 1, 2, False)
    assert run_track(table, module, FLOW_TCP, SYN, 2, 3, False) == (3, "SYN_SENT", True)
    assert table.counters["reopened"] == 1 and table.occupied == 1


@pytest.mark.parametrize("module", [conntrack_c, conntrack_py])
def test_reply_never_creates_an_entry(module) -> None:
    table = ConnTrack(16, timeouts=TIMEOUTS)
    assert run_track(table, module, FLOW_TCP, SYN_ACK, 0, 1, True) == (-1, "FREE", False)
    assert table.occupied == 0


@pytest.mark.parametrize("module", [conntrack_c, conntrack_py])
def test_pressure_evicts_the_entry_closest_to_expiry_and_counts_it(module) -> None:
    table = ConnTrack(4, probe_window=4, timeouts=TIMEOUTS)
    for index in range(4):
        run_track(table, module, (6, 1, 2, 1000 + index, 80), ACK, index, index, False)
    assert table.occupied == 4 and table.counters["evicted"] == 0
    run_track(table, module, (6, 1, 2, 2000, 80), ACK, 10, 99, False)
    assert table.occupied == 4 and table.counters["evicted"] == 1
    remaining = {entry.source_port for entry in table.entries()}
    assert remaining == {1001, 1002, 1003, 2000}  # port 1000 expired soonest (inserted first)
    # Expired entries are reclaimed before anything live is evicted.
    run_track(table, module, (6, 1, 2, 3000, 80), ACK, 10 + TIMEOUTS.established_ns, 5, False)
    assert table.counters["evicted"] == 1 and table.counters["expired"] == 1


def test_sweep_frees_expired_entries() -> None:
    table = ConnTrack(32, timeouts=TIMEOUTS)
    for index in range(10):
        table.track(17, 1, 2, index + 1, 53, 0, index * 10, index)
    assert table.sweep(TIMEOUTS.udp_ns + 45) == 5
    assert table.occupied == 5 and table.counters["expired"] == 5


@pytest.mark.parametrize(
    "build",
    [
        lambda: ConnTrack(0),
        lambda: ConnTrack(2**27),
        lambda: ConnTrack(True),
        lambda: ConnTrack(16, probe_window=0),
        lambda: ConnTrack(16, probe_window=65),
        lambda: ConnTrack(16, timeouts="fast"),
        lambda: Timeouts(udp_ns=0),
        lambda: Timeouts(established_ns=1.5),
        lambda: ConnTrack(16).track(6, 1, 2, 3, 4, 0, -1, 0),
        lambda: ConnTrack(16).track(6, 1, 2, 3, 4, 0, 0, 2**56),
        lambda: ConnTrack(16).sweep(2**63),
    ],
)
def test_bad_arguments_raise_typed_errors(build) -> None:
    with pytest.raises(ConnTrackError):
        build()


def test_memory_is_stated_and_fixed() -> None:
    table = ConnTrack(65536)
    assert table.memory_bytes == 2 * 1024 * 1024 == table.table.nbytes
    for index in range(70000):
        table.track(17, index, 2, 3, 4, 0, 0, 1) if index % 997 == 0 else None
    assert table.table.nbytes == table.memory_bytes
    assert isinstance(table.table, np.ndarray)
