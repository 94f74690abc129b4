"""The cutover and the rollback across partitions, on a real Redis Cluster: the partitions' roles, results and
production streams live on different masters, and each switch script stays within one slot."""

from __future__ import annotations

from pathlib import Path

from harness.embedded_cluster import LocalRedisCluster
from harness.transport.connection import redis_client
from tests.integration.test_partitioned_cutover import (
    test_a_cutover_and_a_rollback_across_partitions_give_each_signal_exactly_one_production_result as on_one_redis,
)


def test_a_cutover_and_a_rollback_across_partitions_on_a_redis_cluster(
    redis_cluster: LocalRedisCluster, redis_cluster_url: str, tmp_path: Path
) -> None:
    on_one_redis(redis_client(redis_cluster_url), redis_cluster_url, tmp_path)
