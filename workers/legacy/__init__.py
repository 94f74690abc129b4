"""The legacy (incumbent) clustering worker: `create(context)` builds it for the worker runtime."""

from __future__ import annotations

from harness.clustering import ClusteringAlgorithm, WorkerContext
from workers.legacy.algorithm import MODEL_VERSION, LegacyClusterer
from workers.legacy.state import MemoryDeviceStore, RedisDeviceStore


def create(context: WorkerContext) -> ClusteringAlgorithm:
    """State lives in Redis under harness:state:{worker_name}:, or in memory when there is no Redis."""
    if context.redis is None:
        return LegacyClusterer(MemoryDeviceStore())
    return LegacyClusterer(RedisDeviceStore(context.redis, context.worker_name, context.partition))


__all__ = ["MODEL_VERSION", "LegacyClusterer", "create"]
