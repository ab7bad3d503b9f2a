"""The compiled simulator (chaos.sim._<name>_c, built from chaos/sim/{client,
disk,network,host,simulation}.py plus their .pxd declarations) and its
pure-Python twin (the sources themselves, SHOAL_PURE=1) must behave
identically: the same seeds give the same simulator trace digests, the same
client outcomes and counters, and the same chaos-experiment histories byte for
byte (a random fault schedule, every checker on).

The two cannot share one process (their classes must not mix), so the same
script runs in two subprocesses and the outputs are compared, as in
tests/consensus/test_raft_compiled_twin.py.  When the extensions are not built
the compiled run falls back to the twin and the agreement test is skipped.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import chaos.sim._select_c as sim_select_c
from consensus import _build_core_c as build_c

REPOSITORY = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPOSITORY / "tests" / "consensus"))
from test_raft_compiled_twin import run_core  # noqa: E402  (one script, two subprocesses: pure and compiled)

# One script, run once per implementation.  It prints the simulator and core
# in use, then (1) simulator runs with lossy, duplicating, reordering links,
# crashes (with and without unsynced-write loss), restarts, pauses (requests
# queued at a paused node), a partition, a one-way cut, clock drift and a
# worker process: trace digest, client outcomes and counters; (2) chaos
# experiments with a random fault schedule and every checker: the history's
# SHA-256, the verdicts and the statistics.
AGREEMENT_SCRIPT = r'''
import hashlib, random
import chaos.sim._select_c as sim_select_c
import consensus._select_c as core_select_c
from chaos.sim import MILLISECOND_US, SECOND_US, KVApp, LinkConfig, SimConfig, Simulation

print("implementation", sim_select_c.implementation(), core_select_c.implementation())

class Echo:
    """A worker: answers every payload to its sender, counts ticks."""
    def on_start(self, ctx):
        self.ticks = 0
    def on_message(self, ctx, src, payload):
        ctx.send(src, ("echo", payload, ctx.now_us, ctx.rng.random()))
    def on_tick(self, ctx):
        self.ticks += 1
        if self.ticks % 7 == 0:
            ctx.send(1, ("hello", ctx.address, self.ticks))

def sim_digest(seed):
    sim = Simulation(SimConfig(seed=seed, snapshot_every_entries=20,
                               default_link=LinkConfig(loss=0.03, duplicate=0.05, reorder=0.1)))
    sim.add_cluster(3, learner_count=1)
    sim.add_process(50, lambda address: Echo())
    rng = sim.client_rng
    outcomes = []
    record = lambda result: outcomes.append((result.op_id, result.kind, result.status, repr(result.value),
                                             result.error, result.node, result.index, result.complete_us))
    for step in range(60):
        sim.run_for(rng.randrange(250 * MILLISECOND_US))
        node = rng.choice(sim.live_managers() or [1])
        if rng.random() < 0.3:
            sim.read(node, "k%d" % rng.randrange(3), callback=record)
        else:
            sim.propose(node, KVApp.put("k%d" % rng.randrange(3), step), callback=record)
        if step == 8:
            sim.set_default_link(LinkConfig())  # plain links: packets coalesce
        if step == 12:
            sim.crash(sim.leader() or 1, lose_unsynced=True)
        if step == 18:
            sim.pause(2)
            sim.propose(2, KVApp.put("paused", step), callback=record)
        if step == 22:
            sim.resume(2)
            for node_id in list(sim.managers):
                if not sim.managers[node_id].alive:
                    sim.restart(node_id)
        if step == 28:
            sim.partition([1, 50], [2, 3, 4])
        if step == 34:
            sim.heal()
            sim.block(sim.leader() or 1, 3)
            sim.set_clock_drift(3, 1.3)
        if step == 40:
            sim.heal()
            sim.crash(rng.choice([1, 2, 3]))
            sim.set_link(1, 2, LinkConfig(delay_us_min=0, delay_us_max=0))
        if step == 46:
            for node_id in list(sim.managers):
                if not sim.managers[node_id].alive:
                    sim.restart(node_id)
        if step == 50:
            sim.transfer_leadership(sim.leader() or 1, 2)
    sim.run_for(3 * SECOND_US)
    hosts = [(node_id, host.alive, host.dropped_messages, getattr(host, "applied_entries", None),
              getattr(host, "snapshot_index", None), host.incarnation) for node_id, host in sorted(sim.hosts.items())]
    network = sim.network
    counters = (sim.events_run, sim.undeliverable_packets, network.packets_sent, network.packets_dropped,
                network.packets_duplicated, network.packets_coalesced,
                [sim.managers[n].disk.syncs for n in sorted(sim.managers)])
    digest = hashlib.sha256(repr((outcomes, hosts, counters)).encode()).hexdigest()
    return len(sim.trace), sim.trace_digest(), len(outcomes), digest

for seed in (3, 11):
    print("sim", seed, *sim_digest(seed))

from benchmarks.chaos import _experiment
from chaos.runner import run_experiment

for seed in (5, 8):
    result = run_experiment(_experiment(seed, 20_000, 5_000, random_faults=True), write_png=False)
    # Summaries without the checkers' own timings ("0.001 s").
    verdicts = sorted((check.name, check.status, check.summary.split(", 0.")[0]) for check in result.checks)
    stats = {key: value for key, value in sorted(result.stats.items())
             if not key.startswith("speedup") and not key.endswith("_seconds") or key == "sim_seconds"}
    print("chaos", seed, len(list(result.history)), result.history_sha256, verdicts, stats)
'''


def test_compiled_and_pure_simulators_agree() -> None:
    compiled = run_core(pure=False, script=AGREEMENT_SCRIPT)
    pure = run_core(pure=True, script=AGREEMENT_SCRIPT)
    assert pure[0] == "implementation python python", pure[0]
    if compiled[0] != "implementation cython cython":
        pytest.skip("compiled simulator not built (python setup.py build_ext --inplace)")
    assert compiled[1:] == pure[1:]
    sims = [line.split() for line in pure if line.startswith("sim ")]
    assert len(sims) == 2 and all(int(fields[2]) > 1000 and int(fields[4]) > 30 for fields in sims), sims
    chaos_runs = [line.split() for line in pure if line.startswith("chaos ")]
    assert len(chaos_runs) == 2 and all(int(fields[2]) > 50 for fields in chaos_runs), chaos_runs


def test_one_simulator_per_process() -> None:
    """Every simulator class is the selected implementation's, and the
    simulator runs compiled only together with the compiled Raft core."""
    import chaos.sim
    import consensus._select_c as core_select_c

    expected = "chaos.sim._{}_c" if sim_select_c.implementation() == "cython" else "chaos.sim.{}"
    for cls, module in ((chaos.sim.Simulation, "simulation"), (chaos.sim.ManagerHost, "host"),
                        (chaos.sim.ProcessHost, "host"), (chaos.sim.Network, "network"),
                        (chaos.sim.SimDisk, "disk"), (chaos.sim.ClientOp, "client")):
        assert cls.__module__ == expected.format(module), cls
    if sim_select_c.implementation() == "cython":
        assert core_select_c.implementation() == "cython"
        from chaos.sim import host, simulation

        assert simulation.ManagerHost is host.ManagerHost is chaos.sim.ManagerHost


IMPORT_FIRST_SCRIPT = r'''
import importlib, sys
module = importlib.import_module(sys.argv[1])  # first: before chaos.sim's own imports
import chaos.sim, chaos.sim._select_c as sim_select_c
print(sim_select_c.implementation(), chaos.sim.ManagerHost.__module__, chaos.sim.Simulation.__module__)
'''


@pytest.mark.parametrize("name", build_c.SIM_MODULES)
def test_each_compiled_module_imports_first(name: str) -> None:
    # _host_c cimports _simulation_c's _SimulationCore and _simulation_c imports
    # the host classes: either may be imported first (the other then finishes
    # initialising while the first is half done, see chaos/sim/_host_c.pxd).
    if sim_select_c.implementation() != "cython":
        pytest.skip("compiled simulator not built")
    done = subprocess.run([sys.executable, "-c", IMPORT_FIRST_SCRIPT, f"chaos.sim._{name}_c"], cwd=REPOSITORY,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["cython", "chaos.sim._host_c", "chaos.sim._simulation_c"], done.stdout


def test_simulator_needs_the_compiled_core_and_a_fresh_build(monkeypatch: pytest.MonkeyPatch) -> None:
    from consensus._select_c import CompiledTwin

    monkeypatch.delenv("SHOAL_PURE", raising=False)
    pure_core = CompiledTwin("consensus", ("types",), "Raft core", lambda name: "")
    pure_core._decision = "python"
    twin = CompiledTwin("chaos.sim", build_c.SIM_MODULES, "simulator", sim_select_c._source_sha256, pure_core)
    assert twin.decide() == "python"
    monkeypatch.setenv("SHOAL_PURE", "1")
    assert sim_select_c.SIM.decide() == "python"
    with pytest.raises(ValueError):
        sim_select_c.SIM.compiled("fuzz")
    monkeypatch.delenv("SHOAL_PURE")
    if sim_select_c.SIM.decide() != "cython":
        pytest.skip("compiled simulator not built")
    monkeypatch.setattr(sim_select_c, "_source_sha256", lambda name: "0" * 64)
    with pytest.warns(RuntimeWarning, match="compiled simulator is stale"):
        assert sim_select_c.SIM.decide() == "python"  # a source edited after the build


def test_sim_build_copy_is_the_source_mechanically_changed() -> None:
    source = (REPOSITORY / "chaos" / "sim" / "simulation.py").read_text(encoding="utf-8")
    copy = build_c.transform(source, "chaos.sim")
    assert "from chaos.sim._host_c import ManagerHost, ProcessHost\n" in copy
    assert "from chaos.sim._network_c import LinkConfig, Network" in copy
    assert "from consensus._types_c import" in copy  # the core's compiled classes, cimported by the .pxd
    assert "from chaos.sim.app import" in copy  # app.py is not compiled
    assert "compiled twin" not in copy and "swap_in" not in copy
    assert copy.endswith(f"SOURCE_SHA256 = {build_c.source_sha256(source)!r}\n")
    disk_copy = build_c.transform((REPOSITORY / "chaos" / "sim" / "disk.py").read_text(encoding="utf-8"), "chaos.sim")
    assert "__slots__" not in disk_copy and "from consensus._storage_c import MemoryStorage" in disk_copy
