"""Packets on the simulated network: sends from one node to another at the
same virtual instant over a plain link travel as one packet (chaos/sim/
simulation.py _send_packet); faulty links keep one packet per send; the
fast path draws the same delays as Network.delays_us."""
from __future__ import annotations

import random
from typing import Any

from chaos.sim import MILLISECOND_US, LinkConfig, SimConfig, Simulation
from chaos.sim.network import Network

SENDER = 101
RECEIVER = 102


class Recorder:
    """A process that records (time, src, payload) for every item it gets."""

    received: dict[int, list[tuple[int, int, Any]]] = {}

    def __init__(self, address: int) -> None:
        self.address = address
        self.log: list[tuple[int, int, Any]] = []
        Recorder.received[address] = self.log

    def on_start(self, ctx: Any) -> None:
        return None

    def on_message(self, ctx: Any, src: int, payload: Any) -> None:
        self.log.append((ctx.now_us, src, payload))

    def on_tick(self, ctx: Any) -> None:
        return None


def two_processes(link: LinkConfig = LinkConfig(), seed: int = 1) -> Simulation:
    sim = Simulation(SimConfig(seed=seed, default_link=link, trace=True))
    sim.add_process(SENDER, Recorder)
    sim.add_process(RECEIVER, Recorder)
    return sim


def test_same_instant_sends_arrive_together_in_send_order() -> None:
    sim = two_processes()
    sender = sim.processes[SENDER]
    sender.send(RECEIVER, "a")
    sender.send(RECEIVER, "b")
    sender.send(RECEIVER, "c")
    assert (sim.network.packets_sent, sim.network.packets_coalesced) == (1, 2)
    sim.run_for(10 * MILLISECOND_US)
    log = Recorder.received[RECEIVER]
    assert [payload for _time, _src, payload in log] == ["a", "b", "c"]
    assert len({time_us for time_us, _src, _payload in log}) == 1
    arrival_us = log[0][0]
    link = LinkConfig()
    assert link.delay_us_min <= arrival_us <= link.delay_us_max
    # One delivery event, one "recv" in the trace, but every send is traced.
    assert [event[1] for event in sim.trace].count("send") == 3
    assert [event[1] for event in sim.trace].count("recv") == 1


def test_sends_at_different_instants_or_to_other_nodes_are_separate_packets() -> None:
    sim = two_processes()
    sim.add_process(103, Recorder)
    sender = sim.processes[SENDER]
    sender.send(RECEIVER, "a")
    sender.send(103, "b")                    # another destination: its own packet
    sim.processes[103].send(RECEIVER, "c")   # another source: its own packet
    sim.run_for(1)                           # a later instant
    sender.send(RECEIVER, "d")
    assert (sim.network.packets_sent, sim.network.packets_coalesced) == (4, 0)
    sim.run_for(10 * MILLISECOND_US)
    assert sorted(p for _t, _s, p in Recorder.received[RECEIVER]) == ["a", "c", "d"]


def test_faulty_links_keep_one_packet_per_send() -> None:
    for link in (LinkConfig(loss=0.01), LinkConfig(duplicate=0.01), LinkConfig(reorder=0.01)):
        sim = two_processes(link)
        for item in range(5):
            sim.processes[SENDER].send(RECEIVER, item)
        assert (sim.network.packets_sent, sim.network.packets_coalesced) == (5, 0), link


def test_zero_delay_links_are_not_coalesced() -> None:
    # A zero-delay packet may be delivered within the same instant, before a
    # later send of that instant could join it: such sends stay separate.
    sim = two_processes(LinkConfig(delay_us_min=0, delay_us_max=0))
    sim.processes[SENDER].send(RECEIVER, "a")
    sim.run_for(0)
    sim.processes[SENDER].send(RECEIVER, "b")
    sim.run_for(1)
    assert (sim.network.packets_sent, sim.network.packets_coalesced) == (2, 0)
    assert [p for _t, _s, p in Recorder.received[RECEIVER]] == ["a", "b"]


def test_a_cut_drops_the_whole_packet_in_flight() -> None:
    sim = two_processes()
    sim.processes[SENDER].send(RECEIVER, "a")
    sim.processes[SENDER].send(RECEIVER, "b")
    sim.block(SENDER, RECEIVER)
    sim.run_for(10 * MILLISECOND_US)
    assert Recorder.received[RECEIVER] == []
    sim.heal()
    sim.processes[SENDER].send(RECEIVER, "c")
    sim.run_for(10 * MILLISECOND_US)
    assert [p for _t, _s, p in Recorder.received[RECEIVER]] == ["c"]


def test_a_paused_receiver_handles_the_joined_packet_in_order_on_resume() -> None:
    sim = two_processes()
    sim.pause(RECEIVER)
    for item in ("a", "b"):
        sim.processes[SENDER].send(RECEIVER, item)
    sim.run_for(10 * MILLISECOND_US)
    assert Recorder.received[RECEIVER] == [] and len(sim.processes[RECEIVER].inbox) == 1
    sim.resume(RECEIVER)
    assert [p for _t, _s, p in Recorder.received[RECEIVER]] == ["a", "b"]


def test_packets_to_unknown_addresses_are_counted_undeliverable() -> None:
    sim = two_processes()
    sim.processes[SENDER].send(999, "lost")
    sim.processes[SENDER].send(999, "lost too")
    sim.run_for(10 * MILLISECOND_US)
    assert sim.undeliverable_packets == 1 and sim.network.packets_coalesced == 1


def test_plain_link_fast_path_draws_like_delays_us() -> None:
    # The simulator's inline draw for a plain link and Network.delays_us
    # consume the same numbers from the same generator.
    link = LinkConfig(delay_us_min=300, delay_us_max=4_000)
    assert link.plain and link.delay_span_us == 3_701
    inline_rng, general = random.Random(5), Network(random.Random(5), link)
    for _ in range(200):
        inline = link.delay_us_min + int(inline_rng.random() * link.delay_span_us)
        assert general.delays_us(1, 2) == [inline]
    assert not LinkConfig(loss=0.5).plain and not LinkConfig(reorder=0.1).plain


def test_raft_cluster_coalesces_and_stays_deterministic() -> None:
    def run(seed: int) -> Simulation:
        sim = Simulation(SimConfig(seed=seed, trace=True))
        sim.add_cluster(3)
        sim.run_until(lambda s: s.leader() is not None, 10_000 * MILLISECOND_US)
        tick_us = sim.config.tick_interval_us
        sim.run_until_time((sim.now_us // tick_us + 1) * tick_us)  # on the tick grid
        for step in range(30):
            leader = sim.leader()
            if leader is not None:
                # Proposals at the tick instant share packets with the heartbeats.
                sim.propose(leader, b'{"op": "put", "k": "k", "v": %d}' % step)
            sim.run_for(tick_us)
        return sim

    first, again = run(21), run(21)
    assert first.trace_digest() == again.trace_digest()
    assert first.network.packets_coalesced > 0
    assert first.managers[1].raft.log.committed >= 30


def test_network_keeps_the_default_link_and_generator_copies_in_step() -> None:
    # _send_packet reads the default link's knobs and rng.random from copies
    # on the Network (C fields when compiled); the setters keep them current.
    network = Network(random.Random(1))
    assert network.default_plain and network.default_delay_us_min == 500 and network.default_delay_span_us == 1_501
    network.default_link = LinkConfig(delay_us_min=7_000, delay_us_max=7_009)
    assert (network.default_plain, network.default_delay_us_min, network.default_delay_span_us) == (True, 7_000, 10)
    network.default_link = LinkConfig(loss=0.5)
    assert not network.default_plain and network.default_link == LinkConfig(loss=0.5)
    network.rng = random.Random(9)
    assert network.random() == random.Random(9).random()


def test_a_new_default_link_applies_to_the_next_packet() -> None:
    sim = two_processes(LinkConfig(delay_us_min=1_000, delay_us_max=1_000))
    sim.hosts[SENDER].send(RECEIVER, "before")
    sim.run_for(10 * MILLISECOND_US)
    sim.set_default_link(LinkConfig(delay_us_min=5_000, delay_us_max=5_000))
    sent_us = sim.now_us
    sim.hosts[SENDER].send(RECEIVER, "after")
    sim.run_for(10 * MILLISECOND_US)
    assert [(time_us, payload) for time_us, _src, payload in Recorder.received[RECEIVER]] == [
        (1_000, "before"), (sent_us + 5_000, "after")]
