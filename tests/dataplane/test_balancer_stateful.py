"""A rule-based machine drives the Cython balancer and its twin side by side; invariants after every step."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dataplane.balancer import Backend, Balancer, BalancerError, Service
from dataplane.balancer_py import B_ALIVE, B_GENERATION, B_IP, VERDICT_FORWARD, VERDICT_REPLY
from dataplane.balancer_strategies import ip_int, tcp_udp_frame
from dataplane.batch import PacketBatch
from dataplane.conntrack import Timeouts

TIMEOUTS = Timeouts(
    syn_sent_ns=300, established_ns=3000, fin_wait_ns=500, closed_ns=100, udp_ns=2000
)
CAPACITY = 24
BACKEND_NAMES = [f"b{index}" for index in range(6)]


def backend(index: int, weight: int) -> Backend:
    return Backend(
        BACKEND_NAMES[index],
        f"198.18.1.{index + 1}",
        9000 + index,
        f"02:00:00:00:01:{index:02x}",
        weight,
    )


class BalancerMachine(RuleBasedStateMachine):
    """Model: which backend each established client flow is on, while that backend stays."""

    def __init__(self) -> None:
        super().__init__()
        self.balancers = [
            Balancer(
                seed=77,
                conntrack_capacity=CAPACITY,
                probe_window=4,
                timeouts=TIMEOUTS,
                max_backends=4,  # small, so freed slots come back (new generation) often
                implementation=name,
            )
            for name in ("cython", "python")
        ]
        for balancer in self.balancers:
            balancer.add_service(
                Service(
                    "web",
                    "198.18.0.10",
                    80,
                    vip_mac="02:00:00:00:00:0a",
                    table_size=101,
                    on_backend_removed="repick",
                ),
                [backend(index, 1) for index in range(3)],
            )
        self.now = 0
        self.owners: dict[
            tuple[int, int], str
        ] = {}  # (client, port) -> backend name, while it stays

    def _send(self, frame: bytes) -> tuple[int, bytes]:
        results = []
        for balancer in self.balancers:
            batch = PacketBatch.from_frames([frame])
            verdict = int(balancer.process(batch, self.now)[0])
            results.append((verdict, batch.frame(0)))
        assert results[0] == results[1], "Cython and twin disagree"
        return results[0]

    def _backend_of(self, frame: bytes) -> str | None:
        address = int.from_bytes(frame[30:34], "big")
        names = {ip_int(b.ip): b.name for b in self.balancers[0].backends("web")}
        return names.get(address)

    def _tracked_backend(self, client: int, port: int) -> str | None:
        """The backend a live tracking entry pins this flow to, if its backend is still alive."""
        balancer = self.balancers[0]
        for entry in balancer.conntrack.entries():
            if (entry.source_ip, entry.source_port) != (ip_int(f"192.0.2.{client}"), port):
                continue
            if entry.expires_ns <= self.now or entry.state == "CLOSED":
                return None  # expired, or a SYN may reopen it as a new connection
            slot, generation = entry.value & 0xFFFFFF, entry.value >> 24
            row = balancer.backend_rows[slot]
            if not row[B_ALIVE] or int(row[B_GENERATION]) != generation:
                return None
            names = {ip_int(b.ip): b.name for b in balancer.backends("web")}
            return names[int(row[B_IP])]
        return None

    @rule(
        client=st.integers(1, 2),
        port=st.integers(1000, 1001),
        flags=st.sampled_from([0x02, 0x10, 0x18, 0x11, 0x04]),
    )
    def client_packet(self, client: int, port: int, flags: int) -> None:
        pinned = self._tracked_backend(client, port)
        frame = tcp_udp_frame(
            ip_int(f"192.0.2.{client}"), ip_int("198.18.0.10"), 6, port, 80, tcp_flags=flags
        )
        verdict, out = self._send(frame)
        key = (client, port)
        if verdict == VERDICT_FORWARD:
            chosen = self._backend_of(out)
            if pinned is not None:
                # The property: a live entry whose backend stays keeps the flow on it
                # (weights, drains, other backends' arrivals and departures notwithstanding).
                assert chosen == pinned, (key, pinned, chosen)
            self.owners[key] = chosen
        else:
            self.owners.pop(key, None)

    @precondition(lambda self: bool(self.owners))
    @rule(data=st.data())
    def backend_reply(self, data) -> None:
        client, port = data.draw(st.sampled_from(sorted(self.owners)))
        name = self.owners[(client, port)]
        spec = next((b for b in self.balancers[0].backends("web") if b.name == name), None)
        if spec is None:
            return
        frame = tcp_udp_frame(
            ip_int(spec.ip), ip_int(f"192.0.2.{client}"), 6, spec.port, port, tcp_flags=0x10
        )
        verdict, out = self._send(frame)
        assert verdict == VERDICT_REPLY
        assert out[26:30] == ip_int("198.18.0.10").to_bytes(4, "big") and out[34:36] == (
            80
        ).to_bytes(2, "big")

    @rule(
        index=st.integers(0, 5),
        weight=st.integers(0, 3),
        action=st.sampled_from(["add", "remove", "weight"]),
    )
    def change_backends(self, index: int, weight: int, action: str) -> None:
        outcomes = []
        for balancer in self.balancers:
            try:
                if action == "add":
                    balancer.add_backend("web", backend(index, weight))
                elif action == "remove":
                    balancer.remove_backend("web", BACKEND_NAMES[index])
                else:
                    balancer.set_weight("web", BACKEND_NAMES[index], weight)
                outcomes.append("ok")
            except BalancerError as error:
                outcomes.append(type(error).__name__)
        assert outcomes[0] == outcomes[1]

    @rule(ticks=st.sampled_from([1, 10, 200, 1000, 4000]))
    def advance_clock(self, ticks: int) -> None:
        self.now += ticks

    @rule()
    def sweep(self) -> None:
        assert self.balancers[0].sweep(self.now) == self.balancers[1].sweep(self.now)

    @invariant()
    def implementations_agree_and_stay_bounded(self) -> None:
        first, second = self.balancers
        assert first.counters == second.counters
        assert (first.conntrack.table == second.conntrack.table).all()
        assert 0 <= first.counters["conntrack_occupied"] <= CAPACITY
        assert first.conntrack.occupied == len(first.conntrack.entries())
        outcomes = sum(
            v
            for k, v in first.counters.items()
            if k != "packets" and not k.startswith("conntrack_")
        )
        assert outcomes == first.counters["packets"]
        assert first.counters["reset_backend_gone"] == 0  # this service re-picks


TestBalancerMachine = BalancerMachine.TestCase
TestBalancerMachine.settings = settings(max_examples=50, stateful_step_count=40, deadline=None)
