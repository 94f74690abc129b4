"""Backtests: legacy and a candidate in-process, no Redis, compared into a harness.report/1 report."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

from harness.backtest import InProcessWorker, run_backtest
from harness.clustering import Assignment
from harness.contracts import SignalReceived
from harness.envpairs import parse_env_pairs
from harness.producer.synthetic import generate_signals
from harness.report.schema import validate_report

SIGNALS = list(generate_signals(1_200, seed=5))


def deterministic_part(report: dict[str, object]) -> dict[str, object]:
    part = json.loads(json.dumps({key: report[key] for key in ("counts", "agreement", "errors")}))
    for point in part["agreement"]["series"]:  # dated by the worker's clock: the rest is deterministic
        point.pop("at_ms")
    return part


def test_the_report_follows_the_report_schema_and_counts_every_signal() -> None:
    result = run_backtest(SIGNALS, batch_size=300)
    report = validate_report(result.report)
    assert report["counts"]["produced"] == result.signals == 1_200
    assert report["counts"]["matched"] == 1_200
    assert report["counts"]["missing_legacy"] == report["counts"]["missing_candidate"] == 0
    assert len(report["latency_ms"]["samples"]["legacy"]) == 1_200
    assert result.signals_per_s > 0 and result.legacy_seconds > 0 and result.candidate_seconds > 0


def test_two_backtests_of_the_same_file_agree_exactly() -> None:
    first = run_backtest(SIGNALS, batch_size=250)
    second = run_backtest(iter(SIGNALS), batch_size=250)
    assert deterministic_part(first.report) == deterministic_part(second.report)


def test_the_default_candidate_agrees_with_legacy() -> None:
    agreement = run_backtest(SIGNALS).report["agreement"]
    assert agreement["ari"] == 1.0 and agreement["matched_accuracy"] == 1.0


def test_candidate_hyperparameters_come_from_its_environment() -> None:
    report = run_backtest(SIGNALS, candidate_env={"HARNESS_CANDIDATE_NEGATIVE_VOLTAGE": "reject"}).report
    declined = report["errors"]["candidate"]["unclustered"]
    assert declined > 0 and report["errors"]["unclustered_only_candidate"] == declined


def test_a_candidate_that_raises_gets_an_error_per_failing_signal_not_per_batch() -> None:
    report = run_backtest(SIGNALS, candidate="tests.support.algorithms:raises_on_negative").report
    negatives = sum(1 for s in SIGNALS if float(s.samples.min()) < 0)
    assert 0 < negatives < len(SIGNALS)
    assert report["errors"]["candidate"]["error"] == negatives
    assert report["errors"]["by_type"]["ValueError"]["only_candidate"] == negatives


class WrongCount:
    model_version = "wrong-count"
    replay_safe = True  # stateless: its failed batch may be retried one signal at a time
    replay_safe = True

    def assign_batch(self, signals: Sequence[SignalReceived]) -> list[Assignment]:
        return [Assignment.clustered("x")] if len(signals) > 1 else [Assignment.clustered("x")] * len(signals)


def test_a_replay_safe_algorithm_returning_the_wrong_number_of_assignments_is_retried_per_signal() -> None:
    worker = InProcessWorker("candidate", WrongCount())
    assert worker.assign(SIGNALS[:5]) == [Assignment.clustered("x")] * 5


def test_progress_is_reported_after_every_batch() -> None:
    seen: list[int] = []
    run_backtest(SIGNALS[:700], batch_size=300, on_batch=seen.append)
    assert seen == [300, 600, 700]


def test_environment_pairs_are_key_equals_value() -> None:
    assert parse_env_pairs(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(ValueError, match="not KEY=VALUE"):
        parse_env_pairs(["A"])


# --- any two workers, or one alone ---------------------------------------------------------------------


def test_either_side_may_be_any_worker_with_its_own_environment() -> None:
    mean = {"HARNESS_CANDIDATE_CENTROID": "mean"}
    same = run_backtest(SIGNALS, control="candidate", control_env=mean, candidate_env=mean).report
    assert same["agreement"]["ari"] == 1.0
    assert same["sides"] == {"control": "candidate", "candidate": "candidate"}
    differ = run_backtest(SIGNALS, control="candidate", control_env=mean).report
    assert differ["agreement"]["anomalies"]["ari"] < 0.95


def test_a_candidate_scored_alone_has_a_valid_report_with_the_truth_for_that_side_only() -> None:
    result = run_backtest(SIGNALS, control=None, candidate="tests.support.algorithms:oracle")
    report = validate_report(result.report)
    truth = report["agreement"]["truth"]
    assert report["sides"] == {"control": None, "candidate": "tests.support.algorithms:oracle"}
    assert truth["pairs"] == len(SIGNALS) and truth["candidate_ari"] == 1.0
    assert truth["legacy_ari"] is None and truth["legacy_outcomes"] is None and truth["sample"]["legacy"] is None
    assert all(kind["legacy"] is None and kind["candidate"]["recall"] == 1.0 for kind in truth["per_kind"].values())
    assert report["counts"]["matched"] == 0 and report["counts"]["missing_legacy"] == len(SIGNALS)
    assert result.legacy_seconds == 0.0 and result.candidate_seconds > 0
    assert run_backtest(SIGNALS[:10], control="none").report["sides"]["control"] is None


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_the_pairs_file_has_every_signals_labels_on_both_sides_and_its_truth(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"pairs{suffix}"
    run_backtest(SIGNALS, candidate_env={"HARNESS_CANDIDATE_NEGATIVE_VOLTAGE": "reject"}, batch_size=250,
                 pairs=path)
    pairs = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    assert list(pairs["signal_id"]) == [s.signal_id for s in SIGNALS]
    assert list(pairs["true_kind"]) == [s.meta.true_kind for s in SIGNALS]
    legacy = InProcessWorker.load("legacy").assign(SIGNALS)
    assert list(pairs["legacy_label"].fillna("-")) == [a.label or "-" for a in legacy]
    declined = pairs["candidate_outcome"] == "unclustered"
    assert declined.any() and pairs.loc[declined, "candidate_label"].isna().all()


def test_the_pairs_file_of_a_candidate_alone_has_no_control_columns(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    run_backtest(SIGNALS[:50], control=None, pairs=path)
    assert list(pd.read_csv(path).columns) == ["signal_id", "device_id", "true_kind", "candidate_label",
                                               "candidate_outcome", "candidate_error_type", "candidate_processing_ms"]


def test_a_pairs_file_of_another_format_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"use a \.parquet or \.csv file name"):
        run_backtest(SIGNALS, pairs=tmp_path / "pairs.json")
