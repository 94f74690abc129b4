"""The producer: counter and entries written together, a lost reply written once, a stopped run resumed."""

from __future__ import annotations

import re
from typing import Any

import pytest
import redis

from harness.contracts import decode_signal
from harness.producer.publisher import publish_signals
from harness.producer.synthetic import generate_signals
from harness.transport import keys
from tests.faults.stack import FaultStack
from tests.support.processes import count_in_log, wait_for

pytestmark = pytest.mark.fault


class LosesFirstScriptReply(redis.Redis):
    """Redis runs the first script call, but its reply never reaches the producer."""

    lost = False

    def execute_command(self, *args: Any, **options: Any) -> Any:
        reply = super().execute_command(*args, **options)
        if args[0] == "EVALSHA" and not self.lost:
            self.lost = True
            raise redis.ConnectionError("connection reset: the reply was lost")
        return reply


def stream_ids(client: redis.Redis) -> list[str]:
    return [decode_signal(fields[keys.PAYLOAD_FIELD]).signal_id
            for _, fields in client.xrange(keys.DEFAULT_INPUT_STREAM)]


def test_a_batch_whose_reply_was_lost_is_written_once(stack: FaultStack) -> None:
    client = LosesFirstScriptReply.from_url(stack.url)
    sent = publish_signals(client, generate_signals(50, 1, samples=16), keys.DEFAULT_INPUT_STREAM)
    assert client.lost and sent == 50
    assert stack.client.xlen(keys.DEFAULT_INPUT_STREAM) == 50
    assert int(stack.client.get(keys.PRODUCED_KEY) or 0) == 50


def test_an_interrupted_run_resumes_after_its_last_written_signal(stack: FaultStack) -> None:
    signals = list(generate_signals(100, 1, samples=16))
    publish_signals(stack.client, signals[:30], keys.DEFAULT_INPUT_STREAM, run_id="run-a", batch_size=7)
    sent = publish_signals(stack.client, signals, keys.DEFAULT_INPUT_STREAM, run_id="run-a", batch_size=20)
    assert sent == 70
    assert stream_ids(stack.client) == [s.signal_id for s in signals]
    assert int(stack.client.get(keys.PRODUCED_KEY) or 0) == 100


def test_a_full_store_past_the_bounded_wait_stops_with_one_line_then_resumes(stack: FaultStack) -> None:
    args = ("produce", "--count", "300", "--samples", "16", "--seed", "4")
    stack.harness("warm-up", "produce", "--count", "100", "--samples", "16")
    assert stack.processes["warm-up"].wait(timeout=60) == 0
    stack.client.config_set("maxmemory", str(int(stack.client.info("memory")["used_memory"]) // 2))
    try:
        stopped = stack.harness("stopped", *args, "--max-wait", "1")
        assert stopped.wait(timeout=60) == 1
    finally:
        stack.client.config_set("maxmemory", "0")
    log = stack.log("stopped").read_text()
    errors = [line for line in log.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "out of memory" in errors[0], log
    assert "\\x" not in errors[0] and "\ufffd" not in errors[0]
    assert count_in_log(stack.log("stopped"), '"retry_in_s"') >= 2
    run_id = re.search(r"--run-id (\w+)", errors[0]).group(1)  # type: ignore[union-attr]
    resumed = stack.harness("resumed", *args, "--run-id", run_id)
    wait_for(lambda: resumed.poll() == 0, 60, "the resumed run", [resumed])
    expected = [s.signal_id for s in generate_signals(300, 4, samples=16)]
    assert stream_ids(stack.client)[100:] == expected
    assert int(stack.client.get(keys.PRODUCED_KEY) or 0) == 400



def test_writes_a_failover_lost_are_counted_not_passed_over(redis_client: redis.Redis) -> None:
    """A replica promoted before it saw the last writes holds less of a run than the producer was told:
    the producer's next batch finds the gap, and counts it."""

    def failover(sent: int) -> None:
        if sent == 30:  # the promoted replica had only the first 20 of the 30 acknowledged signals
            redis_client.hset(keys.PRODUCER_RUNS_KEY, "run-f", 20)

    sent = publish_signals(redis_client, generate_signals(60, 1, samples=16), keys.DEFAULT_INPUT_STREAM,
                           run_id="run-f", batch_size=10, on_progress=failover)
    assert sent == 60
    assert int(redis_client.get(keys.PRODUCED_LOST_KEY) or 0) == 10
