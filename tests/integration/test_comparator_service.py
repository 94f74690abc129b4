"""The comparator as a real process on a real redis-server: joins, timeouts, duplicates, restarts."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pandas as pd
import redis
from click.testing import CliRunner

from harness.cli.main import cli
from harness.comparator.service import STATE_KEY, ComparatorSettings, default_feeds, load_state
from harness.contracts import SignalClustered, encode_clustered
from harness.transport import keys
from tests.support.processes import start_harness, stop, wait_for


def result(worker: str, signal_id: str, label: str, outcome: str = "clustered", redelivered: bool = False,
           error_type: str | None = None, entry: str | None = None) -> bytes:
    return encode_clustered(SignalClustered(
        signal_id=signal_id, worker=worker, model_version="test", outcome=outcome,  # type: ignore[arg-type]
        label=label if outcome == "clustered" else None, is_new_cluster=False, entered_at_ms=1000.0,
        published_at_ms=1010.0 if worker == "legacy" else 1020.0, processing_ms=1.0, device_id="dev-1",
        error_type=error_type, error_message=error_type, redelivered=redelivered, input_entry_id=entry,
    ))


def write(client: redis.Redis, worker: str, payloads: list[bytes]) -> None:
    pipe = client.pipeline(transaction=False)
    for payload in payloads:
        pipe.xadd(keys.results_stream(worker), {keys.PAYLOAD_FIELD: payload})
    pipe.execute()


def report(client: redis.Redis) -> dict[str, object]:
    return load_state(client, ComparatorSettings(feeds=default_feeds())).report()


def counts(client: redis.Redis) -> dict[str, int]:
    return report(client)["counts"]  # type: ignore[return-value]


def comparator(redis_url: str, tmp_path: Path, *extra: str):  # type: ignore[no-untyped-def]
    return start_harness(["comparator", "--redis-url", redis_url, "--checkpoint", "0.1", *extra],
                         log=tmp_path / "comparator.log")


def test_restarted_comparator_counts_nothing_twice(redis_url: str, redis_client: redis.Redis,
                                                   tmp_path: Path) -> None:
    n = 30_000
    write(redis_client, "legacy", [result("legacy", f"s{i}", f"L{i % 7}") for i in range(n)])
    # Half the candidate's results for now: the first comparator cannot finish before it is killed.
    write(redis_client, "candidate", [result("candidate", f"s{i}", f"C{i % 7}") for i in range(n // 2)])
    first = comparator(redis_url, tmp_path)
    wait_for(lambda: redis_client.exists(STATE_KEY) and counts(redis_client)["matched"] > 0, 60,
             "a first checkpoint", [first])
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert 0 < counts(redis_client)["matched"] <= n // 2
    write(redis_client, "candidate", [result("candidate", f"s{i}", f"C{i % 7}") for i in range(n // 2, n)])
    second = comparator(redis_url, tmp_path)
    try:
        wait_for(lambda: counts(redis_client)["matched"] >= n, 60, "all pairs", [second])
    finally:
        stop(second)
    final = counts(redis_client)
    assert final["matched"] == n
    assert final["duplicates"] == 0
    assert final["legacy_outputs"] == n and final["candidate_outputs"] == n
    assert report(redis_client)["agreement"]["ari"] == 1.0  # type: ignore[index]


def test_partner_that_never_comes_counts_as_missing(redis_url: str, redis_client: redis.Redis,
                                                    tmp_path: Path) -> None:
    # Input entries 1-0..10-0 are s0..s9, 11-0 only-candidate, 12-0 s10. A side misses a signal once
    # its own results have moved past that signal's entry; what lies ahead of it is awaiting.
    write(redis_client, "legacy", [result("legacy", f"s{i}", "a", entry=f"{i + 1}-0") for i in range(10)])
    write(redis_client, "candidate", [result("candidate", f"s{i}", "b", entry=f"{i + 1}-0") for i in range(7)])
    write(redis_client, "candidate", [result("candidate", "only-candidate", "b", entry="11-0")])
    write(redis_client, "legacy", [result("legacy", "s10", "a", entry="12-0")])
    process = comparator(redis_url, tmp_path, "--timeout", "0.1")
    try:
        wait_for(lambda: redis_client.exists(STATE_KEY)
                 and counts(redis_client)["missing_legacy"] == 1, 30, "the join to settle", [process])
    finally:
        stop(process)
    final = counts(redis_client)
    assert (final["matched"], final["missing_candidate"], final["missing_legacy"], final["pending"]) == (7, 3, 1, 1)
    assert report(redis_client)["progress"]["sides"]["candidate"]["awaiting"] == 1  # s10: not missing, awaiting


def test_redelivered_duplicates_are_counted_once(redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    write(redis_client, "legacy", [result("legacy", f"s{i}", "a") for i in range(5)])
    write(redis_client, "legacy", [result("legacy", "s1", "a", redelivered=True),
                                   result("legacy", "s2", "a", redelivered=True)])
    write(redis_client, "candidate", [result("candidate", f"s{i}", "b") for i in range(5)])
    write(redis_client, "candidate", [result("candidate", "s4", "b", redelivered=True)])
    process = comparator(redis_url, tmp_path, "--exit-when-idle", "1")
    assert process.wait(timeout=60) == 0
    final = counts(redis_client)
    assert (final["matched"], final["duplicates"]) == (5, 3)
    assert final["legacy_outputs"] == 5 and final["candidate_outputs"] == 5


def test_evicted_joins_are_counted_not_dropped(redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    write(redis_client, "legacy", [result("legacy", f"s{i}", "a") for i in range(100)])
    process = comparator(redis_url, tmp_path, "--max-pending", "10", "--exit-when-idle", "1")
    assert process.wait(timeout=60) == 0
    final = counts(redis_client)
    assert final["evicted"] == 90
    assert final["pending"] == 10


def test_error_divergence_and_export_of_every_pair(redis_url: str, redis_client: redis.Redis,
                                                   tmp_path: Path) -> None:
    write(redis_client, "legacy", [result("legacy", "ok", "a"), result("legacy", "l-fails", "", "error", False, "Boom"),
                                   result("legacy", "both", "", "error", False, "Boom")])
    write(redis_client, "candidate", [result("candidate", "ok", "b"), result("candidate", "l-fails", "b"),
                                      result("candidate", "both", "", "error", False, "Bang")])
    process = comparator(redis_url, tmp_path, "--exit-when-idle", "1")
    assert process.wait(timeout=60) == 0
    errors = report(redis_client)["errors"]
    assert (errors["only_legacy"], errors["only_candidate"], errors["both"]) == (1, 0, 1)  # type: ignore[index]

    runner = CliRunner()
    out = runner.invoke(cli, ["report", "--redis-url", redis_url, "--format", "json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["schema"] == "harness.report/1"
    pairs_file = tmp_path / "pairs.parquet"
    out = runner.invoke(cli, ["export", "--redis-url", redis_url, "--pairs", str(pairs_file)])
    assert out.exit_code == 0, out.output
    pairs = pd.read_parquet(pairs_file).set_index("signal_id")
    assert len(pairs) == 3
    assert pairs.loc["l-fails", "legacy_outcome"] == "error" and pairs.loc["l-fails", "candidate_label"] == "b"
    assert abs(pairs.loc["ok", "candidate_latency_ms"] - 20.0) < 1e-9


def test_report_without_a_comparison_is_one_clear_line(redis_url: str) -> None:
    out = CliRunner().invoke(cli, ["report", "--redis-url", redis_url])
    assert out.exit_code == 1
    assert "run `harness comparator` first" in out.output


def test_tapped_production_stream_of_json_is_compared_unchanged(redis_url: str, redis_client: redis.Redis,
                                                                  tmp_path: Path) -> None:
    for i in range(50):  # an existing production worker's own JSON, read as it is
        message = {"signal": {"id": f"s{i}"}, "result": {"cluster": f"prod-{i % 3}"}}
        redis_client.xadd("prod:out", {keys.PAYLOAD_FIELD: json.dumps(message)})
    write(redis_client, "candidate", [result("candidate", f"s{i}", f"C{i % 3}") for i in range(50)])
    process = comparator(redis_url, tmp_path, "--tap-legacy-stream", "prod:out",
                         "--tap-mapping", "id=signal.id,label=result.cluster", "--exit-when-idle", "1")
    assert process.wait(timeout=60) == 0
    full = report(redis_client)
    assert full["counts"]["matched"] == 50  # type: ignore[index]
    assert full["agreement"]["ari"] == 1.0  # type: ignore[index]
    assert full["latency_ms"]["legacy"]["count"] == 0, "the tap has no timings"  # type: ignore[index]


def test_backlog_is_not_taken_for_missing_results(redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    # The candidate's results arrive in the opposite order: partners are deep in the backlog
    # (as after a restart that followed a long downtime), far past the tiny join timeout.
    write(redis_client, "legacy", [result("legacy", f"s{i}", "a") for i in range(6000)])
    write(redis_client, "candidate", [result("candidate", f"s{i}", "b") for i in reversed(range(6000))])
    process = comparator(redis_url, tmp_path, "--timeout", "0.001", "--exit-when-idle", "1")
    assert process.wait(timeout=60) == 0
    final = counts(redis_client)
    assert (final["matched"], final["missing_legacy"], final["missing_candidate"]) == (6000, 0, 0)
