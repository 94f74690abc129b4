"""The comparator's Prometheus metrics, mirrored from its report at each checkpoint (ComparatorObserver).

Counters follow the state's cumulative counts: each rises by what its count gained past the highest
value seen, so a resume from the last checkpoint (counts step back, then climb again) counts nothing
twice, and a restarted comparator starts its counters where its checkpoint stood. A ratio or a
latency that cannot be measured yet (no pairs) is NaN, never 0: NaN fails no threshold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from harness.comparator.service import ComparatorObserver

SCOPES = ("overall", "window", "anomalies")  # agreement over the whole run, the recent window, the anomalies
COUNTED_SIDES = ("legacy", "candidate")  # the report counts outputs and missing results for these two
# report["counts"] key -> (metric, help); one counter each, without labels.
TOTALS = {
    "matched": ("harness_comparator_matched_total", "Signals both sides answered, joined."),
    "duplicates": ("harness_comparator_duplicates_total", "Results for a signal a side had already answered."),
    "late": ("harness_comparator_late_total", "Results for a signal already counted missing or evicted."),
    "rejected": ("harness_comparator_rejected_total", "Results that break the contract."),
    "evicted": ("harness_comparator_evicted_total", "Signals dropped unjoined past --max-pending."),
}


class _Mirror:
    """A counter that follows a cumulative count kept elsewhere, by its high-water mark."""

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._high = 0

    def follow(self, total: Any) -> None:
        if isinstance(total, int) and total > self._high:
            self._counter.inc(total - self._high)
            self._high = total


class ComparatorMetrics(ComparatorObserver):
    def __init__(self, sides: Sequence[str], registry: CollectorRegistry) -> None:
        self._sides = tuple(sides)
        self._mirrors = {key: _Mirror(Counter(name, text, registry=registry)) for key, (name, text) in TOTALS.items()}
        missing = Counter("harness_comparator_missing_total", "Signals a side never answered, by side.",
                          ("side",), registry=registry)
        outputs = Counter("harness_comparator_results_total", "Results read from a side.", ("side",),
                          registry=registry)
        for side in COUNTED_SIDES:
            self._mirrors[f"missing_{side}"] = _Mirror(missing.labels(side))
            self._mirrors[f"{side}_outputs"] = _Mirror(outputs.labels(side))
        self._pending = Gauge("harness_comparator_pending_joins", "Signals waiting for a partner's result.",
                              registry=registry)
        self._checkpoint = Gauge("harness_comparator_last_checkpoint_timestamp_seconds", "When the comparator "
                                 "last checkpointed (Unix time, store clock); 0 before its first.", registry=registry)
        self._agreement = {
            key: _by(registry, name, text, "scope", SCOPES) for key, name, text in (
                ("ari", "harness_comparator_ari", "Adjusted Rand index of the two sides' clusterings (1: identical)."),
                ("nmi", "harness_comparator_nmi", "Normalised mutual information of the two clusterings, 0-1."),
                ("matched_accuracy", "harness_comparator_matched_accuracy_ratio",
                 "Share of pairs that agree under the best one-to-one label mapping, 0-1."),
                ("pairs", "harness_comparator_agreement_pairs", "Matched pairs the agreement is measured on."))}
        self._p99 = _by(registry, "harness_comparator_end_to_end_p99_seconds", "99th percentile of input-to-"
                        "published latency, by side.", "side", COUNTED_SIDES)
        self._lag_entries = _by(registry, "harness_comparator_lag_entries", "Input entries a side's worker has "
                                "not processed yet.", "side", self._sides)
        self._lag_seconds = _by(registry, "harness_comparator_lag_seconds", "Newest input minus the input "
                                "entry of a side's latest result, in seconds.", "side", self._sides)
        self._awaiting = _by(registry, "harness_comparator_awaiting_signals", "Signals a side has yet to answer "
                             "that another side already has.", "side", self._sides)
        self._stalled = _by(registry, "harness_comparator_side_stalled", "1 while a side's results have not moved "
                            "for --stall-after with input left for it.", "side", self._sides, initial=0.0)
        self._pending.set(0)

    def restored(self, counts: Mapping[str, Any]) -> None:
        self._follow(counts)

    def checkpointed(self, report: Mapping[str, Any], lag: Mapping[str, Mapping[str, Any]], at_s: float) -> None:
        self._follow(report["counts"])
        agreement = report["agreement"]
        for scope, section in zip(SCOPES, (agreement, agreement["window"], agreement["anomalies"]), strict=True):
            for key, gauge in self._agreement.items():
                gauge.labels(scope).set(_number(section.get(key)))
        latency = report["latency_ms"]
        for side in COUNTED_SIDES:
            p99_ms = _number(latency.get(side, {}).get("p99"))
            self._p99.labels(side).set(p99_ms / 1000.0)
        progress = report.get("progress", {}).get("sides", {})
        for side in self._sides:
            figures = lag.get(side, {})
            self._lag_entries.labels(side).set(_number(figures.get("lag_entries")))
            self._lag_seconds.labels(side).set(_number(figures.get("lag_s")))
            self._stalled.labels(side).set(1.0 if figures.get("stalled") else 0.0)
            self._awaiting.labels(side).set(_number(progress.get(side, {}).get("awaiting")))
        self._checkpoint.set(at_s)

    def _follow(self, counts: Mapping[str, Any]) -> None:
        for key, mirror in self._mirrors.items():
            mirror.follow(counts.get(key))
        self._pending.set(_number(counts.get("pending")))


def _by(registry: CollectorRegistry, name: str, documentation: str, label: str, values: Sequence[str],
        initial: float = math.nan) -> Gauge:
    """A gauge by `label`, each of `values` set to `initial` (NaN: not measured yet)."""
    gauge = Gauge(name, documentation, (label,), registry=registry)
    for value in values:
        gauge.labels(value).set(initial)
    return gauge


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
