"""Each gate rule judged against real `harness.report/1` reports built by the comparator's state."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from harness.comparator.state import ComparatorState
from harness.gate import RULES, Outcome, Verdict, judge, parse_policy
from harness.gate.verdict import terminal_lines


def comparison(
    n: int = 2_000,
    *,
    agree: Callable[[int], bool] = lambda i: True,
    legacy_errors: int = 0,
    candidate_errors: int = 0,
    candidate_unclustered: int = 0,
    legacy_ms: float = 20.0,
    candidate_ms: float = 20.0,
    missing_candidate: int = 0,
    devices: int = 4,
) -> dict[str, Any]:
    """n signals; legacy clusters i into L{i % 5}; the candidate agrees where agree(i), else merges them."""
    rng = np.random.default_rng(7)
    state = ComparatorState(timeout_ms=1_000)
    legacy, candidate = [], []
    for i in range(n):
        base = {"v": 1, "id": f"s{i}", "entered_ms": 0.0, "device": f"d{i % devices}", "proc_ms": 1.0,
                "kind": f"k{i % 5}"}
        legacy_outcome = "error" if i < legacy_errors else "clustered"
        legacy.append({**base, "outcome": legacy_outcome, "label": f"L{i % 5}", "err_type": "E",
                       "published_ms": legacy_ms * float(rng.uniform(0.8, 1.2))})
        if i >= n - missing_candidate:
            continue
        outcome = ("error" if i < candidate_errors else
                   "unclustered" if i < candidate_errors + candidate_unclustered else "clustered")
        label = f"C{i % 5}" if agree(i) else "C-merged"
        candidate.append({**base, "outcome": outcome, "label": label, "err_type": "E",
                          "published_ms": candidate_ms * float(rng.uniform(0.8, 1.2))})
    state.ingest("legacy", legacy, 0.0)
    state.ingest("candidate", candidate, 0.0)
    state.expire(10_000.0)
    return state.report(n)


def policy(rules: dict[str, dict[str, Any]], **gate: Any) -> Any:
    return parse_policy({"gate": {"min_pairs": 100, **gate}, "rules": rules})


def outcome(report: dict[str, Any], name: str, **rule: Any) -> Any:
    result = judge(report, policy({name: rule}))
    (judged,) = [r for r in result.rules if r.name == name]
    return judged


@pytest.fixture(scope="module")
def agreeing() -> dict[str, Any]:
    return comparison()


def test_too_few_matched_pairs_is_inconclusive_and_judges_nothing_else() -> None:
    result = judge(comparison(50, candidate_errors=50), policy({"ari": {}, "candidate_error_rate": {}}))
    assert result.verdict == Verdict.INCONCLUSIVE and result.exit_code == 2
    assert [(r.name, r.outcome) for r in result.rules] == [
        ("matched_pairs", Outcome.INCONCLUSIVE), ("ari", Outcome.SKIP), ("candidate_error_rate", Outcome.SKIP)]
    assert "matched_pairs 50 < min 100: INCONCLUSIVE" in terminal_lines(result)[0]


def test_agreement_below_its_minimum_fails_with_value_condition_and_outcome() -> None:
    report = comparison(agree=lambda i: i % 10 != 0)
    result = judge(report, policy({"ari": {"min": 0.95}, "nmi": {"min": 0.5}}))
    assert result.verdict == Verdict.FAIL and result.exit_code == 1
    ari = report["agreement"]["ari"]
    assert result.line(result.rules[1]) == f"ari {ari:.3f} < min 0.950: FAIL"
    assert result.rules[2].outcome == Outcome.PASS


def test_a_value_just_below_its_bound_is_printed_with_enough_digits_to_differ() -> None:
    report = copy.deepcopy(comparison())
    report["agreement"]["ari"] = 0.94996
    assert outcome(report, "ari", min=0.95).text == "ari 0.94996 < min 0.95000"


def test_window_rules_read_the_recent_window() -> None:
    late_drift = comparison(agree=lambda i: i < 1_000)  # the window holds the last 1,000 pairs
    assert outcome(late_drift, "window_matched_accuracy", min=0.9).outcome == Outcome.FAIL
    assert outcome(late_drift, "matched_accuracy", min=0.5).outcome == Outcome.PASS


def test_anomaly_rules_leave_out_the_pairs_both_sides_called_default() -> None:
    report = copy.deepcopy(comparison())
    report["agreement"]["anomalies"] = {"default_label": "normal", "pairs": 400, "ari": 0.71, "nmi": 0.9,
                                        "matched_accuracy": 0.8}
    rule = outcome(report, "anomalies_ari")
    assert rule.outcome == Outcome.FAIL and rule.text == "anomalies_ari 0.710 < min 0.950"
    assert outcome(report, "ari").outcome == Outcome.PASS


def test_with_a_noise_floor_the_minimum_is_relative_to_it(agreeing: dict[str, Any]) -> None:
    report = copy.deepcopy(comparison(agree=lambda i: i % 10 != 0))
    ari = report["agreement"]["ari"]
    report["noise_floor"] = {"matched": 2_000, "ari": ari + 0.005}
    relative = outcome(report, "ari", min=0.99, noise_margin=0.01)
    assert relative.outcome == Outcome.PASS
    assert f"noise floor {ari + 0.005:.3f} - 0.010" in relative.text
    report["noise_floor"]["ari"] = ari + 0.02
    assert outcome(report, "ari", min=0.5, noise_margin=0.01).outcome == Outcome.FAIL
    # without a noise floor in the report, the absolute minimum applies
    assert outcome(agreeing, "ari", min=0.99, noise_margin=0.01).outcome == Outcome.PASS


def test_per_device_names_the_devices_below_the_minimum() -> None:
    report = comparison(agree=lambda i: i % 4 != 1 or i % 3 != 0, devices=4)  # d1 disagrees on a third
    rule = outcome(report, "per_device", metric="matched_accuracy", min=0.9)
    assert rule.outcome == Outcome.FAIL
    assert "on 1 of 4 devices: d1 0.6" in rule.text


def test_per_device_skips_devices_with_too_few_pairs() -> None:
    report = comparison(400, devices=40)  # 10 pairs per device
    rule = outcome(report, "per_device", min_pairs=50)
    assert rule.outcome == Outcome.SKIP and "no device has >= 50 pairs" in rule.text


def test_missing_results_beyond_the_rate_fail_for_that_side() -> None:
    report = comparison(missing_candidate=60)
    assert report["counts"]["missing_candidate"] == 60
    rule = outcome(report, "missing_candidate", max_rate=0.01)
    assert rule.outcome == Outcome.FAIL and rule.text.startswith("missing_candidate 3.00% (60 of 2,000 signals)")
    assert outcome(report, "missing_legacy").outcome == Outcome.PASS


def test_candidate_error_rate_is_judged_on_the_point_estimate_with_its_wilson_interval() -> None:
    rule = outcome(comparison(candidate_errors=30), "candidate_error_rate", max_rate=0.01)
    assert rule.outcome == Outcome.FAIL
    assert "1.50% (30 of 2,000; 95% Wilson interval" in rule.text


def test_a_significant_error_increase_fails() -> None:
    rule = outcome(comparison(legacy_errors=5, candidate_errors=30), "error_increase")
    assert rule.outcome == Outcome.FAIL
    assert "+1.25 pts (legacy 0.25% -> candidate 1.50%)" in rule.text and "significant at alpha 0.05" in rule.text


def test_an_increase_within_noise_is_not_a_failure() -> None:
    rule = outcome(comparison(legacy_errors=5, candidate_errors=8), "error_increase")
    assert rule.outcome == Outcome.PASS and "not significant" in rule.text


def test_an_increase_within_the_tolerated_margin_passes() -> None:
    report = comparison(legacy_errors=20, candidate_errors=40)
    assert outcome(report, "error_increase").outcome == Outcome.FAIL
    assert outcome(report, "error_increase", max_increase=0.02).outcome == Outcome.PASS


def test_declined_signals_count_in_unclustered_increase_not_in_errors() -> None:
    report = comparison(candidate_unclustered=100)
    assert outcome(report, "unclustered_increase").outcome == Outcome.FAIL
    assert outcome(report, "error_increase").outcome == Outcome.PASS


def test_p99_ratio_above_its_factor_fails() -> None:
    assert outcome(comparison(candidate_ms=40.0), "p99_ratio", max=1.5).outcome == Outcome.FAIL
    assert outcome(comparison(candidate_ms=25.0), "p99_ratio", max=1.5).outcome == Outcome.PASS


def test_mann_whitney_fails_only_when_significantly_slower_and_beyond_the_effect_tolerance() -> None:
    much_slower = outcome(comparison(candidate_ms=30.0), "latency_mann_whitney", max_effect=0.2)
    assert much_slower.outcome == Outcome.FAIL and much_slower.text.startswith("latency_mann_whitney candidate slower")
    slightly = comparison(candidate_ms=21.0)
    judged = outcome(slightly, "latency_mann_whitney", max_effect=0.3)
    assert judged.outcome == Outcome.PASS and "within tolerance" in judged.text
    assert outcome(comparison(candidate_ms=10.0), "latency_mann_whitney").outcome == Outcome.PASS


def test_mann_whitney_without_enough_samples_fails_closed(agreeing: dict[str, Any]) -> None:
    report = copy.deepcopy(agreeing)
    report["latency_ms"]["samples"]["candidate"] = [1.0, 2.0]
    rule = outcome(report, "latency_mann_whitney", min_samples=20)
    assert rule.outcome == Outcome.FAIL and "2 candidate and 2,000 legacy latency samples" in rule.text


def test_a_metric_the_report_lacks_is_never_a_pass(agreeing: dict[str, Any]) -> None:
    report = copy.deepcopy(agreeing)
    report["agreement"]["nmi"] = None
    report["agreement"]["window"]["ari"] = float("nan")
    assert outcome(report, "nmi").outcome == Outcome.FAIL
    assert outcome(report, "window_ari").text.startswith("window_ari n/a")


def test_a_muted_rule_is_reported_but_does_not_fail_the_gate() -> None:
    result = judge(comparison(candidate_ms=40.0), policy({"ari": {}, "p99_ratio": {"muted": True}}))
    assert result.verdict == Verdict.PASS
    assert result.line(result.rules[2]).endswith(": FAIL (muted)")


def test_with_non_critical_warn_only_critical_rules_fail_the_gate() -> None:
    report = comparison(candidate_ms=40.0, candidate_errors=100)
    rules = {"p99_ratio": {}, "candidate_error_rate": {"critical": True}}
    result = judge(report, policy(rules, non_critical="warn"))
    assert result.verdict == Verdict.FAIL
    assert [r.name for r in result.failed()] == ["candidate_error_rate"]
    assert result.line(result.rules[1]).endswith("FAIL (critical)")  # rules come in canonical order
    assert result.line(result.rules[2]).endswith("FAIL (warning)")
    assert judge(comparison(candidate_ms=40.0), policy(rules, non_critical="warn")).verdict == Verdict.PASS


def test_any_failed_rule_fails_the_gate_by_default_and_the_summary_flags_critical_ones() -> None:
    report = comparison(candidate_ms=40.0, candidate_errors=100)
    result = judge(report, policy({"p99_ratio": {}, "candidate_error_rate": {"critical": True}}))
    assert result.summary() == "gate FAIL: 2 of 3 rules failed (1 critical): candidate_error_rate, p99_ratio"


def test_a_corrupt_report_fails_closed_in_one_line(agreeing: dict[str, Any]) -> None:
    report = copy.deepcopy(agreeing)
    del report["counts"]["matched"]
    result = judge(report, policy({"ari": {}}), source="report r.json")
    assert result.verdict == Verdict.FAIL and result.problem is not None
    assert terminal_lines(result) == ["gate FAIL: report r.json: counts lacks matched"]


def test_a_stale_report_fails_closed(agreeing: dict[str, Any]) -> None:
    generated = datetime.fromisoformat(agreeing["generated_at"])
    stale = policy({"ari": {}}, max_age_s=60)
    result = judge(agreeing, stale, now=generated + timedelta(seconds=600))
    assert result.verdict == Verdict.FAIL
    assert "the report is stale" in result.summary() and "at most 60 s (gate.max_age_s)" in result.summary()
    assert judge(agreeing, stale, now=generated + timedelta(seconds=30)).verdict == Verdict.PASS


def test_an_undated_report_cannot_be_judged_fresh(agreeing: dict[str, Any]) -> None:
    report = {**agreeing, "generated_at": "yesterday"}
    result = judge(report, policy({"ari": {}}, max_age_s=60), now=datetime.now(UTC))
    assert result.verdict == Verdict.FAIL and "not an ISO timestamp" in result.summary()


def test_an_inconclusive_verdict_says_how_many_pairs_there_are_and_how_many_are_needed() -> None:
    result = judge(comparison(300), policy({"ari": {}, "p99_ratio": {}}, min_pairs=2_000))
    assert result.verdict == Verdict.INCONCLUSIVE
    assert result.summary() == ("gate INCONCLUSIVE: 300 matched pairs, 2,000 needed (gate.min_pairs); "
                                "2 rules not judged; run longer")
    assert result.line(result.rules[1]) == "ari not judged: 300 matched pairs, 2,000 needed (gate.min_pairs): SKIP"


def test_every_registered_rule_names_its_measured_value_condition_and_test(agreeing: dict[str, Any]) -> None:
    result = judge(agreeing, policy({name: {} for name in RULES}))
    assert [r.name for r in result.rules] == ["matched_pairs", *RULES]
    for rule in result.rules[1:]:
        assert rule.outcome in (Outcome.PASS, Outcome.FAIL), rule
        assert rule.measured is not None and rule.condition and rule.text.startswith(f"{rule.name} "), rule
