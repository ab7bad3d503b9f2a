"""Runs one experiment: cluster, nemesis, workloads, checkers, outputs.

The loop advances virtual time in steps of one Raft tick: apply the fault
events that are due, let the clients invoke, run the simulated cluster to the
end of the step, expire timed-out requests, record who leads and (every
``SAMPLE_MS``) the leader's store.  After ``duration_ms`` every fault is healed
(``heal-all``) and the run continues for ``settle_ms`` so that convergence and
availability after healing can be judged.  Then every checker runs on the
records, and the outputs are written:

- ``history.jsonl``: the Jepsen-style history (byte-identical for the same seed);
- ``results.json``: experiment, verdicts, statistics, the fault timeline;
- ``timeline.png``: leadership, fault bands, operation latency, running tasks;
- ``failure.json`` when a checker failed: what ``shoal chaos replay`` re-runs.

Every random choice derives from ``experiment.seed`` through separate
generators per subsystem (cluster, nemesis, workload), so removing a fault
event while shrinking does not reshuffle the workload.
"""
from __future__ import annotations

import hashlib
import json
import operator
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from chaos.checkers.convergence import StoreSample, check_convergence
from chaos.checkers.quorum import check_quorum
from chaos.checkers.result import CheckResult
from chaos.checkers.vip import VipObservation, check_vip
from chaos.experiment import Experiment
from chaos.history import History
from chaos.nemesis import FaultTarget, Nemesis
from chaos.schedule import Event
from chaos.timeline import LeaderSpan, Timeline
from chaos.workloads import KvClients, KvRequest, Outcome, ServiceClient, ServiceRequest

SAMPLE_MS = 200
SERVICE_PROCESS_BASE = 1_000_000
LINEARIZABILITY_TIME_LIMIT_S = 10.0


class Cluster(FaultTarget, Protocol):
    """What the runner needs from a simulated cluster (chaos.cluster.SimCluster)."""

    now_ms: int

    def run_until(self, time_ms: int) -> None: ...
    def submit_kv(self, request: KvRequest, done: Callable[[Outcome, Any, str | None], None]) -> None: ...
    def submit_service(self, request: ServiceRequest, done: Callable[[Outcome, str | None], None]) -> None: ...
    def leaders(self) -> list[tuple[str, int]]: ...
    def sample_store(self) -> StoreSample | None: ...
    def vip_observations(self) -> list[VipObservation]: ...
    def safety_check(self) -> CheckResult: ...
    def durability_check(self, history: History) -> CheckResult: ...
    def stats(self) -> dict[str, Any]: ...


ClusterFactory = Callable[[Experiment, int], Cluster]


@dataclass
class RunResult:
    experiment: Experiment
    history: History
    timeline: Timeline
    checks: list[CheckResult]
    samples: list[StoreSample] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    history_sha256: str = ""
    heal_ms: int = 0
    out_dir: Path | None = None
    failure_file: Path | None = None

    @property
    def passed(self) -> bool:
        return not any(check.failed for check in self.checks)

    @property
    def failed_checkers(self) -> list[str]:
        return sorted(check.name for check in self.checks if check.failed)

    def check(self, name: str) -> CheckResult | None:
        return next((check for check in self.checks if check.name == name), None)

    def quorum_windows(self) -> list[dict[str, Any]]:
        check = self.check("quorum")
        return list(check.details.get("windows", [])) if check is not None else []

    def convergence_times(self) -> list[dict[str, Any]]:
        check = self.check("convergence")
        return list(check.details.get("operation_times", [])) if check is not None else []

    def failover_times(self) -> list[dict[str, Any]]:
        return failover_times(self.timeline)

    def explain(self) -> str:
        lines = [f"{self.experiment.name} seed {self.experiment.seed}: "
                 f"{'passed' if self.passed else 'FAILED ' + ', '.join(self.failed_checkers)}"]
        for check in self.checks:
            lines.append(f"  {check.name}: {check.status} - {check.summary}")
            if check.failed:
                lines.extend("    " + line for line in check.lines[:20])
        if self.failure_file is not None:
            lines.append(f"  replay with: shoal chaos replay {self.failure_file}")
        return "\n".join(lines)


def failover_times(timeline: Timeline) -> list[dict[str, Any]]:
    """For each leadership that ended before the run did: when, and how long
    until a leader of a higher term was elected."""
    spans = sorted(timeline.leaders, key=lambda span: (span.start_ms, span.term))
    result = []
    for span in spans:
        if span.end_ms >= timeline.end_ms:
            continue
        successor = next((other for other in spans if other.term > span.term and other.start_ms >= span.start_ms),
                         None)
        took = None if successor is None else max(0, successor.start_ms - span.end_ms)
        result.append({"lost_ms": span.end_ms, "old": span.node, "term": None if successor is None else successor.term,
                       "new": None if successor is None else successor.node, "took_ms": took})
    return result


def derive_seeds(seed: int) -> dict[str, int]:
    root = random.Random(seed)
    return {name: root.getrandbits(63) for name in ("cluster", "nemesis", "workload")}


def default_cluster_factory(experiment: Experiment, seed: int) -> Cluster:
    from chaos.cluster import SimCluster

    return SimCluster(experiment, seed)


def run_experiment(experiment: Experiment, *, out_dir: str | Path | None = None, progress: bool = False,
                   cluster_factory: ClusterFactory | None = None, write_png: bool = True,
                   linearizability_time_limit_s: float = LINEARIZABILITY_TIME_LIMIT_S) -> RunResult:
    """Run ``experiment`` in the simulator and judge it; write outputs when ``out_dir``."""
    wall_started = time.perf_counter()
    # CPU time beside wall time: on a shared machine the wall clock also
    # counts the time this process waited for a core.
    cpu_started = time.process_time()
    seeds = derive_seeds(experiment.seed)
    cluster = (cluster_factory or default_cluster_factory)(experiment, seeds["cluster"])
    timeline = Timeline()
    nemesis = Nemesis(cluster, [n.name for n in experiment.managers], [n.name for n in experiment.workers],
                      random.Random(seeds["nemesis"]), timeline)
    history = History()
    workload_rng = random.Random(seeds["workload"])
    kv = KvClients(experiment.kv, history, workload_rng) if experiment.kv is not None else None
    services = ServiceClient(experiment.services, history, SERVICE_PROCESS_BASE)
    events: list[Event] = list(experiment.schedule)
    step_ms = experiment.timing.tick_ms
    total_ms = experiment.duration_ms + experiment.settle_ms
    stop_invoking_ms = total_ms - (experiment.kv.timeout_ms if experiment.kv is not None else 0)
    samples: list[StoreSample] = []
    open_leaders: dict[tuple[str, int], int] = {}
    healed = False
    heal_ms = experiment.duration_ms

    progress_bar = None
    if progress:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        progress_bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                TextColumn("{task.completed:.0f}/{task.total:.0f} simulated s"),
                                TimeElapsedColumn(), transient=False)
        progress_bar.start()
        bar_task = progress_bar.add_task(f"{experiment.name} seed {experiment.seed}", total=total_ms / 1000)

    def kv_done(request: KvRequest) -> Callable[[Outcome, Any, str | None], None]:
        def done(outcome: Outcome, value: Any, error: str | None) -> None:
            assert kv is not None
            kv.complete(request, outcome, value, cluster.now_ms, error)
        return done

    def service_done(request: ServiceRequest) -> Callable[[Outcome, str | None], None]:
        def done(outcome: Outcome, error: str | None) -> None:
            services.complete(request, outcome, cluster.now_ms, error)
        return done

    now_ms = 0
    last_sample_ms = -SAMPLE_MS
    # The loop runs once per Raft tick (1,200 times per simulated 2 minutes):
    # bound methods are looked up once, and the leader bookkeeping runs only
    # when the list of leaders differs from the last tick's (it rarely does).
    run_until = cluster.run_until
    leaders_now = cluster.leaders
    submit_kv = cluster.submit_kv
    last_leaders: list[tuple[str, int]] | None = None
    try:
        while now_ms < total_ms:
            while events and events[0].at_ms <= now_ms:
                nemesis.apply(events.pop(0), now_ms)
            if not healed and now_ms >= experiment.duration_ms:
                # The fault phase is over: heal everything, then judge convergence.
                nemesis.apply(Event(now_ms, "heal-all"), now_ms)
                healed = True
                heal_ms = now_ms
            if kv is not None:
                if now_ms >= stop_invoking_ms:
                    kv.stop()
                for kv_request in kv.poll(now_ms):
                    submit_kv(kv_request, kv_done(kv_request))
            if services.pending:
                for service_request in services.poll(now_ms):
                    cluster.submit_service(service_request, service_done(service_request))
            now_ms += step_ms
            run_until(now_ms)
            if kv is not None:
                kv.expire(now_ms)
            if services.in_flight:
                services.expire(now_ms)
            leaders = leaders_now()
            if leaders != last_leaders:
                _track_leaders(leaders, open_leaders, timeline, now_ms)
                last_leaders = leaders
            if now_ms - last_sample_ms >= SAMPLE_MS:
                last_sample_ms = now_ms
                sample = cluster.sample_store()
                if sample is not None:
                    samples.append(sample)
            if progress_bar is not None and now_ms % 1000 == 0:
                progress_bar.update(bar_task, completed=now_ms / 1000)
    finally:
        if progress_bar is not None:
            progress_bar.update(bar_task, completed=now_ms / 1000)
            progress_bar.stop()
    # Anything still open has an unknown outcome.
    if kv is not None:
        for request in sorted(kv.in_flight.values(), key=lambda request: request.process):
            kv.complete(request, "info", None, now_ms, error="run ended before an answer")
    for request in sorted(services.in_flight.values(), key=lambda request: request.process):
        services.complete(request, "info", now_ms, error="run ended before an answer")
    timeline.end_ms = now_ms
    for (node, term), start_ms in sorted(open_leaders.items()):
        timeline.leaders.append(LeaderSpan(node, term, start_ms, now_ms))
    timeline.leaders.sort(key=lambda span: (span.start_ms, span.term, span.node))
    nemesis.close_all_bands(now_ms)
    timeline.faults.sort(key=lambda band: (band.start_ms, band.label))
    sim_wall_s = time.perf_counter() - wall_started
    sim_cpu_s = time.process_time() - cpu_started

    checks = run_checkers(experiment, cluster, history, timeline, samples, services, heal_ms,
                          linearizability_time_limit_s)
    encoded = encode_history(history)
    stats = dict(cluster.stats())
    wall_s = time.perf_counter() - wall_started
    stats.update({
        "sim_seconds": now_ms / 1000, "simulation_wall_seconds": round(sim_wall_s, 3),
        "simulation_cpu_seconds": round(sim_cpu_s, 3),
        "speedup_cpu": round((now_ms / 1000) / max(sim_cpu_s, 1e-9), 1),
        "wall_seconds": round(wall_s, 3), "speedup": round((now_ms / 1000) / max(sim_wall_s, 1e-9), 1),
        "operations": sum(1 for op in history if op.type == "invoke"),
        "skipped_faults": [text for _time, text in nemesis.skipped],
    })
    result = RunResult(experiment, history, timeline, checks, samples, stats,
                       hashlib.sha256(encoded).hexdigest(), heal_ms)
    if out_dir is not None:
        write_outputs(result, Path(out_dir), encoded, write_png)
    return result


OP_FIELDS = ("index", "process", "type", "f", "key", "value", "time_ns", "node", "error")


_op_fields = operator.attrgetter(*OP_FIELDS)
# json.dumps(..., sort_keys=True) builds a new encoder per call: one for all lines.
_HISTORY_ENCODER = json.JSONEncoder(sort_keys=True)


def encode_history(history: History) -> bytes:
    """history.jsonl bytes: exactly ``Op.to_json()`` per line, without the deep
    copy ``dataclasses.asdict`` makes (a tenth of a short run's time)."""
    encode = _HISTORY_ENCODER.encode
    lines = [encode({name: value for name, value in zip(OP_FIELDS, _op_fields(op)) if value is not None})
             for op in history]
    lines.append("")
    return "\n".join(lines).encode() if len(lines) > 1 else b""


def _track_leaders(leaders: list[tuple[str, int]], open_leaders: dict[tuple[str, int], int], timeline: Timeline,
                   now_ms: int) -> None:
    current = set(leaders)
    if open_leaders.keys() == current:
        return  # no change: almost every tick
    for key in sorted(set(open_leaders) - current):
        start_ms = open_leaders.pop(key)
        timeline.leaders.append(LeaderSpan(key[0], key[1], start_ms, now_ms))
    for key in sorted(current - set(open_leaders)):
        open_leaders[key] = now_ms


def run_checkers(experiment: Experiment, cluster: Cluster, history: History, timeline: Timeline,
                 samples: list[StoreSample], services: ServiceClient, heal_ms: int,
                 linearizability_time_limit_s: float) -> list[CheckResult]:
    wanted = set(experiment.checkers)
    checks: list[CheckResult] = []
    if "raft-safety" in wanted:
        checks.append(cluster.safety_check())
    if "linearizability" in wanted:
        checks.append(linearizability_check(history, linearizability_time_limit_s))
    if "durability" in wanted:
        checks.append(cluster.durability_check(history))
    if "quorum" in wanted:
        timeout_ms = experiment.kv.timeout_ms if experiment.kv is not None else 1000
        checks.append(check_quorum(history, timeline.conditions, end_ms=timeline.end_ms,
                                   grace_ms=quorum_grace_ms(experiment), timeout_ms=timeout_ms))
    if "convergence" in wanted:
        operations = [(op.at_ms, op.name, op.op) for op in experiment.services]
        checks.append(check_convergence(samples, heal_ms=heal_ms, bound_ms=experiment.convergence_bound_ms,
                                        operations=operations))
    if "vip" in wanted:
        checks.append(check_vip(cluster.vip_observations()))
    return checks


def quorum_grace_ms(experiment: Experiment) -> int:
    """After a change the cluster needs: up to one election timeout T for a
    stale leader to notice (CheckQuorum), a randomized timeout in [T, 2T) for a
    follower to campaign, a PreVote and a Vote round, and sometimes a second
    try after a split vote.  Five T cover that (measured: failovers after a
    one-way cut take about 4 T on this simulator)."""
    return 5 * experiment.election_timeout_ms


def linearizability_check(history: History, time_limit_s: float) -> CheckResult:
    from chaos.checkers.linearizability import check_linearizability
    from chaos.checkers.models import KVModel

    kv_ops = [op for op in history if not op.f.startswith("service-")]
    if not kv_ops:
        return CheckResult("linearizability", "skipped", "no key-value operations in the run")
    result = check_linearizability(History(_renumber(kv_ops)), KVModel(), time_limit_s=time_limit_s)
    status = {"ok": "pass", "illegal": "fail", "unknown": "unknown"}[result.verdict]
    lines = result.report_lines()
    return CheckResult("linearizability", status, lines[0].split(": ", 1)[-1], lines[1:40], result.to_dict())


def _renumber(ops: list) -> list:
    from dataclasses import replace

    return [replace(op, index=position) for position, op in enumerate(ops)]


def write_outputs(result: RunResult, out_dir: Path, encoded_history: bytes, write_png: bool = True) -> None:
    from chaos.report import save_failure, write_results_json, write_timeline_png

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "history.jsonl").write_bytes(encoded_history)
    result.out_dir = out_dir
    if not result.passed:
        result.failure_file = save_failure(result, out_dir / "failure.json")
    write_results_json(result, out_dir / "results.json")
    if write_png:
        write_timeline_png(result, out_dir / "timeline.png")
