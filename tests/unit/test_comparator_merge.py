"""Comparator shards: states fed one partition each, merged, report what one state fed everything reports."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

import pytest

from harness.comparator import ComparatorState
from harness.comparator.reservoir import Reservoir
from harness.contracts import DEFAULT_LABEL, Outcome, SignalClustered, clustered_to_dict
from harness.partitions import partition_index

PARTITIONS = 4
SIGNALS = 6_000
# What a merged report cannot share with one comparator's, and why:
EXCLUDED = {
    ("generated_at",): "the time the report was made",
    ("headline",): "a sentence built from the figures compared here",
    ("latency_ms", "samples"): "a random sample's content (its merge rule is tested on its own)",
    ("agreement", "truth", "sample", "kind"): "a random sample's content",
    ("agreement", "truth", "sample", "legacy"): "a random sample's content",
    ("agreement", "truth", "sample", "candidate"): "a random sample's content",
    ("agreement", "window", "ari"): "the recent window: shards share no one order of arrival",
    ("agreement", "window", "nmi"): "the recent window",
    ("agreement", "window", "matched_accuracy"): "the recent window",
    ("agreement", "series"): "points in time of the recent window, merged by time bucket",
}


def result(index: int, worker: str, rng: random.Random, device: str, kind: str | None, label: str | None,
           outcome: Outcome, redelivered: bool = False) -> dict[str, Any]:
    entered = 1_000_000.0 + index
    return clustered_to_dict(SignalClustered(
        signal_id=f"s{index}", worker=worker, model_version="m1", outcome=outcome,
        label=label if outcome == "clustered" else None, is_new_cluster=False, entered_at_ms=entered,
        published_at_ms=entered + rng.lognormvariate(1.5 if worker == "legacy" else 1.2, 0.8),
        processing_ms=rng.uniform(0.1, 3.0), device_id=device, true_kind=kind,
        error_type=rng.choice(["ValueError", "Timeout"]) if outcome == "error" else None,
        error_message="boom" if outcome == "error" else None, redelivered=redelivered,
        input_entry_id=f"{int(entered)}-0"))


def generated(seed: int = 7) -> dict[str, list[dict[str, Any]]]:
    """Each side's results in input order: devices, true kinds, a few splits and merges, errors, declines,
    results one side never gives, redelivered duplicates and a malformed one."""
    rng = random.Random(seed)
    sides: dict[str, list[dict[str, Any]]] = {"legacy": [], "candidate": []}
    for index in range(SIGNALS):
        device = f"dev-{rng.randrange(17)}"
        kind = rng.choice([None, "normal", "normal", "normal", "spike", "drop", "noise"])
        base = "normal" if kind in (None, "normal") else kind
        legacy_label = DEFAULT_LABEL if base == "normal" else f"{device}:{base}"
        candidate_label = legacy_label if base == "normal" else f"c-{device}-{base}"
        if rng.random() < 0.04:  # a disagreement: another cluster of the device
            candidate_label = f"c-{device}-{rng.choice(['spike', 'drop', 'other'])}"
        for side, label in (("legacy", legacy_label), ("candidate", candidate_label)):
            if rng.random() < (0.01 if side == "legacy" else 0.02):
                continue  # never answered on this side: missing
            roll = rng.random()
            outcome: Outcome = "error" if roll < 0.03 else "unclustered" if roll < 0.05 else "clustered"
            sides[side].append(result(index, side, rng, device, kind, label, outcome))
            if rng.random() < 0.005:
                sides[side].append(result(index, side, rng, device, kind, label, outcome, redelivered=True))
    sides["candidate"].insert(100, {"id": None, "device": "dev-1"})  # breaks the contract: rejected
    return sides


def batches(records: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(records), size):
        yield records[start:start + size]


def feed(single: ComparatorState, shards: list[ComparatorState], sides: dict[str, list[dict[str, Any]]]) -> None:
    """The same batches to the single state and, split by the device's partition, to the shards; legacy in
    smaller batches than the candidate, so the candidate runs ahead (pending joins, awaiting results)."""
    rounds = {"legacy": list(batches(sides["legacy"], 137)), "candidate": list(batches(sides["candidate"], 251))}
    now_ms = 0.0
    for at in range(max(map(len, rounds.values()))):
        now_ms += 50.0
        for side, side_batches in rounds.items():
            batch = side_batches[at] if at < len(side_batches) else []
            if not batch:
                continue
            single.ingest(side, batch, now_ms)
            for index, shard in enumerate(shards):
                part = [record for record in batch if partition_index(record["device"], PARTITIONS) == index]
                if part:
                    shard.ingest(side, part, now_ms)
        for state in (single, *shards):
            state.advance(now_ms)
    for state in (single, *shards):
        state.expire(now_ms + 10 * 60_000.0)  # the end of the run: every signal still pending is missing


def differences(merged: Any, single: Any, path: tuple[str, ...] = ()) -> list[str]:
    """Every place where the two reports differ, numbers to 1e-9; EXCLUDED paths skipped."""
    if path in EXCLUDED:
        return []
    if isinstance(single, dict):
        if not isinstance(merged, dict) or set(merged) != set(single):
            return [f"{'.'.join(path)}: keys {sorted(merged) if isinstance(merged, dict) else merged} "
                    f"!= {sorted(single)}"]
        return [found for key in single for found in differences(merged[key], single[key], (*path, str(key)))]
    if isinstance(single, list):
        if not isinstance(merged, list) or len(merged) != len(single):
            return [f"{'.'.join(path)}: {merged} != {single}"]
        return [found for at, (a, b) in enumerate(zip(merged, single, strict=True))
                for found in differences(a, b, (*path, str(at)))]
    if isinstance(single, float) and isinstance(merged, int | float) and not isinstance(merged, bool):
        same = math.isclose(merged, single, rel_tol=1e-9, abs_tol=1e-9)
    else:
        same = type(merged) is type(single) and merged == single
    return [] if same else [f"{'.'.join(path)}: {merged!r} != {single!r}"]


@pytest.fixture(scope="module")
def fed() -> tuple[ComparatorState, list[ComparatorState]]:
    single = ComparatorState(max_pending=1_000_000, sample_size=500)
    shards = [ComparatorState(max_pending=1_000_000, sample_size=500) for _ in range(PARTITIONS)]
    feed(single, shards, generated())
    return single, shards


def test_the_merged_report_of_partition_shards_equals_one_comparators_report(
    fed: tuple[ComparatorState, list[ComparatorState]],
) -> None:
    single, shards = fed
    # as `harness report` does: every partition's checkpoint read back, then merged
    merged = ComparatorState.merged([ComparatorState.from_bytes(shard.to_bytes()) for shard in shards])
    expected, got = single.report(produced=SIGNALS), merged.report(produced=SIGNALS)
    assert differences(got, expected) == []
    counts = expected["counts"]
    # the data exercised what the merge must add up
    assert all(shard.report()["counts"]["matched"] > 0 for shard in shards)
    assert counts["missing_legacy"] > 0 and counts["missing_candidate"] > 0 and counts["duplicates"] > 0
    assert counts["rejected"] == 1 and counts["pending"] == 0 and counts["late"] == 0
    answered = {side: {r["id"] for r in records if r["id"]} for side, records in generated().items()}
    assert counts["matched"] == len(answered["legacy"] & answered["candidate"])
    assert counts["missing_legacy"] == len(answered["candidate"] - answered["legacy"])
    assert expected["errors"]["only_legacy"] > 0 and expected["errors"]["both_unclustered"] >= 0
    assert expected["agreement"]["truth"]["kinds"] == 4 and expected["agreement"]["devices"] == 17
    assert 0.5 < expected["agreement"]["ari"] < 1.0
    assert got["agreement"]["truth"]["sample"]["seen"] == expected["agreement"]["truth"]["sample"]["seen"]
    assert got["agreement"]["window"]["pairs"] == expected["agreement"]["window"]["pairs"]


def test_the_merged_label_mapping_is_one_comparators(fed: tuple[ComparatorState, list[ComparatorState]]) -> None:
    single, shards = fed
    assert ComparatorState.merged(shards).label_mapping() == single.label_mapping()


def test_merging_is_the_same_in_any_order(fed: tuple[ComparatorState, list[ComparatorState]]) -> None:
    _, shards = fed
    forward = ComparatorState.merged(shards).report(generated_at="x")
    backward = ComparatorState.merged(shards[::-1]).report(generated_at="x")
    assert differences(backward, forward) == []


def test_merged_reservoirs_hold_a_sample_of_both_streams_and_stay_aligned() -> None:
    small = [Reservoir(100, seed=3) for _ in range(2)]
    large = [Reservoir(100, seed=3) for _ in range(2)]
    for reservoir in small:
        reservoir.offer_many(range(50))
    for reservoir in large:
        reservoir.offer_many(range(1_000, 1_900))
    small[0].merge(large[0])
    small[1].merge(large[1])
    sample = small[0].sample()
    assert small[0].seen == 950 and sample.size == 100
    assert set(sample.tolist()) <= set(range(50)) | set(range(1_000, 1_900))
    assert 0 < int((sample < 50).sum()) < 20  # about 50/950 of the draws come from the small stream
    assert sample.tolist() == small[1].sample().tolist()  # same seed and counts: the same choices


def test_states_of_different_sides_do_not_merge() -> None:
    with pytest.raises(ValueError, match="cannot merge"):
        ComparatorState().merge(ComparatorState(sides=("legacy", "candidate", "replica")))
