"""End-to-end runs of the harness on the simulated swarm: determinism, the
default experiment, CLI exit codes 0 and 1, replay of a saved failure, a
planted bug found from random schedules and shrunk, the sweep."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaos.cli import EXIT_FAIL, EXIT_PASS, main
from chaos.experiment import Experiment, KvWorkload, ServiceOp, default_experiment, default_nodes
from chaos.hunt import hunt
from chaos.replay import replay
from chaos.runner import run_experiment
from chaos.schedule import Schedule, parse_fault_flag
from chaos.shrink import is_one_minimal

READ_BUG = (("unsafe_no_read_index", True),)


def small_experiment(seed: int = 3, **changes: object) -> Experiment:
    experiment = Experiment(
        name="small", seed=seed, duration_ms=12_000, settle_ms=6_000, nodes=default_nodes(3, 1),
        kv=KvWorkload(clients=3, key_count=2, interval_ms=100, timeout_ms=1000),
        services=(ServiceOp(1000, "create", "web", replicas=2), ServiceOp(4000, "scale", "web", replicas=3)),
        schedule=Schedule([parse_fault_flag("3s:kill-leader"), parse_fault_flag("5s:partition::mode=random-halves"),
                           parse_fault_flag("8s:heal"), parse_fault_flag("9s:restart:killed")]),
        convergence_bound_ms=6000)
    return experiment.replace(**changes)


def test_same_seed_gives_a_byte_identical_history(tmp_path: Path) -> None:
    first = run_experiment(small_experiment(), out_dir=tmp_path / "a", write_png=False)
    second = run_experiment(small_experiment(), out_dir=tmp_path / "b", write_png=False)
    one = (tmp_path / "a" / "history.jsonl").read_bytes()
    assert one == (tmp_path / "b" / "history.jsonl").read_bytes()
    assert first.history_sha256 == second.history_sha256 and len(one) > 1000
    other = run_experiment(small_experiment(seed=4), write_png=False)
    assert other.history_sha256 != first.history_sha256


def test_default_experiment_passes_and_writes_its_outputs(tmp_path: Path) -> None:
    result = run_experiment(default_experiment(), out_dir=tmp_path)
    assert result.passed, result.explain()
    assert {check.name for check in result.checks} == {"raft-safety", "linearizability", "durability", "quorum",
                                                        "convergence", "vip"}
    assert all(check.status == "pass" for check in result.checks), result.explain()
    for name in ("history.jsonl", "results.json", "timeline.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert not (tmp_path / "failure.json").exists()
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["passed"] is True
    windows = result.quorum_windows()
    # The seed's lesson: losing two of three managers is an expected unavailable window.
    assert any(window["expected"] and window["duration_ms"] >= 5000 for window in windows)
    assert all(window["expected"] for window in windows)
    assert result.failover_times() and result.convergence_times()


def test_cli_run_exits_0_on_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--seed", "5", "--duration", "8", "--faults", "3s:kill-leader", "6s:restart:killed",
                 "--out", str(tmp_path), "--no-progress", "--no-png"])
    assert code == EXIT_PASS, capsys.readouterr().out
    assert (tmp_path / "history.jsonl").exists()


@pytest.fixture(scope="module")
def read_bug_hunt():
    """Budget: 20 random 20 s schedules of 10 events on 3 managers with 4 clients
    (it was found at the 2nd when written); then shrunk to a 1-minimal schedule."""
    base = Experiment(name="read-bug", duration_ms=20_000, settle_ms=5_000, nodes=default_nodes(3, 0),
                      kv=KvWorkload(clients=4, key_count=2, interval_ms=50, timeout_ms=500),
                      raft_unsafe=READ_BUG, checkers=("raft-safety", "linearizability", "durability"))
    return hunt(base, budget=20)


def test_read_index_bug_is_found_from_random_schedules_and_shrunk(read_bug_hunt) -> None:
    found = read_bug_hunt
    assert found.found and "linearizability" in found.result.failed_checkers
    shrunk = found.shrunk.experiment
    assert len(shrunk.schedule) <= 10 and found.shrunk.minimal
    failing = lambda e: "linearizability" in run_experiment(e, write_png=False).failed_checkers  # noqa: E731
    assert failing(shrunk) and is_one_minimal(shrunk, failing)
    # The same schedule with ReadIndex on: no failure.
    assert run_experiment(shrunk.replace(raft_unsafe=()), write_png=False).passed


def test_cli_exits_1_on_a_planted_bug_and_the_failure_replays(read_bug_hunt, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    experiment_file = tmp_path / "read-bug.yaml"
    experiment_file.write_text(yaml.safe_dump(read_bug_hunt.shrunk.experiment.to_dict()))
    out = tmp_path / "out"
    code = main(["run", str(experiment_file), "--out", str(out), "--no-progress", "--no-png"])
    printed = capsys.readouterr().out
    assert code == EXIT_FAIL
    assert "replay with: shoal chaos replay" in printed and "linearizability" in printed
    failure = out / "failure.json"
    saved = json.loads(failure.read_text())
    assert saved["failed"] == ["linearizability"]
    outcome = replay(failure)
    assert outcome.reproduced and outcome.same_history, outcome.describe()
    assert main(["replay", str(failure), "--out", str(tmp_path / "again")]) == EXIT_FAIL
    assert "reproduced exactly" in capsys.readouterr().out


def test_sweep_summarises_seeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from chaos.sweep import run_sweep

    code = run_sweep(small_experiment(duration_ms=6000, settle_ms=4000, services=(),
                                      schedule=Schedule([parse_fault_flag("2s:kill-leader")])),
                     seeds=2, jobs=1, out_dir=tmp_path)
    assert code == 0
    assert "2 of 2 seeds passed" in capsys.readouterr().out


def test_history_encoding_matches_op_to_json() -> None:
    from chaos.runner import encode_history

    result = run_experiment(small_experiment(duration_ms=4000, settle_ms=2000, schedule=Schedule()),
                            write_png=False)
    assert encode_history(result.history) == "".join(op.to_json() + "\n" for op in result.history).encode()


def test_kv_entries_are_decoded_once_and_malformed_ones_still_get_the_state_machines_error() -> None:
    from chaos.cluster import KV_COMMANDS_CACHED_MAX, KV_TAG, ManagerApp, SimCluster
    from consensus.kv import KvOp, KvResult, KvStatus, encode_command
    from consensus.types import Entry

    cluster = SimCluster(small_experiment(duration_ms=1000).replace(checkers=()), seed=5)
    first, second = ManagerApp(cluster, 1), ManagerApp(cluster, 2)
    data = KV_TAG + encode_command(KvOp.PUT, "k", "v", client_id=9, request_id=1)
    cluster.kv_commands.clear()
    # The result object itself (it never crosses a wire in the simulator).
    assert first.apply(Entry(term=1, index=1, data=data)) == KvResult(KvStatus.OK)
    assert list(cluster.kv_commands) == [data]
    assert second.apply(Entry(term=1, index=1, data=data)) == KvResult(KvStatus.OK)
    assert first.kv.snapshot() == second.kv.snapshot() and second.kv.read("k") == "v"
    for garbage in (KV_TAG + b"\xc1", KV_TAG + encode_command(KvOp.PUT, "k", None)):
        refused = first.apply(Entry(term=1, index=2, data=garbage))
        assert refused.status == KvStatus.ERROR and refused.value and garbage not in cluster.kv_commands
    for request_id in range(KV_COMMANDS_CACHED_MAX + 1):  # bounded
        cluster.kv_command(KV_TAG + encode_command(KvOp.GET, "k", client_id=9, request_id=request_id))
    assert len(cluster.kv_commands) <= KV_COMMANDS_CACHED_MAX
