"""No switch to a worker that does not serve; rollback after retire refused; the dry run's exit codes; the
lines a cutover and a rollback print as they go."""

from __future__ import annotations

import threading

import pytest
import redis

from harness.cutover.plan import (
    CutoverRefused,
    CutoverRequest,
    GateOutcome,
    RollbackRequest,
    dry_run,
    run_cutover,
    run_rollback,
)
from harness.cutover.retire import retire
from harness.cutover.serving import ServingBound
from harness.cutover.stoppers import NoStopper
from harness.transport import keys
from harness.transport.replies import server_time_ms
from harness.transport.roles import read_roles
from tests.unit import test_cutover_steps as steps
from tests.unit.test_cutover_steps import RecordingStopper, audit_steps, hold_lease, never_judged

NO_WAIT = ServingBound(timeout_s=0)


legacy_primary = steps.legacy_primary  # fixtures: legacy primary (epoch 1), both workers live
after_cutover = steps.after_cutover  # the candidate primary (epoch 2); legacy stopped, its lease gone


def rollback_refused(client: redis.Redis, request: RollbackRequest, match: str) -> None:
    """The rollback is refused with `match` in its line, and production stays where it was."""
    before = read_roles(client)
    with pytest.raises(CutoverRefused, match=match):
        run_rollback(client, NoStopper(), request)
    assert read_roles(client) == before, "production stays with its primary"


def test_a_rollback_to_a_worker_no_process_serves_is_refused_when_the_backend_cannot_start_it(
    after_cutover: redis.Redis,
) -> None:
    rollback_refused(after_cutover, RollbackRequest(catch_up_s=0), "legacy holds no lease: no live legacy process")
    assert audit_steps(after_cutover, "rollback") == [], "nothing was recorded"


def test_a_rollback_starts_its_target_through_the_backend_and_switches_once_it_serves(
    after_cutover: redis.Redis,
) -> None:
    stopper = RecordingStopper()
    lines: list[str] = []
    roles = run_rollback(after_cutover, stopper, RollbackRequest(catch_up_s=0), say=lines.append)
    assert roles.primary == "legacy" and stopper.started == ["legacy"]
    assert any(line.startswith("started legacy") for line in lines)
    assert any(line.startswith("legacy is serving: lease held by testhost 4242") for line in lines)


def test_a_rollback_to_a_worker_without_its_consumer_group_is_refused(after_cutover: redis.Redis) -> None:
    after_cutover.xgroup_destroy(keys.DEFAULT_INPUT_STREAM, "legacy")
    hold_lease(after_cutover, "legacy")
    rollback_refused(after_cutover, RollbackRequest(catch_up_s=0), "legacy has no consumer group on harness:signals")


def test_a_rollback_to_a_worker_too_far_behind_is_refused_after_waiting(after_cutover: redis.Redis) -> None:
    for _ in range(8):
        after_cutover.xadd(keys.DEFAULT_INPUT_STREAM, {keys.PAYLOAD_FIELD: b"x"})
    hold_lease(after_cutover, "legacy")
    request = RollbackRequest(catch_up_s=0, bound=ServingBound(max_lag=5, timeout_s=0))
    rollback_refused(after_cutover, request, "legacy is 8 entries behind .*--max-target-lag 5")
    assert audit_steps(after_cutover, "rollback")[-1] == "refused"

    assert run_rollback(after_cutover, NoStopper(), RollbackRequest(catch_up_s=0)).primary == "legacy", \
        "under the default bound it serves"


def test_a_rollback_after_retire_is_refused_even_forced(after_cutover: redis.Redis) -> None:
    after_cutover.hset(keys.ROLES_KEY, "rollback_until_ms", int(server_time_ms(after_cutover)) - 1)
    retire(after_cutover, "legacy", keys.DEFAULT_INPUT_STREAM)
    hold_lease(after_cutover, "legacy")  # even were something running under that name again
    rollback_refused(after_cutover, RollbackRequest(force_reason="incident", catch_up_s=0), "legacy was retired")


def test_a_cutover_to_a_target_that_does_not_serve_is_refused_before_the_gate(legacy_primary: redis.Redis) -> None:
    legacy_primary.delete(keys.lease_key("candidate"))
    with pytest.raises(CutoverRefused, match="cutover refused: candidate holds no lease"):
        run_cutover(legacy_primary, CutoverRequest(bound=NO_WAIT), NoStopper(), never_judged)
    assert read_roles(legacy_primary).primary == "legacy"
    assert audit_steps(legacy_primary, "cutover") == ["refused"]


@pytest.mark.parametrize(("outcome", "code"), [
    (GateOutcome("pass", "28 rules"), 0),
    (GateOutcome("fail", "28 rules, failed: ari"), 1),
    (GateOutcome("inconclusive", "120 pairs, 1,000 needed"), 2),
    (None, 1),
])
def test_a_dry_run_exits_as_the_gate_would(legacy_primary: redis.Redis, outcome: GateOutcome | None,
                                           code: int) -> None:
    lines: list[str] = []
    judge = (lambda: outcome) if outcome is not None else None
    assert dry_run(legacy_primary, CutoverRequest(), judge, lines.append) == code
    assert lines[-1].endswith("nothing was changed")
    assert read_roles(legacy_primary).primary == "legacy"


def test_a_dry_run_to_a_target_that_does_not_serve_is_refused_whatever_the_gate(legacy_primary: redis.Redis) -> None:
    legacy_primary.delete(keys.lease_key("candidate"))
    lines: list[str] = []
    assert dry_run(legacy_primary, CutoverRequest(), lambda: GateOutcome("pass", "28 rules"), lines.append) == 1
    assert "candidate is not serving: candidate holds no lease: no live candidate process runs" in lines


class DrainWatcher(RecordingStopper):
    """A stop that lasts until the cutover has told one countdown line from its ticker."""

    def __init__(self, ticked: threading.Event) -> None:
        super().__init__()
        self._ticked = ticked

    def stop(self, client: redis.Redis, worker: str, timeout_s: float) -> None:
        assert self._ticked.wait(10), "no countdown line while the drain ran"
        super().stop(client, worker, timeout_s)


def test_a_cutover_tells_each_step_as_it_happens(legacy_primary: redis.Redis) -> None:
    lines: list[str] = []
    ticked = threading.Event()

    def say(line: str) -> None:
        lines.append(line)
        if sum(text.startswith("draining legacy:") for text in lines) >= 2:
            ticked.set()

    run_cutover(legacy_primary, CutoverRequest(), DrainWatcher(ticked), lambda: GateOutcome("pass", "28 rules"),
                say=say)

    firsts = [line.split(":")[0] for line in lines]
    assert firsts == ["candidate is serving", "gate pass", "fence", "switch", "experiment candidate-vs-legacy-e2",
                      *["draining legacy"] * (len(lines) - 7), "drained", "rollback window"]
    assert "draining legacy: 0 entries left" in lines
    assert "epoch 1 -> 2" in lines[2]


def test_a_refused_gate_is_told_with_its_failing_rules(legacy_primary: redis.Redis) -> None:
    lines: list[str] = []
    with pytest.raises(CutoverRefused):
        run_cutover(legacy_primary, CutoverRequest(), RecordingStopper(),
                    lambda: GateOutcome("fail", "28 rules, failed: ari, p99_ratio"), say=lines.append)
    assert lines[-1] == "gate fail: 28 rules, failed: ari, p99_ratio"


def test_a_rollback_tells_each_step_as_it_happens(after_cutover: redis.Redis) -> None:
    lines: list[str] = []
    run_rollback(after_cutover, RecordingStopper(), RollbackRequest(catch_up_s=0), say=lines.append)
    firsts = [line.split(":")[0] for line in lines]
    assert firsts == ["started legacy", "legacy is serving", "fence", "switch", "experiment legacy-vs-candidate-e3",
                      "rollback done"]
