"""`harness disagreements` and `export --pairs` on a real run: real workers, the candidate changed through its env."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.support.processes import ROOT


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, text=True, capture_output=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture()
def mean_centroid_run(redis_url: str, tmp_path: Path) -> dict[str, object]:
    """A demo whose candidate averages its centroids (HARNESS_CANDIDATE_CENTROID=mean): it disagrees."""
    report_file = tmp_path / "report.json"
    harness("demo", "--signals", "1500", "--candidate-env", "HARNESS_CANDIDATE_CENTROID=mean",
            "--redis-url", redis_url, "--report-json", str(report_file))
    report: dict[str, object] = json.loads(report_file.read_text())
    return report


def test_disagreements_lists_every_mismatched_signal_with_its_mapped_label(
        redis_url: str, mean_centroid_run: dict[str, object]) -> None:
    agreement = mean_centroid_run["agreement"]
    assert isinstance(agreement, dict)
    expected = round(agreement["pairs"] * (1.0 - agreement["matched_accuracy"]))
    assert expected > 0, "the mean-centroid candidate should disagree on some signals"
    rows = json.loads(harness("disagreements", "--redis-url", redis_url, "--limit", "0", "--format", "json",
                              "--with-samples").stdout)
    # off the optimal matching are exactly the pairs the report's matched accuracy leaves out
    assert len(rows) == expected
    legacy_labels = {row["legacy_label"] for row in rows}
    for row in rows:
        assert row["candidate_label_mapped"] != row["legacy_label"]
        assert row["device_id"] and row["candidate_label"]
        assert row["samples"], f"{row['signal_id']}: the input stream still holds it"
    mapped = {row["candidate_label_mapped"] for row in rows} - {None}
    # mapped into legacy's label space: legacy's "dev-07:1" form, never the candidate's "dev-07/k1"
    assert mapped and all(":" in label and "/k" not in label for label in mapped)
    assert mapped & legacy_labels
    print(harness("disagreements", "--redis-url", redis_url, "--limit", "5").stdout)


def test_export_says_per_pair_whether_it_agrees_under_the_mapping(
        redis_url: str, mean_centroid_run: dict[str, object], tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    harness("export", "--redis-url", redis_url, "--pairs", str(path))
    pairs = pd.read_csv(path)
    assert {"device_id", "candidate_label_mapped", "agrees"} <= set(pairs.columns)
    both = (pairs["legacy_outcome"] == "clustered") & (pairs["candidate_outcome"] == "clustered")
    agreement = mean_centroid_run["agreement"]
    assert isinstance(agreement, dict)
    assert int(both.sum()) == agreement["pairs"]
    assert pairs.loc[both, "agrees"].astype(bool).mean() == pytest.approx(agreement["matched_accuracy"])
    agreeing = pairs[both & pairs["agrees"].astype(str).eq("True")]
    assert (agreeing["candidate_label_mapped"] == agreeing["legacy_label"]).all()
    assert (pairs[["legacy_latency_ms", "candidate_latency_ms"]] > 0).all().all()  # never negative
