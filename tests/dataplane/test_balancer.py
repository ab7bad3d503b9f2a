"""The Balancer: Cython and twin agree on everything; tracked flows stay put; bad input is typed or counted."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from dataplane.balancer import (
    AddressError,
    Backend,
    Balancer,
    BalancerError,
    CapacityError,
    DuplicateServiceError,
    EndpointConflictError,
    Service,
    UnknownBackendError,
    UnknownServiceError,
)
from dataplane.balancer_py import VERDICT_DROP, VERDICT_FORWARD, VERDICT_RESET
from dataplane.balancer_strategies import ip_int, noise_frames, tcp_udp_frame
from dataplane.batch import PacketBatch
from dataplane.conntrack import ConnTrackError, Timeouts

TIMEOUTS = Timeouts(
    syn_sent_ns=500, established_ns=5000, fin_wait_ns=800, closed_ns=100, udp_ns=3000
)
PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17}


def service_spec(
    index: int, protocol: str, table_size: int, on_removed: str, with_mac: bool
) -> Service:
    return Service(
        f"svc{index}",
        f"198.18.0.{10 + index}",
        80 if protocol == "tcp" else 53,
        protocol=protocol,
        vip_mac=f"02:00:00:00:00:{index:02x}" if with_mac else None,
        table_size=table_size,
        on_backend_removed=on_removed,
    )


def backend_spec(service: int, index: int, weight: int) -> Backend:
    return Backend(
        f"s{service}-b{index}",
        f"198.18.1.{service * 16 + index + 1}",
        8000 + index,
        f"02:00:00:00:{service + 1:02x}:{index:02x}",
        weight,
    )


# Few clients and ports, so flows repeat (hits), collide in small tables
# (evictions), outlive or not their timeouts, and meet backend removals.
scenarios = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**128 - 1),
        "capacity": st.integers(1, 12),
        "window": st.integers(1, 8),
        "services": st.lists(
            st.tuples(
                st.sampled_from(["tcp", "udp"]),
                st.sampled_from([13, 101]),
                st.sampled_from(["reset", "repick"]),
                st.booleans(),
                st.lists(st.integers(0, 3), min_size=1, max_size=5),
            ),
            min_size=1,
            max_size=3,
        ),
        "steps": st.lists(
            st.one_of(
                st.tuples(
                    st.just("batch"),
                    st.sampled_from([0, 1, 50, 400, 700, 6000]),
                    st.lists(
                        st.one_of(
                            st.tuples(
                                st.just("request"),
                                st.integers(0, 2),
                                st.integers(1, 3),
                                st.integers(1000, 1002),
                                st.sampled_from([0x02, 0x10, 0x18, 0x11, 0x04]),
                            ),
                            st.tuples(
                                st.just("reply"),
                                st.integers(0, 2),
                                st.integers(0, 4),
                                st.integers(1, 3),
                                st.integers(1000, 1002),
                                st.sampled_from([0x12, 0x10, 0x11, 0x04]),
                            ),
                            st.tuples(st.just("noise"), noise_frames()),
                        ),
                        min_size=1,
                        max_size=24,
                    ),
                ),
                st.tuples(
                    st.sampled_from(["remove", "add", "drain", "weight"]),
                    st.integers(0, 2),
                    st.integers(0, 5),
                    st.integers(0, 3),
                ),
            ),
            min_size=1,
            max_size=16,
        ),
    }
)


def build(scenario: dict, implementation: str) -> Balancer:
    balancer = Balancer(
        seed=scenario["seed"],
        conntrack_capacity=scenario["capacity"],
        probe_window=scenario["window"],
        timeouts=TIMEOUTS,
        implementation=implementation,
    )
    assert balancer.implementation == implementation
    for index, (protocol, size, on_removed, with_mac, weights) in enumerate(scenario["services"]):
        balancer.add_service(
            service_spec(index, protocol, size, on_removed, with_mac),
            [backend_spec(index, position, weight) for position, weight in enumerate(weights)],
        )
    return balancer


def frame_of(packet: tuple, services: list, balancer: Balancer) -> bytes:
    if packet[0] == "noise":
        return packet[1]
    service = packet[1] % len(services)
    protocol = PROTOCOL_NUMBERS[services[service][0]]
    vip, port = ip_int(f"198.18.0.{10 + service}"), 80 if protocol == 6 else 53
    if packet[0] == "request":
        _, _, client, client_port, flags = packet
        return tcp_udp_frame(
            ip_int(f"192.0.2.{client}"),
            vip,
            protocol,
            client_port,
            port,
            tcp_flags=flags,
            payload=b"hi",
        )
    _, _, backend, client, client_port, flags = packet
    spec = backend_spec(service, backend, 1)
    if backend == 0:  # usually the flow's own backend, so replies are tracked
        owner = balancer.backend_for_new_flow(f"svc{service}", f"192.0.2.{client}", client_port)
        spec = next((b for b in balancer.backends(f"svc{service}") if b.name == owner), spec)
    return tcp_udp_frame(
        ip_int(spec.ip),
        ip_int(f"192.0.2.{client}"),
        protocol,
        spec.port,
        client_port,
        tcp_flags=flags,
        payload=b"ok",
    )


def change(balancer: Balancer, step: tuple, services: list) -> str:
    action, service, backend, weight = step
    service %= len(services)
    name = f"svc{service}"
    try:
        if action == "remove":
            balancer.remove_backend(name, f"s{service}-b{backend}")
        elif action == "add":
            balancer.add_backend(name, backend_spec(service, backend, weight))
        elif action == "drain":
            balancer.drain(name, f"s{service}-b{backend}")
        else:
            balancer.set_weight(name, f"s{service}-b{backend}", weight)
    except BalancerError as error:
        return type(error).__name__
    return "ok"


@settings(max_examples=40)
@given(scenarios)
def test_cython_and_twin_agree_on_verdicts_bytes_counters_and_table(scenario: dict) -> None:
    note(f"seed={scenario['seed']}")
    balancers = [build(scenario, "cython"), build(scenario, "python")]
    now = 0
    for step in scenario["steps"]:
        if step[0] != "batch":
            outcomes = [change(balancer, step, scenario["services"]) for balancer in balancers]
            assert outcomes[0] == outcomes[1]
            continue
        now += step[1]
        frames = [frame_of(packet, scenario["services"], balancers[0]) for packet in step[2]]
        batches = [PacketBatch.from_frames(frames), PacketBatch.from_frames(frames)]
        verdicts = [balancer.process(batch, now) for balancer, batch in zip(balancers, batches)]
        assert verdicts[0].tolist() == verdicts[1].tolist()
        assert batches[0].frames() == batches[1].frames()
        assert balancers[0].counters == balancers[1].counters
        assert (balancers[0].conntrack.table == balancers[1].conntrack.table).all()
        counters = balancers[0].counters
        assert counters["conntrack_occupied"] <= scenario["capacity"]
        outcomes = sum(
            v for k, v in counters.items() if k != "packets" and not k.startswith("conntrack_")
        )
        assert outcomes == counters["packets"]


def web_balancer(
    implementation: str, on_removed: str = "reset", count: int = 6, capacity: int = 4096
) -> Balancer:
    balancer = Balancer(
        seed=5, conntrack_capacity=capacity, timeouts=TIMEOUTS, implementation=implementation
    )
    balancer.add_service(
        service_spec(0, "tcp", 101, on_removed, True), [backend_spec(0, i, 1) for i in range(count)]
    )
    return balancer


def send(
    balancer: Balancer, client: int, client_port: int, flags: int, now: int
) -> tuple[int, str | None]:
    """One request; (verdict, name of the backend it went to)."""
    frame = tcp_udp_frame(
        ip_int(f"192.0.2.{client}"), ip_int("198.18.0.10"), 6, client_port, 80, tcp_flags=flags
    )
    batch = PacketBatch.from_frames([frame])
    verdict = int(balancer.process(batch, now)[0])
    if verdict != VERDICT_FORWARD:
        return verdict, None
    destination = int.from_bytes(batch.frame(0)[30:34], "big")
    return verdict, next(b.name for b in balancer.backends("svc0") if ip_int(b.ip) == destination)


def send_both(
    balancers: list[Balancer], client: int, client_port: int, flags: int, now: int
) -> tuple[int, str | None]:
    """``send`` to the Cython balancer and its twin; they must agree on everything."""
    results = [send(balancer, client, client_port, flags, now) for balancer in balancers]
    assert results[0] == results[1]
    assert balancers[0].counters == balancers[1].counters
    assert (balancers[0].conntrack.table == balancers[1].conntrack.table).all()
    return results[0]


@settings(max_examples=25)
@given(
    on_removed=st.sampled_from(["reset", "repick"]),
    changes=st.lists(
        st.tuples(
            st.sampled_from(["remove", "add", "drain", "weight"]),
            st.integers(0, 9),
            st.integers(0, 3),
        ),
        min_size=1,
        max_size=10,
    ),
)
def test_tracked_connections_keep_their_backend_while_it_stays(
    on_removed: str, changes: list
) -> None:
    balancers = [web_balancer("cython", on_removed), web_balancer("python", on_removed)]
    now = 0
    connections: dict[tuple[int, int], str] = {}
    for client in range(1, 4):
        for port in range(2000, 2005):
            verdict, backend = send_both(balancers, client, port, 0x02, now)
            assert verdict == VERDICT_FORWARD and backend is not None
            send_both(balancers, client, port, 0x10, now)  # the handshake's ACK: ESTABLISHED
            connections[(client, port)] = backend
    for action, backend, weight in changes:
        now += 10
        outcomes = {
            change(balancer, (action, 0, backend, weight), [("tcp",)]) for balancer in balancers
        }
        assert len(outcomes) == 1
        alive = {b.name for b in balancers[0].backends("svc0")}
        for (client, port), owner in list(connections.items()):
            verdict, now_backend = send_both(balancers, client, port, 0x18, now)
            if owner in alive:
                # The property: an established flow never moves while its backend stays
                # (drained or re-weighted included).
                assert (verdict, now_backend) == (VERDICT_FORWARD, owner)
            elif on_removed == "reset":
                assert verdict == VERDICT_RESET
                del connections[(client, port)]
            else:
                assert verdict in (VERDICT_FORWARD, VERDICT_DROP)
                assert now_backend is None or now_backend in alive
                if now_backend is None:
                    del connections[(client, port)]
                else:
                    connections[(client, port)] = now_backend


@pytest.mark.parametrize("implementation", ["cython", "python"])
def test_drained_backend_keeps_its_flows_and_gets_no_new_ones(implementation: str) -> None:
    balancer = web_balancer(implementation, count=3)
    owners = {port: send(balancer, 7, port, 0x02, 0)[1] for port in range(3000, 3060)}
    victim = owners[3000]
    balancer.drain("svc0", victim)
    assert victim not in set(balancer.table("svc0"))
    for port, owner in owners.items():
        assert send(balancer, 7, port, 0x10, 1)[1] == owner
    fresh = {send(balancer, 8, port, 0x02, 2)[1] for port in range(4000, 4100)}
    assert victim not in fresh and fresh
    # All drained: tracked flows still flow; new ones are dropped and counted.
    for name in {b.name for b in balancer.backends("svc0")}:
        balancer.drain("svc0", name)
    assert send(balancer, 7, 3000, 0x10, 3)[1] == victim
    assert send(balancer, 9, 5000, 0x02, 3)[0] == VERDICT_DROP
    assert balancer.counters["drop_no_backend"] == 1


@pytest.mark.parametrize("implementation", ["cython", "python"])
def test_new_flows_follow_the_maglev_table(implementation: str) -> None:
    balancer = web_balancer(implementation)
    for port in range(6000, 6040):
        assert send(balancer, 3, port, 0x02, 0)[1] == balancer.backend_for_new_flow(
            "svc0", "192.0.2.3", port
        )


@pytest.mark.parametrize("implementation", ["cython", "python"])
@pytest.mark.parametrize("on_removed", ["reset", "repick"])
def test_reused_backend_slot_never_inherits_old_flows(implementation: str, on_removed: str) -> None:
    # One backend slot: removing the backend and adding another reuses the slot
    # at once, under a new generation; the old flow must not follow the slot.
    balancer = Balancer(
        seed=5,
        conntrack_capacity=64,
        timeouts=TIMEOUTS,
        max_backends=1,
        implementation=implementation,
    )
    balancer.add_service(service_spec(0, "tcp", 101, on_removed, True), [backend_spec(0, 0, 1)])
    assert send(balancer, 1, 1111, 0x02, 0)[1] == "s0-b0"
    balancer.remove_backend("svc0", "s0-b0")
    balancer.add_backend("svc0", Backend("other", "198.18.1.200", 9000, "02:00:00:00:09:09"))
    assert balancer.backend_rows[0, 3] == 2  # slot 0, second generation
    verdict, backend = send(balancer, 1, 1111, 0x10, 1)
    counters = balancer.counters
    if on_removed == "reset":
        assert verdict == VERDICT_RESET and counters["reset_backend_gone"] == 1
        assert send(balancer, 1, 1111, 0x02, 2)[1] == "other"
    else:
        assert (verdict, backend) == (VERDICT_FORWARD, "other") and counters[
            "repick_backend_gone"
        ] == 1
    assert counters["forward_tracked"] == 0


@pytest.mark.parametrize("implementation", ["cython", "python"])
@given(
    frames=st.lists(st.binary(max_size=80), min_size=1, max_size=32),
    offsets=st.lists(st.integers(0, 2**32 - 1), max_size=4),
    lengths=st.lists(st.integers(0, 2**32 - 1), max_size=4),
)
def test_fuzz_bytes_and_corrupt_slots_never_crash(
    implementation: str, frames: list[bytes], offsets: list[int], lengths: list[int]
) -> None:
    balancer = web_balancer(implementation, count=2, capacity=8)
    batch = PacketBatch.from_frames(frames)
    for index, value in enumerate(offsets[: batch.count]):
        batch.offsets[index] = value
    for index, value in enumerate(lengths[: batch.count]):
        batch.lengths[index] = value
    verdicts = balancer.process(batch, 0)
    assert len(verdicts) == len(frames) and int(verdicts.max()) <= VERDICT_RESET
    assert balancer.counters["packets"] == len(frames)


def test_configuration_errors_are_typed() -> None:
    balancer = web_balancer("cython")
    with pytest.raises(DuplicateServiceError):
        balancer.add_service(service_spec(0, "tcp", 13, "reset", False))
    with pytest.raises(DuplicateServiceError):
        balancer.add_service(Service("again", "198.18.0.10", 80))
    with pytest.raises(EndpointConflictError):
        balancer.add_service(Service("other", "198.18.0.99", 80), [backend_spec(0, 0, 1)])
    with pytest.raises(EndpointConflictError):
        balancer.add_service(Service("shadow", "198.18.1.1", 8000))
    assert [s.name for s in balancer.services()] == ["svc0"]
    with pytest.raises(UnknownServiceError):
        balancer.remove_service("nope")
    with pytest.raises(UnknownBackendError):
        balancer.remove_backend("svc0", "nope")
    with pytest.raises(BalancerError):
        balancer.add_backend("svc0", backend_spec(0, 0, 1))
    with pytest.raises(BalancerError):
        balancer.set_backends("svc0", [backend_spec(0, 0, 1), backend_spec(0, 0, 2)])
    with pytest.raises(BalancerError):
        balancer.set_weight("svc0", "s0-b0", -1)
    with pytest.raises(ConnTrackError):
        balancer.process(PacketBatch(1), -5)
    with pytest.raises(BalancerError):
        balancer.process(PacketBatch.from_frames([b"x"]), 0, verdicts=np.zeros(1, dtype=np.int64))
    with pytest.raises(BalancerError):
        Balancer(implementation="rust")
    with pytest.raises(CapacityError):
        Balancer(max_backends=0)
    small = Balancer(max_backends=2, max_services=1)
    small.add_service(
        Service("a", "198.18.0.1", 80), [backend_spec(0, 0, 1), backend_spec(0, 1, 1)]
    )
    with pytest.raises(CapacityError):
        small.add_backend("a", backend_spec(0, 2, 1))
    with pytest.raises(CapacityError):
        small.add_service(Service("b", "198.18.0.2", 80))
    small.remove_service("a")
    small.add_service(
        Service("b", "198.18.0.2", 80), [backend_spec(0, 3, 1), backend_spec(0, 4, 1)]
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda: Backend("", "198.18.1.1", 80),
        lambda: Backend("a", "198.18.1.300", 80),
        lambda: Backend("a", "198.18.1.1", 0),
        lambda: Backend("a", "198.18.1.1", 70000),
        lambda: Backend("a", "198.18.1.1", 80, mac="zz:00:00:00:00:00"),
        lambda: Backend("a", "198.18.1.1", 80, weight=-2),
        lambda: Service("s", "nope", 80),
        lambda: Service("s", "198.18.0.1", 80, protocol="sctp"),
        lambda: Service("s", "198.18.0.1", 80, table_size=100),
        lambda: Service("s", "198.18.0.1", 80, on_backend_removed="ignore"),
        lambda: Service("", "198.18.0.1", 80),
    ],
)
def test_bad_specs_raise_address_errors(build) -> None:
    with pytest.raises(BalancerError):
        build()


def test_services_on_one_vip_by_port_and_protocol() -> None:
    balancer = Balancer(seed=1)
    balancer.add_service(Service("web", "198.18.0.5", 80), [Backend("w", "198.18.1.1", 8080)])
    balancer.add_service(
        Service("dns", "198.18.0.5", 53, protocol="udp"), [Backend("d", "198.18.1.2", 5353)]
    )
    frames = [
        tcp_udp_frame(ip_int("192.0.2.1"), ip_int("198.18.0.5"), 6, 1000, 80),
        tcp_udp_frame(ip_int("192.0.2.1"), ip_int("198.18.0.5"), 17, 1000, 53),
        tcp_udp_frame(ip_int("192.0.2.1"), ip_int("198.18.0.5"), 17, 1000, 80),
    ]
    batch = PacketBatch.from_frames(frames)
    assert balancer.process(batch, 0).tolist() == [1, 1, 0]
    assert batch.frame(0)[30:34] == bytes([198, 18, 1, 1]) and batch.frame(1)[30:34] == bytes(
        [198, 18, 1, 2]
    )
    balancer.remove_service("web")
    assert [s.name for s in balancer.services()] == ["dns"]
    with pytest.raises(AddressError):
        Backend("a", "198.18.1.1", True)


def test_memory_is_stated_and_bounded() -> None:
    balancer = Balancer(conntrack_capacity=1024, max_backends=16)
    empty = balancer.memory_bytes
    assert empty == 1024 * 32 + 16 * 6 * 8
    balancer.add_service(
        Service("a", "198.18.0.1", 80, table_size=101), [Backend("x", "198.18.1.1", 80)]
    )
    assert balancer.memory_bytes == empty + 101 * 4


def test_sync_reconciles_to_the_desired_state_and_keeps_tracked_flows() -> None:
    balancer = web_balancer("cython", count=4)
    owners = {port: send(balancer, 5, port, 0x02, 0)[1] for port in range(7000, 7020)}
    kept = [b for b in balancer.backends("svc0") if b.name != "s0-b3"]
    dns = Service("dns", "198.18.0.53", 53, protocol="udp")
    balancer.sync(
        [
            (service_spec(0, "tcp", 101, "reset", True), kept),
            (dns, [Backend("d", "198.18.1.99", 53)]),
        ]
    )
    assert [s.name for s in balancer.services()] == ["dns", "svc0"]
    assert {b.name for b in balancer.backends("svc0")} == {"s0-b0", "s0-b1", "s0-b2"}
    for port, owner in owners.items():
        verdict, backend = send(balancer, 5, port, 0x10, 1)
        assert (verdict, backend) == (
            (VERDICT_RESET, None) if owner == "s0-b3" else (VERDICT_FORWARD, owner)
        )
    with pytest.raises(EndpointConflictError):
        balancer.sync([(dns, [Backend("d", "198.18.1.99", 53), Backend("e", "198.18.1.99", 53)])])
    assert [s.name for s in balancer.services()] == ["dns", "svc0"]  # unchanged on error
    balancer.sync([(Service("dns", "198.18.0.54", 53, protocol="udp"), [])])
    assert [(s.name, s.vip) for s in balancer.services()] == [("dns", "198.18.0.54")]


@pytest.mark.parametrize("implementation", ["cython", "python"])
@pytest.mark.parametrize(
    ("flags", "timeout"),
    [
        ([0x02], TIMEOUTS.syn_sent_ns),
        ([0x02, 0x10], TIMEOUTS.established_ns),
        ([0x02, 0x10, 0x11], TIMEOUTS.fin_wait_ns),
        ([0x02, 0x10, 0x04], TIMEOUTS.closed_ns),
    ],
)
def test_balancer_entries_expire_on_the_injected_clock(
    implementation: str, flags: list, timeout: int
) -> None:
    balancer = web_balancer(implementation)
    start = 10_000
    for flag in flags:
        send(balancer, 4, 4444, flag, start)
    probe = 0x12 if flags == [0x02] else 0x10  # keeps the state (SYN_SENT stays on SYN+ACK)
    before = balancer.counters
    send(balancer, 4, 4444, probe, start + timeout - 1)
    assert balancer.counters["forward_tracked"] == before["forward_tracked"] + 1
    send(balancer, 4, 4444, probe, start + 2 * timeout - 2)  # re-armed by the previous packet
    assert balancer.counters["forward_tracked"] == before["forward_tracked"] + 2
    send(balancer, 4, 4444, probe, start + 3 * timeout - 2)  # exactly one timeout of silence
    counters = balancer.counters
    assert counters["forward_new"] == before["forward_new"] + 1
    assert counters["conntrack_expired"] == before["conntrack_expired"] + 1


@settings(max_examples=30)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=64))
def test_runs_of_one_service_key_then_others_agree_with_the_twin(kinds: list[int]) -> None:
    """The kernel reuses the last service lookup while the (VIP, port, protocol) key repeats;
    runs broken by another service, a miss, a reply or a non-service frame must not leak."""
    balancers = []
    for implementation in ("cython", "python"):
        balancer = Balancer(seed=3, conntrack_capacity=256, implementation=implementation)
        balancer.add_service(Service("web", "198.18.0.5", 80), [Backend("w", "198.18.1.1", 8080)])
        balancer.add_service(
            Service("dns", "198.18.0.5", 53, protocol="udp"), [Backend("d", "198.18.1.2", 5353)]
        )
        balancers.append(balancer)
    client = ip_int("192.0.2.7")
    vip = ip_int("198.18.0.5")
    makers = [
        lambda i: tcp_udp_frame(client, vip, 6, 1000 + i, 80, tcp_flags=0x02),  # web
        lambda i: tcp_udp_frame(client, vip, 17, 1000 + i, 53),  # dns
        lambda i: tcp_udp_frame(client, vip, 17, 1000 + i, 80),  # no service on udp/80
        lambda i: tcp_udp_frame(ip_int("198.18.1.1"), client, 6, 8080, 1000 + i),  # web reply
        lambda i: tcp_udp_frame(client, ip_int("198.18.0.6"), 6, 1000 + i, 80),  # other IP
    ]
    frames = [makers[kind](index) for index, kind in enumerate(kinds)]
    for now in (1, 2):
        batches = [PacketBatch.from_frames(frames), PacketBatch.from_frames(frames)]
        verdicts = [b.process(batch, now).tolist() for b, batch in zip(balancers, batches)]
        assert verdicts[0] == verdicts[1]
        assert batches[0].frames() == batches[1].frames()
        assert balancers[0].counters == balancers[1].counters
        assert (balancers[0].conntrack.table == balancers[1].conntrack.table).all()
