"""The report's truth section: every labelled signal scored, declined, failed and missing ones each in a bucket."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from harness.comparator.state import ComparatorState


def result(sid: str, side: str, label: str | None, kind: str | None, outcome: str = "clustered") -> dict[str, Any]:
    return {"v": 1, "id": sid, "worker": side, "outcome": outcome, "label": label, "entered_ms": 0.0,
            "published_ms": 5.0, "proc_ms": 1.0, "device": "d0", "kind": kind, "err_type": "E"}


def feed(state: ComparatorState, side: str, outcomes: list[tuple[str | None, str]], kinds: list[str]) -> None:
    state.ingest(side, [result(f"s{i}", side, label, kind, outcome)
                        for i, ((label, outcome), kind) in enumerate(zip(outcomes, kinds, strict=True))], 0.0)


def as_outcomes(labels: list[str | None]) -> list[tuple[str | None, str]]:
    """None stands for a declined signal, "!" for a failed one."""
    return [(None, "unclustered") if label is None else (None, "error") if label == "!" else (label, "clustered")
            for label in labels]


def truth_of(legacy: list[str | None], candidate: list[str | None], kinds: list[str]) -> dict[str, Any]:
    state = ComparatorState()
    feed(state, "legacy", as_outcomes(legacy), kinds)
    feed(state, "candidate", as_outcomes(candidate), kinds)
    state.expire(float("inf"))
    truth = state.report(len(kinds))["agreement"]["truth"]
    assert truth is not None
    return truth


def test_a_side_that_declines_everything_scores_zero_not_a_perfect_score_on_what_is_left() -> None:
    kinds = ["a", "b"] * 50
    declines_but_one = [None] * 98 + ["x", "y"]  # the two it clusters, it gets right
    truth = truth_of(list(kinds), declines_but_one, kinds)
    assert truth["pairs"] == 100
    assert truth["legacy_ari"] == 1.0
    assert truth["candidate_ari"] == pytest.approx(adjusted_rand_score(kinds, ["u"] * 98 + ["x", "y"]), abs=1e-12)
    assert truth["candidate_ari"] < 0.05
    assert truth["candidate_outcomes"] == {"clustered": 2, "unclustered": 98, "error": 0, "missing": 0}


def test_declined_and_failed_signals_are_each_one_bucket_as_scikit_learn_sees_them() -> None:
    rng = np.random.default_rng(3)
    kinds = [f"k{k}" for k in rng.integers(0, 4, 400)]
    candidate: list[str | None] = []
    for kind, draw in zip(kinds, rng.random(400), strict=True):
        candidate.append(None if draw < 0.1 else "!" if draw < 0.2 else f"C{kind}" if draw < 0.8 else "Cx")
    buckets = ["(declined)" if c is None else "(failed)" if c == "!" else c for c in candidate]
    truth = truth_of(list(kinds), candidate, kinds)
    assert truth["candidate_ari"] == pytest.approx(adjusted_rand_score(kinds, buckets), abs=1e-9)
    assert truth["candidate_nmi"] == pytest.approx(normalized_mutual_info_score(kinds, buckets), abs=1e-9)
    assert truth["candidate_clusters"] == 5 and truth["legacy_clusters"] == 4 and truth["kinds"] == 4


def test_each_true_kind_has_its_purity_and_recall_per_side() -> None:
    kinds = ["sag"] * 10 + ["spike"] * 10
    # legacy: sags 8 in A, 2 declined; spikes 6 in A, 4 in B -> A is 8 sags of 14
    legacy: list[str | None] = ["A"] * 8 + [None] * 2 + ["A"] * 6 + ["B"] * 4
    truth = truth_of(legacy, list(kinds), kinds)
    sag, spike = truth["per_kind"]["sag"], truth["per_kind"]["spike"]
    assert sag["signals"] == 10 and spike["signals"] == 10
    assert sag["legacy"] == {"cluster": "A", "recall": 0.8, "purity": 8 / 14, "unclustered": 2, "error": 0,
                             "missing": 0}
    assert spike["legacy"]["cluster"] == "A" and spike["legacy"]["recall"] == 0.6
    assert spike["legacy"]["purity"] == 6 / 14
    assert sag["candidate"]["recall"] == sag["candidate"]["purity"] == 1.0


def test_a_kind_that_is_only_declined_is_not_recalled() -> None:
    kinds = ["a"] * 5 + ["b"] * 5
    truth = truth_of(["x"] * 5 + [None] * 5, list(kinds), kinds)
    assert truth["per_kind"]["b"]["legacy"] == {"cluster": None, "recall": 0.0, "purity": None, "unclustered": 5,
                                                "error": 0, "missing": 0}


def test_a_signal_only_one_side_answered_counts_as_missing_on_the_other() -> None:
    state = ComparatorState()
    kinds = ["a", "b"] * 10
    feed(state, "legacy", [(k, "clustered") for k in kinds], kinds)
    feed(state, "candidate", [(k, "clustered") for k in kinds[:15]], kinds[:15])
    state.expire(float("inf"))
    truth = state.report(20)["agreement"]["truth"]
    assert truth["pairs"] == 20
    assert truth["candidate_outcomes"] == {"clustered": 15, "unclustered": 0, "error": 0, "missing": 5}
    assert truth["legacy_ari"] == 1.0 and truth["candidate_ari"] < 1.0


def test_signals_without_a_true_kind_leave_the_truth_null() -> None:
    state = ComparatorState()
    state.ingest("legacy", [result("s0", "legacy", "A", None)], 0.0)
    state.ingest("candidate", [result("s0", "candidate", "A", None)], 0.0)
    assert state.report(1)["agreement"]["truth"] is None


def test_the_sample_holds_aligned_triples_and_is_bounded() -> None:
    rng = np.random.default_rng(5)
    n = 3_000
    kinds = [f"k{k}" for k in rng.integers(0, 3, n)]
    legacy = [f"L{k}" for k in rng.integers(0, 4, n)]
    candidate = [f"C{k}" for k in rng.integers(0, 5, n)]
    state = ComparatorState(sample_size=500)
    for start in range(0, n, 700):  # batches of another size than the reservoir
        ids = range(start, min(start + 700, n))
        state.ingest("legacy", [result(f"s{i}", "legacy", legacy[i], kinds[i]) for i in ids], 0.0)
        state.ingest("candidate", [result(f"s{i}", "candidate", candidate[i], kinds[i]) for i in ids], 0.0)
    sample = state.report(n)["agreement"]["truth"]["sample"]
    assert sample["seen"] == n and len(sample["kind"]) == len(sample["legacy"]) == len(sample["candidate"]) == 500
    # codes are numbered in order of first appearance
    kind_of, legacy_of, candidate_of = (list(dict.fromkeys(names)) for names in (kinds, legacy, candidate))
    decoded = {(kind_of[k], legacy_of[left], candidate_of[right])
               for k, left, right in zip(sample["kind"], sample["legacy"], sample["candidate"], strict=True)}
    assert decoded <= set(zip(kinds, legacy, candidate, strict=True))
    assert len(decoded) > 50  # a real spread of triples, not one repeated


def test_the_truth_survives_a_restart_of_the_comparator() -> None:
    state = ComparatorState()
    kinds = ["a", "b", "c"] * 20
    feed(state, "legacy", as_outcomes(["x"] * 60), kinds)
    feed(state, "candidate", as_outcomes([None if i % 7 == 0 else k for i, k in enumerate(kinds)]), kinds)
    state.expire(float("inf"))
    restored = ComparatorState.from_bytes(state.to_bytes())
    assert restored.report(60)["agreement"]["truth"] == state.report(60)["agreement"]["truth"]
