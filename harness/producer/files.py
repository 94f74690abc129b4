"""Signal files: Parquet, CSV and JSONL, chosen by extension; ids and ground-truth kinds are kept.

Parquet holds samples as list<float32>; CSV holds samples and tags as JSON strings; JSONL holds one
signal per line in the contract's JSON form. A malformed row raises SignalFileError naming file and row.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from harness.contracts import ContractError, SignalMeta, SignalReceived, decode_signal, signal_to_json
from harness.errors import HarnessError

FORMATS = (".parquet", ".csv", ".jsonl")
COLUMNS = ("id", "device", "channel", "tags", "kind", "rate", "t0", "samples")
ROWS_PER_GROUP = 1024  # Parquet row group size, and the chunk held in memory while writing
NO_SAMPLE_LIMIT = sys.maxsize  # files are trusted recordings; the worker enforces its own limit
PARQUET_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("device", pa.string()),
        ("channel", pa.string()),
        ("tags", pa.string()),  # JSON object of strings
        ("kind", pa.string()),
        ("rate", pa.float64()),
        ("t0", pa.float64()),
        ("samples", pa.list_(pa.float32())),
    ]
)


class SignalFileError(ValueError, HarnessError):
    def __init__(self, path: Path, row: int, reason: str) -> None:
        super().__init__(f"{path}: row {row}: {reason}")
        self.path = path
        self.row = row
        self.reason = reason


def write_signals(path: str | Path, signals: Iterable[SignalReceived]) -> int:
    """Writes every signal to `path` (format by extension) and returns how many were written."""
    path = Path(path)
    writer = {".parquet": _write_parquet, ".csv": _write_csv, ".jsonl": _write_jsonl}[_format(path)]
    return writer(path, signals)


def read_signals(path: str | Path) -> Iterator[SignalReceived]:
    """Streams the signals of `path` (format by extension), in file order."""
    path = Path(path)
    reader = {".parquet": _read_parquet, ".csv": _read_csv, ".jsonl": _read_jsonl}[_format(path)]
    return reader(path)


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: unknown signal file format {suffix!r}; use one of {', '.join(FORMATS)}")
    return suffix


# --- Parquet ---------------------------------------------------------------------------------------


def _write_parquet(path: Path, signals: Iterable[SignalReceived]) -> int:
    written = 0
    iterator = iter(signals)
    with pq.ParquetWriter(path, PARQUET_SCHEMA) as writer:
        while chunk := list(islice(iterator, ROWS_PER_GROUP)):
            writer.write_table(_parquet_table(chunk))
            written += len(chunk)
        if not written:
            writer.write_table(PARQUET_SCHEMA.empty_table())
    return written


def _parquet_table(chunk: list[SignalReceived]) -> pa.Table:
    offsets = np.zeros(len(chunk) + 1, dtype=np.int64)
    np.cumsum([s.samples.shape[0] for s in chunk], out=offsets[1:])
    samples = pa.LargeListArray.from_arrays(offsets, np.concatenate([s.samples for s in chunk]))
    columns = [
        [s.signal_id for s in chunk],
        [s.meta.device_id for s in chunk],
        [s.meta.channel for s in chunk],
        [json.dumps(s.meta.tags) for s in chunk],
        [s.meta.true_kind for s in chunk],
        [s.sample_rate_hz for s in chunk],
        [s.start_time for s in chunk],
        samples.cast(pa.list_(pa.float32())),
    ]
    return pa.Table.from_arrays(
        [column if isinstance(column, pa.Array) else pa.array(column, field.type)
         for column, field in zip(columns, PARQUET_SCHEMA, strict=True)],
        schema=PARQUET_SCHEMA,
    )  # fmt: skip


def _read_parquet(path: Path) -> Iterator[SignalReceived]:
    row = 0
    parquet = pq.ParquetFile(path)
    missing = set(COLUMNS) - set(parquet.schema_arrow.names)
    if missing:
        raise SignalFileError(path, 0, f"missing column(s) {', '.join(sorted(missing))}")
    for batch in parquet.iter_batches(batch_size=ROWS_PER_GROUP, columns=list(COLUMNS)):
        fields = {name: batch.column(name).to_pylist() for name in COLUMNS if name != "samples"}
        lists = batch.column("samples")
        values = lists.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        offsets = lists.offsets.to_numpy()
        absent = lists.is_null().to_numpy(zero_copy_only=False)
        for i in range(batch.num_rows):
            row += 1
            samples = None if absent[i] else values[offsets[i] : offsets[i + 1]].copy()
            yield _checked(path, row, {name: column[i] for name, column in fields.items()}, samples)


# --- CSV -------------------------------------------------------------------------------------------


def _write_csv(path: Path, signals: Iterable[SignalReceived]) -> int:
    written = 0
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(COLUMNS)
        for s in signals:
            meta = s.meta
            samples = json.dumps(s.samples.astype(float).tolist())
            kind = meta.true_kind if meta.true_kind is not None else ""
            writer.writerow(
                [s.signal_id, meta.device_id, meta.channel, json.dumps(meta.tags), kind,
                 repr(s.sample_rate_hz), repr(s.start_time), samples]
            )  # fmt: skip
            written += 1
    return written


def _read_csv(path: Path) -> Iterator[SignalReceived]:
    # A signal of 100,000 samples is a few megabytes of JSON, beyond csv's default field limit.
    csv.field_size_limit(2**31 - 1)
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        missing = set(COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise SignalFileError(path, 0, f"missing column(s) {', '.join(sorted(missing))}")
        for row, record in enumerate(reader, start=1):
            try:
                samples = np.asarray(json.loads(record["samples"]), dtype=np.float32)
                tags = json.loads(record["tags"] or "{}")
                rate, start = float(record["rate"]), float(record["t0"])
            except (TypeError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
                raise SignalFileError(path, row, f"unreadable value: {exc}") from None
            record.update(tags=tags, rate=rate, t0=start, kind=record["kind"] or None)
            yield _checked(path, row, record, samples)


# --- JSONL -----------------------------------------------------------------------------------------


def _write_jsonl(path: Path, signals: Iterable[SignalReceived]) -> int:
    written = 0
    with path.open("w", encoding="utf-8") as file:
        for signal in signals:
            file.write(signal_to_json(signal) + "\n")
            written += 1
    return written


def _read_jsonl(path: Path) -> Iterator[SignalReceived]:
    with path.open("rb") as file:
        for row, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                yield decode_signal(line.strip(), max_samples=NO_SAMPLE_LIMIT)
            except ContractError as exc:
                raise SignalFileError(path, row, str(exc)) from None


# --- shared validation -----------------------------------------------------------------------------


def _checked(path: Path, row: int, fields: dict[str, Any], samples: npt.NDArray[np.float32] | None) -> SignalReceived:
    """The signal in one Parquet or CSV row, held to the same rules as the wire contract."""
    problem = _problem(fields, samples)
    if problem:
        raise SignalFileError(path, row, problem)
    assert samples is not None
    tags = fields["tags"] if isinstance(fields["tags"], dict) else json.loads(fields["tags"] or "{}")
    meta = SignalMeta(fields["device"], fields["channel"] or "v", {str(k): str(v) for k, v in tags.items()},
                      fields["kind"])  # fmt: skip
    return SignalReceived(fields["id"], meta, float(fields["rate"]), float(fields["t0"]), samples)


def _problem(fields: dict[str, Any], samples: npt.NDArray[np.float32] | None) -> str | None:
    if not isinstance(fields["id"], str) or not fields["id"].strip():
        return "the signal id is missing or empty"
    if not isinstance(fields["device"], str) or not fields["device"]:
        return "the device is missing"
    tags = fields["tags"]
    if isinstance(tags, str):
        try:
            tags = json.loads(tags or "{}")
        except ValueError:
            return f"tags are not JSON: {tags[:40]!r}"
    if not isinstance(tags, dict):
        return "tags must be a JSON object"
    rate, start = fields["rate"], fields["t0"]
    if not isinstance(rate, float | int) or not math.isfinite(rate) or rate <= 0:
        return f"rate must be a positive number of Hz, got {rate!r}"
    if not isinstance(start, float | int) or not math.isfinite(start):
        return f"t0 must be epoch seconds, got {start!r}"
    if samples is None or samples.ndim != 1 or samples.size == 0:
        return "the signal has no samples (or they are not a flat list)"
    if not np.isfinite(samples).all():
        return f"{int((~np.isfinite(samples)).sum())} sample(s) are NaN or infinite"
    return None
