"""ComparatorState as a specification: joins, missing, duplicates, eviction, restarts and every metric."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from harness.comparator import ComparatorState
from harness.contracts import Outcome, SignalClustered, clustered_to_dict


def result(
    sid: str,
    worker: str,
    label: str | None = "A",
    *,
    outcome: Outcome = "clustered",
    latency: float = 5.0,
    proc: float = 1.0,
    device: str | None = "dev-1",
    kind: str | None = None,
    err_type: str | None = None,
) -> dict[str, Any]:
    return clustered_to_dict(SignalClustered(
        signal_id=sid, worker=worker, model_version="m1", outcome=outcome,
        label=label if outcome == "clustered" else None, is_new_cluster=False,
        entered_at_ms=1_000.0, published_at_ms=1_000.0 + latency, processing_ms=proc,
        device_id=device, true_kind=kind, error_type=err_type,
        error_message="boom" if outcome == "error" else None))


def pairs(state: ComparatorState, legacy: list[str], candidate: list[str], *, start: int = 0,
          now_ms: float = 0.0, **fields: Any) -> None:
    """Feed one clustered pair per position: legacy[i] and candidate[i] are the two labels of signal i."""
    ids = [f"s{start + i}" for i in range(len(legacy))]
    state.ingest("legacy", [result(sid, "legacy", label, **fields) for sid, label in zip(ids, legacy, strict=True)],
                 now_ms)
    state.ingest("candidate",
                 [result(sid, "candidate", label, **fields) for sid, label in zip(ids, candidate, strict=True)],
                 now_ms)


def strip_time(report: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in report.items() if key != "generated_at"}


def test_an_empty_comparator_reports_nulls_not_zeros() -> None:
    report = ComparatorState().report()
    assert report["counts"]["matched"] == 0
    agreement = report["agreement"]
    assert (agreement["ari"], agreement["nmi"], agreement["matched_accuracy"]) == (None, None, None)
    assert agreement["window"]["ari"] is None and agreement["truth"] is None
    assert report["latency_ms"]["legacy"]["p99"] is None and report["latency_ms"]["p99_ratio"] is None
    assert report["noise_floor"] is None and report["cutover"] is None
    json.dumps(report, allow_nan=False)


def test_a_signal_whose_partner_never_arrives_counts_as_missing_after_the_timeout() -> None:
    state = ComparatorState(timeout_ms=1_000)
    state.ingest("legacy", [result("a", "legacy"), result("b", "legacy", outcome="error", err_type="E")], 0.0)
    state.ingest("candidate", [result("c", "candidate")], 10.0)
    state.expire(999.0)
    assert state.report()["counts"]["pending"] == 3
    state.expire(1_010.0)
    report = state.report()
    counts = report["counts"]
    assert (counts["missing_candidate"], counts["missing_legacy"], counts["pending"]) == (2, 1, 0)
    assert counts["matched"] == 0
    # the present side's outcomes still count
    assert report["errors"]["legacy"] == {"clustered": 1, "unclustered": 0, "error": 1}
    assert report["errors"]["candidate"]["clustered"] == 1


def test_redelivered_results_are_counted_once_as_duplicates() -> None:
    state = ComparatorState()
    state.ingest("legacy", [result("a", "legacy"), result("a", "legacy")], 0.0)
    state.ingest("candidate", [result("a", "candidate")], 1.0)
    state.ingest("candidate", [result("a", "candidate", "other")], 2.0)
    state.ingest("legacy", [result("a", "legacy")], 3.0)
    counts = state.report()["counts"]
    assert (counts["duplicates"], counts["matched"]) == (3, 1)
    assert (counts["legacy_outputs"], counts["candidate_outputs"]) == (1, 1)
    assert state.report()["latency_ms"]["legacy"]["count"] == 1


def test_evicted_signals_are_accounted_for_not_dropped() -> None:
    state = ComparatorState(max_pending=5)
    state.ingest("legacy", [result(f"s{i}", "legacy") for i in range(8)], 0.0)
    counts = state.report()["counts"]
    assert (counts["evicted"], counts["pending"], counts["legacy_outputs"]) == (3, 5, 8)
    # the partner of an evicted signal arrives late: counted as output, never joined
    state.ingest("candidate", [result("s0", "candidate"), result("s7", "candidate")], 1.0)
    counts = state.report()["counts"]
    assert (counts["late"], counts["matched"], counts["candidate_outputs"]) == (1, 1, 2)


def test_results_that_break_the_contract_are_rejected_and_counted() -> None:
    state = ComparatorState()
    good = result("a", "legacy")
    state.ingest("legacy", [{"id": None}, {**good, "outcome": "weird"}, {**good, "entered_ms": None}, good], 0.0)
    counts = state.report()["counts"]
    assert (counts["rejected"], counts["legacy_outputs"]) == (3, 1)
    with pytest.raises(ValueError, match="unknown side"):
        state.ingest("replica", [good], 0.0)


def synthetic_run(n: int, seed: int) -> list[tuple[str, list[dict[str, Any]], float]]:
    """A deterministic interleaving of batches, with errors, duplicates and late partners."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 5, n)
    steps: list[tuple[str, list[dict[str, Any]], float]] = []
    for start in range(0, n, 50):
        ids = range(start, min(n, start + 50))
        for side, noise in (("legacy", 0.1), ("candidate", 0.2)):
            batch = []
            for i in ids:
                label = int(truth[i]) if rng.random() > noise else int(rng.integers(0, 7))
                failed = rng.random() < 0.03
                if side == "candidate" and rng.random() < 0.02:
                    continue  # never arrives: missing
                batch.append(result(
                    f"s{i}", side, f"{side[0]}{label}", outcome="error" if failed else "clustered",
                    err_type="Timeout" if failed else None, latency=float(rng.lognormal(1, 0.5)),
                    device=f"dev-{i % 4}", kind=f"k{truth[i]}"))
            batch += batch[:3]  # redelivered
            steps.append((side, batch, float(start)))
    return steps


def test_restart_from_bytes_continues_exactly_like_an_uninterrupted_run() -> None:
    steps = synthetic_run(1_200, seed=2)
    options: dict[str, Any] = {"timeout_ms": 200.0, "window": 100, "sample_size": 50}
    straight = ComparatorState(**options)
    restarted = ComparatorState(**options)
    for position, (side, batch, now) in enumerate(steps):
        straight.ingest(side, batch, now)
        straight.expire(now)
        restarted.ingest(side, batch, now)
        restarted.expire(now)
        if position % 7 == 3:
            payload = restarted.to_bytes()
            restarted = ComparatorState.from_bytes(payload)
            assert restarted.to_bytes() == payload
    for state in (straight, restarted):
        state.expire(1e9)
    stamp = "2030-01-01T00:00:00.000Z"
    assert restarted.report(1_200, generated_at=stamp) == straight.report(1_200, generated_at=stamp)
    counts = straight.report()["counts"]
    assert counts["duplicates"] == 3 * len(steps)
    assert counts["missing_candidate"] > 0 and counts["pending"] == 0


def test_from_bytes_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a saved comparator state"):
        ComparatorState.from_bytes(b"\x93garbage")


def test_window_agreement_reflects_only_the_most_recent_pairs() -> None:
    state = ComparatorState(window=100)
    pairs(state, ["A", "B"] * 500, ["X", "X"] * 500)  # total disagreement early on
    pairs(state, ["A", "B"] * 50, ["X", "Y"] * 50, start=1_000)  # perfect agreement lately
    agreement = state.report()["agreement"]
    assert agreement["window"] == {"size": 100, "pairs": 100, "ari": 1.0, "nmi": 1.0, "matched_accuracy": 1.0}
    assert agreement["ari"] < 0.1
    assert agreement["pairs"] == 1_100


def test_agreement_per_device() -> None:
    state = ComparatorState()
    pairs(state, ["A", "B"] * 20, ["X", "Y"] * 20, device="good")
    pairs(state, ["A", "B"] * 10, ["X", "X"] * 10, device="bad", start=100)
    per_device = state.report()["agreement"]["per_device"]
    assert per_device["good"] == {"pairs": 40, "ari": 1.0, "nmi": 1.0, "matched_accuracy": 1.0}
    assert per_device["bad"]["pairs"] == 20
    assert per_device["bad"]["ari"] == pytest.approx(adjusted_rand_score(["A", "B"] * 10, ["X", "X"] * 10))
    assert per_device["bad"]["matched_accuracy"] == pytest.approx(0.5)
    assert state.report()["agreement"]["devices"] == 2


def test_agreement_with_ground_truth_for_each_side() -> None:
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 4, 300)
    legacy = np.where(rng.random(300) < 0.9, truth, rng.integers(0, 4, 300))
    candidate = np.where(rng.random(300) < 0.6, truth, rng.integers(0, 4, 300))
    state = ComparatorState()
    for i in range(300):
        state.ingest("legacy", [result(f"s{i}", "legacy", f"L{legacy[i]}", kind=f"k{truth[i]}")], float(i))
        state.ingest("candidate", [result(f"s{i}", "candidate", f"C{candidate[i]}", kind=f"k{truth[i]}")], float(i))
    truth_section = state.report()["agreement"]["truth"]
    assert truth_section["pairs"] == 300
    assert truth_section["legacy_ari"] == pytest.approx(adjusted_rand_score(truth, legacy), abs=1e-9)
    assert truth_section["candidate_ari"] == pytest.approx(adjusted_rand_score(truth, candidate), abs=1e-9)
    assert truth_section["candidate_nmi"] == pytest.approx(normalized_mutual_info_score(truth, candidate), abs=1e-9)
    assert truth_section["legacy_ari"] > truth_section["candidate_ari"]


def test_error_divergence_by_type_and_unclustered_on_one_side() -> None:
    state = ComparatorState()
    legacy = [result("a", "legacy", outcome="error", err_type="ValueError"),
              result("b", "legacy"),
              result("c", "legacy", outcome="error", err_type="Timeout"),
              result("d", "legacy", outcome="error", err_type="ValueError"),
              result("e", "legacy", outcome="unclustered"),
              result("f", "legacy")]
    candidate = [result("a", "candidate"),
                 result("b", "candidate", outcome="error", err_type="MemoryError"),
                 result("c", "candidate", outcome="error", err_type="Timeout"),
                 result("d", "candidate", outcome="error", err_type="KeyError"),
                 result("e", "candidate"),
                 result("f", "candidate", outcome="unclustered")]
    state.ingest("legacy", legacy, 0.0)
    state.ingest("candidate", candidate, 0.0)
    errors = state.report()["errors"]
    assert (errors["only_legacy"], errors["only_candidate"], errors["both"]) == (1, 1, 2)
    assert errors["by_type"] == {
        "ValueError": {"only_legacy": 1, "only_candidate": 0, "both": 1},
        "Timeout": {"only_legacy": 0, "only_candidate": 0, "both": 1},
        "MemoryError": {"only_legacy": 0, "only_candidate": 1, "both": 0},
        "KeyError": {"only_legacy": 0, "only_candidate": 0, "both": 1},
    }
    assert (errors["unclustered_only_legacy"], errors["unclustered_only_candidate"]) == (1, 1)
    assert errors["legacy"] == {"clustered": 2, "unclustered": 1, "error": 3}
    assert state.report()["agreement"]["pairs"] == 0


def test_latency_per_side_and_the_p99_ratio() -> None:
    rng = np.random.default_rng(8)
    legacy_latency, candidate_latency = rng.uniform(10, 20, 2_000), rng.uniform(20, 40, 2_000)
    state = ComparatorState(sample_size=500)
    state.ingest("legacy", [result(f"s{i}", "legacy", latency=float(v), proc=float(v) / 2)
                            for i, v in enumerate(legacy_latency)], 0.0)
    state.ingest("candidate", [result(f"s{i}", "candidate", latency=float(v))
                               for i, v in enumerate(candidate_latency)], 0.0)
    latency = state.report()["latency_ms"]
    for q in (50, 95, 99):
        assert latency["legacy"][f"p{q}"] == pytest.approx(np.percentile(legacy_latency, q), rel=2e-3)
    assert latency["legacy"]["processing"]["p50"] == pytest.approx(np.percentile(legacy_latency, 50) / 2, rel=2e-3)
    assert latency["legacy"]["max"] == pytest.approx(legacy_latency.max())
    expected_ratio = np.percentile(candidate_latency, 99) / np.percentile(legacy_latency, 99)
    assert latency["p99_ratio"] == pytest.approx(expected_ratio, rel=4e-3)
    assert len(latency["samples"]["legacy"]) == 500
    sample = np.asarray(latency["samples"]["candidate"])
    assert np.abs(sample[:, None] - candidate_latency[None, :]).min(axis=1).max() < 1e-9


def test_a_replica_side_adds_the_noise_floor() -> None:
    state = ComparatorState(sides=("legacy", "candidate", "replica"), timeout_ms=100)
    labels = ["A", "B", "C"] * 30
    ids = [f"s{i}" for i in range(90)]
    state.ingest("legacy", [result(s, "legacy", x, latency=10.0) for s, x in zip(ids, labels, strict=True)], 0.0)
    state.ingest("replica", [result(s, "replica", x, latency=12.0) for s, x in zip(ids, labels, strict=True)], 0.0)
    state.ingest("candidate", [result(s, "candidate", "Z") for s in ids[:60]], 0.0)
    state.expire(500.0)
    report = state.report()
    assert report["counts"]["matched"] == 60
    assert report["counts"]["missing_candidate"] == 30
    noise = report["noise_floor"]
    assert (noise["matched"], noise["ari"], noise["matched_accuracy"], noise["missing_replica"]) == (90, 1.0, 1.0, 0)
    assert noise["latency_ms"]["p99_spread"] == pytest.approx(2.0, rel=1e-2)
    assert noise["latency_ms"]["p99_ratio"] == pytest.approx(1.2, rel=1e-2)
    with pytest.raises(ValueError, match="sides must be"):
        ComparatorState(sides=("legacy", "replica"))
