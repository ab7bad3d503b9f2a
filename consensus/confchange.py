"""Membership changes: one voter at a time, learners caught up first.

Why not joint consensus?  Changing a single voter at a time keeps every
majority of the old configuration overlapping every majority of the new one
(Raft thesis 4.1), so no intermediate joint configuration is needed and the
quorum rule stays "a majority of one voter set" everywhere (simpler tracker,
simpler checkers, easier to reason about in the simulator).  Swarm managers
join and leave one at a time anyway.  The two known pitfalls are handled:

* A change takes effect when its entry is APPLIED (etcd's choice), and the
  leader refuses a new change while one is pending (``pending_conf_index``
  above ``applied``) and until it has committed an entry of its own term
  (Ongaro, raft-dev 2015: the single-server-change bug across leader changes).
  A node refuses to campaign while a committed conf change is unapplied.
* A brand-new voter with an empty log would stall commits while it catches
  up (thesis 4.2.1), so with ``Config.require_caught_up_learner`` (default)
  a voter is added by first adding it as a learner, then promoting it
  (ADD_NODE) once its match index has reached the leader's commit index.

Functions here are pure over (voters, learners) sets.
"""
from __future__ import annotations

from consensus.errors import ConfChangeError
from consensus.types import ConfChange, ConfChangeType, ConfState, NodeId


def validate(change: ConfChange, voters: frozenset[NodeId], learners: frozenset[NodeId]) -> None:
    """Raise ConfChangeError if ``change`` is not a sensible change now."""
    node = change.node_id
    if node <= 0:
        raise ConfChangeError(f"node ids are positive, got {node}")
    if change.type == ConfChangeType.ADD_NODE:
        if node in voters:
            raise ConfChangeError(f"node {node} is already a voter")
    elif change.type == ConfChangeType.ADD_LEARNER_NODE:
        if node in learners:
            raise ConfChangeError(f"node {node} is already a learner")
        if node in voters and len(voters) == 1:
            raise ConfChangeError(f"demoting node {node} would leave no voter")
    elif change.type == ConfChangeType.REMOVE_NODE:
        if node not in voters and node not in learners:
            raise ConfChangeError(f"node {node} is not a member")
        if node in voters and len(voters) == 1:
            raise ConfChangeError(f"removing node {node} would leave no voter")
    else:  # pragma: no cover - enum is closed
        raise ConfChangeError(f"unknown conf change type {change.type!r}")


def apply(
    change: ConfChange, voters: frozenset[NodeId], learners: frozenset[NodeId]
) -> tuple[frozenset[NodeId], frozenset[NodeId]]:
    """The membership after ``change``.  Idempotent and total: re-applying a
    change, or removing an unknown node, changes nothing (replays after a
    restart and force-new-cluster rely on that)."""
    node = change.node_id
    if change.type == ConfChangeType.ADD_NODE:
        return voters | {node}, learners - {node}
    if change.type == ConfChangeType.ADD_LEARNER_NODE:
        if node in voters and len(voters) == 1:
            return voters, learners  # never leave zero voters
        return voters - {node}, learners | {node}
    if change.type == ConfChangeType.REMOVE_NODE:
        if node in voters and len(voters) == 1:
            return voters, learners
        return voters - {node}, learners - {node}
    raise ConfChangeError(f"unknown conf change type {change.type!r}")


def to_conf_state(voters: frozenset[NodeId], learners: frozenset[NodeId]) -> ConfState:
    return ConfState(voters=tuple(sorted(voters)), learners=tuple(sorted(learners)))


# >>> compiled twin: the build cuts this block (consensus/_build_core_c.py)
from consensus._select_c import swap_in  # noqa: E402

swap_in(globals(), "confchange")
# <<< compiled twin
