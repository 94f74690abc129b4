"""The gate's verdict: rule results, how they combine, and their renderings (terminal, JUnit, Markdown, JSON)."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

GATE_SCHEMA = "harness.gate/1"
MAX_NAMED_FAILURES = 6  # failed rules named in the one-line summary; every rule has its own line anyway


class Outcome(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"  # not judged: too few pairs, or nothing the rule applies to
    INCONCLUSIVE = "INCONCLUSIVE"  # only the matched-pairs rule: not enough data to judge anything


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"

    @property
    def exit_code(self) -> int:
        return {Verdict.PASS: 0, Verdict.FAIL: 1, Verdict.INCONCLUSIVE: 2}[self]


@dataclass(frozen=True)
class RuleResult:
    name: str
    outcome: Outcome
    measured: float | None  # the value judged; None when the report lacks it
    condition: str  # e.g. ">= 0.98"
    text: str  # the judgement in words, e.g. "ari 0.912 < min 0.980"
    critical: bool = False
    muted: bool = False
    shortfall: str | None = None  # INCONCLUSIVE: the data there is and the data needed, for the summary


@dataclass(frozen=True)
class GateResult:
    verdict: Verdict
    rules: tuple[RuleResult, ...]
    confidence: float
    source: str = ""
    policy: str = ""
    warn_only: bool = False  # the policy's non_critical = "warn"
    problem: str | None = None  # why the data could not be judged at all (missing, stale, corrupt, errored)

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code

    def counts(self, rule: RuleResult) -> bool:
        """Whether this rule's FAIL fails the gate."""
        return rule.outcome == Outcome.FAIL and not rule.muted and (rule.critical or not self.warn_only)

    def failed(self) -> list[RuleResult]:
        return [rule for rule in self.rules if self.counts(rule)]

    def label(self, rule: RuleResult) -> str:
        if rule.muted:
            return f"{rule.outcome} (muted)"
        if rule.outcome == Outcome.FAIL:
            return "FAIL (critical)" if rule.critical else "FAIL" if self.counts(rule) else "FAIL (warning)"
        return str(rule.outcome)

    def line(self, rule: RuleResult) -> str:
        return f"{rule.text}: {self.label(rule)}"

    def summary(self) -> str:
        if self.problem is not None:
            return f"gate {self.verdict.upper()}: {self.problem}"
        failed = self.failed()
        if failed:
            names = ", ".join(rule.name for rule in failed[:MAX_NAMED_FAILURES])
            more = f" and {len(failed) - MAX_NAMED_FAILURES} more" if len(failed) > MAX_NAMED_FAILURES else ""
            critical = sum(rule.critical for rule in failed)
            flag = f" ({critical} critical)" if critical else ""
            return f"gate FAIL: {len(failed)} of {len(self.rules)} rules failed{flag}: {names}{more}"
        if self.verdict == Verdict.INCONCLUSIVE:
            short = "; ".join(rule.shortfall or rule.text for rule in self.rules
                              if rule.outcome == Outcome.INCONCLUSIVE)
            skipped = sum(rule.outcome == Outcome.SKIP for rule in self.rules)
            waiting = f"; {skipped} rule{'' if skipped == 1 else 's'} not judged" if skipped else ""
            return f"gate INCONCLUSIVE: {short}{waiting}; run longer"
        return f"gate PASS: {len(self.rules)} rules at {self.confidence:.0%} confidence"


def decide(rules: list[RuleResult], *, confidence: float, warn_only: bool, source: str = "",
           policy: str = "") -> GateResult:
    """FAIL if any counted rule failed; else INCONCLUSIVE if pairs were too few; else PASS."""
    result = GateResult(Verdict.PASS, tuple(rules), confidence, source, policy, warn_only)
    if result.failed():
        verdict = Verdict.FAIL
    elif any(rule.outcome == Outcome.INCONCLUSIVE for rule in rules):
        verdict = Verdict.INCONCLUSIVE
    else:
        verdict = Verdict.PASS
    return GateResult(verdict, tuple(rules), confidence, source, policy, warn_only)


def unusable(problem: str, *, confidence: float = 0.95, source: str = "", policy: str = "") -> GateResult:
    """Fail closed: data that is missing, stale, corrupt or errored is judged as one failed rule."""
    rule = RuleResult("report", Outcome.FAIL, None, "usable", problem, critical=True)
    return GateResult(Verdict.FAIL, (rule,), confidence, source, policy, problem=problem)


# --- renderings -----------------------------------------------------------------------------------


def terminal_lines(result: GateResult) -> list[str]:
    if result.problem is not None:
        return [result.summary()]
    return [*(f"  {result.line(rule)}" for rule in result.rules), result.summary()]


def to_json(result: GateResult) -> dict[str, Any]:
    return {
        "schema": GATE_SCHEMA,
        "verdict": str(result.verdict),
        "exit_code": result.exit_code,
        "summary": result.summary(),
        "problem": result.problem,
        "confidence": result.confidence,
        "source": result.source,
        "policy": result.policy,
        "rules": [
            {"name": rule.name, "outcome": str(rule.outcome), "measured": _finite(rule.measured),
             "condition": rule.condition, "text": rule.text, "critical": rule.critical, "muted": rule.muted,
             "counted": result.counts(rule), "line": result.line(rule)}
            for rule in result.rules
        ],
    }


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def to_json_text(result: GateResult) -> str:
    return json.dumps(to_json(result), indent=2, allow_nan=False, default=str)


def to_junit(result: GateResult) -> str:
    """One testcase per rule: a failure element for a counted FAIL, skipped for anything not judged."""
    failures = sum(1 for rule in result.rules if result.counts(rule))
    skipped = sum(1 for rule in result.rules
                  if not result.counts(rule) and (rule.outcome != Outcome.PASS or rule.muted))
    suites = ET.Element("testsuites", name="harness gate", tests=str(len(result.rules)),
                        failures=str(failures))
    suite = ET.SubElement(suites, "testsuite", name="harness.gate", tests=str(len(result.rules)),
                          failures=str(failures), errors="0", skipped=str(skipped))
    ET.SubElement(ET.SubElement(suite, "properties"), "property", name="verdict", value=str(result.verdict))
    for rule in result.rules:
        case = ET.SubElement(suite, "testcase", classname="harness.gate", name=rule.name)
        if result.counts(rule):
            failure = ET.SubElement(case, "failure", message=rule.text, type="critical" if rule.critical else "rule")
            failure.text = result.line(rule)
        elif rule.outcome != Outcome.PASS or rule.muted:
            ET.SubElement(case, "skipped", message=result.line(rule))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def to_markdown(result: GateResult) -> str:
    lines = [f"## Gate: {result.verdict.upper()}", "", result.summary(), ""]
    lines.append(f"Policy `{result.policy}`, source {result.source}, confidence {result.confidence:.0%}.")
    lines += ["", "| rule | measured | condition | outcome |", "|---|---|---|---|"]
    for rule in result.rules:
        measured = "—" if rule.measured is None else f"{rule.measured:.4g}"
        outcome = f"**{result.label(rule)}**" if rule.outcome == Outcome.FAIL else result.label(rule)
        lines.append(f"| `{rule.name}` | {measured} | {_cell(rule.condition)} | {outcome} |")
    details = [rule for rule in result.rules if rule.outcome != Outcome.PASS]
    if details:
        lines += ["", *(f"- `{rule.name}`: {_cell(rule.text)}" for rule in details)]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
