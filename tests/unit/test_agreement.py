"""Legacy and candidate on the same synthetic stream: they agree with defaults, and not otherwise.

Half the signals are normal and share DEFAULT_LABEL in both workers, which pins the ARI over all
signals near 1 whatever happens to the anomalies; so disagreement is measured on the anomalies.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import redis
from sklearn.metrics import adjusted_rand_score

from harness.clustering import Assignment, ClusteringAlgorithm, WorkerContext
from harness.contracts import DEFAULT_LABEL, SignalReceived
from harness.producer.synthetic import generate_signals
from workers import candidate, legacy

SIGNALS = list(generate_signals(3000, seed=1))
BATCH = 500


def run(algorithm: ClusteringAlgorithm, signals: Sequence[SignalReceived] = SIGNALS) -> list[Assignment]:
    return [a for i in range(0, len(signals), BATCH) for a in algorithm.assign_batch(signals[i : i + BATCH])]


def candidate_labels(env: dict[str, str]) -> list[str | None]:
    return [a.label for a in run(candidate.create(WorkerContext("candidate", None, env)))]


@pytest.fixture(scope="module")
def legacy_run() -> list[Assignment]:
    return run(legacy.create(WorkerContext("legacy", None, {})))


@pytest.fixture(scope="module")
def legacy_labels(legacy_run: list[Assignment]) -> list[str | None]:
    return [a.label for a in legacy_run]


def anomaly_ari(reference: list[str | None], other: list[str | None]) -> float:
    """ARI on the signals the reference put outside the default cluster."""
    kept = [i for i, label in enumerate(reference) if label != DEFAULT_LABEL]
    return float(adjusted_rand_score([reference[i] for i in kept], [other[i] for i in kept]))


def test_candidate_with_defaults_agrees_with_legacy(legacy_run: list[Assignment]) -> None:
    mine = run(candidate.create(WorkerContext("candidate", None, {})))
    ours, theirs = [a.label for a in mine], [a.label for a in legacy_run]
    assert adjusted_rand_score(theirs, ours) >= 0.99
    assert anomaly_ari(theirs, ours) >= 0.99
    assert [a.is_new_cluster for a in mine] == [a.is_new_cluster for a in legacy_run]
    assert [label == DEFAULT_LABEL for label in ours] == [label == DEFAULT_LABEL for label in theirs]


def test_the_labels_differ_only_in_spelling(legacy_labels: list[str | None]) -> None:
    ours = candidate_labels({})
    assert {label for label in ours if label and "/k" in label}
    assert not set(ours) & set(legacy_labels) - {DEFAULT_LABEL}


def test_candidate_with_its_state_in_redis_agrees_with_legacy(
    legacy_labels: list[str | None], redis_client: redis.Redis
) -> None:
    ours = [a.label for a in run(candidate.create(WorkerContext("candidate", redis_client, {})))]
    assert adjusted_rand_score(legacy_labels, ours) >= 0.99


def test_mean_centroid_measurably_disagrees_with_legacy(legacy_labels: list[str | None]) -> None:
    ours = candidate_labels({"HARNESS_CANDIDATE_CENTROID": "mean"})
    assert anomaly_ari(legacy_labels, ours) < 0.97
    assert adjusted_rand_score(legacy_labels, ours) < 1.0


@pytest.mark.parametrize("threshold", ["0.3", "0.7"])
def test_another_similarity_threshold_measurably_disagrees_with_legacy(
    legacy_labels: list[str | None], threshold: str
) -> None:
    ours = candidate_labels({"HARNESS_CANDIDATE_SIMILARITY_THRESHOLD": threshold})
    assert anomaly_ari(legacy_labels, ours) < 0.97
    assert adjusted_rand_score(legacy_labels, ours) < 1.0


def test_legacy_recovers_much_of_the_true_kinds(legacy_labels: list[str | None]) -> None:
    truth = [s.meta.true_kind for s in SIGNALS]
    assert adjusted_rand_score(truth, legacy_labels) > 0.3


def test_a_legacy_worker_restarted_midway_gives_the_labels_of_an_uninterrupted_run(
    legacy_labels: list[str | None], redis_client: redis.Redis
) -> None:
    context = WorkerContext("legacy", redis_client, {})
    before = run(legacy.create(context), SIGNALS[:1700])
    after = run(legacy.create(context), SIGNALS[1700:])  # a new instance: its state comes from Redis
    assert [a.label for a in before + after] == legacy_labels
