"""The gate's truth rules: truth_ari's floor, and truth_vs_control's paired bootstrap (non-inferiority)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from harness.comparator.state import ComparatorState
from harness.gate import Outcome, RuleResult, judge, parse_policy
from harness.gate.truth_rules import paired_bootstrap, weighted_ari


def labelled(n: int, *, legacy_right: float, candidate_right: float, seed: int = 1,
             candidate: bool = True) -> dict[str, Any]:
    """n signals of 4 kinds; each side puts a signal in its kind's cluster with the given chance, else in a 5th."""
    rng = np.random.default_rng(seed)
    kinds = rng.integers(0, 4, n)
    state = ComparatorState()
    for side, right in (("legacy", legacy_right), ("candidate", candidate_right)):
        if side == "candidate" and not candidate:
            continue
        hits = rng.random(n) < right
        state.ingest(side, [{"v": 1, "id": f"s{i}", "outcome": "clustered", "entered_ms": 0.0, "published_ms": 1.0,
                             "proc_ms": 1.0, "label": f"c{kinds[i]}" if hits[i] else "other", "kind": f"k{kinds[i]}"}
                            for i in range(n)], 0.0)
    state.expire(float("inf"))
    return state.report(n)


def rule(report: dict[str, Any], name: str, **params: Any) -> RuleResult:
    policy = parse_policy({"gate": {"min_pairs": 0}, "rules": {name: params}})
    (judged,) = [r for r in judge(report, policy).rules if r.name == name]
    return judged


def test_truth_ari_is_a_floor_on_the_candidates_truth_ari() -> None:
    report = labelled(1_000, legacy_right=0.9, candidate_right=0.9)
    value = report["agreement"]["truth"]["candidate_ari"]
    passed = rule(report, "truth_ari", min=round(value - 0.01, 3))
    failed = rule(report, "truth_ari", min=round(value + 0.01, 3))
    assert passed.outcome == Outcome.PASS and failed.outcome == Outcome.FAIL
    assert passed.measured == value
    assert passed.text.startswith(f"truth_ari {value:.3f} >= min") and "over 1,000 labelled signals" in passed.text


def test_the_truth_rules_fail_closed_without_truth() -> None:
    report = labelled(200, legacy_right=1.0, candidate_right=1.0)
    report["agreement"]["truth"] = None
    for name in ("truth_ari", "truth_vs_control"):
        judged = rule(report, name)
        assert judged.outcome == Outcome.FAIL and judged.measured is None
        assert "no signal with a true kind was scored" in judged.text


def test_an_equally_good_candidate_passes_and_a_much_worse_one_fails() -> None:
    # equally good, but wrong on other signals than legacy: the difference is noise, inside a 0.1 drop
    same = rule(labelled(1_500, legacy_right=0.8, candidate_right=0.8, seed=2), "truth_vs_control", max_drop=0.1)
    worse = rule(labelled(1_500, legacy_right=0.9, candidate_right=0.6), "truth_vs_control")
    better = rule(labelled(1_500, legacy_right=0.6, candidate_right=0.9), "truth_vs_control")
    assert same.outcome == Outcome.PASS, same.text
    assert worse.outcome == Outcome.FAIL and worse.measured is not None and worse.measured < -0.02
    assert better.outcome == Outcome.PASS and better.measured is not None and better.measured > 0
    assert "95% lower bound" in better.text and "1,000 paired resamples of 1,500 signals" in better.text


def test_too_few_signals_cannot_show_the_candidate_is_not_worse() -> None:
    """Non-inferiority: the burden is on the candidate, so a wide bound fails rather than passes."""
    few = rule(labelled(40, legacy_right=0.7, candidate_right=0.7, seed=4), "truth_vs_control", max_drop=0.01)
    many = rule(labelled(4_000, legacy_right=0.7, candidate_right=0.7, seed=4), "truth_vs_control", max_drop=0.05)
    assert few.outcome == Outcome.FAIL and few.measured is not None and few.measured < -0.01
    assert many.outcome == Outcome.PASS


def test_a_report_without_a_control_fails_truth_vs_control_saying_so() -> None:
    report = labelled(500, legacy_right=0.9, candidate_right=0.9)
    report["agreement"]["truth"]["legacy_ari"] = None
    judged = rule(report, "truth_vs_control")
    assert judged.outcome == Outcome.FAIL and "the report scores no control" in judged.text


def test_a_report_without_its_sample_fails_truth_vs_control() -> None:
    report = labelled(500, legacy_right=0.9, candidate_right=0.9)
    del report["agreement"]["truth"]["sample"]
    assert "no paired truth sample" in rule(report, "truth_vs_control").text


def test_the_verdict_is_the_same_every_time() -> None:
    report = labelled(800, legacy_right=0.8, candidate_right=0.75)
    assert rule(report, "truth_vs_control").measured == rule(report, "truth_vs_control").measured


def test_resampled_ari_is_scikit_learns_on_the_resampled_signals() -> None:
    rng = np.random.default_rng(9)
    truth, labels = rng.integers(0, 4, 300), rng.integers(0, 6, 300)
    draws = rng.integers(0, 300, (5, 300))
    weights = np.stack([np.bincount(row, minlength=300) for row in draws]).astype(np.float64)
    expected = [adjusted_rand_score(truth[row], labels[row]) for row in draws]
    assert weighted_ari(truth, labels, weights) == pytest.approx(expected, abs=1e-12)
    assert weighted_ari(truth, truth, np.ones((1, 300)))[0] == 1.0


def test_the_bound_is_placed_around_the_whole_runs_difference() -> None:
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 3, 500)
    control, candidate = np.where(rng.random(500) < 0.8, truth, 3), np.where(rng.random(500) < 0.7, truth, 3)
    on_sample = adjusted_rand_score(truth, candidate) - adjusted_rand_score(truth, control)
    exact = paired_bootstrap(truth, control, candidate, difference=on_sample, confidence=0.95, resamples=500)
    shifted = paired_bootstrap(truth, control, candidate, difference=on_sample + 0.1, confidence=0.95, resamples=500)
    assert exact.lower < on_sample
    assert shifted.lower == pytest.approx(exact.lower + 0.1, abs=1e-12)
