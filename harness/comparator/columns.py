"""Decoded results to the columns the join and the metrics need, with labels, devices and kinds coded.

The common case (a batch of well-formed wire rows) is transposed and coded column by column, at C
speed; a batch with any odd record (a map, a wrong type, an unknown outcome) takes the careful path,
record by record, which rejects exactly the records that break the contract.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import numpy as np

from harness.comparator.join import Slot, input_position
from harness.comparator.pairs import ERROR
from harness.contracts import RESULT_KEYS, SCHEMA_VERSION

OUTCOME_CODES = {"clustered": 0, "unclustered": 1, "error": 2}
NO_CODE = -1
_AT = {key: index for index, key in enumerate(RESULT_KEYS)}
_ROW_LENGTH = len(RESULT_KEYS)
# one C call fetches every field the comparator reads, instead of one lookup each
_FIELDS = itemgetter("id", "outcome", "published_ms", "entered_ms", "proc_ms", "label", "device", "kind")
_REQUIRED_FIELDS = itemgetter("id", "outcome", "published_ms", "entered_ms", "proc_ms")
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
    ids: list[str] = field(default_factory=list)
    slots: list[Slot] = field(default_factory=list)
    outcomes: list[int] = field(default_factory=list)
    end_to_end: list[float] = field(default_factory=list)
    processing: list[float] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    rejected: int = 0


def to_columns(records: Sequence[Mapping[str, Any] | list[Any]], codes: Codes) -> Columns:
    if records and all(type(record) is list and len(record) == _ROW_LENGTH for record in records):
        try:
            return _rows_to_columns(records, codes)  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError):
            pass  # an odd value somewhere in the batch: the careful path finds which record
    return _records_to_columns(records, codes)


def _rows_to_columns(rows: Sequence[list[Any]], codes: Codes) -> Columns:
    (versions, ids, outcome_names, published, entered, proc, labels, devices, kinds, error_types,
     entries) = (list(column) for column in zip(*map(_ROW_FIELDS, rows), strict=True))
    if any(version != SCHEMA_VERSION for version in versions) or any(type(sid) is not str for sid in ids):
        raise ValueError("a row breaks the contract")
    times = np.array([published, entered, proc])
    if times.dtype.kind not in "fiu":  # None or text among the times
        raise TypeError("non-numeric times")
    times = times.astype(np.float64, copy=False)
    outcomes = [OUTCOME_CODES[name] for name in outcome_names]
    # A "clustered" result without a label cannot be compared: it counts as unclustered.
    outcomes = [1 if code == 0 and label is None else code for code, label in zip(outcomes, labels, strict=True)]
    label_map, device_map, kind_map, error_map = codes.labels, codes.devices, codes.kinds, codes.error_types
    label_codes = [label_map.setdefault(label, len(label_map)) if code == 0 else NO_CODE
                   for code, label in zip(outcomes, labels, strict=True)]
    device_codes = [NO_CODE if device is None else device_map.setdefault(device, len(device_map))
                    for device in devices]
    kind_codes = [NO_CODE if kind is None else kind_map.setdefault(kind, len(kind_map)) for kind in kinds]
    error_codes = [error_map.setdefault(error or "unknown", len(error_map)) if code == ERROR else NO_CODE
                   for code, error in zip(outcomes, error_types, strict=True)]
    return Columns(
        ids, list(zip(outcomes, label_codes, device_codes, kind_codes, error_codes, strict=True)), outcomes,
        # Never negative: published and entered come from two hosts' clocks (see the slow path too).
        np.maximum(times[0] - times[1], 0.0).tolist(), times[2].tolist(),
        [input_position(entry) for entry in entries])


def _records_to_columns(records: Sequence[Mapping[str, Any] | list[Any]], codes: Codes) -> Columns:
    out = Columns()
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
            out.rejected += 1  # breaks the contract (no id, unknown outcome, non-numeric times)
            continue
        out.ids.append(sid)
        out.slots.append((outcome, label_code, device_code, kind_code, error_code))
        out.outcomes.append(outcome)
        out.end_to_end.append(latency)
        out.processing.append(proc)
        out.positions.append(input_position(entry_id))
    return out
