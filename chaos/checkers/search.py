"""The Wing-Gong / Lowe linearizability search over one partition (pure Python).

Algorithm (Wing and Gong, "Testing and verifying concurrent objects", 1993;
with Lowe's memoization, "Testing for linearizability", 2017; the shape of
Porcupine's ``checkSingle``):

- The call and return events of the partition's operations are sorted by time
  into a doubly linked list (arrays ``next_node`` / ``previous_node``; node 0
  is the head sentinel, the last node the tail sentinel).
- Walk the list from the head.  At a call, try to linearize that operation
  now: if the model accepts it and ``(linearized set | op, new state)`` was
  never seen, push ``(node, old state)``, *lift* the call and its return out
  of the list, and restart from the head.  At a return, the operation it ends
  was not linearized before its own response - impossible - so backtrack: pop
  the last linearized operation, *unlift* it, and try the node after it.
- The list empties iff a linearization exists; an empty stack at a return
  means none does.  The cache of ``(bitset, state)`` pairs makes the search
  visit each configuration once (a configuration fully determines what can
  follow), which is what makes it practical.

Operations with an unknown outcome carry return time infinity, so their return
nodes sit at the end of the list: the search may place them anywhere after
their call, including after everything else (equivalent to "never happened"
for a write, since nothing can observe it afterwards).

This module is a kernel with no IO: the search is a generator that yields
every ``BUDGET_CHECK_STEPS`` steps, and its driver charges a :class:`Budget`
(the checker's clock lives there, injected) or stops it.
"""
from __future__ import annotations

from collections.abc import Callable, Generator, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chaos.checkers.models import ILLEGAL

BUDGET_CHECK_STEPS = 2048
# Memory bound of one partition's search: a cached configuration costs about 150 bytes.
CONFIGURATIONS_MAX = 4_000_000


class BudgetExhausted(Exception):
    """Raised by a budget to stop the search: the answer is "unknown"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Budget:
    """Step and time bounds; ``charge`` raises BudgetExhausted when one is spent."""

    def __init__(self, steps_max: int | None = None, deadline: float | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        assert deadline is None or clock is not None, "a deadline needs a clock"
        self.steps_max = steps_max
        self.deadline = deadline
        self.clock = clock
        self.steps = 0

    def charge(self, steps: int) -> None:
        self.steps += steps
        if self.steps_max is not None and self.steps > self.steps_max:
            raise BudgetExhausted(f"step bound of {self.steps_max} reached")
        if self.deadline is not None and self.clock is not None and self.clock() > self.deadline:
            raise BudgetExhausted("time limit reached")


@dataclass(slots=True)
class SearchOutcome:
    """What the search of one partition found (operation numbers are local)."""

    verdict: str  # "ok" | "illegal" | "unknown"
    steps: int
    cache_size: int
    reason: str = ""
    # ok: one linearization (local operation numbers in order).
    linearization: list[int] = field(default_factory=list)
    # illegal / unknown: the longest partial linearization seen and its states.
    prefix: list[int] = field(default_factory=list)
    prefix_states: list[Any] = field(default_factory=list)
    # The operation whose return was reached with it still unlinearized when
    # the longest prefix was stuck, and the calls pending at that point.
    blocked: int = -1
    pending: list[int] = field(default_factory=list)


def search(calls: Sequence[tuple[Any, ...]], invoke_times: Sequence[int], return_times: Sequence[int | None],
           initial_state: Hashable, step: Callable[[Any, tuple[Any, ...]], Any], budget: Budget,
           observers: Sequence[bool] | None = None, blind_writes: Sequence[bool] | None = None,
           configurations_max: int = CONFIGURATIONS_MAX) -> SearchOutcome:
    """Run :func:`search_slices` to the end, charging ``budget`` as it goes."""
    slices = search_slices(calls, invoke_times, return_times, initial_state, step, observers, blind_writes,
                           configurations_max)
    charged = 0
    while True:
        try:
            steps = next(slices)
        except StopIteration as finished:
            outcome: SearchOutcome = finished.value
            budget.charge(outcome.steps - charged)
            return outcome
        try:
            budget.charge(steps - charged)
            charged = steps
        except BudgetExhausted as exhausted:
            return stop(slices, exhausted.reason)


def stop(slices: Generator[int, None, SearchOutcome], reason: str) -> SearchOutcome:
    """End a running search early: its verdict becomes unknown, with its best prefix."""
    try:
        slices.throw(BudgetExhausted(reason))
    except StopIteration as finished:
        return finished.value
    raise AssertionError("a search kept running after it was stopped")


def search_slices(calls: Sequence[tuple[Any, ...]], invoke_times: Sequence[int],
                  return_times: Sequence[int | None], initial_state: Hashable,
                  step: Callable[[Any, tuple[Any, ...]], Any],
                  observers: Sequence[bool] | None = None,
                  blind_writes: Sequence[bool] | None = None,
                  configurations_max: int = CONFIGURATIONS_MAX) -> Generator[int, None, SearchOutcome]:
    """Is there an order of ``calls`` that respects real time and the model?

    A generator: it yields its step count after every ``BUDGET_CHECK_STEPS``
    steps so a scheduler can interleave several partitions (as Porcupine runs them in
    parallel) and stop them (``stop``); it returns the SearchOutcome.

    ``invoke_times[i] < return_times[i]``; ``None`` return = unknown outcome.
    ``observers[i]`` marks a pure observer: an operation that, whenever the
    model accepts it, leaves the state unchanged (a read, a cas whose
    comparison failed).  Such an operation, once enabled and legal, is
    linearized at once with no alternative tried: moving it to the front of
    any completion keeps the completion valid (it changes no state, and no
    unlinearized operation returned before its call, or the scan would have
    stopped there).  A partial-order reduction that prunes the orders of
    reads among writes, the bulk of a read-heavy search.

    Operations of unknown outcome (``return_times[i] is None``) may never
    happen, so the search succeeds as soon as every *known* operation is
    linearized.  ``blind_writes[i]`` marks an operation whose legality and
    effect ignore the state (write/put, delete).  A blind write is never tried
    right after an unknown-outcome operation: in any linearization where one
    follows the other, dropping the unknown one ("it never happened") leaves a
    linearization, since the blind write erased its effect before anything
    could observe it.  So an unknown write is only linearized when the next
    operation needs its value - without this, every subset of the pending
    unknown writes is a configuration, and a history of a cluster under
    partitions (many timeouts) is undecidable in practice.  Because the
    successors of a configuration now depend on whether it was reached by an
    unknown-outcome operation, those configurations are cached apart.  Two
    unknown-outcome operations with the same call are interchangeable once
    both are invoked, so only the earliest-invoked unused one is tried.
    """
    count = len(calls)
    assert len(invoke_times) == count == len(return_times), (count, len(invoke_times), len(return_times))
    if observers is None:
        observers = [False] * count
    infinity = max([t for t in return_times if t is not None] + list(invoke_times) + [0]) + 1
    events: list[tuple[int, int, int]] = []
    for number in range(count):
        returned = return_times[number]
        assert returned is None or returned > invoke_times[number], (number, invoke_times[number], returned)
        events.append((invoke_times[number], 0, number))
        # Unknown outcomes return "at infinity"; ties among them break by number.
        events.append((infinity if returned is None else returned, 1, number))
    # Calls sort before returns at equal times (concurrent, the permissive choice).
    events.sort()
    tail = 2 * count + 1
    next_node = list(range(1, tail + 1)) + [tail]
    previous_node = [0] + list(range(0, tail))
    call_op = [-1] * (tail + 1)  # node -> operation number for call nodes, -1 otherwise
    return_op = [-1] * (tail + 1)
    return_node = [0] * count
    for node, (_, kind, number) in enumerate(events, start=1):
        if kind == 0:
            call_op[node] = number
        else:
            return_op[node] = number
            return_node[number] = node
    bit = [1 << number for number in range(count)]
    observer = [bool(flag) for flag in observers]

    unknown = [t is None for t in return_times]
    blind = [bool(flag) for flag in blind_writes] if blind_writes is not None else [False] * count
    known_left = count - sum(unknown)  # success once every known-outcome operation is linearized
    # Unknown-outcome operations with the same call are interchangeable once both are invoked
    # (neither has a return to respect): only the earliest-invoked unused one is tried.
    twin_before = [-1] * count
    last_twin: dict[Any, int] = {}
    for number in sorted(range(count), key=lambda n: invoke_times[n]):
        if unknown[number]:
            twin_before[number] = last_twin.get(calls[number], -1)
            last_twin[calls[number]] = number

    state: Any = initial_state
    linearized = 0
    after_unknown = False  # is the last linearized operation one of unknown outcome?
    # The stack of linearized operations: call node, state before, forced?
    stack_nodes: list[int] = []
    stack_states: list[Any] = []
    stack_forced: list[bool] = []
    # Failed configurations (L, s), and those that failed when reached right after an
    # unknown-outcome operation (fewer successors allowed, see the docstring).
    cache: set[tuple[int, Any]] = set()
    cache_after_unknown: set[tuple[int, Any]] = set()
    best: SearchOutcome = SearchOutcome("illegal", 0, 0, prefix_states=[initial_state])
    best_length = -1
    steps = 0
    check_at = BUDGET_CHECK_STEPS
    illegal = ILLEGAL
    node = 0
    found = False
    prepass = True  # a new configuration: first linearize every legal enabled observer
    try:
        yield 0  # set up: from here on, a stop (throw) returns the best prefix so far
        while True:
            steps += 1
            if steps >= check_at:
                check_at += BUDGET_CHECK_STEPS
                if len(cache) + len(cache_after_unknown) > configurations_max:
                    raise BudgetExhausted(f"bound of {configurations_max} cached configurations reached")
                yield steps
            if prepass:
                prepass = False
                dead = False
                scan = next_node[0]
                number = call_op[scan]
                while number >= 0 and known_left:  # enabled calls: those before the first return node
                    if observer[number] and step(state, calls[number]) is not illegal:
                        new_linearized = linearized | bit[number]
                        key = (new_linearized, state)
                        if key in cache:  # explored and failed, so this configuration fails too
                            dead = True
                            break
                        cache.add(key)
                        stack_nodes.append(scan)
                        stack_states.append(state)
                        stack_forced.append(True)
                        linearized = new_linearized
                        known_left -= 1  # observers always have a known outcome
                        after_unknown = False
                        after = next_node[scan]
                        before = previous_node[scan]
                        next_node[before] = after
                        previous_node[after] = before
                        match = return_node[number]
                        after = next_node[match]
                        before = previous_node[match]
                        next_node[before] = after
                        previous_node[after] = before
                        scan = next_node[0]
                    else:
                        scan = next_node[scan]
                    number = call_op[scan]
                if not known_left:
                    found = True  # the remaining unknown-outcome operations never happened
                    break
                if not dead:
                    node = next_node[0]
                    continue
            else:
                number = call_op[node]
                if number >= 0:
                    # Observers still here are illegal in this state (the prepass took the rest);
                    # right after an unknown-outcome operation, a blind write is not tried.
                    if not observer[number] and not (after_unknown and blind[number]) and not (
                            twin_before[number] >= 0 and not linearized & bit[twin_before[number]]):
                        new_state = step(state, calls[number])
                        # An unknown-outcome operation that changes nothing is never worth
                        # linearizing: the configuration without it dominates.
                        if new_state is not illegal and not (unknown[number] and new_state == state):
                            new_linearized = linearized | bit[number]
                            key = (new_linearized, new_state)
                            if unknown[number]:
                                fresh = key not in cache and key not in cache_after_unknown
                            else:
                                fresh = key not in cache
                            if fresh:
                                if unknown[number]:
                                    cache_after_unknown.add(key)
                                    after_unknown = True
                                else:
                                    cache.add(key)
                                    known_left -= 1
                                    after_unknown = False
                                stack_nodes.append(node)
                                stack_states.append(state)
                                stack_forced.append(False)
                                state = new_state
                                linearized = new_linearized
                                # lift the call and its return out of the list
                                after = next_node[node]
                                before = previous_node[node]
                                next_node[before] = after
                                previous_node[after] = before
                                match = return_node[number]
                                after = next_node[match]
                                before = previous_node[match]
                                next_node[before] = after
                                previous_node[after] = before
                                prepass = True
                                continue
                    node = next_node[node]
                    continue
                # A return whose operation is not linearized yet: this configuration fails.
                if len(stack_nodes) > best_length:
                    best_length = len(stack_nodes)
                    best = _snapshot(stack_nodes, stack_states, state, call_op, return_op, next_node, node)
            # Backtrack: pop forced frames (their failure is their parent's), then one free choice.
            while stack_nodes:
                node = stack_nodes.pop()
                state = stack_states.pop()
                forced = stack_forced.pop()
                number = call_op[node]
                linearized ^= bit[number]
                if not unknown[number]:
                    known_left += 1
                # unlift: the return first, then the call (reverse of lift)
                match = return_node[number]
                next_node[previous_node[match]] = match
                previous_node[next_node[match]] = match
                next_node[previous_node[node]] = node
                previous_node[next_node[node]] = node
                if not forced:
                    break
            else:
                break  # nothing left to undo: no linearization exists
            after_unknown = bool(stack_nodes) and unknown[call_op[stack_nodes[-1]]]
            node = next_node[node]
    except BudgetExhausted as exhausted:
        best.verdict = "unknown"
        best.reason = exhausted.reason
        best.steps = steps
        best.cache_size = len(cache) + len(cache_after_unknown)
        return best
    if found:
        order = [call_op[n] for n in stack_nodes]
        return SearchOutcome("ok", steps, len(cache) + len(cache_after_unknown), linearization=order)
    best.verdict = "illegal"
    best.steps = steps
    best.cache_size = len(cache) + len(cache_after_unknown)
    return best


def _snapshot(stack_nodes: list[int], stack_states: list[Any], state: Any, call_op: list[int],
              return_op: list[int], next_node: list[int], stuck_node: int) -> SearchOutcome:
    """Record the current partial linearization (the furthest one seen so far)."""
    prefix = [call_op[n] for n in stack_nodes]
    states = stack_states + [state]  # states[k] = state after the first k operations
    pending = []
    node = next_node[0]
    while node != stuck_node:
        if call_op[node] >= 0:
            pending.append(call_op[node])
        node = next_node[node]
    blocked = return_op[stuck_node]
    if blocked not in pending:
        pending.append(blocked)
    return SearchOutcome("illegal", 0, 0, prefix=prefix, prefix_states=states, blocked=blocked, pending=pending)
