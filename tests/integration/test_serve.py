"""`harness serve` as a real process on loopback, reading a comparison saved in a real redis-server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from harness.comparator import ComparatorState
from harness.transport import keys
from tests.support.processes import ROOT
from tests.unit.test_comparator_state import pairs

PASSWORD = "s3cret-watch-pass"  # of the ACL user the server connects as: it must never be shown
RULE = "[rules.ari]\nmin = {ari}\n"
POLICIES = {
    "lenient": "[gate]\nmin_pairs = 50\n" + RULE.format(ari=0.5),
    "strict": "[gate]\nmin_pairs = 50\n" + RULE.format(ari=0.99),
    "long-run": "[gate]\nmin_pairs = 100000\n" + RULE.format(ari=0.5),
}


@dataclass
class Response:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Server:
    process: subprocess.Popen[str]
    base: str
    banner: str

    def get(self, path: str, payload: dict[str, Any] | None = None) -> Response:
        """GET, or POST `payload` as JSON (as a Flagger webhook does)."""
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.base + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return Response(reply.status, reply.headers["Content-Type"], reply.read())
        except urllib.error.HTTPError as error:
            with error:
                return Response(error.code, error.headers["Content-Type"], error.read())


@pytest.fixture()
def policies(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    for name, text in POLICIES.items():
        (folder / f"{name}.toml").write_text(text)
    (tmp_path / "outside.toml").write_text(POLICIES["lenient"])
    (folder / "escape.toml").symlink_to(tmp_path / "outside.toml")  # a link that leads out of the folder
    return folder


@pytest.fixture()
def user_url(redis_server: Any, redis_client: redis.Redis) -> Iterator[str]:
    """The shared server, reached as an ACL user with a password (so the test can look for it in output)."""
    redis_client.execute_command("ACL", "SETUSER", "watcher", "on", f">{PASSWORD}", "~*", "&*", "+@all")
    yield f"unix://watcher:{PASSWORD}@{redis_server.socket}"
    redis_client.execute_command("ACL", "DELUSER", "watcher")


@pytest.fixture()
def server(user_url: str, policies: Path, tmp_path: Path) -> Iterator[Server]:
    # The URL goes in the environment, as an operator would pass it: never in argv.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HARNESS_REDIS_URL": user_url}
    process = subprocess.Popen([sys.executable, "-m", "harness", "serve", "--port", "0", "--policies-dir",
                                str(policies), "--log-level", "debug"], env=env, cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=(tmp_path / "serve.log").open("w"))
    assert process.stdout is not None
    banner = process.stdout.readline()  # printed once the socket is bound
    assert banner.startswith("serving http://127.0.0.1:"), banner or f"exited with {process.wait()}"
    base = banner.split()[1].rstrip("/")
    yield Server(process, base, banner)
    if process.poll() is None:
        process.kill()
    process.wait()


def save_comparison(client: redis.Redis, disagreeing: int = 6) -> None:
    """A comparison of 200 pairs, `disagreeing` of them swapped, saved where the comparator saves it."""
    state = ComparatorState()
    agree = 200 - disagreeing
    pairs(state, ["A", "B"] * 100, ["A", "B"] * (agree // 2) + ["B", "A"] * (disagreeing // 2))
    client.set(keys.COMPARATOR_STATE_KEY, state.to_bytes())
    client.hset(keys.COMPARATOR_SUMMARY_KEY, "updated_ms", "1790000000000")


def test_report_is_the_live_harness_report_as_json(server: Server, redis_client: redis.Redis) -> None:
    save_comparison(redis_client)
    reply = server.get("/report")
    assert (reply.status, reply.content_type) == (200, "application/json")
    report = reply.json()
    assert report["schema"] == "harness.report/1"
    assert report["counts"]["matched"] == 200 and 0.8 < report["agreement"]["ari"] < 1
    assert report["headline"].startswith("candidate disagrees with legacy")


def test_gate_is_200_on_pass_412_on_fail_409_when_inconclusive(server: Server, redis_client: redis.Redis) -> None:
    save_comparison(redis_client)
    for policy, status, verdict in (("lenient", 200, "pass"), ("strict", 412, "fail"),
                                    ("long-run", 409, "inconclusive"), ("lenient.toml", 200, "pass")):
        reply = server.get(f"/gate?policy={policy}")
        assert reply.status == status, (policy, reply.body)
        body = reply.json()
        assert (body["schema"], body["verdict"]) == ("harness.gate/1", verdict), policy
        assert body["policy"] == str(Path(server.banner.split("policies from ")[1].strip()) /
                                     f"{policy.removesuffix('.toml')}.toml")
    failed = server.get("/gate?policy=strict").json()
    assert [rule["name"] for rule in failed["rules"] if rule["counted"]] == ["ari"]


def test_a_flagger_webhook_posts_its_payload_and_gates_on_the_status(server: Server,
                                                                      redis_client: redis.Redis) -> None:
    save_comparison(redis_client)
    payload = {"name": "clusterer", "namespace": "prod", "phase": "Progressing", "metadata": {"k": "v"}}
    assert server.get("/gate?policy=lenient", payload).status == 200
    assert server.get("/gate?policy=strict", payload).status == 412
    assert server.get("/gate?policy=long-run", payload).status == 409


def test_always_200_leaves_the_verdict_to_the_body_but_not_a_missing_comparison(
        server: Server, redis_client: redis.Redis) -> None:
    assert server.get("/gate?policy=strict&always_200=true").status == 503  # no data is never a verdict
    save_comparison(redis_client)
    for policy, verdict in (("strict", "fail"), ("long-run", "inconclusive"), ("lenient", "pass")):
        reply = server.get(f"/gate?policy={policy}&always_200=1")
        assert (reply.status, reply.json()["verdict"]) == (200, verdict)


def test_an_experiment_is_chosen_by_name_in_the_query(server: Server, redis_client: redis.Redis) -> None:
    save_comparison(redis_client)
    assert server.get("/report?experiment=default").json()["counts"]["matched"] == 200
    assert server.get("/gate?policy=lenient&experiment=default").status == 200
    unknown = server.get("/report?experiment=nope")
    assert unknown.status == 503 and "no experiment 'nope'" in unknown.json()["error"]
    assert server.get("/gate?policy=lenient&experiment=nope").status == 503


def test_gate_and_report_are_503_without_a_comparison(server: Server) -> None:
    reply = server.get("/gate?policy=lenient")
    assert reply.status == 503
    assert reply.json()["verdict"] == "fail" and "no comparison" in reply.json()["problem"]
    assert server.get("/report").status == 503


def test_gate_refuses_policy_names_that_leave_the_policies_folder(server: Server, redis_client: redis.Redis) -> None:
    save_comparison(redis_client)
    for name in ("../outside", "..%2Foutside", "%2Fetc%2Fpasswd", ".hidden", "escape", "a/b", "lenient%00"):
        reply = server.get(f"/gate?policy={name}")
        assert reply.status == 400, (name, reply.body)
        assert "policies folder" in reply.json()["error"] or "policy name" in reply.json()["error"]
    assert server.get("/gate?policy=unknown").status == 404
    assert "known: lenient, long-run, strict" in server.get("/gate?policy=unknown").json()["error"]
    assert server.get("/gate").status == 400
    assert server.get("/gate?policy=lenient&policy=strict").status == 400


def test_a_broken_policy_file_is_a_server_error_naming_it(server: Server, policies: Path,
                                                          redis_client: redis.Redis) -> None:
    save_comparison(redis_client)
    (policies / "broken.toml").write_text("[rules.ari]\nmin = 'high'\n")
    reply = server.get("/gate?policy=broken")
    assert reply.status == 500
    assert "broken.toml: rules.ari.min must be a number" in reply.json()["error"]


def test_metrics_expose_the_comparison_for_prometheus(server: Server, redis_client: redis.Redis) -> None:
    empty = server.get("/metrics")
    assert empty.status == 200 and b"harness_serve_comparison_available 0.0" in empty.body
    save_comparison(redis_client)
    reply = server.get("/metrics")
    assert reply.status == 200 and reply.content_type.startswith("text/plain; version=")
    lines = reply.body.decode().splitlines()
    assert "harness_serve_comparison_available 1.0" in lines
    assert "harness_comparator_matched_total 200.0" in lines
    assert 'harness_comparator_missing_total{side="candidate"} 0.0' in lines
    assert "harness_comparator_last_checkpoint_timestamp_seconds 1.79e+09" in lines
    ari = next(line for line in lines if line.startswith('harness_comparator_ari{scope="overall"}'))
    assert 0.8 < float(ari.split()[1]) < 1
    assert not any("_created" in line for line in lines)  # a fresh registry per scrape must not look like a reset


def test_healthz_unknown_paths_and_a_clean_stop_on_sigterm(server: Server, tmp_path: Path) -> None:
    reply = server.get("/healthz")
    assert (reply.status, reply.json()) == (200, {"status": "ok"})
    assert server.get("/nowhere").status == 404
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
    logged = (tmp_path / "serve.log").read_text()
    assert "GET /healthz" in logged  # the access log, at debug level
    assert PASSWORD not in server.banner + logged and "watcher:***@" in server.banner
