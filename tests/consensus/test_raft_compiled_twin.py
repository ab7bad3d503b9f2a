"""The compiled Raft core (consensus._*_c, built from the .py sources plus
their .pxd declarations) and its pure-Python twin (the sources themselves,
SHOAL_PURE=1) must behave identically: the same seeds give the same message
transcripts, the same simulator trace digests and the same values.

The two cores cannot share one process (their classes must not mix), so the
agreement tests run the same script in two subprocesses and compare outputs.
When the extensions are not built the compiled run falls back to the twin
and those tests are skipped with a reason.
"""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import consensus._select_c as select_c
from consensus import _build_core_c as build_core_c

REPOSITORY = Path(__file__).resolve().parents[2]

# One script, run once per core.  It prints the core in use, then digests of
# (1) random runs of the bare core on tests/consensus/raft_network.py (drops,
# duplicates, partitions, campaigns, proposals, reads), and
# (2) a simulator run with lossy, duplicating, reordering links, a crash with
# unsynced-write loss, a restart and a partition; (3) random, mostly malformed
# peer messages (every outcome and the state after it); then reprs and
# equality of the value types.
AGREEMENT_SCRIPT = r'''
import hashlib, random, sys
sys.path.insert(0, "tests/consensus")
import consensus._select_c as select_c
from consensus.errors import RaftError
from consensus.types import Entry, EntryType, HardState, Message, MessageType, Ready
from raft_network import Net, describe_message

print("implementation", select_c.implementation())

def net_digest(seed):
    rng = random.Random(seed)
    net = Net([1, 2, 3], learners=[4], seed=seed)
    net.log_lines = []
    digest = hashlib.sha256()
    for step in range(400):
        action = rng.randrange(10)
        node_id = rng.choice(sorted(net.nodes))
        if action < 4:
            net.tick_all(1)
        elif action < 6:
            leader = net.leader()
            if leader is not None:
                try:
                    net.nodes[leader].propose(b"v%d" % step)
                except RaftError as error:
                    net.log_lines.append("refused " + type(error).__name__)
        elif action == 6:
            net.isolate(node_id)
        elif action == 7:
            net.heal()
        elif action == 8:
            try:
                net.nodes[node_id].read_index(b"r%d" % step)
            except RaftError as error:
                net.log_lines.append("refused read " + type(error).__name__)
            if rng.random() < 0.3:
                net.nodes[node_id].campaign()
        else:
            net.drop_filter = (lambda m, cut=rng.randrange(5): (m.term + m.index) % 5 == cut) if rng.random() < 0.5 else None
        if rng.random() < 0.2 and net.queue:
            net.queue.append(net.queue[rng.randrange(len(net.queue))])  # a duplicate
        net.stabilize()
    for line in net.log_lines:
        digest.update(line.encode() + b"\n")
    for node_id, node in sorted(net.nodes.items()):
        digest.update(repr((node_id, node.term, node.vote, node.lead, int(node.role), node.log.committed,
                            node.log.applied, net.log_terms(node_id), [e.data for e in net.applied[node_id]],
                            net.read_states[node_id])).encode())
    return len(net.log_lines), digest.hexdigest()

for seed in (1, 2, 3):
    print("net", seed, *net_digest(seed))

def malformed_digest(seed):
    # Random plausible peer messages, many with a field or two corrupted, into
    # one follower: the outcome of every step (exception type and text, or ok)
    # and the node's state after it.
    rng = random.Random(seed)
    net = Net([1, 2, 3], seed=seed)
    net.elect(1)
    node = net.nodes[2]
    ints = [-3, -1, 0, 1, 2, 3, 5, 40, 2**70, "x", None, True, 2.5]
    digest = hashlib.sha256()
    outcomes = set()
    network_types = [t for t in MessageType if t not in (MessageType.HUP, MessageType.BEAT, MessageType.PROP,
                                                          MessageType.CHECK_QUORUM)]
    for step in range(600):
        # A plausible message (from a peer, near the node's term and log) ...
        term = node.term + rng.choice([-1, 0, 0, 0, 1])
        last = node.log.last_index()
        index = rng.randrange(max(0, last - 2), last + 2)
        kind = rng.choice(network_types)
        entries = tuple(Entry(max(1, term - rng.randrange(2)), index + 1 + i, EntryType.NORMAL, b"v")
                        for i in range(rng.randrange(3))) if kind == MessageType.APP else ()
        fields = [kind, 2, rng.choice([1, 3]), term, max(0, term - rng.randrange(2)), index, entries,
                  rng.randrange(last + 2), rng.random() < 0.2, rng.randrange(last + 1), None,
                  rng.choice([b"", b"c"]), 0, False]
        # ... with up to two fields corrupted.
        for _ in range(rng.choice([0, 0, 1, 1, 2])):
            position = rng.randrange(len(fields))
            fields[position] = rng.choice(ints + [("junk",), (None,), [], b"b", "s", -7])
        message = Message(*fields)
        try:
            node.step(message)
            outcome = "ok"
        except Exception as error:
            outcome = f"{type(error).__name__}: {error}"
        outcomes.add(outcome.split(":")[0])
        while net.handle_ready(2):
            pass
        net.queue.clear()
        digest.update(repr((outcome, node.term, node.vote, node.lead, int(node.role), node.log.last_index(),
                            node.log.committed)).encode() + b"\n")
    return len(outcomes), digest.hexdigest()

for seed in (1, 2):
    print("malformed", seed, *malformed_digest(seed))

from chaos.sim import MILLISECOND_US, SECOND_US, KVApp, LinkConfig, SimConfig, Simulation

def sim_digest(seed):
    sim = Simulation(SimConfig(seed=seed, default_link=LinkConfig(loss=0.05, duplicate=0.05, reorder=0.1)))
    sim.add_cluster(3)
    rng = sim.client_rng
    for step in range(40):
        sim.run_for(rng.randrange(200 * MILLISECOND_US))
        sim.propose(rng.choice(sim.live_managers()), KVApp.put("k", step))
        if step == 15:
            sim.crash(sim.leader() or 1, lose_unsynced=True)
        if step == 25:
            for node_id in list(sim.managers):
                if not sim.managers[node_id].alive:
                    sim.restart(node_id)
        if step == 30:
            sim.partition([1], [2, 3])
        if step == 35:
            sim.heal()
    sim.run_for(2 * SECOND_US)
    return len(sim.trace), sim.trace_digest()

print("sim", *sim_digest(7))

entry = Entry(2, 5, EntryType.CONF_CHANGE, b"x")
message = Message(MessageType.APP, 2, 1, 3, 2, 4, (entry,), 4)
print("repr", repr(entry), repr(message), repr(HardState(1, 2, 3)), repr(Ready(must_sync=True)))
print("eq", entry == Entry(2, 5, EntryType.CONF_CHANGE, b"x"), entry == Entry(2, 5),
      message == Message(MessageType.APP, 2, 1, 3, 2, 4, (entry,), 4), hash(entry) == hash(Entry(2, 5, EntryType.CONF_CHANGE, b"x")))
try:
    message.term = 9
except AttributeError:
    print("frozen", message.term)
'''


def run_core(pure: bool, script: str = AGREEMENT_SCRIPT) -> list[str]:
    env = dict(os.environ)
    env.pop("SHOAL_PURE", None)
    if pure:
        env["SHOAL_PURE"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"core run (pure={pure}) failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout.splitlines()


def test_compiled_and_pure_cores_agree() -> None:
    compiled = run_core(pure=False)
    pure = run_core(pure=True)
    assert pure[0] == "implementation python", pure[0]
    if compiled[0] != "implementation cython":
        pytest.skip("compiled Raft core not built (python setup.py build_ext --inplace)")
    assert compiled[1:] == pure[1:]
    runs = [line.split() for line in pure if line.startswith(("net ", "sim "))]
    assert len(runs) == 4 and all(int(fields[-2]) > 100 for fields in runs), runs  # the runs did something
    malformed = [line.split() for line in pure if line.startswith("malformed ")]
    assert len(malformed) == 2 and all(int(fields[2]) >= 2 for fields in malformed), malformed  # ok and refused


def test_one_core_per_process() -> None:
    """Every name of a core module is the selected implementation's: the
    pure and compiled classes never mix."""
    from consensus import log, progress, raft, storage, types

    expected = "consensus._types_c" if select_c.implementation() == "cython" else "consensus.types"
    for cls in (types.Message, types.Entry, types.Ready, types.MessageType, storage.MemoryStorage.__mro__[0]):
        assert cls.__module__ in (expected, expected.replace("types", "storage")), cls
    if select_c.implementation() == "cython":
        assert raft.RaftNode.__module__ == "consensus._raft_c"
        assert log.RaftLog.__module__ == "consensus._log_c"
        assert progress.Progress.__module__ == "consensus._progress_c"
        assert raft.Message is types.Message and log.Entry is types.Entry


def test_build_copy_is_the_source_mechanically_changed() -> None:
    source = (REPOSITORY / "consensus" / "log.py").read_text(encoding="utf-8")
    copy = build_core_c.transform(source)
    assert "from consensus._storage_c import MemoryStorage, Storage, limit_size" in copy
    assert "from consensus._types_c import Entry, Snapshot" in copy
    assert "compiled twin" not in copy and "swap_in" not in copy
    assert "__slots__" not in copy
    assert copy.endswith(f"SOURCE_SHA256 = {build_core_c.source_sha256(source)!r}\n")
    raft_copy = build_core_c.transform((REPOSITORY / "consensus" / "raft.py").read_text(encoding="utf-8"))
    assert "from consensus import _confchange_c as confchange" in raft_copy
    types_copy = build_core_c.transform((REPOSITORY / "consensus" / "types.py").read_text(encoding="utf-8"))
    assert "slots=True" not in types_copy
    with pytest.raises(ValueError, match="compiled twin"):
        build_core_c.transform("x = 1\n")


def test_stale_or_missing_build_selects_the_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_PURE", "1")
    assert select_c._decide() == "python"
    monkeypatch.delenv("SHOAL_PURE")
    with monkeypatch.context() as patched:
        patched.setattr(select_c.importlib.util, "find_spec", lambda name: None)
        assert select_c._decide() == "python"  # not built
    if select_c._decide() != "cython":
        pytest.skip("compiled Raft core not built")
    monkeypatch.setattr(select_c, "_source_sha256", lambda name: "0" * 64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert select_c._decide() == "python"  # a source edited after the build
    assert any("stale" in str(warning.message) for warning in caught)
    with pytest.raises(ValueError):
        select_c.compiled("errors")


def test_malformed_entries_are_refused_by_either_core() -> None:
    """The compiled core types its locals; a peer's garbage in ``entries``
    must still be a MalformedMessage (not a TypeError) and change nothing."""
    import sys

    sys.path.insert(0, str(REPOSITORY / "tests" / "consensus"))
    from raft_network import Net

    from consensus.errors import MalformedMessage
    from consensus.types import Entry, Message, MessageType

    net = Net([1, 2, 3])
    net.elect(1)
    follower = net.nodes[2]
    before = (follower.term, follower.log.last_index(), follower.log.committed)
    term = net.nodes[1].term
    last = follower.log.last_index()
    for garbage in (("not an entry",), (None,), (Entry(term, last + 1), 7), (b"x",)):
        with pytest.raises(MalformedMessage):
            follower.step(Message(MessageType.APP, 2, 1, term, term, last, garbage, 0))
    assert (follower.term, follower.log.last_index(), follower.log.committed) == before
