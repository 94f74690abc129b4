"""The comparator's Prometheus metrics, mirrored from a real ComparatorState's report at each checkpoint."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry

from harness.comparator import ComparatorState
from harness.metrics.comparator import SCOPES, ComparatorMetrics
from tests.unit.test_comparator_state import pairs

SIDES = ("legacy", "candidate")
AT_S = 1_700_000_000.0


@pytest.fixture()
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    assert found is not None, f"no sample {name}{labels}"
    return found


def lag(entries: int, seconds: float, stalled: bool = False) -> dict[str, dict[str, object]]:
    return {side: {"lag_entries": entries, "lag_s": seconds, "stalled": stalled and side == "candidate"}
            for side in SIDES}


def test_every_known_series_exists_before_the_first_checkpoint(registry: CollectorRegistry) -> None:
    ComparatorMetrics([*SIDES, "replica"], registry)
    for counter in ("harness_comparator_matched_total", "harness_comparator_duplicates_total",
                    "harness_comparator_late_total", "harness_comparator_pending_joins",
                    "harness_comparator_last_checkpoint_timestamp_seconds"):
        assert value(registry, counter) == 0
    for side in SIDES:
        assert value(registry, "harness_comparator_missing_total", side=side) == 0
        assert value(registry, "harness_comparator_results_total", side=side) == 0
        assert math.isnan(value(registry, "harness_comparator_end_to_end_p99_seconds", side=side))
    for side in (*SIDES, "replica"):
        assert value(registry, "harness_comparator_side_stalled", side=side) == 0
        assert math.isnan(value(registry, "harness_comparator_lag_entries", side=side))
    for scope in SCOPES:  # nothing measured yet: NaN, which no "below 0.98" alert takes for a failure
        assert math.isnan(value(registry, "harness_comparator_ari", scope=scope))
        assert math.isnan(value(registry, "harness_comparator_matched_accuracy_ratio", scope=scope))


def test_a_checkpoint_mirrors_counts_agreement_latency_and_lag(registry: CollectorRegistry) -> None:
    state = ComparatorState(sides=list(SIDES), window=4)
    pairs(state, ["a", "a", "b", "b", "c", "c"], ["x", "x", "y", "y", "z", "z"], latency=250.0)
    metrics = ComparatorMetrics(SIDES, registry)
    metrics.checkpointed(state.report(), lag(12, 1.5, stalled=True), AT_S)
    assert value(registry, "harness_comparator_matched_total") == 6
    assert value(registry, "harness_comparator_results_total", side="legacy") == 6
    for scope in ("overall", "window"):
        assert value(registry, "harness_comparator_ari", scope=scope) == pytest.approx(1.0)
        assert value(registry, "harness_comparator_nmi", scope=scope) == pytest.approx(1.0)
        assert value(registry, "harness_comparator_matched_accuracy_ratio", scope=scope) == pytest.approx(1.0)
    assert value(registry, "harness_comparator_agreement_pairs", scope="overall") == 6
    assert value(registry, "harness_comparator_agreement_pairs", scope="window") == 4
    assert value(registry, "harness_comparator_end_to_end_p99_seconds", side="candidate") == pytest.approx(0.25,
                                                                                                         rel=0.01)
    assert value(registry, "harness_comparator_lag_entries", side="legacy") == 12
    assert value(registry, "harness_comparator_lag_seconds", side="candidate") == 1.5
    assert value(registry, "harness_comparator_side_stalled", side="candidate") == 1
    assert value(registry, "harness_comparator_side_stalled", side="legacy") == 0
    assert value(registry, "harness_comparator_last_checkpoint_timestamp_seconds") == AT_S


def test_disagreement_shows_in_the_ratios(registry: CollectorRegistry) -> None:
    state = ComparatorState(sides=list(SIDES))
    pairs(state, ["a"] * 50 + ["b"] * 50, ["x"] * 75 + ["y"] * 25)
    ComparatorMetrics(SIDES, registry).checkpointed(state.report(), {}, AT_S)
    assert value(registry, "harness_comparator_matched_accuracy_ratio", scope="overall") == pytest.approx(0.75)
    assert value(registry, "harness_comparator_ari", scope="overall") < 0.98
    assert math.isnan(value(registry, "harness_comparator_lag_seconds", side="legacy"))  # no figures: unknown


def test_counters_start_at_the_restored_checkpoint_and_never_count_a_resume_twice(registry: CollectorRegistry) -> None:
    metrics = ComparatorMetrics(SIDES, registry)
    metrics.restored({"matched": 100, "missing_candidate": 2, "pending": 7})
    assert value(registry, "harness_comparator_matched_total") == 100
    assert value(registry, "harness_comparator_pending_joins") == 7
    state = ComparatorState(sides=list(SIDES))
    pairs(state, ["a"] * 40, ["x"] * 40)  # resumed from an older checkpoint: behind what was counted
    metrics.checkpointed(state.report(), {}, AT_S)
    assert value(registry, "harness_comparator_matched_total") == 100
    pairs(state, ["a"] * 70, ["x"] * 70, start=40)  # 110 now: 10 past the high-water mark
    metrics.checkpointed(state.report(), {}, AT_S + 1)
    assert value(registry, "harness_comparator_matched_total") == 110
    assert value(registry, "harness_comparator_missing_total", side="candidate") == 2
