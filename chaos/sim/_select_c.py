"""Which simulator runs: the compiled modules chaos.sim._<name>_c (built from
chaos/sim/{client,disk,network,host,simulation}.py plus their .pxd
declarations, see consensus/_build_core_c.py) or the pure-Python sources.
The rule is the Raft core's (consensus/_select_c.py: SHOAL_PURE=1, a missing
or stale extension -> the twin), and the simulator runs compiled only when
the core does: its .pxd files declare the compiled core's classes.
"""
from __future__ import annotations

import os

from consensus._build_core_c import SIM_MODULES
from consensus._select_c import CORE, CompiledTwin, file_sha256

_HERE = os.path.dirname(os.path.abspath(__file__))


def _source_sha256(name: str) -> str:
    return file_sha256(os.path.join(_HERE, f"{name}.py"))


SIM = CompiledTwin("chaos.sim", SIM_MODULES, "simulator", lambda name: _source_sha256(name), requires=CORE)
implementation = SIM.implementation
swap_in = SIM.swap_in
