"""Bounded connection tracking keyed by the client-side 5-tuple.

``ConnTrack(capacity, ...)`` owns a fixed table of ``capacity`` entries of 32
bytes each (``memory_bytes`` = 32 * capacity; 65536 entries = 2 MiB) and never
grows.  Rules (states, timeouts, probe window, eviction) are written in
``dataplane/conntrack_py.py``, the twin of the Cython kernel ``conntrack_c``.
Time is always an argument (``now_ns`` on the caller's clock); nothing here
reads a clock.  The balancer drives the same table from its batch kernel.

Picks the Cython kernel unless ``SHOAL_PURE=1`` or the extension is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dataplane import conntrack_py
from dataplane.kernels import select_kernel
from dataplane.conntrack_py import COUNTER_NAMES, ENTRY_BYTES, STATE_NAMES, WORDS_PER_ENTRY
from dataplane.flowhash import split_seed

kernel = select_kernel("dataplane.conntrack_c", conntrack_py)

IMPLEMENTATION = "python" if kernel is conntrack_py else "cython"

CAPACITY_MAX = 1 << 26  # 2 GiB of entries: a bound, not a suggestion
PROBE_WINDOW_MAX = 64
VALUE_MAX = (1 << 56) - 1
TIME_MAX_NS = 1 << 62  # now + any timeout stays below 2**64
SECOND_NS = 1_000_000_000
CACHE_LINE_BYTES = 64


class ConnTrackError(ValueError):
    """Bad arguments to the connection tracker (capacity, window, timeouts, clock)."""


@dataclass(frozen=True)
class Timeouts:
    """Idle timeout per state, in nanoseconds of the injected clock.

    Defaults follow Linux IPVS (tcp 900 s, tcpfin 120 s, udp 300 s) with a
    short SYN_SENT (an unanswered SYN should not hold a slot for 15 minutes)
    and a TIME_WAIT-like 10 s for CLOSED.
    """

    syn_sent_ns: int = 60 * SECOND_NS
    established_ns: int = 900 * SECOND_NS
    fin_wait_ns: int = 120 * SECOND_NS
    closed_ns: int = 10 * SECOND_NS
    udp_ns: int = 300 * SECOND_NS

    def __post_init__(self) -> None:
        for name in ("syn_sent_ns", "established_ns", "fin_wait_ns", "closed_ns", "udp_ns"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not 1 <= value <= TIME_MAX_NS
            ):
                raise ConnTrackError(
                    f"timeout {name} must be an int in [1, 2**62] ns, got {value!r}"
                )

    def as_array(self) -> np.ndarray:
        """Indexed by state (FREE, SYN_SENT, ESTABLISHED, FIN_WAIT, CLOSED, UDP)."""
        return np.array(
            [
                0,
                self.syn_sent_ns,
                self.established_ns,
                self.fin_wait_ns,
                self.closed_ns,
                self.udp_ns,
            ],
            dtype=np.uint64,
        )


def check_now(now_ns: int) -> int:
    if (
        isinstance(now_ns, bool)
        or not isinstance(now_ns, (int, np.integer))
        or not 0 <= now_ns <= TIME_MAX_NS
    ):
        raise ConnTrackError(f"now_ns must be an int in [0, 2**62], got {now_ns!r}")
    return int(now_ns)


@dataclass(frozen=True)
class Entry:
    """One tracked flow, decoded (for tests, debugging and `shoal` inspection)."""

    protocol: int
    source_ip: int
    destination_ip: int
    source_port: int
    destination_port: int
    value: int
    state: str
    expires_ns: int


class ConnTrack:
    """A bounded table of tracked flows; see the module docstring for the rules."""

    def __init__(
        self, capacity: int, probe_window: int = 8, timeouts: Timeouts | None = None, seed: int = 0
    ) -> None:
        if (
            isinstance(capacity, bool)
            or not isinstance(capacity, int)
            or not 1 <= capacity <= CAPACITY_MAX
        ):
            raise ConnTrackError(
                f"capacity must be an int in [1, {CAPACITY_MAX}], got {capacity!r}"
            )
        if (
            isinstance(probe_window, bool)
            or not isinstance(probe_window, int)
            or not 1 <= probe_window <= PROBE_WINDOW_MAX
        ):
            raise ConnTrackError(
                f"probe_window must be an int in [1, {PROBE_WINDOW_MAX}], got {probe_window!r}"
            )
        self.capacity = capacity
        self.probe_window = min(probe_window, capacity)
        self.timeouts = timeouts if timeouts is not None else Timeouts()
        if not isinstance(self.timeouts, Timeouts):
            raise ConnTrackError(f"timeouts must be a Timeouts, got {type(self.timeouts).__name__}")
        self.timeouts_ns = self.timeouts.as_array()
        self.k0, self.k1 = split_seed(seed)
        # Written once now, not lazily mapped: the stated memory is really held,
        # and no page fault lands on the packet path when a flow first touches it.
        # Aligned to a cache line, so an entry (32 bytes) never straddles two.
        words = capacity * WORDS_PER_ENTRY
        raw = np.empty(words + CACHE_LINE_BYTES // 8, dtype=np.uint64)
        start = (-raw.ctypes.data % CACHE_LINE_BYTES) // 8
        self.table = raw[start : start + words]
        self.table.fill(0)
        self.counter_array = np.zeros(len(COUNTER_NAMES), dtype=np.uint64)

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the table: 32 per entry, fixed at creation."""
        return self.capacity * ENTRY_BYTES

    @property
    def occupied(self) -> int:
        """Entries in use (expired ones count until reclaimed or swept)."""
        return int(self.counter_array[conntrack_py.CT_OCCUPIED])

    @property
    def counters(self) -> dict[str, int]:
        return {name: int(value) for name, value in zip(COUNTER_NAMES, self.counter_array)}

    def track(
        self,
        protocol: int,
        source_ip: int,
        destination_ip: int,
        source_port: int,
        destination_port: int,
        tcp_flags: int,
        now_ns: int,
        value_if_new: int,
        is_reply: bool = False,
    ) -> tuple[int, str, bool]:
        """Observe a packet; return (value, state name, is_new).  See conntrack_py.track."""
        now_ns = check_now(now_ns)
        if not 0 <= value_if_new <= VALUE_MAX:
            raise ConnTrackError(f"value must be in [0, 2**56), got {value_if_new}")
        value, state, is_new = kernel.track(
            self.table,
            self.capacity,
            self.probe_window,
            self.timeouts_ns,
            self.counter_array,
            self.k0,
            self.k1,
            protocol & 0xFF,
            source_ip & 0xFFFFFFFF,
            destination_ip & 0xFFFFFFFF,
            source_port & 0xFFFF,
            destination_port & 0xFFFF,
            tcp_flags & 0xFF,
            bool(is_reply),
            now_ns,
            value_if_new,
        )
        return int(value), STATE_NAMES[state], bool(is_new)

    def sweep(self, now_ns: int) -> int:
        """Free every entry expired at ``now_ns``; return how many."""
        return int(kernel.sweep(self.table, self.capacity, check_now(now_ns), self.counter_array))

    def entries(self) -> list[Entry]:
        """Every occupied entry, decoded (O(capacity); not for the data path)."""
        words = self.table.reshape(self.capacity, WORDS_PER_ENTRY)
        found = []
        for addresses, ports, value, expires in words[words[:, 1] != 0].tolist():
            found.append(
                Entry(
                    protocol=(ports >> 8) & 0xFF,
                    source_ip=addresses >> 32,
                    destination_ip=addresses & 0xFFFFFFFF,
                    source_port=ports >> 48,
                    destination_port=(ports >> 32) & 0xFFFF,
                    value=value >> 8,
                    state=STATE_NAMES[value & 0xFF],
                    expires_ns=expires,
                )
            )
        return found

    def __repr__(self) -> str:
        return (
            f"ConnTrack(capacity={self.capacity}, occupied={self.occupied}, "
            f"probe_window={self.probe_window}, memory_bytes={self.memory_bytes})"
        )
