"""Parsers for the shared oracle data: Jepsen etcd logs and Porcupine's kv EDN lines.

Both produce a :class:`chaos.history.History`.  Event times (``time_ns``) are
the 1-based line numbers: the files carry no clock, and the checker orders
events by their position anyway.

- ``parse_jepsen_etcd_log``: lines ``INFO  jepsen.util - <process> :<type>
  :<f> <value>`` (tabs or spaces), f in read/write/cas, value ``nil``, an
  integer, ``[from to]`` or ``:timed-out``.  A timed-out operation has an
  unknown outcome and is recorded as ``info`` (Jepsen writes ``:fail`` for a
  timed-out read; a read that may or may not have happened constrains nothing,
  so ``info`` is the faithful translation).  A ``:fail`` cas stays ``fail``;
  check these histories with ``RegisterModel(cas_fail_is_mismatch=True)``,
  because in them it means the comparison ran and failed.
- ``parse_kv_edn``: one EDN map a line, ``{:process P, :type :invoke|:ok|:fail
  |:info, :f :get|:put|:append, :key "k", :value "v"|nil}``.

Lines that are not operation events (no ``jepsen.util - <digits>`` marker, or
blank / not a map) are noise and skipped.  A line that is an event but cannot
be read raises :class:`JepsenFormatError` naming the file's line number.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from chaos.history import History, HistoryError

__all__ = ["JepsenFormatError", "parse_jepsen_etcd_log", "parse_kv_edn", "read_jepsen_etcd_log", "read_kv_edn"]


class JepsenFormatError(ValueError):
    """A relevant line that cannot be parsed; ``line_number`` is 1-based."""

    def __init__(self, line_number: int, message: str, line: str) -> None:
        super().__init__(f"line {line_number}: {message}: {line.strip()[:160]!r}")
        self.line_number = line_number


_ETCD_EVENT = re.compile(r"jepsen\.util\s+-\s+(\d+)\s+:(\S+)\s+:(\S+)(?:\s+(.*?))?\s*$")
_ETCD_MARKER = re.compile(r"jepsen\.util\s+-\s+\d+\s")
_ETCD_TYPES = {"invoke", "ok", "fail", "info"}
_ETCD_FS = {"read", "write", "cas"}
_INTEGER = re.compile(r"-?\d+$")
_PAIR = re.compile(r"\[\s*(nil|-?\d+)\s+(nil|-?\d+)\s*\]$")


def _etcd_scalar(text: str) -> int | None:
    if text == "nil":
        return None
    if _INTEGER.match(text):
        return int(text)
    raise ValueError(f"expected nil or an integer, got {text!r}")


def parse_jepsen_etcd_log(lines: Iterable[str]) -> History:
    """Read a Jepsen etcd register log (see the module docstring)."""
    history = History()
    for line_number, line in enumerate(lines, start=1):
        if not _ETCD_MARKER.search(line):
            continue
        match = _ETCD_EVENT.search(line)
        if match is None:
            raise JepsenFormatError(line_number, "not a jepsen.util operation event", line)
        process_text, kind, f, value_text = match.groups()
        value_text = (value_text or "").strip()
        if kind not in _ETCD_TYPES:
            raise JepsenFormatError(line_number, f"unknown event type :{kind}", line)
        if f not in _ETCD_FS:
            raise JepsenFormatError(line_number, f"unknown operation :{f} (read/write/cas)", line)
        try:
            value, error = _etcd_value(f, kind, value_text)
        except ValueError as problem:
            raise JepsenFormatError(line_number, str(problem), line) from None
        if error is not None:
            kind = "info"  # timed out: unknown outcome, whatever Jepsen's type says
        process = int(process_text)
        try:
            if kind == "invoke":
                history.invoke(process, f, None, value, line_number)
            else:
                history.complete(process, kind, value, line_number, error=error)  # type: ignore[arg-type]
        except HistoryError as problem:
            raise JepsenFormatError(line_number, str(problem), line) from None
    return history


def _etcd_value(f: str, kind: str, text: str) -> tuple[Any, str | None]:
    """(value, error) of one event; error is set for a timeout."""
    if text == ":timed-out":
        if kind == "invoke":
            raise ValueError("an invocation cannot time out")
        return None, "timed-out"
    if f == "cas":
        pair = _PAIR.match(text)
        if pair is None:
            raise ValueError(f"cas needs [from to], got {text!r}")
        return [_etcd_scalar(pair.group(1)), _etcd_scalar(pair.group(2))], None
    if f == "read" and kind == "invoke":
        if text != "nil":
            raise ValueError(f"a read is invoked with nil, got {text!r}")
        return None, None
    if f == "write" and text == "nil":
        raise ValueError("a write needs an integer value")
    return _etcd_scalar(text), None


def read_jepsen_etcd_log(path: str | Path) -> History:
    with open(path, encoding="utf-8") as handle:
        return parse_jepsen_etcd_log(handle)


# ---- Porcupine kv EDN ---------------------------------------------------------

_EDN_ENTRY = re.compile(r'\s*:([A-Za-z][\w-]*)\s+("(?:[^"\\]|\\.)*"|:[\w-]+|-?\d+|nil|true|false)\s*(,|$)')
_EDN_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
_EDN_REQUIRED = ("process", "type", "f", "key")
_KV_FS = {"get", "put", "append"}


def _edn_atom(text: str) -> Any:
    if text.startswith('"'):
        return re.sub(r"\\(.)", lambda m: _EDN_ESCAPES.get(m.group(1), m.group(1)), text[1:-1])
    if text.startswith(":"):
        return text  # keyword, kept with its colon
    if text == "nil":
        return None
    if text in ("true", "false"):
        return text == "true"
    return int(text)


def _parse_edn_map(body: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    position = 0
    while position < len(body):
        match = _EDN_ENTRY.match(body, position)
        if match is None:
            raise ValueError(f"cannot read a map entry at column {position + 1}")
        name, atom = match.group(1), match.group(2)
        if name in fields:
            raise ValueError(f"duplicate field :{name}")
        fields[name] = _edn_atom(atom)
        position = match.end()
    return fields


def parse_kv_edn(lines: Iterable[str]) -> History:
    """Read Porcupine's kv histories (see the module docstring)."""
    history = History()
    for line_number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text.startswith("{"):
            continue  # noise: blank lines, comments, logs
        if not text.endswith("}"):
            raise JepsenFormatError(line_number, "an EDN map must end with }", line)
        try:
            fields = _parse_edn_map(text[1:-1])
        except ValueError as problem:
            raise JepsenFormatError(line_number, str(problem), line) from None
        missing = [name for name in _EDN_REQUIRED if name not in fields]
        if missing:
            raise JepsenFormatError(line_number, f"missing field(s) {', '.join(':' + m for m in missing)}", line)
        process, kind, f, key = fields["process"], fields["type"], fields["f"], fields["key"]
        if not isinstance(process, int) or isinstance(process, bool) or process < 0:
            raise JepsenFormatError(line_number, ":process must be a non-negative integer", line)
        if kind not in (":invoke", ":ok", ":fail", ":info"):
            raise JepsenFormatError(line_number, f"unknown :type {kind!r}", line)
        if f not in {":" + name for name in _KV_FS}:
            raise JepsenFormatError(line_number, f"unknown :f {f!r} (get/put/append)", line)
        if not isinstance(key, str):
            raise JepsenFormatError(line_number, ":key must be a string", line)
        value = fields.get("value")
        try:
            if kind == ":invoke":
                history.invoke(process, f[1:], key, value, line_number)
            else:
                history.complete(process, kind[1:], value, line_number)
        except HistoryError as problem:
            raise JepsenFormatError(line_number, str(problem), line) from None
    return history


def read_kv_edn(path: str | Path) -> History:
    with open(path, encoding="utf-8") as handle:
        return parse_kv_edn(handle)
