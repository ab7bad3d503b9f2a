"""Fault schedules as data: a sorted list of timed fault and heal events.

A schedule is what a chaos experiment does to the cluster, independent of how
it is done: the same list runs on the simulator (``chaos.nemesis``) and is
meant to run on the netns backend.  It round-trips through JSON and YAML and is
validated when built, so a typo in an experiment file is a typed error with the
event's position, never a crash in the middle of a run (Jepsen's nemesis
generators are the model; TigerBeetle's VOPR keeps faults as data the same way).

Times are integers in milliseconds of virtual time since the start of the run
(``at_ms``).  Targets are a node name or a selector resolved when the event
fires, with the run's seeded generator: ``leader``, ``follower``,
``random-manager``, ``random-worker``, ``random-node``, ``killed`` (the node
killed last), ``random-killed`` (any node that is down), ``all``.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml


class ScheduleError(ValueError):
    """A schedule or event that is malformed; the message names the event."""


class UnknownFaultError(ScheduleError):
    """An event whose fault name is not one of ``FAULTS``."""


class FaultParameterError(ScheduleError):
    """An event with a missing, unknown or out-of-range parameter."""


SELECTORS: frozenset[str] = frozenset(
    {"leader", "follower", "random-manager", "random-worker", "random-node", "killed", "random-killed", "paused",
     "all"}
)
PARTITION_MODES: tuple[str, ...] = (
    "random-halves", "isolate-leader", "leader-minority", "majorities-ring", "bridge", "one-way", "explicit",
)
LINK_MODES: tuple[str, ...] = ("lossy", "slow", "duplicating", "reordering")
# When a ``kill-next-leader`` trap springs: the moment the next leader is
# elected, or right after that leader's first commit (Raft paper figure 8).
TRAP_MOMENTS: tuple[str, ...] = ("elected", "first-commit")


@dataclass(frozen=True)
class _Param:
    kind: type | tuple[type, ...]
    default: Any = None
    required: bool = False
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class FaultSpec:
    """What one fault name accepts: whether it needs a target, its parameters, and
    whether it is a heal (heals are the events the shrinker may keep last)."""

    name: str
    help: str
    target: str  # "required", "optional" or "none"
    params: Mapping[str, _Param] = field(default_factory=dict)
    heal: bool = False


_PROBABILITY = dict(kind=(int, float), low=0.0, high=1.0)

FAULTS: dict[str, FaultSpec] = {spec.name: spec for spec in [
    FaultSpec("kill", "crash a node (volatile state lost; with lose_unpersisted also the "
              "writes it had not persisted yet)", "required",
              {"lose_unpersisted": _Param(bool, False)}),
    FaultSpec("kill-leader", "crash whichever manager leads now", "none",
              {"lose_unpersisted": _Param(bool, False)}),
    FaultSpec("kill-majority", "crash a majority of the managers (the leader first)", "none",
              {"lose_unpersisted": _Param(bool, False)}),
    FaultSpec("kill-next-leader", "arm a one-shot trap: the next manager to become leader is cut off "
              "and crashed the moment it is elected (when=elected: before its first append reaches "
              "anyone) or right after its first commit as leader (when=first-commit); the narrow "
              "windows of the Raft paper's figure 8, which timed faults cannot hit", "none",
              {"when": _Param(str, "elected", choices=TRAP_MOMENTS),
               "lose_unpersisted": _Param(bool, False)}),
    FaultSpec("restart", "restart a crashed node from its persisted state", "required", heal=True),
    FaultSpec("pause", "freeze a node (SIGSTOP): it keeps its state but neither ticks nor "
              "receives", "required"),
    FaultSpec("resume", "unfreeze a paused node", "required", heal=True),
    FaultSpec("partition", "cut the network: random-halves, isolate-leader, leader-minority (the "
              "leader and one follower against the rest), majorities-ring, bridge, one-way (from -> to dropped), or explicit groups", "none", {
                  "mode": _Param(str, "random-halves", choices=PARTITION_MODES),
                  "groups": _Param(list, None),
                  "from": _Param(list, None),
                  "to": _Param(list, None),
              }),
    FaultSpec("heal", "remove every partition", "none", heal=True),
    FaultSpec("link", "degrade links (all, or those touching 'nodes'): lossy, slow, "
              "duplicating, reordering", "none", {
                  "mode": _Param(str, "lossy", choices=LINK_MODES),
                  "nodes": _Param(list, None),
                  "loss_probability": _Param(kind=(int, float), default=0.2, low=0.0, high=1.0),
                  "delay_ms": _Param((int, float), 50, low=0, high=60_000),
                  "duplicate_probability": _Param(kind=(int, float), default=0.2, low=0.0, high=1.0),
                  "reorder_probability": _Param(kind=(int, float), default=0.3, low=0.0, high=1.0),
              }),
    FaultSpec("link-heal", "restore every link to its normal delay and no loss", "none", heal=True),
    FaultSpec("clock-drift", "make a node's clock run fast or slow (rate 0.5 .. 2.0)", "required",
              {"rate": _Param((int, float), 1.5, low=0.1, high=10.0)}),
    FaultSpec("clock-heal", "every clock back to rate 1", "none", heal=True),
    FaultSpec("demote", "demote a manager to a worker (a membership change through Raft)",
              "required"),
    FaultSpec("remove-manager", "remove a manager from the Raft group and the swarm", "required"),
    FaultSpec("drain", "set a node's availability to drain (its tasks move elsewhere)",
              "required"),
    FaultSpec("activate", "set a node's availability back to active", "required", heal=True),
    FaultSpec("heal-all", "restart, resume, heal partitions, links and clocks", "none", heal=True),
]}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


def parse_duration_ms(value: Any, what: str = "time") -> int:
    """``1500`` or ``"1500ms"`` -> 1500; ``"2s"`` -> 2000; ``"1m"`` -> 60000.

    Numbers are milliseconds; strings may carry a unit (``ms``, ``s``, ``m``).
    Negative, infinite or non-numeric values are a ``ScheduleError``.
    """
    if isinstance(value, bool):
        raise ScheduleError(f"{what} must be a duration like 1500, '1500ms' or '2s', got {value!r}")
    if isinstance(value, int):
        milliseconds = value
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ScheduleError(f"{what} must be finite, got {value!r}")
        milliseconds = int(round(value))
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ScheduleError(f"{what} must be a duration like 1500, '1500ms' or '2s', got {value!r}")
        number, unit = float(match.group(1)), match.group(2) or "ms"
        milliseconds = int(round(number * {"ms": 1, "s": 1000, "m": 60_000}[unit]))
    else:
        raise ScheduleError(f"{what} must be a duration like 1500, '1500ms' or '2s', got {value!r}")
    if milliseconds < 0:
        raise ScheduleError(f"{what} must not be negative, got {value!r}")
    return milliseconds


def _check_param(fault: str, name: str, spec: _Param, value: Any) -> Any:
    if isinstance(value, bool) and spec.kind is not bool and bool not in (
            spec.kind if isinstance(spec.kind, tuple) else (spec.kind,)):
        raise FaultParameterError(f"{fault}: parameter {name!r} must be a number, got {value!r}")
    kinds = spec.kind if isinstance(spec.kind, tuple) else (spec.kind,)
    if list in kinds:
        kinds = kinds + (tuple,)
    if not isinstance(value, kinds):
        expected = spec.kind.__name__ if isinstance(spec.kind, type) else "number"
        raise FaultParameterError(f"{fault}: parameter {name!r} must be {expected}, got {value!r}")
    if spec.choices is not None and value not in spec.choices:
        raise FaultParameterError(
            f"{fault}: parameter {name!r} must be one of {', '.join(spec.choices)}, got {value!r}")
    if spec.low is not None and (value < spec.low or (spec.high is not None and value > spec.high)):
        raise FaultParameterError(
            f"{fault}: parameter {name!r} must be within [{spec.low}, {spec.high}], got {value!r}")
    if spec.kind is list:
        for item in value:
            if not isinstance(item, (str, list, tuple)):
                raise FaultParameterError(f"{fault}: parameter {name!r} holds node names, got {item!r}")
    return value


@dataclass(frozen=True)
class Event:
    """One fault or heal at ``at_ms``; ``params`` is a sorted tuple of (name, value)
    pairs so that events are hashable and compare by value."""

    at_ms: int
    fault: str
    target: str | None = None
    params: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        spec = FAULTS.get(self.fault)
        if spec is None:
            raise UnknownFaultError(
                f"unknown fault {self.fault!r}; known faults: {', '.join(sorted(FAULTS))}")
        if not isinstance(self.at_ms, int) or isinstance(self.at_ms, bool) or self.at_ms < 0:
            raise ScheduleError(f"{self.fault}: at_ms must be a non-negative integer, got {self.at_ms!r}")
        if spec.target == "required" and not self.target:
            raise FaultParameterError(f"{self.fault}: needs a target (a node name or one of "
                                      f"{', '.join(sorted(SELECTORS))})")
        if spec.target == "none" and self.target is not None:
            raise FaultParameterError(f"{self.fault}: takes no target, got {self.target!r}")
        if self.target is not None and not isinstance(self.target, str):
            raise FaultParameterError(f"{self.fault}: target must be a string, got {self.target!r}")
        for name, value in self.params:
            if name not in spec.params:
                known = ", ".join(sorted(spec.params)) or "none"
                raise FaultParameterError(f"{self.fault}: unknown parameter {name!r} (known: {known})")
            _check_param(self.fault, name, spec.params[name], value)
        given = dict(self.params)
        if self.fault == "partition":
            mode = given.get("mode", "random-halves")
            if mode == "explicit" and not given.get("groups"):
                raise FaultParameterError("partition: mode explicit needs 'groups' (lists of node names)")
            if mode == "explicit" and not all(isinstance(group, (list, tuple))
                                              for group in given["groups"]):
                raise FaultParameterError("partition: 'groups' must be a list of lists of node names")

    def param(self, name: str) -> Any:
        for key, value in self.params:
            if key == name:
                return value
        return FAULTS[self.fault].params[name].default

    @property
    def is_heal(self) -> bool:
        return FAULTS[self.fault].heal

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"at_ms": self.at_ms, "fault": self.fault}
        if self.target is not None:
            document["target"] = self.target
        document.update({name: _jsonable(value) for name, value in self.params})
        return document

    @staticmethod
    def from_dict(document: Mapping[str, Any], position: int | None = None) -> Event:
        where = f"event {position}" if position is not None else "event"
        if not isinstance(document, Mapping):
            raise ScheduleError(f"{where}: must be a mapping like {{at: 2s, fault: kill, target: m1}}, "
                                f"got {document!r}")
        fields = dict(document)
        if "fault" not in fields:
            raise ScheduleError(f"{where}: has no 'fault' (one of {', '.join(sorted(FAULTS))})")
        fault = fields.pop("fault")
        if "at_ms" in fields and "at" in fields:
            raise ScheduleError(f"{where}: give either 'at' or 'at_ms', not both")
        raw_time = fields.pop("at_ms", None) if "at_ms" in fields else fields.pop("at", None)
        if raw_time is None:
            raise ScheduleError(f"{where}: has no time ('at: 2s' or 'at_ms: 2000')")
        if isinstance(raw_time, (int, float)) and "at" in document:
            # YAML authors write `at: 2` meaning two seconds; at_ms is always milliseconds.
            raw_time = f"{raw_time}s"
        target = fields.pop("target", None)
        try:
            at_ms = parse_duration_ms(raw_time, f"{where}: time")
            params = tuple(sorted((str(name), _frozen(value)) for name, value in fields.items()))
            return Event(at_ms, str(fault), None if target is None else str(target), params)
        except ScheduleError as error:
            if str(error).startswith(where):
                raise
            raise type(error)(f"{where}: {error}") from error


def _frozen(value: Any) -> Any:
    # Lists become tuples so that events stay hashable; to_dict turns them back.
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(item) for item in value]
    return value


class Schedule:
    """An immutable, time-sorted list of events (stable for equal times)."""

    def __init__(self, events: Iterable[Event] = ()) -> None:
        indexed = list(events)
        for event in indexed:
            if not isinstance(event, Event):
                raise ScheduleError(f"a schedule holds Event objects, got {event!r}")
        self.events: tuple[Event, ...] = tuple(sorted(indexed, key=lambda event: event.at_ms))

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schedule) and self.events == other.events

    def __repr__(self) -> str:
        return f"Schedule({list(self.events)!r})"

    def without(self, positions: Iterable[int]) -> Schedule:
        dropped = set(positions)
        return Schedule(event for position, event in enumerate(self.events) if position not in dropped)

    @property
    def last_fault_ms(self) -> int:
        return max((event.at_ms for event in self.events), default=0)

    def to_list(self) -> list[dict[str, Any]]:
        return [event.to_dict() for event in self.events]

    def to_json(self) -> str:
        return json.dumps(self.to_list(), sort_keys=True)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_list(), sort_keys=True)

    @staticmethod
    def from_list(documents: Any) -> Schedule:
        if documents is None:
            return Schedule()
        if not isinstance(documents, list):
            raise ScheduleError(f"a fault schedule is a list of events, got {type(documents).__name__}")
        return Schedule(Event.from_dict(document, position) for position, document in enumerate(documents))

    @staticmethod
    def from_json(text: str) -> Schedule:
        try:
            return Schedule.from_list(json.loads(text))
        except json.JSONDecodeError as error:
            raise ScheduleError(f"fault schedule is not valid JSON: {error}") from error

    @staticmethod
    def from_yaml(text: str) -> Schedule:
        try:
            return Schedule.from_list(yaml.safe_load(text))
        except yaml.YAMLError as error:
            raise ScheduleError(f"fault schedule is not valid YAML: {error}") from error


def parse_fault_flag(text: str) -> Event:
    """One ``--faults`` item: ``AT:FAULT[:TARGET][:k=v,...]``, e.g. ``5s:kill-leader``,
    ``10s:kill:m2:lose_unpersisted=true``, ``12s:partition::mode=isolate-leader``."""
    parts = text.split(":")
    if len(parts) < 2:
        raise ScheduleError(f"--faults item {text!r} must look like AT:FAULT[:TARGET][:k=v,...], "
                            f"e.g. 5s:kill-leader or 10s:kill:m2")
    document: dict[str, Any] = {"at": parts[0].strip(), "fault": parts[1].strip()}
    if len(parts) >= 3 and parts[2].strip():
        document["target"] = parts[2].strip()
    if len(parts) >= 4 and parts[3].strip():
        for pair in parts[3].split(","):
            if "=" not in pair:
                raise ScheduleError(f"--faults item {text!r}: parameter {pair!r} must be k=v")
            name, raw = pair.split("=", 1)
            document[name.strip()] = yaml.safe_load(raw)
    if len(parts) > 4:
        raise ScheduleError(f"--faults item {text!r} has too many ':' fields")
    if document["at"] and document["at"][-1].isdigit():
        document["at"] = document["at"] + "s"  # bare numbers on the command line are seconds
    return Event.from_dict(document)
