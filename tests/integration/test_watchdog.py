"""`harness watchdog --once` on real heartbeats: a silent worker reaches the webhook, a drained one does not."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from harness.cli.main import cli
from harness.transport import keys


@pytest.fixture()
def sink() -> Iterator[tuple[str, list[Any]]]:
    bodies: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", bodies
    server.shutdown()
    server.server_close()


def beat(client: redis.Redis, worker: str, state: str, age_s: float) -> None:
    seconds, micros = client.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    client.hset(keys.heartbeat_key(worker), mapping={"state": state, "last_seen_ms": int(now_ms - age_s * 1000),
                                                     "host": "host-a", "pid": "42"})


def test_watchdog_once_tells_the_webhook_about_a_silent_worker_only(
        redis_url: str, redis_client: redis.Redis, sink: tuple[str, list[Any]]) -> None:
    url, bodies = sink
    beat(redis_client, "legacy", "running", 120)  # killed: its heartbeat stopped two minutes ago
    beat(redis_client, "candidate", "running", 0.5)
    beat(redis_client, "old", "drained", 3600)  # drained by a cutover: stopped on purpose
    result = CliRunner().invoke(cli, ["watchdog", "--once", "--silent-after", "30", "--redis-url", redis_url],
                                env={"HARNESS_WEBHOOK_URL": url, "HARNESS_WEBHOOK_FORMAT": "json"})
    assert result.exit_code == 1, result.output
    assert "worker legacy last seen 120 s ago (running on host-a pid 42)" in result.output
    assert "2 of 3 workers alive" in result.output
    [body] = bodies
    assert body["event"] == "worker.silent" and body["data"]["worker"] == "legacy"

    beat(redis_client, "legacy", "running", 0.2)
    alive = CliRunner().invoke(cli, ["watchdog", "--once", "--redis-url", redis_url],
                               env={"HARNESS_WEBHOOK_URL": url})
    assert alive.exit_code == 0, alive.output
    assert len(bodies) == 1, "nothing to tell when every worker is alive"
