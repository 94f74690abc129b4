"""Missing means missing: a signal is missing on a side only once that side has moved past its input entry."""

from __future__ import annotations

from typing import Any

from harness.comparator import ComparatorState
from harness.comparator.join import JoinBuffer, input_position
from harness.contracts import SignalClustered, clustered_to_dict


def result(index: int, worker: str, label: str = "A") -> dict[str, Any]:
    return clustered_to_dict(SignalClustered(
        signal_id=f"s{index}", worker=worker, model_version="m1", outcome="clustered", label=label,
        is_new_cluster=False, entered_at_ms=1_000.0, published_at_ms=1_005.0, processing_ms=1.0,
        device_id="dev-1", input_entry_id=f"1700000000000-{index}"))


def feed(state: ComparatorState, side: str, indexes: range | list[int], now_ms: float = 0.0) -> None:
    state.ingest(side, [result(i, side) for i in indexes], now_ms)
    state.advance(now_ms)


def test_a_slow_side_is_awaiting_not_missing_however_long_it_takes() -> None:
    state = ComparatorState(timeout_ms=10)
    feed(state, "candidate", range(1000), now_ms=0.0)
    feed(state, "legacy", range(100), now_ms=10_000_000.0)  # hours later by the clock: still not missing
    report = state.report(1000)
    assert report["counts"]["missing_legacy"] == 0 and report["counts"]["matched"] == 100
    progress = state.progress()
    assert progress["join"] == "progress"
    assert progress["sides"]["legacy"] == {"frontier": "1700000000000-99", "awaiting": 900}
    assert progress["sides"]["candidate"]["awaiting"] == 0
    feed(state, "legacy", range(100, 1000))
    assert state.report(1000)["counts"]["matched"] == 1000


def test_a_signal_a_side_skipped_is_missing_exactly_once_it_has_moved_past_it() -> None:
    state = ComparatorState()
    skipped = {17, 18, 500}
    feed(state, "candidate", range(1000))
    feed(state, "legacy", [i for i in range(600) if i not in skipped])
    counts = state.report(1000)["counts"]
    assert counts["missing_legacy"] == 3 and counts["missing_candidate"] == 0
    assert counts["matched"] == 597 and counts["pending"] == 400


def test_missing_on_the_faster_side_is_found_when_the_slower_catches_up() -> None:
    state = ComparatorState()
    feed(state, "candidate", [i for i in range(100) if i != 42])
    feed(state, "legacy", range(30))
    assert state.report(100)["counts"]["missing_candidate"] == 0  # legacy has not reached 42 yet
    feed(state, "legacy", range(30, 50))
    counts = state.report(100)["counts"]
    assert counts["matched"] == 49 and counts["missing_candidate"] == 1


def test_time_mode_keeps_the_timeout_for_inputs_without_order() -> None:
    state = ComparatorState(timeout_ms=100, join="time")
    feed(state, "candidate", range(10), now_ms=0.0)
    feed(state, "legacy", range(5), now_ms=1_000.0)
    counts = state.report(10)["counts"]
    assert counts["missing_legacy"] == 5 and state.progress()["join"] == "time"


def test_the_progress_join_survives_a_restart_from_bytes() -> None:
    state = ComparatorState()
    feed(state, "candidate", range(100))
    feed(state, "legacy", range(10))
    restored = ComparatorState.from_bytes(state.to_bytes())
    feed(restored, "legacy", [i for i in range(10, 100) if i != 60])
    counts = restored.report(100)["counts"]
    assert counts["matched"] == 99 and counts["missing_legacy"] == 1 and counts["pending"] == 0


def test_settling_never_scans_what_it_cannot_settle() -> None:
    join = JoinBuffer(2, timeout_ms=1, max_pending=10_000)
    slots = [(0, 0, -1, -1, -1)] * 5
    join.offer(0, [f"a{i}" for i in range(5)], slots, 0.0, [10, 11, 12, 13, 14])
    assert len(join.settle()) == 0  # side 1 has produced nothing: everything is awaiting
    join.offer(1, ["a1"], slots[:1], 0.0, [11])
    assert [entry[2] for entry in join.settle()] == [10]


def test_entry_ids_become_ordered_positions() -> None:
    assert input_position("5-1") < input_position("5-2") < input_position("6-0")
    assert input_position(None) == input_position("garbage") == -1
