"""Field-by-field checks of a decoded input map, and the one-pass check of the usual message (fast path)."""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numpy as np

from harness.contracts.model import MAX_TAGS, SCHEMA_VERSION, ContractError, Samples, SignalMeta, SignalReceived
from harness.wire_text import MAX_TEXT_BYTES, text_problem

_SCALARS = (str, int, float, bool, type(None))
T = TypeVar("T")


def checked_signal(raw: dict[Any, Any], max_samples: int) -> SignalReceived:
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


def well_formed_signal(raw: dict[Any, Any], max_samples: int) -> SignalReceived | None:
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


# Wire metas already checked, by their fields: a handful of devices send nearly every message, so most
# messages skip the text checks. Each message still gets its own SignalMeta and tags dict (an algorithm
# may edit them; replicas decode in several threads).
_CHECKED_METAS: set[tuple[Any, ...]] = set()
_CHECKED_METAS_MAX = 4_096  # past it the set starts again: a flood of distinct metas costs time, never memory


def _well_formed_meta(meta_raw: dict[Any, Any]) -> SignalMeta | None:
    tags = meta_raw.get("tags") or {}
    if type(tags) is not dict or len(tags) > MAX_TAGS:
        return None
    device: Any = meta_raw.get("device")
    channel: Any = meta_raw.get("channel", "v")
    kind: Any = meta_raw.get("kind")
    try:
        # Equal to a checked key only if every part is the same str (or None): a str equals no other type.
        checked_key = (device, channel, kind, *tags.items())
        checked = checked_key in _CHECKED_METAS
    except TypeError:  # an unhashable value: not the usual message
        return None
    if not checked:
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
        if len(_CHECKED_METAS) >= _CHECKED_METAS_MAX:
            _CHECKED_METAS.clear()
        _CHECKED_METAS.add(checked_key)
    return _checked_fields(SignalMeta, {"device_id": device, "channel": channel, "tags": dict(tags),
                                        "true_kind": kind})


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
