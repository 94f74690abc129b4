"""The loopback Redis Cluster of the tests: it lives in harness.embedded_cluster (benchmarks use it too)."""

from harness.embedded_cluster import (
    MASTERS,
    NODE_TIMEOUT_MS,
    REPLICAS_PER_MASTER,
    ClusterUnavailable,
    LocalRedisCluster,
    WaitTimedOut,
    cluster_binaries,
    local_redis_cluster,
)

__all__ = ["MASTERS", "NODE_TIMEOUT_MS", "REPLICAS_PER_MASTER", "ClusterUnavailable", "LocalRedisCluster",
           "WaitTimedOut", "cluster_binaries", "local_redis_cluster"]
