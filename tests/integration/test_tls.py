"""The whole pipeline over TLS (rediss://): producer, legacy and candidate workers, comparator, report."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from harness.embedded_redis import find_redis_server
from harness.supervisor import die_with_parent
from harness.transport.connection import redis_client
from tests.support.processes import ROOT, start_harness, wait_for

SIGNALS = 200


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(folder: Path) -> None:
    """A throwaway CA, and a server certificate it signs for 127.0.0.1 and localhost."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=harness test CA",
            "-keyout", "ca.key", "-out", "ca.crt", cwd=folder)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
            "-out", "server.csr", cwd=folder)
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "1", "-extfile", "san.ext", "-out", "server.crt", cwd=folder)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def answers(url: str) -> bool:
    try:
        with redis_client(url) as client:
            return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture()
def tls_url(tmp_path: Path) -> Iterator[str]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (apt-get install openssl)")
    make_certificates(tmp_path)
    port = free_port()
    server = subprocess.Popen(
        [find_redis_server(), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(tmp_path / "server.crt"), "--tls-key-file", str(tmp_path / "server.key"),
         "--tls-ca-cert-file", str(tmp_path / "ca.crt"), "--tls-auth-clients", "no",
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path), "--logfile", str(tmp_path / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={tmp_path / 'ca.crt'}&ssl_cert_reqs=required"
    try:
        wait_for(lambda: server.poll() is not None or answers(url), timeout_s=20, what="redis-server over TLS")
        if server.poll() is not None:
            pytest.skip(f"this redis-server has no TLS support: {_log_tail(tmp_path / 'redis.log')}")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_whole_pipeline_runs_over_tls(tls_url: str, tmp_path: Path) -> None:
    env = {"HARNESS_REDIS_URL": tls_url}  # through the environment, as the demo and the compose stack pass it
    idle = ("--exit-when-idle", "1.5")
    produce = start_harness(["produce", "--count", str(SIGNALS), "--samples", "200"], env=env,
                            log=tmp_path / "producer.log")
    assert produce.wait(timeout=120) == 0, (tmp_path / "producer.log").read_text()[-2000:]
    workers = [start_harness(["worker", "legacy", "--block-ms", "100", "--init-primary", *idle], env=env,
                             log=tmp_path / "legacy.log"),
               start_harness(["worker", "candidate", "--block-ms", "100", *idle], env=env,
                             log=tmp_path / "candidate.log")]
    for process in workers:
        assert process.wait(timeout=180) == 0, f"{process.args!r} failed"
    comparator = start_harness(["comparator", *idle], env=env, log=tmp_path / "comparator.log")
    assert comparator.wait(timeout=180) == 0, (tmp_path / "comparator.log").read_text()[-2000:]
    report = subprocess.run([sys.executable, "-m", "harness", "report", "--format", "json"], capture_output=True,
                            text=True, cwd=ROOT, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT), **env})
    assert report.returncode == 0, report.stderr
    document = json.loads(report.stdout)
    assert document["counts"]["produced"] == SIGNALS
    assert document["counts"]["matched"] == SIGNALS
    assert document["counts"]["missing_legacy"] == document["counts"]["missing_candidate"] == 0
    assert document["cutover"]["production_results"] == SIGNALS


def test_a_client_without_the_ca_is_refused(tls_url: str) -> None:
    assert not answers(tls_url.partition("?")[0] + "?ssl_cert_reqs=required")


def _log_tail(log: Path) -> str:
    # A server that rejects its options exits before it opens its log file.
    return log.read_text()[-300:] if log.exists() else "it exited before writing its log"
