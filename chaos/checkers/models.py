"""Sequential specifications for the linearizability checker.

A model says what one operation does to the state of a correct, sequential
object: ``step(state, call)`` returns the next state, or :data:`ILLEGAL` when
the operation's recorded outcome is impossible from ``state``.  States are
immutable and hashable (``None``, ints, strings, tuples) because the search
caches ``(linearized set, state)`` pairs - the memoization of Lowe, "Testing
for linearizability" (2017), as used by Porcupine's ``checker.go``.

Each model first *compiles* an :class:`~chaos.checkers.operations.Operation`
(an invoke paired with its completion) into a small tuple, once, so the hot
search loop never looks at strings such as ``"cas"``.  Compiling returns
``None`` for an operation that constrains nothing (a read whose outcome is
unknown has no effect and no observed value), and the checker drops it.

Both models here partition by key: operations on different keys of a
register map or key-value store are independent, so each key is checked on
its own (Herlihy and Wing's locality: a history is linearizable iff every
per-object sub-history is).

Outcome conventions (chaos.history): ``ok`` = happened with this result,
``info`` = may or may not have happened at any time after its invocation,
``fail`` = certainly did not happen, dropped before the models see it - except
a cas ``fail`` when the model is built with ``cas_fail_is_mismatch=True``: then
it means "the comparison ran and failed", as in Jepsen's etcd and Knossos
cas-register histories.  A cas completed ``ok`` with the value ``False`` also
means a failed comparison.
"""
from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Protocol

from chaos.checkers.operations import Operation


class _Illegal:
    """The one value a step returns when the recorded outcome is impossible."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ILLEGAL"


ILLEGAL: Any = _Illegal()

# Compiled operation kinds (first tuple element).  Small ints: the search loop
# compares them on every step.
READ, WRITE, CAS, APPEND, DELETE = 0, 1, 2, 3, 4
# Third element of a compiled cas: what the client was told.
CAS_APPLIED, CAS_MISMATCH, CAS_UNKNOWN = 1, 0, -1


class ModelError(ValueError):
    """An operation the model does not know (unknown ``f``, malformed cas value...)."""


class Model(Protocol):
    """What the checker needs from a sequential specification."""

    name: str

    def initial_state(self) -> Hashable: ...

    def partition_key(self, operation: Operation) -> Hashable: ...

    def compile(self, operation: Operation) -> tuple[Any, ...] | None: ...

    def step(self, state: Any, call: tuple[Any, ...]) -> Any: ...

    def observes_only(self, call: tuple[Any, ...]) -> bool:
        """True if every legal step of ``call`` leaves the state unchanged."""
        ...

    def blind_write(self, call: tuple[Any, ...]) -> bool:
        """True if ``call`` is always legal and its next state ignores the state."""
        ...

    def final_read(self, key: Hashable, value: Any) -> tuple[str, Any]:
        """The ``(f, value)`` of a read that observed ``value`` (durability checks)."""
        ...

    def describe_state(self, state: Any) -> str: ...


def freeze(value: Any) -> Hashable:
    """JSON-ish values made hashable: lists become tuples, dicts sorted tuples."""
    if isinstance(value, list):
        return tuple(freeze(item) for item in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    return value


def _cas_pair(operation: Operation) -> tuple[Hashable, Hashable]:
    pair = operation.input
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise ModelError(f"cas needs [expected, new] as its value, got {pair!r} in {operation.describe()}")
    return freeze(pair[0]), freeze(pair[1])


def _compile_cas(operation: Operation, cas_fail_is_mismatch: bool) -> tuple[Any, ...] | None:
    expected, new = _cas_pair(operation)
    if operation.status == "info":
        return (CAS, expected, new, CAS_UNKNOWN)
    if operation.status == "fail":
        return (CAS, expected, new, CAS_MISMATCH) if cas_fail_is_mismatch else None
    outcome = CAS_MISMATCH if operation.output is False else CAS_APPLIED
    return (CAS, expected, new, outcome)


def _observes_only(call: tuple[Any, ...]) -> bool:
    """Reads and failed comparisons change nothing: the search may linearize
    them as soon as they are legal (see ``search.search``)."""
    return call[0] == READ or (call[0] == CAS and call[3] == CAS_MISMATCH)


def _blind_write(call: tuple[Any, ...]) -> bool:
    """Writes and deletes: legal in any state, and they erase it (see ``search.search``)."""
    return call[0] == WRITE or call[0] == DELETE


def _step(state: Any, call: tuple[Any, ...]) -> Any:
    """Shared transition function of both models (a register is a one-key store)."""
    kind = call[0]
    if kind == READ:
        return state if state == call[1] else ILLEGAL
    if kind == WRITE:
        return call[1]
    if kind == CAS:
        matches = state == call[1]
        outcome = call[3]
        if matches:
            return call[2] if outcome != CAS_MISMATCH else ILLEGAL
        return state if outcome != CAS_APPLIED else ILLEGAL
    if kind == APPEND:
        return call[1] if state is None else state + call[1]
    if kind == DELETE:
        return call[1]  # the model's absent value, baked in at compile time
    raise AssertionError(f"unknown compiled operation {call!r}")


class _PerKeyModel:
    """What the register and the key-value models share: one state per key,
    the same transition function, and the same compilation of reads, cas and
    failed operations.  Subclasses name their operations (``_FS``) and compile
    their updates (``_compile_update``)."""

    name = ""
    _FS: dict[str, str] = {}
    _MODEL_NOUN = ""  # these two name the model and what it accepts in errors
    _OPERATIONS = ""

    def __init__(self, initial: Hashable = None, cas_fail_is_mismatch: bool = False) -> None:
        self.initial = freeze(initial)
        self.cas_fail_is_mismatch = cas_fail_is_mismatch

    def initial_state(self) -> Hashable:
        return self.initial

    def partition_key(self, operation: Operation) -> Hashable:
        return operation.key

    def compile(self, operation: Operation) -> tuple[Any, ...] | None:
        kind = self._FS.get(operation.f)
        if kind is None:
            raise ModelError(f"a {self._MODEL_NOUN} has {self._OPERATIONS}, not {operation.f!r}: "
                             f"{operation.describe()}")
        if kind == CAS:
            return _compile_cas(operation, self.cas_fail_is_mismatch)
        if operation.status == "fail":
            return None
        if kind == READ:
            return None if operation.status == "info" else (READ, freeze(operation.output))
        return self._compile_update(kind, operation)

    def _compile_update(self, kind: str, operation: Operation) -> tuple[Any, ...]:
        raise NotImplementedError

    step = staticmethod(_step)
    observes_only = staticmethod(_observes_only)
    blind_write = staticmethod(_blind_write)


class RegisterModel(_PerKeyModel):
    """A read/write/cas register per key, initially ``initial`` (nil = None).

    - ``read`` ok with value v: legal iff the register holds v.
    - ``write`` v: sets v.
    - ``cas`` [a, b]: applied iff the register holds a, then it holds b.
    """

    name = "register"
    _FS = {"read": READ, "write": WRITE, "cas": CAS}
    _MODEL_NOUN = "register"
    _OPERATIONS = "read/write/cas"

    def _compile_update(self, kind: str, operation: Operation) -> tuple[Any, ...]:
        return (WRITE, freeze(operation.input))

    def final_read(self, key: Hashable, value: Any) -> tuple[str, Any]:
        return "read", value

    def describe_state(self, state: Any) -> str:
        return "nil" if state is None else repr(state)


class KVModel(_PerKeyModel):
    """A key-value store, checked key by key.

    ``initial`` is the value of a key never written or deleted: ``None``
    ("absent", the chaos harness's store) by default; the Porcupine kv test
    data assumes the empty string.
    - ``get`` ok with v: legal iff the key holds v (None = absent).
    - ``put`` v / ``delete`` / ``append`` v (append to absent = v).
    - ``cas`` [a, b]: applied iff the key holds a (None = absent), then b.
    ``read``/``write`` are accepted as aliases of get/put.
    """

    name = "kv"
    _FS = {"get": READ, "read": READ, "put": WRITE, "write": WRITE, "cas": CAS,
           "append": APPEND, "delete": DELETE}
    _MODEL_NOUN = "key-value store"
    _OPERATIONS = "get/put/append/delete/cas"

    def _compile_update(self, kind: str, operation: Operation) -> tuple[Any, ...]:
        if kind == DELETE:
            return (DELETE, self.initial)
        value = freeze(operation.input)
        if kind == APPEND and not isinstance(value, (str, bytes)):
            raise ModelError(f"append needs a str or bytes value: {operation.describe()}")
        return (kind, value)

    def final_read(self, key: Hashable, value: Any) -> tuple[str, Any]:
        return "get", value

    def describe_state(self, state: Any) -> str:
        return "absent" if state is None else repr(state)
