"""Redis restarted mid-stream, Redis full mid-run: every process carries on by itself, nothing lost."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from harness.transport import keys
from tests.faults.stack import FaultStack, all_results_in, count_figures
from tests.support.processes import count_in_log, results, wait_for

pytestmark = pytest.mark.fault

WORKERS = ["legacy", "candidate"]
PROCESSES = ["legacy", "candidate", "comparator"]


def start_shadow_deployment(stack: FaultStack) -> None:
    stack.worker("legacy", "legacy", "--init-primary", "--batch-size", "50")
    stack.worker("candidate", "candidate", "--batch-size", "50")
    stack.comparator()
    for worker in WORKERS:
        wait_for(lambda worker=worker: stack.client.hget(keys.heartbeat_key(worker), "state") == b"running",
                 60, f"{worker} running", stack.alive(*PROCESSES))


def produce(stack: FaultStack, name: str, count: int, *extra: str) -> None:
    stack.harness(name, "produce", "--count", str(count), "--samples", "64", "--seed", name[-1], *extra)


def wait_until_compared(stack: FaultStack, n: int) -> None:
    wait_for(lambda: all_results_in(stack.client, WORKERS, n), 120, "every result", stack.alive(*PROCESSES))
    wait_for(lambda: int(stack.client.xlen(keys.PRODUCTION_STREAM)) >= n, 30, "production")
    wait_for(lambda: stack.summary_counts().get("matched", 0) >= n, 60, "the comparator to match every pair",
             stack.alive("comparator"))


def produced_counter(stack: FaultStack) -> int:
    return int(stack.client.get(keys.PRODUCED_KEY) or 0)


def test_redis_restart_with_aof_mid_stream(stack: FaultStack, figure: Callable[[str], None]) -> None:
    n = 2000
    start_shadow_deployment(stack)
    produce(stack, "producer1", n, "--rate", "400")
    wait_for(lambda: int(stack.client.xlen(keys.DEFAULT_INPUT_STREAM)) >= 500, 60, "input mid-stream",
             stack.alive(*PROCESSES, "producer1"))
    # Down until every process has met the outage and logged a retry; nobody restarts any of them.
    stack.restart_redis([(name, '"retry_in_s"') for name in (*PROCESSES, "producer1")])
    assert stack.processes["producer1"].wait(timeout=120) == 0
    wait_until_compared(stack, n)
    figures = count_figures(stack.client, WORKERS)
    counts = stack.summary_counts()
    figures.extra.update(matched=counts["matched"], produced_counter=produced_counter(stack))
    figure(figures.line("redis-restart-aof"))
    assert figures.produced == n == produced_counter(stack)
    assert figures.lost == 0 and figures.doubled == 0 and figures.production == n
    assert counts["matched"] == n and counts["duplicates"] == 0
    assert all(process.poll() is None for process in stack.alive(*PROCESSES))


def test_maxmemory_reached_then_raised(stack: FaultStack, figure: Callable[[str], None]) -> None:
    first, second = 1000, 500
    start_shadow_deployment(stack)
    for worker in WORKERS:  # paused, so that the backlog meets the full store in their hands
        stack.processes[worker].send_signal(signal.SIGSTOP)
    produce(stack, "producer1", first)
    assert stack.processes["producer1"].wait(timeout=60) == 0
    used = int(stack.client.info("memory")["used_memory"])
    stack.client.config_set("maxmemory-policy", "noeviction")
    stack.client.config_set("maxmemory", str(max(1, used // 2)))
    try:
        produce(stack, "producer2", second)
        for worker in WORKERS:
            stack.processes[worker].send_signal(signal.SIGCONT)
        for name in (*WORKERS, "producer2"):
            wait_for(lambda name=name: count_in_log(stack.log(name), "out of memory") > 0, 60,
                     f"{name} to meet the full store", stack.alive(*PROCESSES, "producer2"))
    finally:
        stack.client.config_set("maxmemory", "0")
    assert stack.processes["producer2"].wait(timeout=120) == 0
    wait_until_compared(stack, first + second)
    figures = count_figures(stack.client, WORKERS)
    errors = {worker: sum(r.outcome == "error" for r in results(stack.client, worker)) for worker in WORKERS}
    figures.extra.update(error_results=sum(errors.values()), produced_counter=produced_counter(stack))
    figure(figures.line("maxmemory"))
    assert figures.produced == first + second == produced_counter(stack)
    assert figures.lost == 0 and figures.doubled == 0 and figures.production == first + second
    assert errors == {"legacy": 0, "candidate": 0}
    assert stack.summary_counts()["matched"] == first + second
    assert all(process.poll() is None for process in stack.alive(*PROCESSES))
