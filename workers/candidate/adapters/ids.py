"""Cluster label generators: labels derive from (scope, number), so a restart reproduces them."""

from __future__ import annotations

from workers.candidate.domain.settings import SHARED_SCOPE
from workers.candidate.ports import ClusterIdGenerator

SHARED_PREFIX = "shared"  # labels of clusters shared by the fleet: "shared/k3"


class DeviceScopedIds(ClusterIdGenerator):
    """Labels like "dev-01/k3": deliberately unlike legacy's "dev-01:3" (agreement is label-invariant)."""

    def next_label(self, device_id: str, number: int) -> str:
        return f"{device_id if device_id != SHARED_SCOPE else SHARED_PREFIX}/k{number}"
