"""Verdict agreement with histories nobody on this project wrote: Porcupine's test data
(102 Jepsen etcd register histories, 6 key-value histories), in ../shared/data.

The data lives beside the repository (``<repo root>/../shared/data/linearizability``);
CI copies ``shared/`` next to its fresh clone.  Absent data skips with the reason.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from chaos.checkers.jepsen_formats import read_jepsen_etcd_log, read_kv_edn
from chaos.checkers.linearizability import KVModel, RegisterModel, check_linearizability

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA = REPO_ROOT.parent / "shared" / "data" / "linearizability"
ETCD = DATA / "jepsen-etcd"
KV = DATA / "kv"

if not (ETCD / "EXPECTED.tsv").is_file() or not KV.is_dir():
    pytest.skip(f"shared linearizability data not found at {DATA} (copy shared/ beside the repository)",
                allow_module_level=True)

EXPECTED = {name: verdict for name, verdict in
            (line.split() for line in (ETCD / "EXPECTED.tsv").read_text().splitlines() if line.strip())}
VERDICT_NAMES = {"linearizable": "ok", "not-linearizable": "illegal"}
# Generous: all 108 take about 1-2 s together on this machine; the bound only stops a hang.
TIME_LIMIT_S = 60.0


def test_the_data_set_is_complete() -> None:
    assert len(EXPECTED) == 102
    unlisted = sorted({path.name for path in ETCD.glob("*.log")} - set(EXPECTED))
    assert unlisted == ["etcd_095.log"]  # empty, and not listed (see the data README)
    assert check_linearizability(read_jepsen_etcd_log(ETCD / unlisted[0]), RegisterModel()).verdict == "ok"
    assert all((ETCD / name).is_file() for name in EXPECTED)
    assert len(list(KV.glob("c*-*.txt"))) == 6


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("cas_fail_is_mismatch", [True, False], ids=["cas-fail-mismatch", "cas-fail-dropped"])
def test_jepsen_etcd_verdicts_agree(name: str, cas_fail_is_mismatch: bool) -> None:
    history = read_jepsen_etcd_log(ETCD / name)
    result = check_linearizability(history, RegisterModel(cas_fail_is_mismatch=cas_fail_is_mismatch),
                                   time_limit_s=TIME_LIMIT_S)
    assert result.verdict == VERDICT_NAMES[EXPECTED[name]], "\n".join(result.report_lines())
    if result.verdict == "illegal":
        prefix = result.illegal_keys[0].prefix
        assert prefix is not None and prefix.blocked is not None and prefix.pending


@pytest.mark.parametrize("path", sorted(KV.glob("c*-*.txt")), ids=lambda path: path.stem)
def test_kv_verdicts_agree(path: Path) -> None:
    history = read_kv_edn(path)
    result = check_linearizability(history, KVModel(initial=""), time_limit_s=TIME_LIMIT_S)
    expected = "ok" if path.stem.endswith("-ok") else "illegal"
    assert result.verdict == expected, "\n".join(result.report_lines())
    if expected == "ok":
        assert len(result.keys) > 1 and all(key.verdict == "ok" for key in result.keys)
