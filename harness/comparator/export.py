"""Offline export of every matched pair, re-read from the results streams (not from the metrics).

Each pair says whether the two sides agree under the optimal label mapping: the candidate's label
mapped into legacy's label space (Hungarian matching of the contingency table) equals legacy's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pandas as pd
import redis

from harness.comparator.agreement import Table, best_matching
from harness.comparator.latency import MIN_US
from harness.contracts import result_record
from harness.experiments import Experiment
from harness.partitions import Partition, all_partitions
from harness.transport import keys

EXPORT_COLUMNS = ["signal_id", "device_id", "true_kind", "legacy_label", "candidate_label", "candidate_label_mapped",
                  "agrees", "legacy_outcome", "candidate_outcome", "legacy_error_type", "candidate_error_type",
                  "legacy_latency_ms", "candidate_latency_ms", "legacy_processing_ms", "candidate_processing_ms"]
_SIDE_COLUMNS = ["label", "outcome", "error_type", "latency_ms", "processing_ms", "entry"]


def end_to_end_ms(record: dict[str, Any]) -> float | None:
    """Published minus entered, as the comparator measures it; None when either time is absent."""
    published, entered = record.get("published_ms"), record.get("entered_ms")
    if not isinstance(published, int | float) or not isinstance(entered, int | float):
        return None
    # `entered` is the input entry's time on the Redis clock and `published` the worker host's clock:
    # two hosts' clocks, so a fast result can come out slightly negative. The comparator's histogram
    # clamps it up to its 1 µs floor; the export does the same, so both report the same latencies.
    return max(float(published) - float(entered), MIN_US / 1000.0)


def _results_frame(client: redis.Redis, worker: str, chunk: int = 10_000,
                   partition: Partition | None = None) -> pd.DataFrame:
    rows: list[dict[str, object]] = []
    start = "-"
    while True:
        entries = client.xrange(keys.scoped(keys.results_stream(worker), partition), min=start, count=chunk)
        for _, fields in entries:
            record = result_record(msgpack.unpackb(fields[keys.PAYLOAD_FIELD], raw=False))
            rows.append({
                "signal_id": record.get("id"), "device_id": record.get("device"), "true_kind": record.get("kind"),
                "label": record.get("label"), "outcome": record.get("outcome"), "error_type": record.get("err_type"),
                "latency_ms": end_to_end_ms(record),
                "processing_ms": record.get("proc_ms"), "entry": record.get("entry"),
            })
        if len(entries) < chunk:
            break
        start = "(" + entries[-1][0].decode()
    frame = pd.DataFrame(rows, columns=["signal_id", "device_id", "true_kind", *_SIDE_COLUMNS])
    # A redelivered duplicate is the same signal again: keep its first result, as the comparator does.
    return frame.drop_duplicates("signal_id", keep="first")


def pairs_frame(client: redis.Redis, legacy: str, candidate: str, partition: Partition | None = None,
                mapping: dict[str, str] | None = None) -> pd.DataFrame:
    """Every matched pair (of one partition's streams when given) in legacy's result order: EXPORT_COLUMNS,
    plus each side's input entry id. `mapping`: candidate label -> legacy label, else the comparator's."""
    pairs = _joined_results(client, legacy, candidate, partition)
    return _mapped(pairs, label_mapping(client, pairs) if mapping is None else mapping)


def all_pairs(client: redis.Redis, legacy: str, candidate: str, partitions: int = 1,
              experiment: str | None = None) -> pd.DataFrame:
    """Every matched pair of the two workers, over every partition (with a `partition` column, its index, when
    there are several), under one label mapping: the comparison's of `experiment` (default: the current one)
    when it compares these two workers, else the pairs' own (docs/partitions.md)."""
    from harness.experiments import resolve

    scopes = _scopes(partitions)
    pairs = pd.concat([_joined_results(client, legacy, candidate, part).assign(partition=index)
                       for index, part in enumerate(scopes)], ignore_index=True)
    compared = resolve(client, experiment, legacy, candidate)
    same_workers = (compared.control, compared.candidate) == (legacy, candidate)
    mapping = (_experiment_mapping(client, compared, partitions, lambda: pairs) if same_workers
               else mapping_of_pairs(pairs))
    return _mapped(pairs, mapping, ["partition"] if partitions > 1 else [])


def _scopes(partitions: int) -> list[Partition | None]:
    return [*all_partitions(partitions)] if partitions > 1 else [None]


def _experiment_mapping(client: redis.Redis, experiment: Experiment, partitions: int,
                        pairs: Callable[[], pd.DataFrame]) -> dict[str, str]:
    """The mapping of the experiment's comparison (every partition's checkpoint merged), else the pairs' own."""
    from harness.comparator.scope import merged_state

    state = merged_state(client, experiment, partitions)
    return state.label_mapping() if state is not None else mapping_of_pairs(pairs())


def _joined_results(client: redis.Redis, legacy: str, candidate: str, partition: Partition | None) -> pd.DataFrame:
    """The two results streams joined by signal id, each side's columns named `<side>_<column>`."""
    left = _results_frame(client, legacy, partition=partition)
    right = _results_frame(client, candidate, partition=partition)
    pairs = left.merge(right, on="signal_id", suffixes=("_legacy", "_candidate"))
    # the device and kind come from legacy's result, or from the candidate's when legacy has none
    for column in ("device_id", "true_kind"):
        pairs[column] = pairs[f"{column}_legacy"].where(pairs[f"{column}_legacy"].notna(), pairs[f"{column}_candidate"])
    return pairs.rename(columns={f"{name}_{side}": f"{side}_{name}"
                                 for name in _SIDE_COLUMNS for side in ("legacy", "candidate")})


def _mapped(pairs: pd.DataFrame, mapping: dict[str, str], extra: list[str] | None = None) -> pd.DataFrame:
    """The pairs with the candidate's label mapped into legacy's and whether they agree under the mapping."""
    both = (pairs["legacy_outcome"] == "clustered") & (pairs["candidate_outcome"] == "clustered")
    mapped = pairs["candidate_label"].map(mapping).where(both)
    pairs["candidate_label_mapped"] = mapped
    # agreement is defined where both sides clustered the signal; elsewhere it is the errors' business
    pairs["agrees"] = pd.Series(pd.NA, index=pairs.index, dtype="boolean")
    pairs.loc[both, "agrees"] = (mapped[both] == pairs.loc[both, "legacy_label"]).to_numpy(dtype=bool)
    return pairs[[*EXPORT_COLUMNS, "legacy_entry", "candidate_entry", *(extra or [])]]


def label_mapping(client: redis.Redis, pairs: pd.DataFrame) -> dict[str, str]:
    """Candidate label -> legacy label: the comparator's mapping when its state is in Redis, else the pairs'.

    The comparator's contingency table counts the same pairs as the streams (results are kept), so
    both give the mapping the report's matched accuracy is computed on.
    """
    from harness.comparator.state import ComparatorState

    saved = client.get(keys.COMPARATOR_STATE_KEY)
    if saved:
        try:
            return ComparatorState.from_bytes(saved).label_mapping()
        except ValueError:
            pass  # an unreadable checkpoint: the pairs themselves still give the mapping
    return mapping_of_pairs(pairs)


def mapping_of_pairs(pairs: pd.DataFrame) -> dict[str, str]:
    both = pairs[(pairs["legacy_outcome"] == "clustered") & (pairs["candidate_outcome"] == "clustered")]
    if both.empty:
        return {}
    legacy_codes, legacy_names = pd.factorize(both["legacy_label"].astype(str))
    candidate_codes, candidate_names = pd.factorize(both["candidate_label"].astype(str))
    rows, cols = best_matching(Table.from_pairs(legacy_codes.astype(np.int64), candidate_codes.astype(np.int64)))
    return {str(candidate_names[col]): str(legacy_names[row]) for row, col in zip(rows.tolist(), cols.tolist(),
                                                                                   strict=True)}


def export_experiment(client: redis.Redis, experiment: Experiment, path: Path, partitions: int = 1) -> int:
    """The pairs the experiment's comparator had counted at its last checkpoint (as many as its report
    matched), of every partition, with the label mapping of the experiment's (merged) comparison."""
    from harness.comparator.scope import counted_window, within

    check_table_path(path)
    joined = [(part, _joined_results(client, experiment.control, experiment.candidate, part))
              for part in _scopes(partitions)]
    mapping = _experiment_mapping(client, experiment, partitions, lambda: pd.concat([frame for _, frame in joined]))
    frames = [within(_mapped(frame, mapping), counted_window(client, experiment, part)) for part, frame in joined]
    return write_pairs(pd.concat(frames, ignore_index=True), path)


def check_table_path(path: Path) -> None:
    if path.suffix.lower() not in (".parquet", ".csv"):
        raise ValueError(f"--pairs {path}: use a .parquet or .csv file name")


def export_pairs(client: redis.Redis, legacy: str, candidate: str, path: Path,
                 select: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> int:
    """`select`: keeps the pairs an experiment counted (harness.comparator.scope.within)."""
    check_table_path(path)
    pairs = pairs_frame(client, legacy, candidate)
    return write_pairs(select(pairs) if select is not None else pairs, path)


def write_pairs(pairs: pd.DataFrame, path: Path) -> int:
    pairs = pairs[EXPORT_COLUMNS]
    if path.suffix.lower() == ".parquet":
        pairs.to_parquet(path, index=False)
    else:
        pairs.to_csv(path, index=False)
    return len(pairs)
