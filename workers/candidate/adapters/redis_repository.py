"""Redis repository: a per-device hash, cached in memory once read, written in one pipeline per batch."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from harness.partitions import Partition
from harness.transport.keys import device_state_key
from workers.candidate.adapters.memory import InMemoryClusterRepository
from workers.candidate.domain.model import Cluster, ClusterSet, Vector

REFERENCE_FIELD = b"reference"  # float64 little-endian bytes of the smoothed reference vector
CLUSTER_FIELD = "cluster:{number}"  # JSON: label, representative, members


class StateError(RuntimeError):
    """The state stored in Redis cannot be read back; names the key."""


class RedisClusterRepository(InMemoryClusterRepository):
    """Write-through: this worker is the only writer of its keys, so the cache never goes stale."""

    def __init__(self, redis: Any, worker_name: str, partition: Partition | None = None) -> None:
        super().__init__()
        self._redis = redis
        self._worker = worker_name
        self._partition = partition
        self._loaded: set[str] = set()
        self._dirty_references: set[str] = set()
        self._dirty_clusters: dict[str, dict[int, Cluster]] = {}

    def get_clusters(self, device_id: str) -> ClusterSet:
        if device_id not in self._loaded:
            self._load(device_id)
        return super().get_clusters(device_id)

    def save_cluster(self, cluster: Cluster) -> None:
        if cluster.device_id not in self._loaded:
            self._load(cluster.device_id)
        super().save_cluster(cluster)
        self._dirty_clusters.setdefault(cluster.device_id, {})[cluster.number] = cluster

    def get_reference(self, device_id: str) -> Vector | None:
        if device_id not in self._loaded:
            self._load(device_id)
        return super().get_reference(device_id)

    def set_reference(self, device_id: str, reference: Vector) -> None:
        if device_id not in self._loaded:
            self._load(device_id)
        super().set_reference(device_id, reference)
        self._dirty_references.add(device_id)

    def commit(self) -> None:
        """One MULTI/EXEC for the whole batch, so a crash leaves either all of it or none of it."""
        devices = self._dirty_references | self._dirty_clusters.keys()
        if not devices:
            return
        pipe = self._redis.pipeline(transaction=True)
        for device_id in devices:
            mapping: dict[bytes | str, bytes | str] = {}
            if device_id in self._dirty_references:
                reference = super().get_reference(device_id)
                assert reference is not None
                mapping[REFERENCE_FIELD] = reference.astype("<f8").tobytes()
            for number, cluster in self._dirty_clusters.get(device_id, {}).items():
                mapping[CLUSTER_FIELD.format(number=number)] = json.dumps(
                    [cluster.label, cluster.representative, cluster.members]
                )
            pipe.hset(device_state_key(self._worker, device_id, self._partition), mapping=mapping)
        try:
            pipe.execute()
        except Exception:
            self.rollback()
            raise
        self._dirty_references.clear()
        self._dirty_clusters.clear()

    def rollback(self) -> None:
        """Drops the whole cache: after a failed write, only Redis knows what was saved."""
        self._clusters.clear()
        self._references.clear()
        self._loaded.clear()
        self._dirty_references.clear()
        self._dirty_clusters.clear()

    def _load(self, device_id: str) -> None:
        key = device_state_key(self._worker, device_id, self._partition)
        stored: dict[bytes, bytes] = self._redis.hgetall(key)
        clusters = ClusterSet(device_id)
        try:
            numbered = sorted(
                (int(field.split(b":", 1)[1]), value) for field, value in stored.items() if field != REFERENCE_FIELD
            )
            for number, value in numbered:
                label, representative, members = json.loads(value)
                clusters = clusters.with_cluster(Cluster(label, device_id, number, tuple(representative), members))
        except (ValueError, TypeError, IndexError) as exc:
            raise StateError(f"cannot read the clusters stored in {key}: {exc}") from None
        self._clusters[device_id] = clusters
        if REFERENCE_FIELD in stored:
            reference = np.frombuffer(stored[REFERENCE_FIELD], dtype="<f8")
            self._references[device_id] = reference
        self._loaded.add(device_id)
