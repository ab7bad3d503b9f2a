"""Pure-Python twin of ``maglev_c``: Maglev table population, weights included.

Maglev (Eisenbud et al., NSDI 2016, s.3.4, Pseudocode 1): every backend i has a
preference list over the M slots, permutation[i][j] = (offset_i + j * skip_i)
mod M with offset = h1(name) mod M and skip = h2(name) mod (M - 1) + 1.  M is
prime, so every skip is coprime with M and each list visits every slot once.
Backends take turns; at its turn a backend claims its most preferred slot that
is still free, until the table is full.

Weights (the idea of Katran's MaglevHashV2, normalised to the largest weight):
each backend keeps a credit; every round it gains its weight, and whenever the
credit reaches the largest weight it takes one turn and pays that amount back.
So the heaviest backend takes a turn every round and a backend of weight w
takes w / w_max turns per round on average.  Each turn fills exactly one slot,
hence slots_i = M * w_i / sum(w) within about one slot.  Weight 0 never earns a
turn: a draining backend owns no slot and gets no new flows (connection
tracking keeps its existing ones).  With equal weights this is exactly the
paper's algorithm.
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


def populate(names: list[bytes], weights: np.ndarray, size: int, k0: int, k1: int) -> np.ndarray:
    """The Maglev table: int32 array of ``size`` indices into ``names`` (-1 if no weight)."""
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
