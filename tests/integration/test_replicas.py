"""Replicas of one worker share P = 8 partitions on a real Redis: every signal gets exactly one result,
in input order within its device, while replicas join and one is SIGKILLed mid-run."""

from __future__ import annotations

import signal
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from harness.contracts import SignalClustered, decode_clustered
from harness.partitions import all_partitions, partition_index
from harness.producer.publisher import publish_signals
from harness.producer.synthetic import generate_signals
from harness.transport import keys
from harness.transport.base import CommitBatch
from harness.transport.errors import TransportFenced
from harness.transport.streams import StreamTransport
from tests.support.processes import start_worker, stop, wait_for

PARTITIONS = 8
LEASE_TTL = "2"


def partitioned_results(client: redis.Redis, worker: str) -> dict[int, list[SignalClustered]]:
    return {partition.index: [decode_clustered(fields[keys.PAYLOAD_FIELD]) for _, fields in
                              client.xrange(keys.scoped(keys.results_stream(worker), partition))]
            for partition in all_partitions(PARTITIONS)}


def total(client: redis.Redis, worker: str) -> Callable[[], int]:
    return lambda: sum(int(client.xlen(keys.scoped(keys.results_stream(worker), partition)))
                       for partition in all_partitions(PARTITIONS))


def owners(client: redis.Redis, worker: str) -> dict[int, str]:
    found = {}
    for partition in all_partitions(PARTITIONS):
        value = client.get(keys.scoped(keys.lease_key(worker), partition))
        if value:
            found[partition.index] = value.decode().split(" ", 1)[1]
    return found


def test_replicas_share_the_partitions_and_survive_a_kill_with_one_result_per_signal_in_device_order(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    signals = list(generate_signals(4000, 3, devices=24, samples=64))
    written = publish_signals(redis_client, signals, keys.DEFAULT_INPUT_STREAM, partitions=PARTITIONS)
    assert written == len(signals)
    lengths = [int(redis_client.xlen(keys.scoped(keys.DEFAULT_INPUT_STREAM, p))) for p in all_partitions(PARTITIONS)]
    assert sum(lengths) == len(signals) and min(lengths) > 0
    args = ("--partitions", str(PARTITIONS), "--lease-ttl", LEASE_TTL, "--batch-size", "50")
    first = start_worker("legacy", redis_url, *args, log=tmp_path / "a.log")
    second = start_worker("legacy", redis_url, *args, log=tmp_path / "b.log")
    replicas = [first, second]
    try:
        wait_for(lambda: len(set(owners(redis_client, "legacy").values())) == 2, 30,
                 "both replicas owning partitions", replicas)
        wait_for(lambda: total(redis_client, "legacy")() >= 800, 60, "some results", replicas)
        first.send_signal(signal.SIGKILL)
        first.wait()
        third = start_worker("legacy", redis_url, *args, log=tmp_path / "c.log")
        replicas = [second, third]
        wait_for(lambda: total(redis_client, "legacy")() >= len(signals), 120, "every result", replicas)
        wait_for(lambda: len(set(owners(redis_client, "legacy").values())) == 2, 30,
                 "the partitions shared by the two live replicas", replicas)
    finally:
        for process in (first, second, *replicas):
            stop(process)
    by_partition = partitioned_results(redis_client, "legacy")
    ids = [result.signal_id for results in by_partition.values() for result in results]
    assert len(ids) == len(set(ids)) == len(signals), "a signal lost or answered twice"
    sent_order: dict[str, list[str]] = defaultdict(list)
    for item in signals:
        sent_order[item.meta.device_id].append(item.signal_id)
    for index, results in by_partition.items():
        got_order: dict[str, list[str]] = defaultdict(list)
        for result in results:
            assert result.device_id is not None and partition_index(result.device_id, PARTITIONS) == index
            got_order[result.device_id].append(result.signal_id)
        for device, order in got_order.items():
            assert order == sent_order[device], f"device {device}: results out of input order"


def test_a_replica_whose_partition_lease_moved_cannot_commit_to_it(redis_client: redis.Redis) -> None:
    partition = all_partitions(PARTITIONS)[3]
    signals = [s for s in generate_signals(200, 4, devices=24, samples=32)
               if partition_index(s.meta.device_id, PARTITIONS) == partition.index][:5]
    publish_signals(redis_client, signals, keys.DEFAULT_INPUT_STREAM, partitions=PARTITIONS)
    paused = StreamTransport(redis_client, "legacy", partition=partition)
    paused.acquire_lease(ttl_s=5.0, wait_s=0.0)
    deliveries = paused.read(10, 0)
    assert len(deliveries) == len(signals) > 0
    # Paused past its TTL: another replica took the partition (a new token in the partition's lease).
    redis_client.set(keys.scoped(keys.lease_key("legacy"), partition), "99 other-host 1")
    with pytest.raises(TransportFenced):
        paused.commit(CommitBatch(deliveries, [(d.entry_id, b"result") for d in deliveries]))
    assert redis_client.xlen(keys.scoped(keys.results_stream("legacy"), partition)) == 0
    other = all_partitions(PARTITIONS)[4]
    assert StreamTransport(redis_client, "legacy", partition=other).acquire_lease(5.0, 0.0) > 0, \
        "a lease is per partition: the other partitions are not fenced"
