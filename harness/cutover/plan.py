"""Cutover, rollback and retire as resumable step sequences, each step recorded in the audit trail.

Progress lives in the `harness:cutover` hash, so re-running a command after a crash at any step
skips what is done and completes the rest: the commands are idempotent.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from harness.cutover import audit
from harness.cutover.roles import Roles, read_roles, switch_primary
from harness.cutover.status import group_lag
from harness.cutover.stoppers import WorkerStopper
from harness.runtime.control import DRAIN
from harness.transport import keys

CRASH_HOOK_ENV = "HARNESS_CUTOVER_CRASH_AFTER"  # fault injection for tests: exit right after this step
CUTOVER_STEPS = ("gate", "switch", "drain", "done")
ROLLBACK_STEPS = ("window", "start", "switch", "done")


class CutoverRefused(RuntimeError):
    pass


@dataclass(frozen=True)
class GateOutcome:
    verdict: str  # pass, fail or inconclusive
    summary: str


@dataclass(frozen=True)
class CutoverRequest:
    target: str = "candidate"
    retiring: str = "legacy"
    force_reason: str | None = None
    rollback_window_s: float = 3600.0
    drain_timeout_s: float = 60.0
    who: str | None = None
    input_stream: str = keys.DEFAULT_INPUT_STREAM


def describe_plan(client: redis.Redis, request: CutoverRequest, policy: str | None) -> list[str]:
    roles = read_roles(client)
    gate_line = (f"skip the gate (forced: {request.force_reason})" if request.force_reason
                 else f"judge the gate with {policy or 'NO POLICY: refused'}")
    return [
        f"current primary: {roles.primary or 'none'} (epoch {roles.epoch}, production watermark {roles.watermark})",
        f"1. {gate_line}",
        f"2. make {request.target} primary under epoch {roles.epoch + 1}; copy to production its results past "
        f"the watermark; {request.retiring} is fenced out at once",
        f"3. drain {request.retiring}: finish and ack its batch, then stop it",
        f"4. keep {request.retiring}'s consumer group and state for {request.rollback_window_s:.0f}s "
        f"(rollback window)",
    ]


def _progress(client: redis.Redis) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(keys.CUTOVER_KEY).items()}


def _mark(client: redis.Redis, action: str, step: str, **fields: str) -> None:
    client.hset(keys.CUTOVER_KEY, mapping={"action": action, "step_done": step, **fields})
    if os.environ.get(CRASH_HOOK_ENV) == step:
        os._exit(70)


def _done(progress: dict[str, str], action: str, target: str, steps: tuple[str, ...], step: str) -> bool:
    if progress.get("action") != action or progress.get("target") != target:
        return False
    done = progress.get("step_done", "")
    return done in steps and steps.index(done) >= steps.index(step)


def run_cutover(client: redis.Redis, request: CutoverRequest, stopper: WorkerStopper,
                judge_gate: Callable[[], GateOutcome]) -> Roles:
    progress = _progress(client)
    roles = read_roles(client)
    if roles.primary == request.target and not _resuming(progress, "cutover", request.target):
        return roles  # already done, nothing half-way: a no-op
    if not _resuming(progress, "cutover", request.target):
        client.delete(keys.CUTOVER_KEY)
        progress = {}
    who = request.who

    if not _done(progress, "cutover", request.target, CUTOVER_STEPS, "gate"):
        outcome = judge_gate() if request.force_reason is None else GateOutcome("forced", request.force_reason)
        if outcome.verdict not in ("pass", "forced"):
            audit.record(client, "cutover", "refused", roles.epoch, who=who, gate=outcome.verdict,
                         detail=outcome.summary)
            raise CutoverRefused(f"gate {outcome.verdict}: {outcome.summary}; cutover refused "
                                 f"(--force --reason TEXT overrides it, and is recorded)")
        audit.record(client, "cutover", "gate", roles.epoch, who=who, gate=outcome.verdict,
                     reason=request.force_reason, detail=outcome.summary)
        _mark(client, "cutover", "gate", target=request.target, retiring=request.retiring,
              gate=outcome.verdict, started_at=str(int(time.time())))

    if not _done(_progress(client), "cutover", request.target, CUTOVER_STEPS, "switch"):
        roles = switch_primary(client, request.target, request.rollback_window_s, request.input_stream)
        audit.record(client, "cutover", "switch", roles.epoch, who=who, primary=roles.primary,
                     watermark=roles.watermark)
        _mark(client, "cutover", "switch", epoch=str(roles.epoch))

    if not _done(_progress(client), "cutover", request.target, CUTOVER_STEPS, "drain"):
        client.set(keys.control_key(request.retiring), DRAIN)
        stopper.stop(client, request.retiring, request.drain_timeout_s)
        pending = _pending(client, request.retiring, request.input_stream)
        audit.record(client, "cutover", "drain", read_roles(client).epoch, who=who, worker=request.retiring,
                     pending=str(pending))
        _mark(client, "cutover", "drain")

    roles = read_roles(client)
    audit.record(client, "cutover", "done", roles.epoch, who=who, primary=roles.primary,
                 rollback_until_ms=str(roles.rollback_until_ms))
    _mark(client, "cutover", "done")
    return roles


def run_rollback(client: redis.Redis, stopper: WorkerStopper, to: str = "legacy", force_reason: str | None = None,
                 catch_up_s: float = 30.0, who: str | None = None,
                 input_stream: str = keys.DEFAULT_INPUT_STREAM) -> Roles:
    progress = _progress(client)
    roles = read_roles(client)
    if roles.primary == to and not _resuming(progress, "rollback", to):
        return roles
    if not _resuming(progress, "rollback", to):
        now_ms = int(time.time() * 1000)
        if roles.rollback_until_ms is not None and now_ms > roles.rollback_until_ms and force_reason is None:
            raise CutoverRefused("the rollback window has closed; --force --reason TEXT overrides it")
        if roles.previous != to and force_reason is None:
            raise CutoverRefused(f"{to} was not the previous primary ({roles.previous or 'none'})")
        audit.record(client, "rollback", "window", roles.epoch, who=who, reason=force_reason)
        client.delete(keys.CUTOVER_KEY)
        _mark(client, "rollback", "window", target=to)

    if not _done(_progress(client), "rollback", to, ROLLBACK_STEPS, "start"):
        client.delete(keys.control_key(to))
        stopper.start(client, to)
        lag = _wait_caught_up(client, to, catch_up_s, input_stream)
        audit.record(client, "rollback", "start", read_roles(client).epoch, who=who, worker=to,
                     lag=str(lag), detail=None if lag is not None and lag <= CAUGHT_UP else
                     f"not caught up after {catch_up_s:.0f}s: production results wait for it")
        _mark(client, "rollback", "start")

    if not _done(_progress(client), "rollback", to, ROLLBACK_STEPS, "switch"):
        roles = switch_primary(client, to, input_stream=input_stream)
        audit.record(client, "rollback", "switch", roles.epoch, who=who, primary=roles.primary,
                     watermark=roles.watermark)
        _mark(client, "rollback", "switch", epoch=str(roles.epoch))

    roles = read_roles(client)
    audit.record(client, "rollback", "done", roles.epoch, who=who, primary=roles.primary)
    _mark(client, "rollback", "done")
    return roles


def retire(client: redis.Redis, worker: str, input_stream: str, force_reason: str | None = None,
           who: str | None = None) -> int:
    """Delete a retired worker's consumer group and state, once its rollback window has closed."""
    roles = read_roles(client)
    if roles.primary == worker:
        raise CutoverRefused(f"{worker} is the primary; cut over to another worker first")
    now_ms = int(time.time() * 1000)
    if roles.rollback_until_ms is not None and now_ms < roles.rollback_until_ms and force_reason is None:
        left = (roles.rollback_until_ms - now_ms) / 1000
        raise CutoverRefused(f"the rollback window is open for {left:.0f}s more; --force --reason TEXT overrides")
    removed = 0
    with contextlib.suppress(redis.ResponseError):  # no such stream or group: already retired
        removed += int(client.xgroup_destroy(input_stream, worker))
    for pattern in (f"{keys.state_prefix(worker)}*", f"harness:seen:{worker}:*"):
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 500:
                removed += int(client.delete(*batch))
                batch.clear()
        if batch:
            removed += int(client.delete(*batch))
    removed += int(client.delete(keys.control_key(worker), keys.heartbeat_key(worker)))
    audit.record(client, "retire", "done", roles.epoch, who=who, worker=worker, reason=force_reason,
                 removed=str(removed))
    return removed


def _resuming(progress: dict[str, str], action: str, target: str) -> bool:
    return progress.get("action") == action and progress.get("target") == target \
        and progress.get("step_done") != "done"


def _pending(client: redis.Redis, group: str, stream: str) -> int:
    try:
        return int(client.xpending(stream, group)["pending"])
    except redis.ResponseError:
        return 0


CAUGHT_UP = 100  # entries of lag below which a restored worker is close enough to take over


def _wait_caught_up(client: redis.Redis, worker: str, timeout_s: float, stream: str) -> int | None:
    """Wait for the worker's lag to fall to CAUGHT_UP; returns the last lag seen (None: no group)."""
    deadline = time.monotonic() + timeout_s
    while True:
        lag = group_lag(client, stream, worker, limit=CAUGHT_UP + 1)
        if (lag is not None and lag <= CAUGHT_UP) or time.monotonic() >= deadline:
            return lag
        time.sleep(0.2)
