"""The join buffer: completion, redeliveries, late results, expiry and bounded eviction."""

from __future__ import annotations

from harness.comparator.join import MASK, SLOTS, JoinBuffer, Slot

LEGACY, CANDIDATE, REPLICA = 0, 1, 2


def slot(label: int) -> Slot:
    return (0, label, -1, -1, -1)


def offer(join: JoinBuffer, side: int, ids: list[str], now_ms: float = 0.0) -> tuple[int, int, int, int]:
    """(accepted, completed, duplicates, late) for one batch."""
    out = join.offer(side, ids, [slot(i) for i in range(len(ids))], now_ms)
    return len(out.accepted), len(out.completed), out.duplicates, out.late


def test_a_signal_completes_when_every_side_has_arrived() -> None:
    join = JoinBuffer(2, timeout_ms=1_000, max_pending=100)
    assert offer(join, LEGACY, ["a", "b"]) == (2, 0, 0, 0)
    out = join.offer(CANDIDATE, ["b"], [slot(7)], 1.0)
    assert len(out.completed) == 1
    assert out.completed[0][SLOTS + LEGACY] == slot(1)
    assert out.completed[0][SLOTS + CANDIDATE] == slot(7)
    assert len(join) == 1


def test_with_a_replica_all_three_sides_are_needed() -> None:
    join = JoinBuffer(3, timeout_ms=1_000, max_pending=100)
    offer(join, LEGACY, ["a"])
    assert offer(join, CANDIDATE, ["a"]) == (1, 0, 0, 0)
    assert offer(join, REPLICA, ["a"]) == (1, 1, 0, 0)


def test_redelivery_while_pending_is_a_duplicate() -> None:
    join = JoinBuffer(2, timeout_ms=1_000, max_pending=100)
    offer(join, LEGACY, ["a"])
    assert offer(join, LEGACY, ["a", "a"]) == (0, 0, 2, 0)
    assert offer(join, CANDIDATE, ["a"]) == (1, 1, 0, 0)


def test_redelivery_after_the_join_completed_is_a_duplicate() -> None:
    join = JoinBuffer(2, timeout_ms=1_000, max_pending=100)
    offer(join, LEGACY, ["a"])
    offer(join, CANDIDATE, ["a"])
    assert offer(join, CANDIDATE, ["a"]) == (0, 0, 1, 0)
    assert offer(join, LEGACY, ["a"]) == (0, 0, 1, 0)
    assert len(join) == 0


def test_timeout_expires_the_oldest_pending_signals_only() -> None:
    join = JoinBuffer(2, timeout_ms=100, max_pending=100)
    offer(join, LEGACY, ["old"], now_ms=0.0)
    offer(join, LEGACY, ["young"], now_ms=60.0)
    assert len(join.expire(99.0)) == 0
    expired = join.expire(100.0)
    assert [entry[MASK] for entry in expired] == [1 << LEGACY]
    assert len(join) == 1


def test_the_partner_of_an_expired_signal_is_late_and_counted_once() -> None:
    join = JoinBuffer(2, timeout_ms=100, max_pending=100)
    offer(join, LEGACY, ["a"], now_ms=0.0)
    join.expire(500.0)
    assert offer(join, CANDIDATE, ["a"], now_ms=501.0) == (1, 0, 0, 1)
    assert offer(join, CANDIDATE, ["a"], now_ms=502.0) == (0, 0, 1, 0)
    assert len(join) == 0


def test_eviction_keeps_the_buffer_bounded_and_reports_the_oldest() -> None:
    join = JoinBuffer(2, timeout_ms=10_000, max_pending=3)
    out = join.offer(LEGACY, ["a", "b", "c", "d", "e"], [slot(i) for i in range(5)], 0.0)
    assert len(join) == 3
    assert [entry[SLOTS + LEGACY] for entry in out.evicted] == [slot(0), slot(1)]
    # an evicted signal's partner is late, not a new pending join
    assert offer(join, CANDIDATE, ["a"]) == (1, 0, 0, 1)


def test_finished_ids_are_remembered_for_at_least_max_pending_signals() -> None:
    join = JoinBuffer(2, timeout_ms=10_000, max_pending=10)
    ids = [f"s{i}" for i in range(35)]
    for start in range(0, 35, 5):
        assert offer(join, LEGACY, ids[start : start + 5]) == (5, 0, 0, 0)
        assert offer(join, CANDIDATE, ids[start : start + 5]) == (5, 5, 0, 0)
    recent = ids[-10:]
    assert offer(join, LEGACY, recent) == (0, 0, 10, 0)


def test_round_trip_through_the_wire_form_keeps_pending_and_memory() -> None:
    join = JoinBuffer(2, timeout_ms=100, max_pending=10)
    offer(join, LEGACY, ["a", "b"], now_ms=5.0)
    offer(join, CANDIDATE, ["a"], now_ms=6.0)
    restored = JoinBuffer(2, timeout_ms=100, max_pending=10)
    restored.restore(join.to_wire())
    assert restored.to_wire() == join.to_wire()
    assert offer(restored, CANDIDATE, ["a"]) == (0, 0, 1, 0)
    assert offer(restored, CANDIDATE, ["b"]) == (1, 1, 0, 0)
    assert [entry[0] for entry in restored.expire(1_000.0)] == []
