"""The pairs export measures latency as the comparator does: never negative across two hosts' clocks."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pandas as pd
import pytest
import redis

from harness.comparator import ComparatorState
from harness.comparator.export import end_to_end_ms, export_pairs
from harness.contracts import SignalClustered, clustered_to_dict
from harness.transport import keys


def result(sid: str, worker: str, entered_ms: float, published_ms: float) -> dict[str, object]:
    return clustered_to_dict(SignalClustered(
        signal_id=sid, worker=worker, model_version="m", outcome="clustered", label="normal",
        is_new_cluster=False, entered_at_ms=entered_ms, published_at_ms=published_ms, processing_ms=0.1))


def test_a_result_published_before_its_entry_time_is_clamped_not_negative() -> None:
    assert end_to_end_ms({"entered_ms": 1000.0, "published_ms": 999.72}) == 0.001
    assert end_to_end_ms({"entered_ms": 1000.0, "published_ms": 1012.5}) == 12.5
    assert end_to_end_ms({"entered_ms": 1000.0}) is None


def test_exported_latencies_match_the_comparator_and_are_never_negative(
        redis_client: redis.Redis, tmp_path: Path) -> None:
    skewed = {"legacy": [result("s1", "legacy", 1000.0, 999.72), result("s2", "legacy", 2000.0, 2006.0)],
              "candidate": [result("s1", "candidate", 1000.0, 1003.0), result("s2", "candidate", 2000.0, 1999.9)]}
    for worker, results in skewed.items():
        for item in results:
            redis_client.xadd(keys.results_stream(worker), {keys.PAYLOAD_FIELD: msgpack.packb(item)})
    path = tmp_path / "pairs.csv"
    assert export_pairs(redis_client, "legacy", "candidate", path) == 2
    pairs = pd.read_csv(path).set_index("signal_id")
    assert (pairs[["legacy_latency_ms", "candidate_latency_ms"]] > 0).all().all()
    state = ComparatorState()
    for worker, results in skewed.items():
        state.ingest(worker, results, 0.0)
    latency = state.report()["latency_ms"]
    for side in ("legacy", "candidate"):
        exported = pairs[f"{side}_latency_ms"]
        assert exported.min() == 0.001
        # the comparator's percentiles are within 0.05 % of numpy's (linear) on the same values
        assert exported.quantile(0.5) == pytest.approx(latency[side]["p50"], rel=5e-4)
        assert exported.max() == pytest.approx(latency[side]["max"], rel=5e-4)


def labelled(sid: str, worker: str, label: str) -> dict[str, object]:
    return {**result(sid, worker, 1000.0, 1001.0), "label": label}


def test_pairs_are_mapped_with_the_named_experiments_comparison_not_the_default_one(
        redis_client: redis.Redis) -> None:
    from harness import experiments
    from harness.comparator.export import all_pairs

    streams = {"legacy": [labelled(f"s{i}", "legacy", "a" if i < 3 else "b") for i in range(6)],
               "candidate": [labelled(f"s{i}", "candidate", "x" if i < 3 else "y") for i in range(6)]}
    for worker, results in streams.items():
        for item in results:
            redis_client.xadd(keys.results_stream(worker), {keys.PAYLOAD_FIELD: msgpack.packb(item)})
    crossed = ComparatorState()  # the default experiment's comparison saw other data: x with b, y with a
    crossed.ingest("legacy", [labelled("t1", "legacy", "b"), labelled("t2", "legacy", "a")], 0.0)
    crossed.ingest("candidate", [labelled("t1", "candidate", "x"), labelled("t2", "candidate", "y")], 0.0)
    redis_client.set(keys.COMPARATOR_STATE_KEY, crossed.to_bytes())
    own = ComparatorState()
    for worker, results in streams.items():
        own.ingest(worker, results, 0.0)
    experiments.start(redis_client, "v2", "legacy", "candidate")
    redis_client.set(keys.experiment_state_key("v2"), own.to_bytes())

    pairs = all_pairs(redis_client, "legacy", "candidate", experiment="v2").set_index("signal_id")
    assert pairs.loc["s0", "candidate_label_mapped"] == "a" and pairs.loc["s5", "candidate_label_mapped"] == "b"
    assert pairs["agrees"].all()
    default = all_pairs(redis_client, "legacy", "candidate", experiment="default").set_index("signal_id")
    assert default.loc["s0", "candidate_label_mapped"] == "b", "the default experiment keeps its own mapping"
