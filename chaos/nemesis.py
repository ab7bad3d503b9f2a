"""The nemesis: applies a fault schedule's events to a cluster and records them.

It resolves selectors (``leader``, ``random-manager``, ``killed`` ...) with the
run's seeded generator at the moment an event fires, turns partition modes into
sets of cut directed links (Jepsen's nemesis partitioners: random halves,
isolate a node, majorities ring, bridge; plus one-way), and keeps the fault
state it created so that it can record a ``Condition`` after every change and a
``FaultBand`` from each fault to its heal - what the quorum checker and the
timeline plot read.

It talks to the cluster only through ``FaultTarget`` (below), which
``chaos.cluster.SimCluster`` implements over the simulator; a netns backend can
implement the same protocol with SIGKILL and nftables.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from consensus.types import StateRole

from chaos.schedule import Event
from chaos.timeline import Condition, FaultBand, Timeline


class NemesisError(RuntimeError):
    """An event that cannot be applied in the current state (e.g. restart with
    nothing killed).  Recorded as skipped; raised only in strict mode."""


class FaultTarget(Protocol):
    """What the nemesis needs from a cluster.  Node names are strings."""

    def leader(self) -> str | None: ...
    def crash(self, node: str, lose_unpersisted: bool) -> None: ...
    def restart(self, node: str) -> None: ...
    def pause(self, node: str) -> None: ...
    def resume(self, node: str) -> None: ...
    def set_blocked(self, blocked: frozenset[tuple[str, str]]) -> None: ...
    def set_link_faults(self, nodes: Sequence[str] | None, loss: float, delay_ms: int, duplicate: float,
                        reorder: float) -> None: ...
    def clear_link_faults(self) -> None: ...
    def set_clock_rate(self, node: str, rate: float) -> None: ...
    def demote(self, node: str) -> None: ...
    def remove_manager(self, node: str) -> None: ...
    def set_availability(self, node: str, availability: str) -> None: ...


class Nemesis:
    def __init__(self, target: FaultTarget, managers: Sequence[str], workers: Sequence[str],
                 rng: random.Random, timeline: Timeline, strict: bool = False) -> None:
        self.target = target
        self.managers = list(managers)
        self.workers = list(workers)
        self.rng = rng
        self.timeline = timeline
        self.strict = strict
        self.voters: set[str] = set(managers)
        self.killed: list[str] = []  # in kill order: "killed" restarts the most recent
        self.paused: list[str] = []
        self.blocked: frozenset[tuple[str, str]] = frozenset()
        self.degraded = False
        self.drifting: set[str] = set()
        self.drained: set[str] = set()
        self._open_bands: dict[str, tuple[int, str, tuple[str, ...]]] = {}
        self.skipped: list[tuple[int, str]] = []
        self._traps: _LeaderTraps | None = None
        self._record(0, "start")

    # ---- bookkeeping -------------------------------------------------------
    @property
    def nodes(self) -> list[str]:
        return self.managers + self.workers

    def up(self) -> list[str]:
        return [node for node in self.nodes if node not in self.killed and node not in self.paused]

    def _record(self, now_ms: int, cause: str) -> None:
        manager_set = set(self.managers)
        condition = Condition(
            now_ms,
            frozenset(node for node in self.up() if node in manager_set),
            frozenset(self.voters),
            frozenset(pair for pair in self.blocked if pair[0] in manager_set and pair[1] in manager_set),
            self.degraded,
            cause,
        )
        conditions = self.timeline.conditions
        if conditions and conditions[-1].time_ms == now_ms:
            conditions[-1] = condition  # several events in one instant: keep the last state
        else:
            conditions.append(condition)

    def _open(self, key: str, now_ms: int, label: str, nodes: Iterable[str] = ()) -> None:
        if key not in self._open_bands:
            self._open_bands[key] = (now_ms, label, tuple(nodes))

    def _close(self, key: str, now_ms: int) -> None:
        opened = self._open_bands.pop(key, None)
        if opened is not None:
            start_ms, label, nodes = opened
            self.timeline.faults.append(FaultBand(start_ms, now_ms, label, nodes))

    def close_all_bands(self, now_ms: int) -> None:
        for key in sorted(self._open_bands):
            start_ms, label, nodes = self._open_bands.pop(key)
            self.timeline.faults.append(FaultBand(start_ms, None, label, nodes))

    def _skip(self, now_ms: int, event: Event, why: str) -> None:
        self.skipped.append((now_ms, f"{event.fault}: {why}"))
        self.timeline.applied.append((now_ms, f"skipped {event.fault}: {why}"))
        if self.strict:
            raise NemesisError(f"at {now_ms} ms cannot apply {event.fault}: {why}")

    # ---- target resolution -----------------------------------------------------
    def _resolve(self, selector: str, event: Event, candidates: Sequence[str] | None = None) -> list[str]:
        alive_managers = [node for node in self.managers if node in self.up()]
        if selector == "leader":
            leader = self.target.leader()
            return [leader] if leader is not None else []
        if selector == "follower":
            leader = self.target.leader()
            pool = [node for node in alive_managers if node != leader]
        elif selector == "random-manager":
            pool = alive_managers
        elif selector == "random-worker":
            pool = [node for node in self.workers if node in self.up()]
        elif selector == "random-node":
            pool = self.up()
        elif selector == "killed":
            return self.killed[-1:]
        elif selector == "random-killed":
            return [self.rng.choice(self.killed)] if self.killed else []
        elif selector == "paused":
            return self.paused[-1:]
        elif selector == "all":
            pool = list(candidates if candidates is not None else self.nodes)
            return pool
        else:
            return [selector] if selector in self.nodes else []
        if candidates is not None:
            pool = [node for node in pool if node in candidates]
        return [self.rng.choice(pool)] if pool else []

    # ---- applying events -----------------------------------------------------
    def apply(self, event: Event, now_ms: int) -> None:
        handler = getattr(self, "_do_" + event.fault.replace("-", "_"))
        handler(event, now_ms)
        self._record(now_ms, self.timeline.applied[-1][1] if self.timeline.applied else event.fault)

    def _log(self, now_ms: int, text: str) -> None:
        self.timeline.applied.append((now_ms, text))

    def _kill(self, nodes: Sequence[str], event: Event, now_ms: int) -> None:
        lose = bool(event.param("lose_unpersisted")) if "lose_unpersisted" in dict(event.params) else False
        for node in nodes:
            if node in self.killed:
                continue
            if node in self.paused:
                self.paused.remove(node)
                self._close(f"pause:{node}", now_ms)
            self.target.crash(node, lose)
            self.killed.append(node)
            self._open(f"kill:{node}", now_ms, f"kill {node}" + (" (lose unpersisted)" if lose else ""), [node])
        self._log(now_ms, f"kill {', '.join(nodes)}" + (" losing unpersisted writes" if lose else ""))

    def _do_kill(self, event: Event, now_ms: int) -> None:
        nodes = [node for node in self._resolve(event.target or "", event) if node not in self.killed]
        if not nodes:
            return self._skip(now_ms, event, f"no live node matches {event.target!r}")
        self._kill(nodes, event, now_ms)

    def _do_kill_leader(self, event: Event, now_ms: int) -> None:
        leader = self.target.leader()
        if leader is None:
            return self._skip(now_ms, event, "no leader right now")
        self._kill([leader], event, now_ms)

    def _do_kill_majority(self, event: Event, now_ms: int) -> None:
        majority = len(self.voters) // 2 + 1
        leader = self.target.leader()
        alive = [node for node in sorted(self.voters) if node in self.up() and node != leader]
        self.rng.shuffle(alive)
        victims = ([leader] if leader is not None and leader in self.up() else []) + alive
        victims = victims[:majority]
        if not victims:
            return self._skip(now_ms, event, "no live manager")
        self._kill(victims, event, now_ms)

    # ---- state-triggered faults (traps) ----------------------------------------------
    def _do_kill_next_leader(self, event: Event, now_ms: int) -> None:
        """Arm a one-shot trap that fires inside virtual time, between ticks.

        Timed events land on tick boundaries, long after a new leader's first
        append or first commit has reached its followers; the windows of the
        Raft paper's figure 8 (a leader that dies before its own entry spreads,
        a leader that dies right after it commits) need a fault triggered by
        the cluster's state, as FoundationDB's and TigerBeetle's simulators do.
        The backend must report Raft Ready events (``watch_ready``; the
        simulator does); otherwise the event is skipped.
        """
        watch = _ready_source(self.target)
        if watch is None:
            return self._skip(now_ms, event, "this backend cannot report leadership changes")
        if self._traps is None:
            self._traps = _LeaderTraps(self)
            watch(self._traps)
        self._traps.arm(event)
        self._log(now_ms, f"armed kill-next-leader when={event.param('when')}")

    def spring(self, node: str, event: Event, why: str) -> None:
        """Cut ``node`` off (so that nothing it sends from now on arrives) and crash it."""
        if node in self.killed:
            return
        now_ms = self._now_ms()
        others = [other for other in self.nodes if other != node]
        self.blocked = self.blocked | self.cut_between([[node], others])
        self.target.set_blocked(self.blocked)
        self._open("partition", now_ms, f"isolate {node}")
        self._kill([node], event, now_ms)
        self._log(now_ms, f"trap: {why}: cut off and killed {node}")
        self._record(now_ms, self.timeline.applied[-1][1])

    def _now_ms(self) -> int:
        now = getattr(self.target, "now_ms", None)
        return int(now) if now is not None else (self.timeline.conditions[-1].time_ms
                                                  if self.timeline.conditions else 0)

    def _do_restart(self, event: Event, now_ms: int) -> None:
        nodes = self.killed[:] if event.target == "all" else self._resolve(event.target or "", event)
        nodes = [node for node in nodes if node in self.killed]
        if not nodes:
            return self._skip(now_ms, event, f"{event.target!r} is not a killed node")
        for node in nodes:
            self.target.restart(node)
            self.killed.remove(node)
            self._close(f"kill:{node}", now_ms)
        self._log(now_ms, f"restart {', '.join(nodes)}")

    def _do_pause(self, event: Event, now_ms: int) -> None:
        nodes = [node for node in self._resolve(event.target or "", event) if node in self.up()]
        if not nodes:
            return self._skip(now_ms, event, f"no running node matches {event.target!r}")
        for node in nodes:
            self.target.pause(node)
            self.paused.append(node)
            self._open(f"pause:{node}", now_ms, f"pause {node}", [node])
        self._log(now_ms, f"pause {', '.join(nodes)}")

    def _do_resume(self, event: Event, now_ms: int) -> None:
        nodes = self.paused[:] if event.target == "all" else self._resolve(event.target or "", event)
        nodes = [node for node in nodes if node in self.paused]
        if not nodes:
            return self._skip(now_ms, event, f"{event.target!r} is not paused")
        for node in nodes:
            self.target.resume(node)
            self.paused.remove(node)
            self._close(f"pause:{node}", now_ms)
        self._log(now_ms, f"resume {', '.join(nodes)}")

    # ---- partitions -------------------------------------------------------------
    @staticmethod
    def cut_between(groups: Sequence[Sequence[str]]) -> frozenset[tuple[str, str]]:
        """Both directions of every link between different groups."""
        blocked = set()
        for index, group in enumerate(groups):
            for other in groups[index + 1:]:
                for a in group:
                    for b in other:
                        blocked.add((a, b))
                        blocked.add((b, a))
        return frozenset(blocked)

    def _partition_links(self, event: Event) -> tuple[frozenset[tuple[str, str]], str]:
        mode = event.param("mode")
        nodes = list(self.nodes)
        managers = list(self.managers)
        if mode == "explicit":
            groups = [list(group) for group in event.param("groups")]
            listed = {node for group in groups for node in group}
            groups += [[node] for node in nodes if node not in listed]
            return self.cut_between(groups), "partition " + " | ".join(",".join(g) for g in groups)
        if mode == "isolate-leader":
            leader = self.target.leader()
            if leader is None:
                raise NemesisError("no leader to isolate")
            return self.cut_between([[leader], [n for n in nodes if n != leader]]), f"isolate leader {leader}"
        if mode == "leader-minority":
            # Jepsen's "minority with the leader": the leader keeps one follower, so
            # it can still replicate to someone while the rest elect a new leader.
            leader = self.target.leader()
            if leader is None:
                raise NemesisError("no leader to put in a minority")
            followers = [node for node in managers if node != leader]
            self.rng.shuffle(followers)
            # The largest minority that holds the leader, minus one: 3 managers
            # -> the leader alone, 5 -> leader + 1, 7 -> leader + 2.
            minority = [leader] + followers[: max(0, (len(managers) - 1) // 2 - 1)]
            rest = [node for node in nodes if node not in minority]
            return self.cut_between([minority, rest]), f"leader minority {','.join(minority)} | {','.join(rest)}"
        if mode == "one-way":
            sources = list(event.param("from") or [])
            sinks = list(event.param("to") or [])
            if not sources:
                leader = self.target.leader()
                sources = [leader] if leader is not None else [self.rng.choice(managers)]
            if not sinks:
                sinks = [node for node in nodes if node not in sources]
            blocked = frozenset((a, b) for a in sources for b in sinks if a != b)
            return blocked, f"one-way {','.join(sources)} -> {','.join(sinks)} dropped"
        if mode == "majorities-ring" and len(managers) >= 5:
            # Jepsen's majorities ring: every manager sees a majority, no two see the same one.
            ring = managers[:]
            self.rng.shuffle(ring)
            # Each sees its neighbours within ``reach`` on the ring: 2*reach+1 >= majority.
            reach = (len(ring) // 2 + 1) // 2
            blocked = set()
            for i, a in enumerate(ring):
                for j, b in enumerate(ring):
                    distance = min((i - j) % len(ring), (j - i) % len(ring))
                    if a != b and distance > reach:
                        blocked.add((a, b))
            # Workers follow their nearest manager on the ring.
            for worker in self.workers:
                anchor = self.rng.choice(ring)
                for manager in ring:
                    if (anchor, manager) in blocked:
                        blocked.add((worker, manager))
                        blocked.add((manager, worker))
            return frozenset(blocked), "majorities ring " + "-".join(ring)
        if mode == "bridge" and len(managers) >= 3:
            ring = managers[:]
            self.rng.shuffle(ring)
            bridge = ring[len(ring) // 2]
            left = ring[: len(ring) // 2]
            right = ring[len(ring) // 2 + 1:]
            for worker in self.workers:
                (left if self.rng.random() < 0.5 else right).append(worker)
            blocked = self.cut_between([left, right])
            return blocked, f"bridge {bridge} between {','.join(left)} | {','.join(right)}"
        # random-halves (also the fallback of ring/bridge on too few managers)
        shuffled = nodes[:]
        self.rng.shuffle(shuffled)
        half = len(shuffled) // 2
        groups = [shuffled[:half], shuffled[half:]]
        return self.cut_between(groups), "partition " + " | ".join(",".join(sorted(g)) for g in groups)

    def _do_partition(self, event: Event, now_ms: int) -> None:
        try:
            blocked, label = self._partition_links(event)
        except NemesisError as error:
            return self._skip(now_ms, event, str(error))
        self._close("partition", now_ms)
        self.blocked = blocked
        self.target.set_blocked(blocked)
        self._open("partition", now_ms, label)
        self._log(now_ms, label)

    def _do_heal(self, event: Event, now_ms: int) -> None:
        self.blocked = frozenset()
        self.target.set_blocked(self.blocked)
        self._close("partition", now_ms)
        self._log(now_ms, "heal partitions")

    # ---- links and clocks ---------------------------------------------------------
    def _do_link(self, event: Event, now_ms: int) -> None:
        mode = event.param("mode")
        nodes = event.param("nodes")
        loss = event.param("loss_probability") if mode == "lossy" else 0.0
        delay_ms = int(event.param("delay_ms")) if mode == "slow" else 0
        duplicate = event.param("duplicate_probability") if mode == "duplicating" else 0.0
        reorder = event.param("reorder_probability") if mode == "reordering" else 0.0
        self.target.set_link_faults(None if nodes is None else list(nodes), float(loss), delay_ms,
                                    float(duplicate), float(reorder))
        self.degraded = True
        label = f"{mode} links" + (f" of {','.join(nodes)}" if nodes else "")
        self._close("link", now_ms)
        self._open("link", now_ms, label)
        self._log(now_ms, label)

    def _do_link_heal(self, event: Event, now_ms: int) -> None:
        self.target.clear_link_faults()
        self.degraded = False
        self._close("link", now_ms)
        self._log(now_ms, "heal links")

    def _do_clock_drift(self, event: Event, now_ms: int) -> None:
        nodes = self._resolve(event.target or "", event)
        if not nodes:
            return self._skip(now_ms, event, f"no node matches {event.target!r}")
        rate = float(event.param("rate"))
        for node in nodes:
            self.target.set_clock_rate(node, rate)
            self.drifting.add(node)
            self._open(f"clock:{node}", now_ms, f"clock x{rate} {node}", [node])
        self._log(now_ms, f"clock drift x{rate} on {', '.join(nodes)}")

    def _do_clock_heal(self, event: Event, now_ms: int) -> None:
        for node in sorted(self.drifting):
            self.target.set_clock_rate(node, 1.0)
            self._close(f"clock:{node}", now_ms)
        self.drifting.clear()
        self._log(now_ms, "clocks back to rate 1")

    # ---- membership and availability ------------------------------------------------
    def _do_demote(self, event: Event, now_ms: int) -> None:
        nodes = [node for node in self._resolve(event.target or "", event, self.managers) if node in self.voters]
        if not nodes or len(self.voters) <= 1:
            return self._skip(now_ms, event, f"{event.target!r} is not a manager that can be demoted")
        node = nodes[0]
        self.target.demote(node)
        self.voters.discard(node)
        self._log(now_ms, f"demote {node}")

    def _do_remove_manager(self, event: Event, now_ms: int) -> None:
        nodes = [node for node in self._resolve(event.target or "", event, self.managers) if node in self.voters]
        if not nodes or len(self.voters) <= 1:
            return self._skip(now_ms, event, f"{event.target!r} is not a manager that can be removed")
        node = nodes[0]
        self.target.remove_manager(node)
        self.voters.discard(node)
        self._log(now_ms, f"remove manager {node}")

    def _do_drain(self, event: Event, now_ms: int) -> None:
        nodes = self._resolve(event.target or "", event)
        if not nodes:
            return self._skip(now_ms, event, f"no node matches {event.target!r}")
        for node in nodes:
            self.target.set_availability(node, "drain")
            self.drained.add(node)
            self._open(f"drain:{node}", now_ms, f"drain {node}", [node])
        self._log(now_ms, f"drain {', '.join(nodes)}")

    def _do_activate(self, event: Event, now_ms: int) -> None:
        nodes = self._resolve(event.target or "", event)
        nodes = [node for node in nodes if node in self.drained]
        if not nodes:
            return self._skip(now_ms, event, f"{event.target!r} is not drained")
        for node in nodes:
            self.target.set_availability(node, "active")
            self.drained.discard(node)
            self._close(f"drain:{node}", now_ms)
        self._log(now_ms, f"activate {', '.join(nodes)}")

    def _do_heal_all(self, event: Event, now_ms: int) -> None:
        """Restart, resume, heal partitions, links and clocks, drop armed traps (not
        drains or membership: those are operator decisions, not faults)."""
        for node in self.killed[:]:
            self.target.restart(node)
            self._close(f"kill:{node}", now_ms)
        for node in self.paused[:]:
            self.target.resume(node)
            self._close(f"pause:{node}", now_ms)
        self.killed.clear()
        self.paused.clear()
        self.blocked = frozenset()
        self.target.set_blocked(self.blocked)
        self._close("partition", now_ms)
        self.target.clear_link_faults()
        self.degraded = False
        self._close("link", now_ms)
        for node in sorted(self.drifting):
            self.target.set_clock_rate(node, 1.0)
            self._close(f"clock:{node}", now_ms)
        self.drifting.clear()
        self.disarm()
        self._log(now_ms, "heal all")

    def disarm(self) -> None:
        """Faults stop (the end of the fault phase): pending traps are dropped."""
        if self._traps is not None:
            self._traps.pending.clear()

    @property
    def quiet(self) -> bool:
        """No fault active (what convergence is measured from)."""
        return not (self.killed or self.paused or self.blocked or self.degraded or self.drifting)


def _ready_source(target: object) -> Callable[[object], None] | None:
    """How to watch the cluster's Raft Ready events: the target's own
    ``watch_ready(observer)`` if it has one, else the simulator's observer hook
    (``target.sim.add_observer``, calling ``on_ready(sim, host, ready)``)."""
    watch = getattr(target, "watch_ready", None)
    if callable(watch):
        return watch
    sim = getattr(target, "sim", None)
    add = getattr(sim, "add_observer", None)
    return add if callable(add) else None


class _Trap:
    """One armed ``kill-next-leader``; ``watching`` is the leader a first-commit
    trap waits on: (node id, its term, its commit index when elected)."""

    __slots__ = ("event", "watching")

    def __init__(self, event: Event) -> None:
        self.event = event
        self.watching: tuple[int, int, int] | None = None


class _LeaderTraps:
    """Armed ``kill-next-leader`` events, sprung from the simulator's Ready hook.

    ``elected``: the first manager whose Ready announces it became leader.
    ``first-commit``: the first manager elected after arming, once its commit
    index first moves while it leads.  A trap springs right after the Ready
    that triggered it was handled (scheduled at delay 0), never inside it.
    Traps are checked in the order they were armed; one Ready springs at most one.
    """

    def __init__(self, nemesis: Nemesis) -> None:
        self.nemesis = nemesis
        self.pending: list[_Trap] = []

    def arm(self, event: Event) -> None:
        self.pending.append(_Trap(event))

    def on_ready(self, sim: Any, host: Any, ready: Any) -> None:
        if not self.pending:
            return
        names = getattr(self.nemesis.target, "names", {})
        name = names.get(host.node_id)
        if name is None or name not in self.nemesis.managers:
            return
        raft = host.raft
        soft = ready.soft_state
        elected = soft is not None and soft.role == StateRole.LEADER
        for trap in list(self.pending):
            if trap.event.param("when") == "elected":
                if elected:
                    self._fire(sim, trap, name, f"{name} was elected leader (term {raft.term})")
                    return
                continue
            if elected:
                # A (new) leader: watch it from its current commit index.
                trap.watching = (host.node_id, raft.term, raft.log.committed)
                continue
            if trap.watching is None or trap.watching[0] != host.node_id:
                continue
            _node_id, term, commit = trap.watching
            if raft.term != term or raft.role != StateRole.LEADER:
                trap.watching = None  # it lost leadership first: wait for the next leader
                continue
            hard = ready.hard_state
            if hard is not None and hard.commit > commit:
                self._fire(sim, trap, name, f"leader {name} (term {term}) committed up to index {hard.commit}")
                return

    def _fire(self, sim: Any, trap: _Trap, name: str, why: str) -> None:
        self.pending.remove(trap)
        sim.schedule(0, lambda: self.nemesis.spring(name, trap.event, why))
