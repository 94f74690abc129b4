"""Each kind of malformed input gets its documented outcome, and the worker carries on."""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgpack
import numpy as np
import pytest
import redis

from harness.contracts import SignalClustered, SignalMeta, SignalReceived, encode_signal, signal_to_json
from harness.transport import keys
from tests.support.processes import results, start_worker, stop, wait_for

BY_DEVICE = "tests.support.algorithms:by_device"


def signal(signal_id: str, samples: np.ndarray | None = None) -> SignalReceived:
    values = samples if samples is not None else np.full(100, 230.0) + np.sin(np.arange(100))
    return SignalReceived(signal_id, SignalMeta("dev-1"), 1000.0, 1.7e9, values.astype(np.float32))


def raw_map(**overrides: object) -> bytes:
    wire = {"v": 1, "id": "x", "meta": {"device": "dev-1"}, "rate": 1000.0, "t0": 0.0,
            "samples": np.ones(10, dtype="<f4").tobytes()}
    wire.update(overrides)
    return msgpack.packb({k: v for k, v in wire.items() if v is not None}, use_bin_type=True)


# (entry payload, expected outcome, expected error type or None, expected signal id)
MALFORMED: dict[str, tuple[bytes, str, str | None, str | None]] = {
    "garbage_bytes": (b"\xc1\xff\x00garbage", "error", "undecodable", None),
    "wrong_schema_version": (raw_map(v=99, id="bad-version"), "error", "wrong_schema_version", "bad-version"),
    "missing_id": (raw_map(id=None), "error", "missing_id", None),
    "empty_samples": (raw_map(id="empty", samples=b""), "error", "empty_samples", "empty"),
    "nan": (raw_map(id="nan", samples=np.array([1, np.nan], dtype="<f4").tobytes()), "error", "non_finite", "nan"),
    "inf": (raw_map(id="inf", samples=np.array([np.inf, 1], dtype="<f4").tobytes()), "error", "non_finite", "inf"),
    "oversize": (raw_map(id="big", samples=np.ones(5000, dtype="<f4").tobytes()), "error", "oversize", "big"),
    "not_a_map": (msgpack.packb([1, 2, 3]), "error", "wrong_schema", None),
    "no_device": (raw_map(id="no-device", meta={"channel": "v"}), "error", "wrong_schema", "no-device"),
    "huge_integer": (b'{"v": 1, "id": "huge", "meta": {"device": "d"}, "rate": 1' + b"0" * 400 + b', "samples": [1]}',
                     "error", "wrong_schema", "huge"),
    # 140 KB: under the payload limit of --max-samples 1000, so the parser itself meets the nesting
    "deeply_nested_json": (b'{"a": ' * 20_000 + b"1" + b"}" * 20_000, "error", "undecodable", None),
    "surrogate_id": (rb'{"v":1,"id":"bad\ud800id","meta":{"device":"d"},"rate":1000,"samples":[230,231,229]}',
                     "error", "invalid_id", None),
    "surrogate_device": (rb'{"v":1,"id":"surrogate-device","meta":{"device":"d\udfff"},"rate":1,"samples":[1]}',
                         "error", "invalid_text", "surrogate-device"),
    "surrogate_kind": (rb'{"v":1,"id":"surrogate-kind","meta":{"device":"d","kind":"\ud800"},"rate":1,"samples":[1]}',
                       "error", "invalid_text", "surrogate-kind"),
    "blank_id": (raw_map(id="   "), "error", "missing_id", None),
    "control_character_id": (raw_map(id="two\nlines"), "error", "invalid_id", None),
    "huge_id": (raw_map(id="i" * 100_000), "error", "invalid_id", None),
    "oversize_payload": (b'{"v":1,"id":"megabyte","samples":[' + b"1.0," * 250_000 + b"1]}", "error", "oversize",
                         "megabyte"),
    "json_producer": (signal_to_json(signal("from-json")).encode(), "clustered", None, "from-json"),
    "duplicate_first": (encode_signal(signal("twice")), "clustered", None, "twice"),
    "duplicate_again": (encode_signal(signal("twice")), "error", "duplicate_id", "twice"),
    "good_after_all_that": (encode_signal(signal("good")), "clustered", None, "good"),
}


def test_every_malformed_input_gets_its_documented_outcome_and_the_worker_carries_on(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    entry_ids = {name: redis_client.xadd(keys.DEFAULT_INPUT_STREAM, {keys.PAYLOAD_FIELD: payload}).decode()
                 for name, (payload, *_rest) in MALFORMED.items()}
    worker = start_worker(BY_DEVICE, redis_url, "--name", "strict", "--max-samples", "1000",
                          log=tmp_path / "strict.log")
    try:
        wait_for(lambda: len(results(redis_client, "strict")) >= len(MALFORMED), 30, "results", [worker])
        assert worker.poll() is None, "the worker must keep running after bad input"
    finally:
        stop(worker)
    by_entry: dict[str, SignalClustered] = {r.input_entry_id or "": r for r in results(redis_client, "strict")}
    dead = {fields[b"entry"].decode(): fields for _, fields in
            redis_client.xrange(keys.dead_letter_stream("strict"))}
    for name, (payload, outcome, error_type, signal_id) in MALFORMED.items():
        result = by_entry[entry_ids[name]]
        assert result.outcome == outcome, name
        assert result.error_type == error_type, name
        assert result.signal_id == (signal_id or f"entry:{entry_ids[name]}"), name
        if outcome == "error":
            assert dead[entry_ids[name]][b"reason"].decode() == error_type, name
            letter = dead[entry_ids[name]]
            # A dead letter keeps a capped prefix of the input, with its full size and hash.
            assert payload.startswith(letter[keys.PAYLOAD_FIELD]), f"{name}: the dead letter keeps the input"
            assert int(letter[b"size"]) == len(payload), name
            assert letter[b"sha256"].decode() == hashlib.sha256(payload).hexdigest(), name
            assert result.error_message, name
        else:
            assert entry_ids[name] not in dead, name
    assert int(redis_client.xpending(keys.DEFAULT_INPUT_STREAM, "strict")["pending"]) == 0


@pytest.mark.parametrize(
    ("policy", "outcome"),
    [("keep", "clustered"), ("clip", "clustered"), ("reject", "unclustered")],
)
def test_negative_voltages_follow_the_candidate_policy(
    policy: str, outcome: str, redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    glitch = np.full(1000, 230.0)
    glitch[100:110] = -40.0
    redis_client.xadd(keys.DEFAULT_INPUT_STREAM, {keys.PAYLOAD_FIELD: encode_signal(signal("neg", glitch))})
    redis_client.xadd(keys.DEFAULT_INPUT_STREAM, {keys.PAYLOAD_FIELD: encode_signal(signal("after"))})
    name = f"candidate-{policy}"
    worker = start_worker("candidate", redis_url, "--name", name,
                          env={"HARNESS_CANDIDATE_NEGATIVE_VOLTAGE": policy}, log=tmp_path / f"{name}.log")
    try:
        wait_for(lambda: len(results(redis_client, name)) >= 2, 30, "results", [worker])
    finally:
        stop(worker)
    first, after = results(redis_client, name)
    assert (first.signal_id, first.outcome) == ("neg", outcome)
    assert after.outcome == "clustered"
    if outcome == "unclustered":
        assert first.error_message and "negative" in first.error_message
        assert redis_client.xlen(keys.dead_letter_stream(name)) == 0, "a declined signal is not dead input"


def test_poison_entry_goes_to_dead_letters_after_max_deliveries(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    stream = keys.DEFAULT_INPUT_STREAM
    redis_client.xgroup_create(stream, "poisoned", id="0", mkstream=True)
    entry = redis_client.xadd(stream, {keys.PAYLOAD_FIELD: encode_signal(signal("poison"))})
    # Three attempts that crashed before their ack: the first read, then two re-reads of the pending list.
    for start in (">", "0", "0"):
        redis_client.xreadgroup("poisoned", "poisoned", {stream: start}, count=10)
    worker = start_worker(BY_DEVICE, redis_url, "--name", "poisoned", "--max-deliveries", "3",
                          log=tmp_path / "poisoned.log")
    try:
        wait_for(lambda: len(results(redis_client, "poisoned")) >= 1, 30, "results", [worker])
    finally:
        stop(worker)
    (result,) = results(redis_client, "poisoned")
    assert (result.signal_id, result.outcome, result.error_type) == ("poison", "error", "max_deliveries")
    assert result.redelivered
    (_, letter), = redis_client.xrange(keys.dead_letter_stream("poisoned"))
    assert letter[b"entry"] == entry and letter[b"reason"] == b"max_deliveries"
