"""The VIP balancer: services, their weighted backends, and the batch path.

``Balancer`` manages several VIP services (VIP address, port, protocol and
backends with weights and MACs); the scheduler calls ``add_service``,
``set_backends``, ``add_backend``, ``remove_backend``, ``drain`` and
``remove_service`` as tasks start and stop, and the node's data path calls
``process(batch, now_ns)`` for every batch of inner Ethernet frames.  What
``process`` does to each frame is written in ``dataplane/balancer_py.py`` (the
twin of ``balancer_c``); the table rule in ``dataplane/maglev_py.py``; the
connection-tracking rule in ``dataplane/conntrack_py.py``; parsing and NAT in
``dataplane/nat_py.py``.

Every node computes the same Maglev tables from the same (names, weights,
table size, seed), so a flow whose tracking entry is lost (node restart,
eviction) still lands on the same backend while the backend set is unchanged.

Bounds, all fixed at creation: ``max_backends`` backend slots (a removed
backend's slot is reused last-in-line, with a new generation so tracked flows
of the old one are never sent to the new one), ``max_services`` services,
``conntrack_capacity`` tracked flows (32 bytes each), and per service one
Maglev table of ``table_size`` int32 slots.

Configuration calls raise typed ``BalancerError`` subclasses (all
``ValueError``); ``process`` never raises on packet contents.

One thread owns a Balancer: ``process`` releases the GIL inside the kernel,
and configuration calls edit arrays the kernel reads, so a driver calls both
from the same thread (between batches), as the node's data-path loop does.
"""

from __future__ import annotations

import ipaddress
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from dataplane import balancer_py
from dataplane.balancer_py import (
    B_ALIVE,
    B_GENERATION,
    B_IP,
    B_MAC,
    B_PORT,
    B_SERVICE,
    BACKEND_COLUMNS,
    COUNTER_NAMES,
    ON_REMOVED_REPICK,
    ON_REMOVED_RESET,
    S_ON_REMOVED,
    S_PORT,
    S_PROTOCOL,
    S_TABLE_OFFSET,
    S_TABLE_SIZE,
    S_VIP,
    S_VIP_MAC,
    SERVICE_COLUMNS,
    VERDICT_NAMES,
    endpoint_key,
    index_slot,
)
from dataplane.batch import PacketBatch
from dataplane.kernels import select_kernel
from dataplane.conntrack import TIME_MAX_NS, ConnTrack, Timeouts, check_now
from dataplane.conntrack_py import fastrange32
from dataplane.flowhash import flow_hash as keyed_flow_hash
from dataplane.flowhash import split_seed
from dataplane.maglev import (
    DEFAULT_TABLE_SIZE,
    check_table_size,
    check_weight,
    encode_name,
    populate_sorted,
)

PROTOCOLS = {"tcp": 6, "udp": 17}
ON_BACKEND_REMOVED = {"reset": ON_REMOVED_RESET, "repick": ON_REMOVED_REPICK}
GENERATION_MAX = (1 << 32) - 1
BACKENDS_MAX = 1 << 24  # a slot number must fit the 24 bits of a tracking entry
_UINT8 = np.dtype(np.uint8)
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


def load_kernel(implementation: str | None = None):
    """The kernel module: 'cython', 'python', or None for the default rule (SHOAL_PURE)."""
    try:
        return select_kernel("dataplane.balancer_c", balancer_py, implementation)
    except ValueError as error:
        raise BalancerError(str(error)) from None


class BalancerError(ValueError):
    """Base of every configuration error of the balancer."""


class SpecError(BalancerError):
    """A Service or Backend that cannot work (name, weight, table size, protocol, action)."""


class AddressError(SpecError):
    """A malformed IPv4 address, port or MAC."""


class UnknownServiceError(BalancerError):
    """No service of that name."""


class DuplicateServiceError(BalancerError):
    """A service of that name, or with that (VIP, port, protocol), already exists."""


class UnknownBackendError(BalancerError):
    """No backend of that name in the service."""


class EndpointConflictError(BalancerError):
    """A backend endpoint (IP, port, protocol) already used by another backend or VIP."""


class CapacityError(BalancerError):
    """More backends or services than the balancer was created for."""


def parse_ipv4(text: str, what: str) -> int:
    try:
        return int(ipaddress.IPv4Address(text))
    except (ipaddress.AddressValueError, ValueError, TypeError) as error:
        raise AddressError(f"{what} must be an IPv4 address, got {text!r}") from error


def parse_port(port: int, what: str) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise AddressError(f"{what} must be a port in [1, 65535], got {port!r}")
    return port


def parse_mac(text: str | None, what: str) -> int:
    """48-bit MAC as an int, or -1 for none (the frame's MAC is kept)."""
    if text is None:
        return -1
    if not isinstance(text, str) or not _MAC.match(text):
        raise AddressError(f"{what} must look like 02:42:c0:00:02:01, got {text!r}")
    return int(text.replace(":", ""), 16)


@dataclass(frozen=True)
class Backend:
    """One task behind a VIP: ``weight`` 0 means draining (no new flows)."""

    name: str
    ip: str
    port: int
    mac: str | None = None
    weight: int = 1

    def __post_init__(self) -> None:
        try:
            encode_name(self.name)
            check_weight(self.name, self.weight)
        except ValueError as error:
            raise SpecError(str(error)) from error
        parse_ipv4(self.ip, f"backend {self.name!r} ip")
        parse_port(self.port, f"backend {self.name!r} port")
        parse_mac(self.mac, f"backend {self.name!r} mac")

    def same_endpoint(self, other: Backend) -> bool:
        return (self.ip, self.port, self.mac) == (other.ip, other.port, other.mac)


@dataclass(frozen=True)
class Service:
    """A VIP service.  ``vip_mac`` is written as the source MAC of replies (None: keep)."""

    name: str
    vip: str
    port: int
    protocol: str = "tcp"
    vip_mac: str | None = None
    table_size: int = DEFAULT_TABLE_SIZE
    on_backend_removed: str = "reset"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SpecError(f"service name must be a non-empty str, got {self.name!r}")
        parse_ipv4(self.vip, f"service {self.name!r} vip")
        parse_port(self.port, f"service {self.name!r} port")
        if self.protocol not in PROTOCOLS:
            raise SpecError(f"protocol must be one of {sorted(PROTOCOLS)}, got {self.protocol!r}")
        parse_mac(self.vip_mac, f"service {self.name!r} vip_mac")
        try:
            check_table_size(self.table_size)
        except ValueError as error:
            raise SpecError(str(error)) from error
        if self.on_backend_removed not in ON_BACKEND_REMOVED:
            raise SpecError(
                f"on_backend_removed must be one of {sorted(ON_BACKEND_REMOVED)}, got {self.on_backend_removed!r}"
            )

    @property
    def key(self) -> int:
        return endpoint_key(parse_ipv4(self.vip, "vip"), self.port, PROTOCOLS[self.protocol])


@dataclass
class _ServiceState:
    service: Service
    backends: dict[str, Backend] = field(default_factory=dict)
    slots: dict[str, int] = field(default_factory=dict)
    table: np.ndarray | None = None  # Maglev table of backend slots (-1: nobody)


def _build_index(entries: dict[int, int]) -> tuple[np.ndarray, np.ndarray, int]:
    """A linear-probing table of 2**bits slots, at most half full (see balancer_py.index_find)."""
    bits = 4
    while (1 << bits) < 2 * len(entries):
        bits += 1
    keys = np.zeros(1 << bits, dtype=np.uint64)
    values = np.full(1 << bits, -1, dtype=np.int32)
    mask = (1 << bits) - 1
    for key, value in sorted(entries.items()):
        slot = index_slot(key, bits)
        while keys[slot] != 0:
            slot = (slot + 1) & mask
        keys[slot] = key
        values[slot] = value
    return keys, values, bits


def _check_verdicts(verdicts: object) -> None:
    if (
        type(verdicts) is not np.ndarray
        or verdicts.dtype != _UINT8
        or verdicts.ndim != 1
        or not verdicts.flags.c_contiguous
        or not verdicts.flags.writeable
    ):
        raise BalancerError("verdicts must be a writable 1-D uint8 numpy array")


class Balancer:
    """Several VIP services over one connection table; see the module docstring."""

    def __init__(
        self,
        seed: int = 0,
        conntrack_capacity: int = 1 << 16,
        probe_window: int = 8,
        timeouts: Timeouts | None = None,
        max_backends: int = 4096,
        max_services: int = 1024,
        implementation: str | None = None,
    ) -> None:
        self.kernel_module = load_kernel(implementation)
        self.implementation = "python" if self.kernel_module is balancer_py else "cython"
        self.seed = seed
        self.k0, self.k1 = split_seed(seed)
        if (
            isinstance(max_backends, bool)
            or not isinstance(max_backends, int)
            or not 1 <= max_backends <= BACKENDS_MAX
        ):
            raise CapacityError(
                f"max_backends must be an int in [1, {BACKENDS_MAX}], got {max_backends!r}"
            )
        if (
            isinstance(max_services, bool)
            or not isinstance(max_services, int)
            or not 1 <= max_services <= 1 << 16
        ):
            raise CapacityError(f"max_services must be an int in [1, 65536], got {max_services!r}")
        self.max_backends = max_backends
        self.max_services = max_services
        self.conntrack = ConnTrack(
            conntrack_capacity, probe_window=probe_window, timeouts=timeouts, seed=seed
        )
        self.backend_rows = np.zeros((max_backends, BACKEND_COLUMNS), dtype=np.int64)
        self._free_slots: deque[int] = deque(range(max_backends))
        self._services: dict[str, _ServiceState] = {}
        self.counter_array = np.zeros(len(COUNTER_NAMES), dtype=np.uint64)
        self._checked_verdicts: np.ndarray | None = None  # last verdict array process() took
        self._rebuild()

    # -- configuration -------------------------------------------------------------

    def add_service(self, service: Service, backends: Iterable[Backend] = ()) -> None:
        if not isinstance(service, Service):
            raise BalancerError(f"add_service takes a Service, got {type(service).__name__}")
        if service.name in self._services:
            raise DuplicateServiceError(f"service {service.name!r} already exists")
        if len(self._services) >= self.max_services:
            raise CapacityError(f"already {self.max_services} services (max_services)")
        for other in self._services.values():
            if other.service.key == service.key:
                raise DuplicateServiceError(
                    f"{service.vip}:{service.port}/{service.protocol} is already the VIP of {other.service.name!r}"
                )
        if service.key in self._endpoint_keys():
            raise EndpointConflictError(
                f"{service.vip}:{service.port}/{service.protocol} is a backend endpoint"
            )
        self._services[service.name] = _ServiceState(service)
        try:
            self.set_backends(service.name, backends)
        except BalancerError:
            del self._services[service.name]
            self._rebuild()
            raise

    def remove_service(self, name: str) -> None:
        state = self._state(name)
        for backend_name in list(state.slots):
            self._free(state, backend_name)
        del self._services[name]
        self._rebuild()

    def set_backends(self, service_name: str, backends: Iterable[Backend]) -> None:
        """Make the service's backends exactly ``backends`` (by name); others are removed."""
        state = self._state(service_name)
        wanted: dict[str, Backend] = {}
        for backend in backends:
            if not isinstance(backend, Backend):
                raise BalancerError(
                    f"backends must be Backend objects, got {type(backend).__name__}"
                )
            if backend.name in wanted:
                raise BalancerError(
                    f"backend {backend.name!r} appears twice in service {service_name!r}"
                )
            wanted[backend.name] = backend
        self._check_endpoints(state, wanted)
        fresh = [
            name
            for name, backend in wanted.items()
            if name not in state.backends or not state.backends[name].same_endpoint(backend)
        ]
        leaving = [
            name
            for name, backend in state.backends.items()
            if name not in wanted or not wanted[name].same_endpoint(backend)
        ]
        if len(fresh) - len(leaving) > len(self._free_slots):
            raise CapacityError(
                f"no free backend slot for {len(fresh)} new backends (max_backends={self.max_backends})"
            )
        for name in leaving:
            self._free(state, name)
        service_index = sorted(self._services).index(service_name)
        for name in fresh:
            self._allocate(state, wanted[name], service_index)
        state.backends = dict(wanted)
        self._build_service_table(state)
        self._rebuild()

    def add_backend(self, service_name: str, backend: Backend) -> None:
        state = self._state(service_name)
        if backend.name in state.backends:
            raise BalancerError(f"backend {backend.name!r} already in service {service_name!r}")
        self.set_backends(service_name, [*state.backends.values(), backend])

    def remove_backend(self, service_name: str, backend_name: str) -> None:
        """Remove a backend: its tracked flows are reset or re-picked (the service's rule)."""
        state = self._state(service_name)
        if backend_name not in state.backends:
            raise UnknownBackendError(f"no backend {backend_name!r} in service {service_name!r}")
        self.set_backends(
            service_name, [b for name, b in state.backends.items() if name != backend_name]
        )

    def set_weight(self, service_name: str, backend_name: str, weight: int) -> None:
        state = self._state(service_name)
        if backend_name not in state.backends:
            raise UnknownBackendError(f"no backend {backend_name!r} in service {service_name!r}")
        old = state.backends[backend_name]
        try:
            updated = Backend(old.name, old.ip, old.port, old.mac, weight)
        except SpecError as error:
            raise BalancerError(str(error)) from error
        self.set_backends(
            service_name,
            [updated if name == backend_name else b for name, b in state.backends.items()],
        )

    def drain(self, service_name: str, backend_name: str) -> None:
        """Weight 0: no new flows go to the backend; its tracked flows stay on it."""
        self.set_weight(service_name, backend_name, 0)

    def sync(self, desired: Iterable[tuple[Service, Iterable[Backend]]]) -> None:
        """Make the configuration exactly ``desired`` (the scheduler's reconcile call).

        Services missing from ``desired`` are removed, new ones added, and each
        service's backends set (by name, so unchanged backends keep their slot
        and their tracked flows).  A service whose spec changed (VIP, port,
        protocol, table size, ...) is removed and added again.  Checked first:
        on a typed error nothing has changed.
        """
        wanted: dict[str, tuple[Service, list[Backend]]] = {}
        for service, backends in desired:
            if not isinstance(service, Service):
                raise BalancerError(
                    f"sync takes (Service, backends) pairs, got {type(service).__name__}"
                )
            if service.name in wanted:
                raise DuplicateServiceError(f"service {service.name!r} appears twice")
            wanted[service.name] = (service, list(backends))
        trial = Balancer(
            seed=self.seed,
            conntrack_capacity=1,
            max_backends=self.max_backends,
            max_services=self.max_services,
            implementation="python",
        )
        for service, backends in wanted.values():
            trial.add_service(service, backends)  # raises the typed error, if any
        for name in [name for name in self._services if name not in wanted]:
            self.remove_service(name)
        for name in [
            name for name, state in self._services.items() if state.service != wanted[name][0]
        ]:
            self.remove_service(name)
        for name, (service, backends) in sorted(wanted.items()):
            if name in self._services:
                self.set_backends(name, backends)
            else:
                self.add_service(service, backends)

    # -- queries ---------------------------------------------------------------------

    def services(self) -> list[Service]:
        return [self._services[name].service for name in sorted(self._services)]

    def backends(self, service_name: str) -> list[Backend]:
        return [
            self._state(service_name).backends[name]
            for name in sorted(self._state(service_name).backends)
        ]

    def table(self, service_name: str) -> list[str | None]:
        """The service's Maglev table as backend names (None: no active backend)."""
        state = self._state(service_name)
        names = {slot: name for name, slot in state.slots.items()}
        return [names.get(int(slot)) for slot in state.table]

    def backend_for_new_flow(
        self, service_name: str, client_ip: str, client_port: int
    ) -> str | None:
        """The backend a new flow from this client would get (the Maglev choice)."""
        state = self._state(service_name)
        service = state.service
        flow = keyed_flow_hash(
            self.seed,
            PROTOCOLS[service.protocol],
            parse_ipv4(client_ip, "client ip"),
            parse_ipv4(service.vip, "vip"),
            parse_port(client_port, "client port"),
            service.port,
        )
        slot = int(state.table[fastrange32(flow >> 32, service.table_size)])
        return next((name for name, s in state.slots.items() if s == slot), None)

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the data path: tracking table, backend rows, Maglev tables."""
        tables = sum(
            state.table.nbytes for state in self._services.values() if state.table is not None
        )
        return self.conntrack.memory_bytes + self.backend_rows.nbytes + tables

    @property
    def counters(self) -> dict[str, int]:
        found = {name: int(value) for name, value in zip(COUNTER_NAMES, self.counter_array)}
        found.update(
            {f"conntrack_{name}": value for name, value in self.conntrack.counters.items()}
        )
        return found

    # -- data path -------------------------------------------------------------------

    def process(
        self, batch: PacketBatch, now_ns: int, verdicts: np.ndarray | None = None
    ) -> np.ndarray:
        """Balance every frame of ``batch`` in place; return one verdict per frame.

        Verdicts (``VERDICT_NAMES``): 0 pass (untouched), 1 forward (rewritten
        to a backend), 2 reply (rewritten back to the VIP), 3 drop, 4 reset
        (the flow's backend was removed; a driver may answer with TCP RST).
        """
        # Called once per batch of a few hundred packets: every check here is
        # paid per batch, so the common case (the driver's own verdict array,
        # already checked once) costs two identity tests and a length test.
        # The numpy dtype comparison alone cost about 100 ns.
        if type(now_ns) is not int or not 0 <= now_ns <= TIME_MAX_NS:
            now_ns = check_now(now_ns)  # raises the typed error
        count = batch.count
        if verdicts is None:
            verdicts = np.zeros(count, dtype=np.uint8)
        elif verdicts is not self._checked_verdicts:
            _check_verdicts(verdicts)
            self._checked_verdicts = verdicts
        size = len(verdicts)
        if size < count:
            raise BalancerError(f"verdicts has {size} slots, the batch {count} packets")
        if count:
            try:
                self._kernel.process(
                    batch.buffer, batch.offsets, batch.lengths, count, verdicts, now_ns
                )
            except ValueError:
                # The array passed the checks when first seen and was changed
                # since (made read-only, reshaped in place): both kernels refuse
                # it before touching a packet.  Say so in the typed error.
                self._checked_verdicts = None
                _check_verdicts(verdicts)
                raise
        return verdicts if size == count else verdicts[:count]

    def sweep(self, now_ns: int) -> int:
        """Free every expired tracking entry (a driver may call it when idle)."""
        return self.conntrack.sweep(now_ns)

    # -- internals -------------------------------------------------------------------

    def _state(self, name: str) -> _ServiceState:
        try:
            return self._services[name]
        except (KeyError, TypeError):
            raise UnknownServiceError(f"no service {name!r}") from None

    def _endpoint_keys(self, skip: _ServiceState | None = None) -> set[int]:
        keys = set()
        for state in self._services.values():
            if state is skip:
                continue
            protocol = PROTOCOLS[state.service.protocol]
            for backend in state.backends.values():
                keys.add(endpoint_key(parse_ipv4(backend.ip, "ip"), backend.port, protocol))
        return keys

    def _check_endpoints(self, state: _ServiceState, wanted: dict[str, Backend]) -> None:
        protocol = PROTOCOLS[state.service.protocol]
        taken = self._endpoint_keys(skip=state) | {
            other.service.key for other in self._services.values()
        }
        seen: dict[int, str] = {}
        for backend in wanted.values():
            key = endpoint_key(parse_ipv4(backend.ip, "ip"), backend.port, protocol)
            if key in taken or key in seen:
                raise EndpointConflictError(
                    f"{backend.ip}:{backend.port}/{state.service.protocol} of backend {backend.name!r} is already "
                    "a VIP or another backend's endpoint (replies could not be mapped back to one VIP)"
                )
            seen[key] = backend.name

    def _allocate(self, state: _ServiceState, backend: Backend, service_index: int) -> None:
        slot = self._free_slots.popleft()
        row = self.backend_rows[slot]
        generation = int(row[B_GENERATION]) + 1
        assert generation <= GENERATION_MAX, f"backend slot {slot} reused 2**32 times"
        row[B_IP] = parse_ipv4(backend.ip, "ip")
        row[B_PORT] = backend.port
        row[B_MAC] = parse_mac(backend.mac, "mac")
        row[B_GENERATION] = generation
        row[B_ALIVE] = 1
        row[B_SERVICE] = service_index
        state.slots[backend.name] = slot

    def _free(self, state: _ServiceState, name: str) -> None:
        slot = state.slots.pop(name)
        self.backend_rows[slot, B_ALIVE] = 0
        self._free_slots.append(slot)  # reused last: its generation changes anyway

    def _build_service_table(self, state: _ServiceState) -> None:
        weights = {name: backend.weight for name, backend in state.backends.items()}
        size = state.service.table_size
        if not weights:
            state.table = np.full(size, -1, dtype=np.int32)
            return
        names = sorted(weights)
        table = populate_sorted(weights, size, self.seed)
        slots = np.array([state.slots[name] for name in names], dtype=np.int32)
        state.table = np.where(table >= 0, slots[np.maximum(table, 0)], -1).astype(np.int32)

    def _rebuild(self) -> None:
        """Recompute the kernel's arrays from the configuration (control-plane speed)."""
        names = sorted(self._services)
        services = np.zeros((max(1, len(names)), SERVICE_COLUMNS), dtype=np.int64)
        tables = []
        offset = 0
        service_keys: dict[int, int] = {}
        endpoint_keys: dict[int, int] = {}
        for index, name in enumerate(names):
            state = self._services[name]
            service = state.service
            if state.table is None:
                self._build_service_table(state)
            row = services[index]
            row[S_VIP] = parse_ipv4(service.vip, "vip")
            row[S_PORT] = service.port
            row[S_PROTOCOL] = PROTOCOLS[service.protocol]
            row[S_TABLE_OFFSET] = offset
            row[S_TABLE_SIZE] = service.table_size
            row[S_ON_REMOVED] = ON_BACKEND_REMOVED[service.on_backend_removed]
            row[S_VIP_MAC] = parse_mac(service.vip_mac, "vip_mac")
            tables.append(state.table)
            offset += service.table_size
            service_keys[service.key] = index
            for backend_name, slot in state.slots.items():
                self.backend_rows[slot, B_SERVICE] = index
                backend = state.backends[backend_name]
                endpoint_keys[
                    endpoint_key(
                        parse_ipv4(backend.ip, "ip"), backend.port, PROTOCOLS[service.protocol]
                    )
                ] = slot
        lookup = np.concatenate(tables) if tables else np.full(1, -1, dtype=np.int32)
        service_index = _build_index(service_keys)
        endpoint_index = _build_index(endpoint_keys)
        conntrack = self.conntrack
        self._kernel = self.kernel_module.Kernel(
            services,
            self.backend_rows,
            lookup,
            *service_index,
            *endpoint_index,
            conntrack.table,
            conntrack.capacity,
            conntrack.probe_window,
            conntrack.timeouts_ns,
            conntrack.counter_array,
            self.counter_array,
            self.k0,
            self.k1,
        )

    def __repr__(self) -> str:
        return f"Balancer(services={len(self._services)}, implementation={self.implementation!r}, {self.conntrack!r})"


__all__ = [
    "VERDICT_NAMES",
    "AddressError",
    "Backend",
    "Balancer",
    "BalancerError",
    "CapacityError",
    "DuplicateServiceError",
    "EndpointConflictError",
    "Service",
    "SpecError",
    "Timeouts",
    "UnknownBackendError",
    "UnknownServiceError",
]
