"""What retire answers (the real reason for a refusal), and what `status` shows before and after it."""

from __future__ import annotations

import json
import os

import pytest
import redis
from click.testing import CliRunner, Result

from harness.cli.main import cli
from harness.cutover.plan import CutoverRefused, run_cutover
from harness.cutover.retire import retire
from harness.cutover.status import status
from harness.transport import keys
from harness.transport.replies import server_time_ms
from tests.unit import test_cutover_steps as steps
from tests.unit.test_cutover_steps import FORCED, RecordingStopper, never_judged

legacy_primary = steps.legacy_primary  # fixtures: legacy primary (epoch 1), both workers live
after_cutover = steps.after_cutover  # the candidate primary (epoch 2); legacy stopped, its lease gone


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def close_window(client: redis.Redis) -> None:
    client.hset(keys.ROLES_KEY, "rollback_until_ms", int(server_time_ms(client)) - 1)


@pytest.mark.parametrize(("worker", "reason"), [
    ("nosuch", "unknown worker 'nosuch'"),
    ("candidate", "cannot retire candidate: it is the primary"),
])
def test_retire_names_the_real_reason_while_the_window_is_open(after_cutover: redis.Redis, worker: str,
                                                               reason: str) -> None:
    with pytest.raises(CutoverRefused, match=reason) as refused:
        retire(after_cutover, worker, keys.DEFAULT_INPUT_STREAM)
    assert "rollback window" not in str(refused.value)


def test_retire_refuses_a_worker_a_live_process_still_runs(after_cutover: redis.Redis) -> None:
    close_window(after_cutover)
    after_cutover.set(keys.lease_key("legacy"), "7 otherhost 99")
    with pytest.raises(CutoverRefused, match=r"a live process holds its lease \(otherhost 99\); stop it first"):
        retire(after_cutover, "legacy", keys.DEFAULT_INPUT_STREAM, force_reason="cleanup")


def test_retire_of_a_shadow_needs_no_window_and_a_second_retire_finds_nothing(after_cutover: redis.Redis) -> None:
    after_cutover.xgroup_create(keys.DEFAULT_INPUT_STREAM, "candidate-v2", id="$")
    assert retire(after_cutover, "candidate-v2", keys.DEFAULT_INPUT_STREAM) == 1, "its group"
    assert retire(after_cutover, "candidate-v2", keys.DEFAULT_INPUT_STREAM) == 0, "already retired: idempotent"


def test_the_retire_force_help_does_not_mention_a_gate() -> None:
    result = run("retire", "--help")
    assert result.exit_code == 0 and "--force" in result.output
    assert "gate" not in result.output.lower()


def test_after_a_retire_status_shows_no_rollback_window(after_cutover: redis.Redis) -> None:
    assert status(after_cutover)["rollback"]["open"] is True
    close_window(after_cutover)
    assert status(after_cutover)["rollback"]["line"].startswith("closed since")

    retire(after_cutover, "legacy", keys.DEFAULT_INPUT_STREAM)

    shown = status(after_cutover)
    assert shown["rollback"] == {"to": "legacy", "open": False, "until_ms": None, "line": "none (legacy retired)"}
    assert shown["roles"]["rollback_until_ms"] is None


def test_status_shows_the_comparator_and_each_workers_lease_holder_and_log(after_cutover: redis.Redis,
                                                                          redis_url: str) -> None:
    after_cutover.hset(keys.COMPARATOR_SUMMARY_KEY, mapping={
        "counts": json.dumps({"matched": 9200, "missing_legacy": 0, "missing_candidate": 3, "produced": 9203}),
        "updated_ms": "1764000000000"})
    after_cutover.hset(keys.launch_key("legacy"), "log", "/var/log/harness/legacy-1.log")

    shown = json.loads(run("status", "--redis-url", redis_url, "--json").output)
    assert shown["comparator"]["matched"] == 9200
    assert shown["comparator"]["missing"] == {"missing_legacy": 0, "missing_candidate": 3}
    assert shown["groups"]["candidate"]["lease_holder"] == "testhost 4242"
    assert shown["groups"]["legacy"]["lease_holder"] is None
    assert shown["groups"]["legacy"]["log"] == "/var/log/harness/legacy-1.log"

    table = run("status", "--redis-url", redis_url)
    assert table.exit_code == 0, table.output
    assert "matched 9,200" in table.output and "missing_candidate 3" in table.output
    assert "2025-11-24 16:00:00 UTC" in table.output
    assert "testhost 4242" in table.output


def test_status_points_to_the_log_file_of_a_live_local_worker(legacy_primary: redis.Redis) -> None:
    # This test process stands in for the worker: its stderr is what `status` resolves.
    legacy_primary.set(keys.lease_key("candidate"), f"3 {os.uname().nodename} {os.getpid()}")
    shown = status(legacy_primary)["groups"]["candidate"]
    target = os.readlink(f"/proc/{os.getpid()}/fd/2")
    assert shown["log"] == (target if target.startswith("/") and not target.startswith("/dev/") else None)


def test_a_dry_run_without_a_policy_exits_1_and_says_why(legacy_primary: redis.Redis, redis_url: str) -> None:
    result = run("cutover", "--redis-url", redis_url, "--dry-run")
    assert result.exit_code == 1, result.output
    assert "gate none: no --policy given" in result.output
    assert "dry run: the cutover would be refused; nothing was changed" in result.output


def test_a_forced_dry_run_to_a_serving_target_exits_0(legacy_primary: redis.Redis, redis_url: str) -> None:
    result = run("cutover", "--redis-url", redis_url, "--dry-run", "--force",
                 "--reason", "test")
    assert result.exit_code == 0, result.output
    assert "candidate is serving" in result.output


def test_a_cutover_already_done_says_so(after_cutover: redis.Redis) -> None:
    lines: list[str] = []
    run_cutover(after_cutover, FORCED, RecordingStopper(), never_judged, say=lines.append)
    assert lines == ["candidate is primary already (epoch 2): nothing to do"]
