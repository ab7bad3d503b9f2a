"""The keyed flow hash: SipHash reference vectors, Cython vs twin, key sensitivity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataplane import flowhash, flowhash_c, flowhash_py
from dataplane.flowhash import SeedError, split_seed

REFERENCE_KEY = (
    int.from_bytes(bytes(range(8)), "little"),
    int.from_bytes(bytes(range(8, 16)), "little"),
)


@pytest.mark.parametrize("module", [flowhash_c, flowhash_py])
@pytest.mark.parametrize(
    ("message", "expected"),
    # SipHash-2-4 test vectors of the reference implementation (key 00..0f, message 00..n-1).
    [(b"", 0x726FDB47DD0E0E31), (bytes(range(15)), 0xA129CA6149BE45E5)],
)
def test_siphash24_reference_vectors(module, message: bytes, expected: int) -> None:
    assert module.siphash24(*REFERENCE_KEY, message) == expected


u64 = st.integers(0, 2**64 - 1)


@given(
    u64,
    u64,
    st.integers(0, 255),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 65535),
    st.integers(0, 65535),
)
def test_flow_hash_cython_and_twin_agree(
    k0, k1, protocol, source_ip, destination_ip, source_port, destination_port
) -> None:
    arguments = (k0, k1, protocol, source_ip, destination_ip, source_port, destination_port)
    assert flowhash_c.flow_hash(*arguments) == flowhash_py.flow_hash(*arguments)


@given(u64, u64, st.binary(max_size=300))
def test_siphash24_cython_and_twin_agree(k0: int, k1: int, data: bytes) -> None:
    assert flowhash_c.siphash24(k0, k1, data) == flowhash_py.siphash24(k0, k1, data)


@given(
    u64,
    u64,
    st.lists(
        st.tuples(
            st.integers(0, 255),
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**32 - 1),
            st.integers(0, 65535),
            st.integers(0, 65535),
        ),
        max_size=40,
    ),
)
def test_flow_hash_array_agrees(k0: int, k1: int, tuples: list) -> None:
    columns = list(zip(*tuples)) if tuples else [(), (), (), (), ()]
    arrays = [
        np.array(column, dtype=dtype)
        for column, dtype in zip(columns, (np.uint8, np.uint32, np.uint32, np.uint16, np.uint16))
    ]
    out_c = np.zeros(len(tuples), dtype=np.uint64)
    out_p = np.zeros(len(tuples), dtype=np.uint64)
    flowhash_c.flow_hash_array(k0, k1, *arrays, out_c)
    flowhash_py.flow_hash_array(k0, k1, *arrays, out_p)
    assert (out_c == out_p).all()
    assert out_c.tolist() == [flowhash_c.flow_hash(k0, k1, *row) for row in tuples]


@pytest.mark.parametrize("count", [*range(18), 63, 64, 65, 64 + 13, 300])
def test_flow_hash_array_every_lane_width_agrees(count: int) -> None:
    # The C path hashes 8 flows per AVX-512 step, then 4 per AVX2 step, then one
    # at a time, in blocks of 64 staged flows: these lengths leave every kind of
    # remainder and cross a block boundary.  The values must not depend on it.
    rng = np.random.default_rng(count)
    widths = ((8, np.uint8), (32, np.uint32), (32, np.uint32), (16, np.uint16), (16, np.uint16))
    arrays = [rng.integers(0, 1 << bits, count, dtype=dtype) for bits, dtype in widths]
    k0, k1 = (int(word) for word in rng.integers(0, 2**63, 2, dtype=np.uint64) * 2 + 1)
    out_p = np.zeros(count, dtype=np.uint64)
    flowhash_py.flow_hash_array(k0, k1, *arrays, out_p)
    assert flowhash_c.SIMD_LEVEL in flowhash_c.SIMD_LEVELS
    # Every level this CPU has, not only the best one (a machine with AVX2 but
    # no AVX-512 runs the 4-lane path on whole blocks).
    available = flowhash_c.SIMD_LEVELS[: flowhash_c.SIMD_LEVELS.index(flowhash_c.SIMD_LEVEL) + 1]
    for level in (None, *available):
        out_c = np.zeros(count, dtype=np.uint64)
        flowhash_c.flow_hash_array(k0, k1, *arrays, out_c, simd_level=level)
        assert (out_c == out_p).all(), f"SIMD level {level or flowhash_c.SIMD_LEVEL}, count {count}"


@pytest.mark.parametrize("module", [flowhash_c, flowhash_py])
def test_flow_hash_array_refuses_an_unknown_simd_level(module) -> None:
    arrays = [np.zeros(1, dtype=dtype) for dtype in (np.uint8, np.uint32, np.uint32, np.uint16, np.uint16)]
    with pytest.raises(ValueError, match="simd_level"):
        module.flow_hash_array(1, 2, *arrays, np.zeros(1, dtype=np.uint64), simd_level="sse9")


@given(st.integers(0, 2**128 - 1), st.integers(0, 127))
def test_changing_one_key_bit_changes_the_hash(seed: int, bit: int) -> None:
    # Keyed: a client who does not know the 128-bit cluster seed cannot predict
    # which backend a 5-tuple lands on; flipping any key bit reshuffles flows.
    flow = (6, 0xC0000201, 0xC612000A, 40000, 80)
    assert flowhash.flow_hash(seed, *flow) != flowhash.flow_hash(seed ^ (1 << bit), *flow)


def test_flow_hash_spreads_consecutive_ports_evenly() -> None:
    # Consecutive source ports (what a NAT or a flood produces) over 101 slots.
    key = split_seed(12345)
    slots = [
        ((flowhash_c.flow_hash(*key, 6, 0xC0000201, 0xC612000A, port, 80) >> 32) * 101) >> 32
        for port in range(1024, 1024 + 101 * 200)
    ]
    counts = np.bincount(slots, minlength=101)
    expected = 200
    chi_square = float(((counts - expected) ** 2 / expected).sum())
    assert chi_square < 180, chi_square  # 100 degrees of freedom: p < 1e-6 above ~170


@pytest.mark.parametrize("seed", [-1, 2**128, 1.0, True, "0"])
def test_bad_seed_is_a_typed_error(seed) -> None:
    with pytest.raises(SeedError):
        split_seed(seed)
