"""The business threshold cases (tests/threshold/cases.toml) hold for both workers."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli.main import cli
from harness.producer.files import read_signals
from harness.threshold import ThresholdError, load_cases, run_cases
from tests.threshold.make_cases import make_signals

CASES = Path(__file__).resolve().parent / "threshold" / "cases.toml"


@pytest.mark.parametrize("worker", ["legacy", "candidate"])
def test_every_threshold_case_holds(worker: str) -> None:
    outcomes = run_cases(load_cases(CASES), worker)
    assert [o.line() for o in outcomes if not o.passed] == []
    assert len(outcomes) == 10


@pytest.mark.parametrize("worker", ["legacy", "candidate"])
def test_the_threshold_command_passes_with_a_line_per_case(worker: str) -> None:
    result = CliRunner().invoke(cli, ["threshold", "--cases", str(CASES), "--worker", worker])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert sum(line.startswith("PASS  ") for line in lines) == 10
    assert lines[-1] == f"10 of 10 threshold cases hold for {worker}"


def test_a_candidate_declining_negative_voltages_breaks_the_glitch_cases() -> None:
    result = CliRunner().invoke(cli, ["threshold", "--cases", str(CASES), "--worker", "candidate",
                                      "--worker-env", "HARNESS_CANDIDATE_NEGATIVE_VOLTAGE=reject"])
    assert result.exit_code == 1
    assert ("FAIL  together negative-glitches: a-glitch-1 was not clustered (unclustered: declined)"
            in result.output.splitlines())


def test_a_worker_putting_everything_of_a_device_in_one_cluster_breaks_the_apart_cases() -> None:
    outcomes = {o.case.name: o for o in run_cases(load_cases(CASES), "tests.support.algorithms:by_device")}
    assert not outcomes["a-sag-is-not-a-swell"].passed
    assert outcomes["a-sag-is-not-a-swell"].detail == "both in device:thr-a"
    assert outcomes["deep-sags-on-a-feeder"].passed


def test_the_committed_signals_are_what_make_cases_generates() -> None:
    committed = list(read_signals(CASES.parent / "signals.jsonl"))
    generated = make_signals()
    assert [s.signal_id for s in committed] == [s.signal_id for s in generated]
    assert all((a.samples == b.samples).all() and a.meta == b.meta for a, b in zip(committed, generated, strict=True))


def test_a_case_naming_an_unknown_signal_is_refused(tmp_path: Path) -> None:
    (tmp_path / "signals.jsonl").write_text((CASES.parent / "signals.jsonl").read_text())
    (tmp_path / "cases.toml").write_text(
        'signals = "signals.jsonl"\n[[apart]]\nname = "x"\nsignals = ["a-sag-1", "nope"]\n')
    with pytest.raises(ThresholdError, match="signal 'nope' is not in"):
        run_cases(load_cases(tmp_path / "cases.toml"), "legacy")


@pytest.mark.parametrize(("text", "message"), [
    ('signals = "signals.jsonl"\n', "no [[together]] or [[apart]] case"),
    ('signals = "absent.jsonl"\n[[apart]]\nname = "x"\nsignals = ["a", "b"]\n', "must name an existing"),
    ('signals = "signals.jsonl"\n[[apart]]\nname = "x"\nsignals = ["a", "b", "c"]\n', "exactly 2 signals"),
    ('signals = "signals.jsonl"\n[[together]]\nname = "x"\nsignals = ["a"]\n', "at least 2 signals"),
])  # fmt: skip
def test_a_malformed_cases_file_is_refused_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "signals.jsonl").write_text("")
    (tmp_path / "cases.toml").write_text(text)
    with pytest.raises(ThresholdError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_cases(tmp_path / "cases.toml")
