"""Client API: what ``shoal service|node|network|secret|config ...`` calls.

:class:`ClientAPI` turns a request into a :class:`Proposal` (bytes to submit
to Raft on the leader) after validating it against the local store; the store
re-checks versions when the entry commits, so a concurrent change makes the
request fail with a typed result instead of being lost or forced.
:class:`Reads` answers ls / ps / inspect and convergence on any manager.
"""
from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from typing import Optional

from scheduler.constraints import node_matches, parse_constraints
from scheduler.errors import AlreadyExists, InvalidSpec, NotFound
from scheduler.model import (Config, Network, Node, NodeAvailability, NodeRole, NodeStatus, Secret, Service,
                             ServiceMode, ServiceSpec, Task, TaskState, UpdateState, UpdateStatus, evolve)
from scheduler.store import Create, Delete, Store, Transaction, Update

VNI_FIRST_USER = 4097          # 4096 is the ingress network's
OVERLAY_POOL = ipaddress.IPv4Network("10.0.0.0/8")   # Docker's default address pool, /24 each


@dataclass(frozen=True, slots=True)
class Proposal:
    data: bytes
    sequence: int
    object_id: str = ""


class ClientAPI:
    def __init__(self, manager) -> None:
        self.manager = manager

    @property
    def store(self) -> Store:
        return self.manager.store

    def _proposal(self, ops: list, object_id: str = "") -> Proposal:
        sequence = self.manager.next_api_sequence()
        return Proposal(Transaction(tuple(ops), "api", self.manager.id, sequence).encode(), sequence, object_id)

    def _new_id(self) -> str:
        return f"{self.manager.rng.getrandbits(64):016x}"

    def _service(self, name_or_id: str) -> Service:
        service = self.store.service_named(name_or_id) or self.store.get("service", name_or_id)
        if service is None:
            raise NotFound(f"service {name_or_id} not found")
        return service

    def _check_references(self, spec: ServiceSpec) -> None:
        names = {kind: {obj.name for obj in self.store.objects[kind].values()}
                 for kind in ("network", "secret", "config")}
        for kind, wanted in (("network", spec.task.networks), ("secret", spec.task.secrets),
                             ("config", spec.task.configs)):
            for name in wanted:
                if name not in names[kind]:
                    raise NotFound(f"{kind} {name} not found")

    # ------------------------------------------------------------ services
    def create_service(self, spec: ServiceSpec) -> Proposal:
        if not isinstance(spec, ServiceSpec):
            raise InvalidSpec("create_service takes a ServiceSpec")
        if self.store.service_named(spec.name) is not None:
            raise AlreadyExists(f"service {spec.name} already exists")
        self._check_references(spec)
        service_id = self._new_id()
        service = Service(service_id, spec, created_at_ticks=self.manager.context.now_ticks)
        return self._proposal([Create(service)], service_id)

    def update_service(self, name: str, spec: ServiceSpec) -> Proposal:
        """Replace the spec. A change of what tasks run (template or ports)
        starts a rolling update; a replica count change alone just scales."""
        service = self._service(name)
        if spec.name != service.spec.name:
            raise InvalidSpec("a service cannot be renamed")
        if spec.mode != service.spec.mode:
            raise InvalidSpec("a service's mode cannot change")
        self._check_references(spec)
        if spec.task == service.spec.task and spec.ports == service.spec.ports:
            return self._proposal([Update(evolve(service, spec=spec), service.version)], service.id)
        now = self.manager.context.now_ticks
        updated = evolve(service, spec=spec, spec_version=service.spec_version + 1, previous_spec=service.spec,
                         previous_spec_version=service.spec_version,
                         update_status=UpdateStatus(UpdateState.UPDATING, now, 0, "update in progress"))
        return self._proposal([Update(updated, service.version)], service.id)

    def scale(self, name: str, replicas: int) -> Proposal:
        service = self._service(name)
        if service.spec.mode != ServiceMode.REPLICATED:
            raise InvalidSpec(f"service {service.spec.name} is global; it cannot be scaled")
        spec = dataclasses.replace(service.spec, replicas=replicas)   # validates
        return self._proposal([Update(evolve(service, spec=spec), service.version)], service.id)

    def rollback(self, name: str) -> Proposal:
        service = self._service(name)
        if service.previous_spec is None:
            raise InvalidSpec(f"service {service.spec.name} has no previous spec to roll back to")
        now = self.manager.context.now_ticks
        rolled = evolve(service, spec=dataclasses.replace(service.previous_spec, replicas=service.spec.replicas),
                        spec_version=service.spec_version + 1, previous_spec=service.spec,
                        previous_spec_version=service.spec_version,
                        update_status=UpdateStatus(UpdateState.ROLLBACK_STARTED, now, 0, "manually requested rollback"))
        return self._proposal([Update(rolled, service.version)], service.id)

    def resume_update(self, name: str) -> Proposal:
        """Continue a paused (or canary-paused) update or rollback."""
        service = self._service(name)
        status = service.update_status
        if status is None or status.state not in (UpdateState.PAUSED, UpdateState.ROLLBACK_PAUSED):
            raise InvalidSpec(f"service {service.spec.name} has no paused update")
        state = UpdateState.UPDATING if status.state == UpdateState.PAUSED else UpdateState.ROLLBACK_STARTED
        resumed = evolve(status, state=state, canary_passed=True, message="update resumed",
                         started_at_ticks=self.manager.context.now_ticks)
        return self._proposal([Update(evolve(service, update_status=resumed), service.version)], service.id)

    def remove_service(self, name: str) -> Proposal:
        service = self._service(name)
        return self._proposal([Delete("service", service.id, service.version)], service.id)

    # --------------------------------------------------------------- nodes
    def update_node(self, node_id: str, availability: Optional[NodeAvailability] = None,
                    labels: Optional[dict[str, str]] = None, role: Optional[NodeRole] = None) -> Proposal:
        node = self.store.get("node", node_id)
        if node is None:
            raise NotFound(f"node {node_id} not found")
        changes = {}
        if availability is not None:
            changes["availability"] = NodeAvailability(availability)
        if role is not None:
            changes["role"] = NodeRole(role)
        if labels is not None:
            changes["labels"] = tuple(sorted(labels.items()))
        updated = dataclasses.replace(node, **changes)   # validates labels
        return self._proposal([Update(updated, node.version)], node_id)

    def promote(self, node_id: str) -> Proposal:
        return self.update_node(node_id, role=NodeRole.MANAGER)

    def demote(self, node_id: str) -> Proposal:
        return self.update_node(node_id, role=NodeRole.WORKER)

    def remove_node(self, node_id: str, force: bool = False) -> Proposal:
        node = self.store.get("node", node_id)
        if node is None:
            raise NotFound(f"node {node_id} not found")
        if node.status == NodeStatus.READY and not force:
            raise InvalidSpec(f"node {node_id} is ready; drain it and stop it first, or force")
        return self._proposal([Delete("node", node_id, node.version)], node_id)

    # ------------------------------------------- networks, secrets, configs
    def create_network(self, name: str, subnet: Optional[str] = None) -> Proposal:
        networks = list(self.store.objects["network"].values())
        if any(n.name == name for n in networks):
            raise AlreadyExists(f"network {name} already exists")
        used_vnis = {n.vni for n in networks}
        vni = VNI_FIRST_USER
        while vni in used_vnis:
            vni += 1
        used_subnets = [ipaddress.IPv4Network(n.subnet) for n in networks]
        if subnet is None:
            for candidate in OVERLAY_POOL.subnets(new_prefix=24):
                if not any(candidate.overlaps(u) for u in used_subnets):
                    subnet = str(candidate)
                    break
            else:
                raise InvalidSpec("the overlay address pool 10.0.0.0/8 is exhausted")
        try:
            parsed = ipaddress.IPv4Network(subnet)
        except ValueError as error:
            raise InvalidSpec(f"subnet {subnet!r}: {error}") from None
        if parsed.prefixlen < 16 or parsed.prefixlen > 29:
            raise InvalidSpec("subnet prefix must be between /16 and /29")
        if any(parsed.overlaps(u) for u in used_subnets):
            raise AlreadyExists(f"subnet {subnet} overlaps an existing network")
        network_id = self._new_id()
        network = Network(network_id, name, vni, str(parsed), str(parsed.network_address + 1))
        return self._proposal([Create(network)], network_id)

    def create_secret(self, name: str, data: bytes) -> Proposal:
        if any(s.name == name for s in self.store.objects["secret"].values()):
            raise AlreadyExists(f"secret {name} already exists")
        secret_id = self._new_id()
        return self._proposal([Create(Secret(secret_id, name, data))], secret_id)

    def create_config(self, name: str, data: bytes) -> Proposal:
        if any(c.name == name for c in self.store.objects["config"].values()):
            raise AlreadyExists(f"config {name} already exists")
        config_id = self._new_id()
        return self._proposal([Create(Config(config_id, name, data))], config_id)


# ------------------------------------------------------------------ reads

def _eligible_for_global(node: Node, service: Service) -> bool:
    return node.status == NodeStatus.READY and node.availability == NodeAvailability.ACTIVE and \
        node_matches(parse_constraints(service.spec.task.placement.constraints), node)


@dataclass(frozen=True, slots=True)
class Convergence:
    desired: int
    running: int
    converged: bool
    lines: tuple[str, ...]


class Reads:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _service(self, name_or_id: str) -> Service:
        service = self.store.service_named(name_or_id) or self.store.get("service", name_or_id)
        if service is None:
            raise NotFound(f"service {name_or_id} not found")
        return service

    def running_tasks(self, service: Service) -> list[Task]:
        """Tasks of the current spec, wanted and observed RUNNING on READY nodes."""
        out = []
        for task in self.store.tasks_of_service(service.id).values():
            if task.desired_state == TaskState.RUNNING and task.status.state == TaskState.RUNNING:
                node = self.store.get("node", task.node_id)
                if node is not None and node.status == NodeStatus.READY and task.template == service.spec.task:
                    out.append(task)
        return sorted(out, key=lambda t: (t.slot, t.node_id, t.id))

    def desired_count(self, service: Service) -> int:
        if service.spec.mode == ServiceMode.REPLICATED:
            return service.spec.replicas
        return sum(1 for node in self.store.list("node") if _eligible_for_global(node, service))

    def convergence(self, name: str) -> Convergence:
        """``docker service create`` progress: "overall progress: 3 out of 5
        tasks" ... "verify: Service converged"."""
        service = self._service(name)
        running = self.running_tasks(service)
        desired = self.desired_count(service)
        keys = [t.slot if t.slot else t.node_id for t in running]
        one_per_key = len(keys) == len(set(keys))
        constraints = parse_constraints(service.spec.task.placement.constraints)
        placed_ok = all(node_matches(constraints, self.store.get("node", t.node_id)) for t in running)
        if service.spec.mode == ServiceMode.REPLICATED:
            in_range = True   # slot numbers need not be 1..n after a scale-down (swarmkit alike)
        else:
            in_range = all(_eligible_for_global(self.store.get("node", t.node_id), service) for t in running)
        updating = service.update_status is not None and service.update_status.state in (
            UpdateState.UPDATING, UpdateState.ROLLBACK_STARTED)
        converged = len(running) == desired and one_per_key and placed_ok and in_range and not updating
        lines = [f"overall progress: {len(running)} out of {desired} tasks"]
        lines.append("verify: Service converged" if converged else "verify: Waiting for the service to converge")
        return Convergence(desired, len(running), converged, tuple(lines))

    def service_ls(self) -> list[dict]:
        rows = []
        for service in self.store.list("service"):
            rows.append({"id": service.id, "name": service.spec.name,
                         "mode": "replicated" if service.spec.mode == ServiceMode.REPLICATED else "global",
                         "replicas": f"{len(self.running_tasks(service))}/{self.desired_count(service)}",
                         "command": " ".join(service.spec.task.command),
                         "ports": ", ".join(f"*:{p.published_port}->{p.target_port}/{p.protocol}"
                                            for p in (service.endpoint.ports if service.endpoint else ()))})
        return rows

    def service_ps(self, name: str, now_ticks: int = 0) -> list[dict]:
        service = self._service(name)
        rows = []
        tasks = sorted(self.store.tasks_of_service(service.id).values(),
                       key=lambda t: (t.slot, t.node_id, -t.created_at_ticks, t.id))
        for task in tasks:
            node = self.store.get("node", task.node_id) if task.node_id else None
            rows.append({"id": task.id, "name": f"{service.spec.name}.{task.slot or task.node_id}",
                         "command": " ".join(task.template.command),
                         "node": node.hostname if node else "",
                         "desired": task.desired_state.name.capitalize(),
                         "current": f"{task.status.state.name.capitalize()} "
                                    f"{max(0, now_ticks - task.status.timestamp_ticks)} ticks ago",
                         "error": task.status.err})
        return rows

    def service_inspect(self, name: str) -> dict:
        service = self._service(name)
        status = service.update_status
        return {"id": service.id, "version": service.version, "spec": service.spec,
                "spec_version": service.spec_version, "previous_spec": service.previous_spec,
                "endpoint": service.endpoint,
                "update_status": None if status is None else {"state": status.state.name.lower(),
                                                              "message": status.message,
                                                              "started_at_ticks": status.started_at_ticks,
                                                              "completed_at_ticks": status.completed_at_ticks}}

    def node_ls(self) -> list[dict]:
        return [{"id": node.id, "hostname": node.hostname, "status": node.status.name.capitalize(),
                 "availability": node.availability.name.capitalize(),
                 "role": node.role.name.lower(), "tasks": sum(1 for t in self.store.tasks_on_node(node.id).values()
                                                              if t.desired_state <= TaskState.RUNNING)}
                for node in self.store.list("node")]
