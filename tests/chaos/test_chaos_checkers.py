"""The harness's own checkers (quorum, convergence, vip) on histories they must
accept and ones they must reject."""
from __future__ import annotations

from chaos.checkers.convergence import NodeView, ServiceView, StoreSample, TaskView, check_convergence, judge
from chaos.checkers.quorum import check_quorum, has_quorum
from chaos.checkers.vip import VipObservation, check_vip, table_digest
from chaos.history import History
from chaos.timeline import Condition

MS = 1_000_000
VOTERS = frozenset({"m1", "m2", "m3"})


def cond(time_ms: int, up: set[str], blocked: set[tuple[str, str]] = frozenset(), degraded: bool = False,
         cause: str = "") -> Condition:
    return Condition(time_ms, frozenset(up), VOTERS, frozenset(blocked), degraded, cause)


def test_has_quorum_needs_a_connected_majority() -> None:
    assert has_quorum(cond(0, {"m1", "m2", "m3"}))
    assert has_quorum(cond(0, {"m1", "m2"}))
    assert not has_quorum(cond(0, {"m1"}))
    assert not has_quorum(cond(0, {"m1", "m2"}, {("m1", "m2")}))  # a one-way cut breaks the only pair
    assert has_quorum(cond(0, {"m1", "m2", "m3"}, {("m1", "m2"), ("m2", "m1")}))  # m3 reaches both: a star
    cut = {("m1", "m2"), ("m2", "m1"), ("m2", "m3"), ("m3", "m2"), ("m1", "m3"), ("m3", "m1")}
    assert not has_quorum(cond(0, {"m1", "m2", "m3"}, cut))
    five = frozenset({"a", "b", "c", "d", "e"})
    ring = {(x, y) for x, y in [("a", "c"), ("a", "d"), ("b", "d"), ("b", "e"), ("c", "e")]}
    ring |= {(y, x) for x, y in ring}
    assert has_quorum(Condition(0, five, five, frozenset(ring)))  # majorities ring: every node sees 3


def writes(*spec: tuple[int, str, int, str | None]) -> History:
    """(invoke_ms, outcome, complete_ms, error) per write, each its own process."""
    history = History()
    events = []
    for process, (invoke_ms, outcome, complete_ms, error) in enumerate(spec):
        events.append((invoke_ms, 0, process, None, None))
        events.append((complete_ms, 1, process, outcome, error))
    for time_ms, kind, process, outcome, error in sorted(events):
        if kind == 0:
            history.invoke(process, "put", "x", str(process), time_ms * MS)
        else:
            history.complete(process, outcome, str(process), time_ms * MS, error=error)
    return history


TIMELINE = [cond(0, {"m1", "m2", "m3"}, cause="start"), cond(10_000, {"m1"}, cause="kill m2, m3"),
            cond(20_000, {"m1", "m2", "m3"}, cause="restart")]


def run(history: History, **options: object):
    return check_quorum(history, TIMELINE, end_ms=30_000, grace_ms=1000, timeout_ms=1000, **options)


def test_quorum_accepts_the_seed_story() -> None:
    history = writes((2000, "ok", 2010, None), (12_000, "fail", 12_001, "no quorum: no leader"),
                     (15_000, "info", 16_000, "timeout"), (25_000, "ok", 25_010, None),
                     (20_100, "info", 21_100, "timeout"))  # inside the grace after the restart: no promise
    result = run(history)
    assert result.status == "pass", result.lines
    windows = result.details["windows"]
    assert len(windows) == 1 and windows[0]["expected"]
    assert result.details["quorum_lost_ms"] == 10_000


def test_quorum_rejects_a_write_acknowledged_without_quorum() -> None:
    result = run(writes((12_000, "ok", 12_010, None)))
    assert result.status == "fail" and "acknowledged" in result.lines[0]


def test_quorum_rejects_unavailability_with_a_healthy_majority() -> None:
    result = run(writes((5000, "fail", 5001, "no quorum"), (6000, "ok", 6001, None)))
    assert result.status == "fail" and "although a quorum" in result.lines[0]
    assert result.details["windows"][0]["expected"] is False


def test_quorum_tolerates_degraded_links_and_grace() -> None:
    timeline = [cond(0, {"m1", "m2", "m3"}, degraded=True)]
    result = check_quorum(writes((5000, "info", 6000, "timeout")), timeline, end_ms=10_000, grace_ms=1000,
                          timeout_ms=1000)
    assert result.status == "pass"
    result = run(writes((10_500, "info", 11_500, "timeout")))  # within grace of losing quorum
    assert result.status == "pass"


def test_quorum_clear_errors_option() -> None:
    history = writes((12_000, "info", 13_000, "timeout"))
    assert run(history).status == "pass"
    assert run(history, require_clear_errors=True).status == "fail"


def test_quorum_cas_mismatch_counts_as_served() -> None:
    history = History()
    history.invoke(0, "cas", "x", ["1", "2"], 5000 * MS)
    history.complete(0, "fail", ["1", "2"], 5001 * MS, error="cas mismatch: x is '3'")
    assert run(history).status == "pass"


NODES = (NodeView("m1", "manager"), NodeView("w1"), NodeView("w2"), NodeView("w3", status="down"))


def sample(time_ms: int, tasks: list[tuple[int | None, str | None, str]], replicas: int = 2,
           constraints: tuple[str, ...] = (), mode: str = "replicated") -> StoreSample:
    return StoreSample(time_ms, (ServiceView("web", mode, replicas, constraints),),
                       tuple(TaskView("web", slot, node, state) for slot, node, state in tasks), NODES)


def test_convergence_accepts_a_converging_service() -> None:
    samples = [sample(1000, [(1, "w1", "running")]), sample(2000, [(1, "w1", "running"), (2, "w2", "starting")]),
               sample(3000, [(1, "w1", "running"), (2, "w2", "running")]),
               sample(9000, [(1, "w1", "running"), (2, "w2", "running")])]
    result = check_convergence(samples, heal_ms=1000, bound_ms=5000, operations=[(500, "web", "create")])
    assert result.status == "pass", result.lines
    assert result.details["converged_at_ms"] == 3000
    assert result.details["operation_times"][0]["converged_after_ms"] == 2500


def test_convergence_rejects_slow_slot_twice_and_constraints() -> None:
    slow = [sample(1000, [(1, "w1", "running")]), sample(9000, [(1, "w1", "running")])]
    assert check_convergence(slow, heal_ms=1000, bound_ms=5000).status == "fail"
    twice = [sample(1000, [(1, "w1", "running"), (1, "w2", "running")]), sample(9000, [])]
    assert judge(twice[0]).violations
    assert check_convergence(twice, heal_ms=1000, bound_ms=5000).status == "fail"
    placed = [sample(9000, [(1, "m1", "running"), (2, "w1", "running")], constraints=("node.role==worker",))]
    result = check_convergence(placed, heal_ms=1000, bound_ms=5000)
    assert result.status == "fail" and "violating node.role==worker" in " ".join(result.lines)


def test_convergence_global_mode_counts_eligible_nodes() -> None:
    # w3 is down and m1 excluded by the constraint: one task on each of w1, w2.
    good = sample(2000, [(None, "w1", "running"), (None, "w2", "running")], mode="global",
                  constraints=("node.role!=manager",))
    assert judge(good).converged
    bad = sample(2000, [(None, "w1", "running")], mode="global", constraints=("node.role!=manager",))
    assert not judge(bad).converged


def test_convergence_unknown_when_the_run_is_too_short() -> None:
    result = check_convergence([sample(1000, [])], heal_ms=1000, bound_ms=5000)
    assert result.status == "unknown"


def test_vip_tables_agree_and_disagree() -> None:
    backends = (("web.1", 1), ("web.2", 1))
    digest = table_digest(dict(backends))
    assert digest == table_digest({"web.2": 1, "web.1": 1})  # order-independent
    same = [VipObservation(node, 7, "web", backends, digest) for node in ("m1", "m2", "m3")]
    assert check_vip(same).status == "pass"
    other = table_digest({"web.1": 1})
    result = check_vip(same + [VipObservation("m3", 7, "web", (("web.1", 1),), other)])
    assert result.status == "fail" and "version 7" in result.lines[0]
    assert check_vip([]).status == "skipped"
