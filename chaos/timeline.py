"""What happened to the cluster over a run, as data the checkers and the report read.

The nemesis records a ``Condition`` every time the fault state changes (who is
up, which links are cut, which links are degraded, who votes), a ``FaultBand``
for each fault from its start to its heal, and the runner records each
leadership (node, term, from, to).  Checkers take these plain records rather
than the live cluster, so that each checker can be tested on hand-written
timelines and re-run on a saved ``results.json``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Condition:
    """The fault state from ``time_ms`` until the next condition.

    ``up``: managers running (not crashed, not paused).  ``voters``: the Raft
    membership the nemesis believes in.  ``blocked``: directed links a->b that
    drop everything.  ``degraded``: some link loses, delays, duplicates or
    reorders - availability is then not promised.  ``cause``: the event.
    """

    time_ms: int
    up: frozenset[str]
    voters: frozenset[str]
    blocked: frozenset[tuple[str, str]] = frozenset()
    degraded: bool = False
    cause: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"time_ms": self.time_ms, "up": sorted(self.up), "voters": sorted(self.voters),
                "blocked": sorted([list(pair) for pair in self.blocked]), "degraded": self.degraded,
                "cause": self.cause}

    @staticmethod
    def from_dict(document: dict[str, Any]) -> Condition:
        return Condition(int(document["time_ms"]), frozenset(document["up"]), frozenset(document["voters"]),
                         frozenset(tuple(pair) for pair in document.get("blocked", ())),
                         bool(document.get("degraded", False)), str(document.get("cause", "")))


@dataclass(frozen=True)
class FaultBand:
    """A fault from ``start_ms`` until ``end_ms`` (None: never healed in the run)."""

    start_ms: int
    end_ms: int | None
    label: str
    nodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class LeaderSpan:
    """``node`` led in ``term`` from ``start_ms`` to ``end_ms``."""

    node: str
    term: int
    start_ms: int
    end_ms: int


@dataclass
class Timeline:
    conditions: list[Condition] = field(default_factory=list)
    faults: list[FaultBand] = field(default_factory=list)
    leaders: list[LeaderSpan] = field(default_factory=list)
    # Events the nemesis applied, after selector resolution: (time_ms, text).
    applied: list[tuple[int, str]] = field(default_factory=list)
    end_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "end_ms": self.end_ms,
            "conditions": [condition.to_dict() for condition in self.conditions],
            "faults": [asdict(band) for band in self.faults],
            "leaders": [asdict(span) for span in self.leaders],
            "applied": [[time_ms, text] for time_ms, text in self.applied],
        }

    @staticmethod
    def from_dict(document: dict[str, Any]) -> Timeline:
        return Timeline(
            conditions=[Condition.from_dict(item) for item in document.get("conditions", ())],
            faults=[FaultBand(item["start_ms"], item["end_ms"], item["label"], tuple(item.get("nodes", ())))
                    for item in document.get("faults", ())],
            leaders=[LeaderSpan(item["node"], item["term"], item["start_ms"], item["end_ms"])
                     for item in document.get("leaders", ())],
            applied=[(int(time_ms), str(text)) for time_ms, text in document.get("applied", ())],
            end_ms=int(document.get("end_ms", 0)),
        )
