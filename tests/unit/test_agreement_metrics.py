"""Streaming agreement metrics match scikit-learn and a brute-force matching, whatever the batching."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from harness.comparator import ComparatorState
from harness.comparator.agreement import DENSE_CELLS, Table, ari, cluster_map, matched_accuracy, nmi
from harness.contracts import SignalClustered, clustered_to_dict


def result(sid: str, worker: str, label: str) -> dict[str, Any]:
    return clustered_to_dict(SignalClustered(
        signal_id=sid, worker=worker, model_version="m", outcome="clustered", label=label,
        is_new_cluster=False, entered_at_ms=0.0, published_at_ms=5.0, processing_ms=1.0, device_id="d"))


def table_of(rows: list[int], cols: list[int]) -> Table:
    return Table.from_pairs(np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))


def brute_force_accuracy(rows: list[int], cols: list[int]) -> float:
    """Try every one-to-one assignment of the smaller label set into the larger one."""
    row_set, col_set = sorted(set(rows)), sorted(set(cols))
    counts: dict[tuple[int, int], int] = {}
    for pair in zip(rows, cols, strict=True):
        counts[pair] = counts.get(pair, 0) + 1
    best = 0
    if len(row_set) <= len(col_set):
        for chosen in itertools.permutations(col_set, len(row_set)):
            best = max(best, sum(counts.get((r, c), 0) for r, c in zip(row_set, chosen, strict=True)))
    else:
        for chosen in itertools.permutations(row_set, len(col_set)):
            best = max(best, sum(counts.get((r, c), 0) for r, c in zip(chosen, col_set, strict=True)))
    return best / len(rows)


label_pairs = st.one_of(
    # general: a few labels on each side
    st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=120),
    # one cluster on a side, or on both
    st.lists(st.tuples(st.just(0), st.integers(0, 3)), min_size=1, max_size=40),
    st.lists(st.tuples(st.integers(0, 3), st.just(0)), min_size=1, max_size=40),
    st.lists(st.tuples(st.just(0), st.just(0)), min_size=1, max_size=10),
    # every signal its own cluster on one or both sides
    st.integers(1, 60).map(lambda n: [(i, i) for i in range(n)]),
    st.integers(1, 60).map(lambda n: [(i, 0) for i in range(n)]),
    st.integers(1, 60).map(lambda n: [(i, i % 3) for i in range(n)]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pairs=label_pairs, data=st.data())
def test_streaming_ari_and_nmi_equal_sklearn_for_any_batching(pairs: list[tuple[int, int]], data: Any) -> None:
    legacy = [f"L{a}" for a, _ in pairs]
    candidate = [f"C{b}" for _, b in pairs]
    state = ComparatorState()
    legacy_records = [result(f"s{i}", "legacy", label) for i, label in enumerate(legacy)]
    candidate_records = [result(f"s{i}", "candidate", label) for i, label in enumerate(candidate)]
    # random batch sizes, legacy and candidate interleaved in a random order
    queues = {"legacy": legacy_records, "candidate": candidate_records}
    now = 0.0
    while queues["legacy"] or queues["candidate"]:
        side = data.draw(st.sampled_from([s for s, q in queues.items() if q]))
        size = data.draw(st.integers(1, max(1, len(queues[side]))))
        batch, queues[side] = queues[side][:size], queues[side][size:]
        now += 1.0
        state.ingest(side, batch, now)
    agreement = state.report()["agreement"]
    assert agreement["pairs"] == len(pairs)
    assert agreement["ari"] == pytest.approx(adjusted_rand_score(legacy, candidate), abs=1e-9)
    assert agreement["nmi"] == pytest.approx(normalized_mutual_info_score(legacy, candidate), abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=30))
def test_matched_accuracy_is_the_best_one_to_one_matching(pairs: list[tuple[int, int]]) -> None:
    rows, cols = [a for a, _ in pairs], [b for _, b in pairs]
    assert matched_accuracy(table_of(rows, cols)) == pytest.approx(brute_force_accuracy(rows, cols), abs=1e-12)


@pytest.mark.parametrize(("n_rows", "n_cols"), [(600, 600), (400, 900), (1200, 300)])
def test_sparse_matching_for_many_clusters_equals_the_dense_hungarian(n_rows: int, n_cols: int) -> None:
    rng = np.random.default_rng(n_rows + n_cols)
    rows = rng.integers(0, n_rows, 20_000)
    cols = np.where(rng.random(20_000) < 0.7, rows % n_cols, rng.integers(0, n_cols, 20_000))
    table = table_of(rows.tolist(), cols.tolist())
    dense = np.zeros((n_rows, n_cols), dtype=np.int64)
    np.add.at(dense, (rows, cols), 1)
    chosen = linear_sum_assignment(dense, maximize=True)
    expected = dense[chosen].sum() / rows.size
    assert np.unique(rows).size * np.unique(cols).size > DENSE_CELLS  # takes the sparse path
    assert matched_accuracy(table) == pytest.approx(expected, abs=1e-12)


def test_metrics_are_undefined_without_pairs() -> None:
    empty = table_of([], [])
    assert (ari(empty), nmi(empty), matched_accuracy(empty)) == (None, None, None)


def test_sklearn_special_cases_are_kept() -> None:
    single = table_of([0, 0, 0], [5, 5, 5])
    assert (ari(single), nmi(single)) == (1.0, 1.0)
    one_side_single = table_of([0, 0, 0, 0], [0, 1, 2, 3])
    assert ari(one_side_single) == pytest.approx(0.0)
    assert nmi(one_side_single) == 0.0
    assert ari(table_of([0, 0, 1, 1], [0, 1, 0, 1])) == pytest.approx(-0.5)
    assert ari(table_of([7], [3])) == 1.0


def test_relabelled_identical_clusterings_agree_perfectly() -> None:
    rows = [0, 0, 1, 1, 2, 2, 2]
    table = table_of(rows, [(r + 1) * 10 for r in rows])
    assert (ari(table), nmi(table), matched_accuracy(table)) == (1.0, 1.0, 1.0)


def test_cluster_map_reports_splits_and_merges_with_counts() -> None:
    # legacy 0 is split over candidate 0 and 1; legacy 1 and 2 are merged into candidate 2
    rows = [0] * 50 + [0] * 50 + [1] * 30 + [2] * 30 + [3] * 40 + [3]
    cols = [0] * 50 + [1] * 50 + [2] * 30 + [2] * 30 + [3] * 40 + [0]
    names = [f"L{i}" for i in range(4)], [f"C{i}" for i in range(4)]
    mapped = cluster_map(table_of(rows, cols), *names, min_share=0.1, limit=20)
    assert mapped["splits_total"] == 1
    assert mapped["splits"] == [{"legacy": "L0", "pairs": 100,
                                 "into": [{"candidate": "C0", "pairs": 50}, {"candidate": "C1", "pairs": 50}]}]
    assert mapped["merges_total"] == 1
    assert mapped["merges"][0]["candidate"] == "C2"
    assert {part["legacy"] for part in mapped["merges"][0]["from"]} == {"L1", "L2"}
    top = {item["legacy"]: item for item in mapped["top"]}
    assert top["L3"] == {"legacy": "L3", "candidate": "C3", "pairs": 40, "legacy_pairs": 41,
                         "share": pytest.approx(40 / 41)}


def test_cluster_map_caps_the_listed_items_but_keeps_totals() -> None:
    rows = [r for r in range(30) for _ in range(4)]
    cols = [c for r in range(30) for c in (2 * r, 2 * r, 2 * r + 1, 2 * r + 1)]
    mapped = cluster_map(table_of(rows, cols), [f"L{i}" for i in range(30)], [f"C{i}" for i in range(60)],
                         limit=5)
    assert mapped["splits_total"] == 30
    assert len(mapped["splits"]) == 5
    assert len(mapped["top"]) == 5
