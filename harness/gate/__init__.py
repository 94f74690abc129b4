"""The release gate: judge a comparison report against a TOML policy (docs/gate.md).

`judge(report, policy)` never raises on bad data: a missing, stale, corrupt or errored report is a FAIL.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from harness.gate.policy import Policy, PolicyError, ThresholdSettings, load_policy, parse_policy
from harness.gate.rules import RULES, Rule, RuleSpec, evaluate
from harness.gate.verdict import GateResult, Outcome, RuleResult, Verdict, decide, unusable
from harness.report.schema import ReportError, validate_report

__all__ = [
    "RULES",
    "GateResult",
    "Outcome",
    "Policy",
    "PolicyError",
    "Rule",
    "RuleResult",
    "RuleSpec",
    "Verdict",
    "judge",
    "load_policy",
    "parse_policy",
    "threshold_rules",
    "unusable",
]


def judge(
    report: Mapping[str, Any],
    policy: Policy,
    *,
    now: datetime | None = None,
    candidate: str | None = None,
    candidate_env: Mapping[str, str] | None = None,
    source: str = "report",
) -> GateResult:
    """Judge `report` (harness.report/1) against `policy`.

    `candidate` and `candidate_env` name the candidate under test for the threshold cases when the
    policy's `[threshold] worker` is "candidate" (a backtest passes its own); they default to the
    built-in candidate with the policy's `[threshold] env`.
    """
    try:
        validate_report(dict(report))
    except ReportError as exc:
        return unusable(f"{source}: {exc}", confidence=policy.confidence, source=source, policy=policy.source)
    stale = _staleness(report, policy, now or datetime.now(UTC))
    if stale is not None:
        return unusable(f"{source}: {stale}", confidence=policy.confidence, source=source, policy=policy.source)
    results = evaluate(report, policy.rules, min_pairs=policy.min_pairs, confidence=policy.confidence)
    if policy.threshold is not None:
        results += threshold_rules(policy.threshold, candidate, candidate_env)
    return decide(results, confidence=policy.confidence, warn_only=policy.non_critical == "warn",
                  source=source, policy=policy.source)


def threshold_rules(settings: ThresholdSettings, candidate: str | None = None,
                    candidate_env: Mapping[str, str] | None = None) -> list[RuleResult]:
    """One `threshold:<case>` rule per business case; a cases file or worker that cannot run is one FAIL."""
    from harness.threshold import load_cases, run_cases

    worker, env = settings.worker, dict(settings.env)
    if worker == "candidate" and candidate is not None:
        worker = candidate
    if settings.worker == "candidate" and candidate_env is not None:
        env = {**env, **candidate_env}
    try:
        outcomes = run_cases(load_cases(settings.cases), worker, env)
    except Exception as exc:  # a worker that cannot even start fails every case: fail closed, in one line
        text = f"threshold cases could not run with {worker}: {' '.join(str(exc).split()) or type(exc).__name__}"
        return [RuleResult("threshold", Outcome.FAIL, None, "cases run", text, settings.critical, settings.muted)]
    return [
        RuleResult(f"threshold:{o.case.name}", Outcome.PASS if o.passed else Outcome.FAIL,
                   1.0 if o.passed else 0.0, f"{o.case.kind} ({worker})",
                   f"threshold:{o.case.name} {o.case.kind}: {o.detail}", settings.critical, settings.muted)
        for o in outcomes
    ]


def _staleness(report: Mapping[str, Any], policy: Policy, now: datetime) -> str | None:
    if policy.max_age_s is None:
        return None
    stamp = report["generated_at"]
    try:
        generated = datetime.fromisoformat(stamp)
    except ValueError:
        return f"generated_at {stamp!r} is not an ISO timestamp, so its age is unknown"
    if generated.tzinfo is None:
        generated = generated.replace(tzinfo=UTC)
    age = (now - generated).total_seconds()
    if age > policy.max_age_s:
        return (f"the report is stale: generated {stamp}, {age:,.0f} s ago; the policy accepts at most "
                f"{policy.max_age_s:,.0f} s (gate.max_age_s)")
    return None
