"""The harness.report/1 document: it survives JSON, invalid ones are refused clearly, and it renders."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rich.console import Console

from harness.comparator import ComparatorState
from harness.contracts import Outcome, SignalClustered, clustered_to_dict
from harness.report import SCHEMA, ReportError, render_markdown, render_terminal, report_from_json
from harness.report.headline import headline


def result(sid: str, worker: str, label: str, outcome: Outcome = "clustered", err_type: str | None = None
           ) -> dict[str, Any]:
    return clustered_to_dict(SignalClustered(
        signal_id=sid, worker=worker, model_version="m", outcome=outcome,
        label=label if outcome == "clustered" else None, is_new_cluster=False, entered_at_ms=0.0,
        published_at_ms=8.0 if worker == "candidate" else 6.0, processing_ms=2.0, device_id=f"d{sid[-1]}",
        true_kind="spike" if label in ("A", "X") else "flat", error_type=err_type))


@pytest.fixture(scope="module")
def full_report() -> dict[str, Any]:
    state = ComparatorState(sides=("legacy", "candidate", "replica"))
    ids = [f"s{i}" for i in range(40)]
    legacy = ["A" if i % 2 else "B" for i in range(40)]
    candidate = ["X" if i % 2 else ("Y" if i % 4 else "Z") for i in range(40)]  # B split into Y and Z
    state.ingest("legacy", [result(s, "legacy", x) for s, x in zip(ids, legacy, strict=True)], 0.0)
    state.ingest("replica", [result(s, "replica", x) for s, x in zip(ids, legacy, strict=True)], 0.0)
    state.ingest("candidate", [result(s, "candidate", x) for s, x in zip(ids, candidate, strict=True)], 0.0)
    state.ingest("legacy", [result("e1", "legacy", "A", "error", "Timeout|pipe")], 0.0)
    state.ingest("candidate", [result("e1", "candidate", "X")], 0.0)
    state.ingest("replica", [result("e1", "replica", "A")], 0.0)
    return state.report(produced=41)


def test_a_report_survives_a_json_round_trip(full_report: dict[str, Any]) -> None:
    text = json.dumps(full_report, allow_nan=False)
    assert report_from_json(text) == full_report
    assert full_report["schema"] == SCHEMA
    assert full_report["generated_at"].endswith("Z")
    assert full_report["agreement"]["cluster_map"]["splits"][0]["legacy"] == "B"
    assert full_report["noise_floor"]["ari"] == 1.0


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.update(schema="harness.report/2"), "unsupported report schema"),
        (lambda r: r.pop("errors"), "no 'errors' section"),
        (lambda r: r["counts"].pop("matched"), "counts lacks matched"),
        (lambda r: r["counts"].update(matched=-1), "counts.matched must be a non-negative integer"),
        (lambda r: r["agreement"].update(ari="high"), "agreement.ari must be a number or null"),
        (lambda r: r["latency_ms"].pop("candidate"), "latency_ms lacks candidate"),
        (lambda r: r.update(noise_floor=[1]), "noise_floor must be an object or null"),
    ],
)
def test_an_invalid_report_is_refused_with_a_clear_reason(full_report: dict[str, Any], mutate: Any,
                                                           message: str) -> None:
    broken = json.loads(json.dumps(full_report))
    mutate(broken)
    with pytest.raises(ReportError, match=message):
        report_from_json(json.dumps(broken))


@pytest.mark.parametrize("text", ["", "{not json", "[1, 2]", '"harness.report/1"'])
def test_corrupt_json_is_a_report_error(text: str) -> None:
    with pytest.raises(ReportError):
        report_from_json(text)
    assert issubclass(ReportError, ValueError)


def test_terminal_rendering_shows_every_section(full_report: dict[str, Any]) -> None:
    console = Console(record=True, width=140)
    render_terminal(full_report, console)
    text = console.export_text()
    assert text.splitlines()[0] == headline(full_report)
    for heading in ("Counts", "Agreement", "Cluster map", "Latency", "Outcomes", "Error divergence", "Noise floor"):
        assert heading in text
    assert "truth vs candidate" in text


def test_markdown_rendering_is_a_set_of_tables(full_report: dict[str, Any]) -> None:
    markdown = render_markdown(full_report)
    assert markdown.splitlines()[0] == f"**{headline(full_report)}**"
    assert "\n## Shadow comparison report\n" in markdown
    assert "### Noise floor (legacy vs replica, A/A)" in markdown
    assert "| all pairs | 40 |" in markdown
    assert "Timeout\\|pipe" in markdown  # a pipe inside a cell must not break the table
    table_lines = [line for line in markdown.splitlines() if line.startswith("|")]
    assert all(line.endswith("|") for line in table_lines)


def test_an_empty_report_renders_dashes_for_undefined_metrics() -> None:
    report = ComparatorState().report()
    assert "| all pairs | 0 | — | — | — |" in render_markdown(report)
    render_terminal(report, Console(record=True, width=120))


SWITCHED_MS = 1_764_182_000_000  # 2025-11-26 18:33:20 UTC
PRODUCTION = {"primary": "legacy", "epoch": 1, "previous": None, "switched_at": "2025-11-26T18:33:20.000Z",
              "switched_at_ms": SWITCHED_MS, "rollback_until_ms": None, "production_results": 3000,
              "production_duplicates": 0, "production_missing": 0, "in_flight": 0,
              "by_worker": {"legacy": 3000}, "by_epoch": {"1": 3000}}


def rendered(report: dict[str, Any]) -> str:
    console = Console(record=True, width=160)
    render_terminal(report, console)
    return console.export_text() + render_markdown(report)


def test_without_a_switch_production_is_shown_but_no_cutover() -> None:
    report = {**ComparatorState().report(generated_at="2025-11-26T18:36:20.000Z"), "cutover": PRODUCTION}
    text = rendered(report)
    assert "Production: legacy (primary from the start, epoch 1)" in text
    assert "Cutover" not in text and "switched" not in text
    assert "Noise floor" not in text  # no replica
    assert "Error divergence" not in text  # nothing diverged


def test_a_switch_shows_times_as_dates_and_counts_without_reprs() -> None:
    cutover = {**PRODUCTION, "primary": "candidate", "epoch": 2, "previous": "legacy",
               "rollback_until_ms": SWITCHED_MS + 3_600_000, "by_worker": {"legacy": 3000, "candidate": 1200},
               "by_epoch": {"1": 3000, "2": 1200}}
    report = {**ComparatorState().report(generated_at="2025-11-26T18:36:20.000Z"), "cutover": cutover}
    text = rendered(report)
    assert "Cutover: legacy → candidate (epoch 2)" in text
    assert "2025-11-26 18:33:20 UTC (3 min before the report)" in text
    assert "open until 2025-11-26 19:33:20 UTC (57 min after the report)" in text
    assert "legacy 3,000, candidate 1,200" in text
    assert "epoch 1: 3,000, epoch 2: 1,200" in text
    assert str(SWITCHED_MS) not in text and "{" not in text and "'" not in text


def test_the_progress_section_shows_each_side_behind_and_stalled() -> None:
    report = ComparatorState().report(generated_at="2025-11-26T18:36:20.000Z")
    report["progress"]["sides"]["legacy"].update(frontier=f"{SWITCHED_MS}-0", awaiting=12000, lag_entries=12000,
                                                 lag_s=60.0, stalled=True, stalled_for_s=45.0)
    report["progress"]["sides"]["candidate"].update(lag_entries=0, lag_s=0.0, stalled=False, stalled_for_s=0.0)
    text = rendered(report)
    assert "| legacy | 2025-11-26 18:33:20 UTC (3 min before the report) | 12,000 | 12,000 | 60 s | yes, for 45 s |" \
        in text
    assert "| candidate | — | 0 | 0 | 0 s | no |" in text
    assert headline(report).startswith("legacy is stalled 60 s behind the input (12,000 entries)")
