"""The candidate's Redis repository: state survives a restart, one pipeline per batch, per-worker keys."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import redis

from harness.clustering import WorkerContext
from harness.producer.synthetic import generate_signals
from workers.candidate import create
from workers.candidate.adapters.redis_repository import (
    PACKED_FROM,
    RedisClusterRepository,
    StateError,
    decode_cluster,
    encode_cluster,
    encode_clusters,
)
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


def test_clusters_stored_as_json_by_earlier_versions_still_load(redis_client: redis.Redis) -> None:
    key = "harness:state:candidate:device:dev-01"
    redis_client.hset(key, mapping={"cluster:1": '["dev-01/k1", [0.1, 0.2, 0.3, 4.0, 5.0], 3]',
                                    "cluster:2": '["dev-01/k2", [1.0, 2.0, 3.0, 4.0, 5.5], 1]'})
    repo = RedisClusterRepository(redis_client, "candidate")
    assert repo.get_clusters("dev-01").clusters == (
        Cluster("dev-01/k1", "dev-01", 1, (0.1, 0.2, 0.3, 4.0, 5.0), members=3),
        Cluster("dev-01/k2", "dev-01", 2, (1.0, 2.0, 3.0, 4.0, 5.5)),
    )
    repo.save_cluster(Cluster("dev-01/k1", "dev-01", 1, (0.1, 0.2, 0.3, 4.0, 5.0), members=4))
    repo.commit()  # rewrites only the cluster that changed, in the current format
    assert redis_client.hget(key, "cluster:2").startswith(b"[")  # type: ignore[union-attr]
    reread = RedisClusterRepository(redis_client, "candidate").get_clusters("dev-01")
    assert reread.members == (4, 1) and reread.labels == ("dev-01/k1", "dev-01/k2")


def test_clusters_numbered_with_a_gap_are_unreadable_state(redis_client: redis.Redis) -> None:
    redis_client.hset("harness:state:candidate:device:dev-01", "cluster:2", '["dev-01/k2", [1, 2, 3, 4, 5], 1]')
    with pytest.raises(StateError, match="not numbered"):
        RedisClusterRepository(redis_client, "candidate").get_clusters("dev-01")


def test_a_cluster_cut_short_is_unreadable_state() -> None:
    whole = encode_cluster("dev-01/k1", 2, np.arange(5.0))
    assert decode_cluster(whole)[0] == "dev-01/k1" and decode_cluster(whole)[2] == 2
    with pytest.raises(ValueError, match="format 1"):
        decode_cluster(whole[:30])


def test_clusters_encoded_together_equal_each_encoded_alone() -> None:
    rng = np.random.default_rng(5)
    count = 3 * PACKED_FROM
    representatives = rng.normal(size=(count, 5)) * 10.0 ** rng.integers(-300, 300, size=(count, 5))
    labels, members = [f"dév-{k}/k{k * 7}" for k in range(count)], [int(m) for m in rng.integers(0, 2**62, count)]
    for rows in (count, 2):  # packed together, and one by one
        together = encode_clusters(labels[:rows], members[:rows], representatives[:rows])
        alone = [encode_cluster(*cluster) for cluster in zip(labels, members, representatives, strict=False)][:rows]
        assert together == alone
        assert [decode_cluster(value)[0] for value in together] == labels[:rows]


def test_joined_clusters_share_one_assignment_and_new_ones_get_their_own() -> None:
    algorithm = create(WorkerContext("candidate", None, {}))
    assignments = [a for batch in batches(SIGNALS[:600]) for a in algorithm.assign_batch(batch)]
    by_label: dict[tuple[str | None, bool], set[int]] = {}
    for assignment in assignments:
        by_label.setdefault((assignment.label, assignment.is_new_cluster), set()).add(id(assignment))
    joined = [ids for (label, new), ids in by_label.items() if not new]
    assert len(joined) > 3 and all(len(ids) == 1 for ids in joined)
    assert sum(len(ids) for (_, new), ids in by_label.items() if new) == sum(a.is_new_cluster for a in assignments)
