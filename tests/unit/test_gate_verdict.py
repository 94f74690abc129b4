"""Gate verdict renderings: JUnit XML (one testcase per rule), Markdown and JSON."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from harness.gate.verdict import (
    GateResult,
    Outcome,
    RuleResult,
    Verdict,
    decide,
    terminal_lines,
    to_json_text,
    to_junit,
    to_markdown,
    unusable,
)


def sample_result(**overrides: bool) -> GateResult:
    rules = [
        RuleResult("matched_pairs", Outcome.PASS, 5000.0, ">= 1,000", "matched_pairs 5,000 >= min 1,000", True),
        RuleResult("ari", Outcome.FAIL, 0.912, ">= 0.950", "ari 0.912 < min 0.950"),
        RuleResult("p99_ratio", Outcome.FAIL, 1.9, "<= 1.50", "p99_ratio 1.90 > max 1.50", muted=True),
        RuleResult("per_device", Outcome.SKIP, None, "ari >= 0.98", "per_device not judged: no device"),
        RuleResult("error_increase", Outcome.PASS, 0.0, "not significant", "error_increase +0.00 pts | ok"),
    ]
    return decide(rules, confidence=0.95, warn_only=overrides.get("warn_only", False),
                  source="backtest", policy="policies/default.toml")


def test_the_verdict_is_fail_when_a_counted_rule_fails() -> None:
    result = sample_result()
    assert result.verdict == Verdict.FAIL and result.exit_code == 1
    as_text: str = result.verdict  # the cutover command compares with plain strings
    assert as_text == "fail"
    assert [rule.name for rule in result.failed()] == ["ari"]


def test_terminal_lines_list_every_rule_then_the_summary() -> None:
    lines = terminal_lines(sample_result())
    assert lines[1] == "  ari 0.912 < min 0.950: FAIL"
    assert lines[2] == "  p99_ratio 1.90 > max 1.50: FAIL (muted)"
    assert lines[3] == "  per_device not judged: no device: SKIP"
    assert lines[-1] == "gate FAIL: 1 of 5 rules failed: ari"


def test_junit_has_one_testcase_per_rule_and_a_failure_for_each_counted_fail() -> None:
    result = sample_result()
    root = ET.fromstring(to_junit(result))
    cases = root.findall("./testsuite/testcase")
    assert [case.get("name") for case in cases] == [rule.name for rule in result.rules]
    by_name = {case.get("name"): case for case in cases}
    failure = by_name["ari"].find("failure")
    assert failure is not None and failure.get("message") == "ari 0.912 < min 0.950"
    assert by_name["p99_ratio"].find("skipped") is not None  # muted: reported, not judged
    assert by_name["per_device"].find("skipped") is not None
    assert list(by_name["matched_pairs"]) == []
    suite = root.find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("5", "1", "2")


def test_junit_of_unusable_data_is_one_failed_testcase() -> None:
    root = ET.fromstring(to_junit(unusable("report r.json does not exist")))
    (case,) = root.findall("./testsuite/testcase")
    failure = case.find("failure")
    assert case.get("name") == "report" and failure is not None
    assert failure.get("message") == "report r.json does not exist"


def test_markdown_is_a_table_of_rules_with_escaped_cells() -> None:
    text = to_markdown(sample_result())
    assert text.startswith("## Gate: FAIL\n")
    assert "| `ari` | 0.912 | >= 0.950 | **FAIL** |" in text
    assert "| `p99_ratio` | 1.9 | <= 1.50 | **FAIL (muted)** |" in text
    assert "error_increase +0.00 pts \\| ok" not in text  # passing rules get no detail line
    assert "| `per_device` | — |" in text


def test_json_carries_the_verdict_exit_code_and_every_rule() -> None:
    document = json.loads(to_json_text(sample_result()))
    assert (document["schema"], document["verdict"], document["exit_code"]) == ("harness.gate/1", "fail", 1)
    assert [rule["name"] for rule in document["rules"]] == [
        "matched_pairs", "ari", "p99_ratio", "per_device", "error_increase"]
    ari = document["rules"][1]
    assert ari == {"name": "ari", "outcome": "FAIL", "measured": 0.912, "condition": ">= 0.950",
                   "text": "ari 0.912 < min 0.950", "critical": False, "muted": False, "counted": True,
                   "line": "ari 0.912 < min 0.950: FAIL"}


def test_non_finite_measurements_become_null_in_json() -> None:
    rule = RuleResult("error_increase", Outcome.FAIL, float("inf"), "", "error_increase")
    document = json.loads(to_json_text(decide([rule], confidence=0.95, warn_only=False)))
    assert document["rules"][0]["measured"] is None


def test_an_inconclusive_gate_exits_2_unless_something_failed() -> None:
    pairs = RuleResult("matched_pairs", Outcome.INCONCLUSIVE, 10.0, ">= 1,000", "matched_pairs 10 < min 1,000")
    threshold = RuleResult("threshold:x", Outcome.FAIL, 0.0, "together", "threshold:x", critical=True)
    assert decide([pairs], confidence=0.95, warn_only=False).exit_code == 2
    assert decide([pairs, threshold], confidence=0.95, warn_only=False).exit_code == 1


def test_an_inconclusive_summary_names_the_data_there_is_and_the_data_needed() -> None:
    pairs = RuleResult("matched_pairs", Outcome.INCONCLUSIVE, 300.0, ">= 2,000", "matched_pairs 300 < min 2,000",
                       True, shortfall="300 matched pairs, 2,000 needed (gate.min_pairs)")
    skipped = RuleResult("ari", Outcome.SKIP, None, "", "ari not judged")
    assert decide([pairs, skipped], confidence=0.95, warn_only=False).summary() == (
        "gate INCONCLUSIVE: 300 matched pairs, 2,000 needed (gate.min_pairs); 1 rule not judged; run longer")
    without_shortfall = RuleResult("matched_pairs", Outcome.INCONCLUSIVE, 10.0, ">= 20", "matched_pairs 10 < min 20")
    assert decide([without_shortfall], confidence=0.95, warn_only=False).summary() == (
        "gate INCONCLUSIVE: matched_pairs 10 < min 20; run longer")
