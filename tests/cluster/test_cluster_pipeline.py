"""The whole pipeline on a real 3-master Redis Cluster: P = 8 partitions, two replicas per worker and a
comparator shard; one replica SIGKILLed and one master killed mid-run. Counts lost, doubled and production
results, and the comparator's merged report agrees."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import redis

from harness.comparator.service import live_report
from harness.partitions import all_partitions
from harness.producer.publisher import publish_signals
from harness.producer.synthetic import generate_signals
from harness.transport import keys
from harness.transport.connection import redis_client
from tests.support.processes import ROOT, start_harness, start_worker, stop, wait_for
from tests.support.redis_cluster import LocalRedisCluster

PARTITIONS = 8
RATE = 400
WORKERS = ("legacy", "candidate")


def per_partition(client: redis.Redis, key: str) -> list[str]:
    return [keys.scoped(key, partition) for partition in all_partitions(PARTITIONS)]


def input_entries(client: redis.Redis) -> set[str]:
    return {f"{stream}/{entry.decode()}" for stream in per_partition(client, keys.DEFAULT_INPUT_STREAM)
            for entry, _ in client.xrange(stream)}


def answered(client: redis.Redis, worker: str) -> Counter[str]:
    """Input entry -> results of `worker` for it (a result names its input entry)."""
    from harness.contracts import decode_clustered

    found: Counter[str] = Counter()
    for partition in all_partitions(PARTITIONS):
        stream = keys.scoped(keys.DEFAULT_INPUT_STREAM, partition)
        for _, fields in client.xrange(keys.scoped(keys.results_stream(worker), partition)):
            found[f"{stream}/{decode_clustered(fields[keys.PAYLOAD_FIELD]).input_entry_id}"] += 1
    return found


def production(client: redis.Redis) -> Counter[str]:
    found: Counter[str] = Counter()
    for partition in all_partitions(PARTITIONS):
        stream = keys.scoped(keys.DEFAULT_INPUT_STREAM, partition)
        for _, fields in client.xrange(keys.scoped(keys.PRODUCTION_STREAM, partition)):
            found[f"{stream}/{fields[b'entry'].decode()}"] += 1
    return found


def compared(client: redis.Redis) -> int:
    report = live_report(client, None, PARTITIONS)
    return 0 if report is None else int(report["counts"]["matched"])


def test_the_pipeline_survives_a_replica_kill_and_a_master_failover_on_a_redis_cluster(
    redis_cluster: LocalRedisCluster, redis_cluster_url: str, tmp_path: Path
) -> None:
    client = redis_client(redis_cluster_url)
    stopping, acknowledged = threading.Event(), [0]

    def produce() -> None:
        signals = itertools.takewhile(lambda _: not stopping.is_set(), generate_signals(100_000, 5, samples=64))
        acknowledged[0] = publish_signals(redis_client(redis_cluster_url), signals, keys.DEFAULT_INPUT_STREAM,
                                          rate=RATE, partitions=PARTITIONS)

    common = ("--partitions", str(PARTITIONS), "--lease-ttl", "3", "--batch-size", "100")
    processes = {f"{worker}-{n}": start_worker(worker, redis_cluster_url, *common,
                                               *(("--init-primary",) if worker == "legacy" else ()),
                                               log=tmp_path / f"{worker}-{n}.log")
                 for worker in WORKERS for n in (1, 2)}
    processes["comparator"] = start_harness(["comparator", "--redis-url", redis_cluster_url, "--partitions",
                                             str(PARTITIONS), "--lease-ttl", "3", "--checkpoint", "0.5"],
                                            log=tmp_path / "comparator.log")
    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    live = list(processes.values())
    try:
        wait_for(lambda: sum(production(client).values()) >= 1000, 120, "production flowing", live)
        killed = processes.pop("legacy-1")
        killed.send_signal(signal.SIGKILL)  # a replica dies mid-batch: its partitions move
        killed.wait()
        live = list(processes.values())
        wait_for(lambda: sum(production(client).values()) >= 2500, 120, "production after the replica kill", live)
        master = redis_cluster.kill_master_of(keys.scoped(keys.DEFAULT_INPUT_STREAM, all_partitions(PARTITIONS)[0]))
        redis_cluster.wait_for_failover(master)
        before = sum(production(client).values())
        wait_for(lambda: sum(production(client).values()) >= before + 1500, 120, "production after the failover",
                 live)
        stopping.set()
        producer.join(timeout=60)
        inputs = input_entries(client)
        wait_for(lambda: all(len(answered(client, worker)) >= len(inputs) for worker in WORKERS)
                 and len(production(client)) >= len(inputs), 180, "every surviving signal answered", live)
        wait_for(lambda: compared(client) >= len(inputs), 120, "the comparator caught up", live)
    finally:
        stopping.set()
        producer.join(timeout=60)
        for process in processes.values():  # also when a wait above failed: nothing outlives the test
            stop(process)
    lost_counted = sum(int(client.get(key) or 0) for key in per_partition(client, keys.PRODUCED_LOST_KEY))
    counts = {
        "acknowledged_to_producer": acknowledged[0], "input_surviving": len(inputs),
        "input_lost_in_failover": acknowledged[0] - len(inputs), "input_lost_counted": lost_counted,
        **{f"{worker}_results": sum(answered(client, worker).values()) for worker in WORKERS},
        **{f"{worker}_doubled": sum(n - 1 for n in answered(client, worker).values() if n > 1) for worker in WORKERS},
        **{f"{worker}_missing": len(inputs - set(answered(client, worker))) for worker in WORKERS},
        "production_results": sum(production(client).values()),
        "production_doubled": sum(n - 1 for n in production(client).values() if n > 1),
        "production_missing": len(inputs - set(production(client))),
    }
    (tmp_path / "counts.json").write_text(json.dumps(counts))
    print("cluster pipeline counts:", json.dumps(counts))
    assert counts["input_lost_in_failover"] == counts["input_lost_counted"], "a loss went uncounted"
    for worker in WORKERS:
        assert counts[f"{worker}_missing"] == 0 and counts[f"{worker}_doubled"] == 0, counts
    assert counts["production_missing"] == 0 and counts["production_doubled"] == 0, counts
    shown = subprocess.run([sys.executable, "-m", "harness", "report", "--partitions", str(PARTITIONS), "--format",
                            "json"], capture_output=True, text=True, cwd=ROOT, timeout=120,
                           env={**os.environ, "HARNESS_REDIS_URL": redis_cluster_url})
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)["counts"]
    assert report["matched"] == len(inputs) and report["duplicates"] == 0, report
    assert report["missing_legacy"] == report["missing_candidate"] == 0, report
    assert report["produced_lost"] == counts["input_lost_counted"]
