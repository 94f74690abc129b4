"""Decoded results to the columns the join and the metrics need, with labels, devices and kinds coded.

The common case (a batch of well-formed wire rows) is transposed and coded column by column, at C
speed; a batch with any odd record (a map, a wrong type, an unknown outcome) takes the careful path,
record by record, which rejects exactly the records that break the contract.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.comparator.arena import Ints, split_positions
from harness.comparator.join import NO_POSITION, input_position
from harness.comparator.pairs import DEVICE, ERR_TYPE, ERROR, KIND, LABEL, OUTCOME
from harness.contracts import RESULT_KEYS, SCHEMA_VERSION

OUTCOME_CODES = {"clustered": 0, "unclustered": 1, "error": 2}
NO_CODE = -1
_NEW = -2  # a value without a code yet
_AT = {key: index for index, key in enumerate(RESULT_KEYS)}
_ROW_LENGTH = len(RESULT_KEYS)
# one C call fetches every field the comparator reads, instead of one lookup each
_FIELDS = itemgetter("id", "outcome", "published_ms", "entered_ms", "proc_ms", "label", "device", "kind")
_REQUIRED_FIELDS = itemgetter("id", "outcome", "published_ms", "entered_ms", "proc_ms")
# plain entry ids whose halves fit int64 (seq below 2**32): (ms << 32) + seq is then exactly (ms, seq)
PLAIN_IDS = re.compile(r"(?:[0-9]{1,18}-[0-9]{1,9}\n)*")
Floats = npt.NDArray[np.float64]
_ROW_FIELDS = itemgetter(*(_AT[key] for key in ("v", "id", "outcome", "published_ms", "entered_ms", "proc_ms",
                                                "label", "device", "kind", "err_type", "entry")))


@dataclass
class Codes:
    """Small-int codes of one side's labels, and of devices, kinds and error types (shared by sides)."""

    labels: dict[Any, int]
    devices: dict[Any, int]
    kinds: dict[Any, int]
    error_types: dict[Any, int]


@dataclass
class Columns:
    ids: list[str]
    slots: Ints  # (n, 5): outcome, label, device, kind, error type codes
    outcomes: Ints
    end_to_end: Floats
    processing: Floats
    high: Ints  # input positions split in two int64 halves (see arena.split_positions)
    low: Ints
    rejected: int = 0


def to_columns(records: Sequence[Mapping[str, Any] | list[Any]], codes: Codes) -> Columns:
    if records and set(map(type, records)) == {list} and set(map(len, records)) == {_ROW_LENGTH}:
        try:
            return _rows_to_columns(records, codes)  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError):
            pass  # an odd value somewhere in the batch: the careful path finds which record
    return _records_to_columns(records, codes)


def _rows_to_columns(rows: Sequence[list[Any]], codes: Codes) -> Columns:
    n = len(rows)
    columns = list(zip(*rows, strict=True))
    versions, ids, outcome_names, labels = (columns[_AT[key]] for key in ("v", "id", "outcome", "label"))
    if versions.count(SCHEMA_VERSION) != n or set(map(type, ids)) != {str}:
        raise ValueError("a row breaks the contract")
    times = np.array([columns[_AT["published_ms"]], columns[_AT["entered_ms"]], columns[_AT["proc_ms"]]])
    if times.dtype.kind not in "fiu":  # None or text among the times
        raise TypeError("non-numeric times")
    times = times.astype(np.float64, copy=False)
    outcomes = np.fromiter(map(OUTCOME_CODES.__getitem__, outcome_names), dtype=np.int64, count=n)
    slots = np.empty((n, 5), dtype=np.int64)
    label_codes = _coded(labels, codes.labels, outcomes == 0)
    # A "clustered" result without a label cannot be compared: it counts as unclustered.
    outcomes[(outcomes == 0) & (label_codes == NO_CODE)] = 1
    slots[:, OUTCOME] = outcomes
    slots[:, LABEL] = label_codes
    slots[:, DEVICE] = _coded(columns[_AT["device"]], codes.devices)
    slots[:, KIND] = _coded(columns[_AT["kind"]], codes.kinds)
    slots[:, ERR_TYPE] = NO_CODE
    for at in np.flatnonzero(outcomes == ERROR).tolist():
        error = columns[_AT["err_type"]][at]
        slots[at, ERR_TYPE] = codes.error_types.setdefault(error or "unknown", len(codes.error_types))
    high, low = _positions(columns[_AT["entry"]])
    # Never negative: published and entered come from two hosts' clocks (see the slow path too).
    return Columns(list(ids), slots, outcomes, np.maximum(times[0] - times[1], 0.0), times[2], high, low)


def _coded(values: Sequence[Any], code_map: dict[Any, int], wanted: npt.NDArray[np.bool_] | None = None) -> Ints:
    """Codes of the values that are not None (and wanted), NO_CODE for the others; a value seen for the first
    time gets the next code, in row order."""
    lookup = {None: NO_CODE, **code_map}  # None never gets a code: one C call per value tells all three apart
    coded = np.fromiter(map(lookup.get, values, repeat(_NEW)), dtype=np.int64, count=len(values))
    new = coded == _NEW
    if wanted is not None:
        coded[~wanted] = NO_CODE
        new &= wanted
    for at in np.flatnonzero(new).tolist():
        coded[at] = code_map.setdefault(values[at], len(code_map))
    return coded


def _positions(entries: Sequence[Any]) -> tuple[Ints, Ints]:
    """Input positions of a batch's entry ids, as (high, low) halves; C speed when all are plain ids."""
    n = len(entries)
    if entries.count(None) == n:
        return np.full(n, NO_POSITION >> 32, dtype=np.int64), np.full(n, NO_POSITION & 0xFFFFFFFF, dtype=np.int64)
    if set(map(type, entries)) == {str}:
        text = "\n".join(entries)
        if PLAIN_IDS.fullmatch(text + "\n"):  # then numpy parses exactly what int() would
            halves = np.fromstring(text.replace("-", "\n"), dtype=np.int64, sep="\n")
            return halves[0::2].copy(), halves[1::2].copy()
    return split_positions([input_position(entry) for entry in entries])


def _records_to_columns(records: Sequence[Mapping[str, Any] | list[Any]], codes: Codes) -> Columns:
    ids: list[str] = []
    slots: list[tuple[int, int, int, int, int]] = []
    times: list[tuple[float, float]] = []
    positions: list[int] = []
    rejected = 0
    for record in records:
        try:
            if isinstance(record, list):  # the wire form: a row in RESULT_KEYS order
                if len(record) != _ROW_LENGTH:
                    raise ValueError(len(record))
                (version, sid, outcome_name, published, entered, proc, label, device, kind, error_type,
                 entry_id) = _ROW_FIELDS(record)
                if version != SCHEMA_VERSION:
                    raise ValueError(version)
            else:
                try:
                    sid, outcome_name, published, entered, proc, label, device, kind = _FIELDS(record)
                except KeyError:  # the optional keys may be absent from a hand-made result
                    sid, outcome_name, published, entered, proc = _REQUIRED_FIELDS(record)
                    label, device, kind = record.get("label"), record.get("device"), record.get("kind")
                error_type, entry_id = record.get("err_type"), record.get("entry")
            outcome = OUTCOME_CODES[outcome_name]
            latency = max(published - entered + 0.0, 0.0)
            proc += 0.0
            if type(sid) is not str:
                raise TypeError(sid)
            if outcome == 0 and label is None:
                outcome = 1
            label_code = codes.labels.setdefault(label, len(codes.labels)) if outcome == 0 else NO_CODE
            device_code = NO_CODE if device is None else codes.devices.setdefault(device, len(codes.devices))
            kind_code = NO_CODE if kind is None else codes.kinds.setdefault(kind, len(codes.kinds))
            error_code = (codes.error_types.setdefault(error_type or "unknown", len(codes.error_types))
                          if outcome == ERROR else NO_CODE)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError):
            rejected += 1  # breaks the contract (no id, unknown outcome, non-numeric times)
            continue
        ids.append(sid)
        slots.append((outcome, label_code, device_code, kind_code, error_code))
        times.append((latency, proc))
        positions.append(input_position(entry_id))
    slot_array = np.array(slots, dtype=np.int64).reshape(-1, 5)
    time_array = np.array(times, dtype=np.float64).reshape(-1, 2)
    high, low = split_positions(positions)
    return Columns(ids, slot_array, slot_array[:, OUTCOME].copy(), time_array[:, 0].copy(), time_array[:, 1].copy(),
                   high, low, rejected)
