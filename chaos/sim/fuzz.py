"""Random fault schedules for the Raft core, run on the simulator with every
safety check on; the engine under tests/sim and tests/consensus property tests.

A schedule is a list of ``Step(wait_ms, action, a, b)``: wait, then act.
Node arguments are taken modulo the candidates the action can apply to, so
any integers make a valid schedule (hypothesis can shrink freely).  A run:
managers 1..voters (+ ``spares`` that may join by conf change), a background
client writing unique values to one register and reading it through
ReadIndex, the schedule, then a heal phase (everything restarted, resumed,
reconnected) in which liveness is asserted.

``run_schedule`` returns a FuzzResult; ``format_schedule`` prints a schedule
as Python you can paste into a test to replay it with the same seed.

Planted bugs: with ``raft_overrides={"unsafe_skip_figure8_commit_rule": True,
"max_size_per_msg_bytes": 1}`` (one entry per append, so an old-term entry
can reach a majority before the new leader's no-op), the six steps
trap_new_leader, isolate_leader, heal, trap_commit, restart, heal trip the
checker for about half of all seeds; random schedules of 3-10 steps drawn
from those actions plus crash_leader/propose/partition found it once in 300
(measured 2026-11-27).  ``read_only_option=UNSAFE_NO_READ_INDEX`` shows up as
stale reads within a few random schedules.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from consensus.read_only import ReadOnlyOption
from consensus.types import ConfChange, ConfChangeType, StateRole

from chaos.checkers.raft_safety import RaftSafetyChecker
from chaos.sim.app import KVApp
from chaos.sim.client import OK, TIMEOUT, ClientResult
from chaos.sim.network import LinkConfig
from chaos.sim.simulation import MILLISECOND_US, SECOND_US, SimConfig, Simulation

ACTIONS: tuple[str, ...] = (
    "propose", "read", "crash", "restart", "partition", "isolate", "oneway", "heal", "lossy", "duplicate",
    "reorder", "slow", "pause", "resume", "transfer", "add_learner", "promote", "remove", "drift", "campaign",
    "crash_leader", "isolate_leader", "trap_new_leader", "trap_commit",
)

REGISTER = "x"


@dataclass(frozen=True)
class Step:
    wait_ms: int
    action: str
    a: int = 0
    b: int = 0

    def __repr__(self) -> str:
        return f"Step({self.wait_ms}, {self.action!r}, {self.a}, {self.b})"


@dataclass
class ClientRecord:
    kind: str  # "write" | "read"
    invoke_us: int
    complete_us: int = -1
    status: str = ""
    value: Any = None
    version: int = -1


@dataclass
class FuzzResult:
    seed: int
    sim: Simulation
    checker: RaftSafetyChecker
    records: list[ClientRecord] = field(default_factory=list)
    liveness_ok: bool = True
    liveness_detail: str = ""
    linearizability_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.checker.ok and self.liveness_ok and not self.linearizability_errors


def format_schedule(seed: int, voters: int, steps: Sequence[Step], **options: Any) -> str:
    extra = "".join(f", {key}={value!r}" for key, value in sorted(options.items()))
    body = ",\n    ".join(repr(step) for step in steps)
    return f"run_schedule(seed={seed}, voters={voters}{extra}, steps=[\n    {body},\n])"


class _Runner:
    def __init__(self, seed: int, voters: int, spares: int, config: SimConfig, background_interval_ms: int) -> None:
        self.sim = Simulation(config)
        self.checker = RaftSafetyChecker(raise_on_violation=True)
        self.sim.add_observer(self.checker)
        self.voter_ids = list(range(1, voters + 1))
        for node_id in self.voter_ids:
            self.sim.add_manager(node_id, self.voter_ids)
        self.spare_ids = list(range(voters + 1, voters + spares + 1))
        for node_id in self.spare_ids:
            self.sim.add_manager(node_id)
        for node_id in self.voter_ids + self.spare_ids:
            self.sim.managers[node_id].start()
        self.records: list[ClientRecord] = []
        self.traps: list[str] = []
        self.sim.add_observer(self)
        self.write_counter = 0
        self.rng = self.sim.client_rng
        self.background_interval_us = background_interval_ms * MILLISECOND_US
        self.background_on = background_interval_ms > 0
        if self.background_on:
            self.sim.schedule(self.background_interval_us, self._background)

    # ------------------------------------------------------------ clients
    def _pick_node(self, hint: int) -> int:
        ids = sorted(self.sim.managers)
        return ids[hint % len(ids)]

    def write(self, node_id: int) -> None:
        self.write_counter += 1
        record = ClientRecord("write", self.sim.now_us, value=self.write_counter)
        self.records.append(record)

        def done(result: ClientResult) -> None:
            record.complete_us = result.complete_us
            record.status = result.status
            if result.status == OK and isinstance(result.value, list) and len(result.value) == 3:
                record.version = result.value[2]

        self.sim.propose(node_id, KVApp.put(REGISTER, self.write_counter), callback=done)

    def read(self, node_id: int) -> None:
        record = ClientRecord("read", self.sim.now_us)
        self.records.append(record)

        def done(result: ClientResult) -> None:
            record.complete_us = result.complete_us
            record.status = result.status
            if result.status == OK:
                record.value, record.version = result.value

        self.sim.read(node_id, ("v", REGISTER), callback=done)

    def _background(self) -> None:
        if not self.background_on:
            return
        leader = self.sim.leader()
        live = self.sim.live_managers()
        if live:
            # Mostly to the leader (as a client that follows redirects would),
            # sometimes to a random node.
            target = leader if leader is not None and self.rng.random() < 0.8 else self.rng.choice(live)
            if self.rng.random() < 0.6:
                self.write(target)
            else:
                self.read(target)
        self.sim.schedule(self.background_interval_us, self._background)

    # ------------------------------------------------------------- traps
    def on_ready(self, sim: Simulation, host: Any, rd: Any) -> None:
        if not self.traps:
            return
        raft = host.raft
        fired = None
        if "trap_new_leader" in self.traps and rd.soft_state is not None and rd.soft_state.role == StateRole.LEADER:
            fired = "trap_new_leader"
        elif (
            "trap_commit" in self.traps and raft.role == StateRole.LEADER
            and rd.hard_state is not None and rd.hard_state.commit > host.disk.durable.hard_state().commit
            and raft.log.term_or_zero(rd.hard_state.commit) < raft.term
        ):
            fired = "trap_commit"
        if fired is not None:
            self.traps.remove(fired)
            node_id = host.node_id
            # Not from inside the host's Ready handling: right after it.
            sim.schedule(0, lambda: (sim.isolate(node_id), sim.crash(node_id)))

    # ------------------------------------------------------------- faults
    def act(self, step: Step) -> None:
        sim = self.sim
        managers = sorted(sim.managers)
        down = [n for n in managers if not sim.managers[n].alive]
        up = [n for n in managers if sim.managers[n].alive]
        a, b = step.a, step.b
        action = step.action
        if action == "propose":
            self.write(self._pick_node(a))
        elif action == "read":
            self.read(self._pick_node(a))
        elif action == "crash":
            if up:
                sim.crash(up[a % len(up)], lose_unsynced=bool(b % 2))
        elif action == "restart":
            if down:
                sim.restart(down[a % len(down)])
        elif action == "partition":
            mask = a % (1 << len(managers))
            side = [n for position, n in enumerate(managers) if mask >> position & 1]
            sim.partition(side, [n for n in managers if n not in side])
        elif action == "isolate":
            sim.isolate(managers[a % len(managers)])
        elif action == "oneway":
            src, dst = managers[a % len(managers)], managers[b % len(managers)]
            if src != dst:
                sim.block(src, dst)
        elif action == "heal":
            sim.heal()
            sim.network.clear_links()
        elif action == "lossy":
            sim.set_default_link(LinkConfig(loss=min(0.5, (a % 50) / 100)))
        elif action == "duplicate":
            sim.set_default_link(LinkConfig(duplicate=min(0.5, (a % 50) / 100)))
        elif action == "reorder":
            sim.set_default_link(LinkConfig(reorder=min(0.5, (a % 50) / 100)))
        elif action == "slow":
            src, dst = managers[a % len(managers)], managers[b % len(managers)]
            if src != dst:
                sim.set_link(src, dst, LinkConfig(delay_us_min=50 * MILLISECOND_US, delay_us_max=400 * MILLISECOND_US))
        elif action == "pause":
            if up:
                sim.pause(up[a % len(up)])
        elif action == "resume":
            paused = [n for n in up if sim.managers[n].paused]
            if paused:
                sim.resume(paused[a % len(paused)])
        elif action == "transfer":
            leader = sim.leader()
            if leader is not None:
                sim.transfer_leadership(leader, managers[a % len(managers)])
        elif action in ("add_learner", "promote", "remove"):
            self._membership(action, a)
        elif action == "drift":
            sim.set_clock_drift(managers[a % len(managers)], 0.5 + (b % 16) / 10)
        elif action == "crash_leader":
            leader = sim.leader()
            if leader is not None:
                sim.crash(leader, lose_unsynced=bool(b % 2))
        elif action == "isolate_leader":
            leader = sim.leader()
            if leader is not None:
                sim.isolate(leader)
        elif action in ("trap_new_leader", "trap_commit"):
            # State-triggered nemesis (one shot): kill the next node that
            # becomes leader the moment it does, or a leader the moment its
            # commit index lands on an entry of an older term (which a correct
            # leader never does: it commits through an entry of its own term) -
            # with its in-flight packets (it is isolated first).  These open
            # the narrow windows of paper figure 8.
            self.traps.append(action)
        elif action == "campaign":
            host = sim.managers[managers[a % len(managers)]]
            if host.alive and not host.paused and host.raft is not None:
                host.raft.campaign()
                host.drain()
        else:
            raise ValueError(f"unknown action {action!r}")

    def _membership(self, action: str, a: int) -> None:
        sim = self.sim
        leader = sim.leader()
        if leader is None:
            return
        raft = sim.managers[leader].raft
        members = raft.voters | raft.learners
        if action == "add_learner":
            candidates = [n for n in sorted(sim.managers) if n not in members]
            kind = ConfChangeType.ADD_LEARNER_NODE
        elif action == "promote":
            candidates = sorted(raft.learners)
            kind = ConfChangeType.ADD_NODE
        else:
            candidates = sorted(n for n in members if n != leader) or sorted(members)
            kind = ConfChangeType.REMOVE_NODE
        if candidates:
            sim.conf_change(leader, ConfChange(kind, candidates[a % len(candidates)]))

    # ----------------------------------------------------------- liveness
    def heal_everything(self) -> None:
        sim = self.sim
        self.traps.clear()  # faults stop: disarm the traps too
        sim.heal()
        sim.network.clear_links()
        sim.set_default_link(sim.config.default_link)
        for node_id, host in sorted(sim.managers.items()):
            sim.set_clock_drift(node_id, 1.0)
            if not host.alive:
                sim.restart(node_id)
            elif host.paused:
                sim.resume(node_id)

    def check_liveness(self, election_timeouts_max: int) -> tuple[bool, str]:
        sim = self.sim
        cfg = sim.config
        election_us = cfg.election_ticks * cfg.tick_interval_us
        bound_us = election_timeouts_max * election_us
        start = sim.now_us
        if not sim.run_until(lambda s: s.leader() is not None, bound_us):
            return False, f"no leader within {election_timeouts_max} election timeouts after healing"
        results: list[ClientResult] = []
        deadline = start + bound_us + 10 * election_us
        while sim.now_us < deadline:
            leader = sim.leader()
            if leader is not None:
                sim.propose(leader, KVApp.put("liveness", sim.now_us), callback=results.append, timeout_us=2 * election_us)
            sim.run_for(2 * election_us // 4)
            if any(result.status == OK for result in results):
                return True, ""
        return False, f"leader present but no proposal committed within {(deadline - start) // 1000} ms"


def check_register_reads(records: Sequence[ClientRecord]) -> list[str]:
    """Reads are linearizable for a register of versioned writes: a read never
    returns a version older than a write acknowledged before the read began,
    nor newer than the writes that had begun before it completed."""
    errors: list[str] = []
    writes_ok = sorted((r.complete_us, r.version) for r in records if r.kind == "write" and r.status == OK)
    writes_invoked = sorted(r.invoke_us for r in records if r.kind == "write" and r.status in (OK, TIMEOUT, ""))
    import bisect

    best_before: list[int] = []
    best = 0
    for _, version in writes_ok:
        best = max(best, version)
        best_before.append(best)
    completion_times = [t for t, _ in writes_ok]
    for read in records:
        if read.kind != "read" or read.status != OK:
            continue
        position = bisect.bisect_left(completion_times, read.invoke_us)
        floor = best_before[position - 1] if position else 0
        if read.version < floor:
            errors.append(
                f"stale read: version {read.version} (value {read.value}) read in "
                f"[{read.invoke_us}, {read.complete_us}] us, but version {floor} was acknowledged before"
            )
        ceiling = bisect.bisect_right(writes_invoked, read.complete_us)
        if read.version > ceiling:
            errors.append(f"read of version {read.version} when only {ceiling} writes had been invoked")
    return errors


def run_schedule(
    seed: int,
    voters: int,
    steps: Sequence[Step],
    spares: int = 0,
    pre_vote: bool = True,
    check_quorum: bool = True,
    read_only_option: ReadOnlyOption = ReadOnlyOption.SAFE,
    raft_overrides: Optional[dict[str, Any]] = None,
    snapshot_every_entries: int = 0,
    background_interval_ms: int = 150,
    settle_ms: int = 3000,
    check_liveness: bool = True,
    election_timeouts_max: int = 10,
    fsync_latency_us: int = 1000,
    default_link: Optional[LinkConfig] = None,
) -> FuzzResult:
    """Run ``steps`` on a fresh cluster; safety is checked after every event
    (a violation raises RaftSafetyViolation); returns liveness and read checks."""
    config = SimConfig(
        seed=seed,
        pre_vote=pre_vote,
        check_quorum=check_quorum,
        read_only_option=read_only_option,
        raft_overrides=dict(raft_overrides or {}),
        snapshot_every_entries=snapshot_every_entries,
        fsync_latency_us=fsync_latency_us,
        default_link=default_link or LinkConfig(),
    )
    runner = _Runner(seed, voters, spares, config, background_interval_ms)
    sim = runner.sim
    sim.run_for(settle_ms * MILLISECOND_US)
    for step in steps:
        sim.run_for(max(0, step.wait_ms) * MILLISECOND_US)
        runner.act(step)
    result = FuzzResult(seed, sim, runner.checker, runner.records)
    if check_liveness:
        runner.heal_everything()
        runner.background_on = False
        ok, detail = runner.check_liveness(election_timeouts_max)
        result.liveness_ok = ok
        result.liveness_detail = detail
    # Let outstanding client operations finish (or time out) before judging reads.
    sim.run_for(sim.config.client_timeout_us + SECOND_US)
    result.linearizability_errors = check_register_reads(runner.records)
    return result
