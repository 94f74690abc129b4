"""Each step of the batch pipeline on its own: decode, dedupe, assign, encode."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from harness.clustering import Assignment
from harness.contracts import SignalReceived, decode_clustered
from harness.runtime.pipeline import Decoded, assign_step, decode_step, dedupe_step, encode_step
from harness.runtime.results import Rejection, ResultBuilder
from harness.transport.base import Delivery
from harness.transport.errors import TransportError, TransportOutOfMemory
from tests.unit.test_runtime import Labeller, payload

BUILDER = ResultBuilder("w", "m1")


def delivery(entry: str, body: bytes, count: int = 1) -> Delivery:
    return Delivery(entry, body, 1_000.0, count > 1, count)


def no_infrastructure(exc: BaseException) -> TransportError | None:
    return None


def test_decode_splits_signals_from_rejections_with_their_reason() -> None:
    decoded, rejected = decode_step([delivery("1-0", payload("a")), delivery("2-0", b"\x00garbage"),
                                     delivery("3-0", payload("c"), count=9)], max_deliveries=5, max_samples=1000)
    assert [d.signal.signal_id for d in decoded] == ["a"]
    assert [(r.delivery.entry_id, r.reason) for r in rejected] == [("2-0", "undecodable"), ("3-0", "max_deliveries")]
    assert rejected[0].joinable_id == "entry:2-0" and rejected[1].joinable_id == "c"


def test_dedupe_keeps_first_sightings_and_rejects_the_rest() -> None:
    decoded, _ = decode_step([delivery("1-0", payload("a")), delivery("2-0", payload("b"))], 5, 1000)
    fresh, rejected = dedupe_step(decoded, lambda ids: [True, False])
    assert [d.signal.signal_id for d in fresh] == ["a"]
    assert [(r.signal_id, r.reason) for r in rejected] == [("b", "duplicate_id")]


def test_assign_raises_an_infrastructure_error_instead_of_publishing_it() -> None:
    decoded, _ = decode_step([delivery("1-0", payload("a"))], 5, 1000)
    algorithm = Labeller(fail_with=RuntimeError("OOM command not allowed"))

    def classify(exc: BaseException) -> TransportError | None:
        return TransportOutOfMemory(str(exc)) if "OOM" in str(exc) else None

    with pytest.raises(TransportOutOfMemory):
        assign_step(algorithm, [d.signal for d in decoded], classify, "w")


def test_assign_isolates_a_failing_signal_without_failing_the_batch() -> None:
    decoded, _ = decode_step([delivery(f"{i}-0", payload(f"s{i}")) for i in range(3)], 5, 1000)
    assignments = assign_step(Labeller(fail_on={"s1"}), [d.signal for d in decoded], no_infrastructure, "w")
    assert [a.outcome for a in assignments] == ["clustered", "error", "clustered"]


class WrongCount:
    model_version = "wrong-count"
    replay_safe = True

    def assign_batch(self, signals: Sequence[SignalReceived]) -> list[Assignment]:
        return [Assignment.clustered("x")]


def test_an_algorithm_that_is_not_replay_safe_is_called_once_and_its_batch_fails_whole() -> None:
    decoded, _ = decode_step([delivery(f"{i}-0", payload(f"s{i}")) for i in range(3)], 5, 1000)
    algorithm = Labeller(fail_on={"s1"})
    algorithm.replay_safe = False  # type: ignore[misc]
    rolled_back: list[bool] = []
    assignments = assign_step(algorithm, [d.signal for d in decoded], no_infrastructure, "w",
                              rollback=lambda: rolled_back.append(True))
    assert [a.outcome for a in assignments] == ["error"] * 3 and rolled_back == [True]
    assert assignments[0].error_message is not None and "the batch failed" in assignments[0].error_message


def test_assign_retries_one_by_one_when_the_algorithm_returns_the_wrong_count() -> None:
    decoded, _ = decode_step([delivery(f"{i}-0", payload(f"s{i}")) for i in range(3)], 5, 1000)
    assert assign_step(WrongCount(), [d.signal for d in decoded], no_infrastructure, "w") == [
        Assignment.clustered("x")] * 3


def test_encode_puts_results_back_in_input_order_and_counts_outcomes() -> None:
    deliveries = [delivery("1-0", payload("a")), delivery("2-0", b""), delivery("3-0", payload("c"))]
    decoded, rejected = decode_step(deliveries, 5, 1000)
    clustered: list[Decoded] = decoded
    results, outcomes = encode_step(deliveries, clustered, [Assignment.clustered("k")] * 2, rejected, BUILDER,
                                    published_ms=900.0, per_signal_ms=0.5)
    assert [entry for entry, _ in results] == ["1-0", "2-0", "3-0"]
    assert outcomes == {"clustered": 2, "error": 1}
    first = decode_clustered(results[0][1])
    assert first.published_at_ms >= first.entered_at_ms, "a result is never published before its entry"
    signal = decoded[0].signal
    assert (first.signal_id, first.worker, first.model_version, first.outcome, first.label, first.device_id,
            first.true_kind, first.input_entry_id, first.processing_ms, first.epoch) == (
        signal.signal_id, "w", "m1", "clustered", "k", signal.meta.device_id, signal.meta.true_kind, "1-0", 0.5, None)


def test_a_dead_letter_keeps_a_capped_prefix_with_the_size_and_hash_of_the_whole() -> None:
    body = b"x" * 10_000
    letter = Rejection(delivery("1-0", body), None, "oversize", "too big").dead_letter(payload_cap=100)
    assert letter.payload == body[:100] and letter.payload_size == 10_000 and len(letter.payload_sha256) == 64
