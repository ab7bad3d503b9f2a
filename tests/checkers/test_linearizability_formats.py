"""Parsers of the oracle data formats: Jepsen etcd logs and Porcupine kv EDN lines."""
from __future__ import annotations

import pytest

from chaos.checkers.jepsen_formats import JepsenFormatError, parse_jepsen_etcd_log, parse_kv_edn


def etcd(*lines: str) -> list[str]:
    return [f"INFO  jepsen.util - {line}" if line[:1].isdigit() else line for line in lines]


def test_etcd_events_tabs_or_spaces_and_noise() -> None:
    history = parse_jepsen_etcd_log(etcd(
        "2013-10-01 noise line",
        "0\t:invoke\t:read\tnil",
        "1   :invoke :write  3",
        "INFO  jepsen.core - :nemesis :info :start nil",
        "0\t:ok\t:read\tnil",
        "1\t:ok\t:write\t3",
        "2\t:invoke\t:cas\t[3 4]",
        "2\t:fail\t:cas\t[3 4]",
        "3\t:invoke\t:write\t1",
        "3\t:info\t:write\t:timed-out",
        "4\t:invoke\t:read\tnil",
        "4\t:fail\t:read\t:timed-out",
    ))
    kinds = [(op.process, op.type, op.f, op.value) for op in history]
    assert kinds == [
        (0, "invoke", "read", None), (1, "invoke", "write", 3), (0, "ok", "read", None), (1, "ok", "write", 3),
        (2, "invoke", "cas", [3, 4]), (2, "fail", "cas", [3, 4]), (3, "invoke", "write", 1),
        (3, "info", "write", None), (4, "invoke", "read", None), (4, "info", "read", None),
    ]
    assert history.ops[-1].error == "timed-out"
    assert history.ops[0].time_ns == 2  # line numbers


@pytest.mark.parametrize("line, message", [
    ("0\t:invoke\t:frobnicate\t1", "unknown operation"),
    ("0\t:begin\t:read\tnil", "unknown event type"),
    ("0\t:invoke\t:write\tabc", "nil or an integer"),
    ("0\t:invoke\t:write\tnil", "needs an integer"),
    ("0\t:invoke\t:cas\t[1]", r"\[from to\]"),
    ("0\t:invoke\t:read\t5", "invoked with nil"),
    ("0\t:invoke\t:read\t:timed-out", "cannot time out"),
    ("0\t:ok\t:read\t1", "no open invocation"),
    ("0 :oops", "not a jepsen.util operation event"),
])
def test_etcd_malformed_lines_name_their_line(line: str, message: str) -> None:
    with pytest.raises(JepsenFormatError, match=message) as raised:
        parse_jepsen_etcd_log(etcd("noise", line))
    assert raised.value.line_number == 2 and "line 2" in str(raised.value)


def test_etcd_double_invoke_is_an_error() -> None:
    with pytest.raises(JepsenFormatError, match="invoked twice") as raised:
        parse_jepsen_etcd_log(etcd("0\t:invoke\t:read\tnil", "0\t:invoke\t:read\tnil"))
    assert raised.value.line_number == 2


def test_kv_edn_lines() -> None:
    history = parse_kv_edn([
        '{:process 0, :type :invoke, :f :append, :key "0", :value "x 0 0 y"}',
        "",
        "; a comment",
        '{:process 1, :type :invoke, :f :get, :key "0", :value nil}',
        '{:process 0, :type :ok, :f :append, :key "0", :value "x 0 0 y"}',
        '{:process 1, :type :ok, :f :get, :key "0", :value "with \\"quote\\""}',
    ])
    assert [(op.process, op.type, op.f, op.key, op.value) for op in history] == [
        (0, "invoke", "append", "0", "x 0 0 y"), (1, "invoke", "get", "0", None),
        (0, "ok", "append", "0", "x 0 0 y"), (1, "ok", "get", "0", 'with "quote"'),
    ]


@pytest.mark.parametrize("line, message", [
    ('{:process 0, :type :invoke, :f :get, :key "0"', "must end with }"),
    ('{:process 0, :type :invoke, :f :get}', "missing field"),
    ('{:process 0, :type :begin, :f :get, :key "0"}', "unknown :type"),
    ('{:process 0, :type :invoke, :f :scan, :key "0"}', "unknown :f"),
    ('{:process "zero", :type :invoke, :f :get, :key "0"}', ":process"),
    ('{:process 0, :type :invoke, :f :get, :key 5}', ":key must be a string"),
    ('{:process 0, :type :invoke, :f :get, :key "0", :key "1"}', "duplicate field"),
    ('{:process 0, :type :invoke, :f :get, :key "0" :value {}}', "cannot read a map entry"),
    ('{:process 0, :type :ok, :f :get, :key "0", :value "a"}', "no open invocation"),
])
def test_kv_malformed_lines_name_their_line(line: str, message: str) -> None:
    with pytest.raises(JepsenFormatError, match=message) as raised:
        parse_kv_edn(["", line])
    assert raised.value.line_number == 2
