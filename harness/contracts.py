"""Versioned wire contracts: `SignalReceived` (input) and `SignalClustered` (output).

The shapes are documented in docs/contracts.md; this module is the only place that
encodes or decodes them, so every worker and the comparator agree byte for byte.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import msgpack
import numpy as np
import numpy.typing as npt

SCHEMA_VERSION = 1  # bumped on any incompatible change to either contract
DEFAULT_MAX_SAMPLES = 100_000  # HARNESS_MAX_SAMPLES overrides it
DEFAULT_LABEL = "normal"  # label of the default cluster, the same for every worker

Samples = npt.NDArray[np.float32]
Outcome = Literal["clustered", "unclustered", "error"]
OUTCOMES: tuple[Outcome, ...] = ("clustered", "unclustered", "error")


class ContractError(ValueError):
    """An input message that breaks the contract; `reason` is a stable machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class SignalMeta:
    device_id: str
    channel: str = "v"
    tags: dict[str, str] = field(default_factory=dict)
    true_kind: str | None = None  # ground truth, for synthetic or labelled data only


@dataclass(frozen=True)
class SignalReceived:
    signal_id: str
    meta: SignalMeta
    sample_rate_hz: float
    start_time: float  # epoch seconds of the first sample
    samples: Samples

    def __post_init__(self) -> None:
        if self.samples.dtype != np.float32:
            object.__setattr__(self, "samples", self.samples.astype(np.float32))


@dataclass(frozen=True)
class SignalClustered:
    signal_id: str
    worker: str
    model_version: str
    outcome: Outcome
    label: str | None
    is_new_cluster: bool
    entered_at_ms: float  # input stream entry time, on the Redis server's clock
    published_at_ms: float  # on the Redis server's clock (the worker corrects its own by TIME)
    processing_ms: float
    device_id: str | None = None
    true_kind: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    redelivered: bool = False
    input_entry_id: str | None = None
    epoch: int | None = None  # fencing token, set only on production results

    @property
    def end_to_end_ms(self) -> float:
        return self.published_at_ms - self.entered_at_ms


# --- SignalReceived -------------------------------------------------------------------------------


def encode_signal(signal: SignalReceived) -> bytes:
    """msgpack, with the samples as raw little-endian float32 bytes."""
    return bytes(msgpack.packb(
        {
            "v": SCHEMA_VERSION,
            "id": signal.signal_id,
            "meta": _meta_to_wire(signal.meta),
            "rate": signal.sample_rate_hz,
            "t0": signal.start_time,
            "samples": signal.samples.astype("<f4", copy=False).tobytes(),
        },
        use_bin_type=True,
    ))


def signal_to_json(signal: SignalReceived) -> str:
    """The JSON form accepted on input for existing producers (samples as a list of floats)."""
    return json.dumps(
        {
            "v": SCHEMA_VERSION,
            "id": signal.signal_id,
            "meta": _meta_to_wire(signal.meta),
            "rate": signal.sample_rate_hz,
            "t0": signal.start_time,
            "samples": signal.samples.astype(float).tolist(),
        }
    )


def decode_signal(payload: bytes, max_samples: int = DEFAULT_MAX_SAMPLES) -> SignalReceived:
    """Decode and validate one input message; raises ContractError naming what was wrong."""
    if not payload:
        raise ContractError("empty_message", "the message has no payload")
    if payload[:1] in (b"{", b" ", b"\n"):
        try:
            raw = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ContractError("undecodable", f"invalid JSON: {type(exc).__name__}") from None
    else:
        try:
            raw = msgpack.unpackb(payload, raw=False, strict_map_key=False)
        except Exception as exc:  # msgpack raises several unrelated types on garbage
            raise ContractError("undecodable", f"not msgpack or JSON: {type(exc).__name__}") from None
    if not isinstance(raw, dict):
        raise ContractError("wrong_schema", f"expected a map, got {type(raw).__name__}")
    try:
        return _signal_from_wire(raw, max_samples)
    except ContractError:
        raise
    except Exception as exc:  # e.g. OverflowError on a huge integer: still this message's fault
        raise ContractError("wrong_schema", f"{type(exc).__name__}: {exc}") from None


def peek_signal_id(payload: bytes) -> str | None:
    """Best-effort id of a message that failed to decode, so its error result can still be joined."""
    try:
        raw = json.loads(payload) if payload[:1] == b"{" else msgpack.unpackb(payload, raw=False)
    except Exception:
        return None
    if isinstance(raw, dict) and isinstance(raw.get("id"), str) and raw["id"]:
        return str(raw["id"])
    return None


def _meta_to_wire(meta: SignalMeta) -> dict[str, Any]:
    return {"device": meta.device_id, "channel": meta.channel, "tags": meta.tags, "kind": meta.true_kind}


def _signal_from_wire(raw: dict[str, Any], max_samples: int) -> SignalReceived:
    version = raw.get("v")
    if version != SCHEMA_VERSION:
        raise ContractError("wrong_schema_version", f"schema version {version!r}, expected {SCHEMA_VERSION}")
    signal_id = raw.get("id")
    if not isinstance(signal_id, str) or not signal_id.strip():
        raise ContractError("missing_id", "the signal id is missing or empty")
    meta_raw = raw.get("meta")
    if not isinstance(meta_raw, dict) or not isinstance(meta_raw.get("device"), str):
        raise ContractError("wrong_schema", "meta.device (a string) is required")
    tags = meta_raw.get("tags") or {}
    if not isinstance(tags, dict):
        raise ContractError("wrong_schema", "meta.tags must be a map of strings")
    kind = meta_raw.get("kind")
    meta = SignalMeta(
        device_id=meta_raw["device"],
        channel=str(meta_raw.get("channel") or "v"),
        tags={str(k): str(v) for k, v in tags.items()},
        true_kind=str(kind) if kind is not None else None,
    )
    rate = raw.get("rate")
    if not isinstance(rate, int | float) or isinstance(rate, bool) or not rate > 0 or not math.isfinite(rate):
        raise ContractError("wrong_schema", f"rate must be a positive number of Hz, got {rate!r}")
    start = raw.get("t0", 0.0)
    if not isinstance(start, int | float) or isinstance(start, bool) or not math.isfinite(start):
        raise ContractError("wrong_schema", f"t0 must be epoch seconds, got {start!r}")
    samples = _samples_from_wire(raw.get("samples"), max_samples)
    return SignalReceived(str(signal_id), meta, float(rate), float(start), samples)


def _samples_from_wire(value: Any, max_samples: int) -> Samples:
    if isinstance(value, bytes | bytearray):
        if len(value) % 4:
            raise ContractError("wrong_schema", f"samples: {len(value)} bytes is not a whole number of float32")
        count = len(value) // 4
        if count > max_samples:
            raise ContractError("oversize", f"{count} samples, the limit is {max_samples}")
        samples = np.frombuffer(value, dtype="<f4").astype(np.float32, copy=False)
    elif isinstance(value, list):
        if len(value) > max_samples:
            raise ContractError("oversize", f"{len(value)} samples, the limit is {max_samples}")
        try:
            samples = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError):
            raise ContractError("wrong_schema", "samples must be numbers") from None
        if samples.ndim != 1:
            raise ContractError("wrong_schema", "samples must be a flat list")
    else:
        raise ContractError("wrong_schema", "samples must be float32 bytes or a list of floats")
    if samples.size == 0:
        raise ContractError("empty_samples", "the signal has no samples")
    if not np.isfinite(samples).all():
        bad = int((~np.isfinite(samples)).sum())
        raise ContractError("non_finite", f"{bad} sample(s) are NaN or infinite")
    return samples


# --- SignalClustered ------------------------------------------------------------------------------

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


def encode_clustered(result: SignalClustered) -> bytes:
    row = [SCHEMA_VERSION, *(getattr(result, attr) for _, attr in _CLUSTERED_KEYS)]
    return bytes(msgpack.packb(row, use_bin_type=True))


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
