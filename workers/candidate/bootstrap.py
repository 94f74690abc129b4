"""The one place that wires the candidate: settings, adapters and the use case."""

from __future__ import annotations

import logging

from harness.clustering import ClusteringAlgorithm, WorkerContext
from workers.candidate.adapters.ids import DeviceScopedIds
from workers.candidate.adapters.memory import InMemoryClusterRepository
from workers.candidate.adapters.publisher import CollectingPublisher
from workers.candidate.adapters.redis_repository import RedisClusterRepository
from workers.candidate.adapters.runtime import CandidateAlgorithm
from workers.candidate.config import SCHEMA, load_settings, model_version
from workers.candidate.domain.allocation import ProfileClustering
from workers.candidate.domain.settings import Settings
from workers.candidate.ports import ClusterIdGenerator, ClusterRepository
from workers.candidate.use_case import ClusterSignal

log = logging.getLogger("harness.worker")


def bootstrap(
    settings: Settings | None = None,
    repo: ClusterRepository | None = None,
    ids: ClusterIdGenerator | None = None,
) -> CandidateAlgorithm:
    settings = settings or Settings()
    publisher = CollectingPublisher()
    clustering = ProfileClustering(settings)
    use_case = ClusterSignal(publisher, clustering, repo or InMemoryClusterRepository(), ids or DeviceScopedIds())
    return CandidateAlgorithm(use_case, publisher, model_version(settings))


def create(context: WorkerContext) -> ClusteringAlgorithm:
    """Settings from context.env (ConfigError if invalid); state in Redis, or in memory without it."""
    for variable in SCHEMA.unknown(context.env):  # a misspelt setting must not pass silently as a default
        log.warning("unknown candidate hyperparameter variable, ignored", extra={"variable": variable})
    settings = load_settings(context.env)
    if context.redis is None:
        return bootstrap(settings)
    return bootstrap(settings, RedisClusterRepository(context.redis, context.worker_name, context.partition))
