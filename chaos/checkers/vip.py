"""VIP consistency: every node computes the same balancer table from the same store.

A Swarm VIP is balanced on every node independently (IPVS in Docker, Maglev
here): no node asks another which backend a flow goes to.  That only works if
every node that has applied the same store version derives the same backend set
and therefore, Maglev being a pure function of (names, weights, size, seed),
the same table (Maglev paper, section 3.4: consistent hashing with minimal
disruption needs every balancer to build the same table).

Each manager of the simulated cluster reports, per applied store version and
service, its backend set and the digest of the table it built
(``table_digest``).  The checker groups those by (version, service); two nodes
with different digests at the same version is a violation - either their
stores diverged (a Raft or apply bug) or the table builder is not a pure
function of its input.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaos.checkers.result import CheckResult

# A small prime keeps the simulation fast; the property does not depend on size.
VIP_TABLE_SIZE = 251
VIP_TABLE_SEED = 0x5305A1


def table_digest(backends: Mapping[str, int], size: int = VIP_TABLE_SIZE, seed: int = VIP_TABLE_SEED) -> str:
    """sha256 (first 16 hex digits) of the Maglev table of ``backends``, or "empty"."""
    if not backends:
        return "empty"
    from dataplane.maglev import build_table

    table = build_table(dict(backends), size=size, seed=seed)
    names = "\0".join(sorted(backends)).encode()
    return hashlib.sha256(names + b"\1" + table.tobytes()).hexdigest()[:16]


@dataclass(frozen=True)
class VipObservation:
    node: str
    version: int
    service: str
    backends: tuple[tuple[str, int], ...]
    digest: str


def check_vip(observations: Sequence[VipObservation]) -> CheckResult:
    if not observations:
        return CheckResult("vip", "skipped", "no service had a VIP table during the run")
    groups: dict[tuple[int, str], list[VipObservation]] = {}
    for observation in observations:
        groups.setdefault((observation.version, observation.service), []).append(observation)
    violations: list[str] = []
    compared = 0
    for (version, service), group in sorted(groups.items()):
        digests = {observation.digest for observation in group}
        nodes = {observation.node for observation in group}
        if len(nodes) > 1:
            compared += 1
        if len(digests) > 1:
            by_digest: dict[str, list[str]] = {}
            for observation in group:
                by_digest.setdefault(observation.digest, []).append(
                    f"{observation.node} (backends {dict(observation.backends)})")
            text = "; ".join(f"{digest}: {', '.join(sorted(set(who)))}" for digest, who in sorted(by_digest.items()))
            violations.append(f"service {service} at store version {version}: {len(digests)} different tables - "
                              f"{text}")
    details: dict[str, Any] = {"observations": len(observations), "groups": len(groups),
                               "compared_groups": compared, "violations": violations[:50]}
    if violations:
        return CheckResult("vip", "fail", f"{len(violations)} store version(s) with differing tables",
                           [f"  {text}" for text in violations[:20]], details)
    return CheckResult("vip", "pass", f"{len(observations)} tables agree across {compared} (version, service) "
                                      f"groups seen by more than one node", [], details)
