"""A worker whose Redis goes away reconnects with backoff and carries on, losing nothing."""

from __future__ import annotations

from pathlib import Path

import redis

from harness.embedded_redis import EmbeddedRedis
from harness.producer.publisher import publish_signals
from harness.transport import keys
from tests.integration.test_stream_transport import small_signals
from tests.support.processes import count_in_log, result_count, start_worker, stop, wait_for


def test_worker_survives_a_redis_restart(tmp_path: Path) -> None:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = EmbeddedRedis(persistence=True, folder=str(folder)).start()
    client = redis.Redis.from_url(server.url)
    log = tmp_path / "sturdy.log"
    worker = start_worker("tests.support.algorithms:by_device", server.url, "--name", "sturdy", log=log)
    try:
        publish_signals(client, small_signals(200, prefix="a"), keys.DEFAULT_INPUT_STREAM)
        wait_for(lambda: result_count(client, "sturdy") >= 200, 30, "first results", [worker])
        client.close()
        server.stop()  # the append-only file keeps the streams and groups
        # Three logged retries (the structured field, not the wording): it went through its backoff
        # and tried again, more than once, while Redis was away.
        wait_for(lambda: count_in_log(log, '"retry_in_s"') >= 3, 30, "three retries in the log", [worker])
        assert worker.poll() is None, "the worker must not crash while Redis is away"
        server = EmbeddedRedis(persistence=True, folder=str(folder)).start()
        client = redis.Redis.from_url(server.url)
        publish_signals(client, small_signals(200, prefix="b"), keys.DEFAULT_INPUT_STREAM)
        wait_for(lambda: result_count(client, "sturdy") >= 400, 60, "results after the restart", [worker])
        assert int(client.xpending(keys.DEFAULT_INPUT_STREAM, "sturdy")["pending"]) == 0
    finally:
        stop(worker)
        server.stop()
