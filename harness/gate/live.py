"""The gate as commands run it: a loaded report judged (or failed closed), and the live gate of a cutover."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.gate import judge, load_policy, unusable
from harness.gate.policy import Policy
from harness.gate.verdict import GateResult, Outcome
from harness.report.source import LoadedReport, live_report

if TYPE_CHECKING:
    import redis


def judge_loaded(loaded: LoadedReport, policy: Policy) -> GateResult:
    """Judge what a source gave; no report at all is a failed gate saying why, never a pass."""
    if loaded.report is None:
        return unusable(loaded.problem or "no report", confidence=policy.confidence, source=loaded.source,
                        policy=policy.source)
    return judge(loaded.report, policy, candidate=loaded.candidate, candidate_env=loaded.candidate_env,
                 source=loaded.source)


def live_gate(client: redis.Redis, policy: Path, where: str, experiment: str | None = None,
              partitions: int | None = None) -> GateResult:
    """Judge an experiment's live comparison in Redis (default: the current one; `where`: how to name that
    Redis, password hidden), merged over the comparator shards' partitions (None: HARNESS_PARTITIONS)."""
    return judge_loaded(live_report(client, where, experiment, partitions), load_policy(policy))


def gate_summary(result: GateResult) -> str:
    """One line for an audit trail: why it could not judge, or how many rules and which failed."""
    if result.problem is not None:
        return result.problem
    failed = [rule.name for rule in result.rules if rule.outcome == Outcome.FAIL]
    return f"{len(result.rules)} rules" + (f", failed: {', '.join(failed)}" if failed else "")
