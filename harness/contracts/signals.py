"""SignalReceived on the wire: msgpack (samples as float32 bytes) or JSON; decoding is total."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import msgpack

from harness.contracts.checks import checked_signal, well_formed_signal
from harness.contracts.model import (
    DEFAULT_MAX_SAMPLES,
    PAYLOAD_BYTES_PER_SAMPLE,
    PAYLOAD_OVERHEAD_BYTES,
    PEEK_MAX_PAYLOAD_BYTES,
    SCHEMA_VERSION,
    ContractError,
    SignalMeta,
    SignalReceived,
)
from harness.wire_text import valid_signal_id


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
    return well_formed_signal(raw, max_samples) or checked_signal(raw, max_samples)
