"""Typed errors of the control plane.

Expected conditions (a bad spec, a name taken, a version conflict, a malformed
entry, an exhausted pool) are these exceptions or, inside the store's apply
path, typed results carrying them; broken invariants are assertions.
"""
from __future__ import annotations


class SchedulerError(Exception):
    """Base of every expected condition raised by scheduler/."""


class InvalidSpec(SchedulerError, ValueError):
    """A spec or object field is out of range or malformed."""


class ConstraintSyntaxError(InvalidSpec):
    """A placement constraint or preference does not parse."""


class StateRegression(SchedulerError):
    """A task state was asked to move backwards (states only move forward)."""


class NotFound(SchedulerError, KeyError):
    """The named object does not exist in the store."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text.
        return str(self.args[0]) if self.args else "not found"


class AlreadyExists(SchedulerError):
    """An object with that id or name already exists."""


class VersionConflict(SchedulerError):
    """A transaction's expected version differs from the stored one."""


class MalformedEntry(SchedulerError):
    """A committed entry or proposal does not decode to a valid transaction."""


class AllocationExhausted(SchedulerError):
    """An address, port or VNI pool has no free entry left."""


class NotLeader(SchedulerError):
    """A leader-only operation was called on a manager that is not the leader."""
