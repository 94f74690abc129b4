"""Decoded results to coded columns: the column-at-a-time path agrees with the record-by-record path."""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

from harness.comparator.columns import Codes, _records_to_columns, _rows_to_columns, to_columns
from harness.comparator.join import JoinBuffer, input_position
from harness.comparator.records import decode_batch
from harness.contracts import SignalClustered, encode_clustered
from harness.transport import keys


def row(index: int, outcome: str = "clustered", label: Any = "A", entry: Any = "1700000000000-0") -> list[Any]:
    result = SignalClustered(f"s{index}", "legacy", "m1", outcome, label, False, 1_000.0, 1_004.0 + index, 0.5,
                             f"dev-{index % 3}", "sag" if index % 2 else None,
                             "ValueError" if outcome == "error" else None, None, input_entry_id=entry)
    return list(msgpack.unpackb(encode_clustered(result)))


def both_paths(rows: list[list[Any]]) -> tuple[Any, Any, Codes, Codes]:
    fast_codes, slow_codes = Codes({}, {}, {}, {}), Codes({}, {}, {}, {})
    return _rows_to_columns(rows, fast_codes), _records_to_columns(rows, slow_codes), fast_codes, slow_codes


def test_the_column_path_codes_exactly_like_the_record_path() -> None:
    rows = [row(i, outcome, label, entry) for i, (outcome, label, entry) in enumerate([
        ("clustered", "A", "5-1"), ("clustered", None, "5-2"), ("error", None, "6-0"), ("clustered", "B", "7-3"),
        ("unclustered", None, "7-4"), ("clustered", "A", "8-0")])]
    fast, slow, fast_codes, slow_codes = both_paths(rows)
    assert fast.ids == slow.ids
    assert np.array_equal(fast.slots, slow.slots)
    assert fast.slots[1, 0] == 1  # clustered without a label: unclustered
    assert np.array_equal(fast.high, slow.high) and np.array_equal(fast.low, slow.low)
    assert np.allclose(fast.end_to_end, slow.end_to_end) and np.allclose(fast.processing, slow.processing)
    assert fast_codes == slow_codes and fast_codes.labels == {"A": 0, "B": 1}


def test_entry_ids_that_are_not_plain_are_placed_like_input_position_places_them() -> None:
    entries = ["12-3", "0007-1", "1-", "junk", "99999999999999999999-1", "1-99999999999"]
    rows = [row(i, entry=entry) for i, entry in enumerate(entries)]
    columns = to_columns(rows, Codes({}, {}, {}, {}))
    placed = [(int(high) << 32) + int(low) for high, low in zip(columns.high, columns.low, strict=True)]
    expected = [input_position(entry) for entry in entries]
    expected[4] = -1  # a time beyond int64 milliseconds is no real entry id: unordered
    assert placed == expected


def test_an_odd_record_is_rejected_alone() -> None:
    rows: list[Any] = [row(0), row(1), [*row(2)[:4], "bogus", *row(2)[5:]], row(3)[:5], {"id": None}]
    columns = to_columns(rows, Codes({}, {}, {}, {}))
    assert columns.ids == ["s0", "s1"] and columns.rejected == 3


def test_a_batch_decodes_in_one_pass_and_a_malformed_entry_alone() -> None:
    good = [(b"1-0", [keys.PAYLOAD_FIELD, encode_clustered_row(0)]),
            (b"1-1", [keys.PAYLOAD_FIELD, encode_clustered_row(1)])]
    assert [record[1] for record in decode_batch(good)] == ["s0", "s1"]
    bad = [*good, (b"1-2", [keys.PAYLOAD_FIELD, b"\xc1"])]
    assert decode_batch(bad)[2] == {"id": None}


def encode_clustered_row(index: int) -> bytes:
    return bytes(msgpack.packb(row(index)))


def test_the_join_keeps_pending_signals_across_compactions() -> None:
    join = JoinBuffer(2, timeout_ms=1_000, max_pending=100_000)
    slots = np.zeros((1_000, 5), dtype=np.int64)
    completed = 0
    for batch in range(20):  # legacy runs 1,000 ahead: the arena fills, compacts and grows
        ids = [f"s{batch * 1_000 + i}" for i in range(1_000)]
        join.offer(0, ids, slots, 0.0)
        if batch:
            previous = [f"s{(batch - 1) * 1_000 + i}" for i in range(1_000) if i % 10]
            completed += len(join.offer(1, previous, slots[: len(previous)], 0.0).completed)
    assert completed == 19 * 900
    assert len(join) == 1_000 + 19 * 100


def test_with_three_sides_a_signal_settles_once_every_absent_side_has_moved_past_it() -> None:
    join = JoinBuffer(3, timeout_ms=1_000, max_pending=100)
    slots = np.zeros((1, 5), dtype=np.int64)
    join.offer(0, ["a"], slots, 0.0, [10])
    join.offer(1, ["b"], slots, 0.0, [20])
    assert len(join.settle()) == 0
    join.offer(2, ["c"], slots, 0.0, [30])
    settled = join.settle()  # "a": side 1 and side 2 are past 10; "b": side 0 is not past 20
    assert [entry[2] for entry in settled] == [10] and len(join) == 2
