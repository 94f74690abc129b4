"""SignalClustered on the wire: a msgpack array in RESULT_KEYS order (JSON maps accepted)."""

from __future__ import annotations

import json
import threading
from operator import attrgetter
from typing import Any

import msgpack

from harness.contracts.model import OUTCOMES, SCHEMA_VERSION, ContractError, Outcome, SignalClustered
from harness.wire_text import safe_text

_CLUSTERED_KEYS = (
    ("id", "signal_id"),
    ("worker", "worker"),
    ("model", "model_version"),
    ("outcome", "outcome"),
    ("label", "label"),
    ("new", "is_new_cluster"),
    ("entered_ms", "entered_at_ms"),
    ("published_ms", "published_at_ms"),
    ("proc_ms", "processing_ms"),
    ("device", "device_id"),
    ("kind", "true_kind"),
    ("err_type", "error_type"),
    ("err", "error_message"),
    ("redelivered", "redelivered"),
    ("entry", "input_entry_id"),
    ("epoch", "epoch"),
)


# On the wire a result is a msgpack array in this order, the version first: half the bytes of a
# map and a quarter of its decoding time, which is most of the comparator's work per result.
RESULT_KEYS: tuple[str, ...] = ("v", *(wire_key for wire_key, _ in _CLUSTERED_KEYS))


_RESULT_FIELDS = attrgetter(*(attr for _, attr in _CLUSTERED_KEYS))  # every field in wire order, one C call
_packers = threading.local()  # a Packer per thread: packb builds a new one per call, most of its cost


def encode_clustered(result: SignalClustered) -> bytes:
    return pack_result(*_RESULT_FIELDS(result))


def pack_result(signal_id: str, worker: str, model_version: str, outcome: Outcome, label: str | None,
                is_new_cluster: bool, entered_at_ms: float, published_at_ms: float, processing_ms: float,
                device_id: str | None, true_kind: str | None, error_type: str | None, error_message: str | None,
                redelivered: bool, input_entry_id: str | None, epoch: int | None) -> bytes:
    """A SignalClustered's wire bytes from its fields (in SignalClustered's order), for the worker's hot
    path: building the frozen dataclass first costs twice what packing does."""
    row = [SCHEMA_VERSION, signal_id, worker, model_version, outcome, label, is_new_cluster, entered_at_ms,
           published_at_ms, processing_ms, device_id, true_kind, error_type, error_message, redelivered,
           input_entry_id, epoch]
    try:
        packer = _packers.__dict__.get("packer") or _packers.__dict__.setdefault(
            "packer", msgpack.Packer(use_bin_type=True))
        return bytes(packer.pack(row))
    except UnicodeEncodeError:  # decoded text always encodes; an algorithm's label or error text may not
        return bytes(msgpack.packb([safe_text(v) if isinstance(v, str) else v for v in row], use_bin_type=True))



def result_record(raw: Any) -> dict[str, Any]:
    """A decoded result, array (the wire form) or map (JSON, hand-made), as a map of wire keys."""
    if isinstance(raw, list | tuple):
        if len(raw) != len(RESULT_KEYS):
            raise ContractError("wrong_schema", f"a result row has {len(raw)} fields, expected {len(RESULT_KEYS)}")
        return dict(zip(RESULT_KEYS, raw, strict=True))
    if isinstance(raw, dict):
        return raw
    raise ContractError("wrong_schema", f"a result must be an array or a map, got {type(raw).__name__}")


def clustered_to_dict(result: SignalClustered) -> dict[str, Any]:
    wire: dict[str, Any] = {"v": SCHEMA_VERSION}
    for wire_key, attr in _CLUSTERED_KEYS:
        wire[wire_key] = getattr(result, attr)
    return wire


def decode_clustered(payload: bytes) -> SignalClustered:
    try:
        raw = msgpack.unpackb(payload, raw=False) if payload[:1] != b"{" else json.loads(payload)
    except Exception as exc:
        raise ContractError("undecodable", f"result is not msgpack or JSON: {type(exc).__name__}") from None
    return clustered_from_dict(result_record(raw))


def clustered_from_dict(raw: dict[str, Any]) -> SignalClustered:
    if raw.get("v") != SCHEMA_VERSION:
        raise ContractError("wrong_schema_version", f"result schema version {raw.get('v')!r}")
    if not isinstance(raw.get("id"), str) or raw.get("outcome") not in OUTCOMES:
        raise ContractError("wrong_schema", "a result needs a string id and a known outcome")
    try:
        return SignalClustered(
            signal_id=raw["id"],
            worker=str(raw.get("worker", "")),
            model_version=str(raw.get("model", "")),
            outcome=raw["outcome"],
            label=raw.get("label"),
            is_new_cluster=bool(raw.get("new", False)),
            entered_at_ms=float(raw.get("entered_ms", 0.0)),
            published_at_ms=float(raw.get("published_ms", 0.0)),
            processing_ms=float(raw.get("proc_ms", 0.0)),
            device_id=raw.get("device"),
            true_kind=raw.get("kind"),
            error_type=raw.get("err_type"),
            error_message=raw.get("err"),
            redelivered=bool(raw.get("redelivered", False)),
            input_entry_id=raw.get("entry"),
            epoch=raw.get("epoch"),
        )
    except (TypeError, ValueError) as exc:
        raise ContractError("wrong_schema", f"result field has the wrong type: {exc}") from None


def entry_id_ms(entry_id: str | bytes) -> float:
    """Milliseconds part of a Redis stream entry id: the server's clock when the entry was added."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return float(text.split("-", 1)[0])
