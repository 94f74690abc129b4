"""Decoding is total: any input gives a valid signal or a ContractError, and oversize input costs no memory.

About 10,500 generated messages in all; each goes through `decoded_or_rejected`, which fails on any
other exception and checks that whatever the decoder let through can be keyed, logged and encoded.
"""

from __future__ import annotations

import json
import tracemalloc
from typing import Any, TypeVar

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.contracts import (
    DEFAULT_MAX_SAMPLES,
    ContractError,
    SignalReceived,
    decode_signal,
    peek_signal_id,
)
from harness.contracts.checks import checked_signal, well_formed_signal
from tests.unit.test_contracts_corpus import decoded_or_rejected, usable_text

SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]  # big values on purpose
FIELDS = ("v", "id", "meta", "rate", "t0", "samples", "meta.device", "meta.kind", "meta.channel", "meta.tags")
MISSING = object()
T = TypeVar("T")

# Lone surrogates, controls, separators, odd spaces, multi-byte characters, and any character at all.
ATOMS = st.one_of(
    st.sampled_from(["\ud800", "\udfff", "\udc00\ud800", "\ud83d\ude00", "\x00", "\x1b", "\x7f", "\x85", "\u2028",
                     "\u2029", " ", "\t", "\n", "\u3000", "\u00a0", "\u200b", "\ufeff", "a", "Z9", "-_.:", "\u00e9",
                     "\u6e2c", "\U0001f600", "\U0010ffff"]),
    st.characters(exclude_categories=[]),
)
TEXTS = st.one_of(
    st.lists(ATOMS, max_size=6).map("".join),
    st.builds(lambda unit, count: unit * count, ATOMS, st.integers(60, 300)),  # around MAX_TEXT_BYTES in UTF-8
    st.integers(250, 262).map(lambda count: "x" * count),
)
ENCODABLE_TEXTS = TEXTS.map(lambda text: text.encode("utf-8", "replace").decode())  # msgpack cannot carry a surrogate
HUGE_INTS = st.builds(lambda sign, digits: sign * 10**digits + 7, st.sampled_from([1, -1]), st.integers(19, 1000))
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), HUGE_INTS, st.floats(), TEXTS),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXTS, inner, max_size=3)),
    max_leaves=5,
)
MSGPACK_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), ENCODABLE_TEXTS,
              st.binary(max_size=64)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(ENCODABLE_TEXTS, inner, max_size=3)),
    max_leaves=5,
)
BATCH = 4  # messages per example: a quarter of hypothesis's fixed cost per example, for the same messages


def batches(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[list[T]]:
    return st.lists(strategy, min_size=BATCH, max_size=BATCH)


def valid_wire() -> dict[str, Any]:
    return {"v": 1, "id": "sig-1", "meta": {"device": "dev-1", "kind": "sag", "channel": "v", "tags": {"a": "b"}},
            "rate": 1000.0, "t0": 1.7e9, "samples": [230.0, 231.5, 229.25]}


def mutated(field: str, value: object, wire: dict[str, Any] | None = None) -> dict[str, Any]:
    wire = valid_wire() if wire is None else wire
    target, key = (wire["meta"], field[5:]) if field.startswith("meta.") else (wire, field)
    if value is MISSING:
        target.pop(key)
    else:
        target[key] = value
    return wire


def as_json(wire: object) -> bytes:
    # ensure_ascii writes a lone surrogate as a \udXXX escape, exactly as the reported incident did
    return json.dumps(wire, allow_nan=True).encode()


@settings(max_examples=500, deadline=None, suppress_health_check=SLOW)
@given(batches(st.binary(max_size=600)))
def test_random_bytes_are_a_signal_or_a_contract_error(payloads: list[bytes]) -> None:
    for payload in payloads:
        decoded_or_rejected(payload)


@settings(max_examples=625, deadline=None, suppress_health_check=SLOW)
@given(batches(st.tuples(st.sampled_from(FIELDS), st.one_of(st.just(MISSING), JSON_VALUES))))
def test_near_valid_json_with_a_mutated_field_is_a_signal_or_a_contract_error(edits: list[tuple[str, object]]) -> None:
    for field, value in edits:
        decoded_or_rejected(as_json(mutated(field, value)))


@settings(max_examples=500, deadline=None, suppress_health_check=SLOW)
@given(batches(st.tuples(st.sampled_from(FIELDS), st.one_of(st.just(MISSING), MSGPACK_VALUES))))
def test_near_valid_msgpack_with_a_mutated_field_is_a_signal_or_a_contract_error(
    edits: list[tuple[str, object]]
) -> None:
    for field, value in edits:
        decoded_or_rejected(msgpack.packb(mutated(field, value), use_bin_type=True))


@settings(max_examples=625, deadline=None, suppress_health_check=SLOW)
@given(batches(st.tuples(TEXTS, TEXTS, st.one_of(st.none(), TEXTS), st.booleans())))
def test_ids_devices_and_kinds_are_accepted_exactly_when_usable(
    messages: list[tuple[str, str, str | None, bool]]
) -> None:
    for signal_id, device, kind, packed in messages:
        assert_text_verdict(signal_id, device, kind, packed)


def assert_text_verdict(signal_id: str, device: str, kind: str | None, packed: bool) -> None:
    # As the wire carries them: two escapes of a high and a low surrogate are one character in JSON.
    signal_id, device, kind = (json.loads(json.dumps(text)) for text in (signal_id, device, kind))
    wire = valid_wire()
    wire["id"], wire["meta"]["device"], wire["meta"]["kind"] = signal_id, device, kind
    encodable = all(text == text.encode("utf-8", "replace").decode() for text in (signal_id, device, kind or "k"))
    payload = msgpack.packb(wire, use_bin_type=True) if packed and encodable else as_json(wire)
    verdict = decoded_or_rejected(payload)
    kind_ok = kind is None or not kind.strip() or usable_text(kind)
    if usable_text(signal_id) and usable_text(device) and kind_ok:
        assert isinstance(verdict, SignalReceived), verdict
        assert (verdict.signal_id, verdict.meta.device_id) == (signal_id, device)
        assert verdict.meta.true_kind == (kind if kind and kind.strip() else None)
        assert peek_signal_id(payload) == signal_id
    elif not usable_text(signal_id):
        assert isinstance(verdict, ContractError)
        assert verdict.reason == ("missing_id" if not signal_id.strip() else "invalid_id")
        assert peek_signal_id(payload) is None
    else:
        assert isinstance(verdict, ContractError)
        assert verdict.reason in ("wrong_schema", "invalid_text")
        assert peek_signal_id(payload) == signal_id


@st.composite
def structural_json(draw: st.DrawFn) -> bytes:
    """Deep nesting and numbers far beyond any float, as text, wherever a value goes."""
    depth = draw(st.integers(1, 30_000))
    opener = draw(st.sampled_from(["[", '{"k":']))
    closer = "]" if opener == "[" else "}"
    digits = "9" * draw(st.integers(1, 6_000))
    exponent = draw(st.sampled_from(["", "e400", "e-400", "E+99999", ".5e308"]))
    leaf = draw(st.sampled_from([digits + exponent, "-" + digits, "1e400", "NaN", "-Infinity", "0"]))
    value = draw(st.sampled_from([opener * depth + leaf + closer * depth, leaf, f"[{leaf}, 1]"]))
    field = draw(st.sampled_from(["v", "id", "rate", "t0", "samples", "meta"]))
    parts = {key: json.dumps(item) for key, item in valid_wire().items()}
    parts[field] = value
    return ("{" + ",".join(f'"{key}":{text}' for key, text in parts.items()) + "}").encode()


@settings(max_examples=200, deadline=None, suppress_health_check=SLOW)
@given(batches(structural_json()))
def test_deep_nesting_and_huge_numbers_are_a_signal_or_a_contract_error(payloads: list[bytes]) -> None:
    for payload in payloads:
        decoded_or_rejected(payload)


EDITS = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255), st.sampled_from("fidt")), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None, suppress_health_check=SLOW)
@given(batches(st.tuples(st.booleans(), EDITS)))
def test_byte_level_mutations_of_a_valid_message_are_a_signal_or_a_contract_error(
    messages: list[tuple[bool, list[tuple[int, int, str]]]]
) -> None:
    for packed, edits in messages:
        decoded_or_rejected(mutated_bytes(packed, edits))


def mutated_bytes(packed: bool, edits: list[tuple[int, int, str]]) -> bytes:
    """A valid message with bytes flipped (f), inserted (i), deleted (d) or the tail cut off (t)."""
    wire = valid_wire()
    payload = bytearray(msgpack.packb(wire, use_bin_type=True) if packed else as_json(wire))
    for position, byte, edit in edits:
        at = position % (len(payload) + 1)
        if edit == "f" and at < len(payload):
            payload[at] = byte
        elif edit == "i":
            payload.insert(at, byte)
        elif edit == "d" and at < len(payload):
            del payload[at]
        elif edit == "t":
            del payload[at:]
    return bytes(payload)


def oversize_payloads() -> dict[str, bytes]:
    mb20, mb5 = 20 * 1024 * 1024, 5 * 1024 * 1024
    late_id = {"v": 1, "meta": {"device": "d"}, "rate": 1.0, "samples": np.ones(mb20 // 4, "<f4").tobytes(), "id": "x"}
    return {
        "json_samples": b'{"v":1,"id":"a","rate":1,"samples":[' + b"230.0," * (mb20 // 6) + b"1]}",
        "json_nesting": b'{"v":1,"id":"a","samples":' + b"[" * mb20 + b"]" * mb20 + b"}",
        "json_id": b'{"v":1,"id":"' + b"i" * mb5 + b'","meta":{"device":"d"},"rate":1,"samples":[1]}',
        "msgpack_late_id": msgpack.packb(late_id, use_bin_type=True),
        "msgpack_id": msgpack.packb({"v": 1, "id": "i" * mb5, "samples": b"\0\0\0\0"}, use_bin_type=True),
        "random_bytes": np.random.default_rng(7).integers(0, 256, mb20, dtype=np.uint8).tobytes(),
    }


def test_oversize_input_is_rejected_before_it_is_parsed_in_bounded_memory() -> None:
    bound = 8 * 1024 * 1024  # far below any of the payloads: none of them may be parsed whole
    for name, payload in oversize_payloads().items():
        tracemalloc.start()
        try:
            for _ in range(3):
                with pytest.raises(ContractError) as rejected:
                    decode_signal(payload)
                assert rejected.value.reason == "oversize", name
                assert peek_signal_id(payload) is None, name
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < bound, f"{name}: peak {peak:,} bytes for a payload of {len(payload):,}"


def packed_wire() -> dict[str, Any]:
    """What our producer writes: float rate and t0, float32 bytes for the samples (the decoder's fast path)."""
    wire = valid_wire()
    wire["samples"] = np.array(wire["samples"], "<f4").tobytes()
    return wire


@settings(max_examples=400, deadline=None, suppress_health_check=SLOW)
@given(batches(st.tuples(st.sampled_from(FIELDS), st.one_of(st.just(MISSING), MSGPACK_VALUES, TEXTS))))
def test_the_fast_path_accepts_only_what_the_field_checks_accept_and_decodes_it_the_same(
    edits: list[tuple[str, object]]
) -> None:
    for field, value in edits:
        wire = mutated(field, value, packed_wire())
        fast = well_formed_signal(wire, DEFAULT_MAX_SAMPLES)
        if fast is None:
            continue
        checked = checked_signal(wire, DEFAULT_MAX_SAMPLES)
        assert (fast.signal_id, fast.meta, fast.sample_rate_hz, fast.start_time) == (
            checked.signal_id, checked.meta, checked.sample_rate_hz, checked.start_time)
        assert fast.samples.tobytes() == checked.samples.tobytes()


def test_the_fast_path_takes_the_producers_messages() -> None:
    assert well_formed_signal(packed_wire(), DEFAULT_MAX_SAMPLES) is not None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=1, max_size=64))
def test_the_fast_path_never_takes_a_non_finite_sample(values: list[float]) -> None:
    wire = packed_wire()
    wire["samples"] = np.array(values, "<f4").tobytes()
    fast = well_formed_signal(wire, DEFAULT_MAX_SAMPLES)
    if np.isfinite(np.array(values, np.float32)).all():
        assert fast is not None and fast.samples.tobytes() == wire["samples"]
    else:
        assert fast is None


def test_the_fast_path_checks_a_meta_once_and_gives_each_message_its_own() -> None:
    first, second = packed_wire(), packed_wire()
    second["id"] = "another-id"
    one, two = well_formed_signal(first, DEFAULT_MAX_SAMPLES), well_formed_signal(second, DEFAULT_MAX_SAMPLES)
    assert one is not None and two is not None and one.meta == two.meta
    assert one.meta is not two.meta and one.meta.tags is not two.meta.tags, "an algorithm may edit its own"
    bad = packed_wire()
    bad["meta"] = {**bad["meta"], "device": "dev\x00ice"}
    assert well_formed_signal(bad, DEFAULT_MAX_SAMPLES) is None, "a new meta is checked before it is kept"
