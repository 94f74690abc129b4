"""Results travel as msgpack rows; decoders and the comparator read rows and maps alike."""

from __future__ import annotations

import msgpack
import pytest

from harness.comparator.state import ComparatorState
from harness.contracts import (
    RESULT_KEYS,
    ContractError,
    SignalClustered,
    clustered_to_dict,
    decode_clustered,
    encode_clustered,
    result_record,
)


def result(signal_id: str, label: str | None, outcome: str = "clustered", error_type: str | None = None
           ) -> SignalClustered:
    return SignalClustered(signal_id, "legacy", "m", outcome, label, False, 1000.0, 1012.5, 0.5,  # type: ignore[arg-type]
                           "dev-1", "sag", error_type, error_type, False, "1-1")


def test_a_result_round_trips_through_its_row_form() -> None:
    original = result("s1", "dev-1:2")
    row = msgpack.unpackb(encode_clustered(original))
    assert isinstance(row, list) and len(row) == len(RESULT_KEYS) and row[0] == 1
    assert decode_clustered(encode_clustered(original)) == original
    assert result_record(row) == clustered_to_dict(original)


def test_a_row_of_the_wrong_length_is_a_contract_error() -> None:
    with pytest.raises(ContractError, match="fields"):
        decode_clustered(msgpack.packb([1, "s1", "legacy"]))


def test_comparator_reads_rows_and_maps_alike() -> None:
    legacy = [result(f"s{i}", f"L{i % 3}") for i in range(30)] + [result("bad", None, "error", "Boom")]
    candidate = [result(f"s{i}", f"C{i % 5}") for i in range(30)] + [result("bad", "C0")]
    from_rows, from_maps = ComparatorState(), ComparatorState()
    for side, results in (("legacy", legacy), ("candidate", candidate)):
        from_rows.ingest(side, [msgpack.unpackb(encode_clustered(r)) for r in results], 0.0)
        from_maps.ingest(side, [clustered_to_dict(r) for r in results], 0.0)
    generated_at = "2026-01-01T00:00:00Z"
    assert from_rows.report(generated_at=generated_at) == from_maps.report(generated_at=generated_at)
    assert from_rows.report()["errors"]["only_legacy"] == 1


def test_malformed_rows_are_rejected_not_counted() -> None:
    good = msgpack.unpackb(encode_clustered(result("s1", "a")))
    state = ComparatorState()
    state.ingest("legacy", [[2, *good[1:]], good[:5], good], 0.0)
    counts = state.report()["counts"]
    assert (counts["rejected"], counts["legacy_outputs"]) == (2, 1)
