"""Placement constraints and spread preferences: parsing and matching.

Syntax as swarmkit's manager/constraint package: ``KEY==VALUE`` or
``KEY!=VALUE`` with KEY one of node.id, node.hostname, node.role,
node.platform.os, node.platform.arch, node.labels.<name>,
engine.labels.<name>. Values compare case-insensitively, as swarmkit does
(strings.EqualFold). Preferences are ``spread=node.labels.<name>`` (or
engine.labels); nodes missing the label form one extra branch, as in swarmkit.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from scheduler.errors import ConstraintSyntaxError

_KEY = re.compile(r"^(node\.id|node\.hostname|node\.role|node\.platform\.os|node\.platform\.arch"
                  r"|node\.labels\.[^=!\s]+|engine\.labels\.[^=!\s]+)$")
_CONSTRAINT = re.compile(r"^\s*([^=!\s]+)\s*(==|!=)\s*(\S.*?)\s*$")
CONSTRAINTS_PER_SERVICE_MAX = 64


@dataclass(frozen=True, slots=True)
class Constraint:
    key: str
    equal: bool
    value: str

    def matches(self, node) -> bool:
        actual = node_attribute(node, self.key)
        same = actual is not None and actual.lower() == self.value.lower()
        # A missing label never equals; "!=" holds when it is missing (swarmkit).
        return same if self.equal else not same

    def __str__(self) -> str:
        return f"{self.key}{'==' if self.equal else '!='}{self.value}"


def node_attribute(node, key: str) -> str | None:
    if key == "node.id":
        return node.id
    if key == "node.hostname":
        return node.hostname
    if key == "node.role":
        return "manager" if int(node.role) == 1 else "worker"
    if key == "node.platform.os":
        return node.platform_os
    if key == "node.platform.arch":
        return node.platform_arch
    if key.startswith("node.labels."):
        return _label(node.labels, key[len("node.labels."):])
    if key.startswith("engine.labels."):
        return _label(node.engine_labels, key[len("engine.labels."):])
    raise AssertionError(f"unparsed constraint key {key!r}")


def _label(labels: tuple, name: str) -> str | None:
    for key, value in labels:
        if key == name:
            return value
    return None


@lru_cache(maxsize=4096)
def parse_constraints(texts: tuple[str, ...]) -> tuple[Constraint, ...]:
    if len(texts) > CONSTRAINTS_PER_SERVICE_MAX:
        raise ConstraintSyntaxError(f"at most {CONSTRAINTS_PER_SERVICE_MAX} constraints")
    out = []
    for text in texts:
        if not isinstance(text, str):
            raise ConstraintSyntaxError(f"constraint must be a string, got {text!r}")
        match = _CONSTRAINT.match(text)
        if not match:
            raise ConstraintSyntaxError(f"constraint {text!r}: expected KEY==VALUE or KEY!=VALUE")
        key, op, value = match.groups()
        if not _KEY.match(key):
            raise ConstraintSyntaxError(
                f"constraint {text!r}: unknown key {key!r} (node.id, node.hostname, node.role, "
                "node.platform.os|arch, node.labels.X, engine.labels.X)")
        if key == "node.role" and value.lower() not in ("manager", "worker"):
            raise ConstraintSyntaxError(f"constraint {text!r}: node.role is manager or worker")
        out.append(Constraint(key, op == "==", value))
    return tuple(out)


@lru_cache(maxsize=4096)
def parse_preferences(texts: tuple[str, ...]) -> tuple[str, ...]:
    """``spread=node.labels.zone`` -> the attribute key ``node.labels.zone``."""
    keys = []
    for text in texts:
        if not isinstance(text, str) or not text.startswith("spread="):
            raise ConstraintSyntaxError(f"preference {text!r}: expected spread=node.labels.NAME")
        key = text[len("spread="):].strip()
        if not (key.startswith("node.labels.") or key.startswith("engine.labels.")) or not _KEY.match(key):
            raise ConstraintSyntaxError(f"preference {text!r}: spread over node.labels.X or engine.labels.X")
        keys.append(key)
    return tuple(keys)


def node_matches(constraints: tuple[Constraint, ...], node) -> bool:
    for constraint in constraints:
        if not constraint.matches(node):
            return False
    return True
