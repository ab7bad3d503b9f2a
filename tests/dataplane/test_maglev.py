"""Maglev tables: shares, disruption, determinism across processes and orders, twin agreement, errors."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataplane import maglev_c, maglev_py
from dataplane.flowhash import SeedError
from dataplane.maglev import (
    BackendNameError,
    POPULATE_METHODS,
    EmptyBackendsError,
    MaglevError,
    NoActiveBackendError,
    TableSizeError,
    WeightError,
    balance,
    build_table,
    disruption,
    is_prime,
    slot_counts,
)

PRIMES_LARGE = [5003, 10007, 65537]
PRIMES_SMALL = [2, 3, 7, 13, 101, 251, 1009]

names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12
)


def weighted_backends(max_count: int, max_weight: int = 10, allow_zero: bool = False):
    low = 0 if allow_zero else 1
    return st.dictionaries(
        names, st.integers(low, max_weight), min_size=1, max_size=max_count
    ).filter(lambda backends: any(backends.values()))


@given(
    weighted_backends(48),
    st.sampled_from(PRIMES_LARGE),
    st.integers(0, 2**128 - 1),
    st.sampled_from(POPULATE_METHODS),
)
def test_share_of_slots_follows_share_of_weight(
    backends: dict[str, int], size: int, seed: int, method: str
) -> None:
    # The property: size > 100 x backends -> share within 1% (absolute) of weight share.
    table = build_table(backends, size=size, seed=seed, method=method)
    assert table.shape == (size,) and table.min() >= 0 and table.max() < len(backends)
    ordered = sorted(backends)
    counts = slot_counts(table, len(backends))
    total_weight = sum(backends.values())
    for index, name in enumerate(ordered):
        expected = size * backends[name] / total_weight
        assert abs(counts[index] / size - backends[name] / total_weight) <= 0.01, (
            name,
            counts[index],
            expected,
        )
        if method == "stable":
            # Quotas by the largest-remainder rule: exact to one slot.
            bound = 1.0
        else:
            # From the credit rule (maglev_py): each turn fills one slot and
            # after R rounds backend i has R*w_i/w_max turns, -1..+1; the N such
            # errors shift every backend's share by at most N*w_i/W slots.
            bound = 1 + len(backends) * backends[name] / total_weight + 1e-9
        assert abs(counts[index] - expected) <= bound, (name, counts[index], expected, bound)


# Removing one of N backends must move its 1/N of the slots; what moves beyond
# that is the cascade of re-claimed slots (paper s.5.3, Fig. 13).  With the
# paper's greedy fill the excess averages ~0.95% at N = 400 in 65537 slots and
# passes 1% for about 1 removal in 9 there; the stable fill (ranked rounds,
# maglev_py) keeps it at 0.36% on average for N = 20..600, at most 0.47% in
# 1,500 random (N, seed, removed) cases, so the bound of 1/N + 1% is a
# property over every seed there.  Below 20 backends the tail is longer: in
# 3,000 random cases for N = 3..19, 3 removals passed 1% (the worst by 0.38
# points: one backend's preference list loses most contests and ends up
# claiming the last free slots deep in its list, and that long claim shifts
# when any backend leaves).  The tail comes from the paper's arithmetic lists
# (offset + j * skip: two backends' ranks of a slot are linearly related): with
# the same rule on uniformly random permutations, 2,000 random cases for
# N = 3..19 moved at most 0.39% beyond 1/N.  Keeping the paper's offset/skip
# lists, for N < 20 the bound is asserted on fixed cases and the property over
# every seed carries a 2% margin.
# (Figures: python -m benchmarks balancer prints mean and worst of both fills.)
@pytest.mark.parametrize("count", [2, 3, 10, 50, 100, 1000])
@pytest.mark.parametrize("seed", [0, 1, 2**64 - 1])
def test_removing_one_of_n_moves_at_most_one_nth_plus_one_percent(count: int, seed: int) -> None:
    backends = {f"task-{index}": 1 for index in range(count)}
    before = build_table(backends, seed=seed)
    for removed in sorted(backends)[:: max(1, count // 3)][:3]:
        rest = {name: 1 for name in backends if name != removed}
        moved = disruption(before, sorted(backends), build_table(rest, seed=seed), sorted(rest))
        assert moved <= 1 / count + 0.01, (count, removed, moved)


def _moved_when_one_is_removed(count: int, seed: int, removed: str, method: str = "stable") -> float:
    backends = {f"task-{index}": 1 for index in range(count)}
    before = build_table(backends, seed=seed, method=method)
    rest = {name: weight for name, weight in backends.items() if name != removed}
    after = build_table(rest, seed=seed, method=method)
    moved = disruption(before, sorted(backends), after, sorted(rest))
    # The removed backend's slots must all move; nothing maps to it any more.
    assert moved >= slot_counts(before, count)[sorted(backends).index(removed)] / len(before)
    return moved


@settings(max_examples=25)
@given(st.integers(20, 600), st.integers(0, 2**64 - 1), st.data())
def test_removal_moves_at_most_one_nth_plus_one_percent_for_every_seed(
    count: int, seed: int, data
) -> None:
    removed = data.draw(st.sampled_from([f"task-{index}" for index in range(count)]), label="removed")
    moved = _moved_when_one_is_removed(count, seed, removed)
    assert moved <= 1 / count + 0.01, (count, moved)


@settings(max_examples=25)
@given(st.integers(2, 19), st.integers(0, 2**64 - 1), st.data())
def test_removal_from_few_backends_stays_near_one_nth(count: int, seed: int, data) -> None:
    removed = data.draw(st.sampled_from([f"task-{index}" for index in range(count)]), label="removed")
    moved = _moved_when_one_is_removed(count, seed, removed)
    assert moved <= 1 / count + 0.02, (count, moved)


def test_stable_fill_disrupts_less_than_the_papers_greedy_fill() -> None:
    # Same removals, both rules: the reason the stable rule is the default.
    stable, greedy = [], []
    for count, seed in [(50, 1), (150, 2), (400, 3), (400, 4)]:
        for removed in (f"task-{0}", f"task-{count // 2}"):
            stable.append(_moved_when_one_is_removed(count, seed, removed) - 1 / count)
            greedy.append(_moved_when_one_is_removed(count, seed, removed, "greedy") - 1 / count)
    assert sum(stable) < 0.7 * sum(greedy), (stable, greedy)
    assert max(stable) <= 0.01


def _ranks(offsets: np.ndarray, skips: np.ndarray, size: int) -> np.ndarray:
    """ranks[i, x]: position of slot x in backend i's preference list."""
    ranks = np.empty((len(offsets), size), dtype=np.int64)
    for index, (offset, skip) in enumerate(zip(offsets.tolist(), skips.tolist())):
        ranks[index, (offset + np.arange(size) * skip) % size] = np.arange(size)
    return ranks


@given(weighted_backends(12, max_weight=6, allow_zero=True), st.sampled_from(PRIMES_SMALL[2:]), st.integers(0, 2**64 - 1))
def test_stable_fill_has_no_blocking_pair(backends: dict[str, int], size: int, seed: int) -> None:
    # The defining property (Gale-Shapley stability with capacities): no backend
    # i and slot x such that i would rather have x than one of its own slots
    # and x ranks i above its owner.  Ties between equal ranks go to the lower index.
    names = sorted(backends)
    encoded = [name.encode() for name in names]
    weights = np.array([backends[name] for name in names], dtype=np.int64)
    table = maglev_py.populate(encoded, weights, size, seed, seed ^ 0x55)
    ranks = _ranks(*maglev_py.permutation_parameters(encoded, size, seed, seed ^ 0x55), size)
    quotas = maglev_py.quotas(weights.tolist(), size)
    assert slot_counts(table, len(names)).tolist() == quotas
    owner_rank = ranks[table, np.arange(size)]
    for index in range(len(names)):
        if quotas[index] == 0:
            continue
        worst_own = ranks[index][table == index].max()
        wanted = ranks[index] < worst_own
        beats_owner = (ranks[index] < owner_rank) | ((ranks[index] == owner_rank) & (index < table))
        assert not (wanted & beats_owner).any(), (index, np.flatnonzero(wanted & beats_owner)[:5])


def test_quotas_follow_the_largest_remainder_rule() -> None:
    assert maglev_py.quotas([1, 2, 1], 13) == [3, 7, 3]
    assert maglev_py.quotas([1, 1, 1], 13) == [5, 4, 4]
    assert maglev_py.quotas([0, 0], 13) == [0, 0]
    assert maglev_py.quotas([0, 5], 13) == [0, 13]
    big = [2**32 - 1, 1, 2**31]
    assert sum(maglev_py.quotas(big, (1 << 24) + 43)) == (1 << 24) + 43
    assert maglev_c.quotas(np.array(big, dtype=np.int64), (1 << 24) + 43).tolist() == maglev_py.quotas(
        big, (1 << 24) + 43
    )


def test_removing_one_of_a_thousand_backends_disrupts_little() -> None:
    backends = {f"task-{index:04d}": 1 for index in range(1000)}
    before = build_table(backends)
    for removed in ("task-0000", "task-0500", "task-0999"):
        rest = {name: 1 for name in backends if name != removed}
        moved = disruption(before, sorted(backends), build_table(rest), sorted(rest))
        assert moved <= 1 / 1000 + 0.01, (removed, moved)


@given(
    weighted_backends(20, allow_zero=True), st.sampled_from(PRIMES_SMALL[2:]), st.integers(0, 2**32)
)
def test_weight_zero_backend_is_invisible_in_the_table(
    backends: dict[str, int], size: int, seed: int
) -> None:
    # Draining (weight 0) earns no turn, so the table equals the one without it.
    active = {name: weight for name, weight in backends.items() if weight > 0}
    with_drained = np.array(sorted(backends), dtype=object)[
        build_table(backends, size=size, seed=seed)
    ]
    without = np.array(sorted(active), dtype=object)[build_table(active, size=size, seed=seed)]
    assert (with_drained == without).all()


@settings(max_examples=20)
@given(weighted_backends(6), st.sampled_from(PRIMES_SMALL[1:]), st.integers(0, 2**64 - 1))
def test_every_insertion_order_gives_the_same_table(
    backends: dict[str, int], size: int, seed: int
) -> None:
    reference = build_table(backends, size=size, seed=seed)
    for order in itertools.permutations(backends):
        assert (
            build_table({name: backends[name] for name in order}, size=size, seed=seed) == reference
        ).all()


@given(
    weighted_backends(16, max_weight=5, allow_zero=True),
    st.sampled_from(PRIMES_SMALL),
    st.integers(0, 2**128 - 1),
)
def test_cython_and_twin_agree_exactly(backends: dict[str, int], size: int, seed: int) -> None:
    encoded = [name.encode() for name in sorted(backends)]
    weights = np.array([backends[name] for name in sorted(backends)], dtype=np.int64)
    k0, k1 = seed & (2**64 - 1), seed >> 64
    offsets_c, skips_c = maglev_c.permutation_parameters(encoded, size, k0, k1)
    offsets_p, skips_p = maglev_py.permutation_parameters(encoded, size, k0, k1)
    assert (offsets_c == offsets_p).all() and (skips_c == skips_p).all()
    assert ((skips_c >= 1) & (skips_c <= max(1, size - 1)) & (offsets_c < size)).all()
    assert maglev_c.quotas(weights, size).tolist() == maglev_py.quotas(weights.tolist(), size)
    for rule in ("populate", "populate_greedy"):
        table_c = getattr(maglev_c, rule)(encoded, weights, size, k0, k1)
        table_p = getattr(maglev_py, rule)(encoded, weights, size, k0, k1)
        assert table_c.dtype == table_p.dtype == np.int32
        assert (table_c == table_p).all(), rule


@pytest.mark.parametrize(("count", "size"), [(9, 65537), (130, 10007), (1000, 10007), (1000, 65537)])
def test_cython_rounds_and_next_free_finish_agree_with_the_twin(count: int, size: int) -> None:
    # The C kernel stops the rounds when few backends still wait (one in eight,
    # at most 128) and finishes with next-free scans in (rank, index) order;
    # the twin runs rounds to the end.  Weighted, so quotas differ per backend.
    rng = np.random.default_rng(count + size)
    encoded = [f"svc-{index}".encode() for index in range(count)]
    weights = rng.integers(0, 7, count).astype(np.int64)
    weights[0] = 1
    k0, k1 = (int(word) for word in rng.integers(0, 2**63, 2, dtype=np.uint64))
    table_c = maglev_c.populate(encoded, weights, size, k0, k1)
    assert (table_c == maglev_py.populate(encoded, weights, size, k0, k1)).all()
    assert slot_counts(table_c, count).tolist() == maglev_py.quotas(weights.tolist(), size)


def test_thousand_backends_balance_within_one_percent() -> None:
    table = build_table({f"task-{index:04d}": 1 for index in range(1000)})
    assert balance(table, 1000) <= 1.01


_CHILD = """
import hashlib, json, sys
from dataplane.maglev import build_table
cases = json.loads(sys.argv[1])
print(json.dumps([hashlib.sha256(build_table(b, size=s, seed=seed).tobytes()).hexdigest() for b, s, seed in cases]))
"""


@pytest.mark.parametrize("pure", ["0", "1"])
def test_another_process_builds_the_same_tables(pure: str) -> None:
    cases = [
        ({"a": 1, "b": 1, "c": 1}, 65537 if pure == "0" else 1009, 0),
        ({f"svc.{index}": index % 4 + 1 for index in range(50)}, 5003, 2**100 + 7),
        ({"only": 3, "drained": 0}, 13, 42),
        ({"ünïcode-✓": 2, "x": 1}, 101, 1),
    ]
    expected = [
        hashlib.sha256(build_table(b, size=s, seed=seed).tobytes()).hexdigest()
        for b, s, seed in cases
    ]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    # A different PYTHONHASHSEED would change any use of hash(): the table must not care.
    env = {**os.environ, "PYTHONHASHSEED": "12345", "SHOAL_PURE": pure, "PYTHONPATH": root}
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(cases)],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        check=True,
        timeout=120,
    )
    assert json.loads(result.stdout) == expected


def test_known_table_is_stable() -> None:
    # Pins the hash and the population rule: changing either reshuffles every
    # flow of a rolling upgrade, so it must be a conscious decision.
    table = build_table({"a": 1, "b": 2, "c": 1}, size=13, seed=0)
    assert table.tolist() == [1, 1, 1, 0, 2, 0, 1, 0, 1, 2, 1, 1, 2]
    greedy = build_table({"a": 1, "b": 2, "c": 1}, size=13, seed=0, method="greedy")
    assert greedy.tolist() == [1, 0, 1, 0, 2, 1, 1, 0, 1, 2, 1, 1, 2]


@pytest.mark.parametrize(
    ("backends", "size", "seed", "error"),
    [
        ({}, 13, 0, EmptyBackendsError),
        ({"a": 0, "b": 0}, 13, 0, NoActiveBackendError),
        ({"a": -1}, 13, 0, WeightError),
        ({"a": 1.5}, 13, 0, WeightError),
        ({"a": True}, 13, 0, WeightError),
        ({"a": 2**32}, 13, 0, WeightError),
        ({"a": 1}, 12, 0, TableSizeError),
        ({"a": 1}, 65536, 0, TableSizeError),
        ({"a": 1}, 1, 0, TableSizeError),
        ({"a": 1}, 0, 0, TableSizeError),
        ({"a": 1}, -7, 0, TableSizeError),
        ({"a": 1}, 13.0, 0, TableSizeError),
        ({"a": 1}, 2**40 + 15, 0, TableSizeError),
        ({"": 1}, 13, 0, BackendNameError),
        ({3: 1}, 13, 0, BackendNameError),
        ({"x" * 300: 1}, 13, 0, BackendNameError),
        ({"a": 1}, 13, -1, SeedError),
        ({"a": 1}, 13, 2**128, SeedError),
        ([("a", 1)], 13, 0, MaglevError),
    ],
)
def test_bad_arguments_raise_typed_errors(backends, size, seed, error) -> None:
    with pytest.raises(error):
        build_table(backends, size=size, seed=seed)
    assert issubclass(error, ValueError)


def test_is_prime_matches_trial_division() -> None:
    for number in range(-3, 2000):
        assert is_prime(number) == (number >= 2 and all(number % d for d in range(2, number)))


@pytest.mark.parametrize("method", ["", "Stable", "paper", None, 1])
def test_unknown_population_method_is_a_typed_error(method) -> None:
    with pytest.raises(MaglevError, match="method"):
        build_table({"a": 1}, size=13, method=method)
