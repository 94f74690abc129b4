"""A worker killed mid-batch, a message that kills it, a second copy of it: nothing lost, nothing doubled."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from harness.producer.publisher import publish_signals
from harness.producer.synthetic import generate_signals
from harness.transport import keys
from tests.faults.stack import FaultStack, all_results_in, count_figures
from tests.support.processes import result_count, results, wait_for

pytestmark = pytest.mark.fault

SLOW = "tests.support.algorithms:sleeps"
BY_DEVICE = "tests.support.algorithms:by_device"


def produced(stack: FaultStack, count: int, seed: int = 1) -> list[str]:
    signals = list(generate_signals(count, seed, samples=32))
    publish_signals(stack.client, signals, keys.DEFAULT_INPUT_STREAM)
    return [s.signal_id for s in signals]


def test_worker_sigkilled_ten_times_mid_batch(stack: FaultStack, figure: Callable[[str], None]) -> None:
    n, kills = 1500, 10
    produced(stack, n)
    slow = {"HARNESS_TEST_SLEEP_MS": "2"}  # a 20-signal batch takes 40 ms: a kill lands mid-batch
    stack.worker("candidate", BY_DEVICE)
    for kill in range(kills):
        stack.worker("legacy", SLOW, "--init-primary", "--batch-size", "20", env=slow)
        before = result_count(stack.client, "legacy")
        # Killed once it has committed a batch since its restart: each life makes progress.
        wait_for(lambda before=before: result_count(stack.client, "legacy") > before, 60,
                 f"legacy's progress before kill {kill + 1}", stack.alive("legacy"))
        stack.kill("legacy")
    assert result_count(stack.client, "legacy") < n, "legacy finished before its last kill"
    stack.worker("legacy", SLOW, "--batch-size", "20", env=slow)
    wait_for(lambda: all_results_in(stack.client, ["legacy", "candidate"], n), 120, "every result",
             stack.alive("legacy", "candidate"))
    wait_for(lambda: int(stack.client.xlen(keys.PRODUCTION_STREAM)) >= n, 30, "production")
    figures = count_figures(stack.client, ["legacy", "candidate"])
    # Read but not committed when killed: the kills landed mid-batch.
    figures.extra["redelivered"] = sum(r.redelivered for r in results(stack.client, "legacy"))
    figure(figures.line(f"worker-sigkill-x{kills}"))
    assert figures.produced == n and figures.lost == 0 and figures.doubled == 0
    assert figures.production == n and figures.dead_letters == 0
    assert figures.extra["redelivered"] > 0


def test_message_that_kills_the_worker_is_dead_lettered_alone(stack: FaultStack,
                                                              figure: Callable[[str], None]) -> None:
    ids = produced(stack, 41)
    poison = ids[20]
    env = {"HARNESS_TEST_POISON_ID": poison}
    restarts = 0
    while True:  # the test is the supervisor that restarts the crashed worker
        worker = stack.worker("legacy", "tests.support.algorithms:exits_on", "--init-primary", "--batch-size", "10",
                              "--max-deliveries", "2", env=env)
        wait_for(lambda worker=worker: worker.poll() is not None or result_count(stack.client, "legacy") >= 41, 60,
                 "the worker to finish or die")
        if worker.poll() is None:
            break
        assert worker.returncode == 3, "the worker died of something else than the poison message"
        restarts += 1
        assert restarts <= 5, "the poison message was never dead-lettered"
    figures = count_figures(stack.client, ["legacy"])
    figures.extra["restarts"] = restarts
    figure(figures.line("poison-message"))
    letters = stack.client.xrange(keys.dead_letter_stream("legacy"))
    assert figures.lost == 0 and figures.doubled == 0 and figures.production == 41
    assert figures.dead_letters == 1
    assert letters[0][1][b"signal_id"].decode() == poison and letters[0][1][b"reason"] == b"max_deliveries"
    outcomes = {r.signal_id: r.outcome for r in results(stack.client, "legacy")}
    assert outcomes[poison] == "error"
    assert sum(outcome == "clustered" for outcome in outcomes.values()) == 40


def test_second_copy_of_a_worker_is_refused_and_the_first_carries_on(stack: FaultStack,
                                                                     figure: Callable[[str], None]) -> None:
    first = stack.worker("solo", BY_DEVICE, "--init-primary")
    wait_for(lambda: stack.client.hget(keys.heartbeat_key("solo"), "state") == b"running", 60,
             "the first copy running", [first])
    produced(stack, 100, seed=2)
    wait_for(lambda: result_count(stack.client, "solo") >= 100, 60, "the first results", [first])
    second = stack.worker("solo", BY_DEVICE, label="solo-copy")
    code = second.wait(timeout=60)
    lines = stack.log("solo-copy").read_text().strip().splitlines()
    produced(stack, 100, seed=3)
    wait_for(lambda: result_count(stack.client, "solo") >= 200, 60, "results after the refusal", [first])
    figures = count_figures(stack.client, ["solo"])
    figures.extra["second_copy_exit"] = code
    figure(figures.line("second-copy"))
    assert code != 0
    assert len(lines) == 1 and f"pid {first.pid}" in lines[0] and "already running" in lines[0], lines
    assert first.poll() is None
    assert figures.lost == 0 and figures.doubled == 0 and figures.production == 200


def test_copy_paused_past_its_ttl_wakes_up_and_stops_without_claiming(stack: FaultStack,
                                                                      figure: Callable[[str], None]) -> None:
    """SIGSTOP, the lease expires, a new copy takes over and answers; SIGCONT: the old copy stops with one
    line and claims no entry (README, "One live consumer per worker name")."""
    paused = stack.worker("solo", BY_DEVICE, "--init-primary", "--lease-ttl", "1", label="solo-paused")
    produced(stack, 100, seed=4)
    wait_for(lambda: result_count(stack.client, "solo") >= 100, 60, "the first copy's results", [paused])
    paused.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: not stack.client.exists(keys.lease_key("solo")), 30, "the paused copy's lease to expire")
        owner = stack.worker("solo", BY_DEVICE, "--lease-ttl", "1", label="solo-owner")
        produced(stack, 100, seed=5)
        wait_for(lambda: result_count(stack.client, "solo") >= 200, 60, "the new owner's results", [owner])
    finally:
        paused.send_signal(signal.SIGCONT)
    code = paused.wait(timeout=60)
    produced(stack, 100, seed=6)
    wait_for(lambda: result_count(stack.client, "solo") >= 300, 60, "results after the wake-up", [owner])
    figures = count_figures(stack.client, ["solo"])
    figures.extra["paused_copy_exit"] = code
    figures.extra["pending"] = int(stack.client.xpending(keys.DEFAULT_INPUT_STREAM, "solo")["pending"])
    figure(figures.line("paused-copy"))
    lines = stack.log("solo-paused").read_text().strip().splitlines()
    assert code != 0 and "another copy took over its lease" in lines[-1], lines[-3:]
    assert owner.poll() is None
    assert figures.lost == 0 and figures.doubled == 0 and figures.production == 300
    assert figures.extra["pending"] == 0
