"""The gate's rules, each declared once in RULES (what it measures, its parameters, how it is judged).

The truth rules live in truth_rules.py; both build on spec.py, so neither imports the other's registry.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from harness.gate.spec import Judge, Param, Rule, RuleSpec, parse_count, parse_positive, parse_unit
from harness.gate.spec import ParamValue as ParamValue  # re-exported: policies parse with these
from harness.gate.spec import count as _count
from harness.gate.spec import digits as _digits
from harness.gate.spec import get as _get
from harness.gate.spec import missing_value as _missing_value
from harness.gate.spec import number as _number
from harness.gate.spec import p_text as _p
from harness.gate.spec import result as _result
from harness.gate.spec import samples as _samples
from harness.gate.stats import increase_test, slower_test, wilson_interval
from harness.gate.truth_rules import TRUTH_RULES
from harness.gate.verdict import Outcome, RuleResult

__all__ = ["RULES", "Param", "ParamValue", "Rule", "RuleSpec", "evaluate", "parse_count", "parse_positive",
           "parse_unit"]
METRICS = ("ari", "nmi", "matched_accuracy")
MAX_LISTED_DEVICES = 5  # failing devices named in a per_device line


def _parse_metric(value: Any) -> str:
    if value not in METRICS:
        raise ValueError(f"one of {', '.join(METRICS)}")
    return str(value)


def evaluate(report: Mapping[str, Any], rules: Sequence[Rule], *, min_pairs: int,
             confidence: float) -> list[RuleResult]:
    """The matched-pairs rule, then every rule given; all SKIP when pairs are too few."""
    matched = _count(_get(report, "counts", "matched"))
    enough = matched >= min_pairs
    shortfall = None if enough else f"{matched:,} matched pairs, {min_pairs:,} needed (gate.min_pairs)"
    results = [RuleResult(
        "matched_pairs", Outcome.PASS if enough else Outcome.INCONCLUSIVE, float(matched), f">= {min_pairs:,}",
        f"matched_pairs {matched:,} {'>=' if enough else '<'} min {min_pairs:,}", critical=True,
        shortfall=shortfall,
    )]
    for rule in rules:
        if shortfall is not None:
            results.append(RuleResult(rule.name, Outcome.SKIP, None, "", f"{rule.name} not judged: {shortfall}",
                                      rule.critical, rule.muted))
            continue
        judged = RULES[rule.name].judge(rule, report, confidence)
        results.append(RuleResult(rule.name, judged.outcome, judged.measured, judged.condition, judged.text,
                                  rule.critical, rule.muted))
    return results



# --- agreement ------------------------------------------------------------------------------------


def _agreement(metric: str, scope: str | None) -> Judge:
    """`scope`: None for the whole run, or a sub-section of `agreement` ("window", "anomalies")."""

    def judge(rule: Rule, report: Mapping[str, Any], confidence: float) -> RuleResult:
        path = ("agreement", scope, metric) if scope else ("agreement", metric)
        value = _number(_get(report, *path))
        bound = rule.number("min")
        how = "min {bound}"
        margin = rule.optional_number("noise_margin")
        floor = _number(_get(report, "noise_floor", metric))
        if margin is not None and floor is not None:
            bound = floor - margin
            how = f"noise floor {floor:.3f} - {margin:.3f} = {{bound}}"
        if value is None:
            return _missing_value(rule, f">= {bound:.3f}", "no pairs clustered on both sides")
        shown_value, shown_bound = _digits(value, bound)
        ok = value >= bound
        return _result(rule, ok, value, f">= {shown_bound}",
                       f"{shown_value} {'>=' if ok else '<'} {how.format(bound=shown_bound)}")

    return judge


def _per_device(rule: Rule, report: Mapping[str, Any], confidence: float) -> RuleResult:
    metric, bound, min_pairs = rule.text("metric"), rule.number("min"), int(rule.number("min_pairs"))
    devices = _get(report, "agreement", "per_device")
    condition = f"{metric} >= {bound:.3f} on every device with >= {min_pairs:,} pairs"
    if not isinstance(devices, dict):
        return _missing_value(rule, condition, "the report has no per-device agreement")
    judged = {}
    for device, section in devices.items():
        value = _number(section.get(metric)) if isinstance(section, dict) else None
        if value is not None and _count(section.get("pairs")) >= min_pairs:
            judged[str(device)] = value
    if not judged:
        return _result(rule, None, None, condition, f"not judged: no device has >= {min_pairs:,} pairs")
    worst_device = min(judged, key=lambda device: (judged[device], device))
    worst = judged[worst_device]
    failing = sorted((d for d in judged if judged[d] < bound), key=lambda d: (judged[d], d))
    if not failing:
        shown, shown_bound = _digits(worst, bound)
        return _result(rule, True, worst, condition, f"worst {metric} {shown} ({worst_device}) >= min "
                       f"{shown_bound} over {len(judged)} devices")
    listed = ", ".join(f"{d} {judged[d]:.3f}" for d in failing[:MAX_LISTED_DEVICES])
    more = f" and {len(failing) - MAX_LISTED_DEVICES} more" if len(failing) > MAX_LISTED_DEVICES else ""
    return _result(rule, False, worst, condition, f"{metric} < min {bound:.3f} on {len(failing)} of "
                   f"{len(judged)} devices: {listed}{more}")


# --- missing results and errors --------------------------------------------------------------------


def _missing(side: str) -> Judge:
    def judge(rule: Rule, report: Mapping[str, Any], confidence: float) -> RuleResult:
        limit = rule.number("max_rate")
        counts = report["counts"]
        missing = _count(counts.get(f"missing_{side}"))
        total = _count(counts.get("matched")) + _count(counts.get("missing_legacy")) + _count(
            counts.get("missing_candidate"))
        if total == 0:
            return _missing_value(rule, f"<= {limit:.2%}", "no signal was finished")
        rate = missing / total
        ok = rate <= limit
        return _result(rule, ok, rate, f"<= {limit:.2%}", f"{rate:.2%} ({missing:,} of {total:,} signals) "
                       f"{'<=' if ok else '>'} max {limit:.2%}")

    return judge


def _outcomes(report: Mapping[str, Any], side: str) -> tuple[dict[str, int], int]:
    section = _get(report, "errors", side)
    outcomes = {key: _count(section.get(key)) for key in ("clustered", "unclustered", "error")} if isinstance(
        section, dict) else {}
    return outcomes, sum(outcomes.values())


def _candidate_error_rate(rule: Rule, report: Mapping[str, Any], confidence: float) -> RuleResult:
    limit = rule.number("max_rate")
    outcomes, total = _outcomes(report, "candidate")
    if total == 0:
        return _missing_value(rule, f"<= {limit:.2%}", "the candidate produced no outcome")
    errors = outcomes["error"]
    rate = errors / total
    low, high = wilson_interval(errors, total, confidence)
    ok = rate <= limit
    return _result(rule, ok, rate, f"<= {limit:.2%}", f"{rate:.2%} ({errors:,} of {total:,}; "
                   f"{confidence:.0%} Wilson interval {low:.2%}-{high:.2%}) {'<=' if ok else '>'} max {limit:.2%}")


def _increase(outcome: str) -> Judge:
    def judge(rule: Rule, report: Mapping[str, Any], confidence: float) -> RuleResult:
        margin = rule.number("max_increase")
        condition = f"not significantly above legacy + {margin:.2%} (one-sided z-test, {confidence:.0%})"
        legacy, legacy_total = _outcomes(report, "legacy")
        candidate, candidate_total = _outcomes(report, "candidate")
        if legacy_total == 0 or candidate_total == 0:
            return _missing_value(rule, condition, "a side produced no outcome")
        test = increase_test(legacy[outcome], legacy_total, candidate[outcome], candidate_total, margin)
        alpha = 1.0 - confidence
        significant = test.significant(confidence)
        over = f" over the tolerated +{margin:.2%}" if margin else ""
        return _result(rule, not significant, test.increase, condition,
                       f"{test.increase * 100:+.2f} pts (legacy {test.baseline_rate:.2%} -> candidate "
                       f"{test.candidate_rate:.2%}){over}: z {test.z:.2f}, one-sided {_p(test.p_value)}, "
                       f"{'significant' if significant else 'not significant'} at alpha {alpha:.2f}")

    return judge


# --- latency --------------------------------------------------------------------------------------


def _p99_ratio(rule: Rule, report: Mapping[str, Any], confidence: float) -> RuleResult:
    limit = rule.number("max")
    ratio = _number(_get(report, "latency_ms", "p99_ratio"))
    if ratio is None:
        return _missing_value(rule, f"<= {limit:.2f}", "no p99 on one side")
    legacy, candidate = _number(_get(report, "latency_ms", "legacy", "p99")), _number(
        _get(report, "latency_ms", "candidate", "p99"))
    ok = ratio <= limit
    sides = f" (candidate {candidate:.1f} ms, legacy {legacy:.1f} ms)" if legacy and candidate else ""
    return _result(rule, ok, ratio, f"<= {limit:.2f}", f"{ratio:.2f}{sides} {'<=' if ok else '>'} max {limit:.2f}")


def _mann_whitney(rule: Rule, report: Mapping[str, Any], confidence: float) -> RuleResult:
    tolerance, needed = rule.number("max_effect"), int(rule.number("min_samples"))
    alpha = 1.0 - confidence
    condition = f"not (p < {alpha:.2f} and Cliff's delta > {tolerance:.2f})"
    legacy = _samples(_get(report, "latency_ms", "samples", "legacy"))
    candidate = _samples(_get(report, "latency_ms", "samples", "candidate"))
    if legacy is None or candidate is None:
        return _missing_value(rule, condition, "latency samples are absent or not numbers")
    if len(legacy) < max(needed, 1) or len(candidate) < max(needed, 1):
        return _missing_value(rule, condition, f"{len(candidate):,} candidate and {len(legacy):,} legacy "
                              f"latency samples, {needed:,} needed on each side")
    test = slower_test(candidate, legacy)
    significant, large = test.significant(confidence), test.cliffs_delta > tolerance
    effect = f"Cliff's delta {test.cliffs_delta:+.2f} {'>' if large else '<='} max {tolerance:.2f}"
    p = f"(one-sided {_p(test.p_value)}, alpha {alpha:.2f})"
    medians = f"medians {statistics.median(candidate):.1f} vs {statistics.median(legacy):.1f} ms"
    if significant and large:
        text = f"candidate slower {p} and {effect}; {medians}"
    elif significant:
        text = f"candidate slower {p} but within tolerance: {effect}; {medians}"
    else:
        text = f"candidate not significantly slower {p}; {effect}; {medians}"
    return _result(rule, not (significant and large), test.cliffs_delta, condition, text)


# --- the registry: every rule the gate knows, in the order it is reported ---------------------------

_SCOPES = {  # agreement scope (a section of the report's `agreement`) -> how the docs say it
    None: "over the whole run",
    "window": "over the recent window",
    "anomalies": "without the pairs both sides called default",
}


# --- progress: a stalled or lagging side -----------------------------------------------------------


def _progress(rule: Rule, report: Mapping[str, Any], confidence: float) -> RuleResult:
    """A stalled side makes the verdict INCONCLUSIVE: its missing results may only be late."""
    sides = _get(report, "progress", "sides")
    if not isinstance(sides, Mapping) or not sides:
        return _result(rule, None, None, "", "not applicable (the report has no progress section)")
    stalled = {side: figures for side, figures in sides.items()
               if isinstance(figures, Mapping) and figures.get("stalled")}
    lags = {side: float(figures["lag_s"]) for side, figures in sides.items()
            if isinstance(figures, Mapping) and isinstance(figures.get("lag_s"), int | float)}
    worst = max(lags.values(), default=0.0)
    if stalled:
        side, figures = next(iter(stalled.items()))
        reason = (f"{side} stalled: no progress for {_number(figures.get('stalled_for_s')) or 0:.0f}s, "
                  f"{_count(figures.get('lag_entries'))} entries ({lags.get(side, 0.0):.1f}s) behind the input")
        return RuleResult(rule.name, Outcome.INCONCLUSIVE, worst, "no side stalled", f"{rule.name} {reason}",
                          shortfall=reason)
    limit = rule.optional_number("max_lag_s")
    if limit is None:
        return _result(rule, True, worst, "no side stalled", f"no side stalled; largest lag {worst:.1f}s")
    ok = worst <= limit
    return _result(rule, ok, worst, f"lag <= {limit:.0f}s", f"largest lag {worst:.1f}s {'<=' if ok else '>'} "
                   f"max {limit:.0f}s")


def _agreement_rule(metric: str, scope: str | None, default: float) -> RuleSpec:
    where = _SCOPES[scope]
    params = {"min": Param(default, parse_unit, f"lowest accepted value {where}")}
    if scope != "anomalies":  # the noise floor includes the default cluster, so it cannot bound the anomalies
        params["noise_margin"] = Param(None, parse_unit, "with a noise floor in the report: min = noise_floor - margin")
    path = ".".join(part for part in ("agreement", scope, metric) if part)
    return RuleSpec(f"{scope}_{metric}" if scope else metric, f"{path} ({where}) >= min", params,
                    _agreement(metric, scope))


def _missing_rule(side: str) -> RuleSpec:
    return RuleSpec(f"missing_{side}", f"counts.missing_{side} / signals finished <= max_rate",
                    {"max_rate": Param(0.01, parse_unit, f"highest accepted share of signals {side} never answered")},
                    _missing(side))


def _increase_rule(outcome: str) -> RuleSpec:
    return RuleSpec(
        f"{outcome}_increase", f"one-sided two-proportion z-test of the candidate's {outcome} rate over legacy's "
        "+ max_increase; fails if significant",
        {"max_increase": Param(0.0, parse_unit, f"tolerated increase of the {outcome} rate over legacy")},
        _increase(outcome),
    )


RULES: dict[str, RuleSpec] = {spec.name: spec for spec in (
    _agreement_rule("ari", None, 0.98),
    _agreement_rule("nmi", None, 0.97),
    _agreement_rule("matched_accuracy", None, 0.97),
    *(_agreement_rule(metric, "window", 0.95) for metric in METRICS),
    *(_agreement_rule(metric, "anomalies", 0.95) for metric in METRICS),
    RuleSpec("per_device", "agreement.per_device.<device>.<metric> >= min on every device with >= min_pairs "
             "pairs", {
                 "metric": Param("ari", _parse_metric, "agreement metric judged per device"),
                 "min": Param(0.98, parse_unit, "lowest accepted value on any judged device"),
                 "min_pairs": Param(50, parse_count, "devices with fewer pairs are not judged"),
             }, _per_device),
    *TRUTH_RULES,
    _missing_rule("legacy"),
    _missing_rule("candidate"),
    RuleSpec("candidate_error_rate", "the candidate's error outcomes / all its outcomes <= max_rate, shown "
             "with its Wilson interval",
             {"max_rate": Param(0.01, parse_unit, "highest accepted share of candidate errors")},
             _candidate_error_rate),
    _increase_rule("error"),
    _increase_rule("unclustered"),
    RuleSpec("p99_ratio", "latency_ms.p99_ratio (candidate end-to-end p99 / legacy p99) <= max",
             {"max": Param(1.5, parse_positive, "highest accepted candidate p99 / legacy p99 (end to end)")},
             _p99_ratio),
    RuleSpec("latency_mann_whitney", "Mann-Whitney U on latency_ms.samples (one-sided, candidate slower); "
             "fails if significant and Cliff's delta > max_effect", {
                 "max_effect": Param(0.2, parse_unit, "tolerated Cliff's delta (candidate slower) when significant"),
                 "min_samples": Param(20, parse_count, "fewer latency samples on a side fail the rule"),
             }, _mann_whitney),
    RuleSpec("progress", "progress.sides.<side>: INCONCLUSIVE while a side is stalled (no progress, input left); "
             "with max_lag_s, lag_s <= max_lag_s on every side", {
                 "max_lag_s": Param(None, parse_positive, "highest accepted lag behind the input, in seconds"),
             }, _progress),
)}


