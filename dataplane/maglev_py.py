"""Pure-Python twin of ``maglev_c``: Maglev table population, weights included.

Maglev (Eisenbud et al., NSDI 2016, s.3.4, Pseudocode 1): every backend i has a
preference list over the M slots, permutation[i][j] = (offset_i + j * skip_i)
mod M with offset = h1(name) mod M and skip = h2(name) mod (M - 1) + 1.  M is
prime, so every skip is coprime with M and each list visits every slot once.

Two ways to fill the table from those lists are here:

``populate`` (the default, "stable"): each backend first gets a quota of slots,
M * w_i / sum(w) rounded by the largest-remainder rule (ties to the lower
index), so shares are exact to one slot.  Then the table fills in rounds of
preference rank: in round j every backend that still needs slots asks for the
j-th slot of its list and takes it if it is free (lower index first within a
round).  A backend whose j-th slot is taken does not scan ahead for a free one,
as Pseudocode 1 does; it waits for round j + 1.  The result is the unique
stable assignment where a slot goes to the backend that ranks it highest
(Gale and Shapley 1962, with capacities; both sides ranked by the same j): no
backend and slot would both rather be matched to each other.  Why: in
Pseudocode 1 a backend that finds its next choice taken claims a slot deep in
its list, which in the old table belonged to a third backend, and that third
backend in turn claims another's slot; removing one of N backends therefore
moved 1/N plus about 0.95% of the slots in 65537 at N = 400, more than 1% for
1 removal in 9 there.  Ranked rounds keep such chains short: the excess is
0.36% on average for N = 20..600 and at most 0.47% in 1,500 random cases
(tests/dataplane/test_maglev.py gives the figures for fewer backends).
The work is about the same: one probe per (backend, rank) pair tried
(about 0.61 million for 1000 backends against 0.65 million for Pseudocode 1).

``populate_greedy`` (the paper's Pseudocode 1, kept for comparison): backends
take turns; at its turn a backend claims its most preferred slot that is still
free, until the table is full.  Weights follow Katran's MaglevHashV2 idea,
normalised to the largest weight: each backend keeps a credit; every round it
gains its weight, and whenever the credit reaches the largest weight it takes
one turn and pays that amount back, so slots_i = M * w_i / sum(w) within about
one slot.

In both, weight 0 earns no slot: a draining backend gets no new flows
(connection tracking keeps its existing ones).
"""

from __future__ import annotations

import numpy as np

SKIP_KEY_TWEAK = 0x9E3779B97F4A7C15


def permutation_parameters(
    names: list[bytes], size: int, k0: int, k1: int
) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, skips) of each name: offset = h1 mod M, skip = h2 mod (M-1) + 1."""
    from dataplane.flowhash_py import siphash24

    offsets = np.empty(len(names), dtype=np.uint32)
    skips = np.empty(len(names), dtype=np.uint32)
    for index, name in enumerate(names):
        offsets[index] = siphash24(k0, k1, name) % size
        if size > 1:
            skips[index] = (
                siphash24(k0 ^ SKIP_KEY_TWEAK, k1 ^ SKIP_KEY_TWEAK, name) % (size - 1) + 1
            )
        else:
            skips[index] = 1
    return offsets, skips


def quotas(weights: list[int], size: int) -> list[int]:
    """Slots per backend: size * w_i / sum(w), the remainder slots to the
    largest fractional parts (Hamilton's rule), ties to the lower index."""
    total = sum(weights)
    if total == 0:
        return [0] * len(weights)
    shares = [divmod(size * weight, total) for weight in weights]
    result = [whole for whole, _ in shares]
    left = size - sum(result)
    by_remainder = sorted(range(len(weights)), key=lambda index: (-shares[index][1], index))
    for index in by_remainder[:left]:
        result[index] += 1
    return result


def populate(names: list[bytes], weights: np.ndarray, size: int, k0: int, k1: int) -> np.ndarray:
    """The stable Maglev table (module docstring): int32 array of ``size``
    indices into ``names``, all -1 if every weight is 0."""
    if len(weights) != len(names):
        raise ValueError("populate: one weight per name")
    offsets, skips = permutation_parameters(names, size, k0, k1)
    needs = quotas([int(weight) for weight in weights], size)
    table = [-1] * size
    positions = [int(offset) for offset in offsets]
    skip_list = [int(skip) for skip in skips]
    waiting = [index for index, need in enumerate(needs) if need > 0]
    while waiting:
        # One round of preference rank j: every waiting backend asks for its
        # j-th slot, in index order.
        still_waiting = []
        for index in waiting:
            slot = positions[index]
            if table[slot] < 0:
                table[slot] = index
                needs[index] -= 1
            slot += skip_list[index]
            if slot >= size:
                slot -= size
            positions[index] = slot
            if needs[index]:
                still_waiting.append(index)
        waiting = still_waiting
    return np.array(table, dtype=np.int32)


def populate_greedy(names: list[bytes], weights: np.ndarray, size: int, k0: int, k1: int) -> np.ndarray:
    """The paper's Pseudocode 1 with credit weights: int32 array of ``size``
    indices into ``names`` (-1 if no weight)."""
    if len(weights) != len(names):
        raise ValueError("populate: one weight per name")
    offsets, skips = permutation_parameters(names, size, k0, k1)
    table = [-1] * size
    weight_list = [int(weight) for weight in weights]
    weight_max = max(weight_list, default=0)
    if weight_max == 0:
        return np.full(size, -1, dtype=np.int32)
    positions = [int(offset) for offset in offsets]
    skip_list = [int(skip) for skip in skips]
    credits = [0] * len(names)
    filled = 0
    while True:
        for index, weight in enumerate(weight_list):
            credits[index] += weight
            if credits[index] < weight_max:
                continue
            credits[index] -= weight_max
            slot = positions[index]
            skip = skip_list[index]
            while table[slot] >= 0:
                slot += skip
                if slot >= size:
                    slot -= size
            table[slot] = index
            slot += skip
            if slot >= size:
                slot -= size
            positions[index] = slot
            filled += 1
            if filled == size:
                return np.array(table, dtype=np.int32)
