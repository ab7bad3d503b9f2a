"""The simulated network: per-link delay, loss, duplication, reordering and
partitions (symmetric or one-way).

A packet is what one node sends another at one virtual instant: each
Ready's messages for one destination, plus anything else the node sends
there at the same instant over a plain link (no loss, duplication or
reordering), like writes flushed together on one TCP connection.  On a
faulty link every send is its own packet, so loss, duplication and
reordering apply per send as configured.  Partitions are checked when a
packet is sent AND when it would be delivered, so cutting a link also drops
what was in flight on it.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterable, Optional

Address = int


@dataclass(frozen=True)
class LinkConfig:
    """Behaviour of one directed link.  Delay is uniform in
    [delay_us_min, delay_us_max]; with probability ``reorder`` a packet gets
    an extra delay up to ``reorder_delay_us`` (so later packets overtake it)."""

    delay_us_min: int = 500
    delay_us_max: int = 2_000
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_delay_us: int = 20_000

    def __post_init__(self) -> None:
        if not (0 <= self.delay_us_min <= self.delay_us_max):
            raise ValueError(f"need 0 <= delay_us_min <= delay_us_max, got {self.delay_us_min}, {self.delay_us_max}")
        for name in ("loss", "duplicate", "reorder"):
            value = getattr(self, name)
            if not (0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
        if self.reorder_delay_us < 0:
            raise ValueError("reorder_delay_us must be non-negative")
        # Derived, not fields (equality and repr stay the six knobs): a link
        # with no loss, duplication or reordering draws exactly one number per
        # packet, and the simulator takes that path inline (delays_us below
        # is the general case; both draw the same numbers in the same order).
        object.__setattr__(self, "plain", not (self.loss or self.duplicate or self.reorder))
        object.__setattr__(self, "delay_span_us", self.delay_us_max - self.delay_us_min + 1)


class Network:
    """Link table and partition state; the Simulation asks it for delays."""

    __slots__ = ("_default_link", "links", "blocked", "_rng", "random", "default_plain", "default_delay_us_min",
                 "default_delay_span_us", "packets_sent", "packets_dropped", "packets_duplicated",
                 "packets_coalesced")

    def __init__(self, rng: random.Random, default_link: Optional[LinkConfig] = None) -> None:
        self.default_link = default_link or LinkConfig()
        self.links: dict[tuple[Address, Address], LinkConfig] = {}
        self.blocked: set[tuple[Address, Address]] = set()
        self.rng = rng
        self.packets_sent = 0
        self.packets_dropped = 0
        self.packets_duplicated = 0
        # Sends that joined a packet already in flight (same instant, same
        # plain link; see Simulation._send_packet) instead of making a new one.
        self.packets_coalesced = 0

    # The simulator draws a packet's delay on every send (Simulation._send_packet):
    # with no per-link settings it reads the default link's knobs and the
    # generator's bound random() from these copies (C fields in the compiled
    # network), kept in step by the two setters.
    @property
    def default_link(self) -> LinkConfig:
        return self._default_link

    @default_link.setter
    def default_link(self, link: LinkConfig) -> None:
        self._default_link = link
        self.default_plain = link.plain
        self.default_delay_us_min = link.delay_us_min
        self.default_delay_span_us = link.delay_span_us

    @property
    def rng(self) -> random.Random:
        return self._rng

    @rng.setter
    def rng(self, rng: random.Random) -> None:
        self._rng = rng
        self.random = rng.random

    # -- configuration -------------------------------------------------------
    def set_link(self, src: Address, dst: Address, link: LinkConfig, both_ways: bool = True) -> None:
        self.links[(src, dst)] = link
        if both_ways:
            self.links[(dst, src)] = link

    def clear_links(self) -> None:
        self.links.clear()

    def block(self, src: Address, dst: Address) -> None:
        """One-way cut: packets from ``src`` to ``dst`` are dropped."""
        self.blocked.add((src, dst))

    def unblock(self, src: Address, dst: Address) -> None:
        self.blocked.discard((src, dst))

    def partition(self, groups: Iterable[Iterable[Address]], everyone: Iterable[Address]) -> None:
        """Symmetric partition: nodes talk only within their group; nodes of
        ``everyone`` named in no group form one more group."""
        group_of: dict[Address, int] = {}
        for position, group in enumerate(groups):
            for address in group:
                group_of[address] = position
        everyone = sorted(set(everyone))
        rest = len(group_of) + 1000
        for a in everyone:
            for b in everyone:
                if a != b and group_of.get(a, rest) != group_of.get(b, rest):
                    self.blocked.add((a, b))

    def isolate(self, node: Address, everyone: Iterable[Address]) -> None:
        for other in everyone:
            if other != node:
                self.blocked.add((node, other))
                self.blocked.add((other, node))

    def heal(self) -> None:
        self.blocked.clear()

    def connected(self, src: Address, dst: Address) -> bool:
        return (src, dst) not in self.blocked

    # -- per packet ----------------------------------------------------------
    def delays_us(self, src: Address, dst: Address) -> list[int]:
        """Delivery delays for one packet: [] if lost, two entries if duplicated."""
        self.packets_sent += 1
        if (src, dst) in self.blocked:
            self.packets_dropped += 1
            return []
        links = self.links
        link = links.get((src, dst), self.default_link) if links else self.default_link
        rng = self.rng
        if link.loss and rng.random() < link.loss:
            self.packets_dropped += 1
            return []
        # random() scaled by hand: randint() costs several times more and this
        # runs once per packet.
        low = link.delay_us_min
        delay = low + int(rng.random() * (link.delay_us_max - low + 1))
        if link.reorder and rng.random() < link.reorder:
            delay += int(rng.random() * (link.reorder_delay_us + 1))
        if link.duplicate and rng.random() < link.duplicate:
            self.packets_duplicated += 1
            return [delay, delay + int(rng.random() * (link.delay_us_max + 1))]
        return [delay]


# >>> compiled twin: the build cuts this block (consensus/_build_core_c.py)
from chaos.sim._select_c import swap_in  # noqa: E402

swap_in(globals(), "network")
# <<< compiled twin
