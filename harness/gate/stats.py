"""The gate's statistics: Wilson intervals, a one-sided two-proportion z-test, Mann–Whitney U with effect size."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class IncreaseTest:
    """H0: candidate rate - baseline rate <= margin, against H1: it is larger (one-sided)."""

    baseline_rate: float
    candidate_rate: float
    margin: float
    z: float
    p_value: float

    @property
    def increase(self) -> float:
        return self.candidate_rate - self.baseline_rate

    def significant(self, confidence: float) -> bool:
        return self.p_value < 1.0 - confidence


@dataclass(frozen=True)
class SlowerTest:
    """Mann–Whitney U of candidate against baseline latencies, H1: the candidate's are larger."""

    u: float  # the candidate's U statistic
    p_value: float
    cliffs_delta: float  # P(candidate > baseline) - P(candidate < baseline), in [-1, 1]
    n_candidate: int
    n_baseline: int

    @property
    def common_language(self) -> float:
        """P(a random candidate latency > a random baseline one), ties counting one half."""
        return (self.cliffs_delta + 1.0) / 2.0

    def significant(self, confidence: float) -> bool:
        return self.p_value < 1.0 - confidence


def wilson_interval(successes: int, total: int, confidence: float) -> tuple[float, float]:
    """Two-sided Wilson score interval of a proportion; (0, 1) when there is no data."""
    if total <= 0:
        return 0.0, 1.0
    interval = stats.binomtest(successes, total).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def increase_test(baseline: int, baseline_total: int, candidate: int, candidate_total: int,
                  margin: float = 0.0) -> IncreaseTest:
    """One-sided two-proportion z-test that the candidate's rate exceeds the baseline's by more than `margin`.

    With no margin the standard error is pooled (the classic test of equal rates); with a margin it is
    unpooled, as the rates are not equal under H0. A zero standard error decides by the point estimate.
    """
    if baseline_total <= 0 or candidate_total <= 0:
        raise ValueError("both sides need at least one outcome")
    p1, p2 = baseline / baseline_total, candidate / candidate_total
    if margin == 0.0:
        pooled = (baseline + candidate) / (baseline_total + candidate_total)
        se = math.sqrt(pooled * (1 - pooled) * (1 / baseline_total + 1 / candidate_total))
    else:
        se = math.sqrt(p1 * (1 - p1) / baseline_total + p2 * (1 - p2) / candidate_total)
    excess = p2 - p1 - margin
    if se == 0.0:
        z = math.copysign(math.inf, excess) if excess else 0.0
        p_value = 0.0 if excess > 0 else 1.0
    else:
        z = excess / se
        p_value = float(stats.norm.sf(z))
    return IncreaseTest(p1, p2, margin, z, p_value)


def slower_test(candidate: Sequence[float], baseline: Sequence[float]) -> SlowerTest:
    """Mann–Whitney U (scipy, one-sided 'greater', tie-corrected) and Cliff's delta from U."""
    x = np.asarray(candidate, dtype=np.float64)
    y = np.asarray(baseline, dtype=np.float64)
    if x.size == 0 or y.size == 0:
        raise ValueError("both sides need latency samples")
    result = stats.mannwhitneyu(x, y, alternative="greater")
    u = float(result.statistic)
    return SlowerTest(u, float(result.pvalue), 2.0 * u / (x.size * y.size) - 1.0, int(x.size), int(y.size))
