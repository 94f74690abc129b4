"""Comparator shards on a real Redis: P = 4, two shards, one SIGKILLed mid-run; the merged report counts every
signal once and equals one shard's (owning every partition) and one in-process comparator's."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import msgpack
import redis

from harness.comparator import ComparatorState
from harness.comparator.service import live_report
from harness.partitions import all_partitions
from harness.producer.publisher import publish_signals
from harness.producer.synthetic import generate_signals
from harness.transport import keys
from tests.integration.test_replicas import owners
from tests.support.processes import ROOT, start_harness, start_worker, stop, wait_for
from tests.unit.test_comparator_merge import differences

PARTITIONS = 4
SIGNALS = 2_000
SHARD_ARGS = ("--partitions", str(PARTITIONS), "--lease-ttl", "2", "--checkpoint", "0.2")
# The comparison's sections (the unit merge test's exclusions apply); not the live run's lag or its experiment.
COMPARED = ("counts", "agreement", "latency_ms", "errors", "noise_floor")


def start_shard(redis_url: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    return start_harness(["comparator", "--redis-url", redis_url, *SHARD_ARGS, *extra], log=log)


def shard_owners(client: redis.Redis) -> dict[int, str]:
    return owners(client, keys.comparator_lease_name())  # its P (8) covers ours: absent leases are left out


def matched(client: redis.Redis) -> int:
    report = live_report(client, None, PARTITIONS)
    return 0 if report is None else int(report["counts"]["matched"])


def comparable(report: dict[str, object]) -> dict[str, object]:
    return {key: report[key] for key in COMPARED}


def reset_comparison(client: redis.Redis) -> None:
    """Forget the comparison (checkpoints, cursors, groups): a new comparator starts from the results again."""
    for partition in all_partitions(PARTITIONS):
        state = keys.scoped(keys.COMPARATOR_STATE_KEY, partition)
        client.delete(state, keys.checkpoint_cursors_key(state), keys.scoped(keys.COMPARATOR_SUMMARY_KEY, partition))
        for worker in ("legacy", "candidate"):
            stream = keys.scoped(keys.results_stream(worker), partition)
            client.xgroup_destroy(stream, keys.COMPARATOR_GROUP)
            client.delete(keys.reader_cursors_key(stream))


def one_state(client: redis.Redis) -> ComparatorState:
    """One comparator fed every partition's results, partition after partition."""
    state = ComparatorState()
    for partition in all_partitions(PARTITIONS):
        for worker in ("legacy", "candidate"):
            entries = client.xrange(keys.scoped(keys.results_stream(worker), partition))
            state.ingest(worker, [msgpack.unpackb(fields[keys.PAYLOAD_FIELD], raw=False) for _, fields in entries],
                         0.0)
        state.advance(0.0)
    return state


def test_two_comparator_shards_one_killed_count_every_signal_once_and_merge_to_one_comparators_report(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    signals = list(generate_signals(SIGNALS, 5, devices=16, samples=64))
    assert publish_signals(redis_client, signals, keys.DEFAULT_INPUT_STREAM, partitions=PARTITIONS) == SIGNALS
    worker_args = ("--partitions", str(PARTITIONS), "--exit-when-idle", "2", "--batch-size", "50")
    workers = [start_worker(side, redis_url, *worker_args, log=tmp_path / f"{side}.log")
               for side in ("legacy", "candidate")]
    first = start_shard(redis_url, tmp_path / "shard-a.log")
    second = start_shard(redis_url, tmp_path / "shard-b.log")
    processes = [*workers, first, second]
    try:
        wait_for(lambda: len(set(shard_owners(redis_client).values())) == 2, 60, "both shards owning partitions",
                 processes)
        wait_for(lambda: matched(redis_client) > 0, 120, "some pairs compared", processes)
        first.send_signal(signal.SIGKILL)
        first.wait()
        for worker in workers:
            assert worker.wait(timeout=300) == 0
        wait_for(lambda: matched(redis_client) >= SIGNALS, 120, "every pair compared by the live shard", [second])
        assert set(shard_owners(redis_client)) == set(range(PARTITIONS))
    finally:
        for process in processes:
            stop(process)
    cli = subprocess.run([sys.executable, "-m", "harness", "report", "--redis-url", redis_url, "--partitions",
                          str(PARTITIONS), "--format", "json"], capture_output=True, cwd=ROOT, check=True)
    sharded = json.loads(cli.stdout)
    counts = sharded["counts"]
    assert counts["matched"] == SIGNALS and counts["produced"] == SIGNALS and counts["produced_lost"] == 0
    assert counts["missing_legacy"] == counts["missing_candidate"] == counts["pending"] == 0
    assert counts["duplicates"] == 0  # the killed shard's partitions were not counted twice by its successor
    assert sharded["agreement"]["ari"] == 1.0

    single_process = one_state(redis_client).report(produced=SIGNALS)
    single_process["counts"]["produced_lost"] = 0
    assert differences(comparable(sharded), comparable(single_process)) == []

    reset_comparison(redis_client)  # the same data again, by one shard that owns every partition
    alone = start_shard(redis_url, tmp_path / "shard-alone.log", "--exit-when-idle", "2")
    assert alone.wait(timeout=300) == 0
    one_shard = live_report(redis_client, None, PARTITIONS)
    assert one_shard is not None
    assert differences(comparable(one_shard), comparable(sharded)) == []
