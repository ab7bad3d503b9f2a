"""Glue between the simulated cluster and the scheduler's Manager facade.

``scheduler_adapter(cluster)`` returns an object with the hooks
chaos.cluster.ManagerApp and SimCluster call, or None when the scheduler
package does not expose its Manager facade yet (then the cluster runs the kv
namespace only and service operations fail with a clear error).
"""
from __future__ import annotations

from typing import Any


def scheduler_adapter(cluster: Any) -> Any:
    try:
        from scheduler import Manager  # noqa: F401
    except ImportError:
        return None
    return None  # filled in once the facade's API is known
