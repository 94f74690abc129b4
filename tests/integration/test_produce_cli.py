"""`harness produce`: synthetic signals to a file, and a recorded file replayed with its ids."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from harness.cli.main import cli
from harness.contracts import decode_signal
from harness.producer.files import read_signals
from harness.transport import keys


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_signals_written_to_a_file_replay_with_their_ids(suffix: str, redis_url: str, redis_client: redis.Redis,
                                                         tmp_path: Path) -> None:
    recorded = tmp_path / f"signals{suffix}"
    runner = CliRunner()
    out = runner.invoke(cli, ["produce", "--count", "40", "--seed", "3", "--samples", "64", "--out", str(recorded)])
    assert out.exit_code == 0, out.output
    expected = [s.signal_id for s in read_signals(recorded)]
    assert len(expected) == 40

    out = runner.invoke(cli, ["produce", "--redis-url", redis_url, "--from", str(recorded)])
    assert out.exit_code == 0, out.output
    entries = redis_client.xrange(keys.DEFAULT_INPUT_STREAM)
    replayed = [decode_signal(fields[keys.PAYLOAD_FIELD]) for _, fields in entries]
    assert [s.signal_id for s in replayed] == expected
    assert int(redis_client.get(keys.PRODUCED_KEY) or 0) == 40


def test_same_seed_gives_the_same_signals(tmp_path: Path) -> None:
    runner = CliRunner()
    for name in ("a", "b"):
        runner.invoke(cli, ["produce", "--count", "10", "--seed", "9", "--out", str(tmp_path / f"{name}.jsonl")])
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()


def test_unreachable_redis_is_one_clear_line() -> None:
    out = CliRunner().invoke(cli, ["produce", "--redis-url", "redis://127.0.0.1:1/0", "--count", "1"])
    assert out.exit_code == 1
    assert "cannot reach Redis" in out.output and "Traceback" not in out.output
