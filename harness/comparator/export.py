"""Offline export of every matched pair, re-read from the results streams (not from the metrics)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
import pandas as pd
import redis

from harness.comparator.latency import MIN_US
from harness.contracts import result_record
from harness.transport import keys

EXPORT_COLUMNS = ["signal_id", "device_id", "true_kind", "legacy_label", "candidate_label", "legacy_outcome",
                  "candidate_outcome", "legacy_error_type", "candidate_error_type", "legacy_latency_ms",
                  "candidate_latency_ms", "legacy_processing_ms", "candidate_processing_ms"]


def end_to_end_ms(record: dict[str, Any]) -> float | None:
    """Published minus entered, as the comparator measures it; None when either time is absent."""
    published, entered = record.get("published_ms"), record.get("entered_ms")
    if not isinstance(published, int | float) or not isinstance(entered, int | float):
        return None
    # `entered` is the input entry's time on the Redis clock and `published` the worker host's clock:
    # two hosts' clocks, so a fast result can come out slightly negative. The comparator's histogram
    # clamps it up to its 1 µs floor; the export does the same, so both report the same latencies.
    return max(float(published) - float(entered), MIN_US / 1000.0)


def _results_frame(client: redis.Redis, worker: str, chunk: int = 10_000) -> pd.DataFrame:
    rows: list[dict[str, object]] = []
    start = "-"
    while True:
        entries = client.xrange(keys.results_stream(worker), min=start, count=chunk)
        for _, fields in entries:
            record = result_record(msgpack.unpackb(fields[keys.PAYLOAD_FIELD], raw=False))
            rows.append({
                "signal_id": record.get("id"), "device_id": record.get("device"), "true_kind": record.get("kind"),
                "label": record.get("label"), "outcome": record.get("outcome"), "error_type": record.get("err_type"),
                "latency_ms": end_to_end_ms(record),
                "processing_ms": record.get("proc_ms"),
            })
        if len(entries) < chunk:
            break
        start = "(" + entries[-1][0].decode()
    frame = pd.DataFrame(rows, columns=["signal_id", "device_id", "true_kind", "label", "outcome", "error_type",
                                        "latency_ms", "processing_ms"])
    # A redelivered duplicate is the same signal again: keep its first result, as the comparator does.
    return frame.drop_duplicates("signal_id", keep="first")


def export_pairs(client: redis.Redis, legacy: str, candidate: str, path: Path) -> int:
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ValueError(f"--pairs {path}: use a .parquet or .csv file name")
    left = _results_frame(client, legacy)
    right = _results_frame(client, candidate).drop(columns=["device_id", "true_kind"])
    pairs = left.merge(right, on="signal_id", suffixes=("_legacy", "_candidate"))
    pairs = pairs.rename(columns={
        "label_legacy": "legacy_label", "label_candidate": "candidate_label",
        "outcome_legacy": "legacy_outcome", "outcome_candidate": "candidate_outcome",
        "error_type_legacy": "legacy_error_type", "error_type_candidate": "candidate_error_type",
        "latency_ms_legacy": "legacy_latency_ms", "latency_ms_candidate": "candidate_latency_ms",
        "processing_ms_legacy": "legacy_processing_ms", "processing_ms_candidate": "candidate_processing_ms",
    })[EXPORT_COLUMNS]
    if suffix == ".parquet":
        pairs.to_parquet(path, index=False)
    else:
        pairs.to_csv(path, index=False)
    return len(pairs)
