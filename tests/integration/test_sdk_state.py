"""A hosted in-memory learner keeps what it learned across a SIGKILL, through the runtime's snapshots."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import redis

from harness.contracts import SignalMeta, SignalReceived, encode_signal
from harness.transport import keys
from tests.support.processes import result_count, results, start_worker, wait_for

LEARNER = "tests.support.algorithms:online_learner"


def send(client: redis.Redis, signal_id: str, level: float) -> None:
    samples = np.full(64, level, dtype=np.float32)
    payload = encode_signal(SignalReceived(signal_id, SignalMeta("dev-1"), 1000.0, 1.7e9, samples))
    client.xadd(keys.DEFAULT_INPUT_STREAM, {keys.PAYLOAD_FIELD: payload})


def test_a_killed_learner_resumes_from_its_snapshot_and_its_labels_continue(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    for i, level in enumerate((230.0, 240.0, 250.0)):
        send(redis_client, f"a{i}", level)
    worker = start_worker(LEARNER, redis_url, "--name", "learner", log=tmp_path / "first.log")
    wait_for(lambda: result_count(redis_client, "learner") == 3, 60, "first results", [worker])
    worker.send_signal(signal.SIGKILL)  # no goodbye: only what was committed survives
    worker.wait(timeout=10)

    for i, level in enumerate((240.0, 230.0, 400.0)):
        send(redis_client, f"b{i}", level)
    again = start_worker(LEARNER, redis_url, "--name", "learner", log=tmp_path / "second.log")
    try:
        wait_for(lambda: result_count(redis_client, "learner") == 6, 60, "results after the restart", [again])
    finally:
        again.terminate()
        again.wait(timeout=20)
    assert [(r.signal_id, r.label) for r in results(redis_client, "learner")] == [
        ("a0", "k1"), ("a1", "k2"), ("a2", "k3"), ("b0", "k2"), ("b1", "k1"), ("b2", "k4")]


def test_a_learner_started_with_other_hyperparameters_refuses_the_old_state(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    send(redis_client, "a0", 230.0)
    first = start_worker(LEARNER, redis_url, "--name", "learner", "--exit-when-idle", "0.5")
    assert first.wait(timeout=60) == 0
    log = tmp_path / "other.log"
    other = start_worker(LEARNER, redis_url, "--name", "learner", "--exit-when-idle", "0.5",
                         env={"HARNESS_TEST_LEARNER_VERSION": "online-learner-2"}, log=log)
    assert other.wait(timeout=60) != 0
    assert "--reset-state" in log.read_text() and "online-learner-1" in log.read_text()
    fresh = start_worker(LEARNER, redis_url, "--name", "learner", "--exit-when-idle", "0.5", "--reset-state",
                         env={"HARNESS_TEST_LEARNER_VERSION": "online-learner-2"})
    assert fresh.wait(timeout=60) == 0
    assert redis_client.hget(keys.model_state_key("learner"), "model_version") == b"online-learner-2"
