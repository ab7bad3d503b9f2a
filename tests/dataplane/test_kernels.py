"""The Cython-or-twin rule every dataplane module uses (dataplane/kernels.py)."""
from __future__ import annotations

import pytest

from dataplane import flowhash_py
from dataplane.balancer import BalancerError, load_kernel
from dataplane.kernels import select_kernel


def test_explicit_python_is_the_twin() -> None:
    assert select_kernel("dataplane.flowhash_c", flowhash_py, "python") is flowhash_py


def test_shoal_pure_selects_the_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_PURE", "1")
    assert select_kernel("dataplane.flowhash_c", flowhash_py) is flowhash_py


def test_cython_is_the_default_when_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOAL_PURE", raising=False)
    compiled = pytest.importorskip("dataplane.flowhash_c", reason="extension not built")
    assert select_kernel("dataplane.flowhash_c", flowhash_py) is compiled


def test_missing_extension_falls_back_to_the_twin() -> None:
    assert select_kernel("dataplane.no_such_kernel_c", flowhash_py, "cython") is flowhash_py


def test_unknown_implementation_is_a_typed_error() -> None:
    with pytest.raises(ValueError, match="'cython' or 'python'"):
        select_kernel("dataplane.flowhash_c", flowhash_py, "fortran")
    with pytest.raises(BalancerError, match="'cython' or 'python'"):
        load_kernel("fortran")
