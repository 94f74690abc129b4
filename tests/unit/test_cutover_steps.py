"""Cutover, rollback and retire step by step: a crash after any step, then a re-run, completes each once."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from harness.cutover.plan import (
    CUTOVER_STEPS,
    ROLLBACK_STEPS,
    CutoverRefused,
    CutoverRequest,
    GateOutcome,
    RollbackRequest,
    run_cutover,
    run_rollback,
)
from harness.cutover.retire import RETIRE_STEPS, retire
from harness.cutover.stoppers import WorkerStopper
from harness.transport import keys
from harness.transport.replies import server_time_ms
from harness.transport.roles import drain_requested, read_roles


class Crash(Exception):
    pass


def crash_after(crash_step: str) -> Callable[[str], None]:
    def hook(step: str) -> None:
        if step == crash_step:
            raise Crash(step)

    return hook


def hold_lease(client: redis.Redis, worker: str) -> None:
    """What a live worker process keeps in Redis: its lease, '<token> <host> <pid>'."""
    client.set(keys.lease_key(worker), "1 testhost 4242")


class RecordingStopper(WorkerStopper):
    """Runs no process: a stop releases the worker's lease and a start takes it, as a real worker would;
    remembers what it was asked, and whether the drain flag was up by then."""

    def __init__(self) -> None:
        self.stopped: list[str] = []
        self.started: list[str] = []
        self.drained_before_stop: list[bool] = []

    def stop(self, client: redis.Redis, worker: str, timeout_s: float) -> None:
        self.drained_before_stop.append(drain_requested(client, worker))
        self.stopped.append(worker)
        client.delete(keys.lease_key(worker))

    def can_start(self, client: redis.Redis, worker: str) -> bool:
        return True

    def start(self, client: redis.Redis, worker: str) -> str | None:
        self.started.append(worker)
        hold_lease(client, worker)
        return None


FORCED = CutoverRequest(force_reason="unit test")
NO_CATCH_UP = RollbackRequest(catch_up_s=0)


def never_judged() -> GateOutcome:
    raise AssertionError("a forced cutover does not judge the gate")


def audit_steps(client: redis.Redis, action: str) -> list[str]:
    return [fields[b"step"].decode() for _, fields in client.xrange(keys.AUDIT_STREAM)
            if fields[b"action"] == action.encode()]


@pytest.fixture()
def legacy_primary(redis_client: redis.Redis) -> redis.Redis:
    """Legacy feeds production (epoch 1); both workers read the input through their own group."""
    redis_client.hset(keys.ROLES_KEY, mapping={"primary": "legacy", "epoch": 1, "watermark": "0-0"})
    for worker in ("legacy", "candidate"):
        redis_client.xgroup_create(keys.DEFAULT_INPUT_STREAM, worker, id="$", mkstream=True)
        redis_client.hset(keys.heartbeat_key(worker), "state", "running")
        hold_lease(redis_client, worker)
    return redis_client


@pytest.mark.parametrize("step", CUTOVER_STEPS)
def test_a_cutover_rerun_after_a_crash_at_any_step_completes_it_once(legacy_primary: redis.Redis, step: str) -> None:
    stopper = RecordingStopper()
    with pytest.raises(Crash):
        run_cutover(legacy_primary, FORCED, stopper, never_judged, after_step=crash_after(step))
    assert legacy_primary.hget(keys.CUTOVER_KEY, "step_done") == step.encode()

    roles = run_cutover(legacy_primary, FORCED, stopper, never_judged)

    assert (roles.primary, roles.epoch, roles.previous) == ("candidate", 2, "legacy")
    assert audit_steps(legacy_primary, "cutover") == list(CUTOVER_STEPS), "each step once, in order"
    assert stopper.stopped == ["legacy"], "legacy is stopped once, however many runs"
    assert stopper.drained_before_stop == [True], "the drain flag is up before the stopper acts"
    assert legacy_primary.hget(keys.CUTOVER_KEY, "step_done") == b"done"


def test_a_finished_cutover_run_again_changes_nothing(legacy_primary: redis.Redis) -> None:
    stopper = RecordingStopper()
    run_cutover(legacy_primary, FORCED, stopper, never_judged)
    audit_length = legacy_primary.xlen(keys.AUDIT_STREAM)

    roles = run_cutover(legacy_primary, FORCED, stopper, never_judged)

    assert (roles.primary, roles.epoch) == ("candidate", 2)
    assert legacy_primary.xlen(keys.AUDIT_STREAM) == audit_length
    assert stopper.stopped == ["legacy"]


def test_a_failing_gate_refuses_before_any_switch(legacy_primary: redis.Redis) -> None:
    stopper = RecordingStopper()
    with pytest.raises(CutoverRefused, match="gate fail: 3 rules, failed: ari"):
        run_cutover(legacy_primary, CutoverRequest(), stopper, lambda: GateOutcome("fail", "3 rules, failed: ari"))

    assert (read_roles(legacy_primary).primary, read_roles(legacy_primary).epoch) == ("legacy", 1)
    assert audit_steps(legacy_primary, "cutover") == ["refused"]
    assert stopper.stopped == [] and not drain_requested(legacy_primary, "legacy")


@pytest.fixture()
def after_cutover(legacy_primary: redis.Redis) -> redis.Redis:
    run_cutover(legacy_primary, FORCED, RecordingStopper(), never_judged)
    return legacy_primary


@pytest.mark.parametrize("step", ROLLBACK_STEPS)
def test_a_rollback_rerun_after_a_crash_at_any_step_completes_it_once(after_cutover: redis.Redis,
                                                                      step: str) -> None:
    stopper = RecordingStopper()
    with pytest.raises(Crash):
        run_rollback(after_cutover, stopper, NO_CATCH_UP, after_step=crash_after(step))

    roles = run_rollback(after_cutover, stopper, NO_CATCH_UP)

    assert (roles.primary, roles.epoch) == ("legacy", 3)
    assert audit_steps(after_cutover, "rollback") == list(ROLLBACK_STEPS)
    assert stopper.started == ["legacy"], "legacy is started once, however many runs"
    assert not drain_requested(after_cutover, "legacy"), "the drain flag is cleared"


def test_a_rollback_after_the_window_is_refused_unless_forced(after_cutover: redis.Redis) -> None:
    after_cutover.hset(keys.ROLES_KEY, "rollback_until_ms", int(server_time_ms(after_cutover)) - 1)
    stopper = RecordingStopper()
    with pytest.raises(CutoverRefused, match="rollback window has closed"):
        run_rollback(after_cutover, stopper, NO_CATCH_UP)
    assert read_roles(after_cutover).primary == "candidate" and stopper.started == []

    forced = RollbackRequest(force_reason="incident 42", catch_up_s=0)
    assert run_rollback(after_cutover, stopper, forced).primary == "legacy"


def plant_worker_keys(client: redis.Redis, worker: str) -> None:
    """What a worker leaves in Redis: per-device state, dedupe keys, a heartbeat, maybe a drain flag."""
    for device in ("dev-1", "dev-2"):
        client.hset(keys.device_state_key(worker, device), "reference", b"\x00" * 8)
    client.set(f"{keys.state_prefix(worker)}model-version", "1")  # a hosted algorithm's own key
    for window in (493_000, 493_001):
        client.hset(keys.seen_ids_key(worker, window), "sig-1", "1-0")
    client.hset(keys.heartbeat_key(worker), "state", "stopped")
    client.set(keys.control_key(worker), "drain")


def worker_keys_left(client: redis.Redis, worker: str) -> list[bytes]:
    owned = keys.worker_state_keys(worker)
    left = [name.encode() for name in owned.exact if client.exists(name)]
    return left + [key for pattern in owned.patterns for key in client.scan_iter(match=pattern)]


@pytest.fixture()
def window_closed(after_cutover: redis.Redis) -> redis.Redis:
    for worker in ("legacy", "candidate", "legacy-replica"):
        plant_worker_keys(after_cutover, worker)
    after_cutover.hset(keys.ROLES_KEY, "rollback_until_ms", int(server_time_ms(after_cutover)) - 1)
    return after_cutover


@pytest.mark.parametrize("step", RETIRE_STEPS)
def test_a_retire_rerun_after_a_crash_at_any_step_removes_every_key_the_worker_owned(
    window_closed: redis.Redis, step: str
) -> None:
    others = {worker: sorted(worker_keys_left(window_closed, worker)) for worker in ("candidate", "legacy-replica")}
    with pytest.raises(Crash):
        retire(window_closed, "legacy", keys.DEFAULT_INPUT_STREAM, after_step=crash_after(step))

    retire(window_closed, "legacy", keys.DEFAULT_INPUT_STREAM)

    assert worker_keys_left(window_closed, "legacy") == []
    groups = {g["name"].decode() for g in window_closed.xinfo_groups(keys.DEFAULT_INPUT_STREAM)}
    assert groups == {"candidate"}
    for worker, before in others.items():
        assert sorted(worker_keys_left(window_closed, worker)) == before, f"{worker}'s keys are untouched"
    assert audit_steps(window_closed, "retire")[-1] == "done"


def test_retire_removes_and_counts_the_group_and_every_owned_key(window_closed: redis.Redis) -> None:
    removed = retire(window_closed, "legacy", keys.DEFAULT_INPUT_STREAM)
    assert removed == 1 + 2 + 1 + 2 + 2, "group, 2 devices, 1 algorithm key, 2 windows of seen ids, heartbeat and flag"
    assert retire(window_closed, "legacy", keys.DEFAULT_INPUT_STREAM) == 0, "a second retire finds nothing"


def test_retire_refuses_while_the_window_is_open_or_the_worker_is_primary(after_cutover: redis.Redis) -> None:
    plant_worker_keys(after_cutover, "legacy")
    with pytest.raises(CutoverRefused, match="rollback window to legacy is open"):
        retire(after_cutover, "legacy", keys.DEFAULT_INPUT_STREAM)
    with pytest.raises(CutoverRefused, match="cannot retire candidate: it is the primary"):
        retire(after_cutover, "candidate", keys.DEFAULT_INPUT_STREAM, force_reason="no")
    with pytest.raises(CutoverRefused, match="without ':'"):
        retire(after_cutover, "legacy:v2", keys.DEFAULT_INPUT_STREAM, force_reason="typo")
    assert worker_keys_left(after_cutover, "legacy"), "nothing was removed"
