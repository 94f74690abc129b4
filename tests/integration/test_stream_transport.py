"""Real worker processes on a real redis-server: ordering, crash recovery, trimming, shutdown."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import redis

from harness.contracts import SignalMeta, SignalReceived
from harness.producer.publisher import publish_signals
from harness.transport import keys
from harness.transport.trim import safe_trim_point, trim_stream
from tests.support.processes import result_count, results, start_worker, stop, wait_for

BY_DEVICE = "tests.support.algorithms:by_device"


def small_signals(count: int, samples: int = 64, prefix: str = "s") -> list[SignalReceived]:
    rng = np.random.default_rng(7)
    return [
        SignalReceived(
            signal_id=f"{prefix}-{i:06d}",
            meta=SignalMeta(device_id=f"dev-{i % 4}"),
            sample_rate_hz=1000.0,
            start_time=1.7e9 + i,
            samples=(230 + rng.normal(0, 1, samples)).astype(np.float32),
        )
        for i in range(count)
    ]


def test_two_workers_each_get_every_signal_in_the_same_order(redis_url: str, redis_client: redis.Redis,
                                                             tmp_path: Path) -> None:
    first = start_worker(BY_DEVICE, redis_url, "--name", "blue", log=tmp_path / "blue.log")
    second = start_worker(BY_DEVICE, redis_url, "--name", "green", log=tmp_path / "green.log")
    try:
        publish_signals(redis_client, small_signals(5000), keys.DEFAULT_INPUT_STREAM)
        for name in ("blue", "green"):
            wait_for(lambda n=name: result_count(redis_client, n) >= 5000, 90, f"{name} results",
                         [first, second])
    finally:
        stop(first)
        stop(second)
    input_order = [entry_id.decode() for entry_id, _ in redis_client.xrange(keys.DEFAULT_INPUT_STREAM)]
    blue, green = results(redis_client, "blue"), results(redis_client, "green")
    assert [r.input_entry_id for r in blue] == input_order
    assert [r.input_entry_id for r in green] == input_order
    assert [r.signal_id for r in blue] == [r.signal_id for r in green]
    assert len({r.signal_id for r in blue}) == 5000
    assert all(r.outcome == "clustered" and r.label == f"device:{r.device_id}" for r in blue)


def test_worker_killed_mid_stream_loses_nothing_and_marks_redeliveries(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    publish_signals(redis_client, small_signals(20000, samples=256), keys.DEFAULT_INPUT_STREAM)
    worker = start_worker(BY_DEVICE, redis_url, "--name", "crashy", "--batch-size", "200",
                          log=tmp_path / "crashy.log")
    wait_for(lambda: result_count(redis_client, "crashy") >= 2000, 60, "some results", [worker])
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    pending_at_kill = int(redis_client.xpending(keys.DEFAULT_INPUT_STREAM, "crashy")["pending"])
    done_at_kill = result_count(redis_client, "crashy")
    assert done_at_kill < 20000, "the worker finished before it could be killed"

    restarted = start_worker(BY_DEVICE, redis_url, "--name", "crashy", log=tmp_path / "crashy.log")
    try:
        wait_for(lambda: result_count(redis_client, "crashy") >= 20000, 90, "all results", [restarted])
    finally:
        stop(restarted)
    final = results(redis_client, "crashy")
    assert len(final) == 20000, "a result was lost or written twice"
    assert len({r.signal_id for r in final}) == 20000
    assert sum(r.redelivered for r in final) == pending_at_kill
    assert all(r.redelivered for r in final[done_at_kill:done_at_kill + pending_at_kill])
    assert int(redis_client.xpending(keys.DEFAULT_INPUT_STREAM, "crashy")["pending"]) == 0


def test_sigterm_finishes_and_acks_the_batch_in_hand(redis_url: str, redis_client: redis.Redis,
                                                     tmp_path: Path) -> None:
    publish_signals(redis_client, small_signals(20000, samples=256), keys.DEFAULT_INPUT_STREAM)
    worker = start_worker(BY_DEVICE, redis_url, "--name", "polite", "--batch-size", "500",
                          log=tmp_path / "polite.log")
    wait_for(lambda: result_count(redis_client, "polite") >= 1000, 60, "some results", [worker])
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    assert int(redis_client.xpending(keys.DEFAULT_INPUT_STREAM, "polite")["pending"]) == 0
    acked = int(redis_client.xinfo_groups(keys.DEFAULT_INPUT_STREAM)[0]["last-delivered-id"].split(b"-")[0]) > 0
    assert acked
    assert result_count(redis_client, "polite") % 500 == 0, "a batch was cut short"


def test_trim_never_drops_an_entry_a_group_has_not_acked(redis_url: str, redis_client: redis.Redis,
                                                         tmp_path: Path) -> None:
    stream = keys.DEFAULT_INPUT_STREAM
    publish_signals(redis_client, small_signals(1000), stream)
    redis_client.xgroup_create(stream, "fast", id="0")
    redis_client.xgroup_create(stream, "slow", id="0")
    fast = redis_client.xreadgroup("fast", "fast", {stream: ">"}, count=1000)[0][1]
    redis_client.xack(stream, "fast", *[entry_id for entry_id, _ in fast])
    slow = redis_client.xreadgroup("slow", "slow", {stream: ">"}, count=300)[0][1]
    redis_client.xack(stream, "slow", *[entry_id for entry_id, _ in slow[:200]])  # 100 still pending

    removed = trim_stream(redis_client, stream)
    assert removed == 200
    remaining = redis_client.xrange(stream)
    assert remaining[0][0] == slow[200][0], "the oldest pending entry of 'slow' must survive"
    assert len(remaining) == 800
    assert safe_trim_point(redis_client, "no-such-stream") is None


def test_trim_keeps_everything_until_enough_groups_exist(redis_client: redis.Redis) -> None:
    stream = keys.DEFAULT_INPUT_STREAM
    publish_signals(redis_client, small_signals(50), stream)
    redis_client.xgroup_create(stream, "only", id="$")
    assert trim_stream(redis_client, stream, min_groups=2) == 0
    assert redis_client.xlen(stream) == 50


def test_trim_keeps_what_a_checkpointing_reader_has_not_counted(redis_client: redis.Redis) -> None:
    stream = keys.results_stream("legacy")
    ids = [redis_client.xadd(stream, {keys.PAYLOAD_FIELD: b"x"}).decode() for _ in range(100)]
    redis_client.xgroup_create(stream, "comparator", id="0")
    redis_client.xreadgroup("comparator", "comparator", {stream: ">"}, count=100, noack=True)
    redis_client.hset(keys.reader_cursors_key(stream), "comparator", ids[59])  # counted up to the 60th

    assert trim_stream(redis_client, stream) == 60
    assert redis_client.xrange(stream)[0][0].decode() == ids[60]


def test_pubsub_worker_attaches_to_a_live_channel_and_misses_what_was_sent_before(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    channel = "prod:signals"
    publish_signals(redis_client, small_signals(20, prefix="before"), "unused", channel=channel)  # nobody listens
    worker = start_worker(BY_DEVICE, redis_url, "--name", "tapper", "--transport", "pubsub", "--channel", channel,
                          log=tmp_path / "tapper.log")
    try:
        wait_for(lambda: redis_client.pubsub_numsub(channel)[0][1] >= 1, 30, "the subscription", [worker])
        publish_signals(redis_client, small_signals(300, prefix="live"), "unused", channel=channel)
        wait_for(lambda: result_count(redis_client, "tapper") >= 300, 30, "live results", [worker])
    finally:
        stop(worker)
    received = results(redis_client, "tapper")
    assert sorted(r.signal_id for r in received) == [f"live-{i:06d}" for i in range(300)]
    assert all(r.outcome == "clustered" for r in received)
