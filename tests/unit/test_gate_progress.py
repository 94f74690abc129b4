"""The progress rule: a stalled side makes the gate inconclusive, naming the side and its lag."""

from __future__ import annotations

from typing import Any

from harness.gate.rules import Rule, evaluate
from harness.gate.verdict import Outcome


def report(**sides: dict[str, Any]) -> dict[str, Any]:
    return {"counts": {"matched": 5000}, "progress": {"join": "progress", "sides": sides}}


def judge(rep: dict[str, Any], max_lag_s: float | None = None) -> Any:
    return evaluate(rep, [Rule("progress", {"max_lag_s": max_lag_s})], min_pairs=1000, confidence=0.95)[-1]


def test_a_stalled_side_is_inconclusive_with_its_lag() -> None:
    result = judge(report(legacy={"awaiting": 9000, "stalled": True, "stalled_for_s": 75, "lag_entries": 12000,
                                  "lag_s": 60.2},
                          candidate={"awaiting": 0, "stalled": False, "lag_s": 0.1}))
    assert result.outcome == Outcome.INCONCLUSIVE
    assert "legacy stalled: no progress for 75s, 12000 entries (60.2s) behind the input" in result.text


def test_sides_that_move_pass_and_a_lag_limit_fails_a_slow_side() -> None:
    moving = report(legacy={"awaiting": 10, "stalled": False, "lag_s": 42.0},
                    candidate={"awaiting": 0, "stalled": False, "lag_s": 0.2})
    assert judge(moving).outcome == Outcome.PASS
    limited = judge(moving, max_lag_s=30)
    assert limited.outcome == Outcome.FAIL and "largest lag 42.0s > max 30s" in limited.text


def test_a_report_without_progress_is_not_judged() -> None:
    assert judge({"counts": {"matched": 5000}}).outcome == Outcome.SKIP
