"""Rows read straight from their msgpack bytes: the same columns and codes as decoding them, or None (never other
figures)."""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.comparator.columns import Codes, Columns, to_columns
from harness.comparator.records import decode_batch
from harness.comparator.wire import parse_entries
from harness.contracts import SCHEMA_VERSION, SignalClustered, encode_clustered
from harness.transport import keys


def result(index: int, outcome: str = "clustered", label: Any = "A", device: Any = "dev-1", kind: Any = "sag",
           entry: Any = "1700000000000-0", error_type: Any = None, error: Any = None) -> SignalClustered:
    return SignalClustered(f"sig-{index}", "legacy", "m1", outcome, label, False, 1_000.0, 1_004.0 + index, 0.5,
                           device, kind, error_type, error, input_entry_id=entry)


def entries_of(payloads: list[bytes]) -> list[Any]:
    return [[f"1-{at}".encode(), [keys.PAYLOAD_FIELD, payload]] for at, payload in enumerate(payloads)]


def decoded(entries: list[Any], codes: Codes) -> Columns:
    return to_columns(decode_batch(entries), codes)


def assert_same(fast: Columns, slow: Columns) -> None:
    assert fast.ids == slow.ids and fast.rejected == slow.rejected == 0
    for name in ("slots", "outcomes", "end_to_end", "processing", "high", "low"):
        mine, theirs = getattr(fast, name), getattr(slow, name)
        assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs, equal_nan=True), name


def test_plain_rows_give_the_columns_and_codes_of_decoding_them() -> None:
    results = [result(0), result(1, label="B", kind=None), result(2, "error", None, error_type="ValueError",
                                                                error="é" * 40),
               result(3, "unclustered", None, device=None), result(4, label=None), result(5, label="dev-ü:" + "x" * 30),
               result(6, "error", None, error_type=""), result(7, entry="1700000000001-12")]
    entries = entries_of([encode_clustered(r) for r in results])
    fast_codes, slow_codes = Codes({"B": 0}, {}, {}, {}), Codes({"B": 0}, {}, {}, {})
    fast = parse_entries(entries, fast_codes)
    assert fast is not None
    assert_same(fast, decoded(entries, slow_codes))
    assert fast_codes == slow_codes and fast_codes.labels == {"B": 0, "A": 1, "dev-ü:" + "x" * 30: 2}
    assert fast_codes.error_types == {"ValueError": 0, "unknown": 1}


def test_a_batch_it_is_unsure_of_is_left_to_decoding_and_its_codes_untouched() -> None:
    good = encode_clustered(result(0, label="new"))
    row = msgpack.unpackb(good)
    odd = [
        good + b"\xc0",  # bytes after the row
        good[:-3],  # cut short
        msgpack.packb([*row[:1], 7, *row[2:]]),  # an id that is not text
        msgpack.packb([*row[:4], "maybe", *row[5:]]),  # an unknown outcome
        msgpack.packb([*row[:2], b"ab\xed\xb3\xbf", *row[3:]], use_bin_type=False),  # a surrogate: not UTF-8
        msgpack.packb([*row[:2], b"\xff\xfe", *row[3:]], use_bin_type=False),  # a raw str that is not UTF-8
        msgpack.packb([*row[:7], "1000", *row[8:]]),  # a time that is text
        msgpack.packb([*row[:-1], [1]]),  # a container
        msgpack.packb([SCHEMA_VERSION + 1, *row[1:]]),
        msgpack.packb({"v": SCHEMA_VERSION, "id": "sig-0", "outcome": "clustered"}),
        msgpack.packb([*row[:1], "a\nb", *row[2:]]),  # a newline in an id
        msgpack.packb([*row[:-2], "not-an-entry", row[-1]]),
    ]
    for payload in odd:
        codes = Codes({}, {}, {}, {})
        assert parse_entries(entries_of([good, payload]), codes) is None, payload
        assert codes == Codes({}, {}, {}, {})


def test_numbers_of_every_width_are_read_as_decoding_reads_them() -> None:
    row = msgpack.unpackb(encode_clustered(result(0)))
    payloads = [msgpack.packb([*row[:7], entered, published, proc, *row[10:]], use_single_float=single)
                for entered, published, proc, single in [(1, 2, 3, False), (-5, 300, 70_000, False),
                                                         (2**32 - 1, -(2**40), 0.25, True), (-1, 2**31, 1.5, False)]]
    entries = entries_of(payloads)
    fast = parse_entries(entries, Codes({}, {}, {}, {}))
    assert fast is not None
    assert_same(fast, decoded(entries, Codes({}, {}, {}, {})))


_TEXT = st.one_of(st.none(), st.text(max_size=40), st.sampled_from(["A", "B", "dev-1", "", "é", "x" * 31]))
_VALUE = st.one_of(_TEXT, st.integers(-(2**63), 2**64 - 1), st.floats(), st.booleans(), st.binary(max_size=5))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 16), _VALUE, st.sampled_from(["clustered", "unclustered", "error"])),
                min_size=1, max_size=12))
def test_any_batch_gives_the_figures_of_decoding_it_or_none(changes: list[tuple[int, Any, str]]) -> None:
    payloads = []
    for at, (field, value, outcome) in enumerate(changes):
        row = msgpack.unpackb(encode_clustered(result(at, outcome, error_type="E" if outcome == "error" else None,
                                                      entry=f"17-{at}")))
        row[field] = value
        payloads.append(msgpack.packb(row))
    entries = entries_of(payloads)
    fast_codes, slow_codes = Codes({}, {}, {}, {}), Codes({}, {}, {}, {})
    fast = parse_entries(entries, fast_codes)
    slow = decoded(entries, slow_codes)
    if fast is None:
        assert fast_codes == Codes({}, {}, {}, {})
        return
    assert_same(fast, slow)
    assert fast_codes == slow_codes
