"""The gate's statistics agree with scipy and with the textbook formulas on known inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from harness.gate.stats import increase_test, slower_test, wilson_interval


@pytest.mark.parametrize(("successes", "total", "confidence"), [
    (0, 10, 0.95), (3, 10, 0.95), (10, 10, 0.95), (37, 5_000, 0.95), (250, 1_000, 0.99), (1, 2, 0.90),
])  # fmt: skip
def test_wilson_interval_matches_scipy(successes: int, total: int, confidence: float) -> None:
    expected = stats.binomtest(successes, total).proportion_ci(confidence_level=confidence, method="wilson")
    low, high = wilson_interval(successes, total, confidence)
    assert low == pytest.approx(expected.low, abs=1e-12)
    assert high == pytest.approx(expected.high, abs=1e-12)


def test_wilson_interval_without_data_is_the_whole_unit_interval() -> None:
    assert wilson_interval(0, 0, 0.95) == (0.0, 1.0)


def test_increase_test_is_the_pooled_one_sided_z_test() -> None:
    # legacy 12 errors in 2,000; candidate 31 in 2,100
    x1, n1, x2, n2 = 12, 2_000, 31, 2_100
    p1, p2, pooled = x1 / n1, x2 / n2, (x1 + x2) / (n1 + n2)
    z = (p2 - p1) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    test = increase_test(x1, n1, x2, n2)
    assert test.z == pytest.approx(z, rel=1e-12)
    assert test.p_value == pytest.approx(stats.norm.sf(z), rel=1e-12)
    assert test.increase == pytest.approx(p2 - p1)
    assert test.significant(0.95) and not test.significant(0.999)


def test_increase_test_squared_is_the_uncorrected_chi_square_test() -> None:
    x1, n1, x2, n2 = 40, 1_000, 61, 1_000
    chi2, p_two_sided, _, _ = stats.chi2_contingency([[x1, n1 - x1], [x2, n2 - x2]], correction=False)
    test = increase_test(x1, n1, x2, n2)
    assert test.z**2 == pytest.approx(chi2, rel=1e-9)
    assert test.p_value == pytest.approx(p_two_sided / 2, rel=1e-9)  # one-sided, in the direction observed


def test_increase_test_with_a_margin_uses_the_unpooled_standard_error() -> None:
    x1, n1, x2, n2, margin = 50, 1_000, 80, 1_000, 0.01
    p1, p2 = x1 / n1, x2 / n2
    z = (p2 - p1 - margin) / math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    test = increase_test(x1, n1, x2, n2, margin)
    assert test.z == pytest.approx(z, rel=1e-12)
    assert test.p_value == pytest.approx(stats.norm.sf(z), rel=1e-12)


def test_a_decrease_is_never_significant() -> None:
    assert increase_test(30, 1_000, 5, 1_000).p_value > 0.99


def test_without_variance_the_point_estimate_decides() -> None:
    assert increase_test(0, 100, 0, 100).p_value == 1.0
    everything_fails = increase_test(0, 100, 100, 100, margin=0.5)
    assert everything_fails.p_value == 0.0 and everything_fails.z == math.inf


def test_slower_test_is_scipy_mann_whitney_one_sided() -> None:
    rng = np.random.default_rng(3)
    legacy = rng.gamma(4.0, 5.0, 400)
    candidate = rng.gamma(4.0, 5.5, 300)
    expected = stats.mannwhitneyu(candidate, legacy, alternative="greater")
    test = slower_test(candidate.tolist(), legacy.tolist())
    assert test.u == pytest.approx(expected.statistic)
    assert test.p_value == pytest.approx(expected.pvalue, rel=1e-12)
    assert (test.n_candidate, test.n_baseline) == (300, 400)


def test_cliffs_delta_is_the_share_of_slower_minus_faster_pairs() -> None:
    candidate = [5.0, 7.0, 7.0, 9.0, 12.0, 3.0]
    legacy = [4.0, 7.0, 8.0, 2.0, 6.0]
    greater = sum(c > b for c in candidate for b in legacy)
    smaller = sum(c < b for c in candidate for b in legacy)
    pairs = len(candidate) * len(legacy)
    test = slower_test(candidate, legacy)
    assert test.cliffs_delta == pytest.approx((greater - smaller) / pairs)
    assert test.common_language == pytest.approx((greater + 0.5 * (pairs - greater - smaller)) / pairs)


def test_ties_everywhere_mean_no_effect_and_no_evidence() -> None:
    test = slower_test([10.0] * 50, [10.0] * 60)
    assert test.cliffs_delta == 0.0
    assert not test.significant(0.95)


def test_slower_test_needs_samples_on_both_sides() -> None:
    with pytest.raises(ValueError, match="latency samples"):
        slower_test([], [1.0])
