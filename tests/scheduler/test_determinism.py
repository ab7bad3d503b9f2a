"""One seed, one outcome: the same scenario gives byte-identical store
snapshots, in this process and in another with a different PYTHONHASHSEED
(no Python hash() or set order leaks into decisions)."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys

SCRIPT = r'''
import dataclasses, hashlib
from scheduler.cluster import LocalCluster
from scheduler.config import ManagerConfig
from scheduler.model import *
c = LocalCluster(managers=3, workers=4, seed=42, config=ManagerConfig(heartbeat_period_ticks=5),
                 labels=lambda i: {"zone": "abc"[i % 3]})
c.run(3)
api = c.leader.api
spread = Placement(preferences=("spread=node.labels.zone",))
spec = ServiceSpec(name="web", replicas=7, task=TaskTemplate(placement=spread),
                   ports=(PortConfig(80),), update=UpdateConfig(parallelism=2))
c.propose(api.create_service(spec))
c.propose(api.create_service(ServiceSpec(name="mon", mode=ServiceMode.GLOBAL, replicas=0)))
c.run(40)
c.propose(api.update_service("web", dataclasses.replace(spec, task=dataclasses.replace(spec.task, command=("v2",)))))
c.run(30)
c.kill_node("w3")
c.propose(api.scale("web", 4))
c.run(120)
print(hashlib.sha256(c.store.snapshot()).hexdigest())
'''


def run_in_subprocess(hash_seed: str) -> str:
    environment = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=os.getcwd())
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=environment,
                          check=True, timeout=120)
    return done.stdout.strip()


def test_same_seed_same_snapshot_across_processes() -> None:
    first = run_in_subprocess("1")
    second = run_in_subprocess("2")
    assert len(first) == 64 and first == second


def test_snapshot_restores_to_identical_bytes_mid_scenario() -> None:
    from scheduler.cluster import LocalCluster
    from scheduler.model import ServiceSpec
    from scheduler.store import Store
    cluster = LocalCluster(managers=2, workers=2, seed=3)
    cluster.run(2)
    cluster.propose(cluster.leader.api.create_service(ServiceSpec(name="web", replicas=5)))
    cluster.run(15)
    data = cluster.managers[0].snapshot()
    assert data == cluster.managers[1].snapshot()          # every manager applied the same entries
    assert Store.restore(data).snapshot() == data
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(cluster.store.snapshot()).hexdigest()
