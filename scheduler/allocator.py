"""Allocator (swarmkit manager/allocator): network resources before
scheduling.

* A VIP per service per network it is attached to (its template's networks,
  plus the ingress network when it publishes ports through the routing mesh).
* Published ports: explicit ones are checked for clashes; missing ones come
  from 30000-32767 (swarmkit's dynamic port range), lowest free first.
* An overlay address per task per network; then the task moves NEW -> PENDING.
* VNIs and subnets are chosen when a network is created (see api.py).

Exhaustion is a clear error on the service's tasks ("allocation failed:
network ingress has no free address"), never a hang: the tasks stay NEW with
the error and are retried when something is freed. Addresses of tasks that
reached a terminal state are freed (swarmkit deallocates terminal tasks).
"""
from __future__ import annotations

import heapq
import ipaddress
from typing import Iterable, Optional

from scheduler.component import NETWORKS, STATE, TASK_ID, Component, Context
from scheduler.errors import AllocationExhausted
from scheduler.model import PortConfig, Service, ServiceEndpoint, Task, TaskState, TaskStatus, evolve
from scheduler.store import Event, PatchTask, PatchTasks, Update

DYNAMIC_PORT_FIRST = 30000
DYNAMIC_PORT_LAST = 32767


class AddressPool:
    """Lowest-free IPv4 addresses of a subnet, gateway excluded."""

    def __init__(self, subnet: str, gateway: str) -> None:
        network = ipaddress.IPv4Network(subnet)
        assert network.num_addresses <= 1 << 16, f"subnet {subnet} larger than /16"
        self.gateway = int(ipaddress.IPv4Address(gateway))
        first, last = int(network.network_address) + 1, int(network.broadcast_address) - 1
        self.free = [a for a in range(first, last + 1) if a != self.gateway]
        heapq.heapify(self.free)
        self.used: set[int] = set()
        self.name = subnet

    def allocate(self) -> str:
        while self.free:
            address = heapq.heappop(self.free)
            if address not in self.used:
                self.used.add(address)
                return str(ipaddress.IPv4Address(address))
        raise AllocationExhausted(f"subnet {self.name} has no free address")

    def claim(self, address: str) -> None:
        self.used.add(int(ipaddress.IPv4Address(address)))

    def release(self, address: str) -> None:
        value = int(ipaddress.IPv4Address(address))
        if value in self.used:
            self.used.discard(value)
            heapq.heappush(self.free, value)


class Allocator(Component):
    name = "allocator"
    ticks_only_after_input = True    # (see Component; no clock-driven work)

    def __init__(self) -> None:
        self.pools: dict[str, AddressPool] = {}
        self.network_by_name: dict[str, str] = {}
        self.ports: dict[tuple[str, int], str] = {}       # (protocol, port) -> service id
        self.task_addresses: dict[str, tuple] = {}        # task id -> networks held
        self.dirty_services: set[str] = set()
        self.new_tasks: dict[str, Task] = {}
        self.resync = True

    # ------------------------------------------------------------ tracking
    def start(self, context: Context) -> None:
        self.resync = True

    def _rebuild(self, store) -> None:
        self.pools.clear()
        self.network_by_name.clear()
        self.ports.clear()
        self.task_addresses.clear()
        self.new_tasks.clear()
        for network in store.list("network"):
            self._add_network(network)
        for service in store.list("service"):
            if service.endpoint is not None:
                for network_id, address in service.endpoint.vips:
                    if network_id in self.pools:
                        self.pools[network_id].claim(address)
                for port in service.endpoint.ports:
                    if port.published_port and not port.host_mode:
                        self.ports[(port.protocol, port.published_port)] = service.id
        for task in store.objects["task"].values():
            self._track_task(task)
        self.dirty_services = set(store.objects["service"])

    def _add_network(self, network) -> None:
        if network.id not in self.pools:
            self.pools[network.id] = AddressPool(network.subnet, network.gateway)
        self.network_by_name[network.name] = network.id

    def _track_task(self, task: Task) -> None:
        if task.networks and task.status.state < TaskState.COMPLETE and task.id not in self.task_addresses:
            self.task_addresses[task.id] = task.networks
            for network_id, address in task.networks:
                if network_id in self.pools:
                    self.pools[network_id].claim(address)
        if task.status.state == TaskState.NEW and task.desired_state <= TaskState.RUNNING:
            self.new_tasks[task.id] = task
        else:
            self.new_tasks.pop(task.id, None)

    def _free_task(self, task_id: str) -> None:
        for network_id, address in self.task_addresses.pop(task_id, ()):
            if network_id in self.pools:
                self.pools[network_id].release(address)

    def on_events(self, events: Iterable[Event]) -> None:
        if self.resync:
            return
        for event in events:
            kind = event.kind
            if event.action == "create-many":
                first = event.obj[0]
                if first.status.state == TaskState.NEW or first.networks:
                    for task in event.obj:
                        self._track_task(task)
                continue
            if event.action == "update-many":
                news = event.obj
                if not any(map(NETWORKS, news)) and TaskState.NEW not in set(map(STATE, news)) and \
                        self.new_tasks.keys().isdisjoint(map(TASK_ID, news)):
                    continue   # nothing held, nothing to allocate
                for task in news:
                    if task.status.state >= TaskState.COMPLETE:
                        self._free_task(task.id)
                        self.new_tasks.pop(task.id, None)
                    else:
                        self._track_task(task)
                continue
            if kind == "task":
                task = event.obj
                state = task.status.state
                if not task.networks and state != TaskState.NEW and task.id not in self.new_tasks:
                    continue   # nothing held, nothing to allocate: the common case at scale
                if event.action == "delete" or state >= TaskState.COMPLETE:
                    self._free_task(task.id)
                    self.new_tasks.pop(task.id, None)
                else:
                    self._track_task(task)
            elif kind == "service":
                if event.action == "delete":
                    self._free_service(event.obj)
                else:
                    self.dirty_services.add(event.obj.id)
            elif kind == "network":
                if event.action != "delete":
                    self._add_network(event.obj)
                    self.dirty_services.update(t.service_id for t in self.new_tasks.values())

    def _free_service(self, service: Service) -> None:
        if service.endpoint is None:
            return
        for network_id, address in service.endpoint.vips:
            if network_id in self.pools:
                self.pools[network_id].release(address)
        for port in service.endpoint.ports:
            key = (port.protocol, port.published_port)
            if self.ports.get(key) == service.id:
                del self.ports[key]

    # ------------------------------------------------------------ decisions
    def _required_networks(self, service: Service) -> tuple[list[str], Optional[str]]:
        """Network ids the service needs, or an error naming a missing one."""
        ids = []
        for name in service.spec.task.networks:
            network_id = self.network_by_name.get(name)
            if network_id is None:
                return [], f"network {name} not found"
            ids.append(network_id)
        if any(not p.host_mode for p in service.spec.ports):
            ingress = self.network_by_name.get("ingress")
            if ingress is None:
                return [], "network ingress not found"
            if ingress not in ids:
                ids.append(ingress)
        return sorted(ids), None

    def _endpoint_current(self, service: Service, network_ids: list[str]) -> bool:
        endpoint = service.endpoint
        if endpoint is None:
            return not network_ids and not service.spec.ports
        if [n for n, _ in endpoint.vips] != network_ids or len(endpoint.ports) != len(service.spec.ports):
            return False
        return all(a.target_port == b.target_port and a.protocol == b.protocol and a.host_mode == b.host_mode and
                   (b.published_port in (0, a.published_port))
                   for a, b in zip(endpoint.ports, service.spec.ports))

    def _allocate_endpoint(self, service: Service, network_ids: list[str]) -> ServiceEndpoint:
        old = service.endpoint or ServiceEndpoint()
        old_vips = dict(old.vips)
        vips = []
        taken: list[tuple[str, str]] = []
        try:
            for network_id in network_ids:
                address = old_vips.get(network_id)
                if address is None:
                    address = self.pools[network_id].allocate()
                    taken.append((network_id, address))
                vips.append((network_id, address))
            ports = []
            previous = {(p.protocol, p.target_port): p.published_port for p in old.ports}
            for port in service.spec.ports:
                if port.host_mode:
                    ports.append(port)
                    continue
                published = port.published_port or previous.get((port.protocol, port.target_port), 0)
                if published:
                    owner = self.ports.get((port.protocol, published))
                    if owner not in (None, service.id):
                        raise AllocationExhausted(f"port {published}/{port.protocol} is already in use by "
                                                  f"service {owner}")
                else:
                    published = next((p for p in range(DYNAMIC_PORT_FIRST, DYNAMIC_PORT_LAST + 1)
                                      if (port.protocol, p) not in self.ports), 0)
                    if not published:
                        raise AllocationExhausted(f"no free published port in {DYNAMIC_PORT_FIRST}-"
                                                  f"{DYNAMIC_PORT_LAST}")
                self.ports[(port.protocol, published)] = service.id
                ports.append(PortConfig(port.target_port, published, port.protocol, False))
        except AllocationExhausted:
            for network_id, address in taken:
                self.pools[network_id].release(address)
            raise
        for network_id, address in old.vips:
            if network_id not in network_ids and network_id in self.pools:
                self.pools[network_id].release(address)
        kept = {(p.protocol, p.published_port) for p in ports if not p.host_mode}
        for port in old.ports:
            key = (port.protocol, port.published_port)
            if key not in kept and self.ports.get(key) == service.id:
                del self.ports[key]
        return ServiceEndpoint(tuple(vips), tuple(ports))

    def tick(self, context: Context) -> list:
        store = context.store
        if self.resync:
            self.resync = False
            self._rebuild(store)
        if self.skip_idle_ticks and not self.dirty_services and not self.new_tasks:
            return []   # idle tick: no service changed, no task waits (the full pass would do nothing)
        now = context.now_ticks
        ops: list = []
        service_error: dict[str, str] = {}
        networks_of: dict[str, list[str]] = {}
        for service_id in sorted(self.dirty_services | {t.service_id for t in self.new_tasks.values()}):
            service = store.get("service", service_id)
            if service is None:
                continue
            network_ids, error = self._required_networks(service)
            if error:
                service_error[service_id] = error
                continue
            networks_of[service_id] = network_ids
            if not self._endpoint_current(service, network_ids):
                try:
                    endpoint = self._allocate_endpoint(service, network_ids)
                except AllocationExhausted as exhausted:
                    service_error[service_id] = str(exhausted)
                    continue
                ops.append(Update(evolve(service, endpoint=endpoint), service.version))
        self.dirty_services = set()
        pending_status = TaskStatus(TaskState.PENDING, "pending task scheduling", "", now)
        done: list[str] = []
        rows: list = []
        for task_id in sorted(self.new_tasks):
            task = self.new_tasks[task_id]
            error = service_error.get(task.service_id)
            network_ids = networks_of.get(task.service_id)
            if error is None and network_ids is None:
                error = "service not found"
            attachments = []
            if error is None and network_ids:
                try:
                    for network_id in network_ids:
                        attachments.append((network_id, self.pools[network_id].allocate()))
                except AllocationExhausted as exhausted:
                    error = f"network {network_id}: {exhausted}"
                    for held_network, address in attachments:
                        self.pools[held_network].release(address)
            if error is not None:
                message = f"allocation failed: {error}"
                if task.status.err == message:
                    continue   # stays queued; retried each tick until something frees up
                done.append(task_id)
                ops.append(PatchTask(task.id, task.version,
                                     status=TaskStatus(TaskState.NEW, "allocation failed", message, now)))
                continue
            done.append(task_id)
            if attachments:
                self.task_addresses[task.id] = tuple(attachments)
                rows.append((task.id, task.version, None, tuple(attachments)))
            else:
                rows.append((task.id, task.version, None, None))
        if rows:
            ops.append(PatchTasks(tuple(rows), pending_status))
        for task_id in done:   # back via events once committed (or via resync on failure)
            del self.new_tasks[task_id]
        return ops
