"""SimCluster's kv client path: the answers a kv write can get and how they are reported."""
from __future__ import annotations

from typing import Any

import pytest

from chaos.cluster import KV_TAG, ManagerApp, SimCluster, _Attempt
from chaos.experiment import Experiment, KvWorkload, default_nodes
from chaos.schedule import Schedule
from chaos.sim import FAIL, OK, ClientResult
from chaos.workloads import KvRequest
from consensus.kv import KvOp, KvResult, KvStatus, encode_command
from consensus.types import Entry


@pytest.fixture(scope="module")
def cluster() -> SimCluster:
    experiment = Experiment(name="kv-path", seed=4, duration_ms=1000, settle_ms=0,
                            nodes=default_nodes(3, 1), services=(), schedule=Schedule(), checkers=(),
                            kv=KvWorkload(clients=1, key_count=1, interval_ms=100, timeout_ms=1000))
    return SimCluster(experiment, seed=4)


def _answer(cluster: SimCluster, f: str, value: Any, status: str = OK, error: str | None = None) -> list[Any]:
    request = KvRequest(0, 1, f, "k", None if f == "get" else "0.1", "0.0" if f == "cas" else None, 0, 10_000)
    answers: list[Any] = []
    attempt = _Attempt(request, lambda *answer: answers.append(answer))
    attempt.sent = 1
    cluster._answer(attempt, 1, ClientResult(1, "propose", status, value, error, node=1))
    assert attempt.finished == bool(answers)
    return answers


def test_write_answers_read_the_apply_result_object(cluster: SimCluster) -> None:
    assert _answer(cluster, "put", KvResult(KvStatus.OK)) == [("ok", "0.1", None)]
    assert _answer(cluster, "cas", KvResult(KvStatus.CAS_FAILED, "0.7")) == [
        ("fail", "0.7", "cas mismatch: k is '0.7'")]
    assert _answer(cluster, "put", KvResult(KvStatus.SESSION_EXPIRED, "gone")) == [
        ("info", None, "kv session cannot tell: gone")]
    assert _answer(cluster, "put", KvResult(KvStatus.ERROR, "bad")) == [("fail", None, "kv error: bad")]
    assert _answer(cluster, "get", "0.3") == [("ok", "0.3", None)]


def test_wire_form_results_are_still_read_and_garbage_is_unknown(cluster: SimCluster) -> None:
    assert _answer(cluster, "put", [int(KvStatus.OK), None]) == [("ok", "0.1", None)]
    assert _answer(cluster, "cas", [int(KvStatus.CAS_FAILED), "0.2"]) == [
        ("fail", "0.2", "cas mismatch: k is '0.2'")]
    for garbage in (None, [9, None], ["x", 1], b"\x00", [0]):
        (outcome, value, error), = _answer(cluster, "put", garbage)
        assert outcome == "info" and value is None and error.startswith("unreadable kv result"), garbage


def test_a_replaced_entry_is_a_definite_failure(cluster: SimCluster) -> None:
    (outcome, value, error), = _answer(cluster, "put", None, FAIL, "entry 5 was replaced by term 3")
    assert outcome == "fail" and value is None and "lost leadership" in error


def test_replicas_get_equal_results_and_states(cluster: SimCluster) -> None:
    first, second = ManagerApp(cluster, 1), ManagerApp(cluster, 2)
    entries = [Entry(term=1, index=index, data=KV_TAG + data) for index, data in enumerate([
        encode_command(KvOp.PUT, "k", "a", client_id=3, request_id=1),
        encode_command(KvOp.CAS, "k", "b", "zzz", client_id=3, request_id=2),
        encode_command(KvOp.CAS, "k", "b", "a", client_id=3, request_id=3),
        encode_command(KvOp.PUT, "k", "a", client_id=3, request_id=1),  # a retry: the cached result
        b"\x93\x01",  # truncated
    ], start=1)]
    results = [first.apply(entry) for entry in entries]
    assert results == [second.apply(entry) for entry in entries]
    assert [result.status for result in results] == [KvStatus.OK, KvStatus.CAS_FAILED, KvStatus.OK,
                                                     KvStatus.OK, KvStatus.ERROR]
    assert results[1].value == "a" and first.kv.snapshot() == second.kv.snapshot()
    assert first.kv.read("k") == "b" and first.applied_index == len(entries)


def test_kv_sessions_keep_only_unacknowledged_results() -> None:
    """Each write acknowledges its process's earlier requests, so a replica's
    session table holds at most the latest result per process (it used to keep
    every result of the run, re-encoded by every snapshot)."""
    from chaos.runner import run_experiment

    clusters: list[SimCluster] = []

    def factory(experiment: Experiment, seed: int) -> SimCluster:
        clusters.append(SimCluster(experiment, seed))
        return clusters[-1]

    experiment = Experiment(name="kv-sessions", seed=2, duration_ms=3000, settle_ms=0,
                            nodes=default_nodes(3, 1), services=(), schedule=Schedule(), checkers=(),
                            kv=KvWorkload(clients=3, key_count=2, interval_ms=20, timeout_ms=1000))
    result = run_experiment(experiment, cluster_factory=factory, write_png=False)
    writes = [op for op in result.history if op.type == "ok" and op.f in ("put", "cas")]
    assert len(writes) > 20
    for node_id in clusters[0].manager_ids:
        sessions = clusters[0].sim.managers[node_id].app.kv._sessions
        assert sessions and all(len(session.results) <= 1 for session in sessions.values()), node_id
