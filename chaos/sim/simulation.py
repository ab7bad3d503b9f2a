"""The deterministic simulation: virtual time, an event heap, the network,
managers and processes, faults, clients, observers and the trace.

Determinism: one thread; events are ordered by (time_us, sequence number)
so ties break in scheduling order; every random choice comes from a
generator derived from ``SimConfig.seed`` (chaos/sim/rng.py).  The same seed
and code give the same trace, byte for byte (``trace_digest()``).
"""
from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Sequence, Union

from consensus.read_only import ReadOnlyOption
from consensus.types import ConfChange, ConfState, Message, StateRole

from chaos.sim.app import Application, KVApp
from chaos.sim.client import FAIL, TIMEOUT, ClientOp, ClientResult, DeferredCall
# Classes only (see chaos/sim/_host_c.pxd: the compiled host module may still
# be initialising when the compiled copy of this one runs).
from chaos.sim.host import ManagerHost, ProcessHost
from chaos.sim.network import LinkConfig, Network
from chaos.sim.rng import derive_rng

if TYPE_CHECKING:
    from chaos.sim.host import SimProcess

Host = Union[ManagerHost, ProcessHost]

SECOND_US = 1_000_000
MILLISECOND_US = 1_000


@dataclass
class SimConfig:
    """Knobs of one simulated run.  Times are virtual microseconds."""

    seed: int = 0
    tick_interval_us: int = 100 * MILLISECOND_US
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    pre_vote: bool = True
    check_quorum: bool = True
    read_only_option: ReadOnlyOption = ReadOnlyOption.SAFE
    fsync_latency_us: int = 1 * MILLISECOND_US
    default_link: LinkConfig = field(default_factory=LinkConfig)
    client_timeout_us: int = 2 * SECOND_US
    snapshot_every_entries: int = 0  # 0: never snapshot
    snapshot_keep_entries: int = 5
    # Extra consensus.raft.Config fields (e.g. unsafe_skip_figure8_commit_rule=True,
    # max_uncommitted_entries_bytes=...).
    raft_overrides: dict[str, Any] = field(default_factory=dict)
    trace: bool = True
    # Safety bound: a run never executes more events than this.
    events_max: int = 50_000_000


class Simulation:
    """See chaos/sim/__init__.py for the tour."""

    def __init__(self, config: SimConfig, app_factory: Optional[Callable[[int], Application]] = None) -> None:
        self.config = config
        self.seed = config.seed
        self.app_factory: Callable[[int], Application] = app_factory or (lambda node_id: KVApp())
        self.now_us = 0
        self._heap: list[tuple[int, int, Callable[[Any, Any], None], Any, Any]] = []
        self._sequence = 0
        self.events_run = 0
        self.network = Network(derive_rng(config.seed, "network"), config.default_link)
        # The network's link table and cut set, read on every packet: the
        # Network only ever mutates them in place (set/clear, add/clear).
        self.hosts: dict[int, Host] = {}
        # address -> that host's bound receive method, the plain-link packet's
        # event (hosts are never removed; one bound method per host, not per packet)
        self._receivers: dict[int, Callable[[int, Sequence[Any]], None]] = {}
        self.managers: dict[int, ManagerHost] = {}
        self.processes: dict[int, ProcessHost] = {}
        self.trace: list[tuple] = []
        self._trace_on = config.trace
        self._op_counter = 0
        self.client_rng = derive_rng(config.seed, "client")
        self.fault_rng = derive_rng(config.seed, "faults")
        self._observers: list[Any] = []
        self._step_observers: list[Any] = []
        self._ready_observers: list[Any] = []
        self._apply_observers: list[Any] = []
        self.undeliverable_packets = 0
        # Client timeouts live in their own heap, swept by a few events rather
        # than one event per operation (most operations finish long before).
        self._timeouts: list[tuple[int, int, ClientOp]] = []
        # Ticks run on a grid: every host whose tick interval is I ticks at the
        # multiples of I, all in one event (in address order), so a cluster
        # costs one tick event per interval, not one per node.
        self._tick_groups: dict[int, dict[int, Host]] = {}
        # interval -> the sorted node ids of its group
        self._tick_orders: dict[int, tuple[int, ...]] = {}
        self._sweeps_scheduled: set[int] = set()
        self._sweep_first_us = 0  # min(_sweeps_scheduled) while it is not empty
        # Packets sent at _open_packets_us on plain links, by (src, dst): later
        # sends of the same instant join them (see _send_packet).
        self._open_packets: dict[tuple[int, int], list[Any]] = {}
        self._open_packets_us = -1

    # ------------------------------------------------------------ building
    def add_manager(self, node_id: int, initial_voters: Iterable[int] = (), initial_learners: Iterable[int] = ()) -> ManagerHost:
        """Add a Raft manager.  For the founding members pass the founding
        ``initial_voters`` (and learners); a node that joins later gets none
        and waits to be added by a conf change."""
        if node_id <= 0 or node_id in self.hosts:
            raise ValueError(f"node id {node_id} must be positive and unused")
        voters = tuple(sorted(initial_voters))
        conf = ConfState(voters, tuple(sorted(initial_learners))) if voters else None
        host = ManagerHost(self, node_id, conf)
        self.hosts[node_id] = host
        self._receivers[node_id] = host.receive
        self.managers[node_id] = host
        return host

    def add_cluster(self, voter_count: int, learner_count: int = 0) -> list[int]:
        """Convenience: managers 1..voter_count (+ learners), started."""
        voters = list(range(1, voter_count + 1))
        learners = list(range(voter_count + 1, voter_count + learner_count + 1))
        for node_id in voters + learners:
            self.add_manager(node_id, voters, learners)
        for node_id in voters + learners:
            self.managers[node_id].start()
        return voters + learners

    def add_process(self, address: int, factory: Callable[[int], SimProcess], start: bool = True) -> ProcessHost:
        """Add a non-Raft process (a worker) at ``address`` (not a manager id)."""
        if address <= 0 or address in self.hosts:
            raise ValueError(f"address {address} must be positive and unused")
        host = ProcessHost(self, address, factory)
        self.hosts[address] = host
        self._receivers[address] = host.receive
        self.processes[address] = host
        if start:
            host.start()
        return host

    def add_observer(self, observer: Any) -> None:
        """Register an observer; it may define any of after_step(sim),
        on_ready(sim, host, ready), on_apply(sim, host, entries),
        on_crash(sim, host), on_restart(sim, host)."""
        self._observers.append(observer)
        if hasattr(observer, "after_step"):
            self._step_observers.append(observer)
        if hasattr(observer, "on_ready"):
            self._ready_observers.append(observer)
        if hasattr(observer, "on_apply"):
            self._apply_observers.append(observer)

    # ---------------------------------------------------------- event loop
    def _schedule(self, delay_us: int, fn: Callable[[Any, Any], None], a: Any, b: Any) -> None:
        self._sequence += 1
        _push_event(self._heap, (self.now_us + delay_us, self._sequence, fn, a, b))

    def _join_ticks(self, host: Host) -> None:
        interval = host.tick_interval_us
        group = self._tick_groups.get(interval)
        if group is None:
            group = self._tick_groups[interval] = {}
            next_us = (self.now_us // interval + 1) * interval
            self._schedule(next_us - self.now_us, self._tick_group, interval, None)
        group[host.node_id] = host
        self._tick_orders[interval] = tuple(sorted(group))

    def _leave_ticks(self, host: Host) -> None:
        group = self._tick_groups.get(host.tick_interval_us)
        if group is not None:
            group.pop(host.node_id, None)
            self._tick_orders[host.tick_interval_us] = tuple(sorted(group))

    def _tick_group(self, interval: int, _unused: Any) -> None:
        group = self._tick_groups.get(interval)
        if not group:
            self._tick_groups.pop(interval, None)
            self._tick_orders.pop(interval, None)
            return
        self._schedule(interval, self._tick_group, interval, None)
        # The order as of now (a tuple: joins and leaves during this loop
        # replace it, not change it); a host that left meanwhile is skipped.
        for node_id in self._tick_orders[interval]:
            host = group.get(node_id)
            if host is not None:
                host.tick_now()

    def schedule(self, delay_us: int, callback: Callable[[], None]) -> None:
        """Run ``callback()`` at now + delay_us (fault schedules, workloads)."""
        if delay_us < 0:
            raise ValueError("cannot schedule in the past")
        self._schedule(delay_us, _call, callback, None)

    def schedule_at(self, at_us: int, callback: Callable[[], None]) -> None:
        self.schedule(max(0, at_us - self.now_us), callback)

    def step(self) -> bool:
        """Run one event; False when nothing is left to do."""
        if not self._heap:
            return False
        time_us, _sequence, fn, a, b = _pop_event(self._heap)
        self.now_us = time_us
        self.events_run += 1
        fn(a, b)
        if self._step_observers:
            for observer in self._step_observers:
                observer.after_step(self)
        return True

    def run_until_time(self, end_us: int) -> None:
        # step() inlined: this loop runs every event of a run, and the method
        # call plus attribute lookups were a measurable share of an event.
        # The event count lives in a local and is stored back on the way out
        # (also when an event raises), so nothing reads a stale events_run
        # after the loop; events themselves do not read it.
        heap = self._heap
        limit = self.config.events_max
        step_observers = self._step_observers  # mutated in place by add_observer
        events_run = self.events_run
        try:
            while heap and heap[0][0] <= end_us:
                if events_run >= limit:
                    raise RuntimeError(f"event budget of {limit} exhausted at {self.now_us} us")
                time_us, _sequence, fn, a, b = _pop_event(heap)
                self.now_us = time_us
                events_run += 1
                if step_observers:
                    self.events_run = events_run
                    fn(a, b)
                    for observer in step_observers:
                        observer.after_step(self)
                else:
                    fn(a, b)
        finally:
            self.events_run = events_run
        if self.now_us < end_us:
            self.now_us = end_us

    def run_for(self, duration_us: int) -> None:
        self.run_until_time(self.now_us + duration_us)

    def run_until(self, predicate: Callable[["Simulation"], bool], timeout_us: int, check_every_us: int = 10_000) -> bool:
        """Run until ``predicate(sim)`` holds (checked every ``check_every_us``)
        or ``timeout_us`` passes; returns whether it held."""
        end = self.now_us + timeout_us
        while self.now_us < end:
            if predicate(self):
                return True
            self.run_until_time(min(end, self.now_us + check_every_us))
        return predicate(self)

    # ------------------------------------------------------------- network
    def _send_packet(self, src: int, dst: int, items: Sequence[Any]) -> None:
        # Once per send: the schedule and the plain-link delay draw are inlined
        # (same heap entries as _schedule, same random draws as
        # Network.delays_us).
        #
        # Sends from src to dst at the same virtual instant over a plain link
        # (no loss, duplication or reordering) travel as ONE packet, like
        # writes on one TCP connection flushed together: the later items join
        # the packet already in flight (it cannot have arrived: its delay is
        # positive).  Each item still sees a delay drawn from the link's
        # uniform range; items sent together arrive together, in send order.
        # Faulty links keep one packet per send, so their per-packet loss,
        # duplication and reordering apply to every send as configured.
        now = self.now_us
        if self._trace_on:
            self._trace_send(now, src, dst, items)
        network = self.network
        route = (src, dst)
        links = network.links
        if links:
            link = links.get(route, network.default_link)
            plain = link.plain
            delay_us_min = link.delay_us_min
            delay_span_us = link.delay_span_us
        else:  # the common case: the default link's knobs, copied on the network
            plain = network.default_plain
            delay_us_min = network.default_delay_us_min
            delay_span_us = network.default_delay_span_us
        blocked = network.blocked
        if not plain or (blocked and route in blocked):
            for delay in network.delays_us(src, dst):
                self._sequence += 1
                _push_event(self._heap, (now + delay, self._sequence, self._deliver, route, items))
            return
        open_packets = self._open_packets
        if self._open_packets_us == now:
            packet = open_packets.get(route)
            if packet is not None:
                packet.extend(items)
                network.packets_coalesced += 1
                return
        else:
            self._open_packets_us = now
            open_packets = self._open_packets = {}
        network.packets_sent += 1
        # random() scaled by hand: randint() costs several times more.
        draw = network.random()
        delay = int(draw * delay_span_us)  # C arithmetic when compiled (typed locals)
        delay += delay_us_min
        packet = list(items)
        if delay:  # a zero-delay packet may arrive within this instant: nothing joins it
            open_packets[route] = packet
        self._sequence = sequence = self._sequence + 1
        receive = self._receivers.get(dst)
        if receive is not None:
            # Straight to the receiving host (hosts are never removed, so
            # looking it up now or at delivery is the same).
            _push_event(self._heap, (now + delay, sequence, receive, src, packet))
        else:
            _push_event(self._heap, (now + delay, sequence, self._deliver, route, packet))

    def _trace_send(self, now: int, src: int, dst: int, items: Sequence[Any]) -> None:
        # Each Message described by its type, term, index, entry count, commit and reject.
        described = []
        for item in items:
            if isinstance(item, Message):
                described.append(
                    (int(item.type), item.term, item.index, len(item.entries), item.commit, item.reject)
                )
            else:
                described.append(type(item).__name__)
        self.trace.append((now, "send", src, dst, tuple(described)))

    def _deliver(self, route: tuple[int, int], items: Sequence[Any]) -> None:
        """A packet arrives (the general path; plain links schedule
        ``host.receive`` directly, which does the same)."""
        host = self.hosts.get(route[1])
        if host is None:
            if route not in self.network.blocked:
                self.undeliverable_packets += 1
            return
        host.receive(route[0], items)

    def partition(self, *groups: Iterable[int]) -> None:
        """Symmetric partition into ``groups`` (nodes in none form another)."""
        groups = [sorted(group) for group in groups]
        self.network.partition(groups, self.hosts)
        self._trace_event("partition", tuple(tuple(g) for g in groups))

    def isolate(self, node_id: int) -> None:
        self.network.isolate(node_id, self.hosts)
        self._trace_event("isolate", node_id)

    def block(self, src: int, dst: int) -> None:
        """One-way cut from ``src`` to ``dst``."""
        self.network.block(src, dst)
        self._trace_event("block", src, dst)

    def heal(self) -> None:
        self.network.heal()
        self._trace_event("heal")

    def set_link(self, src: int, dst: int, link: LinkConfig, both_ways: bool = True) -> None:
        self.network.set_link(src, dst, link, both_ways)
        self._trace_event("link", src, dst, repr(link))

    def set_default_link(self, link: LinkConfig) -> None:
        self.network.default_link = link
        self._trace_event("default_link", repr(link))

    # -------------------------------------------------------------- faults
    def crash(self, node_id: int, lose_unsynced: bool = False) -> None:
        """Kill a node: volatile state lost; durable storage kept; with
        ``lose_unsynced`` the writes not yet fsynced are lost too."""
        host = self.hosts[node_id]
        was_alive = host.alive
        host.crash(lose_unsynced)
        self._trace_event("crash", node_id, lose_unsynced)
        if was_alive:
            for observer in self._observers:
                if hasattr(observer, "on_crash"):
                    observer.on_crash(self, host)

    def restart(self, node_id: int) -> None:
        host = self.hosts[node_id]
        if host.alive:
            return
        host.start()
        self._trace_event("restart", node_id)
        for observer in self._observers:
            if hasattr(observer, "on_restart"):
                observer.on_restart(self, host)

    def pause(self, node_id: int) -> None:
        self.hosts[node_id].pause()
        self._trace_event("pause", node_id)

    def resume(self, node_id: int) -> None:
        self._trace_event("resume", node_id)
        self.hosts[node_id].resume()

    def set_clock_drift(self, node_id: int, rate: float) -> None:
        """Run the node's ticks ``rate`` times as fast as the base tick
        (1.0 = nominal, 1.1 = its clock runs 10 % fast)."""
        if not (0.1 <= rate <= 10.0):
            raise ValueError(f"clock rate {rate} outside [0.1, 10]")
        host = self.hosts[node_id]
        alive = host.alive
        if alive:
            self._leave_ticks(host)
        host.tick_interval_us = max(1, round(self.config.tick_interval_us / rate))
        if alive:
            self._join_ticks(host)
        self._trace_event("drift", node_id, repr(rate))

    # ------------------------------------------------------------- clients
    def _new_op(self, kind: str, node_id: int, payload: Any, callback: Optional[Callable[[ClientResult], None]],
                timeout_us: Optional[int]) -> ClientOp:
        self._op_counter += 1
        timeout = self.config.client_timeout_us if timeout_us is None else timeout_us
        if timeout < 0:
            raise ValueError("timeout_us must be non-negative")
        deadline = self.now_us + timeout
        op = ClientOp(self._op_counter, kind, node_id, payload, callback, self.now_us, deadline)
        heapq.heappush(self._timeouts, (deadline, op.op_id, op))
        if not self._sweeps_scheduled or deadline < self._sweep_first_us:
            self._schedule_sweep(deadline)
        return op

    def _schedule_sweep(self, at_us: int) -> None:
        if at_us not in self._sweeps_scheduled:
            self._sweeps_scheduled.add(at_us)
            if len(self._sweeps_scheduled) == 1 or at_us < self._sweep_first_us:
                self._sweep_first_us = at_us
            self._schedule(at_us - self.now_us, self._sweep_timeouts, at_us, None)

    def _sweep_timeouts(self, at_us: int, _unused: Any) -> None:
        sweeps = self._sweeps_scheduled
        sweeps.discard(at_us)
        if sweeps and at_us == self._sweep_first_us:
            self._sweep_first_us = min(sweeps)
        heap = self._timeouts
        now = self.now_us
        while heap and (heap[0][0] <= now or heap[0][2].done):
            _deadline, _op_id, op = heapq.heappop(heap)
            if not op.done:
                op.complete(now, TIMEOUT, None, error="timed out: outcome unknown")
                self._trace_event("client", op.op_id, TIMEOUT)
        if heap:
            self._schedule_sweep(heap[0][0])

    def _client_target(self, op: ClientOp) -> Optional[ManagerHost]:
        host = self.managers.get(op.node)
        if host is None or not host.alive:
            op.complete(self.now_us, FAIL, None, error=f"node {op.node} is down")
            return None
        return host

    def propose(self, node_id: int, data: bytes, callback: Optional[Callable[[ClientResult], None]] = None,
                timeout_us: Optional[int] = None) -> ClientOp:
        """A client asks manager ``node_id`` to replicate ``data``; the result
        (ok with the application's apply() result / fail / timeout) goes to
        ``callback`` and is kept on the returned ClientOp."""
        op = self._new_op("propose", node_id, data, callback, timeout_us)
        if self._trace_on:
            self.trace.append((self.now_us, "client_propose", op.op_id, node_id))
        host = self._client_target(op)
        if host is not None:
            if host.paused:  # _client_call's test, inlined for the common case
                self._client_call(host, lambda: host.client_propose(op, data))
            else:
                host.client_propose(op, data)
        return op

    def read(self, node_id: int, query: Any, callback: Optional[Callable[[ClientResult], None]] = None,
             timeout_us: Optional[int] = None) -> ClientOp:
        """A linearizable read through ReadIndex at manager ``node_id``;
        ok carries ``app.read(query)``."""
        op = self._new_op("read", node_id, query, callback, timeout_us)
        if self._trace_on:
            self.trace.append((self.now_us, "client_read", op.op_id, node_id))
        host = self._client_target(op)
        if host is not None:
            if host.paused:
                self._client_call(host, lambda: host.client_read(op, query))
            else:
                host.client_read(op, query)
        return op

    def conf_change(self, node_id: int, change: ConfChange, callback: Optional[Callable[[ClientResult], None]] = None,
                    timeout_us: Optional[int] = None) -> ClientOp:
        """Propose a membership change at (leader) ``node_id``; ok carries the new ConfState."""
        op = self._new_op("conf_change", node_id, change, callback, timeout_us)
        self._trace_event("client_conf", op.op_id, node_id, int(change.type), change.node_id)
        host = self._client_target(op)
        if host is not None:
            self._client_call(host, lambda: host.client_propose(op, b"", conf_change=change))
        return op

    def _client_call(self, host: ManagerHost, call: Callable[[], None]) -> None:
        # A paused server holds the request in its socket buffer.
        if host.paused:
            host.inbox.append((0, [DeferredCall(call)]))
        else:
            call()

    def transfer_leadership(self, node_id: int, target: int) -> bool:
        host = self.managers.get(node_id)
        self._trace_event("transfer", node_id, target)
        if host is None or not host.alive or host.paused or host.raft is None:
            return False
        try:
            host.raft.transfer_leadership(target)
        except Exception:  # NotLeader with no leader known
            return False
        host.drain()
        return True

    # --------------------------------------------------------------- views
    def leader(self) -> Optional[int]:
        """The live leader with the highest term, if any."""
        best: Optional[tuple[int, int]] = None
        for node_id, host in self.managers.items():
            raft = host.raft
            if host.alive and raft is not None and raft.role == StateRole.LEADER:
                if best is None or raft.term > best[0]:
                    best = (raft.term, node_id)
        return best[1] if best else None

    def live_managers(self) -> list[int]:
        return [node_id for node_id, host in sorted(self.managers.items()) if host.alive]

    # --------------------------------------------------------------- trace
    def _trace_event(self, kind: str, *fields: Any) -> None:
        if self._trace_on:
            self.trace.append((self.now_us, kind) + fields)

    def trace_digest(self) -> str:
        """SHA-256 of the whole trace (repr of each event, one a line)."""
        digest = hashlib.sha256()
        for event in self.trace:
            digest.update(repr(event).encode("utf-8"))
            digest.update(b"\n")
        return digest.hexdigest()

    def trace_lines(self) -> list[str]:
        return [repr(event) for event in self.trace]


# True in the compiled copy of this module (chaos.sim._simulation_c, built by
# consensus/_build_core_c.py).
_COMPILED = __name__.endswith("_c")


# The event heap: entries (time_us, sequence, fn, a, b) ordered by their
# first two items, which no two entries share (sequence numbers are unique),
# so every correct binary heap pops them in the same order as heapq.  The pure
# twin uses heapq itself (C); the compiled copy sifts with the two keys as C
# integers (chaos/sim/_simulation_c.pxd), skipping heapq's generic tuple
# comparisons (chaos bench, callgrind: heapq ~0.26M instructions per simulated
# second, these sift loops ~0.1M).
def _push_event(heap: list, entry: tuple) -> None:
    if _COMPILED:
        _sift_push(heap, entry)
    else:
        heapq.heappush(heap, entry)


def _pop_event(heap: list) -> tuple:
    if _COMPILED:
        return _sift_pop(heap)
    return heapq.heappop(heap)


def _sift_push(heap: list, entry: tuple) -> None:
    """heapq.heappush for event entries (compares only (time_us, sequence))."""
    time_us = entry[0]
    sequence = entry[1]
    position = len(heap)
    heap.append(entry)
    while position > 0:
        parent_position = (position - 1) >> 1
        parent = heap[parent_position]
        parent_time_us = parent[0]
        if parent_time_us < time_us or (parent_time_us == time_us and parent[1] < sequence):
            break
        heap[position] = parent
        position = parent_position
    heap[position] = entry


def _sift_pop(heap: list) -> tuple:
    """heapq.heappop for event entries: the last entry moves to the root and
    sinks below every smaller child."""
    last = heap.pop()  # IndexError on an empty heap, as heapq
    size = len(heap)
    if size == 0:
        return last
    top = heap[0]
    time_us = last[0]
    sequence = last[1]
    position = 0
    child_position = 1
    while child_position < size:
        child = heap[child_position]
        child_time_us = child[0]
        right_position = child_position + 1
        if right_position < size:
            right = heap[right_position]
            right_time_us = right[0]
            if right_time_us < child_time_us or (right_time_us == child_time_us and right[1] < child[1]):
                child = right
                child_time_us = right_time_us
                child_position = right_position
        if time_us < child_time_us or (time_us == child_time_us and sequence < child[1]):
            break
        heap[position] = child
        position = child_position
        child_position = 2 * position + 1
    heap[position] = last
    return top


def _call(callback: Callable[[], None], _unused: Any) -> None:
    callback()


# >>> compiled twin: the build cuts this block (consensus/_build_core_c.py)
from chaos.sim._select_c import swap_in  # noqa: E402

swap_in(globals(), "simulation")
# <<< compiled twin
