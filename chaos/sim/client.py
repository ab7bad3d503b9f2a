"""Client operations against simulated managers, with Jepsen outcomes.

``status`` is ``ok`` (it happened; ``value`` is the state machine's result
or the read's value), ``fail`` (it certainly did not happen: refused by a
non-leader, dropped, overwritten by another leader's entry, node down) or
``timeout`` (unknown: it may still take effect later).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

OK = "ok"
FAIL = "fail"
TIMEOUT = "timeout"

# True in the compiled copy of this module (chaos.sim._client_c, built by
# consensus/_build_core_c.py), whose ClientResult has C slots.
_COMPILED = __name__.endswith("_c")


@dataclass(frozen=True, init=False)
class ClientResult:
    op_id: int
    kind: str  # "propose" | "read" | "conf_change"
    status: str  # OK | FAIL | TIMEOUT
    value: Any = None
    error: Optional[str] = None
    node: int = 0
    index: int = 0
    invoke_us: int = 0
    complete_us: int = 0

    # Hand-written __init__ (as consensus.types.Message): the frozen
    # dataclass's nine object.__setattr__ calls cost ~14k instructions a
    # result in the chaos bench.  Still frozen: assignment raises
    # FrozenInstanceError (pure) or AttributeError (compiled, read-only slots).
    def __init__(self, op_id: int, kind: str, status: str, value: Any = None, error: Optional[str] = None,
                 node: int = 0, index: int = 0, invoke_us: int = 0, complete_us: int = 0) -> None:
        if _COMPILED:
            self.op_id = op_id
            self.kind = kind
            self.status = status
            self.value = value
            self.error = error
            self.node = node
            self.index = index
            self.invoke_us = invoke_us
            self.complete_us = complete_us
            return
        d = self.__dict__
        d["op_id"] = op_id
        d["kind"] = kind
        d["status"] = status
        d["value"] = value
        d["error"] = error
        d["node"] = node
        d["index"] = index
        d["invoke_us"] = invoke_us
        d["complete_us"] = complete_us


class ClientOp:
    """A pending client operation; completes exactly once."""

    __slots__ = ("op_id", "kind", "node", "payload", "callback", "invoke_us", "deadline_us", "result")

    def __init__(self, op_id: int, kind: str, node: int, payload: Any,
                 callback: Optional[Callable[[ClientResult], None]], invoke_us: int, deadline_us: int) -> None:
        self.op_id = op_id
        self.kind = kind
        self.node = node
        self.payload = payload
        self.callback = callback
        self.invoke_us = invoke_us
        self.deadline_us = deadline_us
        self.result: Optional[ClientResult] = None

    @property
    def done(self) -> bool:
        return self.result is not None

    # A C-level call in the compiled simulator (cpdef, chaos/sim/_client_c.pxd),
    # which cannot skip an optional positional: callers pass value before error.
    def complete(self, now_us: int, status: str, value: Any = None, error: Optional[str] = None, index: int = 0) -> None:
        if self.result is not None:
            return
        self.result = ClientResult(self.op_id, self.kind, status, value, error, self.node, index, self.invoke_us, now_us)
        if self.callback is not None:
            self.callback(self.result)


class DeferredCall:
    """A client request queued at a paused manager (run when it resumes)."""

    __slots__ = ("call",)

    def __init__(self, call: Callable[[], None]) -> None:
        self.call = call


# >>> compiled twin: the build cuts this block (consensus/_build_core_c.py)
from chaos.sim._select_c import swap_in  # noqa: E402

swap_in(globals(), "client")
# <<< compiled twin
