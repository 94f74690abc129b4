"""/metrics of real worker and comparator processes on a real redis-server, scraped over loopback."""

from __future__ import annotations

import math
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from harness.contracts import DECODE_REASONS, OUTCOMES
from tests.support.processes import ROOT, start_harness, start_worker, stop, wait_for

SIGNALS = 300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of http://127.0.0.1:PORT/metrics, by (name, labels); empty while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return {}
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture()
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        stop(process)


def test_workers_and_comparator_serve_metrics_from_zero_to_live_values(
        redis_url: str, redis_client: redis.Redis, tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    ports = {"legacy": free_port(), "candidate": free_port(), "comparator": free_port()}
    for worker in ("legacy", "candidate"):
        processes.append(start_worker(worker, redis_url, "--metrics-port", str(ports[worker]),
                                      log=tmp_path / f"{worker}.log"))
    processes.append(start_harness(["comparator", "--redis-url", redis_url, "--checkpoint", "0.1",
                                    "--metrics-port", str(ports["comparator"])], log=tmp_path / "comparator.log"))

    # Before any input: every series an alert or a rate needs is there, at 0.
    wait_for(lambda: all(scrape(port) for port in ports.values()), 60, "three /metrics endpoints", processes)
    legacy = scrape(ports["legacy"])
    for outcome in OUTCOMES:
        assert sample(legacy, "harness_worker_signals_total", worker="legacy", outcome=outcome) == 0
    for reason in DECODE_REASONS:
        assert sample(legacy, "harness_worker_dead_letters_total", worker="legacy", reason=reason) == 0
    assert sample(legacy, "process_resident_memory_bytes") is not None
    comparator = scrape(ports["comparator"])
    assert sample(comparator, "harness_comparator_matched_total") == 0
    assert sample(comparator, "harness_comparator_missing_total", side="candidate") == 0
    assert math.isnan(sample(comparator, "harness_comparator_ari", scope="window") or 0.0)

    sent = start_harness(["produce", "--redis-url", redis_url, "--count", str(SIGNALS), "--samples", "200"])
    assert sent.wait(timeout=120) == 0

    # Redis 7 tells a consumer group's lag (XINFO GROUPS); an older server cannot: NaN, never a made-up 0.
    redis_7 = int(str(redis_client.info("server")["redis_version"]).split(".")[0]) >= 7

    def caught_up() -> bool:
        comparator = scrape(ports["comparator"])
        lag = sample(comparator, "harness_comparator_lag_entries", side="candidate")
        return (sample(comparator, "harness_comparator_matched_total") == SIGNALS
                and (lag == 0 if redis_7 else lag is not None and math.isnan(lag)))

    wait_for(caught_up, 120, f"the comparator to match {SIGNALS} signals", processes)
    comparator = scrape(ports["comparator"])
    assert (sample(comparator, "harness_comparator_ari", scope="overall") or 0.0) > 0.9
    assert sample(comparator, "harness_comparator_agreement_pairs", scope="overall") == SIGNALS
    assert (sample(comparator, "harness_comparator_last_checkpoint_timestamp_seconds") or 0.0) > 1.6e9
    assert (sample(comparator, "harness_comparator_end_to_end_p99_seconds", side="legacy") or 0.0) > 0.0

    def worker_caught_up() -> bool:  # backlog figures are read with the heartbeat, once a second
        candidate = scrape(ports["candidate"])
        lag = sample(candidate, "harness_worker_lag_entries", worker="candidate")
        return (sample(candidate, "harness_worker_pending_entries", worker="candidate") == 0
                and (lag == 0 if redis_7 else lag is not None and math.isnan(lag))
                and sample(candidate, "harness_worker_last_heartbeat_timestamp_seconds", worker="candidate") != 0)

    wait_for(worker_caught_up, 60, "the candidate's backlog to read 0", processes)
    candidate = scrape(ports["candidate"])
    clustered = [sample(candidate, "harness_worker_signals_total", worker="candidate", outcome=outcome) or 0.0
                 for outcome in OUTCOMES]
    assert sum(clustered) == SIGNALS
    assert sample(candidate, "harness_worker_end_to_end_latency_seconds_count", worker="candidate") == SIGNALS
    assert sample(candidate, "harness_worker_lease_held", worker="candidate") == 1
    assert sample(scrape(ports["legacy"]), "harness_worker_primary", worker="legacy") == 0  # no roles set here


def test_a_metrics_port_in_use_is_one_line_naming_it(redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "harness", "worker", "legacy", "--redis-url", redis_url,
                               "--metrics-port", str(port)], capture_output=True, text=True, timeout=60, check=False,
                              cwd=ROOT)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"Error: cannot serve metrics on 127.0.0.1:{port}: it is in use "
                                                "(--metrics-port / HARNESS_METRICS_PORT)"]
