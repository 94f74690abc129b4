"""The signals the two sides disagree on, under the optimal label mapping, and their input samples.

Recomputed from the results streams (every matched pair) and the comparator's label mapping, so
nothing grows in the comparator's state; the samples come from the input stream while it still holds
the entries (found by the input entry id each result carries), or from a recording of the input.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import redis

from harness.comparator.export import all_pairs
from harness.contracts import ContractError, SignalReceived, decode_signal
from harness.partitions import Partition
from harness.report.html import Curve, CurvePanel
from harness.transport import keys

COLUMNS = ["signal_id", "device_id", "legacy_label", "candidate_label", "candidate_label_mapped"]
Samples = dict[str, list[float]]
MISSING = "—"
NOT_AVAILABLE = "samples not available"
_ENTRY_ID = re.compile(r"\d+-\d+")  # a result without one (hand-made, older worker) has no sample to find


def disagreements(pairs: pd.DataFrame, limit: int | None = None) -> pd.DataFrame:
    """The pairs both sides clustered whose mapped candidate label is not legacy's, in result order."""
    disagreeing = pairs[pairs["agrees"].eq(False).fillna(False).astype(bool)]
    return disagreeing if limit is None else disagreeing.head(limit)


def samples_from_stream(client: redis.Redis, stream: str, entries: dict[str, str]) -> Samples:
    """Samples of the signals `{signal id: input entry id}` that the input stream still holds."""
    wanted = [(sid, entry) for sid, entry in entries.items() if isinstance(entry, str) and _ENTRY_ID.fullmatch(entry)]
    pipe = client.pipeline(transaction=False)
    for _, entry in wanted:
        pipe.xrange(stream, min=entry, max=entry, count=1)
    found: Samples = {}
    for (sid, _), reply in zip(wanted, pipe.execute(), strict=True):
        if not reply:
            continue  # trimmed already
        signal = _decoded(reply[0][1].get(keys.PAYLOAD_FIELD))
        if signal is not None and signal.signal_id == sid:
            found[sid] = signal.samples.tolist()
    return found


def samples_from_recording(path: Path, ids: Iterable[str]) -> Samples:
    """Samples of the given signals from a recording (Parquet, CSV or JSONL), read once, in file order."""
    from harness.producer.files import read_signals

    wanted = set(ids)
    found: Samples = {}
    for signal in read_signals(path):
        if signal.signal_id in wanted:
            found[signal.signal_id] = signal.samples.tolist()
            if len(found) == len(wanted):
                break
    return found


def _decoded(payload: bytes | None) -> SignalReceived | None:
    if payload is None:
        return None
    try:
        return decode_signal(payload)
    except ContractError:
        return None


def representatives(pairs: pd.DataFrame) -> tuple[dict[str, str], dict[str, str]]:
    """Per legacy label and per candidate label: the first member signal, preferably one both sides agree on."""
    clustered = pairs[pairs["agrees"].notna()]
    ordered = pd.concat([clustered[clustered["agrees"].astype(bool)], clustered[~clustered["agrees"].astype(bool)]])
    legacy = ordered.drop_duplicates("legacy_label")
    candidate = ordered.drop_duplicates("candidate_label")
    return (dict(zip(legacy["legacy_label"].astype(str), legacy["signal_id"], strict=True)),
            dict(zip(candidate["candidate_label"].astype(str), candidate["signal_id"], strict=True)))


def sample_panels(pairs: pd.DataFrame, chosen: pd.DataFrame, samples: Samples) -> list[CurvePanel]:
    """For each chosen disagreeing signal: its curve beside the representative of each side's cluster."""
    legacy_reps, candidate_reps = representatives(pairs)
    panels = []
    for row in chosen.itertuples(index=False):
        legacy_label, candidate_label = str(row.legacy_label), str(row.candidate_label)
        panels.append(CurvePanel(
            signal=Curve(str(row.signal_id), samples.get(str(row.signal_id))),
            device=_text(row.device_id),
            legacy_label=legacy_label, candidate_label=candidate_label,
            mapped_label=_text(row.candidate_label_mapped),
            legacy_representative=_curve(legacy_reps.get(legacy_label), samples),
            candidate_representative=_curve(candidate_reps.get(candidate_label), samples)))
    return panels


def _text(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def _curve(signal_id: str | None, samples: Samples) -> Curve | None:
    return None if signal_id is None else Curve(signal_id, samples.get(signal_id))


def panel_signal_ids(pairs: pd.DataFrame, chosen: pd.DataFrame) -> dict[str, str]:
    """{signal id: input entry id} of every signal a panel shows: the chosen ones and their representatives."""
    legacy_reps, candidate_reps = representatives(pairs)
    ids = set(chosen["signal_id"].astype(str))
    for row in chosen.itertuples(index=False):
        ids.update(rep for rep in (legacy_reps.get(str(row.legacy_label)),
                                   candidate_reps.get(str(row.candidate_label))) if rep is not None)
    entries = pairs.set_index("signal_id")["legacy_entry"]
    return {sid: str(entries[sid]) if sid in entries.index and isinstance(entries[sid], str) else "" for sid in ids}


def load_samples(client: redis.Redis, stream: str, recording: Path | None, entries: dict[str, str],
                 partitions: int = 1, partition_of: dict[str, int] | None = None) -> Samples:
    """The input stream first (each signal's partition's: `partition_of`, signal id -> partition index);
    what it no longer holds, from the recording when one is given."""
    by_stream: dict[str, dict[str, str]] = {}
    for sid, entry in entries.items():
        index = (partition_of or {}).get(sid)
        part = Partition(index, partitions) if index is not None and partitions > 1 else None
        by_stream.setdefault(keys.scoped(stream, part), {})[sid] = entry
    found: Samples = {}
    for name, chosen in by_stream.items():
        found.update(samples_from_stream(client, name, chosen))
    missing = [sid for sid in entries if sid not in found]
    if missing and recording is not None:
        found.update(samples_from_recording(recording, missing))
    return found


def records(chosen: pd.DataFrame, samples: Samples | None) -> list[dict[str, object]]:
    """The rows to print: COLUMNS, plus `samples` (None when not available) when samples were asked for."""
    rows: list[dict[str, object]] = []
    for row in chosen[COLUMNS].itertuples(index=False):
        record: dict[str, object] = {column: _text(value) for column, value in zip(COLUMNS, row, strict=True)}
        if samples is not None:
            record["samples"] = samples.get(str(row.signal_id))
        rows.append(record)
    return rows


def render(rows: list[dict[str, object]], output_format: str, *, with_samples: bool) -> str:
    """`json` (a list of objects), `csv` (samples space-separated) or `table` (samples summarised)."""
    if output_format == "json":
        return json.dumps(rows, indent=2)
    columns = [*COLUMNS, "samples"] if with_samples else COLUMNS
    if output_format == "csv":
        frame = pd.DataFrame([{**row, "samples": _joined(row.get("samples"))} if with_samples else row
                              for row in rows], columns=columns)
        return str(frame.to_csv(index=False)).rstrip("\n")
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(f"{len(rows)} disagreeing signals (candidate label mapped into legacy's space)"),
                  title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column.replace("_", " "))
    for row in rows:
        cells = [MISSING if row[column] is None else str(row[column]) for column in COLUMNS]
        if with_samples:
            cells.append(_summary(row.get("samples")))
        table.add_row(*(Text(cell) for cell in cells))
    console = Console(file=io.StringIO(), width=160, force_terminal=False)
    console.print(table)
    return str(console.file.getvalue()).rstrip("\n")  # type: ignore[attr-defined]


def _joined(values: object) -> str:
    return " ".join(f"{float(value):.6g}" for value in values) if isinstance(values, list) else ""


def _summary(values: object) -> str:
    if not isinstance(values, list) or not values:
        return NOT_AVAILABLE
    return f"{len(values)} samples, {min(values):.3g} to {max(values):.3g}"


def spread(frame: pd.DataFrame, count: int) -> pd.DataFrame:
    """`count` rows evenly spaced over the frame (first and last included): a sample of the whole run."""
    if len(frame) <= count:
        return frame
    at = sorted({round(i * (len(frame) - 1) / max(count - 1, 1)) for i in range(count)})
    return frame.iloc[at]


def html_panels(client: redis.Redis, legacy: str, candidate: str, stream: str, recording: Path | None,
                count: int, partitions: int = 1, experiment: str | None = None) -> list[CurvePanel]:
    """Up to `count` disagreeing signals, spread over the run, with their curves and their clusters'."""
    pairs = all_pairs(client, legacy, candidate, partitions, experiment)
    chosen = spread(disagreements(pairs), count)
    if chosen.empty:
        return []
    samples = load_samples(client, stream, recording, panel_signal_ids(pairs, chosen), partitions,
                           partition_of(pairs))
    return sample_panels(pairs, chosen, samples)


def partition_of(pairs: pd.DataFrame) -> dict[str, int]:
    """Signal id -> the index of the partition its pair came from (empty when the input is not partitioned)."""
    if "partition" not in pairs.columns:
        return {}
    return dict(zip(pairs["signal_id"].astype(str), pairs["partition"].astype(int), strict=True))
