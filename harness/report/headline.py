"""The report's headline: one sentence that leads with its worst finding (pure; no I/O).

Each finding is a clause with a severity; the clauses are sorted worst first (ties keep the order
agreement, latency, errors) and joined with semicolons.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

AGREES_ARI = 0.95  # below this ARI (all pairs or anomalies) the candidate "disagrees" with legacy
LAGGING_S = 10.0  # a side this many seconds behind the input is lagging
LAGGING_AWAITING = 10_000  # without a lag in seconds (saved reports), this many awaited results is lagging
SLOWER_RATIO = 2.0  # a candidate p99 this many times legacy's is a finding of its own
SAME_RATIO = 0.1  # p99 within 10 % of legacy's reads as "on par"

# Severities: the higher, the earlier its clause in the sentence.
PRODUCTION = 100  # production lost or duplicated results
STALLED = 90
MISSING = 80
NOTHING = 75  # nothing to compare yet: after what explains it (a stalled side, missing results)
NEW_ERRORS = 70
MORE_ERRORS = 60
DISAGREES = 50
LAGGING = 40
SLOWER = 30
FINE = 0


class Finding(NamedTuple):
    severity: int
    text: str


class Names(NamedTuple):
    """The compared workers as the sentence names them: the report's slots are "legacy" and "candidate",
    whichever workers fill them (after a cutover: the old candidate as control, its successor as candidate)."""

    control: str = "legacy"
    candidate: str = "candidate"

    @staticmethod
    def of(report: Mapping[str, Any]) -> Names:
        sides = report.get("sides")
        if not isinstance(sides, Mapping):
            return Names()
        control, candidate = sides.get("control"), sides.get("candidate")
        return Names(control if isinstance(control, str) and control else "legacy",
                     candidate if isinstance(candidate, str) and candidate else "candidate")

    def slot(self, side: str) -> str:
        """A report slot's worker ("legacy": the control); any other side (a replica) as it is."""
        return {"legacy": self.control, "candidate": self.candidate}.get(side, side)


def headline(report: Mapping[str, Any]) -> str:
    sides = report.get("sides")
    if isinstance(sides, Mapping) and "control" in sides and sides["control"] is None:
        return _alone(report)
    names = Names.of(report)
    findings = [*_production(report.get("cutover")), *_progress(report.get("progress"), names),
                *_missing(report["counts"], names), _agreement(report["agreement"], names),
                *_latency(report["latency_ms"]), _errors(report["errors"], names)]
    ranked = sorted(findings, key=lambda finding: -finding.severity)  # stable: ties keep their order
    return "; ".join(finding.text for finding in ranked)


def _alone(report: Mapping[str, Any]) -> str:
    """A candidate backtested alone: nothing to compare with, only the truth to score it on."""
    truth = report["agreement"].get("truth") or {}
    ari, signals = truth.get("candidate_ari"), truth.get("pairs") or report["counts"].get("candidate_outputs", 0)
    score = "no labelled signals" if ari is None else f"truth ARI {ari:.2f} on {_n(signals)} labelled signals"
    names = Names.of(report)
    return f"{names.candidate} scored alone against the truth: {score}; {_errors(report['errors'], names).text}"


def _production(cutover: Mapping[str, Any] | None) -> list[Finding]:
    if not cutover:
        return []
    lost, twice = cutover.get("production_missing") or 0, cutover.get("production_duplicates") or 0
    found = []
    if lost:
        found.append(Finding(PRODUCTION, f"production is missing {_n(lost)} results"))
    if twice:
        found.append(Finding(PRODUCTION, f"production got {_n(twice)} signals twice"))
    return found


def _progress(progress: Mapping[str, Any] | None, names: Names) -> list[Finding]:
    """The side furthest behind, if it is stalled or lagging."""
    if not progress:
        return []
    behind = [(finding, figures.get("lag_s") or 0.0, figures.get("awaiting") or 0)
              for side, figures in progress.get("sides", {}).items()
              if (finding := _side_progress(names.slot(side), figures)) is not None]
    if not behind:
        return []
    worst = max(behind, key=lambda item: (item[0].severity, item[1], item[2]))
    return [worst[0]]


def _side_progress(side: str, figures: Mapping[str, Any]) -> Finding | None:
    lag_s, entries, awaiting = figures.get("lag_s"), figures.get("lag_entries"), figures.get("awaiting") or 0
    behind = f" {_seconds(lag_s)} behind the input" if lag_s is not None else ""
    detail = f" ({_n(entries)} entries)" if entries else f" ({_n(awaiting)} results awaited)" if awaiting else ""
    if figures.get("stalled"):
        return Finding(STALLED, f"{side} is stalled{behind or ' behind the input'}{detail}")
    if (lag_s is not None and lag_s >= LAGGING_S) or (lag_s is None and awaiting >= LAGGING_AWAITING):
        return Finding(LAGGING, f"{side} lags{behind}{detail}")
    return None


def _missing(counts: Mapping[str, Any], names: Names) -> list[Finding]:
    missing = {side: counts.get(f"missing_{side}") or 0 for side in ("legacy", "candidate")}
    total = counts.get("matched", 0) + sum(missing.values())
    found = []
    for side, count in sorted(missing.items(), key=lambda item: -item[1]):
        if count:
            found.append(Finding(MISSING, f"{names.slot(side)} is missing {_n(count)} results "
                                          f"({_percent(count / total)})"))
    return found


def _agreement(agreement: Mapping[str, Any], names: Names) -> Finding:
    ari, pairs = agreement.get("ari"), agreement.get("pairs") or 0
    if ari is None or not pairs:
        return Finding(NOTHING, "no signal both sides clustered yet, nothing to compare")
    anomalies = agreement.get("anomalies") or {}
    anomaly_ari = anomalies.get("ari")
    pair, control = names.candidate, names.control
    if anomaly_ari is not None and anomaly_ari < AGREES_ARI and anomaly_ari < ari:
        return Finding(DISAGREES, f"{pair} disagrees with {control}{_disagreement(anomalies)} anomalies "
                                  f"(ARI {anomaly_ari:.2f})")
    if ari < AGREES_ARI:
        if agreement.get("matched_accuracy") is None:
            return Finding(DISAGREES, f"{pair} disagrees with {control} (ARI {ari:.2f} on {_n(pairs)} signals)")
        return Finding(DISAGREES, f"{pair} disagrees with {control}{_disagreement(agreement)} {_n(pairs)} signals "
                                  f"(ARI {ari:.2f})")
    return Finding(FINE, f"{pair} agrees with {control} (ARI {ari:.2f} on {_n(pairs)} signals)")


def _disagreement(scope: Mapping[str, Any]) -> str:
    # Matched accuracy is the share on the best one-to-one cluster matching: its complement is
    # the share of signals put in a cluster the other side would not have chosen.
    accuracy = scope.get("matched_accuracy")
    return " on" if accuracy is None else f" on {_percent(1.0 - accuracy)} of"


def _latency(latency: Mapping[str, Any]) -> list[Finding]:
    ratio = latency.get("p99_ratio")
    if ratio is None or ratio <= 0:
        return []
    if abs(ratio - 1.0) <= SAME_RATIO:
        return [Finding(FINE, "p99 on par")]
    if ratio < 1.0:
        return [Finding(FINE, f"p99 {_factor(1.0 / ratio)} lower")]
    return [Finding(SLOWER if ratio >= SLOWER_RATIO else FINE, f"p99 {_factor(ratio)} higher")]


def _errors(errors: Mapping[str, Any], names: Names) -> Finding:
    """New error types (only the candidate has them) first, then more candidate-only errors."""
    new_types = {name: figures.get("only_candidate", 0) for name, figures in errors.get("by_type", {}).items()
                 if figures.get("only_candidate", 0) and not figures.get("only_legacy") and not figures.get("both")}
    if new_types:
        listed = ", ".join(sorted(new_types, key=lambda name: -new_types[name])[:3])
        plural = "s" if len(new_types) > 1 else ""
        return Finding(NEW_ERRORS, f"new error type{plural} {listed} on {_n(sum(new_types.values()))} signals")
    only_candidate, only_legacy = errors.get("only_candidate", 0), errors.get("only_legacy", 0)
    if only_candidate > only_legacy:
        return Finding(MORE_ERRORS, f"{names.candidate} fails on {_n(only_candidate)} signals {names.control} handles "
                                    f"({_n(only_legacy)} the other way)")
    return Finding(FINE, "no new errors")


def _n(value: int) -> str:
    return f"{value:,}"


def _percent(fraction: float) -> str:
    percent = fraction * 100
    if 0 < percent < 1:
        return "<1%"
    return f"{percent:.0f}%"


def _factor(ratio: float) -> str:
    return f"{ratio:.0f}×" if ratio >= 10 else f"{ratio:.1f}".removesuffix(".0") + "×"


def _seconds(value: float) -> str:
    if value >= 120:
        return f"{value / 60:.0f} min"
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"
