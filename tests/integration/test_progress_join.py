"""Missing means missing, with real processes: an outage is a stall with its lag, never lost signals."""

from __future__ import annotations

from pathlib import Path

import redis
from click.testing import CliRunner

from harness.cli.main import cli
from harness.comparator.service import live_report
from tests.support.processes import result_count, start_harness, start_worker, stop, wait_for

SIGNALS = 1500


def report(client: redis.Redis) -> dict[str, object]:
    found = live_report(client)
    assert found is not None
    return found


def side(client: redis.Redis, name: str) -> dict[str, object]:
    if live_report(client) is None:
        return {}  # no checkpoint yet
    progress = report(client)["progress"]
    assert isinstance(progress, dict)
    figures = progress["sides"][name]
    assert isinstance(figures, dict)
    return figures


def test_a_stopped_worker_is_stalled_with_its_lag_and_after_catching_up_nothing_is_missing(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    produce = start_harness(["produce", "--redis-url", redis_url, "--count", str(SIGNALS), "--seed", "3"])
    assert produce.wait(timeout=120) == 0
    candidate = start_worker("candidate", redis_url, log=tmp_path / "candidate.log")
    comparator = start_harness(["comparator", "--redis-url", redis_url, "--checkpoint", "0.2", "--stall-after", "1",
                                "--timeout", "0.5"], log=tmp_path / "comparator.log")
    legacy = start_worker("legacy", redis_url, "--init-primary", "--batch-size", "50", log=tmp_path / "legacy.log")
    policy = tmp_path / "policy.toml"
    policy.write_text("[gate]\nmin_pairs = 100\n\n[rules.progress]\n")
    try:
        # Legacy goes away mid-stream while the candidate works through the whole input.
        wait_for(lambda: result_count(redis_client, "legacy") >= 300, 120, "legacy to start", [legacy])
        assert stop(legacy) == 0
        wait_for(lambda: result_count(redis_client, "candidate") == SIGNALS, 120, "the candidate", [candidate])
        wait_for(lambda: bool(side(redis_client, "legacy").get("stalled")), 60, "legacy reported stalled",
                 [comparator])
        counts = report(redis_client)["counts"]
        assert isinstance(counts, dict) and counts["missing_legacy"] == 0 and counts["matched"] >= 300
        figures = side(redis_client, "legacy")
        assert figures["awaiting"] == SIGNALS - counts["matched"]
        assert isinstance(figures["lag_entries"], int) and figures["lag_entries"] > 0
        assert isinstance(figures["lag_s"], float)
        gate = CliRunner().invoke(cli, ["gate", "--redis-url", redis_url, "--policy", str(policy)])
        assert gate.exit_code == 2, gate.output  # inconclusive, and it says why
        assert "legacy stalled" in gate.output

        legacy = start_worker("legacy", redis_url, log=tmp_path / "legacy-again.log")
        wait_for(lambda: side(redis_client, "legacy").get("awaiting") == 0, 180,
                 "legacy to catch up", [legacy, comparator])
        final = report(redis_client)["counts"]
        assert isinstance(final, dict)
        assert (final["missing_legacy"], final["missing_candidate"], final["late"]) == (0, 0, 0)
        wait_for(lambda: not side(redis_client, "legacy")["stalled"], 30, "legacy no longer stalled", [comparator])
    finally:
        for process in (candidate, comparator, legacy):
            if process is not None:
                stop(process)
