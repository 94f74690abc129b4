"""Versioned wire contracts: `SignalReceived` (input) and `SignalClustered` (output).

The shapes are documented in docs/contracts.md; this module is the only place that
encodes or decodes them, so every worker and the comparator agree byte for byte.
"""

from __future__ import annotations

import io
import json
import math
import re
import threading
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Literal, TypeVar

import msgpack
import numpy as np
import numpy.typing as npt

from harness.errors import HarnessError
from harness.wire_text import MAX_TEXT_BYTES, safe_text, text_problem, valid_signal_id

SCHEMA_VERSION = 1  # bumped on any incompatible change to either contract
DEFAULT_MAX_SAMPLES = 100_000  # HARNESS_MAX_SAMPLES overrides it
DEFAULT_LABEL = "normal"  # label of the default cluster, the same for every worker
MAX_TAGS = 64
PAYLOAD_BYTES_PER_SAMPLE = 32  # the widest JSON float ("-2.2250738585072014e-308, ") and an indent
PAYLOAD_OVERHEAD_BYTES = 256 * 1024  # everything but the samples, even with every character \u-escaped
PEEK_MAX_PAYLOAD_BYTES = PAYLOAD_OVERHEAD_BYTES + DEFAULT_MAX_SAMPLES * PAYLOAD_BYTES_PER_SAMPLE
MAX_DETAIL_CHARS = 300  # an error message stays one short log line
DECODE_REASONS = ("empty_message", "oversize", "undecodable", "wrong_schema", "wrong_schema_version", "missing_id",
                  "invalid_id", "invalid_text", "empty_samples", "non_finite")  # every ContractError.reason of decode

Samples = npt.NDArray[np.float32]
T = TypeVar("T")
Outcome = Literal["clustered", "unclustered", "error"]
OUTCOMES: tuple[Outcome, ...] = ("clustered", "unclustered", "error")


class ContractError(ValueError, HarnessError):
    """An input message that breaks the contract; `reason` is a stable machine-readable code.
    The message is short and always encodable, so it can be logged and stored as it is."""

    def __init__(self, reason: str, message: str) -> None:
        shown = safe_text(message[:MAX_DETAIL_CHARS])  # an escape is longer than its character: cut again
        cut = len(message) > MAX_DETAIL_CHARS or len(shown) > MAX_DETAIL_CHARS
        message = shown[:MAX_DETAIL_CHARS] + "…" if cut else shown
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
    wire = _signal_to_wire(signal, signal.samples.astype("<f4", copy=False).tobytes())
    return bytes(msgpack.packb(wire, use_bin_type=True))


def signal_to_json(signal: SignalReceived) -> str:
    """The JSON form accepted on input for existing producers (samples as a list of floats)."""
    return json.dumps(_signal_to_wire(signal, signal.samples.astype(float).tolist()))


def _signal_to_wire(signal: SignalReceived, samples: object) -> dict[str, Any]:
    return {"v": SCHEMA_VERSION, "id": signal.signal_id, "meta": _meta_to_wire(signal.meta),
            "rate": signal.sample_rate_hz, "t0": signal.start_time, "samples": samples}


def max_payload_bytes(max_samples: int) -> int:
    """The longest payload `decode_signal` parses for this sample limit; a longer one is `oversize` unread."""
    return PAYLOAD_OVERHEAD_BYTES + max(max_samples, 0) * PAYLOAD_BYTES_PER_SAMPLE


def decode_signal(
    payload: bytes, max_samples: int = DEFAULT_MAX_SAMPLES, *, max_payload: int | None = None
) -> SignalReceived:
    """Decode and validate one input message. Total: any input gives a signal or a ContractError, nothing else."""
    try:
        raw = _parse(payload, max_payload_bytes(max_samples) if max_payload is None else max_payload)
        return _signal_from_wire(raw, max_samples)
    except ContractError:
        raise
    except Exception as exc:  # a fault not foreseen below is still this message's fault, never the worker's
        raise ContractError("wrong_schema", type(exc).__name__) from None


def peek_signal_id(payload: bytes, max_payload: int = PEEK_MAX_PAYLOAD_BYTES) -> str | None:
    """The id of a message that failed to decode, so its error result still joins; only an id that
    `decode_signal` would accept (a safe key and log field), else None. Never raises."""
    try:
        if not isinstance(payload, bytes | bytearray) or not payload:
            return None
        if not _is_json(payload):
            return valid_signal_id(_peek_msgpack_id(payload, min(len(payload), max_payload)))
        if len(payload) > max_payload:  # JSON cannot be skimmed: past the limit, no id rather than no memory
            return None
        raw = json.loads(payload)
        return valid_signal_id(raw.get("id")) if isinstance(raw, dict) else None
    except Exception:
        return None


_JSON_START = re.compile(rb"[ \t\r\n]*\{")
_SCALARS = (str, int, float, bool, type(None))


def _is_json(payload: bytes | bytearray) -> bool:
    first = payload[0]
    if 0x80 <= first <= 0x8F or first in (0xDE, 0xDF):  # a msgpack map (what producers write): no regex
        return False
    return _JSON_START.match(payload) is not None


def _parse(payload: object, limit: int) -> dict[Any, Any]:
    if not isinstance(payload, bytes | bytearray):
        raise ContractError("undecodable", f"expected bytes, got {type(payload).__name__}")
    if not payload:
        raise ContractError("empty_message", "the message has no payload")
    if len(payload) > limit:  # before parsing: a huge message must not cost its size in memory
        raise ContractError("oversize", f"the payload has {len(payload):,} bytes, the limit is {limit:,}")
    is_json = _is_json(payload)
    try:
        raw = json.loads(payload) if is_json else msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception as exc:  # both parsers raise several unrelated types on garbage (and on 10**5000)
        raise ContractError("undecodable", f"{'invalid JSON' if is_json else 'not msgpack'}: {type(exc).__name__}"
                            ) from None
    if not isinstance(raw, dict):
        raise ContractError("wrong_schema", f"expected a map, got {type(raw).__name__}")
    return raw


def _peek_msgpack_id(payload: bytes | bytearray, max_buffer: int) -> object:
    # Key by key from a file, skipping values unbuilt: an id ahead of the samples costs a few KiB,
    # and a value past the buffer limit ends the search (BufferFull) rather than growing it.
    unpacker = msgpack.Unpacker(io.BytesIO(payload), raw=False, strict_map_key=False, max_buffer_size=max_buffer)
    for _ in range(unpacker.read_map_header()):
        if unpacker.unpack() == "id":
            return unpacker.unpack()
        unpacker.skip()
    return None


def _meta_to_wire(meta: SignalMeta) -> dict[str, Any]:
    return {"device": meta.device_id, "channel": meta.channel, "tags": meta.tags, "kind": meta.true_kind}


def _signal_from_wire(raw: dict[Any, Any], max_samples: int) -> SignalReceived:
    return _well_formed_signal(raw, max_samples) or _checked_signal(raw, max_samples)


def _checked_signal(raw: dict[Any, Any], max_samples: int) -> SignalReceived:
    """Field by field, so that a bad message gets a ContractError naming its first problem."""
    version = raw.get("v")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise ContractError("wrong_schema_version", f"schema version {_shown(version)}, expected {SCHEMA_VERSION}")
    signal_id = raw.get("id")
    if not isinstance(signal_id, str) or not signal_id.strip():
        raise ContractError("missing_id", "the signal id is missing, blank or not a string")
    _check_text(signal_id, "the signal id", "invalid_id")
    meta = _meta_from_wire(raw.get("meta"))
    rate = _finite(raw.get("rate"))
    if rate is None or not rate > 0:
        raise ContractError("wrong_schema", f"rate must be a positive number of Hz, got {_shown(raw.get('rate'))}")
    start = _finite(raw.get("t0", 0.0))
    if start is None:
        raise ContractError("wrong_schema", f"t0 must be epoch seconds, got {_shown(raw.get('t0'))}")
    samples = _samples_from_wire(raw.get("samples"), max_samples)
    return SignalReceived(signal_id, meta, rate, start, samples)


def _well_formed_signal(raw: dict[Any, Any], max_samples: int) -> SignalReceived | None:
    """The usual message (what our producer writes) checked in one pass, or None when anything is
    unusual: the field-by-field checks then accept it or name what is wrong. It accepts nothing
    they would refuse; it exists because those checks cost more than the rest of a worker's batch."""
    meta_raw, samples, rate, start = raw.get("meta"), raw.get("samples"), raw.get("rate"), raw.get("t0", 0.0)
    version, signal_id = raw.get("v"), raw.get("id")
    if (type(meta_raw) is not dict or type(samples) is not bytes or type(rate) is not float
            or type(start) is not float or type(version) is not int or version != SCHEMA_VERSION
            or type(signal_id) is not str or len(signal_id) > MAX_TEXT_BYTES or not signal_id.isascii()
            or not signal_id.isprintable() or not signal_id.strip()
            or not 0.0 < rate < math.inf or not math.isfinite(start)
            or len(samples) % 4 or not 0 < len(samples) // 4 <= max_samples):
        return None
    meta = _well_formed_meta(meta_raw)
    if meta is None:
        return None
    values = np.frombuffer(samples, dtype="<f4").astype(np.float32, copy=False)
    if np.count_nonzero(np.isfinite(values)) != values.shape[0]:  # half the cost of .all(); never warns
        return None
    return _checked_fields(SignalReceived, {"signal_id": signal_id, "meta": meta, "sample_rate_hz": rate,
                                            "start_time": start, "samples": values})


# Validated metas by their wire fields: a handful of devices send nearly every message, so most messages
# skip the text checks. Shared between signals (SignalMeta is frozen: its tags are read-only by contract).
_KNOWN_METAS: dict[tuple[Any, ...], SignalMeta] = {}
_KNOWN_METAS_MAX = 4_096  # past it the cache starts again: a flood of distinct metas costs time, never memory


def _well_formed_meta(meta_raw: dict[Any, Any]) -> SignalMeta | None:
    tags = meta_raw.get("tags") or {}
    if type(tags) is not dict or len(tags) > MAX_TAGS:
        return None
    device: Any = meta_raw.get("device")
    channel: Any = meta_raw.get("channel", "v")
    kind: Any = meta_raw.get("kind")
    try:
        # Equal to a cached key only if every part is the same str (or None): a str equals no other type.
        cache_key = (device, channel, kind, *tags.items())
        known = _KNOWN_METAS.get(cache_key)
    except TypeError:  # an unhashable value: not the usual message
        return None
    if known is not None:
        return known
    texts = [device, channel, *tags, *tags.values()]
    if kind is not None:
        texts.append(kind)
    try:
        joined = "".join(texts)  # one check of every text at once; a non-str among them raises
    except TypeError:
        return None
    if (not joined.isascii() or not joined.isprintable() or max(map(len, texts)) > MAX_TEXT_BYTES
            or not device.strip() or not channel.strip() or (kind is not None and not kind.strip())):
        return None
    meta = _checked_fields(SignalMeta, {"device_id": device, "channel": channel, "tags": dict(tags),
                                        "true_kind": kind})
    if len(_KNOWN_METAS) >= _KNOWN_METAS_MAX:
        _KNOWN_METAS.clear()
    _KNOWN_METAS[cache_key] = meta
    return meta


def _checked_fields(cls: type[T], fields: dict[str, Any]) -> T:
    # A frozen dataclass's __init__ sets each field through object.__setattr__: that cost a third of
    # the decoder's time per message. Every field here is checked and of its final type already.
    instance = object.__new__(cls)
    instance.__dict__.update(fields)
    return instance


def _meta_from_wire(meta_raw: object) -> SignalMeta:
    if not isinstance(meta_raw, dict):
        raise ContractError("wrong_schema", "meta (a map with meta.device) is required")
    device = meta_raw.get("device")
    if not isinstance(device, str) or not device.strip():
        raise ContractError("wrong_schema", "meta.device (a non-blank string) is required")
    return SignalMeta(
        device_id=_check_text(device, "meta.device", "invalid_text"),
        channel=_optional_text(meta_raw.get("channel"), "meta.channel") or "v",
        tags=_tags_from_wire(meta_raw.get("tags")),
        true_kind=_optional_text(meta_raw.get("kind"), "meta.kind"),
    )


def _tags_from_wire(tags: object) -> dict[str, str]:
    if not tags:
        return {}
    if not isinstance(tags, dict) or len(tags) > MAX_TAGS:
        raise ContractError("wrong_schema", f"meta.tags must be a map of at most {MAX_TAGS} strings")
    text_tags: dict[str, str] = {}
    for key, value in tags.items():
        if not isinstance(key, _SCALARS) or not isinstance(value, _SCALARS):
            raise ContractError("wrong_schema", "meta.tags must map strings to strings")
        text_key = _check_text(str(key), "a meta.tags key", "invalid_text")
        text_tags[text_key] = _check_text(str(value), "a meta.tags value", "invalid_text")
    return text_tags


def _check_text(value: str, what: str, reason: str) -> str:
    if len(value) <= MAX_TEXT_BYTES and value.isascii() and value.isprintable():  # the hot path, inlined
        return value
    problem = text_problem(value)
    if problem is not None:
        raise ContractError(reason, f"{what} {problem}")
    return value


def _optional_text(value: object, what: str) -> str | None:
    """None for an absent or blank field (blank is missing), the text if it is usable."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ContractError("wrong_schema", f"{what} must be a string, got {type(value).__name__}")
    return _check_text(value, what, "invalid_text")


def _finite(value: object) -> float | None:
    """A finite JSON/msgpack number as a float, else None (booleans, strings, 1e400 and 10**400 are not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _shown(value: object) -> str:
    """A short rendering of an input value for an error message, never the whole of a huge one."""
    if isinstance(value, str):
        return repr(value[:40])
    small = value is None or isinstance(value, float) or (isinstance(value, int) and value.bit_length() < 128)
    return repr(value) if small else f"a {type(value).__name__}"


def _samples_from_wire(value: object, max_samples: int) -> Samples:
    if isinstance(value, bytes | bytearray):
        if len(value) % 4:
            raise ContractError("wrong_schema", f"samples: {len(value)} bytes is not a whole number of float32")
        if len(value) // 4 > max_samples:
            raise ContractError("oversize", f"{len(value) // 4} samples, the limit is {max_samples}")
        samples = np.frombuffer(value, dtype="<f4").astype(np.float32, copy=False)
    elif isinstance(value, list):
        if len(value) > max_samples:
            raise ContractError("oversize", f"{len(value)} samples, the limit is {max_samples}")
        samples = _numbers(value)
    else:
        raise ContractError("wrong_schema", "samples must be float32 bytes or a list of floats")
    if samples.size == 0:
        raise ContractError("empty_samples", "the signal has no samples")
    if not np.isfinite(samples).all():
        bad = int((~np.isfinite(samples)).sum())
        raise ContractError("non_finite", f"{bad} sample(s) are NaN or infinite")
    return samples


def _numbers(values: list[Any]) -> Samples:
    # numpy would turn "1.5" into 1.5 and True into 1.0: only real numbers are samples.
    if not all(type(value) is float or type(value) is int for value in values):
        raise ContractError("wrong_schema", "samples must be a flat list of numbers")
    try:
        wide = np.asarray(values, dtype=np.float64)
    except OverflowError:  # an integer beyond any float: infinite, as far as a float32 sample goes
        raise ContractError("non_finite", "a sample is too large for a float") from None
    with np.errstate(over="ignore"):  # beyond float32's range becomes inf, reported just below
        return wide.astype(np.float32)


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
