"""Gate rules judged on the ground truth: the candidate's truth ARI, and a paired bootstrap against the control.

Both read `agreement.truth` (docs/report-schema.md), where declined, failed and missing signals count too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix

from harness.gate.spec import Param, Rule, RuleSpec, digits, get, missing_value, number, parse_unit, result
from harness.gate.verdict import RuleResult

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

BOOTSTRAP_SEED = 14  # fixed: the same report and policy always give the same verdict
MIN_RESAMPLES = 100


def parse_resamples(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < MIN_RESAMPLES:
        raise ValueError(f"an integer >= {MIN_RESAMPLES}")
    return value


@dataclass(frozen=True)
class PairedBootstrap:
    """Candidate minus control truth ARI, and its one-sided lower confidence bound."""

    difference: float  # over the whole run
    lower: float
    resamples: int
    signals: int  # in the resampled sample


def weighted_ari(truth: Ints, labels: Ints, weights: Floats) -> Floats:
    """sklearn's adjusted_rand_score(truth, labels) once per row of `weights` (how often each signal is drawn)."""
    n = float(weights[0].sum())
    cells = _indicator(np.unique(np.stack([truth, labels]), axis=1, return_inverse=True)[1].ravel())
    rows = _indicator(np.unique(truth, return_inverse=True)[1].ravel())
    cols = _indicator(np.unique(labels, return_inverse=True)[1].ravel())
    squares = [np.square(np.asarray(weights @ matrix, dtype=np.float64)).sum(axis=1) for matrix in (cells, rows, cols)]
    sum_squares, row_squares, col_squares = squares
    tp, fp, fn = sum_squares - n, col_squares - sum_squares, row_squares - sum_squares
    tn = n * n - fp - fn - sum_squares
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))
    return np.where((fn == 0) & (fp == 0), 1.0, value)


def _indicator(codes: npt.NDArray[np.intp]) -> csr_matrix:
    """signals × groups, 1 where a signal is in a group: weights @ it sums the weights per group."""
    n = codes.size
    return csr_matrix((np.ones(n), (np.arange(n), codes)), shape=(n, int(codes.max()) + 1))


def paired_bootstrap(truth: Ints, control: Ints, candidate: Ints, *, difference: float, confidence: float,
                     resamples: int, seed: int = BOOTSTRAP_SEED) -> PairedBootstrap:
    """Resample signals (with their truth and both labels together) and bound candidate - control from below.

    The spread is measured on the sample and applied around the whole run's `difference`: with a
    sample smaller than the run, the bound is wider than the run's own, so it errs against the candidate.
    """
    n = truth.size
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    offsets = (np.arange(resamples)[:, None] * n + draws).ravel()
    weights = np.bincount(offsets, minlength=resamples * n).reshape(resamples, n).astype(np.float64)
    differences = weighted_ari(truth, candidate, weights) - weighted_ari(truth, control, weights)
    ones = np.ones((1, n))
    on_sample = float(weighted_ari(truth, candidate, ones)[0] - weighted_ari(truth, control, ones)[0])
    lower = difference + float(np.quantile(differences, 1.0 - confidence)) - on_sample
    return PairedBootstrap(difference, lower, resamples, n)


def _sample(truth: Mapping[str, Any]) -> tuple[Ints, Ints, Ints] | None:
    sample = truth.get("sample")
    if not isinstance(sample, Mapping):
        return None
    columns = [sample.get(key) for key in ("kind", "legacy", "candidate")]
    if not all(isinstance(column, list) for column in columns) or len({len(c or ()) for c in columns}) != 1:
        return None
    try:
        kind, control, candidate = (np.asarray(column, dtype=np.int64) for column in columns)
    except (TypeError, ValueError, OverflowError):
        return None
    return (kind, control, candidate) if kind.size >= 2 else None


def _truth_ari(rule: Rule, report: Mapping[str, Any], confidence: float) -> RuleResult:
    bound = rule.number("min")
    truth = get(report, "agreement", "truth")
    value = number(truth.get("candidate_ari")) if isinstance(truth, Mapping) else None
    if value is None:
        return missing_value(rule, f">= {bound:.3f}", "no signal with a true kind was scored")
    shown_value, shown_bound = digits(value, bound)
    ok = value >= bound
    return result(rule, ok, value, f">= {shown_bound}", f"{shown_value} {'>=' if ok else '<'} min {shown_bound} "
                  f"(candidate vs the true kind over {int(truth.get('pairs') or 0):,} labelled signals)")


def _truth_vs_control(rule: Rule, report: Mapping[str, Any], confidence: float) -> RuleResult:
    drop, resamples = rule.number("max_drop"), int(rule.number("resamples"))
    condition = (f"candidate - control truth ARI >= -{drop:.3f} at its lower bound "
                 f"(one-sided paired bootstrap, {confidence:.0%})")
    truth = get(report, "agreement", "truth")
    if not isinstance(truth, Mapping):
        return missing_value(rule, condition, "no signal with a true kind was scored")
    control, candidate = number(truth.get("legacy_ari")), number(truth.get("candidate_ari"))
    if control is None or candidate is None:
        return missing_value(rule, condition, "the report scores no control" if control is None
                             else "the candidate has no truth ARI")
    sample = _sample(truth)
    if sample is None:
        return missing_value(rule, condition, "the report has no paired truth sample to resample")
    test = paired_bootstrap(*sample, difference=candidate - control, confidence=confidence, resamples=resamples)
    ok = test.lower >= -drop
    return result(rule, ok, test.lower, f">= -{drop:.3f}",
                  f"candidate {candidate:.3f} vs control {control:.3f} ({test.difference:+.3f}); "
                  f"{confidence:.0%} lower bound {test.lower:+.3f} over {test.resamples:,} paired resamples of "
                  f"{test.signals:,} signals {'>=' if ok else '<'} -{drop:.3f}")


TRUTH_RULES = (
    RuleSpec("truth_ari", "agreement.truth.candidate_ari (the candidate vs the true kind, declined, failed and "
             "missing signals included) >= min",
             {"min": Param(0.5, parse_unit, "lowest accepted adjusted Rand index of the candidate against the truth")},
             _truth_ari),
    RuleSpec("truth_vs_control", "one-sided paired bootstrap of agreement.truth candidate_ari - legacy_ari over "
             "agreement.truth.sample; passes if its lower confidence bound >= -max_drop", {
                 "max_drop": Param(0.02, parse_unit, "tolerated loss of truth ARI against the control"),
                 "resamples": Param(1000, parse_resamples, f"bootstrap resamples (at least {MIN_RESAMPLES})"),
             }, _truth_vs_control),
)
