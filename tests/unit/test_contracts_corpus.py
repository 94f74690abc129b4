"""A stored corpus of bad (and borderline good) input messages, each with its documented verdict."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from pathlib import Path

import msgpack
import numpy as np
import pytest

from harness.contracts import (
    DECODE_REASONS,
    DEFAULT_MAX_SAMPLES,
    MAX_DETAIL_CHARS,
    ContractError,
    SignalClustered,
    SignalReceived,
    decode_clustered,
    decode_signal,
    encode_clustered,
    encode_signal,
    peek_signal_id,
    signal_to_json,
)

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "bad_messages.jsonl"
CASES: dict[str, dict[str, object]] = {case["name"]: case for case in map(json.loads, CORPUS.read_text().splitlines())}
MB = 1024 * 1024


def usable_text(text: str) -> bool:
    """The contract's rule for ids, devices and kinds, written independently of the decoder."""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    control = any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in text)
    return bool(text.strip()) and size <= 256 and not control


def assert_result_encodes(signal_id: str, device: str | None, kind: str | None, error: ContractError | None) -> None:
    """What the runtime does with the decoder's output: a key name, a result row, a dead letter."""
    assert f"harness:seen:worker:{signal_id}".encode()
    result = SignalClustered(signal_id, "worker", "model-1", "error" if error else "clustered", None, False,
                             1.0, 2.0, 0.5, device_id=device, true_kind=kind,
                             error_type=error.reason if error else None, error_message=error.message if error else None)
    assert decode_clustered(encode_clustered(result)) == result
    if error is not None:
        assert [field.encode() for field in (error.reason, error.message, signal_id)]


def decoded_or_rejected(payload: bytes, max_samples: int = DEFAULT_MAX_SAMPLES) -> SignalReceived | ContractError:
    """decode_signal's verdict, held to the contract's promises; any other exception fails the calling test."""
    try:
        signal = decode_signal(payload, max_samples)
    except ContractError as exc:
        assert exc.reason in DECODE_REASONS, exc.reason
        assert len(exc.message) <= MAX_DETAIL_CHARS + 1 and "\n" not in exc.message
        peeked = peek_signal_id(payload)
        assert peeked is None or usable_text(peeked), repr(peeked)
        assert_result_encodes(peeked or "entry:1-0", None, None, exc)
        return exc
    meta = signal.meta
    assert all(usable_text(text) for text in (signal.signal_id, meta.device_id, meta.channel, meta.true_kind or "k"))
    assert signal.samples.dtype == np.float32 and 0 < signal.samples.size <= max_samples
    assert np.isfinite(signal.samples).all()
    for again in (decode_signal(encode_signal(signal), max_samples), decode_signal(signal_to_json(signal).encode())):
        assert (again.signal_id, again.meta, again.sample_rate_hz, again.start_time) == (
            signal.signal_id, meta, signal.sample_rate_hz, signal.start_time)
        assert np.array_equal(again.samples, signal.samples)
    assert_result_encodes(signal.signal_id, meta.device_id, meta.true_kind, None)
    return signal


def stored_payload(case: dict[str, object]) -> bytes:
    if "payload_hex" in case:
        return bytes.fromhex(str(case["payload_hex"]))
    return str(case["payload_text"]).encode("utf-8")


def assert_verdict(payload: bytes, max_samples: int, reason: str | None, signal_id: str | None) -> None:
    verdict = decoded_or_rejected(payload, max_samples)
    if reason is None:
        assert isinstance(verdict, SignalReceived), verdict
        assert verdict.signal_id == signal_id
    else:
        assert isinstance(verdict, ContractError), verdict
        assert verdict.reason == reason, verdict
        assert peek_signal_id(payload) == signal_id


@pytest.mark.parametrize("name", sorted(CASES))
def test_stored_message_gets_its_documented_verdict(name: str) -> None:
    case = CASES[name]
    max_samples = int(case.get("max_samples", DEFAULT_MAX_SAMPLES))  # type: ignore[call-overload]
    assert_verdict(stored_payload(case), max_samples, case["reason"], case["signal_id"])  # type: ignore[arg-type]


def json_signal(signal_id: str, samples: str = "[230.0, 231.0]") -> bytes:
    return f'{{"v":1,"id":"{signal_id}","meta":{{"device":"d"}},"rate":1000,"samples":{samples}}}'.encode()


def msgpack_signal(signal_id: str, sample_count: int) -> bytes:
    wire = {"v": 1, "id": signal_id, "meta": {"device": "d"}, "rate": 1000.0,
            "samples": np.ones(sample_count, dtype="<f4").tobytes()}
    return bytes(msgpack.packb(wire, use_bin_type=True))


# Too big to store: built at test time. (payload, max_samples, reason, the id its error result gets)
GENERATED: dict[str, tuple[Callable[[], bytes], int, str, str | None]] = {
    "payload_20mb_json": (lambda: json_signal("big-json", "[" + "230.0," * (20 * MB // 6) + "1]"),
                          DEFAULT_MAX_SAMPLES, "oversize", None),
    "payload_20mb_msgpack": (lambda: msgpack_signal("big-msgpack", 5 * MB), DEFAULT_MAX_SAMPLES, "oversize",
                             "big-msgpack"),
    "id_5mb_json": (lambda: json_signal("i" * 5 * MB), DEFAULT_MAX_SAMPLES, "oversize", None),
    "id_5mb_msgpack": (lambda: msgpack_signal("i" * 5 * MB, 3), DEFAULT_MAX_SAMPLES, "oversize", None),
    "id_5mb_under_a_raised_payload_limit": (lambda: json_signal("i" * 5 * MB), 1_000_000, "invalid_id", None),
    "id_1mb_under_the_default_limit": (lambda: msgpack_signal("i" * MB, 3), DEFAULT_MAX_SAMPLES, "invalid_id", None),
}


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_huge_message_gets_its_documented_verdict(name: str) -> None:
    make, max_samples, reason, signal_id = GENERATED[name]
    assert_verdict(make(), max_samples, reason, signal_id)


def test_corpus_covers_every_reason_code_of_the_decoder() -> None:
    reasons = {case["reason"] for case in CASES.values()} | {reason for _, _, reason, _ in GENERATED.values()}
    assert reasons - {None} == set(DECODE_REASONS)


def test_docs_list_every_reason_code_of_the_decoder() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "contracts.md").read_text()
    assert [reason for reason in DECODE_REASONS if f"| `{reason}` |" not in docs] == []


def test_a_contract_error_message_is_one_short_encodable_line_whatever_it_quotes() -> None:
    for quoted in ("x\ud800" * 1000, "\udfff" * 299, "y" * 10_000):
        message = ContractError("wrong_schema", quoted).message
        assert len(message) <= MAX_DETAIL_CHARS + 1 and message.encode("utf-8")
    assert ContractError("wrong_schema", "bad \ud800").message == "bad \\ud800"


def test_a_result_carrying_text_utf8_cannot_encode_is_still_encoded_with_it_escaped() -> None:
    # Decoded text always encodes; an algorithm's label or exception text is not decoded text.
    result = SignalClustered("sig", "worker", "model-1", "error", "label\ud800", False, 1.0, 2.0, 0.5,
                             error_type="ValueError", error_message="bad \udfff input")
    decoded = decode_clustered(encode_clustered(result))
    assert (decoded.signal_id, decoded.label, decoded.error_message) == ("sig", "label\\ud800", "bad \\udfff input")
