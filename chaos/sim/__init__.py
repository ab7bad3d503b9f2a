"""Deterministic simulator: Raft managers, applications and plain processes
on a simulated network, in virtual time, from one seed.

Quick tour::

    from chaos.sim import Simulation, SimConfig, KVApp, LinkConfig
    sim = Simulation(SimConfig(seed=7), app_factory=lambda node_id: KVApp())
    sim.add_cluster(3)                       # managers 1, 2, 3 (voters), started
    sim.run_for(5 * SECOND_US)               # virtual microseconds
    leader = sim.leader()
    op = sim.propose(leader, KVApp.put("x", 1), callback=print)
    sim.read(2, "x", callback=print)         # ReadIndex via node 2
    sim.crash(leader, lose_unsynced=True); sim.partition([1, 2], [3]); sim.heal()
    sim.run_for(SECOND_US); print(op.result, sim.trace_digest())

Time and determinism
  Virtual time is integer microseconds (``sim.now_us``).  Events sit in one
  heap ordered by (time_us, sequence): ties break in the order they were
  scheduled.  Every random choice comes from a ``random.Random`` derived from
  ``SimConfig.seed`` and a subsystem name with SHA-256 (``rng.derive_rng``):
  "network", ("raft", node, incarnation), ("app", node, incarnation),
  ("process", address, incarnation), "client", "faults".  Every event is
  appended to ``sim.trace`` (tuples); ``trace_digest()`` hashes it - the same
  seed and code give the same digest.

Managers (``add_manager`` / ``add_cluster``) = RaftNode + Application +
SimDisk.  Each Raft tick (``SimConfig.tick_interval_us``, scaled per node by
``set_clock_drift``) the host ticks the core, calls ``app.on_tick``, and
handles every Ready: ``messages`` sent at once; the Ready's writes go to the
SimDisk and are fsynced ``fsync_latency_us`` later; then
``messages_after_persist`` are sent, the snapshot installed
(``app.restore``), committed entries applied (``app.apply`` for NORMAL
entries with data; CONF_CHANGE entries call ``RaftNode.apply_conf_change``),
reads served, ``advance`` called, and a snapshot taken every
``snapshot_every_entries`` applied entries (``app.snapshot``, then log
compaction keeping ``snapshot_keep_entries``).

Application protocol (chaos/sim/app.py, a manager's state machine plus its
leader-only components):
  apply(entry) -> result;  snapshot() -> bytes;  restore(bytes);
  read(query) -> value;  on_leader_change(ctx, leader_id);
  on_tick(ctx) -> list of proposals (bytes);  on_message(ctx, src, payload).
  ``ctx`` is the ManagerHost: node_id, now_us, is_leader, leader_id, rng,
  applied_index, send(dst, payload), propose(data, callback=None).
  A fresh application is built by ``app_factory(node_id)`` at every start.
  ``KVApp`` is a small default (JSON put/cas commands, read(key)).

Plain processes (workers; ``add_process(address, factory)``): factory(address)
returns an object with on_start(ctx), on_message(ctx, src, payload),
on_tick(ctx); ctx is the ProcessHost (address, now_us, rng, send).  They share
the network, faults and clock drift with managers; addresses are ints that are
not manager ids.  A manager's ``app.on_message`` receives what workers send it.

Clients: ``propose(node, data)``, ``read(node, query)``, ``conf_change(node,
ConfChange)`` return a ClientOp and call ``callback(ClientResult)`` exactly
once: status "ok" (value = apply() result / read value / new ConfState),
"fail" (certainly not done: not leader (hint in error), dropped, replaced by
another leader's entry, node down) or "timeout" (unknown outcome; after
``timeout_us``, default ``client_timeout_us``).  Requests reach the node at
once (co-located client); a paused node queues them.
``transfer_leadership(node, target)``.

Network: a node's sends to one destination at one instant over a plain link
(no loss/dup/reorder) share one packet and one delay draw (writes flushed
together on a connection); faulty links keep one packet per send.
``network.packets_sent`` counts packets, ``packets_coalesced`` the sends that
joined one.

Faults: crash(node, lose_unsynced=False), restart(node), pause(node),
resume(node), partition(*groups) (symmetric), isolate(node), block(src, dst)
(one-way), heal(), set_link(src, dst, LinkConfig(delay_us_min, delay_us_max,
loss, duplicate, reorder, reorder_delay_us), both_ways=True),
set_default_link(link), set_clock_drift(node, rate).

Driving: schedule(delay_us, fn), schedule_at(at_us, fn), step() (one
event), run_for(us), run_until_time(us), run_until(predicate, timeout_us).
Views: managers / processes / hosts dicts, leader(), live_managers(),
host.raft (the RaftNode, None while down), host.app, host.disk.durable.

Ticks run on a grid: a host whose tick interval is I ticks at the multiples
of I, and all hosts sharing an interval tick in one event, in address order
(clock drift moves a host to another interval).

Random schedules: chaos/sim/fuzz.py has ``run_schedule(seed, voters, steps,
...)`` (Step(wait_ms, action, a, b); ACTIONS lists the faults) with the
safety checker on every event, a background register workload, read
linearizability and a liveness phase; ``format_schedule`` prints a replay.

Observers (``add_observer``) may define after_step(sim) (after EVERY event),
on_ready(sim, host, ready) (each Ready, before its effects),
on_apply(sim, host, entries), on_crash(sim, host), on_restart(sim, host).
chaos/checkers/raft_safety.py's RaftSafetyChecker is one.
"""
from chaos.sim.app import Application, BaseApplication, HostContext, KVApp
from chaos.sim.client import FAIL, OK, TIMEOUT, ClientOp, ClientResult
from chaos.sim.disk import SimDisk
from chaos.sim.host import ManagerHost, ProcessHost, SimProcess
from chaos.sim.network import LinkConfig, Network
from chaos.sim.rng import derive_rng, derive_seed
from chaos.sim.simulation import MILLISECOND_US, SECOND_US, SimConfig, Simulation

__all__ = [
    "Application", "BaseApplication", "HostContext", "KVApp", "FAIL", "OK", "TIMEOUT", "ClientOp",
    "ClientResult", "SimDisk", "ManagerHost", "ProcessHost", "SimProcess", "LinkConfig", "Network",
    "derive_rng", "derive_seed", "MILLISECOND_US", "SECOND_US", "SimConfig", "Simulation",
]
