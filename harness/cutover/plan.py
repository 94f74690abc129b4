"""Cutover, rollback and retire as resumable step sequences, each step recorded in the audit trail.

Progress lives in the `harness:cutover` hash, so re-running a command after a crash at any step
skips what is done and completes the rest: the commands are idempotent.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from harness.cutover import audit
from harness.cutover.roles import switch_primary
from harness.cutover.stoppers import WorkerStopper
from harness.errors import HarnessError
from harness.transport import keys
from harness.transport.replies import server_time_ms, text
from harness.transport.roles import Roles, clear_drain, group_lag, read_roles, request_drain

CUTOVER_STEPS = ("gate", "switch", "drain", "done")
ROLLBACK_STEPS = ("window", "start", "switch", "done")
RETIRE_STEPS = ("group", "state", "done")
CAUGHT_UP = 100  # entries of lag below which a restored worker is close enough to take over
DELETE_BATCH = 500  # keys per DEL while retiring a worker's state

StepHook = Callable[[str], None]  # called with each step's name once it is recorded


def no_hook(step: str) -> None:
    """The default `after_step`: tests pass one that crashes after a given step."""


class CutoverRefused(RuntimeError, HarnessError):
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


class _Progress:
    """One action's progress in the cutover hash: which steps are done, and recording the next one."""

    def __init__(self, client: redis.Redis, action: str, target: str, steps: tuple[str, ...],
                 after_step: StepHook) -> None:
        self._client = client
        self._action = action
        self._target = target
        self._steps = steps
        self._after_step = after_step

    def _fields(self) -> dict[str, str]:
        return {text(k): text(v) for k, v in self._client.hgetall(keys.CUTOVER_KEY).items()}

    def resuming(self) -> bool:
        """This action, for this target, was started and not finished: a re-run after a crash."""
        fields = self._fields()
        return (fields.get("action") == self._action and fields.get("target") == self._target
                and fields.get("step_done") != "done")

    def done(self, step: str) -> bool:
        fields = self._fields()
        if fields.get("action") != self._action or fields.get("target") != self._target:
            return False
        last = fields.get("step_done", "")
        return last in self._steps and self._steps.index(last) >= self._steps.index(step)

    def start(self) -> None:
        self._client.delete(keys.CUTOVER_KEY)

    def mark(self, step: str, **fields: str) -> None:
        self._client.hset(keys.CUTOVER_KEY, mapping={"action": self._action, "target": self._target,
                                                      "step_done": step, **fields})
        self._after_step(step)


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


def run_cutover(client: redis.Redis, request: CutoverRequest, stopper: WorkerStopper,
                judge_gate: Callable[[], GateOutcome], after_step: StepHook = no_hook) -> Roles:
    progress = _Progress(client, "cutover", request.target, CUTOVER_STEPS, after_step)
    roles = read_roles(client)
    resuming = progress.resuming()
    if roles.primary == request.target and not resuming:
        return roles  # already done, nothing half-way: a no-op
    if not resuming:
        progress.start()
    who = request.who

    if not progress.done("gate"):
        outcome = judge_gate() if request.force_reason is None else GateOutcome("forced", request.force_reason)
        if outcome.verdict not in ("pass", "forced"):
            audit.record(client, "cutover", "refused", roles.epoch, who=who, gate=outcome.verdict,
                         detail=outcome.summary)
            raise CutoverRefused(f"gate {outcome.verdict}: {outcome.summary}; cutover refused "
                                 f"(--force --reason TEXT overrides it, and is recorded)")
        audit.record(client, "cutover", "gate", roles.epoch, who=who, gate=outcome.verdict,
                     reason=request.force_reason, detail=outcome.summary)
        progress.mark("gate", retiring=request.retiring, gate=outcome.verdict, started_at=str(int(time.time())))

    if not progress.done("switch"):
        roles = switch_primary(client, request.target, request.rollback_window_s, request.input_stream)
        audit.record(client, "cutover", "switch", roles.epoch, who=who, primary=roles.primary,
                     watermark=roles.watermark)
        progress.mark("switch", epoch=str(roles.epoch))

    if not progress.done("drain"):
        request_drain(client, request.retiring)
        stopper.stop(client, request.retiring, request.drain_timeout_s)
        pending = _pending(client, request.retiring, request.input_stream)
        audit.record(client, "cutover", "drain", read_roles(client).epoch, who=who, worker=request.retiring,
                     pending=str(pending))
        progress.mark("drain")

    roles = read_roles(client)
    audit.record(client, "cutover", "done", roles.epoch, who=who, primary=roles.primary,
                 rollback_until_ms=str(roles.rollback_until_ms))
    progress.mark("done")
    return roles


def run_rollback(client: redis.Redis, stopper: WorkerStopper, to: str = "legacy", force_reason: str | None = None,
                 catch_up_s: float = 30.0, who: str | None = None,
                 input_stream: str = keys.DEFAULT_INPUT_STREAM, after_step: StepHook = no_hook) -> Roles:
    progress = _Progress(client, "rollback", to, ROLLBACK_STEPS, after_step)
    roles = read_roles(client)
    resuming = progress.resuming()
    if roles.primary == to and not resuming:
        return roles
    if not resuming:
        left_ms = _window_left_ms(client, roles)
        if left_ms is not None and left_ms < 0 and force_reason is None:
            raise CutoverRefused("the rollback window has closed; --force --reason TEXT overrides it")
        if roles.previous != to and force_reason is None:
            raise CutoverRefused(f"{to} was not the previous primary ({roles.previous or 'none'})")
        audit.record(client, "rollback", "window", roles.epoch, who=who, reason=force_reason)
        progress.start()
        progress.mark("window")

    if not progress.done("start"):
        clear_drain(client, to)
        stopper.start(client, to)
        lag = _wait_caught_up(client, to, catch_up_s, input_stream)
        audit.record(client, "rollback", "start", read_roles(client).epoch, who=who, worker=to,
                     lag=str(lag), detail=None if lag is not None and lag <= CAUGHT_UP else
                     f"not caught up after {catch_up_s:.0f}s: production results wait for it")
        progress.mark("start")

    if not progress.done("switch"):
        roles = switch_primary(client, to, input_stream=input_stream)
        audit.record(client, "rollback", "switch", roles.epoch, who=who, primary=roles.primary,
                     watermark=roles.watermark)
        progress.mark("switch", epoch=str(roles.epoch))

    roles = read_roles(client)
    audit.record(client, "rollback", "done", roles.epoch, who=who, primary=roles.primary)
    progress.mark("done")
    return roles


def retire(client: redis.Redis, worker: str, input_stream: str, force_reason: str | None = None,
           who: str | None = None, after_step: StepHook = no_hook) -> int:
    """Delete a retired worker's consumer group and the keys it owns, once its rollback window has closed.

    Each step is idempotent, so a re-run after a crash completes it; the count is of this run.
    """
    try:
        owned = keys.worker_state_keys(worker)
    except ValueError as exc:
        raise CutoverRefused(str(exc)) from None
    roles = read_roles(client)
    if roles.primary == worker:
        raise CutoverRefused(f"{worker} is the primary; cut over to another worker first")
    left_ms = _window_left_ms(client, roles)
    if left_ms is not None and left_ms > 0 and force_reason is None:
        raise CutoverRefused(f"the rollback window is open for {left_ms / 1000:.0f}s more; "
                             f"--force --reason TEXT overrides")
    removed = 0
    with contextlib.suppress(redis.ResponseError):  # no such stream or group: already retired
        removed += int(client.xgroup_destroy(input_stream, worker))
    after_step("group")
    removed += _delete_keys(client, owned)
    after_step("state")
    audit.record(client, "retire", "done", roles.epoch, who=who, worker=worker, reason=force_reason,
                 removed=str(removed))
    after_step("done")
    return removed


def _delete_keys(client: redis.Redis, owned: keys.WorkerKeys) -> int:
    removed = int(client.delete(*owned.exact))
    for pattern in owned.patterns:
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= DELETE_BATCH:
                removed += int(client.delete(*batch))
                batch.clear()
        if batch:
            removed += int(client.delete(*batch))
    return removed


def _window_left_ms(client: redis.Redis, roles: Roles) -> float | None:
    """Milliseconds left in the rollback window, on the Redis clock that set it (None: no window)."""
    if roles.rollback_until_ms is None:
        return None
    return roles.rollback_until_ms - server_time_ms(client)


def _pending(client: redis.Redis, group: str, stream: str) -> int:
    try:
        return int(client.xpending(stream, group)["pending"])
    except redis.ResponseError:
        return 0


def _wait_caught_up(client: redis.Redis, worker: str, timeout_s: float, stream: str) -> int | None:
    """Wait for the worker's lag to fall to CAUGHT_UP; returns the last lag seen (None: no group)."""
    deadline = time.monotonic() + timeout_s
    while True:
        lag = group_lag(client, stream, worker, limit=CAUGHT_UP + 1)
        if (lag is not None and lag <= CAUGHT_UP) or time.monotonic() >= deadline:
            return lag
        time.sleep(0.2)
