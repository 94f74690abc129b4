"""Cutover and rollback with real worker processes on a real redis-server, under a live stream."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
import redis

from harness.producer.publisher import publish_signals
from harness.producer.synthetic import generate_signals
from harness.transport import keys
from harness.transport.replies import server_time_ms
from harness.transport.roles import production_summary, read_roles
from tests.support.cutover_crash import CRASH_EXIT
from tests.support.processes import ROOT, start_worker, stop, wait_for

# Well below what legacy sustains on a loaded 2-core machine: the switch copies the candidate's
# results past legacy's watermark, so a legacy far behind makes each switch attempt long.
RATE = 300
MAX_SIGNALS = 200_000  # never reached: the flow stops when the test says so


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)


class FlowingInput:
    """Signals at RATE per second from a thread, until the test stops them: the switch happens mid-flow
    however slow the machine is, instead of racing a producer that sends a fixed count."""

    def __init__(self, redis_url: str) -> None:
        self._client = redis.Redis.from_url(redis_url)
        self._stopping = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        signals = itertools.takewhile(lambda _: not self._stopping.is_set(), generate_signals(MAX_SIGNALS, seed=0))
        try:
            publish_signals(self._client, signals, keys.DEFAULT_INPUT_STREAM, rate=RATE)
        except BaseException as exc:  # re-raised in the test's thread by stop()
            self._error = exc

    @property
    def flowing(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> FlowingInput:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=30)
        if self._error is not None:
            raise self._error

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()
        self._client.close()


def production_entries(client: redis.Redis) -> Counter[str]:
    return Counter(fields[b"entry"].decode() for _, fields in client.xrange(keys.PRODUCTION_STREAM))


def input_entries(client: redis.Redis) -> list[str]:
    return [entry_id.decode() for entry_id, _ in client.xrange(keys.DEFAULT_INPUT_STREAM)]


def wait_for_every_production_result(client: redis.Redis, *alive: subprocess.Popen[bytes]) -> None:
    total = client.xlen(keys.DEFAULT_INPUT_STREAM)
    wait_for(lambda: len(production_entries(client)) >= total, 90, f"a production result for all {total} signals",
             alive)


def assert_exactly_one_production_result_per_signal(client: redis.Redis) -> None:
    produced = input_entries(client)
    published = production_entries(client)
    assert len(produced) > 0
    doubled = [entry for entry, n in published.items() if n > 1]
    lost = [entry for entry in produced if entry not in published]
    assert not doubled, f"{len(doubled)} signals got two production results"
    assert not lost, f"{len(lost)} signals got no production result"


@pytest.fixture()
def shadow_pair(redis_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    legacy = start_worker("legacy", redis_url, "--init-primary", log=tmp_path / "legacy.log")
    candidate = start_worker("candidate", redis_url, log=tmp_path / "candidate.log")
    yield legacy, candidate
    stop(legacy)
    stop(candidate)


def status_of(redis_url: str) -> dict[str, Any]:
    shown = harness("status", "--redis-url", redis_url, "--json")
    assert shown.returncode == 0, shown.stderr
    return dict(json.loads(shown.stdout))


def production_grows_by(client: redis.Redis, count: int) -> Callable[[], bool]:
    start = client.xlen(keys.PRODUCTION_STREAM)
    return lambda: bool(client.xlen(keys.PRODUCTION_STREAM) >= start + count)


def test_every_signal_gets_exactly_one_production_result_across_cutover_and_rollback(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path, shadow_pair: tuple[subprocess.Popen[bytes], ...]
) -> None:
    legacy, candidate = shadow_pair
    try:
        with FlowingInput(redis_url) as flow:
            wait_for(lambda: redis_client.xlen(keys.PRODUCTION_STREAM) > 600, 60, "legacy feeding production",
                     [legacy, candidate])
            cut = harness("cutover", "--redis-url", redis_url, "--force", "--reason", "test", "--stop-with",
                          "process")
            assert cut.returncode == 0, cut.stderr
            assert read_roles(redis_client).primary == "candidate"
            assert legacy.wait(timeout=30) == 0, "legacy drains and exits"
            assert flow.flowing, "the switch must happen while signals are still flowing"

            wait_for(production_grows_by(redis_client, 600), 60, "candidate feeding production", [candidate])
            # No catch-up: legacy becomes primary while behind, so production waits for it (nothing is lost).
            # No --start-args: legacy starts again from the command line the cutover recorded.
            back = harness("rollback", "--redis-url", redis_url, "--stop-with", "process", "--catch-up", "0",
                           "--worker-log-dir", str(tmp_path / "logs"))
            assert back.returncode == 0, back.stderr
            assert read_roles(redis_client).primary == "legacy"
            assert "legacy is serving: lease held by" in back.stdout
            started_log = status_of(redis_url)["groups"]["legacy"]["log"]
            assert started_log is not None and Path(started_log).parent == tmp_path / "logs"
            assert flow.flowing, "the rollback must happen while signals are still flowing"
            wait_for(production_grows_by(redis_client, 300), 60, "legacy feeding production again", [candidate])
        wait_for_every_production_result(redis_client, candidate)

        assert_exactly_one_production_result_per_signal(redis_client)
        summary = production_summary(redis_client)
        assert summary is not None
        assert summary["production_missing"] == 0 and summary["production_duplicates"] == 0
        assert summary["by_worker"]["candidate"] > 0 and summary["by_worker"]["legacy"] > 0
        assert summary["epoch"] == 3, "init (1), cutover (2), rollback (3)"
        epochs = {fields[b"epoch"] for _, fields in redis_client.xrange(keys.PRODUCTION_STREAM)}
        assert epochs == {b"1", b"2", b"3"}, "every production result carries its epoch"
    finally:
        # The rollback started legacy outside this test's fixtures: drain and stop it.
        harness("cutover", "--redis-url", redis_url, "--force", "--reason", "cleanup", "--stop-with", "process")


@pytest.mark.parametrize("crash_after", ["gate", "switch", "drain"])
def test_rerun_after_a_crash_at_any_step_completes_the_cutover(
    crash_after: str, redis_url: str, redis_client: redis.Redis, tmp_path: Path,
    shadow_pair: tuple[subprocess.Popen[bytes], ...],
) -> None:
    legacy, candidate = shadow_pair
    with FlowingInput(redis_url):
        wait_for(lambda: redis_client.xlen(keys.PRODUCTION_STREAM) > 600, 60, "production", [legacy])
        crashed = subprocess.run([sys.executable, "-m", "tests.support.cutover_crash", redis_url, crash_after],
                                 capture_output=True, text=True, cwd=ROOT, timeout=120,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert crashed.returncode == CRASH_EXIT, f"the crash after {crash_after} did not happen: {crashed.stderr}"
        assert redis_client.hget(keys.CUTOVER_KEY, "step_done") == crash_after.encode()
        rerun = harness("cutover", "--redis-url", redis_url, "--force", "--reason", "crash test",
                        "--stop-with", "process")
        assert rerun.returncode == 0, rerun.stderr
    roles = read_roles(redis_client)
    assert (roles.primary, roles.epoch) == ("candidate", 2), "one switch, however many runs"
    assert redis_client.hget(keys.CUTOVER_KEY, "step_done") == b"done"
    assert legacy.wait(timeout=30) == 0
    wait_for_every_production_result(redis_client, candidate)
    assert_exactly_one_production_result_per_signal(redis_client)
    steps = [fields[b"step"] for _, fields in redis_client.xrange(keys.AUDIT_STREAM)]
    assert steps.count(b"switch") == 1 and steps[-1] == b"done"


def dump_everything(client: redis.Redis) -> dict[bytes, bytes]:
    return {key: client.dump(key) for key in sorted(client.keys("*"))}  # type: ignore[misc]


def test_dry_run_changes_nothing(redis_url: str, redis_client: redis.Redis, tmp_path: Path,
                                 shadow_pair: tuple[subprocess.Popen[bytes], ...]) -> None:
    legacy, candidate = shadow_pair
    harness("produce", "--redis-url", redis_url, "--count", "300")
    wait_for(lambda: redis_client.xlen(keys.PRODUCTION_STREAM) >= 300
             and redis_client.xlen(keys.results_stream("candidate")) >= 300, 60, "both workers done")
    stop(legacy)
    stop(candidate)  # heartbeats would otherwise change the state under the comparison
    before = dump_everything(redis_client)
    plan = harness("cutover", "--redis-url", redis_url, "--dry-run", "--policy", str(ROOT / "policies/default.toml"))
    assert plan.returncode == 1, "refused: the candidate no longer runs"
    assert "epoch 2" in plan.stdout and "nothing was changed" in plan.stdout
    assert "candidate is not serving: candidate holds no lease" in plan.stdout
    assert dump_everything(redis_client) == before


def test_failing_gate_refuses_the_cutover(redis_url: str, redis_client: redis.Redis, tmp_path: Path,
                                          shadow_pair: tuple[subprocess.Popen[bytes], ...]) -> None:
    harness("produce", "--redis-url", redis_url, "--count", "200")
    wait_for(lambda: redis_client.xlen(keys.results_stream("candidate")) >= 200
             and redis_client.xlen(keys.results_stream("legacy")) >= 200, 60, "both workers done")
    comparator = harness("comparator", "--redis-url", redis_url, "--exit-when-idle", "1")
    assert comparator.returncode == 0, comparator.stderr
    strict = tmp_path / "strict.toml"
    strict.write_text("[gate]\nmin_pairs = 100000\n[rules.ari]\n")  # far more pairs than exist: not a pass
    refused = harness("cutover", "--redis-url", redis_url, "--policy", str(strict))
    assert refused.returncode == 1
    assert "cutover refused" in refused.stderr
    assert read_roles(redis_client).primary == "legacy"
    audit = [fields for _, fields in redis_client.xrange(keys.AUDIT_STREAM)]
    assert audit[-1][b"step"] == b"refused"


def test_a_drained_worker_started_again_idles_until_the_flag_is_cleared(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    redis_client.set(keys.control_key("legacy"), "drain")
    harness("produce", "--redis-url", redis_url, "--count", "50")
    worker = start_worker("legacy", redis_url, log=tmp_path / "legacy.log")
    try:
        wait_for(lambda: redis_client.hget(keys.heartbeat_key("legacy"), "state") == b"drained", 30,
                 "the drained heartbeat", [worker])
        assert redis_client.xlen(keys.results_stream("legacy")) == 0, "a drained worker consumes nothing"
        redis_client.delete(keys.control_key("legacy"))
        wait_for(lambda: redis_client.xlen(keys.results_stream("legacy")) == 50, 30, "resumed", [worker])
    finally:
        assert stop(worker) == 0


def test_a_rejected_message_mid_batch_does_not_cost_other_signals_their_production_result(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    from harness.contracts import encode_signal
    from tests.integration.test_stream_transport import small_signals

    signals = small_signals(30, prefix="p")
    for index, signal in enumerate(signals):
        payload = b"\xc1 garbage" if index == 17 else encode_signal(signal)
        redis_client.xadd(keys.DEFAULT_INPUT_STREAM, {keys.PAYLOAD_FIELD: payload})
    worker = start_worker("tests.support.algorithms:by_device", redis_url, "--name", "legacy", "--init-primary",
                          log=tmp_path / "legacy.log")
    try:
        wait_for(lambda: redis_client.xlen(keys.PRODUCTION_STREAM) >= 30, 30, "production", [worker])
    finally:
        stop(worker)
    assert sorted(production_entries(redis_client)) == sorted(input_entries(redis_client))
    assert max(production_entries(redis_client).values()) == 1


def owned_keys(client: redis.Redis, worker: str) -> dict[str, list[bytes]]:
    """The keys `keys.worker_state_keys` says the worker owns, found in Redis, by name or pattern."""
    owned = keys.worker_state_keys(worker)
    found = {name: [name.encode()] for name in owned.exact if client.exists(name)}
    for pattern in owned.patterns:
        found[pattern] = list(client.scan_iter(match=pattern, count=1000))
    return found


def test_retire_waits_for_the_window_then_removes_legacy_group_and_state(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path, shadow_pair: tuple[subprocess.Popen[bytes], ...]
) -> None:
    harness("produce", "--redis-url", redis_url, "--count", "100")
    wait_for(lambda: redis_client.xlen(keys.results_stream("legacy")) >= 100
             and redis_client.xlen(keys.results_stream("candidate")) >= 100, 60, "both workers done")
    legacy_state = owned_keys(redis_client, "legacy")
    assert all(legacy_state.get(pattern) for pattern in keys.worker_state_keys("legacy").patterns), \
        "legacy keeps cluster state and dedupe keys"
    candidate_state = owned_keys(redis_client, "candidate")
    cut = harness("cutover", "--redis-url", redis_url, "--force", "--reason", "retire test", "--stop-with", "process")
    assert cut.returncode == 0, cut.stderr

    early = harness("retire", "legacy", "--redis-url", redis_url)
    assert early.returncode == 1 and "rollback window to legacy is open" in early.stderr
    status = status_of(redis_url)
    assert status["roles"]["primary"] == "candidate" and status["roles"]["epoch"] == 2
    assert set(status["groups"]) == {"legacy", "candidate"}
    assert status["groups"]["legacy"]["draining"] is True
    assert [entry["step"] for entry in status["audit"]][-4:] == ["gate", "switch", "drain", "done"]

    # The hour passes: the window's end moves to the past on the Redis clock that retire reads.
    redis_client.hset(keys.ROLES_KEY, "rollback_until_ms", int(server_time_ms(redis_client)) - 1)
    retired = harness("retire", "legacy", "--redis-url", redis_url)
    assert retired.returncode == 0, retired.stderr
    groups = {g["name"].decode() for g in redis_client.xinfo_groups(keys.DEFAULT_INPUT_STREAM)}
    assert groups == {"candidate"}
    assert not any(owned_keys(redis_client, "legacy").values()), "every key legacy owned is gone"
    candidate_after = owned_keys(redis_client, "candidate")
    assert all(candidate_state.values())
    assert all(set(found) <= set(candidate_after.get(name, [])) for name, found in candidate_state.items()), \
        "the candidate's keys are untouched"
    assert redis_client.exists(keys.results_stream("legacy")), "legacy's results stay: the record of the run"
    assert redis_client.xrange(keys.AUDIT_STREAM)[-1][1][b"action"] == b"retire"


def test_a_rollback_whose_target_is_not_running_is_refused_while_production_keeps_flowing(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path, shadow_pair: tuple[subprocess.Popen[bytes], ...]
) -> None:
    legacy, candidate = shadow_pair
    with FlowingInput(redis_url) as flow:
        wait_for(lambda: redis_client.xlen(keys.PRODUCTION_STREAM) > 300, 60, "legacy feeding production",
                 [legacy, candidate])
        # Your own tooling stops legacy (--stop-with none): no harness command line is recorded for it.
        cut = harness("cutover", "--redis-url", redis_url, "--force", "--reason", "test", "--stop-with", "none")
        assert cut.returncode == 0, cut.stderr
        assert [line.split(":")[0] for line in cut.stdout.splitlines()][:4] == [
            "candidate is serving", "gate skipped", "fence", "switch"]
        assert legacy.wait(timeout=30) == 0, "legacy drains and exits"
        wait_for(production_grows_by(redis_client, 300), 60, "candidate feeding production", [candidate])

        before = redis_client.xlen(keys.PRODUCTION_STREAM)
        refused = harness("rollback", "--redis-url", redis_url, "--stop-with", "process", "--catch-up", "0")
        assert refused.returncode == 1
        assert refused.stderr.strip().splitlines() == [
            "Error: rollback refused: legacy holds no lease: no live legacy process runs (no command line was "
            "recorded for legacy (it was not stopped by a cutover on this host): give --start-args with the "
            "`harness worker` arguments that start it); switching to it would leave production unserved"]
        assert (read_roles(redis_client).primary, read_roles(redis_client).epoch) == ("candidate", 2)
        wait_for(lambda: redis_client.xlen(keys.PRODUCTION_STREAM) >= before + 300, 60,
                 "candidate still feeding production after the refusal", [candidate])

        # After `retire legacy` nothing can bring it back: refused even when forced.
        redis_client.hset(keys.ROLES_KEY, "rollback_until_ms", int(server_time_ms(redis_client)) - 1)
        assert harness("retire", "legacy", "--redis-url", redis_url).returncode == 0
        assert "rollback: none (legacy retired)" in " ".join(harness("status", "--redis-url", redis_url).stdout.split())
        forced = harness("rollback", "--redis-url", redis_url, "--force", "--reason", "test", "--stop-with", "process",
                         "--start-args", f"worker legacy --redis-url {redis_url}")
        assert forced.returncode == 1 and "legacy was retired" in forced.stderr
        after = redis_client.xlen(keys.PRODUCTION_STREAM)
        wait_for(lambda: redis_client.xlen(keys.PRODUCTION_STREAM) >= after + 300, 60,
                 "candidate still feeding production after the second refusal", [candidate])
        assert flow.flowing
    wait_for_every_production_result(redis_client, candidate)
    assert_exactly_one_production_result_per_signal(redis_client)
    assert {fields[b"worker"] for _, fields in redis_client.xrange(keys.PRODUCTION_STREAM)} == {b"legacy", b"candidate"}
