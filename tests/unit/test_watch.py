"""harness watch as a specification: what the dashboard shows for a snapshot, and the figures it derives."""

from __future__ import annotations

from rich.console import Console

from harness.comparator import ComparatorState
from harness.transport.roles import Roles
from harness.watch import (
    DASH,
    Agreement,
    Latency,
    RateMeter,
    Snapshot,
    WorkerRow,
    age_s,
    agreement_rows,
    compared_workers,
    experiment_label,
    latency_rows,
    render,
    side_figures,
)
from tests.unit.test_comparator_state import pairs

ROLES = Roles(primary="legacy", epoch=3, watermark="0-0", switched_at_ms=None, previous=None, rollback_until_ms=None)


def screen(snapshot: Snapshot, width: int = 80) -> str:
    console = Console(record=True, width=width, force_terminal=False, color_system=None)
    console.print(render(snapshot))
    return console.export_text()


def snapshot(**changes: object) -> Snapshot:
    fields: dict[str, object] = dict(
        where="redis://cache:6379/0", experiment="centroid-mean",
        workers=(WorkerRow("legacy", "legacy", "running", 123.4, 12, 0.5, 0.8, 2, 1),
                 WorkerRow("blue", "candidate", "backing-off", None, None, None, 41.0, 0, None, stalled=True)),
        agreement=(Agreement("overall", 5000, 0.912, 0.934, 0.957), Agreement("window", 1000, 0.801, 0.85, 0.9),
                   Agreement("anomalies", 700, None, None, None)),
        latency=(Latency("legacy", 3.25, 20.5), Latency("candidate", 1.5, None)),
        headline="candidate disagrees with legacy on 4% of 5,000 signals", roles=ROLES,
        rollback="to blue until 2026-11-28 10:00:00 UTC (300s left)", comparison_age_s=0.4)
    fields.update(changes)
    return Snapshot(**fields)  # type: ignore[arg-type]


def row_of(text: str, first: str) -> list[str]:
    return next(line.split() for line in text.splitlines() if line.split()[:1] == [first])


def test_each_worker_row_shows_rate_lag_heartbeat_dead_letters_and_errors() -> None:
    text = screen(snapshot())
    assert row_of(text, "legacy") == ["legacy", "running", "123.4", "12", "(0.5s)", "0.8s", "2", "1"]
    # A worker named apart from its side says which side it is; unknown figures are dashes, never zeros.
    assert row_of(text, "blue") == ["blue", "backing-off", DASH, DASH, "41.0s", "0", DASH]
    assert row_of(text, "(candidate)") == ["(candidate)", "stalled"]


def test_agreement_in_each_scope_and_latency_per_side_are_shown() -> None:
    text = screen(snapshot())
    assert row_of(text, "overall")[:5] == ["overall", "5,000", "0.912", "0.934", "95.7%"]
    assert row_of(text, "window")[:5] == ["window", "1,000", "0.801", "0.850", "90.0%"]
    assert row_of(text, "anomalies")[:5] == ["anomalies", "700", DASH, DASH, DASH]
    assert "3.2" in text and "20.5" in text  # legacy p50 and p99 (3.25 rounds half to even)


def test_the_header_shows_experiment_roles_epoch_rollback_and_the_headline() -> None:
    text = screen(snapshot())
    assert "experiment centroid-mean" in text
    assert "primary legacy" in text and "epoch 3" in text
    assert "rollback to blue until 2026-11-28 10:00:00 UTC (300s left)" in text
    assert "candidate disagrees with legacy on 4% of 5,000 signals" in text
    assert "comparison saved 0.4s ago" in text


def test_the_dashboard_fits_an_80_column_terminal_without_cutting_figures() -> None:
    text = screen(snapshot())
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text


def test_without_a_comparison_the_problem_is_shown_instead_of_a_headline() -> None:
    problem = "no comparison in Redis at redis://cache:6379/0: run `harness comparator` first"
    text = screen(snapshot(agreement=(), latency=(), headline=None, problem=problem), width=120)
    assert "no comparison" in text and "run `harness comparator` first" in text
    assert "agreement" not in text and "headline" not in text


def test_rows_are_read_from_a_real_report() -> None:
    state = ComparatorState(window=10)
    pairs(state, ["A", "B"] * 20, ["A", "B"] * 19 + ["B", "A"], latency=7.0)
    report = state.report()
    overall, window, anomalies = agreement_rows(report)
    assert (overall.scope, overall.pairs) == ("overall", 40)
    assert overall.ari == report["agreement"]["ari"] and overall.ari is not None and overall.ari < 1
    assert (window.pairs, anomalies.scope) == (10, "anomalies")
    legacy, candidate = latency_rows(report)
    assert legacy.p99_ms is not None and abs(legacy.p99_ms - 7.0) < 0.1
    assert candidate.side == "candidate"


def test_side_figures_join_progress_and_errors_of_a_side() -> None:
    report = {"progress": {"sides": {"candidate": {"lag_s": 2.5, "stalled": True}}},
              "errors": {"candidate": {"error": 4}}}
    assert side_figures(report, "candidate") == {"lag_s": 2.5, "stalled": True, "errors": 4}
    assert side_figures(report, None) == {} and side_figures(None, "candidate") == {}
    assert side_figures(report, "replica") == {"errors": None}


def test_rate_is_results_per_second_between_two_readings() -> None:
    now = [100.0]
    meter = RateMeter(clock=lambda: now[0])
    assert meter.rates({"legacy": 50}) == {"legacy": None}  # nothing to compare with yet
    now[0] = 102.0
    assert meter.rates({"legacy": 250}) == {"legacy": 100.0}
    now[0] = 103.0
    assert meter.rates({"legacy": 10}) == {"legacy": None}  # the stream was rebuilt: no negative rate
    now[0] = 104.0
    assert meter.rates({"legacy": 10}) == {"legacy": 0.0}


def test_heartbeat_ages_stay_short() -> None:
    ages = (0.84, 119, 7200, 9e5)
    rows = tuple(WorkerRow(f"w{i}", None, "running", None, None, None, age, 0, None) for i, age in enumerate(ages))
    text = screen(snapshot(workers=rows))
    assert [row_of(text, row.name)[4] for row in rows] == ["0.8s", "119.0s", "2h", "10d"]


def test_age_of_an_iso_stamp() -> None:
    assert age_s("1970-01-01T00:00:10.000Z", 12.5) == 2.5
    assert age_s(None, 12.5) is None and age_s("yesterday", 12.5) is None
    assert age_s("1970-01-01T00:00:20.000Z", 12.5) == 0.0  # a clock behind the store never shows a negative age


def test_the_reports_experiment_names_the_compared_workers_and_the_label() -> None:
    report = {"experiment": {"name": "blue-vs-green", "ended_ms": None},
              "sides": {"control": "green", "candidate": "blue"}}
    fallback = {"legacy": "legacy", "candidate": "candidate", "replica": "legacy-2"}
    assert compared_workers(report, fallback) == {"legacy": "green", "candidate": "blue", "replica": "legacy-2"}
    assert compared_workers(None, fallback) == fallback
    assert experiment_label(report) == "blue-vs-green"
    assert experiment_label({"experiment": {"name": "old", "ended_ms": 5}}) == "old (ended)"
    assert experiment_label({}) is None and experiment_label(None) is None
