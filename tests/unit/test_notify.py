"""Webhook notifications against a local HTTP sink: body formats, retries, the timeout, a dead sink."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness.cli.main import cli
from harness.notify import Event, action_event, load_config, notify, redacted
from harness.watchdog import Beat, Watchdog

ROOT = Path(__file__).resolve().parents[2]
SECRET_PATH = "/services/T000/B000/s3cr3t-token"


@dataclass
class Sink:
    """What the sink received, and how it answers: a status per request in turn (then 200), or a stall."""

    statuses: list[int] = field(default_factory=list)
    stall: bool = False
    bodies: list[Any] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    received: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)  # ends a stall
    url: str = ""


@pytest.fixture()
def sink() -> Iterator[Sink]:
    state = Sink()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.bodies.append(json.loads(body))
            state.paths.append(self.path)
            state.received.set()
            if state.stall:
                state.release.wait(60)  # a sink that hangs: the client's timeout must not wait for it
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}{SECRET_PATH}"
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


def env(url: str, **extra: str) -> dict[str, str]:
    return {"HARNESS_WEBHOOK_URL": url, **extra}


EVENT = Event("cutover", "harness cutover completed (target candidate)", {"target": "candidate", "epoch": 2})


def test_slack_format_posts_only_the_text(sink: Sink) -> None:
    assert notify(EVENT, env=env(sink.url, HARNESS_WEBHOOK_FORMAT="slack"))
    assert sink.bodies == [{"text": "harness cutover completed (target candidate)"}]
    assert sink.paths == [SECRET_PATH]


def test_json_format_posts_the_event_and_its_data(sink: Sink) -> None:
    assert notify(EVENT, env=env(sink.url, HARNESS_WEBHOOK_FORMAT="json"))
    assert sink.bodies == [{"event": "cutover", "data": {"summary": EVENT.text, "target": "candidate", "epoch": 2}}]


def test_a_500_is_retried_until_the_sink_accepts(sink: Sink) -> None:
    sink.statuses = [500, 503]
    assert notify(EVENT, env=env(sink.url, HARNESS_WEBHOOK_ATTEMPTS="3"))
    assert len(sink.bodies) == 3


def test_a_client_error_is_not_retried_and_is_logged_without_the_url(
        sink: Sink, caplog: pytest.LogCaptureFixture) -> None:
    sink.statuses = [403]
    with caplog.at_level(logging.WARNING, "harness.notify"):
        assert not notify(EVENT, env=env(sink.url))
    assert len(sink.bodies) == 1
    [record] = caplog.records
    assert "HTTP 403" in record.getMessage() and "http://127.0.0.1" in record.getMessage()
    assert "s3cr3t" not in record.getMessage()


def test_a_stalled_sink_costs_at_most_the_configured_timeout(sink: Sink, caplog: pytest.LogCaptureFixture) -> None:
    sink.stall = True
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, "harness.notify"):
        assert not notify(EVENT, env=env(sink.url, HARNESS_WEBHOOK_TIMEOUT="0.5"))
    # A bound, not a measurement: the sink would hang for a minute; the timeout gives up at 0.5 s.
    assert time.monotonic() - started < 10, "the command waited for the sink past its timeout"
    assert sink.received.is_set()
    assert "timed out" in caplog.text and "s3cr3t" not in caplog.text


def test_a_dead_sink_leaves_the_gate_exit_code_unchanged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}{SECRET_PATH}"
    report = tmp_path / "report.json"
    report.write_text("{}")  # unusable: the gate fails closed with exit 1
    policy = str(ROOT / "policies" / "default.toml")
    without = CliRunner().invoke(cli, ["gate", "--policy", policy, "--report", str(report)], env={
        "HARNESS_WEBHOOK_URL": ""})
    with caplog.at_level(logging.WARNING, "harness.notify"):
        dead_sink = CliRunner().invoke(cli, ["gate", "--policy", policy, "--report", str(report)], env=env(
            dead, HARNESS_WEBHOOK_TIMEOUT="2"))
    assert without.exit_code == dead_sink.exit_code == 1
    assert "notification gate.verdict to http://127.0.0.1" in caplog.text and "s3cr3t" not in caplog.text


def test_the_gate_reports_its_verdict_to_the_sink(sink: Sink, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text("{}")
    result = CliRunner().invoke(cli, ["gate", "--policy", str(ROOT / "policies" / "default.toml"), "--report",
                                      str(report)], env=env(sink.url, HARNESS_WEBHOOK_FORMAT="json"))
    assert result.exit_code == 1
    [body] = sink.bodies
    assert body["event"] == "gate.verdict"
    assert body["data"]["verdict"] == "fail" and body["data"]["schema"] == "harness.gate/1"


def test_a_refused_and_a_completed_retire_reach_the_sink_with_the_exit_code_unchanged(
        sink: Sink, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from harness.cutover.plan import CutoverRefused

    def refuse(*_: object, **__: object) -> int:
        raise CutoverRefused("the rollback window of legacy is open until 12:00")

    no_redis = f"unix://{tmp_path}/nothing.sock"  # the roles cannot be read after: the notification goes anyway
    monkeypatch.setattr("harness.cli.cutover_cmd.retire", refuse)
    refused = CliRunner().invoke(cli, ["retire", "legacy", "--redis-url", no_redis, "--actor", "ops"],
                                 env=env(sink.url, HARNESS_WEBHOOK_FORMAT="json"))
    monkeypatch.setattr("harness.cli.cutover_cmd.retire", lambda *_, **__: 4)
    completed = CliRunner().invoke(cli, ["retire", "legacy", "--redis-url", no_redis],
                                   env=env(sink.url, HARNESS_WEBHOOK_FORMAT="json"))
    assert (refused.exit_code, completed.exit_code) == (1, 0)
    first, second = sink.bodies
    assert first["event"] == "retire" and first["data"]["outcome"] == "refused"
    assert first["data"]["worker"] == "legacy" and first["data"]["actor"] == "ops"
    assert "rollback window of legacy is open" in first["data"]["error"]
    assert second["data"]["outcome"] == "completed" and "error" not in second["data"]


def test_the_policy_notify_table_names_the_url_variable_never_the_url(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[notify]\nurl_env = "TEAM_HOOK"\nformat = "json"\ntimeout_s = 2\n')
    config = load_config({"TEAM_HOOK": "https://hooks.example.com/T0/secret"}, policy)
    assert config is not None and (config.format, config.timeout_s) == ("json", 2.0)
    assert "secret" not in repr(config) and config.where == "https://hooks.example.com"
    assert load_config({}, policy) is None, "no URL in the environment: notifications are off"
    policy.write_text('[notify]\nurl = "https://hooks.example.com/T0/secret"\n')
    with pytest.raises(ValueError, match="unknown key 'url'"):
        load_config({}, policy)


def test_a_bad_setting_is_logged_and_nothing_is_sent(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "harness.notify"):
        assert not notify(EVENT, env=env("http://127.0.0.1:9/x", HARNESS_WEBHOOK_FORMAT="xml"))
    assert "webhook format 'xml'" in caplog.text


def test_redacted_keeps_only_scheme_and_host() -> None:
    assert redacted("https://user:pw@hooks.slack.com:8443/services/T/B/X?token=1") == "https://hooks.slack.com:8443"


def test_action_events_name_what_happened() -> None:
    event = action_event("rollback", "refused", {"target": "legacy", "force": False, "error": "window closed"})
    assert event.text == "harness rollback refused: window closed (target legacy)"
    assert event.data["outcome"] == "refused"


def test_the_watchdog_tells_once_when_a_worker_goes_silent_and_once_when_it_is_back() -> None:
    dog = Watchdog(silent_after_s=10)
    assert dog.check([Beat("legacy", "running", 2.0)]) == []
    [silent] = dog.check([Beat("legacy", "running", 42.0, "host-a", "7")])
    assert silent.name == "worker.silent" and "last seen 42 s ago" in silent.text
    assert dog.check([Beat("legacy", "running", 50.0)]) == [], "told once, not at every check"
    [back] = dog.check([Beat("legacy", "running", 1.0)])
    assert back.name == "worker.back"
    assert dog.check([Beat("legacy", "drained", 300.0)]) == [], "a worker drained on purpose is not silent"
    assert dog.check([Beat("ghost", None, None)])[0].text.startswith("harness: worker ghost has no heartbeat")
