"""Latency histogram accuracy, merging and persistence; the reservoir sample's determinism."""

from __future__ import annotations

import numpy as np
import pytest

from harness.comparator.latency import LatencyHistogram
from harness.comparator.reservoir import Reservoir


@pytest.mark.parametrize("q", [1, 10, 50, 90, 95, 99, 99.9])
def test_percentiles_are_within_0_2_percent_of_numpy(q: float) -> None:
    values = np.random.default_rng(7).lognormal(mean=2.0, sigma=1.0, size=50_000)
    hist = LatencyHistogram()
    for batch in np.array_split(values, 37):
        hist.record_many(batch)
    assert hist.percentile(q) == pytest.approx(np.percentile(values, q), rel=2e-3)


def test_max_count_and_extremes_are_exact() -> None:
    values = np.array([0.25, 3.5, 1234.5678, 12.0])
    hist = LatencyHistogram()
    hist.record_many(values)
    assert hist.count == 4
    assert hist.max == pytest.approx(1234.5678, rel=1e-12)
    assert hist.percentile(100) == pytest.approx(1234.5678, rel=1e-12)
    assert hist.percentile(0) == pytest.approx(0.25, rel=1e-12)


def test_an_empty_histogram_has_no_percentiles() -> None:
    hist = LatencyHistogram()
    assert hist.percentile(50) is None
    assert hist.summary() == {"p50": None, "p95": None, "p99": None, "max": None}


def test_values_outside_one_microsecond_to_one_hour_are_clamped() -> None:
    hist = LatencyHistogram()
    hist.record_many(np.array([-5.0, 0.0, 1e12]))
    assert hist.count == 3
    assert hist.percentile(0) == pytest.approx(0.001)
    assert hist.max == pytest.approx(3_600_000.0)


def test_merge_equals_recording_everything_in_one() -> None:
    rng = np.random.default_rng(1)
    first, second = rng.exponential(10, 1_000), rng.exponential(50, 3_000)
    merged, whole = LatencyHistogram(), LatencyHistogram()
    merged.record_many(first)
    other = LatencyHistogram()
    other.record_many(second)
    merged.merge(other)
    whole.record_many(np.concatenate([first, second]))
    assert merged == whole
    assert merged.percentile(99) == whole.percentile(99)


def test_bytes_round_trip_is_exact_and_sparse() -> None:
    hist = LatencyHistogram()
    hist.record_many(np.random.default_rng(3).uniform(1, 100, 10_000))
    payload = hist.to_bytes()
    assert LatencyHistogram.from_bytes(payload) == hist
    assert len(payload) < 64_000
    assert LatencyHistogram.from_bytes(LatencyHistogram().to_bytes()) == LatencyHistogram()


def test_reservoir_is_bounded_and_independent_of_batching() -> None:
    values = np.arange(10_000, dtype=np.float64)
    whole, batched = Reservoir(500, seed=3), Reservoir(500, seed=3)
    whole.offer_many(values)
    for batch in np.array_split(values, 71):
        batched.offer_many(batch)
    assert whole.sample().size == 500
    assert np.array_equal(whole.sample(), batched.sample())
    assert not np.array_equal(whole.sample(), Reservoir(500, seed=4).sample())


def test_reservoir_keeps_everything_until_full_then_samples_uniformly() -> None:
    small = Reservoir(100)
    small.offer_many(np.arange(40.0))
    assert np.array_equal(small.sample(), np.arange(40.0))
    big = Reservoir(2_000, seed=11)
    big.offer_many(np.arange(200_000.0))
    sample = big.sample()
    # a uniform sample of 0..199,999: mean near 100,000 and every decile represented
    assert abs(sample.mean() - 100_000) < 4_000
    assert np.all(np.bincount((sample // 20_000).astype(int), minlength=10) > 120)


def test_reservoir_round_trip_continues_identically() -> None:
    values = np.random.default_rng(5).normal(size=6_000)
    straight, restarted = Reservoir(300, seed=9), Reservoir(300, seed=9)
    straight.offer_many(values)
    restarted.offer_many(values[:2_500])
    restarted = Reservoir.from_wire(restarted.to_wire())
    restarted.offer_many(values[2_500:])
    assert np.array_equal(straight.sample(), restarted.sample())
