"""The cluster store: a deterministic state machine fed by committed Raft
entries (swarmkit manager/state/store, without its in-memory locking: here
every manager applies the same entries in the same order).

* Objects are versioned: ``version`` is the Raft index of their last write.
* A proposal is a :class:`Transaction`: ops with expected versions, applied
  all-or-nothing; a conflict yields a typed :class:`ApplyResult`, never a
  partial write and never an exception out of :meth:`Store.apply`.
* Applying returns watch :class:`Event`\\ s, which the leader's components use
  to mark objects dirty (swarmkit's store.Watch).
* ``snapshot()``/``restore()`` give deterministic bytes for Raft snapshots.

Two task-write ops exist on purpose. :class:`PatchTask` (orchestrators,
scheduler, allocator) checks the expected version and REFUSES a state that
moves backwards with :class:`StateRegression`, failing the transaction.
:class:`ReportStatus` (agent reports via the dispatcher) is version-blind and
forward-only: a stale report is DROPPED and counted in
``stats["status_regressions_dropped"]``, because agents legitimately race the
managers (swarmkit's dispatcher ignores such reports too).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple, Optional, Union

from scheduler import codec
from scheduler.errors import (AlreadyExists, InvalidSpec, MalformedEntry, NotFound, SchedulerError,
                              StateRegression, VersionConflict)
from scheduler.model import (KINDS, TASK_HISTORY_ENTRIES_MAX, Task, TaskState, TaskStatus, TaskTemplate,
                             evolve, kind_of)

WIRE_FORMAT = 1
TRANSACTION_OPS_MAX = 1_000_000   # bound on ops in one proposal


# ------------------------------------------------------------------ ops

@dataclass(frozen=True, slots=True)
class Create:
    obj: Any


@dataclass(frozen=True, slots=True)
class Update:
    obj: Any
    expected_version: int


@dataclass(frozen=True, slots=True)
class Delete:
    kind: str
    id: str
    expected_version: int


@dataclass(frozen=True, slots=True)
class Assert:
    """Guard: the object exists at exactly this version (0 = must not exist)."""
    kind: str
    id: str
    expected_version: int


@dataclass(frozen=True, slots=True)
class CreateTasks:
    """Bulk task creation sharing one template; rows are (task id, slot, node id).
    One op for thousands of tasks keeps proposals small and apply fast."""
    service_id: str
    spec_version: int
    template: TaskTemplate
    desired_state: TaskState
    rows: tuple[tuple[str, int, str], ...]
    timestamp_ticks: int
    host_ports: tuple[tuple[str, int], ...] = ()
    initial_state: TaskState = TaskState.NEW   # PENDING when there is nothing to allocate


@dataclass(frozen=True, slots=True)
class PatchTask:
    """Change some fields of a task at ``expected_version``; None = unchanged."""
    task_id: str
    expected_version: int
    node_id: Optional[str] = None
    desired_state: Optional[TaskState] = None
    status: Optional[TaskStatus] = None
    networks: Optional[tuple[tuple[str, str], ...]] = None


@dataclass(frozen=True, slots=True)
class PatchTasks:
    """Bulk form of PatchTask for decisions that share one status and desired
    state (the allocator's PENDING, the scheduler's ASSIGNED): rows are
    (task id, expected version, node id or None, networks or None). One op
    for 100k tasks keeps encode, decode and apply in tight loops."""
    rows: tuple
    status: Optional[TaskStatus] = None
    desired_state: Optional[TaskState] = None


@dataclass(frozen=True, slots=True)
class ReportStatus:
    """An agent's observed status; forward-only, stale reports dropped."""
    task_id: str
    node_id: str
    status: TaskStatus


Op = Union[Create, Update, Delete, Assert, CreateTasks, PatchTask, PatchTasks, ReportStatus]


@dataclass(frozen=True, slots=True)
class Transaction:
    ops: tuple
    origin: str = ""        # which component proposed it ("orchestrator", "api", ...)
    proposer: str = ""      # manager id that proposed it
    sequence: int = 0       # proposer-local sequence number (in-flight tracking)

    def encode(self) -> bytes:
        template_ref = _TemplateTable()
        templates = template_ref.wires

        ops = []
        for op in self.ops:
            cls = type(op)
            if cls is PatchTask:
                ops.append(["p", op.task_id, op.expected_version, op.node_id,
                            None if op.desired_state is None else int(op.desired_state),
                            None if op.status is None else codec.encode(op.status),
                            None if op.networks is None else [list(n) for n in op.networks]])
            elif cls is PatchTasks:
                # Column-wise: msgpack packs and unpacks flat lists of
                # scalars in C, and decode validates whole columns at once.
                ids, versions, nodes, networks = zip(*op.rows) if op.rows else ((), (), (), ())
                ops.append(["P", None if op.status is None else codec.encode(op.status),
                            None if op.desired_state is None else int(op.desired_state),
                            [list(ids), list(versions), list(nodes),
                             [None if n is None else [list(pair) for pair in n] for n in networks]]])
            elif cls is ReportStatus:
                ops.append(["r", op.task_id, op.node_id, codec.encode(op.status)])
            elif cls is CreateTasks:
                columns = [list(column) for column in zip(*op.rows)] if op.rows else [[], [], []]
                ops.append(["ct", op.service_id, op.spec_version, template_ref(op.template),
                            int(op.desired_state), columns, op.timestamp_ticks,
                            [list(p) for p in op.host_ports], int(op.initial_state)])
            elif cls is Create:
                ops.append(["c", kind_of(op.obj), _encode_object(op.obj, template_ref)])
            elif cls is Update:
                ops.append(["u", kind_of(op.obj), _encode_object(op.obj, template_ref), op.expected_version])
            elif cls is Delete:
                ops.append(["d", op.kind, op.id, op.expected_version])
            elif cls is Assert:
                ops.append(["a", op.kind, op.id, op.expected_version])
            else:
                raise TypeError(f"not a store op: {op!r}")
        return codec.pack([WIRE_FORMAT, self.origin, self.proposer, self.sequence, templates, ops])

    @staticmethod
    def decode(data: bytes) -> "Transaction":
        """Bytes -> Transaction; anything malformed -> MalformedEntry."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise MalformedEntry(f"entry must be bytes, got {type(data).__name__}")
        value = codec.unpack(bytes(data))
        if not isinstance(value, list) or len(value) != 6 or value[0] != WIRE_FORMAT:
            raise MalformedEntry("not a scheduler transaction (format/length)")
        _, origin, proposer, sequence, raw_templates, raw_ops = value
        if not isinstance(origin, str) or not isinstance(proposer, str) or type(sequence) is not int:
            raise MalformedEntry("bad transaction header")
        if not isinstance(raw_ops, list) or not isinstance(raw_templates, list) or len(raw_ops) > TRANSACTION_OPS_MAX:
            raise MalformedEntry("bad op list")
        templates = [codec.decode(TaskTemplate, t) for t in raw_templates]
        try:
            ops = tuple(_decode_op(raw, templates) for raw in raw_ops)
        except (TypeError, ValueError, IndexError, KeyError, InvalidSpec) as error:
            raise MalformedEntry(f"bad op: {error}") from None
        return Transaction(ops, origin, proposer, sequence)


_TASK_FIELDS = tuple(Task.__dataclass_fields__)
_TEMPLATE_POSITION = _TASK_FIELDS.index("template")
_DEFAULT_TEMPLATE_WIRE = codec.encode(TaskTemplate())


class _TemplateTable:
    """Deduplicates task templates in a proposal or snapshot: by object
    identity first (cheap), then by encoded value (so equal templates held
    by different objects still share one entry, keeping bytes deterministic)."""

    def __init__(self) -> None:
        self.wires: list = []
        self._by_id: dict[int, int] = {}
        self._by_value: dict[bytes, int] = {}

    def __call__(self, template: TaskTemplate) -> int:
        ref = self._by_id.get(id(template))
        if ref is None:
            wire = codec.encode(template)
            key = codec.pack(wire)
            ref = self._by_value.get(key)
            if ref is None:
                ref = self._by_value[key] = len(self.wires)
                self.wires.append(wire)
            self._by_id[id(template)] = ref
        return ref


def _encode_object(obj: Any, template_ref) -> list:
    wire = codec.encode(obj) if type(obj) is not Task else None
    if wire is not None:
        return wire
    out = [codec.encode(getattr(obj, name)) if name != "template" else template_ref(obj.template)
           for name in _TASK_FIELDS]
    return out


def _decode_object(kind: str, wire: Any, templates: list) -> Any:
    cls = KINDS.get(kind)
    if cls is None:
        raise MalformedEntry(f"unknown object kind {kind!r}")
    if cls is Task:
        if not isinstance(wire, list) or len(wire) != len(_TASK_FIELDS):
            raise MalformedEntry("task: wrong field count")
        wire = list(wire)
        ref = wire[_TEMPLATE_POSITION]
        if type(ref) is not int or not 0 <= ref < len(templates):
            raise MalformedEntry("task: bad template reference")
        wire[_TEMPLATE_POSITION] = _DEFAULT_TEMPLATE_WIRE
        # Share the transaction's template object rather than one copy per task.
        return evolve(codec.decode(cls, wire), template=templates[ref])
    return codec.decode(cls, wire)


def _state(value: Any) -> TaskState:
    try:
        return TaskState(value)
    except ValueError:
        raise MalformedEntry(f"{value!r} is not a TaskState") from None


def _str(value: Any) -> str:
    if type(value) is not str:
        raise MalformedEntry(f"expected a string, got {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if type(value) is not int:
        raise MalformedEntry(f"expected an int, got {type(value).__name__}")
    return value


def _columns(value: Any, count: int) -> list:
    if not isinstance(value, list) or len(value) != count or not all(isinstance(c, list) for c in value):
        raise MalformedEntry(f"expected {count} columns")
    if len({len(c) for c in value}) > 1:
        raise MalformedEntry("columns of different lengths")
    return value


def _only(column: list, *types: type) -> bool:
    """Every item's type is one of ``types`` (checked at C speed)."""
    return set(map(type, column)) <= set(types)


def _decode_op(raw: Any, templates: list) -> Op:
    if not isinstance(raw, list) or not raw:
        raise MalformedEntry("op must be a non-empty list")
    tag = raw[0]
    if tag == "p" and len(raw) == 7:
        networks = None if raw[6] is None else tuple((_str(n), _str(a)) for n, a in raw[6])
        return PatchTask(_str(raw[1]), _int(raw[2]), None if raw[3] is None else _str(raw[3]),
                         None if raw[4] is None else _state(raw[4]),
                         None if raw[5] is None else codec.decode(TaskStatus, raw[5]), networks)
    if tag == "P" and len(raw) == 4:
        ids, versions, nodes, networks = _columns(raw[3], 4)
        if not _only(ids, str) or not _only(versions, int) or not _only(nodes, str, type(None)):
            raise MalformedEntry("patch-tasks: bad column types")
        if not _only(networks, type(None)):
            networks = [None if n is None else tuple((_str(a), _str(b)) for a, b in n) for n in networks]
        return PatchTasks(tuple(zip(ids, versions, nodes, networks)),
                          None if raw[1] is None else codec.decode(TaskStatus, raw[1]),
                          None if raw[2] is None else _state(raw[2]))
    if tag == "r" and len(raw) == 4:
        return ReportStatus(_str(raw[1]), _str(raw[2]), codec.decode(TaskStatus, raw[3]))
    if tag == "ct" and len(raw) == 9:
        ref = _int(raw[3])
        if not 0 <= ref < len(templates):
            raise MalformedEntry("create-tasks: bad template reference")
        ids, slots, nodes = _columns(raw[5], 3)
        if not _only(ids, str) or not _only(slots, int) or not _only(nodes, str):
            raise MalformedEntry("create-tasks: bad column types")
        if slots and min(slots) < 0:
            raise MalformedEntry("create-tasks: negative slot")
        rows = tuple(zip(ids, slots, nodes))
        ports = tuple((_str(p[0]), _int(p[1])) for p in raw[7])
        initial = _state(raw[8])
        if initial not in (TaskState.NEW, TaskState.PENDING):
            raise MalformedEntry(f"create-tasks: tasks cannot start in {initial.name}")
        return CreateTasks(_str(raw[1]), _int(raw[2]), templates[ref], _state(raw[4]), rows, _int(raw[6]), ports,
                           initial)
    if tag == "c" and len(raw) == 3:
        return Create(_decode_object(_str(raw[1]), raw[2], templates))
    if tag == "u" and len(raw) == 4:
        return Update(_decode_object(_str(raw[1]), raw[2], templates), _int(raw[3]))
    if tag == "d" and len(raw) == 4:
        return Delete(_str(raw[1]), _str(raw[2]), _int(raw[3]))
    if tag == "a" and len(raw) == 4:
        return Assert(_str(raw[1]), _str(raw[2]), _int(raw[3]))
    raise MalformedEntry(f"unknown op {tag!r} of length {len(raw)}")


# --------------------------------------------------------------- events

class Event(NamedTuple):
    """A watch event. Bulk ops (CreateTasks, PatchTasks) yield ONE event for
    all their tasks - action "create-many" (obj: tuple of new tasks) or
    "update-many" (obj: new tasks, old: the same tasks before) - so that a
    component can skip 100k uninteresting changes with a few C-level scans;
    :func:`expand` turns them into per-task events where that is simpler."""
    action: str            # "create" | "update" | "delete" | "create-many" | "update-many"
    kind: str
    obj: Any               # the new object (the old one for deletes); a tuple for bulk events
    old: Any = None


BULK_ACTIONS = ("create-many", "update-many")


def expand(events: Iterable[Event]) -> Iterable[Event]:
    """Per-object events, bulk events unrolled in order."""
    for event in events:
        if event.action == "update-many":
            for new, old in zip(event.obj, event.old):
                yield Event("update", event.kind, new, old)
        elif event.action == "create-many":
            for new in event.obj:
                yield Event("create", event.kind, new, None)
        else:
            yield event


@dataclass(frozen=True, slots=True)
class ApplyResult:
    index: int
    ok: bool
    error: Optional[SchedulerError] = None
    events: tuple = ()
    origin: str = ""
    proposer: str = ""
    sequence: int = 0


# ---------------------------------------------------------------- store

class Store:
    """Deterministic object store. ``apply(index, data)`` is the only writer."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        self.tasks_by_service: dict[str, dict[str, Task]] = {}
        self.tasks_by_node: dict[str, dict[str, Task]] = {}
        self.service_by_name: dict[str, str] = {}
        self.applied_index = 0
        self.stats = {"applied": 0, "conflicts": 0, "malformed": 0, "status_regressions_dropped": 0,
                      "stale_index": 0}

    # ---- reads
    def get(self, kind: str, object_id: str) -> Any:
        return self.objects[kind].get(object_id)

    def list(self, kind: str) -> list:
        table = self.objects[kind]
        return [table[key] for key in sorted(table)]

    def tasks_of_service(self, service_id: str) -> dict[str, Task]:
        return self.tasks_by_service.get(service_id, {})

    def tasks_on_node(self, node_id: str) -> dict[str, Task]:
        return self.tasks_by_node.get(node_id, {})

    def service_named(self, name: str) -> Any:
        service_id = self.service_by_name.get(name)
        return None if service_id is None else self.objects["service"][service_id]

    # ---- the state machine
    def apply(self, index: int, data: bytes) -> ApplyResult:
        """Apply one committed entry. Never raises for bad input: returns a
        result with a typed error and leaves the store unchanged."""
        if type(index) is not int or index <= self.applied_index:
            self.stats["stale_index"] += 1
            return ApplyResult(index, False, MalformedEntry(
                f"entry index {index!r} is not after applied index {self.applied_index}"))
        self.applied_index = index
        try:
            transaction = Transaction.decode(data)
        except MalformedEntry as error:
            self.stats["malformed"] += 1
            return ApplyResult(index, False, error)
        except (TypeError, ValueError, AttributeError, IndexError, KeyError, RecursionError) as error:
            # Safety net: the decoders above should already turn these into
            # MalformedEntry; a committed entry must never crash a manager.
            self.stats["malformed"] += 1
            return ApplyResult(index, False, MalformedEntry(f"undecodable entry: {type(error).__name__}: {error}"))
        return self.apply_transaction(index, transaction)

    def apply_transaction(self, index: int, transaction: Transaction) -> ApplyResult:
        """Apply an already-decoded transaction (standalone use and tests)."""
        if index > self.applied_index:
            self.applied_index = index
        # Per kind: object id -> new object (None = deleted). Plain string keys
        # per kind, not (kind, id) tuples: 100k tuple builds and hashes saved.
        staged: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        events: list[Event] = []
        try:
            for op in transaction.ops:
                self._stage(index, op, staged, events)
        except (SchedulerError, AssertionError) as error:
            if isinstance(error, AssertionError):
                raise
            self.stats["conflicts"] += 1
            return ApplyResult(index, False, error, (), transaction.origin, transaction.proposer, transaction.sequence)
        self._commit(staged)
        self.stats["applied"] += 1
        return ApplyResult(index, True, None, tuple(events), transaction.origin, transaction.proposer,
                           transaction.sequence)

    def _current(self, staged: dict, kind: str, object_id: str) -> Any:
        table = staged[kind]
        if object_id in table:
            return table[object_id]
        return self.objects[kind].get(object_id)

    def _stage(self, index: int, op: Op, staged: dict, events: list) -> None:
        cls = type(op)
        if cls is PatchTask:
            task = self._current(staged, "task", op.task_id)
            if task is None:
                raise NotFound(f"task {op.task_id} not found")
            if task.version != op.expected_version:
                raise VersionConflict(f"task {op.task_id} is at version {task.version}, expected {op.expected_version}")
            changes: dict[str, Any] = {"version": index}
            if op.node_id is not None:
                changes["node_id"] = op.node_id
            if op.desired_state is not None:
                if op.desired_state < task.desired_state:
                    raise StateRegression(f"task {task.id}: desired {task.desired_state.name} -> "
                                          f"{op.desired_state.name} moves backwards")
                changes["desired_state"] = op.desired_state
            if op.status is not None:
                if op.status.state < task.status.state:
                    raise StateRegression(f"task {task.id}: {task.status.state.name} -> "
                                          f"{op.status.state.name} moves backwards")
                changes["status"] = op.status
                if op.status.state != task.status.state:
                    changes["history"] = (task.history + ((int(op.status.state), op.status.timestamp_ticks),)
                                          )[-TASK_HISTORY_ENTRIES_MAX:]
            if op.networks is not None:
                changes["networks"] = op.networks
            new = evolve(task, **changes)
            staged["task"][task.id] = new
            events.append(Event("update", "task", new, task))
        elif cls is PatchTasks:
            self._stage_bulk(index, op, staged, events)
        elif cls is ReportStatus:
            task = self._current(staged, "task", op.task_id)
            if task is None or task.node_id != op.node_id or op.status.state <= task.status.state:
                # Unknown task, a report from a node that no longer owns it, or
                # a stale/duplicate state: dropped and counted.
                self.stats["status_regressions_dropped"] += 1
                return
            new = evolve(task, status=op.status, version=index,
                         history=(task.history + ((int(op.status.state), op.status.timestamp_ticks),)
                                  )[-TASK_HISTORY_ENTRIES_MAX:])
            staged["task"][task.id] = new
            events.append(Event("update", "task", new, task))
        elif cls is CreateTasks:
            status = TaskStatus(op.initial_state, "created" if op.initial_state == TaskState.NEW else
                                "pending task scheduling", "", op.timestamp_ticks)
            history = ((int(op.initial_state), op.timestamp_ticks),)
            tasks = self.objects["task"]
            # One validated prototype; each task is a copy of its __dict__ with
            # id, slot and node filled in (rows were type-checked on decode).
            prototype = Task("prototype", op.service_id, 0, "", op.spec_version, op.template, op.desired_state,
                             status, (), op.host_ports, history, op.timestamp_ticks, index).__dict__
            new_task = object.__new__
            created: list = []
            append = created.append
            staged_tasks = staged["task"]
            check_staged = bool(staged_tasks)
            for task_id, slot, node_id in op.rows:
                if task_id in tasks or (check_staged and task_id in staged_tasks) or not task_id:
                    raise AlreadyExists(f"task {task_id} already exists") if task_id else \
                        MalformedEntry("empty task id")
                task = new_task(Task)
                values = task.__dict__
                values.update(prototype)
                values["id"] = task_id
                values["slot"] = slot
                values["node_id"] = node_id
                staged_tasks[task_id] = task
                check_staged = True
                append(task)
            if created:
                events.append(Event("create-many", "task", tuple(created), None))
        elif cls is Create:
            kind = kind_of(op.obj)
            if self._current(staged, kind, op.obj.id) is not None:
                raise AlreadyExists(f"{kind} {op.obj.id} already exists")
            self._check_unique_name(kind, op.obj, staged)
            new = evolve(op.obj, version=index)
            staged[kind][new.id] = new
            events.append(Event("create", kind, new))
        elif cls is Update:
            kind = kind_of(op.obj)
            old = self._current(staged, kind, op.obj.id)
            if old is None:
                raise NotFound(f"{kind} {op.obj.id} not found")
            if old.version != op.expected_version:
                raise VersionConflict(f"{kind} {op.obj.id} is at version {old.version}, expected {op.expected_version}")
            if kind == "task" and (op.obj.status.state < old.status.state or op.obj.desired_state < old.desired_state):
                raise StateRegression(f"task {old.id}: update moves a state backwards")
            if getattr(old, "name", None) != getattr(op.obj, "name", None) or (
                    kind == "service" and old.spec.name != op.obj.spec.name):
                self._check_unique_name(kind, op.obj, staged)
            new = evolve(op.obj, version=index)
            staged[kind][new.id] = new
            events.append(Event("update", kind, new, old))
        elif cls is Delete:
            if op.kind not in KINDS:
                raise MalformedEntry(f"unknown kind {op.kind!r}")
            old = self._current(staged, op.kind, op.id)
            if old is None:
                raise NotFound(f"{op.kind} {op.id} not found")
            if op.expected_version and old.version != op.expected_version:
                raise VersionConflict(f"{op.kind} {op.id} is at version {old.version}, expected {op.expected_version}")
            staged[op.kind][op.id] = None
            events.append(Event("delete", op.kind, old, old))
        elif cls is Assert:
            if op.kind not in KINDS:
                raise MalformedEntry(f"unknown kind {op.kind!r}")
            current = self._current(staged, op.kind, op.id)
            version = 0 if current is None else current.version
            if version != op.expected_version:
                raise VersionConflict(f"{op.kind} {op.id} is at version {version}, expected {op.expected_version}")
        else:
            raise MalformedEntry(f"not a store op: {type(op).__name__}")

    def _stage_bulk(self, index: int, op: PatchTasks, staged: dict, events: list) -> None:
        tasks = self.objects["task"]
        status, desired = op.status, op.desired_state
        history_entry = None if status is None else ((int(status.state), status.timestamp_ticks),)
        new_task = object.__new__
        news: list = []
        olds: list = []
        append_new, append_old = news.append, olds.append
        history_max = TASK_HISTORY_ENTRIES_MAX
        staged_tasks = staged["task"]
        check_staged = bool(staged_tasks)   # first op of a transaction: nothing staged to look through
        for task_id, version, node_id, networks in op.rows:
            if check_staged and task_id in staged_tasks:
                task = staged_tasks[task_id]
            else:
                task = tasks.get(task_id)
                if task is None:
                    raise NotFound(f"task {task_id} not found")
            if task.version != version:
                raise VersionConflict(f"task {task_id} is at version {task.version}, expected {version}")
            new = new_task(Task)
            values = new.__dict__
            values.update(task.__dict__)
            values["version"] = index
            if node_id is not None:
                values["node_id"] = node_id
            if networks is not None:
                values["networks"] = networks
            if status is not None:
                old_state = task.status.state
                if status.state != old_state:
                    if status.state < old_state:
                        raise StateRegression(f"task {task_id}: {old_state.name} -> {status.state.name} "
                                              "moves backwards")
                    history = task.history + history_entry
                    values["history"] = history if len(history) <= history_max else history[-history_max:]
                values["status"] = status
            if desired is not None:
                if desired < task.desired_state:
                    raise StateRegression(f"task {task_id}: desired {task.desired_state.name} -> {desired.name} "
                                          "moves backwards")
                values["desired_state"] = desired
            staged_tasks[task_id] = new
            append_new(new)
            append_old(task)
        if news:
            events.append(Event("update-many", "task", tuple(news), tuple(olds)))

    def _check_unique_name(self, kind: str, obj: Any, staged: dict) -> None:
        name = obj.spec.name if kind == "service" else getattr(obj, "name", None)
        if name is None or kind == "task":
            return
        for other in self.objects[kind].values():
            other_name = other.spec.name if kind == "service" else other.name
            if other_name == name and other.id != obj.id and staged[kind].get(other.id, other) is not None:
                raise AlreadyExists(f"{kind} name {name!r} is in use by {other.id}")
        for staged_id, other in staged[kind].items():
            if other is not None and staged_id != obj.id:
                other_name = other.spec.name if kind == "service" else other.name
                if other_name == name:
                    raise AlreadyExists(f"{kind} name {name!r} is given twice in one transaction")

    def _commit(self, staged: dict) -> None:
        objects = self.objects
        for kind, changes in staged.items():
            if not changes:
                continue
            if kind == "task":
                self._commit_tasks(changes)
                continue
            table = objects[kind]
            for object_id, new in changes.items():
                old = table.get(object_id)
                if kind == "service":
                    if old is not None:
                        self.service_by_name.pop(old.spec.name, None)
                    if new is not None:
                        self.service_by_name[new.spec.name] = object_id
                if new is None:
                    table.pop(object_id, None)
                else:
                    table[object_id] = new

    def _commit_tasks(self, changes: dict) -> None:
        by_service = self.tasks_by_service
        by_node = self.tasks_by_node
        tasks = self.objects["task"]
        get = tasks.get
        for object_id, new in changes.items():
            old = get(object_id)
            if new is None:
                del tasks[object_id]
                service_tasks = by_service[old.service_id]
                del service_tasks[object_id]
                if not service_tasks:
                    del by_service[old.service_id]
                if old.node_id:
                    del by_node[old.node_id][object_id]
                continue
            service_id, node_id = new.service_id, new.node_id
            if old is None or old.service_id != service_id:
                if old is not None:
                    del by_service[old.service_id][object_id]
                service_tasks = by_service.get(service_id)
                if service_tasks is None:
                    service_tasks = by_service[service_id] = {}
                service_tasks[object_id] = new
            else:
                by_service[service_id][object_id] = new
            if old is not None and old.node_id and old.node_id != node_id:
                del by_node[old.node_id][object_id]
            if node_id:
                node_tasks = by_node.get(node_id)
                if node_tasks is None:
                    node_tasks = by_node[node_id] = {}
                node_tasks[object_id] = new
        tasks.update(changes)     # one C-level pass; deleted ids were removed above
        for object_id in [k for k, v in changes.items() if v is None]:
            tasks.pop(object_id, None)

    # ---- snapshots
    def snapshot(self) -> bytes:
        """Deterministic bytes of the whole store (objects sorted by kind, id)."""
        template_ref = _TemplateTable()
        templates = template_ref.wires

        kinds = []
        for kind in sorted(KINDS):
            table = self.objects[kind]
            kinds.append([kind, [_encode_object(table[key], template_ref) for key in sorted(table)]])
        return codec.pack([WIRE_FORMAT, self.applied_index, templates, kinds])

    @classmethod
    def restore(cls, data: bytes) -> "Store":
        """Store from snapshot bytes; malformed -> MalformedEntry."""
        value = codec.unpack(data)
        if not isinstance(value, list) or len(value) != 4 or value[0] != WIRE_FORMAT:
            raise MalformedEntry("not a scheduler snapshot")
        _, applied_index, raw_templates, kinds = value
        store = cls()
        templates = [codec.decode(TaskTemplate, t) for t in raw_templates]
        staged: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        try:
            for kind, objects in kinds:
                for wire in objects:
                    obj = _decode_object(kind, wire, templates)
                    if kind not in staged:
                        raise MalformedEntry(f"unknown object kind {kind!r}")
                    staged[kind][obj.id] = obj
        except (TypeError, ValueError, InvalidSpec) as error:
            raise MalformedEntry(f"bad snapshot object: {error}") from None
        store._commit(staged)
        store.applied_index = _int(applied_index)
        return store

    def restore_into(self, data: bytes) -> None:
        """Replace this store's contents with a snapshot (for Raft InstallSnapshot)."""
        other = Store.restore(data)
        self.objects = other.objects
        self.tasks_by_service, self.tasks_by_node = other.tasks_by_service, other.tasks_by_node
        self.service_by_name, self.applied_index = other.service_by_name, other.applied_index
