"""The anomalies-only scope: disagreement hidden by the big default cluster becomes visible."""

from __future__ import annotations

from sklearn.metrics import adjusted_rand_score

from harness.comparator.state import ComparatorState


def record(signal_id: str, label: str) -> dict[str, object]:
    return {"v": 1, "id": signal_id, "outcome": "clustered", "label": label, "entered_ms": 0.0,
            "published_ms": 1.0, "proc_ms": 0.1}


def test_anomaly_scope_leaves_out_pairs_both_sides_called_default() -> None:
    legacy = ["normal"] * 900 + ["a"] * 50 + ["b"] * 50
    candidate = ["normal"] * 900 + ["x", "y"] * 50  # the anomalies are split differently
    state = ComparatorState()
    state.ingest("legacy", [record(f"s{i}", label) for i, label in enumerate(legacy)], 0.0)
    state.ingest("candidate", [record(f"s{i}", label) for i, label in enumerate(candidate)], 0.0)
    agreement = state.report()["agreement"]
    anomalies = agreement["anomalies"]
    assert anomalies["pairs"] == 100
    assert abs(anomalies["ari"] - adjusted_rand_score(legacy[900:], candidate[900:])) < 1e-9
    assert anomalies["ari"] < 0.1 < agreement["ari"]


def test_anomaly_scope_equals_the_whole_table_when_no_default_label_exists() -> None:
    state = ComparatorState()
    state.ingest("legacy", [record(f"s{i}", f"l{i % 3}") for i in range(30)], 0.0)
    state.ingest("candidate", [record(f"s{i}", f"c{i % 3}") for i in range(30)], 0.0)
    agreement = state.report()["agreement"]
    assert agreement["anomalies"]["pairs"] == agreement["pairs"] == 30
