"""Log lines keep their fields in both formats and never show a Redis password; demo logs do not pile up."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from harness.comparator.service import ProgressLog
from harness.demo import new_log_dir
from harness.runtime.logs import JsonFormatter, TextFormatter, configure_logging, extra_fields

SECRET_URL = "redis://harness:s3cret-pw@redis.internal:6379/0"


def record(message: str, exc: bool = False, **fields: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ConnectionError(f"cannot reach {SECRET_URL}")
        except ConnectionError:
            exc_info = sys.exc_info()
    return logging.getLogger("harness.worker").makeRecord(
        "harness.worker", logging.WARNING, __file__, 1, message, (), exc_info, extra=fields)


def test_a_text_line_keeps_every_field_as_key_value() -> None:
    line = TextFormatter().format(record("message rejected", worker="candidate", signal_id="s-17",
                                         reason="bad_samples", detail="NaN at sample 3", entry="17-0"))
    assert " WARNING harness.worker: message rejected " in line
    assert line.endswith('worker=candidate signal_id=s-17 reason=bad_samples detail="NaN at sample 3" entry=17-0')


def test_text_values_that_are_not_plain_words_are_json() -> None:
    line = TextFormatter().format(record("progress", lag={"legacy": 1.5}, stalled=False, pending=12,
                                         note="", equation="a=b", missing=None))
    assert line.endswith('lag={"legacy":1.5} stalled=false pending=12 note="" equation="a=b" missing=null')


def test_both_formats_carry_the_same_fields() -> None:
    fields = {"worker": "legacy", "count": 3, "reason": "duplicate id"}
    parsed = json.loads(JsonFormatter().format(record("batch", **fields)))
    text = TextFormatter().format(record("batch", **fields))
    assert {key: parsed[key] for key in fields} == fields
    assert all(f"{key}=" in text for key in fields)


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()])
def test_a_password_in_a_field_or_an_exception_is_redacted(formatter: logging.Formatter) -> None:
    line = formatter.format(record("store error", exc=True, url=SECRET_URL))
    assert "s3cret-pw" not in line
    assert "redis.internal" in line and "ConnectionError" in line


def test_configure_logging_picks_the_text_formatter() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        configure_logging("debug", json_lines=False)
        assert isinstance(root.handlers[0].formatter, TextFormatter)
        assert root.level == logging.DEBUG
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def test_demo_logs_go_under_the_state_folder_and_only_the_last_runs_stay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    unrelated = tmp_path / "harness" / "demo" / "notes"
    unrelated.mkdir(parents=True)
    runs = [new_log_dir(keep=3) for _ in range(5)]
    assert all(run.parent == tmp_path / "harness" / "demo" for run in runs)
    left = sorted(path for path in (tmp_path / "harness" / "demo").iterdir())
    assert left == sorted([*runs[-3:], unrelated])  # the newest three, and nothing the demo did not create


def test_the_comparator_logs_its_progress_every_interval_and_each_checkpoint_at_debug(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    progress_log = ProgressLog(every_s=10.0, clock=lambda: now[0])
    progress = {"join": "progress", "sides": {"legacy": {"frontier": "5-0", "awaiting": 0},
                                              "candidate": {"frontier": "3-0", "awaiting": 40}}}
    lag = {"legacy": {"lag_entries": 0, "lag_s": 0.0, "stalled": False},
           "candidate": {"lag_entries": 40, "lag_s": 2.5, "stalled": False}}

    def checkpoint(at_s: float, matched: int) -> None:
        now[0] = at_s
        counts = {"matched": matched, "pending": 40, "missing_legacy": 0, "missing_candidate": 1}
        progress_log.checkpointed({"counts": json.dumps(counts), "lag": json.dumps(lag)}, progress, {"s": "5-0"})

    with caplog.at_level(logging.DEBUG, logger="harness.comparator"):
        for second, matched in [(0.0, 0), (4.0, 400), (10.0, 1000), (12.0, 1200)]:
            checkpoint(second, matched)
    assert [r.getMessage() for r in caplog.records].count("checkpoint") == 4
    lines = [r for r in caplog.records if r.getMessage() == "progress"]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    fields = extra_fields(lines[0])
    assert fields["matched_per_s"] == 100.0 and fields["pending"] == 40 and fields["missing_candidate"] == 1
    assert (fields["candidate_awaiting"], fields["candidate_lag_entries"], fields["candidate_lag_s"]) == (40, 40, 2.5)
