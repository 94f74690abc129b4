"""Cutover and rollback as resumable step sequences, each step recorded in the audit trail and told as it happens.

Progress lives in the `harness:cutover` hash, so re-running a command after a crash at any step
skips what is done and completes the rest: the commands are idempotent. No switch happens unless
its target is shown to serve (serving.py): production is never left without results.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from harness import audit, experiments
from harness.cutover.progress import Say, Ticker, silent, when
from harness.cutover.roles import switch_primary
from harness.cutover.serving import ServingBound, bring_up, probe
from harness.cutover.stoppers import WorkerStopper
from harness.errors import HarnessError
from harness.transport import keys, presence
from harness.transport.replies import server_time_ms, text
from harness.transport.roles import Roles, clear_drain, read_roles, request_drain

CUTOVER_STEPS = ("gate", "switch", "drain", "done")
ROLLBACK_STEPS = ("window", "start", "switch", "done")
CAUGHT_UP = 100  # entries of lag below which a restored worker is close enough to take over

StepHook = Callable[[str], None]  # called with each step's name once it is recorded


def no_hook(step: str) -> None:
    """The default `after_step`: tests pass one that crashes after a given step."""


class CutoverRefused(RuntimeError, HarnessError):
    pass


@dataclass(frozen=True)
class GateOutcome:
    verdict: str  # pass, fail, inconclusive, forced, or none (no policy given)
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
    bound: ServingBound = field(default_factory=ServingBound)
    partitions: int = 1  # with P > 1 every partition switches under one epoch (docs/partitions.md)


@dataclass(frozen=True)
class RollbackRequest:
    to: str = "legacy"
    force_reason: str | None = None
    catch_up_s: float = 30.0
    who: str | None = None
    input_stream: str = keys.DEFAULT_INPUT_STREAM
    bound: ServingBound = field(default_factory=ServingBound)
    partitions: int = 1  # with P > 1 every partition switches under one epoch (docs/partitions.md)


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


def dry_run(client: redis.Redis, request: CutoverRequest, judge_gate: Callable[[], GateOutcome] | None,
            say: Say) -> int:
    """Tell the plan, whether the target serves and what the gate says; change nothing.

    Returns the exit code a real run's gate would give: 0 pass, 1 refused, 2 inconclusive.
    """
    serving = probe(client, request.target, request.input_stream, request.bound.max_lag, request.partitions)
    if request.force_reason is not None:
        outcome = GateOutcome("forced", request.force_reason)
    elif judge_gate is None:
        outcome = GateOutcome("none", "no --policy given (or --force --reason TEXT)")
    else:
        outcome = judge_gate()
    say(serving.describe())
    say(f"gate {outcome.verdict}: {outcome.summary}")
    code = 0 if outcome.verdict in ("pass", "forced") else 2 if outcome.verdict == "inconclusive" else 1
    if serving.missing is not None:
        code = 1
    verdict = {0: "the cutover would go ahead", 1: "the cutover would be refused",
               2: "the gate is inconclusive: the cutover would be refused until it can judge"}[code]
    say(f"dry run: {verdict}; nothing was changed")
    return code


def _require_serving(client: redis.Redis, action: str, worker: str, stream: str, stopper: WorkerStopper,
                     bound: ServingBound, who: str | None, say: Say) -> None:
    problem = bring_up(client, worker, stream, stopper, bound, say)
    if problem is not None:
        audit.record(client, action, "refused", read_roles(client).epoch, who=who, worker=worker, detail=problem)
        raise CutoverRefused(f"{action} refused: {problem}")


def _switch(client: redis.Redis, action: str, target: str, window_s: float | None, stream: str,
            who: str | None, say: Say, partitions: int) -> Roles:
    before = read_roles(client)
    roles = switch_primary(client, target, window_s, stream, partitions)
    say(f"fence: epoch {before.epoch} -> {roles.epoch}; {before.primary or 'no one'} can no longer write "
        f"production")
    if partitions > 1:
        say(f"switch: {target} is primary on all {partitions} partitions (each moved its own watermark)")
    else:
        say(f"switch: {target} is primary; production watermark {before.watermark} -> {roles.watermark}")
    audit.record(client, action, "switch", roles.epoch, who=who, primary=roles.primary, watermark=roles.watermark)
    if partitions == 1:
        _next_experiment(client, action, roles, stream, say)
    else:  # named experiments read the unpartitioned streams (docs/partitions.md): the comparison stays as it is
        say("experiments: not switched on a partitioned input; the comparator shards keep the current comparison")
    return roles


def _next_experiment(client: redis.Redis, action: str, roles: Roles, stream: str, say: Say) -> None:
    """The comparison follows the switch: the new primary is the control, the worker it replaced the shadow."""
    if not roles.primary or not roles.previous or roles.previous == roles.primary:
        return
    started = experiments.on_switch(client, roles.primary, roles.previous, roles.epoch, action, stream)
    say(f"experiment {started.name}: {started.control} is the control, {started.candidate} the candidate")


def run_cutover(client: redis.Redis, request: CutoverRequest, stopper: WorkerStopper,
                judge_gate: Callable[[], GateOutcome], after_step: StepHook = no_hook, say: Say = silent) -> Roles:
    progress = _Progress(client, "cutover", request.target, CUTOVER_STEPS, after_step)
    roles = read_roles(client)
    resuming = progress.resuming()
    if roles.primary == request.target and not resuming:
        say(f"{request.target} is primary already (epoch {roles.epoch}): nothing to do")
        return roles  # already done, nothing half-way: a no-op
    if not resuming:
        progress.start()
    who = request.who

    if not progress.done("switch"):
        _require_serving(client, "cutover", request.target, request.input_stream, stopper, request.bound, who, say)
    if not progress.done("gate"):
        _judge(client, request, judge_gate, roles, say)
        progress.mark("gate", retiring=request.retiring, started_at=str(int(time.time())))

    if not progress.done("switch"):
        roles = _switch(client, "cutover", request.target, request.rollback_window_s, request.input_stream, who, say,
                        request.partitions)
        progress.mark("switch", epoch=str(roles.epoch))

    if not progress.done("drain"):
        _drain(client, request, stopper, say)
        progress.mark("drain")

    roles = read_roles(client)
    audit.record(client, "cutover", "done", roles.epoch, who=who, primary=roles.primary,
                 rollback_until_ms=str(roles.rollback_until_ms))
    say(f"rollback window: {request.retiring}'s group and state are kept until {when(roles.rollback_until_ms)} "
        f"(`harness rollback` until then; `harness retire {request.retiring}` after)")
    progress.mark("done")
    return roles


def _judge(client: redis.Redis, request: CutoverRequest, judge_gate: Callable[[], GateOutcome], roles: Roles,
           say: Say) -> None:
    forced = request.force_reason is not None
    outcome = GateOutcome("forced", request.force_reason or "") if forced else judge_gate()
    say(f"gate skipped: forced ({outcome.summary})" if forced else f"gate {outcome.verdict}: {outcome.summary}")
    if outcome.verdict not in ("pass", "forced"):
        audit.record(client, "cutover", "refused", roles.epoch, who=request.who, gate=outcome.verdict,
                     detail=outcome.summary)
        raise CutoverRefused(f"gate {outcome.verdict}: {outcome.summary}; cutover refused "
                             f"(--force --reason TEXT overrides it, and is recorded)")
    audit.record(client, "cutover", "gate", roles.epoch, who=request.who, gate=outcome.verdict,
                 reason=request.force_reason, detail=outcome.summary)


def _drain(client: redis.Redis, request: CutoverRequest, stopper: WorkerStopper, say: Say) -> None:
    retiring = request.retiring
    stopper.record_launch(client, retiring)  # while it still runs: what a rollback's restart needs
    request_drain(client, retiring)
    def left() -> int:
        return presence.pending(client, request.input_stream, retiring, request.partitions)

    say(f"draining {retiring}: {left():,} entries left")
    with Ticker(lambda: say(f"draining {retiring}: {left():,} entries left")):
        stopper.stop(client, retiring, request.drain_timeout_s)
    pending = left()
    say(f"drained: {retiring} stopped with {pending:,} entries left unacked")
    audit.record(client, "cutover", "drain", read_roles(client).epoch, who=request.who, worker=retiring,
                 pending=str(pending))


def run_rollback(client: redis.Redis, stopper: WorkerStopper, request: RollbackRequest | None = None,
                 after_step: StepHook = no_hook, say: Say = silent) -> Roles:
    request = request or RollbackRequest()
    to, who, stream = request.to, request.who, request.input_stream
    progress = _Progress(client, "rollback", to, ROLLBACK_STEPS, after_step)
    roles = read_roles(client)
    resuming = progress.resuming()
    if roles.primary == to and not resuming:
        say(f"{to} is primary already (epoch {roles.epoch}): nothing to do")
        return roles
    if not resuming:
        _check_rollback(client, roles, request, stopper)
        audit.record(client, "rollback", "window", roles.epoch, who=who, reason=request.force_reason)
        progress.start()
        progress.mark("window")

    if not progress.done("start"):
        clear_drain(client, to)  # a drained process idling under its lease resumes at once
        _require_serving(client, "rollback", to, stream, stopper, request.bound, who, say)
        lag = _wait_caught_up(client, to, request.catch_up_s, stream, say, request.partitions)
        audit.record(client, "rollback", "start", read_roles(client).epoch, who=who, worker=to,
                     lag=str(lag), detail=None if lag is not None and lag <= CAUGHT_UP else
                     f"not caught up after {request.catch_up_s:.0f}s: production results wait for it")
        progress.mark("start")

    if not progress.done("switch"):
        if probe(client, to, stream, request.bound.max_lag, request.partitions).missing is not None:
            _require_serving(client, "rollback", to, stream, stopper, request.bound, who, say)  # it died meanwhile
        roles = _switch(client, "rollback", to, None, stream, who, say, request.partitions)
        progress.mark("switch", epoch=str(roles.epoch))

    roles = read_roles(client)
    audit.record(client, "rollback", "done", roles.epoch, who=who, primary=roles.primary)
    say(f"rollback done: {to} is primary again under epoch {roles.epoch}")
    progress.mark("done")
    return roles


def _check_rollback(client: redis.Redis, roles: Roles, request: RollbackRequest, stopper: WorkerStopper) -> None:
    """Refusals before anything is recorded: a retired target, a closed window, a stranger, nothing to start."""
    to, forced = request.to, request.force_reason is not None
    retired_ms = client.hget(keys.RETIRED_KEY, to)
    if retired_ms is not None and int(retired_ms) > (roles.switched_at_ms or 0):
        raise CutoverRefused(f"{to} was retired at {when(int(retired_ms))}: its consumer group and state are "
                             f"gone, so there is nothing to roll back to (run it as a new shadow, then cut over)")
    left_ms = window_left_ms(client, roles)
    if left_ms is not None and left_ms < 0 and not forced:
        raise CutoverRefused("the rollback window has closed; --force --reason TEXT overrides it")
    if roles.previous != to and not forced:
        raise CutoverRefused(f"{to} was not the previous primary ({roles.previous or 'none'})")
    state = probe(client, to, request.input_stream, request.bound.max_lag, request.partitions)
    if state.lag is None:
        raise CutoverRefused(f"rollback refused: {state.missing}")
    if state.holder is None and not stopper.can_start(client, to):
        raise CutoverRefused(f"rollback refused: {state.missing} ({stopper.how_to_start(to)}); switching to it "
                             f"would leave production unserved")


def window_left_ms(client: redis.Redis, roles: Roles) -> float | None:
    """Milliseconds left in the rollback window, on the Redis clock that set it (None: no window)."""
    if roles.rollback_until_ms is None:
        return None
    return roles.rollback_until_ms - server_time_ms(client)


def _wait_caught_up(client: redis.Redis, worker: str, timeout_s: float, stream: str, say: Say,
                    partitions: int) -> int | None:
    """Wait for the worker's lag to fall to CAUGHT_UP, telling it each second; returns the last lag seen."""
    deadline = time.monotonic() + timeout_s
    next_line = time.monotonic()
    while True:
        lag = presence.input_lag(client, stream, worker, partitions, limit=CAUGHT_UP + 1)
        if (lag is not None and lag <= CAUGHT_UP) or time.monotonic() >= deadline:
            return lag
        if time.monotonic() >= next_line:
            say(f"catching up: {worker} is {lag if lag is not None else '?'} entries behind")
            next_line += 1.0
        time.sleep(0.2)
