"""The candidate's Redis repository: state survives a restart, one pipeline per batch, per-worker keys."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import redis

from harness.clustering import WorkerContext
from harness.producer.synthetic import generate_signals
from workers.candidate import create
from workers.candidate.adapters.redis_repository import RedisClusterRepository, StateError
from workers.candidate.domain.model import Cluster

SIGNALS = list(generate_signals(1200, seed=11))


def labels(context: WorkerContext, batches: list[list[Any]]) -> list[str | None]:
    algorithm = create(context)
    return [a.label for batch in batches for a in algorithm.assign_batch(batch)]


def batches(signals: list[Any], size: int = 200) -> list[list[Any]]:
    return [signals[i : i + size] for i in range(0, len(signals), size)]


def test_a_restarted_candidate_resumes_with_the_same_clusters(redis_client: redis.Redis) -> None:
    uninterrupted = labels(WorkerContext("candidate", None, {}), batches(SIGNALS))
    context = WorkerContext("candidate", redis_client, {})
    first_half = labels(context, batches(SIGNALS[:600]))
    second_half = labels(context, batches(SIGNALS[600:]))  # a new instance: reads its state from Redis
    assert first_half + second_half == uninterrupted


def test_state_is_kept_under_the_workers_own_prefix(redis_client: redis.Redis) -> None:
    labels(WorkerContext("candidate", redis_client, {}), batches(SIGNALS[:300]))
    labels(WorkerContext("candidate-replica", redis_client, {}), batches(SIGNALS[:300]))
    keys = {key.decode() for key in redis_client.keys("*")}
    devices = {s.meta.device_id for s in SIGNALS[:300]}
    assert keys == {f"harness:state:{w}:device:{d}" for w in ("candidate", "candidate-replica") for d in devices}


def test_a_batch_is_written_in_one_transaction(redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = RedisClusterRepository(redis_client, "candidate")
    executed: list[int] = []
    real_pipeline = redis_client.pipeline

    def counting_pipeline(transaction: bool = True) -> Any:
        pipe = real_pipeline(transaction=transaction)
        real_execute = pipe.execute

        def execute() -> Any:
            executed.append(len(pipe.command_stack))
            return real_execute()

        pipe.execute = execute
        return pipe

    monkeypatch.setattr(redis_client, "pipeline", counting_pipeline)
    repo.set_reference("dev-01", np.ones(3))
    repo.set_reference("dev-02", np.ones(3))
    repo.save_cluster(Cluster("dev-01/k1", "dev-01", 1, (1.0, 2.0, 3.0, 4.0, 5.0)))
    repo.commit()
    repo.commit()  # nothing new: no round trip
    assert executed == [2]  # one HSET per device, in a single MULTI/EXEC


def test_a_failed_commit_forgets_the_cache_so_the_next_batch_rereads_redis(redis_client: redis.Redis) -> None:
    repo = RedisClusterRepository(redis_client, "candidate")
    repo.set_reference("dev-01", np.ones(3))
    repo.commit()
    repo.set_reference("dev-01", np.zeros(3))
    redis_client.set("harness:state:candidate:device:dev-01", "not a hash")  # makes the HSET fail
    with pytest.raises(redis.ResponseError):
        repo.commit()
    redis_client.delete("harness:state:candidate:device:dev-01")
    assert repo.get_reference("dev-01") is None  # reread from Redis, not the unsaved zeros


def test_stored_state_round_trips_exactly(redis_client: redis.Redis) -> None:
    writer = RedisClusterRepository(redis_client, "candidate")
    reference = np.array([230.1, 229.99999999999997, 1e-300])
    cluster = Cluster("dev-01/k1", "dev-01", 1, (0.1, 0.2, -0.30000000000000004, 4.0, 5.0), members=7)
    writer.set_reference("dev-01", reference)
    writer.save_cluster(cluster)
    writer.commit()
    reader = RedisClusterRepository(redis_client, "candidate")
    stored = reader.get_reference("dev-01")
    assert stored is not None and stored.tobytes() == reference.tobytes()
    assert reader.get_clusters("dev-01").clusters == (cluster,)


def test_unreadable_state_is_an_error_naming_the_key(redis_client: redis.Redis) -> None:
    redis_client.hset("harness:state:candidate:device:dev-01", "cluster:1", b"{broken")
    with pytest.raises(StateError, match="harness:state:candidate:device:dev-01"):
        RedisClusterRepository(redis_client, "candidate").get_clusters("dev-01")
