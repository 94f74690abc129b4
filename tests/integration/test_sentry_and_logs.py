"""Sentry capture (against a local ingestion endpoint on loopback) and the structured log lines."""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import redis

from harness.contracts import SignalMeta, SignalReceived, encode_signal
from harness.transport import keys
from tests.support.processes import results, start_worker, stop, wait_for


class SentryInbox(BaseHTTPRequestHandler):
    events: ClassVar[list[dict[str, Any]]] = []  # shared by the handler instances of one server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        for line in body.splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict) and "exception" in item:
                SentryInbox.events.append(item)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture()
def sentry_dsn() -> Iterator[str]:
    SentryInbox.events = []
    server = HTTPServer(("127.0.0.1", 0), SentryInbox)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://publickey@127.0.0.1:{server.server_address[1]}/1"
    server.shutdown()


def signal(signal_id: str, low: float) -> bytes:
    samples = np.full(200, 230.0, dtype=np.float32)
    samples[10] = low
    return encode_signal(SignalReceived(signal_id, SignalMeta("dev-7"), 1000.0, 1.7e9, samples))


def test_algorithm_failure_is_captured_with_signal_id_and_logged(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path, sentry_dsn: str
) -> None:
    for signal_id, low in (("fine-1", 229.0), ("broken", -5.0), ("fine-2", 228.0)):
        redis_client.xadd(keys.DEFAULT_INPUT_STREAM, {keys.PAYLOAD_FIELD: signal(signal_id, low)})
    log = tmp_path / "worker.log"
    worker = start_worker("tests.support.algorithms:raises_on_negative", redis_url, "--name", "fragile",
                          "--log-level", "debug", env={"SENTRY_DSN": sentry_dsn}, log=log)
    try:
        wait_for(lambda: len(results(redis_client, "fragile")) >= 3, 30, "results", [worker])
        wait_for(lambda: bool(SentryInbox.events), 30, "a Sentry event", [worker])
    finally:
        stop(worker)
    outcomes = {r.signal_id: (r.outcome, r.error_type) for r in results(redis_client, "fragile")}
    assert outcomes == {"fine-1": ("clustered", None), "broken": ("error", "ValueError"),
                        "fine-2": ("clustered", None)}, "one failure must not fail its batch"
    (event,) = SentryInbox.events
    tags = event["tags"]
    assert tags["signal_id"] == "broken"
    assert tags["worker"] == "fragile" and tags["model_version"] == "raises-on-negative"

    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    per_signal = [line for line in lines if line["msg"] == "signal clustered"]
    assert {(line["signal_id"], line["label"]) for line in per_signal} == {
        ("fine-1", "device:dev-7"), ("fine-2", "device:dev-7"), ("broken", None)}
    batches = [line for line in lines if line["msg"] == "batch committed"]
    assert batches and batches[0]["level"] == "info" and batches[0]["signals"] == 3
