"""The HTML report's inputs (agreement series, contingency, label mapping) and the page itself, without Redis."""

from __future__ import annotations

import msgpack
import numpy as np
import pandas as pd

from harness.comparator import ComparatorState
from harness.comparator.agreement import Table, best_matching, contingency_section, matched_accuracy
from harness.comparator.disagreements import disagreements, records, render, representatives, spread
from harness.comparator.export import mapping_of_pairs
from harness.comparator.series import AgreementSeries
from harness.report.html import NO_SAMPLES, Curve, CurvePanel, render_html


def result(sid: str, label: str, device: str = "d0", entry: str | None = None) -> dict[str, object]:
    return {"v": 1, "id": sid, "outcome": "clustered", "label": label, "device": device,
            "published_ms": 10.0, "entered_ms": 5.0, "proc_ms": 1.0, "entry": entry}


def fed_state(pairs: list[tuple[str, str]], *, window: int = 8) -> ComparatorState:
    state = ComparatorState(window=window)
    for index, (left, right) in enumerate(pairs):
        sid = f"s{index}"
        state.ingest("legacy", [result(sid, left)], 1_000.0 + index)
        state.ingest("candidate", [result(sid, right)], 1_000.0 + index)
    return state


def test_the_series_samples_the_window_every_quarter_window_and_survives_a_restart() -> None:
    state = fed_state([("a", "x")] * 20 + [("a", "x"), ("a", "y")] * 10)
    series = state.report()["agreement"]["series"]
    assert [point["pairs"] for point in series] == list(range(2, 41, 2))
    assert series[0] == {"at_ms": 1_001.0, "pairs": 2, "ari": 1.0, "nmi": 1.0, "matched_accuracy": 1.0}
    assert series[-1]["matched_accuracy"] == 0.5  # the window holds only the split tail by then
    restored = ComparatorState.from_bytes(state.to_bytes())
    assert restored.report()["agreement"]["series"] == series


def test_a_checkpoint_saved_before_the_series_still_loads_and_starts_one() -> None:
    state = fed_state([("a", "x")] * 10)
    wire = msgpack.unpackb(state.to_bytes(), raw=False, strict_map_key=False)
    del wire["series"]
    del wire["primary"]["pairs"]
    old = ComparatorState.from_bytes(msgpack.packb(wire, use_bin_type=True))
    assert old.report()["agreement"]["series"] == []
    for sid in ("n1", "n2"):
        old.ingest("legacy", [result(sid, "a")], 5_000.0)
        old.ingest("candidate", [result(sid, "x")], 5_000.0)
    assert [point["pairs"] for point in old.report()["agreement"]["series"]] == [12]  # the next quarter window


def test_a_full_series_thins_itself_and_doubles_its_step() -> None:
    series = AgreementSeries(1, capacity=4)
    table = Table.from_pairs(np.array([0, 1]), np.array([0, 1]))
    for pairs in range(1, 9):
        series.observe(pairs, float(pairs), lambda: table)
    assert series.every == 4
    assert [point["pairs"] for point in series.section()] == [4, 8]


def test_the_label_mapping_is_the_hungarian_matching_and_gives_matched_accuracy() -> None:
    rows = np.array([0, 0, 0, 1, 1, 2])
    cols = np.array([5, 5, 6, 6, 6, 7])
    table = Table.from_pairs(rows, cols)
    matched_rows, matched_cols = best_matching(table)
    assert dict(zip(matched_rows.tolist(), matched_cols.tolist(), strict=True)) == {0: 5, 1: 6, 2: 7}
    assert matched_accuracy(table) == 5 / 6


def test_the_contingency_section_puts_the_mapping_on_the_diagonal() -> None:
    table = Table.from_pairs(np.array([0, 0, 0, 1, 1, 2]), np.array([1, 1, 2, 0, 0, 2]))
    section = contingency_section(table, ["big", "mid", "small"], ["p", "q", "r"], limit=2)
    assert section["legacy"] == ["big", "mid"]
    assert section["candidate"] == ["q", "p"]
    assert section["counts"] == [[2, 0], [0, 2]]
    assert section["mapping"][0] == {"legacy": "big", "candidate": "q", "pairs": 2}
    assert section["mapping_total"] == 3


def test_the_state_maps_candidate_labels_into_legacy_space() -> None:
    state = fed_state([("dev:1", "dev/k1")] * 3 + [("dev:2", "dev/k2")] * 2 + [("dev:2", "dev/k1")])
    assert state.label_mapping() == {"dev/k1": "dev:1", "dev/k2": "dev:2"}


def pairs_table() -> pd.DataFrame:
    frame = pd.DataFrame({
        "signal_id": ["s1", "s2", "s3", "s4"], "device_id": ["d", "d", "d", None],
        "legacy_label": ["a", "a", "b", "b"], "candidate_label": ["x", "y", "y", "x"],
        "legacy_outcome": ["clustered"] * 4, "candidate_outcome": ["clustered"] * 3 + ["error"],
        "legacy_entry": ["1-1", "1-2", "1-3", "1-4"]})
    mapping = mapping_of_pairs(frame)
    frame["candidate_label_mapped"] = frame["candidate_label"].map(mapping).where(frame["candidate_outcome"] ==
                                                                                 "clustered")
    frame["agrees"] = pd.array([True, False, True, pd.NA], dtype="boolean")
    return frame


def test_disagreements_are_the_clustered_pairs_whose_mapped_label_differs() -> None:
    frame = pairs_table()
    assert mapping_of_pairs(frame) == {"x": "a", "y": "b"}
    found = disagreements(frame)
    assert found["signal_id"].tolist() == ["s2"]
    rows = records(found, {"s2": [1.0, 2.5]})
    assert rows == [{"signal_id": "s2", "device_id": "d", "legacy_label": "a", "candidate_label": "y",
                     "candidate_label_mapped": "b", "samples": [1.0, 2.5]}]
    assert render(rows, "csv", with_samples=True).splitlines()[1] == "s2,d,a,y,b,1 2.5"
    assert "samples not available" in render(records(found, {}), "table", with_samples=True)
    legacy_reps, candidate_reps = representatives(frame)
    assert legacy_reps == {"a": "s1", "b": "s3"} and candidate_reps == {"x": "s1", "y": "s3"}


def test_a_spread_sample_covers_the_whole_run() -> None:
    frame = pd.DataFrame({"n": range(10)})
    assert spread(frame, 3)["n"].tolist() == [0, 4, 9]  # round half to even: 4.5 -> 4
    assert spread(frame, 20)["n"].tolist() == list(range(10))


def test_the_page_has_every_plot_its_js_inline_and_escapes_labels() -> None:
    state = fed_state([("<b>a</b>", "x")] * 10 + [("b", "x"), ("b", "y")] * 5)
    report = state.report()
    page = render_html(report)
    assert page.count('class="plotly-graph-div"') == 5
    assert "<script src=" not in page and "Plotly" in page  # inlined, nothing to fetch
    assert NO_SAMPLES in page
    assert "<b>a</b>" not in page.split("<h2>Tables</h2>")[1]  # escaped in the tables
    panel = CurvePanel(Curve("s2", [1.0, 2.0]), "d0", "b", "y", None, Curve("s1", None), None)
    with_samples = render_html(report, [panel])
    assert with_samples.count('class="plotly-graph-div"') == 6
    assert "no legacy cluster" in with_samples
    assert "no disagreeing signal" in render_html(report, [])
