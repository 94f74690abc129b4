"""The report headline: one sentence that leads with the worst finding of a report."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from harness.report import build_report, report_from_json
from harness.report.headline import headline

SIGNALS = 5_000


def scope(ari: float | None, accuracy: float | None, pairs: int = SIGNALS) -> dict[str, Any]:
    return {"pairs": pairs, "ari": ari, "nmi": ari, "matched_accuracy": accuracy}


def side_latency(p99: float | None) -> dict[str, Any]:
    return {"p50": p99, "p95": p99, "p99": p99, "max": p99, "count": SIGNALS, "processing": {}}


def crafted(**changes: Any) -> dict[str, Any]:
    """A clean run of 5,000 signals, with `changes` applied to its sections (dotted paths)."""
    sections: dict[str, Any] = {
        "counts": {"produced": SIGNALS, "legacy_outputs": SIGNALS, "candidate_outputs": SIGNALS,
                   "matched": SIGNALS, "missing_legacy": 0, "missing_candidate": 0, "duplicates": 0,
                   "evicted": 0, "pending": 0, "late": 0, "rejected": 0},
        "agreement": {**scope(1.0, 1.0), "legacy_clusters": 3, "candidate_clusters": 3,
                      "window": {"size": 1000, **scope(1.0, 1.0, 1000)},
                      "anomalies": {"default_label": "normal", **scope(1.0, 1.0, 400)},
                      "truth": None, "per_device": {}, "devices": 0, "cluster_map": {}},
        "latency_ms": {"legacy": side_latency(50.0), "candidate": side_latency(10.0), "p99_ratio": 0.2,
                       "samples": {"legacy": [], "candidate": []}},
        "errors": {"legacy": {"clustered": SIGNALS, "unclustered": 0, "error": 0},
                   "candidate": {"clustered": SIGNALS, "unclustered": 0, "error": 0},
                   "only_legacy": 0, "only_candidate": 0, "both": 0, "by_type": {},
                   "unclustered_only_legacy": 0, "unclustered_only_candidate": 0, "both_unclustered": 0},
        "noise_floor": None,
        "progress": None,
    }
    sections = copy.deepcopy(sections)
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = sections
        for name in parents:
            target = target[name]
        target[leaf] = value
    return build_report(**sections, generated_at="2026-11-26T18:46:59.867Z")


def test_a_clean_run_says_the_candidate_agrees_and_how_fast_it_is() -> None:
    assert headline(crafted()) == ("candidate agrees with legacy (ARI 1.00 on 5,000 signals); p99 5× lower; "
                                   "no new errors")


def test_an_anomalies_only_drop_leads_even_when_the_overall_ari_looks_fine() -> None:
    report = crafted(agreement__ari=0.9978, agreement__anomalies={"default_label": "normal", **scope(0.78, 0.78)})
    assert headline(report) == "candidate disagrees with legacy on 22% of anomalies (ARI 0.78); p99 5× lower; " \
                               "no new errors"


def test_an_overall_disagreement_names_its_share_and_ari() -> None:
    report = crafted(agreement__ari=0.81, agreement__matched_accuracy=0.88)
    assert headline(report).startswith("candidate disagrees with legacy on 12% of 5,000 signals (ARI 0.81); ")


def test_a_stalled_side_leads_with_how_far_behind_it_is() -> None:
    progress = {"join": "progress", "sides": {
        "legacy": {"frontier": "1-0", "awaiting": 12_000, "lag_entries": 12_000, "lag_s": 60.0, "stalled": True,
                   "stalled_for_s": 45.0},
        "candidate": {"frontier": "2-0", "awaiting": 0, "lag_entries": 0, "lag_s": 0.0, "stalled": False,
                      "stalled_for_s": 0.0}}}
    sentence = headline(crafted(progress=progress))
    assert sentence.startswith("legacy is stalled 60 s behind the input (12,000 entries); candidate agrees")
    assert sentence.endswith("; no new errors")


def test_a_lagging_side_is_named_after_the_worse_findings() -> None:
    progress = {"join": "progress", "sides": {
        "candidate": {"frontier": "1-0", "awaiting": 300, "lag_entries": 3_000, "lag_s": 12.0, "stalled": False}}}
    report = crafted(progress=progress, agreement__ari=0.5, agreement__matched_accuracy=0.6)
    assert headline(report).split("; ")[:2] == ["candidate disagrees with legacy on 40% of 5,000 signals (ARI 0.50)",
                                                 "candidate lags 12 s behind the input (3,000 entries)"]


def test_missing_results_lead_with_their_share() -> None:
    report = crafted(counts__matched=6_682, counts__missing_legacy=2_518)
    assert headline(report).startswith("legacy is missing 2,518 results (27%); candidate agrees")


def test_findings_come_worst_first_and_a_clean_agreement_last() -> None:
    report = crafted(errors__only_candidate=40, errors__by_type={
        "Timeout": {"only_legacy": 0, "only_candidate": 40, "both": 0},
        "ValueError": {"only_legacy": 2, "only_candidate": 0, "both": 0}},
        latency_ms__p99_ratio=3.0)
    assert headline(report) == ("new error type Timeout on 40 signals; p99 3× higher; candidate agrees with legacy "
                                "(ARI 1.00 on 5,000 signals)")


def test_more_errors_of_known_types_are_an_error_increase() -> None:
    report = crafted(errors__only_candidate=9, errors__only_legacy=1, errors__by_type={
        "Timeout": {"only_legacy": 1, "only_candidate": 9, "both": 0}})
    assert headline(report).startswith("candidate fails on 9 signals legacy handles (1 the other way); ")


def test_production_losses_lead_everything() -> None:
    report = crafted(agreement__ari=0.5)
    report["cutover"] = {"primary": "candidate", "epoch": 2, "production_missing": 3, "production_duplicates": 0}
    assert headline(report).startswith("production is missing 3 results; candidate disagrees")


@pytest.mark.parametrize(("ratio", "clause"), [(1.05, "p99 on par"), (1.3, "p99 1.3× higher"),
                                                (0.04, "p99 25× lower"), (None, None)])
def test_the_latency_clause_reads_as_a_factor(ratio: float | None, clause: str | None) -> None:
    clauses = headline(crafted(latency_ms__p99_ratio=ratio)).split("; ")
    if clause is None:
        assert clauses == ["candidate agrees with legacy (ARI 1.00 on 5,000 signals)", "no new errors"]
    else:
        assert clauses[1] == clause


def test_a_report_with_nothing_compared_says_so() -> None:
    report = crafted(agreement__ari=None, agreement__pairs=0, latency_ms__p99_ratio=None)
    assert headline(report) == "no signal both sides clustered yet, nothing to compare; no new errors"


def test_the_json_report_carries_the_headline_and_older_ones_still_load() -> None:
    report = crafted(agreement__ari=0.5)
    assert report["headline"] == headline(report)
    assert list(report)[:2] == ["schema", "headline"]
    older = {key: value for key, value in report.items() if key != "headline"}
    assert "headline" not in report_from_json(json.dumps(older))
    with pytest.raises(ValueError, match="headline must be a string"):
        report_from_json(json.dumps({**report, "headline": 3}))


def test_after_a_cutover_the_sentence_names_the_compared_workers_not_the_report_slots() -> None:
    report = crafted(agreement__ari=0.81, agreement__matched_accuracy=0.88, counts__missing_candidate=50,
                     errors__only_candidate=9, errors__only_legacy=1)
    report["sides"] = {"control": "candidate", "candidate": "candidate-v2"}  # experiment v2, after the switch
    sentence = headline(report)
    assert "candidate-v2 is missing 50 results" in sentence
    assert "candidate-v2 disagrees with candidate on 12% of 5,000 signals (ARI 0.81)" in sentence
    assert "candidate-v2 fails on 9 signals candidate handles (1 the other way)" in sentence
    assert "legacy" not in sentence
    report["sides"] = {"control": "legacy", "candidate": "candidate"}
    assert headline(report) == headline({k: v for k, v in report.items() if k != "sides"}), "the default names"
