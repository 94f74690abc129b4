"""`harness disagreements` and the HTML report's curves with a partitioned input (P = 2), on a real Redis with real
workers: pairs from every partition, one label mapping for all, samples from each signal's partition's stream."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import redis
from scipy.optimize import linear_sum_assignment

from harness.comparator.disagreements import html_panels
from harness.contracts import decode_clustered
from harness.partitions import all_partitions, partition_index
from harness.producer.publisher import publish_signals
from harness.producer.synthetic import generate_signals
from harness.transport import keys
from tests.integration.test_disagreements import harness
from tests.support.processes import start_worker, stop

PARTITIONS = 2


def labels(client: redis.Redis, worker: str) -> dict[str, str]:
    """Signal id -> label of every clustered result, read straight from each partition's results stream."""
    found: dict[str, str] = {}
    for part in all_partitions(PARTITIONS):
        for _, fields in client.xrange(keys.scoped(keys.results_stream(worker), part)):
            result = decode_clustered(fields[keys.PAYLOAD_FIELD])
            if result.outcome == "clustered" and result.label is not None:
                found.setdefault(result.signal_id, result.label)
    return found


def off_the_best_matching(legacy: dict[str, str], candidate: dict[str, str]) -> int:
    both = sorted(legacy.keys() & candidate.keys())
    table = pd.crosstab(pd.Series([legacy[s] for s in both]), pd.Series([candidate[s] for s in both]))
    rows, cols = linear_sum_assignment(table.to_numpy(), maximize=True)
    return len(both) - int(table.to_numpy()[rows, cols].sum())


def test_disagreements_and_curves_cover_every_partition_under_one_mapping(
        redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    signals = {s.signal_id: s for s in generate_signals(400, 3, devices=8, samples=64)}
    assert publish_signals(redis_client, list(signals.values()), keys.DEFAULT_INPUT_STREAM, partitions=PARTITIONS)
    args = ("--partitions", str(PARTITIONS), "--exit-when-idle", "2", "--batch-size", "50")
    workers = [start_worker("legacy", redis_url, *args, log=tmp_path / "legacy.log"),
               # labels by true kind: it disagrees with legacy's per-device clusters, across partitions
               start_worker("tests.support.algorithms:oracle", redis_url, "--name", "candidate", *args,
                            log=tmp_path / "candidate.log")]
    try:
        for worker in workers:
            assert worker.wait(timeout=300) == 0
    finally:
        for worker in workers:
            stop(worker)

    rows = json.loads(harness("disagreements", "--redis-url", redis_url, "--partitions", str(PARTITIONS),
                              "--limit", "0", "--format", "json", "--with-samples").stdout)
    assert len(rows) == off_the_best_matching(labels(redis_client, "legacy"), labels(redis_client, "candidate")) > 0
    assert {partition_index(row["device_id"], PARTITIONS) for row in rows} == set(range(PARTITIONS))
    mapping: dict[str, str] = {}
    for row in rows:
        assert row["candidate_label_mapped"] != row["legacy_label"]
        # one mapping for every partition: a candidate label maps to the same legacy label everywhere
        mapped = row["candidate_label_mapped"]
        assert mapping.setdefault(row["candidate_label"], mapped) == mapped
        original = signals[row["signal_id"]].samples
        assert np.allclose(row["samples"], original), f"{row['signal_id']}: samples of its partition's stream"
    unpartitioned = json.loads(harness("disagreements", "--redis-url", redis_url, "--limit", "0",
                                       "--format", "json").stdout)
    assert unpartitioned == [], "without --partitions the unpartitioned streams hold nothing"

    panels = html_panels(redis_client, "legacy", "candidate", keys.DEFAULT_INPUT_STREAM, None, 4, PARTITIONS)
    assert len(panels) == 4
    for panel in panels:
        assert panel.signal.values is not None
        assert np.allclose(panel.signal.values, signals[panel.signal.signal_id].samples)
