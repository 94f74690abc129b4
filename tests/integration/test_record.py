"""`harness record` captures the live input stream into a signal file, without a consumer group."""

from __future__ import annotations

import threading
from pathlib import Path

import redis
from click.testing import CliRunner

from harness.cli.main import cli
from harness.contracts import encode_signal
from harness.producer.files import read_signals
from harness.producer.publisher import publish_signals
from harness.producer.synthetic import generate_signals
from harness.recorder import record, resolve_start
from harness.transport.keys import DEFAULT_INPUT_STREAM, PAYLOAD_FIELD


def test_record_from_the_start_of_the_stream_keeps_ids_order_and_samples(
        redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    sent = list(generate_signals(120, seed=2, samples=100))
    publish_signals(redis_client, sent, DEFAULT_INPUT_STREAM)
    out = tmp_path / "recorded.parquet"
    result = CliRunner().invoke(cli, ["record", "--redis-url", redis_url, "--from-id", "0", "--count", "100",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"recorded 100 signals from {DEFAULT_INPUT_STREAM} to {out}")
    recorded = list(read_signals(out))
    assert [s.signal_id for s in recorded] == [s.signal_id for s in sent[:100]]
    assert all((a.samples == b.samples).all() and a.meta == b.meta for a, b in zip(recorded, sent, strict=False))


def test_recording_creates_no_consumer_group_and_leaves_the_stream_untouched(
        redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    publish_signals(redis_client, generate_signals(30, seed=2, samples=50), DEFAULT_INPUT_STREAM)
    result = CliRunner().invoke(cli, ["record", "--redis-url", redis_url, "--from-id", "0", "--seconds", "0.3",
                                      "--out", str(tmp_path / "all.jsonl")])
    assert result.exit_code == 0, result.output
    assert "recorded 30 signals" in result.output  # --seconds: everything that was there, then time is up
    assert redis_client.xinfo_groups(DEFAULT_INPUT_STREAM) == []
    assert redis_client.xlen(DEFAULT_INPUT_STREAM) == 30


def test_dollar_records_only_signals_arriving_after_the_start(redis_client: redis.Redis, tmp_path: Path) -> None:
    publish_signals(redis_client, generate_signals(10, seed=1, samples=50), DEFAULT_INPUT_STREAM)
    start = resolve_start(redis_client, DEFAULT_INPUT_STREAM, "$")
    out = tmp_path / "new.jsonl"
    recorder = threading.Thread(target=record, args=(redis_client, DEFAULT_INPUT_STREAM, out),
                                kwargs={"count": 25, "seconds": 20.0, "start_id": start})
    recorder.start()
    fresh = list(generate_signals(25, seed=8, samples=50))
    publish_signals(redis_client, fresh, DEFAULT_INPUT_STREAM)
    recorder.join(timeout=30)
    assert not recorder.is_alive()
    assert [s.signal_id for s in read_signals(out)] == [s.signal_id for s in fresh]


def test_undecodable_entries_are_skipped_and_counted(redis_url: str, redis_client: redis.Redis,
                                                     tmp_path: Path) -> None:
    good = list(generate_signals(3, seed=4, samples=20))
    redis_client.xadd(DEFAULT_INPUT_STREAM, {PAYLOAD_FIELD: encode_signal(good[0])})
    redis_client.xadd(DEFAULT_INPUT_STREAM, {PAYLOAD_FIELD: b"\xc1garbage"})
    redis_client.xadd(DEFAULT_INPUT_STREAM, {b"other": b"field"})
    for signal in good[1:]:
        redis_client.xadd(DEFAULT_INPUT_STREAM, {PAYLOAD_FIELD: encode_signal(signal)})
    out = tmp_path / "good.csv"
    result = record(redis_client, DEFAULT_INPUT_STREAM, out, count=3, start_id="0")
    assert (result.recorded, result.skipped) == (3, 2)
    assert [s.signal_id for s in read_signals(out)] == [s.signal_id for s in good]


def test_record_needs_a_count_or_a_duration(redis_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["record", "--redis-url", redis_url, "--out", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 2 and "give --count N or --seconds S" in result.output
