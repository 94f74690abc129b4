"""In-memory repository: for unit tests, the no-Redis backtest, and as the Redis repository's cache."""

from __future__ import annotations

from collections.abc import Sequence

from workers.candidate.domain.model import Cluster, ClusterSet, Vector
from workers.candidate.ports import ClusterRepository


class InMemoryClusterRepository(ClusterRepository):
    """Transactional per batch: the values are immutable, so a commit is a shallow snapshot."""

    def __init__(self) -> None:
        self._clusters: dict[str, ClusterSet] = {}
        self._references: dict[str, Vector] = {}
        self._committed: tuple[dict[str, ClusterSet], dict[str, Vector]] = ({}, {})

    def get_clusters(self, device_id: str) -> ClusterSet:
        clusters = self._clusters.get(device_id)
        if clusters is None:
            clusters = self._clusters[device_id] = ClusterSet(device_id)
        return clusters

    def save_clusters(self, clusters: ClusterSet, changed: Sequence[int]) -> None:
        self._clusters[clusters.device_id] = clusters

    def save_cluster(self, cluster: Cluster) -> None:
        """One cluster founded or replaced (a convenience over save_clusters)."""
        self.save_clusters(self.get_clusters(cluster.device_id).with_cluster(cluster), [cluster.number])

    def get_reference(self, device_id: str) -> Vector | None:
        return self._references.get(device_id)

    def set_reference(self, device_id: str, reference: Vector) -> None:
        self._references[device_id] = reference

    def commit(self) -> None:
        self._committed = (dict(self._clusters), dict(self._references))

    def rollback(self) -> None:
        self._clusters, self._references = dict(self._committed[0]), dict(self._committed[1])
