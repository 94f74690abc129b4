"""A candidate 10x slower than legacy, and messages that break the contract: production never waits, nothing lost."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import pytest
from click.testing import CliRunner

from harness.cli.main import cli
from harness.producer.publisher import publish_signals
from harness.producer.synthetic import generate_signals
from harness.transport import keys
from tests.faults.stack import FaultStack, all_results_in, count_figures
from tests.support.processes import result_count, results, wait_for

pytestmark = pytest.mark.fault

WORKERS = ["legacy", "candidate"]
SURROGATE_JSON = r'{"v":1,"id":"bad\ud800id","meta":{"device":"d"},"rate":1000,"samples":[230,231,229]}'
HUGE_SAMPLES = 5_000_000  # about 20 MB of JSON


def wait_running(stack: FaultStack, workers: list[str]) -> None:
    for worker in workers:
        wait_for(lambda worker=worker: stack.client.hget(keys.heartbeat_key(worker), "state") == b"running",
                 60, f"{worker} running", stack.alive(*workers))


def group_lags(url: str) -> dict[str, int]:
    out = CliRunner().invoke(cli, ["status", "--redis-url", url, "--json"])
    assert out.exit_code == 0, out.output
    return {name: group["lag"] for name, group in json.loads(out.output)["groups"].items()}


def test_candidate_ten_times_slower_lags_and_production_does_not_wait(stack: FaultStack,
                                                                      figure: Callable[[str], None]) -> None:
    n = 400
    slow = "tests.support.algorithms:sleeps"
    stack.worker("legacy", slow, "--init-primary", "--batch-size", "20", env={"HARNESS_TEST_SLEEP_MS": "1"})
    stack.worker("candidate", slow, "--batch-size", "20", env={"HARNESS_TEST_SLEEP_MS": "10"})
    wait_running(stack, WORKERS)
    publish_signals(stack.client, generate_signals(n, 1, samples=32), keys.DEFAULT_INPUT_STREAM)
    wait_for(lambda: int(stack.client.xlen(keys.PRODUCTION_STREAM)) >= n, 60, "production complete",
             stack.alive(*WORKERS))
    lags = group_lags(stack.url)
    candidate_then = result_count(stack.client, "candidate")
    wait_for(lambda: result_count(stack.client, "candidate") >= n, 120, "the candidate to catch up",
             stack.alive(*WORKERS))
    figures = count_figures(stack.client, WORKERS)
    figures.extra.update(legacy_lag=lags["legacy"], candidate_lag=lags["candidate"],
                         candidate_when_production_complete=candidate_then)
    figure(figures.line("slow-candidate-10x"))
    assert lags["legacy"] == 0 and lags["candidate"] >= n // 2
    assert candidate_then <= n // 2
    assert figures.lost == 0 and figures.doubled == 0 and figures.production == n


def test_surrogate_id_and_oversize_messages_get_error_results(stack: FaultStack,
                                                             figure: Callable[[str], None]) -> None:
    stack.worker("legacy", "legacy", "--init-primary", "--batch-size", "50")
    stack.worker("candidate", "candidate", "--batch-size", "50")
    wait_running(stack, WORKERS)
    publish_signals(stack.client, generate_signals(100, 1, samples=32), keys.DEFAULT_INPUT_STREAM)
    cli_out = subprocess.run(["redis-cli", "-s", str(stack.server.socket), "XADD", keys.DEFAULT_INPUT_STREAM, "*",
                              "data", SURROGATE_JSON], capture_output=True, check=True, text=True)
    surrogate_entry = cli_out.stdout.strip()
    huge = '{"v":1,"id":"huge","meta":{"device":"d"},"rate":1000,"samples":[' + ",".join(["230"] * HUGE_SAMPLES)
    huge_entry = stack.client.xadd(keys.DEFAULT_INPUT_STREAM, {keys.PAYLOAD_FIELD: huge + "]}"}).decode()
    publish_signals(stack.client, generate_signals(100, 2, samples=32), keys.DEFAULT_INPUT_STREAM)
    wait_for(lambda: all_results_in(stack.client, WORKERS, 202), 120, "every result", stack.alive(*WORKERS))
    figures = count_figures(stack.client, WORKERS)
    reasons = {worker: {r.input_entry_id: r.error_type for r in results(stack.client, worker) if r.outcome == "error"}
               for worker in WORKERS}
    figures.extra["reasons"] = ",".join(sorted(set(reasons["legacy"].values()) | set(reasons["candidate"].values())))
    figure(figures.line("surrogate-and-oversize"))
    assert figures.produced == 202 and figures.lost == 0 and figures.doubled == 0 and figures.production == 202
    for worker in WORKERS:
        assert set(reasons[worker]) == {surrogate_entry, huge_entry}, reasons[worker]
        assert all(reasons[worker].values())
    assert all(process.poll() is None for process in stack.alive(*WORKERS))
