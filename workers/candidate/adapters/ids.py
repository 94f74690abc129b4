"""Cluster label generators: labels derive from (device, number), so a restart reproduces them."""

from __future__ import annotations

from workers.candidate.ports import ClusterIdGenerator


class DeviceScopedIds(ClusterIdGenerator):
    """Labels like "dev-01/k3": deliberately unlike legacy's "dev-01:3" (agreement is label-invariant)."""

    def next_label(self, device_id: str, number: int) -> str:
        return f"{device_id}/k{number}"
