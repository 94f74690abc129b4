"""A backtest's per-signal labels, written batch by batch to CSV or Parquet (`harness backtest --pairs`).

The columns are those of `harness export --pairs` that a backtest knows (no end-to-end latency):
the control's are `legacy_*`, as in the report; without a control there are none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from harness.contracts import SignalClustered, SignalReceived

PAIR_FORMATS = (".parquet", ".csv")
_SIGNAL_COLUMNS = (("signal_id", pa.string()), ("device_id", pa.string()), ("true_kind", pa.string()))
_SIDE_COLUMNS = (("label", pa.string()), ("outcome", pa.string()), ("error_type", pa.string()),
                 ("processing_ms", pa.float64()))


class PairsWriter:
    """One row per signal: its id, device and true kind, then each side's label, outcome, error type and time."""

    def __init__(self, path: Path, sides: Sequence[str]) -> None:
        suffix = path.suffix.lower()
        if suffix not in PAIR_FORMATS:
            raise ValueError(f"pairs file {path}: use a .parquet or .csv file name")
        self.sides = list(sides)
        self.rows = 0
        self.schema = pa.schema([*_SIGNAL_COLUMNS, *((f"{side}_{name}", kind) for name, kind in _SIDE_COLUMNS
                                                     for side in self.sides)])
        self._writer: pq.ParquetWriter | pa_csv.CSVWriter = (
            pq.ParquetWriter(path, self.schema) if suffix == ".parquet" else pa_csv.CSVWriter(path, self.schema))

    def write(self, signals: Sequence[SignalReceived], results: Mapping[str, Sequence[SignalClustered]]) -> None:
        """`results[side][i]` is the side's result for `signals[i]` (the runtime keeps input order)."""
        columns: dict[str, list[Any]] = {
            "signal_id": [s.signal_id for s in signals],
            "device_id": [s.meta.device_id for s in signals],
            "true_kind": [s.meta.true_kind for s in signals],
        }
        for side in self.sides:
            side_results = results[side]
            if len(side_results) != len(signals):
                raise ValueError(f"{side} gave {len(side_results)} results for {len(signals)} signals")
            columns[f"{side}_label"] = [r.label for r in side_results]
            columns[f"{side}_outcome"] = [r.outcome for r in side_results]
            columns[f"{side}_error_type"] = [r.error_type for r in side_results]
            columns[f"{side}_processing_ms"] = [r.processing_ms for r in side_results]
        self._writer.write_table(pa.table(columns, schema=self.schema))
        self.rows += len(signals)

    def close(self) -> None:
        self._writer.close()
