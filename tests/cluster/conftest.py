"""Fixtures of the Redis Cluster tests: one loopback cluster per session, healed and flushed for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.embedded_cluster import (
    ClusterUnavailable,
    LocalRedisCluster,
    cluster_binaries,
    local_redis_cluster,
)


@pytest.fixture(scope="session")
def redis_cluster_session() -> Iterator[LocalRedisCluster]:
    try:
        cluster_binaries()
    except ClusterUnavailable as exc:
        pytest.skip(str(exc))
    with local_redis_cluster() as cluster:
        yield cluster


@pytest.fixture()
def redis_cluster(redis_cluster_session: LocalRedisCluster) -> Iterator[LocalRedisCluster]:
    """The session's cluster with all six nodes up, in agreement and empty: a test may kill masters."""
    redis_cluster_session.heal()
    redis_cluster_session.flush()
    yield redis_cluster_session


@pytest.fixture()
def redis_cluster_url(redis_cluster: LocalRedisCluster) -> str:
    """redis+cluster://127.0.0.1:PORT of an empty, healthy cluster."""
    return redis_cluster.url
