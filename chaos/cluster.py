"""The simulated swarm: managers hosting RaftNode + a combined state machine,
workers hosting agents, on the deterministic simulator (chaos/sim).

Every committed entry carries a one-byte tag that routes it:

- ``K`` + a consensus/kv.py command: the key-value namespace the chaos
  workload reads and writes (the same state machine as the durable server's);
- ``S`` + a scheduler store transaction: the swarm's cluster state (nodes,
  services, tasks), applied by the scheduler's Manager facade, whose
  leader-only components (orchestrators, scheduler, dispatcher) run in
  ``on_tick`` on the current leader.

Clients are co-located with whichever manager they talk to (the simulator's
model): a request to a crashed manager fails at once, a paused one holds it,
a follower refuses with a leader hint that the client follows, and when no
manager knows a leader the client fails the request with "no quorum" - the
error the seed's story expects when two of three managers are gone.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import msgpack

from chaos.checkers.convergence import NodeView, ServiceView, StoreSample, TaskView
from chaos.checkers.result import CheckResult
from chaos.checkers.vip import VipObservation, table_digest
from chaos.experiment import Experiment
from chaos.history import History
from chaos.sim import FAIL, OK, BaseApplication, ClientResult, LinkConfig, SimConfig, Simulation
from chaos.sim.rng import derive_rng
from chaos.workloads import KvRequest, Outcome, ServiceRequest
from consensus.kv import KvOp, KvResult, KvStateMachine, KvStatus, encode_command, validate_command
from consensus.read_only import ReadOnlyOption
from consensus.types import ConfChange, ConfChangeType, Entry, StateRole

KV_TAG = b"K"
SCHEDULER_TAG = b"S"
# A leader hint is followed at most this many times per request (a bound on
# redirect loops while leadership moves).
REDIRECTS_MAX = 6
NO_QUORUM = "no quorum"
# Decoded kv commands kept for the other managers' applies (see
# SimCluster.kv_command); the table is emptied when it reaches this size.
KV_COMMANDS_CACHED_MAX = 4096
_PUT, _CAS = KvOp.PUT, KvOp.CAS
_STATUS_OK, _STATUS_CAS_FAILED = KvStatus.OK, KvStatus.CAS_FAILED
_LEADER = StateRole.LEADER


class ManagerApp(BaseApplication):
    """The state machine one manager applies: kv namespace + scheduler store."""

    def __init__(self, cluster: SimCluster, node_id: int) -> None:
        self.cluster = cluster
        self.node_id = node_id
        self.name = cluster.names[node_id]
        self.kv = KvStateMachine()
        self.kv_commands = cluster.kv_commands  # the shared decode cache (cleared, never replaced)
        self.swarm = cluster.scheduler.new_manager(self.name) if cluster.scheduler is not None else None
        self.applied_index = 0

    def apply(self, entry: Entry) -> Any:
        """A ``K`` entry gives the KvResult object itself: in the simulator it
        never crosses a wire (only the proposing leader's result is read, by
        SimCluster._kv_ok), so it is not turned into its wire list and back;
        the durable server (consensus/server.py) keeps the wire format."""
        data = entry.data
        self.applied_index = entry.index
        tag = data[:1]
        if tag == KV_TAG:
            # Every manager applies the same entry: decode and validate it once
            # (the first manager to apply it), execute it on each replica.
            command = self.kv_commands.get(data)
            if command is None:
                command = self.cluster.kv_command(data)
                if command is None:  # malformed: the state machine words the error
                    return self.kv.apply(data[1:])
            return self.kv.apply_valid(command)
        if tag == SCHEDULER_TAG and self.swarm is not None:
            result = self.cluster.scheduler.apply(self.swarm, entry.index, data[1:])
            self.cluster.observe_vip(self, entry.index)
            return result
        return None

    def snapshot(self) -> bytes:
        swarm = b"" if self.swarm is None else self.cluster.scheduler.snapshot(self.swarm)
        return msgpack.packb([self.kv.snapshot(), swarm, self.applied_index], use_bin_type=True)

    def restore(self, data: bytes) -> None:
        kv_bytes, swarm_bytes, applied = msgpack.unpackb(data, raw=False)
        self.kv.restore(kv_bytes)
        if self.swarm is not None and swarm_bytes:
            self.cluster.scheduler.restore(self.swarm, swarm_bytes)
        self.applied_index = applied

    def read(self, query: Any) -> Any:
        return self.kv.read(query)

    def on_leader_change(self, ctx: Any, leader_id: int) -> None:
        if self.swarm is not None:
            self.cluster.scheduler.leadership(self.swarm, ctx, ctx.is_leader)

    def on_tick(self, ctx: Any) -> Sequence[bytes]:
        if self.swarm is None:
            return ()
        proposals = self.cluster.scheduler.tick(self.swarm, ctx)
        return [SCHEDULER_TAG + proposal for proposal in proposals] if proposals else ()

    def on_message(self, ctx: Any, src: int, payload: Any) -> None:
        if self.swarm is not None:
            self.cluster.scheduler.message(self.swarm, ctx, self.cluster.names.get(src, str(src)), payload)


class _Attempt:
    """One client request being routed to the leader."""

    __slots__ = ("request", "done", "tried", "redirects", "refusals", "sent", "maybe_applied", "finished")

    def __init__(self, request: Any, done: Callable[..., None]) -> None:
        self.request = request
        self.done = done
        self.tried: list[int] = []
        self.redirects = 0
        self.refusals: list[str] = []
        self.sent = 0  # attempts sent; an answer to an older one is stale
        # An attempt timed out: it may still apply, so a later definite refusal
        # of another attempt no longer proves "did not happen" (Jepsen: info).
        self.maybe_applied = False
        self.finished = False


class SimCluster:
    """Implements the runner's Cluster protocol and the nemesis' FaultTarget."""

    def __init__(self, experiment: Experiment, seed: int) -> None:
        from chaos.swarm_adapter import scheduler_adapter

        self.experiment = experiment
        timing = experiment.timing
        overrides = dict(experiment.raft_unsafe)
        read_only = ReadOnlyOption.SAFE
        if overrides.pop("unsafe_no_read_index", False):
            read_only = ReadOnlyOption.UNSAFE_NO_READ_INDEX
        config = SimConfig(
            seed=seed,
            tick_interval_us=timing.tick_ms * 1000,
            election_ticks=timing.election_ticks,
            heartbeat_ticks=timing.heartbeat_ticks,
            read_only_option=read_only,
            client_timeout_us=(experiment.kv.timeout_ms if experiment.kv is not None else 1000) * 1000,
            snapshot_every_entries=500,
            snapshot_keep_entries=50,
            raft_overrides=overrides,
            trace=False,
        )
        self.ids: dict[str, int] = {}
        self.names: dict[int, str] = {}
        for position, node in enumerate(experiment.nodes, start=1):
            self.ids[node.name] = position
            self.names[position] = node.name
        self.sim_seed = seed
        self.manager_ids = [self.ids[node.name] for node in experiment.managers]
        self.worker_ids = [self.ids[node.name] for node in experiment.workers]
        self.scheduler = scheduler_adapter(self)
        self.kv_commands: dict[bytes, list[Any]] = {}
        self.sim = Simulation(config, app_factory=lambda node_id: ManagerApp(self, node_id))
        # The figure-3 observer runs after every simulated event: only when asked for.
        self.safety = _safety_observer() if "raft-safety" in experiment.checkers else None
        if self.safety is not None:
            self.sim.add_observer(self.safety)
        # `docker swarm init` on the first manager, then `docker swarm join` of the
        # others: each joins as a Raft learner and is promoted once caught up
        # (one voter at a time, as consensus/confchange.py requires).
        founder = self.manager_ids[0]
        self.sim.add_manager(founder, [founder])
        for node_id in self.manager_ids[1:]:
            self.sim.add_manager(node_id)
        self.sim.managers[founder].start()
        for node_id in self.worker_ids:
            self.sim.add_process(node_id, self.scheduler.worker_factory() if self.scheduler is not None
                                 else _IdleProcess)
        # Boot before the experiment's time 0 (what `docker swarm init` and the
        # joins do before anyone types a command): the founders persist their
        # bootstrap state and elect a first leader.  Bounded: if no leader
        # appears within 30 election timeouts the run starts anyway and the
        # quorum checker will say so.
        election_us = experiment.election_timeout_ms * 1000
        tick_us = timing.tick_ms * 1000
        self.sim.run_until(lambda sim: sim.leader() is not None, timeout_us=30 * election_us,
                           check_every_us=tick_us)
        self.sim.run_for(2 * tick_us)  # the leader's no-op commits
        for node_id in self.manager_ids[1:]:
            self._join(node_id, 30 * election_us, tick_us)
        self.offset_us = self.sim.now_us
        self.rng: random.Random = derive_rng(seed, "chaos-clients")
        self.attempt_timeout_us = max(experiment.election_timeout_ms // 2, 2 * timing.tick_ms) * 1000
        self.leader_guess: int | None = None
        self.vip: list[VipObservation] = []
        self.requests = {"kv": 0, "service": 0, "redirects": 0, "no_quorum": 0}

    def kv_command(self, data: bytes) -> list[Any] | None:
        """The decoded command of a committed ``K`` entry when it is valid, else
        None; remembered by the entry's bytes for the other managers (the
        decoded list is only read by KvStateMachine.apply_valid)."""
        try:
            command = msgpack.unpackb(data[1:], use_list=True, raw=False, strict_map_key=True)
        except Exception:  # msgpack raises several types for garbage
            return None
        if validate_command(command) is not None:
            return None
        if len(self.kv_commands) >= KV_COMMANDS_CACHED_MAX:
            self.kv_commands.clear()
        self.kv_commands[data] = command
        return command

    def _join(self, node_id: int, timeout_us: int, tick_us: int) -> None:
        """Add ``node_id`` as a learner, wait until it caught up, promote it."""
        self.sim.managers[node_id].start()
        for change_type in (ConfChangeType.ADD_LEARNER_NODE, ConfChangeType.ADD_NODE):
            deadline_us = self.sim.now_us + timeout_us
            while self.sim.now_us < deadline_us:
                leader = self.sim.leader()
                if leader is not None and self._conf_has(leader, node_id, change_type):
                    break
                if leader is not None:
                    self.sim.conf_change(leader, ConfChange(change_type, node_id), timeout_us=10 * tick_us)
                self.sim.run_for(5 * tick_us)

    def _conf_has(self, leader: int, node_id: int, change_type: ConfChangeType) -> bool:
        raft = self.sim.managers[leader].raft
        if raft is None:
            return False
        if change_type == ConfChangeType.ADD_LEARNER_NODE:
            return node_id in raft.learners or node_id in raft.voters
        return node_id in raft.voters

    # ---- time ----------------------------------------------------------------
    @property
    def now_ms(self) -> int:
        """Experiment time: virtual time since the cluster finished booting."""
        return (self.sim.now_us - self.offset_us) // 1000

    def run_until(self, time_ms: int) -> None:
        self.sim.run_until_time(self.offset_us + time_ms * 1000)

    # ---- views -----------------------------------------------------------------
    def leader(self) -> str | None:
        leader = self.sim.leader()
        return None if leader is None else self.names[leader]

    def leaders(self) -> list[tuple[str, int]]:
        """(name, term) of each live manager that leads (the runner asks every tick)."""
        result = []
        managers = self.sim.managers
        for node_id in self.manager_ids:
            host = managers[node_id]
            raft = host.raft
            # A paused leader still believes it leads but serves nobody: not counted.
            if raft is not None and raft.role == _LEADER and host.alive and not host.paused:
                result.append((self.names[node_id], raft.term))
        return result

    def _freshest_manager(self) -> Any:
        """The live leader with the highest term, else the live manager that applied most."""
        leader = self.sim.leader()
        if leader is not None:
            return self.sim.managers[leader]
        live = [self.sim.managers[node_id] for node_id in self.manager_ids if self.sim.managers[node_id].alive]
        return max(live, key=lambda host: host.applied_index, default=None)

    def sample_store(self) -> StoreSample | None:
        if self.scheduler is None:
            return None
        host = self._freshest_manager()
        if host is None or host.app is None or host.app.swarm is None:
            return None
        return self.scheduler.sample(host.app.swarm, self.now_ms)

    def observe_vip(self, app: ManagerApp, index: int) -> None:
        if self.scheduler is None or app.swarm is None:
            return
        for service, backends in self.scheduler.vip_backends(app.swarm):
            self.vip.append(VipObservation(app.name, index, service, backends, table_digest(dict(backends))))

    def vip_observations(self) -> list[VipObservation]:
        return list(self.vip)

    # ---- clients -----------------------------------------------------------------
    def _first_target(self) -> int:
        if self.leader_guess is not None:
            return self.leader_guess
        return self.rng.choice(self.manager_ids)

    def submit_kv(self, request: KvRequest, done: Callable[[Outcome, Any, str | None], None]) -> None:
        self.requests["kv"] += 1
        self._send(_Attempt(request, done), self._first_target())

    def submit_service(self, request: ServiceRequest, done: Callable[[Outcome, str | None], None]) -> None:
        self.requests["service"] += 1
        if self.scheduler is None:
            done("fail", "this build has no scheduler (scheduler.Manager missing)")
            return
        self._send(_Attempt(request, done), self._first_target())

    def _remaining_us(self, attempt: _Attempt) -> int:
        return attempt.request.deadline_ms * 1000 - (self.sim.now_us - self.offset_us)

    def _send(self, attempt: _Attempt, node_id: int) -> None:
        request = attempt.request
        remaining = request.deadline_ms * 1000 - (self.sim.now_us - self.offset_us)  # _remaining_us
        if remaining <= 0:
            return  # the runner expires it as info
        # A per-attempt timeout so that a paused or cut-off manager does not
        # eat the whole request timeout: then the client tries another one
        # (kv writes carry a session id, so a retry applies at most once).
        if remaining > self.attempt_timeout_us:
            remaining = self.attempt_timeout_us
        attempt.tried.append(node_id)
        attempt.sent += 1
        callback = partial(self._answer, attempt, attempt.sent)
        if isinstance(request, KvRequest):
            f = request.f
            if f == "get":
                self.sim.read(node_id, request.key, callback, remaining)
                return
            # ack_below = this request's id: a process does one request at a time
            # and is retired after an unknown outcome, so it holds the answer of
            # every earlier request of its session; the replicas drop those
            # cached results (without it a session keeps every result, and every
            # snapshot re-encodes them all).  A late duplicate of an answered
            # request then gets STALE_REQUEST, which nobody waits for.
            request_id = request.request_id
            command = encode_command(_PUT if f == "put" else _CAS, request.key, request.value,
                                     request.expected, request.client_id, request_id, request_id)
            self.sim.propose(node_id, KV_TAG + command, callback, remaining)
            return
        host = self.sim.managers[node_id]
        data = b""  # a non-leader refuses before looking at the data (and hints the leader)
        if host.alive and host.raft is not None and host.raft.role == StateRole.LEADER and host.app is not None:
            from chaos.swarm_adapter import ServiceCommandError

            try:
                data = SCHEDULER_TAG + self.scheduler.service_command(request.op, host.app.swarm)
            except ServiceCommandError as error:
                self._fail(attempt, str(error))
                return
        self.sim.propose(node_id, data, callback=callback, timeout_us=remaining)

    def _finish(self, attempt: _Attempt, *answer: Any) -> None:
        if not attempt.finished:
            attempt.finished = True
            attempt.done(*answer)

    def _answer(self, attempt: _Attempt, sequence: int, result: ClientResult) -> None:
        """The simulator's answer to send number ``sequence`` of ``attempt``."""
        if attempt.finished:
            return
        status = result.status
        if sequence != attempt.sent and status != OK:
            return  # a stale attempt's refusal or timeout: the newer attempt decides
        if status == OK:
            self.leader_guess = result.node
            if isinstance(attempt.request, KvRequest):
                self._kv_ok(attempt, result)
            else:
                outcome, error = self.scheduler.service_outcome(result.value)
                self._finish(attempt, outcome, error)
            return
        if status != FAIL:
            # This attempt timed out: unknown outcome.  Try another manager while
            # the request's own deadline allows; the runner expires it as info.
            attempt.maybe_applied = True
            attempt.refusals.append(f"{self.names.get(result.node, result.node)}: no answer")
            self.leader_guess = None
            others = [node_id for node_id in self.manager_ids if node_id != result.node]
            untried = [node_id for node_id in others if node_id not in attempt.tried]
            if self._remaining_us(attempt) > 0 and (untried or others):
                self._send(attempt, (untried or others)[0])
            return
        error = result.error or ""
        if "replaced by term" in error:
            # Definitely not applied: another leader's entry took its index.
            self._fail(attempt, f"lost leadership before commit ({error})")
            return
        attempt.refusals.append(f"{self.names.get(result.node, result.node)}: {error}")
        hint = _leader_hint(error)
        if hint and hint in self.sim.managers and attempt.redirects < REDIRECTS_MAX:
            attempt.redirects += 1
            self.requests["redirects"] += 1
            self.leader_guess = hint
            self._send(attempt, hint)
            return
        untried = [node_id for node_id in self.manager_ids if node_id not in attempt.tried]
        if untried:
            self._send(attempt, untried[0])
            return
        self.leader_guess = None
        self.requests["no_quorum"] += 1
        self._fail(attempt, f"{NO_QUORUM}: no reachable manager knows a leader ({'; '.join(attempt.refusals)})")

    def _fail(self, attempt: _Attempt, error: str) -> None:
        outcome = "fail"
        if attempt.maybe_applied:
            outcome, error = "info", f"{error} (an earlier attempt timed out and may still apply)"
        if isinstance(attempt.request, KvRequest):
            self._finish(attempt, outcome, None, error)
        else:
            self._finish(attempt, outcome, error)

    def _kv_ok(self, attempt: _Attempt, result: ClientResult) -> None:
        request: KvRequest = attempt.request
        if request.f == "get":
            self._finish(attempt, "ok", result.value, None)
            return
        answer = result.value  # ManagerApp.apply's KvResult
        if type(answer) is not KvResult:
            try:  # the wire form, from an application that encodes its results
                answer = KvResult.from_wire(answer)
            except (ValueError, TypeError):
                self._finish(attempt, "info", None, f"unreadable kv result {result.value!r}")
                return
        status = answer.status
        if status == _STATUS_OK:
            self._finish(attempt, "ok", request.value, None)
        elif status == _STATUS_CAS_FAILED:
            self._finish(attempt, "fail", answer.value, f"cas mismatch: {request.key} is {answer.value!r}")
        elif status in (KvStatus.SESSION_EXPIRED, KvStatus.STALE_REQUEST):
            self._finish(attempt, "info", None, f"kv session cannot tell: {answer.value}")
        else:
            self._finish(attempt, "fail", None, f"kv error: {answer.value}")

    # ---- faults (nemesis FaultTarget) --------------------------------------------------
    def crash(self, node: str, lose_unpersisted: bool) -> None:
        self.sim.crash(self.ids[node], lose_unsynced=lose_unpersisted)

    def restart(self, node: str) -> None:
        self.sim.restart(self.ids[node])

    def pause(self, node: str) -> None:
        self.sim.pause(self.ids[node])

    def resume(self, node: str) -> None:
        self.sim.resume(self.ids[node])

    def set_blocked(self, blocked: frozenset[tuple[str, str]]) -> None:
        self.sim.heal()
        for a, b in sorted(blocked):
            self.sim.network.block(self.ids[a], self.ids[b])

    def set_link_faults(self, nodes: Sequence[str] | None, loss: float, delay_ms: int, duplicate: float,
                        reorder: float) -> None:
        base = self.sim.config.default_link
        link = LinkConfig(delay_us_min=base.delay_us_min + delay_ms * 1000,
                          delay_us_max=base.delay_us_max + delay_ms * 1000,
                          loss=loss, duplicate=duplicate, reorder=reorder,
                          reorder_delay_us=max(base.reorder_delay_us, 2 * self.experiment.timing.tick_ms * 1000))
        touched = set(self.ids[name] for name in nodes) if nodes else None
        ids = sorted(self.names)
        for a in ids:
            for b in ids:
                if a != b and (touched is None or a in touched or b in touched):
                    self.sim.network.set_link(a, b, link, both_ways=False)

    def clear_link_faults(self) -> None:
        self.sim.network.clear_links()

    def set_clock_rate(self, node: str, rate: float) -> None:
        self.sim.set_clock_drift(self.ids[node], rate)

    def _leader_id(self) -> int | None:
        return self.sim.leader()

    def _operator(self, node: str, availability: str | None = None, role: str | None = None) -> None:
        leader = self._leader_id()
        if leader is None or self.scheduler is None:
            return
        app = self.sim.managers[leader].app
        if app is None or app.swarm is None:
            return
        data = self.scheduler.operator_command(app.swarm, node, availability=availability, role=role)
        if data is not None:
            self.sim.propose(leader, SCHEDULER_TAG + data)

    def demote(self, node: str) -> None:
        leader = self._leader_id()
        if leader is not None:
            self.sim.conf_change(leader, ConfChange(ConfChangeType.ADD_LEARNER_NODE, self.ids[node]))
        self._operator(node, role="worker")

    def remove_manager(self, node: str) -> None:
        leader = self._leader_id()
        if leader is not None:
            self.sim.conf_change(leader, ConfChange(ConfChangeType.REMOVE_NODE, self.ids[node]))

    def set_availability(self, node: str, availability: str) -> None:
        self._operator(node, availability=availability)

    # ---- checks -----------------------------------------------------------------------
    def safety_check(self) -> CheckResult:
        if self.safety is None:
            return CheckResult("raft-safety", "skipped", "chaos/checkers/raft_safety.py is not available")
        return _safety_result(self.safety)

    def final_kv_states(self) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """Each live manager's kv data, if it has applied everything the freshest one has."""
        live = [self.sim.managers[node_id] for node_id in self.manager_ids
                if self.sim.managers[node_id].alive and self.sim.managers[node_id].app is not None]
        if not live:
            return {}, ["no live manager at the end"]
        target = max(host.raft.log.committed for host in live if host.raft is not None)
        states: dict[str, dict[str, Any]] = {}
        skipped = []
        for host in live:
            if host.applied_index >= target:
                states[self.names[host.node_id]] = dict(host.app.kv.data)
            else:
                skipped.append(f"{self.names[host.node_id]} applied {host.applied_index} < {target}")
        return states, skipped

    def durability_check(self, history: History) -> CheckResult:
        from chaos.checkers.durability import check_durability

        kv_ops = [op for op in history if not op.f.startswith("service-")]
        if not kv_ops:
            return CheckResult("durability", "skipped", "no key-value operations in the run")
        states, skipped = self.final_kv_states()
        if not states:
            return CheckResult("durability", "unknown", "; ".join(skipped))
        from dataclasses import replace

        renumbered = History(replace(op, index=position) for position, op in enumerate(kv_ops))
        # Managers that ended with the same state are one observation: checking
        # it once per distinct state gives the same verdict for a third the work.
        groups: dict[tuple, list[str]] = {}
        for name in sorted(states):
            groups.setdefault(tuple(sorted(states[name].items(), key=repr)), []).append(name)
        distinct = {"=".join(names): states[names[0]] for names in groups.values()}
        result = check_durability(renumbered, distinct, time_limit_s=10.0)
        status = {"ok": "pass", "illegal": "fail", "unknown": "unknown"}[result.verdict]
        lines = result.report_lines()
        summary = lines[0].split(": ", 1)[-1] + f"; final states of {', '.join(sorted(states))}"
        if skipped:
            summary += f" (not caught up: {'; '.join(skipped)})"
        return CheckResult("durability", status, summary, lines[1:40], result.to_dict())

    def stats(self) -> dict[str, Any]:
        network = self.sim.network
        return {"sim_events": self.sim.events_run, "packets_sent": network.packets_sent,
                "packets_dropped": network.packets_dropped, "requests": dict(self.requests)}


def _leader_hint(error: str) -> int | None:
    marker = "hint "
    position = error.find(marker)
    if position < 0:
        return None
    digits = ""
    for char in error[position + len(marker):]:
        if not char.isdigit():
            break
        digits += char
    return int(digits) if digits and int(digits) > 0 else None


class _IdleProcess:
    """A worker that does nothing (used when the scheduler is unavailable)."""

    def __init__(self, address: int) -> None:
        self.address = address

    def on_start(self, ctx: Any) -> None:
        return None

    def on_message(self, ctx: Any, src: int, payload: Any) -> None:
        return None

    def on_tick(self, ctx: Any) -> None:
        return None


def _safety_observer() -> Any:
    try:
        from chaos.checkers.raft_safety import RaftSafetyChecker
    except ImportError:
        return None
    # Record rather than raise: the harness reports the first violation with its time.
    return RaftSafetyChecker(raise_on_violation=False)


def _safety_result(observer: Any) -> CheckResult:
    violations = list(getattr(observer, "violations", []) or [])
    steps = getattr(observer, "steps_checked", None)
    if violations:
        first = violations[0]
        lines = [f"  [{v.property}] at {v.time_us / 1e6:.3f} s: {v.detail}" for v in violations[:10]]
        lines.extend("  " + line for line in first.state.splitlines()[:12])
        return CheckResult("raft-safety", "fail",
                           f"{len(violations)} violation(s); first: {first.property} at {first.time_us / 1e6:.3f} s",
                           lines, {"violations": [{"property": v.property, "detail": v.detail, "time_us": v.time_us}
                                                  for v in violations[:50]]})
    return CheckResult("raft-safety", "pass",
                       "figure-3 invariants held" + (f" after each of {steps} steps" if steps else ""),
                       [], {"steps": steps})
