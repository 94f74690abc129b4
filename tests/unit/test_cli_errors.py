"""What a user sees when a command fails: one line and exit 1 or 2 for what they can fix, a traceback for a bug."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from harness.cli.main import cli
from harness.cutover.plan import CutoverRefused
from harness.errors import ConfigurationError, HarnessError
from harness.producer import files
from harness.producer.files import write_signals
from harness.producer.synthetic import generate_signals

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE = "redis://:hunter2-secret@127.0.0.1:1/0"  # nothing listens on port 1


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def one_line(result: Result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture()
def signals_file(tmp_path: Path) -> Path:
    path = tmp_path / "signals.jsonl"
    write_signals(path, generate_signals(20, seed=3, samples=100))
    return path


def test_an_output_file_in_a_missing_folder_is_one_line_naming_it_with_exit_1(tmp_path: Path) -> None:
    for command, option, name in (("report", "--output", "r.json"), ("export", "--pairs", "p.parquet"),
                                  ("produce", "--out", "s.jsonl"), ("record", "--out", "s.csv")):
        target = tmp_path / "missing" / name
        result = run(command, option, str(target), "--count", "1") if command in ("produce", "record") \
            else run(command, option, str(target))
        assert result.exit_code == 1, (command, result.output)
        assert one_line(result) == f"Error: Could not open file '{target}': the folder {target.parent} does not exist"


def test_a_permission_error_while_writing_is_one_line_naming_the_path(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "signals.jsonl"

    def refuse(path: Path, *_: object) -> int:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(files, "write_signals", refuse)
    result = run("produce", "--count", "1", "--out", str(target))
    assert result.exit_code == 1
    assert one_line(result) == f"Error: {target}: Permission denied"


def test_an_output_path_under_a_file_is_one_line_with_exit_1(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run("report", "--output", str(blocker / "report.json"))
    assert result.exit_code == 1 and str(blocker / "report.json") in one_line(result)


@pytest.mark.parametrize("args", [
    ("produce", "--count", "-1"),
    ("produce", "--out", "signals.txt"),
    ("export", "--pairs", "pairs.jsonl"),
    ("demo", "--candidate-env", "NOT_A_PAIR"),
    ("status", "--no-such-option"),
])  # fmt: skip
def test_a_usage_error_exits_2(args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_a_configuration_error_is_one_line_with_exit_2(tmp_path: Path) -> None:
    result = run("record", "--redis-url", UNREACHABLE, "--out", str(tmp_path / "x.jsonl"))
    assert result.exit_code == 2
    assert one_line(result).startswith("Error: give --count N or --seconds S")


def test_a_bad_candidate_hyperparameter_is_a_configuration_error(signals_file: Path) -> None:
    result = run("backtest", "--signals", str(signals_file), "--candidate-env", "HARNESS_CANDIDATE_WINDOW_SIZE=0")
    assert result.exit_code == 2, result.output
    assert "HARNESS_CANDIDATE_WINDOW_SIZE" in one_line(result)


def test_an_unreachable_redis_is_one_line_with_exit_1_and_no_password() -> None:
    result = run("status", "--redis-url", UNREACHABLE)
    assert result.exit_code == 1
    line = one_line(result)
    assert line.startswith("Error: cannot reach Redis") and "hunter2" not in line


def test_report_never_prints_the_redis_password() -> None:
    result = run("report", "--redis-url", UNREACHABLE)
    assert result.exit_code == 1
    line = one_line(result)
    assert "hunter2" not in line and "redis://:***@127.0.0.1:1/0" in line


def test_a_harness_error_raised_anywhere_is_one_line_with_its_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise CutoverRefused("gate fail: 3 rules failed; cutover refused")

    monkeypatch.setattr("harness.cli.cutover_cmd.retire", refuse)
    result = run("retire", "legacy", "--redis-url", UNREACHABLE)
    assert (result.exit_code, one_line(result)) == (1, "Error: gate fail: 3 rules failed; cutover refused")
    assert issubclass(CutoverRefused, HarnessError) and ConfigurationError("x").exit_code == 2


def test_a_programming_error_is_not_turned_into_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def bug(*_: object, **__: object) -> None:
        raise ValueError("a bug, not a user error")

    monkeypatch.setattr("harness.cli.cutover_cmd.retire", bug)
    result = run("retire", "legacy", "--redis-url", UNREACHABLE)
    assert isinstance(result.exception, ValueError)  # left to propagate: Python prints its traceback


def test_a_programming_error_keeps_its_traceback_on_stderr(signals_file: Path, tmp_path: Path) -> None:
    (tmp_path / "buggy_worker.py").write_text("def create():\n    raise KeyError('a bug in the factory')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    done = subprocess.run([sys.executable, "-m", "harness", "backtest", "--signals", str(signals_file),
                           "--candidate", "buggy_worker:create"], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr and "KeyError: 'a bug in the factory'" in done.stderr
