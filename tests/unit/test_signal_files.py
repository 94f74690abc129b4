"""Signal files: each format round-trips exactly; bad rows and unknown formats are clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.contracts import SignalMeta, SignalReceived
from harness.producer.files import FORMATS, PARQUET_SCHEMA, SignalFileError, read_signals, write_signals
from harness.producer.synthetic import generate_signals


def odd_signals() -> list[SignalReceived]:
    """Synthetic signals plus the awkward cases: no kind, unicode tags, one sample, extreme floats."""
    extreme = np.array([np.finfo(np.float32).max, -0.0, 1e-45, -230.5], dtype=np.float32)
    return [
        *generate_signals(20, seed=4, samples=300),
        SignalReceived("unlabelled", SignalMeta("dév-β", "i", {"site": 'Zürich, "A"'}), 10.0, 0.5, extreme),
        SignalReceived("single", SignalMeta("dev-x"), 1.0, 1.7e9 + 0.123456, np.array([230.0], dtype=np.float32)),
    ]


@pytest.mark.parametrize("suffix", FORMATS)
def test_signals_round_trip_exactly_with_their_ids(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"signals{suffix}"
    originals = odd_signals()
    assert write_signals(path, iter(originals)) == len(originals)
    loaded = list(read_signals(path))
    assert [s.signal_id for s in loaded] == [s.signal_id for s in originals]
    for mine, theirs in zip(loaded, originals, strict=True):
        assert mine.meta == theirs.meta
        assert (mine.sample_rate_hz, mine.start_time) == (theirs.sample_rate_hz, theirs.start_time)
        assert mine.samples.dtype == np.float32 and mine.samples.tobytes() == theirs.samples.tobytes()


@pytest.mark.parametrize("suffix", FORMATS)
def test_an_empty_file_reads_back_as_no_signals(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"empty{suffix}"
    assert write_signals(path, []) == 0
    assert list(read_signals(path)) == []


def test_the_extension_is_matched_case_insensitively(tmp_path: Path) -> None:
    path = tmp_path / "SIGNALS.JSONL"
    write_signals(path, generate_signals(3, seed=1))
    assert len(list(read_signals(path))) == 3


def test_an_unknown_extension_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown signal file format '\.txt'; use one of \.parquet, \.csv, \.jsonl"):
        write_signals(tmp_path / "signals.txt", [])
    with pytest.raises(ValueError, match="unknown signal file format"):
        read_signals(tmp_path / "signals")


def test_a_malformed_csv_row_names_the_file_and_row(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    write_signals(path, generate_signals(3, seed=1, samples=5))
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace("[", "[oops", 1)  # data row 2
    path.write_text("\n".join(lines) + "\n")
    loaded = read_signals(path)
    next(loaded)
    with pytest.raises(SignalFileError, match=rf"{path}: row 2: unreadable value"):
        next(loaded)


def test_a_csv_row_with_a_bad_rate_names_the_file_and_row(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text('id,device,channel,tags,kind,rate,t0,samples\nx,dev,v,{},,-5,0,"[1.0]"\n')
    with pytest.raises(SignalFileError, match=r"row 1: rate must be a positive number of Hz, got -5.0"):
        list(read_signals(path))


def test_a_malformed_jsonl_line_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    write_signals(path, generate_signals(2, seed=1, samples=5))
    with path.open("a") as file:
        file.write("\n" + json.dumps({"v": 1, "id": "nan", "meta": {"device": "d"}, "rate": 1.0, "samples": []}) + "\n")
    with pytest.raises(SignalFileError, match=rf"{path}: row 4: empty_samples"):
        list(read_signals(path))


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [("id", "", "the signal id is missing"), ("samples", [1.0, float("nan")], "1 sample\\(s\\) are NaN")],
)
def test_a_malformed_parquet_row_names_the_file_and_row(
    tmp_path: Path, column: str, value: object, problem: str
) -> None:
    row = {"id": "ok", "device": "d", "channel": "v", "tags": "{}", "kind": None, "rate": 1.0, "t0": 0.0,
           "samples": [1.0]}  # fmt: skip
    path = tmp_path / "bad.parquet"
    rows = [row, {**row, column: value}]
    pq.write_table(pa.Table.from_pylist(rows, schema=PARQUET_SCHEMA), path)
    with pytest.raises(SignalFileError, match=rf"{path}: row 2: {problem}"):
        list(read_signals(path))


def test_a_parquet_file_without_the_signal_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1]}), path)
    with pytest.raises(SignalFileError, match="missing column"):
        list(read_signals(path))
