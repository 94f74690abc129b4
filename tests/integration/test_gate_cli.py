"""`harness gate` end to end: backtests, saved reports and the live comparison in a real Redis."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
import redis
from click.testing import CliRunner, Result

from harness.backtest import InProcessWorker
from harness.cli.main import cli
from harness.comparator.service import STATE_KEY, SUMMARY_KEY
from harness.contracts import SignalClustered, encode_clustered
from harness.gate import RULES
from harness.producer.files import write_signals
from harness.producer.synthetic import generate_signals
from harness.transport import keys
from tests.support.processes import start_harness

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policies" / "default.toml"
TRUTH_POLICY = ROOT / "policies" / "truth.toml"
THRESHOLD_CASES = 10
DEFAULT_RULES = [name for name in RULES if not name.startswith("truth_")]  # the default policy has no truth rules
ALL_RULES = 1 + len(DEFAULT_RULES) + THRESHOLD_CASES  # matched_pairs, every policy rule, one per threshold case
ORACLE = "tests.support.algorithms:oracle"  # labels by the true kind: better than legacy, and unlike it


@pytest.fixture(scope="module")
def signals_5k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("signals") / "signals.parquet"
    write_signals(path, generate_signals(5_000, seed=7))
    return path


def gate(*args: str, policy: Path = POLICY) -> Result:
    return CliRunner().invoke(cli, ["gate", "--policy", str(policy), *args])


def failed_rules(output: str) -> set[str]:
    return {line.strip().split(" ")[0] for line in output.splitlines()
            if line.startswith("  ") and ": FAIL" in line}


def test_default_candidate_passes_the_default_policy_on_a_5000_signal_backtest(
        signals_5k: Path, tmp_path: Path) -> None:
    junit, markdown = tmp_path / "gate.xml", tmp_path / "gate.md"
    result = gate("--backtest", str(signals_5k), "--junit", str(junit), "--markdown", str(markdown))
    assert result.exit_code == 0, result.output
    assert "  matched_pairs 5,000 >= min 1,000: PASS" in result.output
    assert f"gate PASS: {ALL_RULES} rules at 95% confidence" in result.output
    cases = ET.parse(junit).getroot().findall("./testsuite/testcase")
    assert len(cases) == ALL_RULES
    assert {case.get("name") for case in cases} >= {"matched_pairs", *DEFAULT_RULES, "threshold:negative-glitches"}
    assert all(case.find("failure") is None for case in cases)
    assert markdown.read_text().startswith("## Gate: PASS")


def test_a_mean_centroid_candidate_fails_on_agreement(signals_5k: Path) -> None:
    result = gate("--backtest", str(signals_5k), "--candidate-env", "HARNESS_CANDIDATE_CENTROID=mean")
    assert result.exit_code == 1, result.output
    failed = failed_rules(result.output)
    assert {"nmi", "matched_accuracy", "anomalies_ari"} <= failed
    assert not failed & {"candidate_error_rate", "error_increase", "missing_candidate"}
    assert "gate FAIL:" in result.output


def test_a_candidate_raising_on_negative_voltages_fails_on_errors_naming_the_rule(
        signals_5k: Path, tmp_path: Path) -> None:
    junit = tmp_path / "gate.xml"
    result = gate("--backtest", str(signals_5k), "--candidate", "tests.support.algorithms:raises_on_negative",
                  "--junit", str(junit))
    assert result.exit_code == 1, result.output
    assert {"candidate_error_rate", "error_increase", "threshold:negative-glitches"} <= failed_rules(result.output)
    error_line = next(line for line in result.output.splitlines() if line.startswith("  error_increase "))
    assert error_line.endswith("significant at alpha 0.05: FAIL (critical)")
    failures = {case.get("name") for case in ET.parse(junit).getroot().iter("testcase")
                if case.find("failure") is not None}
    assert {"candidate_error_rate", "error_increase"} <= failures


def test_a_candidate_better_on_the_truth_fails_the_agreement_policy_but_passes_the_truth_policy(
        signals_5k: Path) -> None:
    on_agreement = gate("--backtest", str(signals_5k), "--candidate", ORACLE)
    assert on_agreement.exit_code == 1, on_agreement.output
    assert {"ari", "nmi", "matched_accuracy", "anomalies_ari"} <= failed_rules(on_agreement.output)
    on_truth = gate("--backtest", str(signals_5k), "--candidate", ORACLE, policy=TRUTH_POLICY)
    assert on_truth.exit_code == 0, on_truth.output
    assert "  truth_ari 1.000 >= min 0.500 (candidate vs the true kind over 5,000 labelled signals): PASS" in (
        on_truth.output)
    line = next(line for line in on_truth.output.splitlines() if line.startswith("  truth_vs_control "))
    assert line.startswith("  truth_vs_control candidate 1.000 vs control 0.") and line.endswith(">= -0.020: PASS")
    assert "gate PASS: 7 rules at 95% confidence" in on_truth.output


SHAPE_CANDIDATE = [  # the shape-aware candidate, as docs/algorithm.md sets it for the synthetic shape kinds
    "HARNESS_CANDIDATE_FEATURES=shape", "HARNESS_CANDIDATE_CLUSTER_SCOPE=shared",
    "HARNESS_CANDIDATE_SIMILARITY_SCALE=1", "HARNESS_CANDIDATE_SIMILARITY_THRESHOLD=0.4",
    "HARNESS_CANDIDATE_AMPLITUDE_WEIGHT=0.3"]


def test_the_shape_candidate_fails_the_agreement_policy_but_passes_the_truth_policy(tmp_path: Path) -> None:
    path = tmp_path / "shape.parquet"
    write_signals(path, generate_signals(3_000, seed=1, shape_share=0.1))
    settings = [arg for setting in SHAPE_CANDIDATE for arg in ("--candidate-env", setting)]
    on_agreement = gate("--backtest", str(path), *settings)
    assert on_agreement.exit_code == 1, on_agreement.output
    assert {"ari", "nmi", "anomalies_ari", "per_device"} <= failed_rules(on_agreement.output)
    on_truth = gate("--backtest", str(path), *settings, policy=TRUTH_POLICY)
    assert on_truth.exit_code == 0, on_truth.output
    line = next(line for line in on_truth.output.splitlines() if line.startswith("  truth_vs_control "))
    assert "(+0.0" in line and line.endswith(": PASS")  # better than legacy on the truth, if only a little


def test_a_candidate_worse_on_the_truth_fails_the_truth_policy(signals_5k: Path) -> None:
    result = gate("--backtest", str(signals_5k), "--candidate", "tests.support.algorithms:by_device",
                  policy=TRUTH_POLICY)
    assert result.exit_code == 1, result.output
    assert failed_rules(result.output) == {"truth_ari", "truth_vs_control"}


def test_the_gates_backtest_takes_any_control_with_its_own_environment(signals_5k: Path) -> None:
    result = gate("--backtest", str(signals_5k), "--control", ORACLE, "--candidate", ORACLE, policy=TRUTH_POLICY)
    assert result.exit_code == 0, result.output
    assert "truth_vs_control candidate 1.000 vs control 1.000 (+0.000)" in result.output


def test_too_few_pairs_is_inconclusive_with_exit_code_2(tmp_path: Path) -> None:
    path = tmp_path / "few.jsonl"
    write_signals(path, generate_signals(200, seed=3, samples=200))
    result = gate("--backtest", str(path), "--json")
    assert result.exit_code == 2, result.output
    document = json.loads(result.stdout)
    assert document["verdict"] == "inconclusive" and document["exit_code"] == 2
    assert document["rules"][0]["line"] == "matched_pairs 200 < min 1,000: INCONCLUSIVE"


def test_a_saved_report_can_be_judged(tmp_path: Path) -> None:
    path, report = tmp_path / "signals.jsonl", tmp_path / "report.json"
    write_signals(path, generate_signals(1_200, seed=4, samples=300))
    backtest = CliRunner().invoke(cli, ["backtest", "--signals", str(path), "--report-json", str(report)])
    assert backtest.exit_code == 0, backtest.output
    assert "backtest: 1,200 signals through both workers" in backtest.stderr
    # Three batches: a latency tail is one batch's wall time, which a loaded CI machine can stretch at
    # random. What is tested here is reading a saved report, so the latency rules are reported, not judged.
    untimed = tmp_path / "untimed.toml"
    cases = (POLICY.parent / "../tests/threshold/cases.toml").resolve()
    untimed.write_text(POLICY.read_text().replace("[rules.p99_ratio]\n", "[rules.p99_ratio]\nmuted = true\n")
                       .replace("[rules.latency_mann_whitney]\n", "[rules.latency_mann_whitney]\nmuted = true\n")
                       .replace('"../tests/threshold/cases.toml"', f'"{cases}"'))
    result = gate("--report", str(report), "--json", policy=untimed)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["source"] == f"report {report}"
    assert {rule["name"] for rule in document["rules"] if rule["muted"]} == {"p99_ratio", "latency_mann_whitney"}


def test_backtest_runs_any_two_workers_and_writes_the_pairs(tmp_path: Path) -> None:
    path, report, pairs = tmp_path / "signals.jsonl", tmp_path / "report.json", tmp_path / "pairs.parquet"
    write_signals(path, generate_signals(300, seed=4, samples=200))
    result = CliRunner().invoke(cli, [
        "backtest", "--signals", str(path), "--control", "candidate", "--control-env",
        "HARNESS_CANDIDATE_CENTROID=mean", "--candidate", ORACLE, "--report-json", str(report), "--pairs", str(pairs)])
    assert result.exit_code == 0, result.output
    document = json.loads(report.read_text())
    assert document["sides"] == {"control": "candidate", "candidate": ORACLE}
    assert document["agreement"]["truth"]["candidate_ari"] == 1.0
    table = pd.read_parquet(pairs)
    assert len(table) == 300 and (table["candidate_label"] == "kind:" + table["true_kind"]).all()
    assert table["legacy_label"].notna().any()


def test_backtest_scores_one_worker_alone_and_still_takes_the_old_legacy_option(tmp_path: Path) -> None:
    path, report = tmp_path / "signals.jsonl", tmp_path / "report.json"
    write_signals(path, generate_signals(300, seed=4, samples=200))
    alone = CliRunner().invoke(cli, ["backtest", "--signals", str(path), "--alone", "--report-json", str(report)])
    assert alone.exit_code == 0, alone.output
    assert "backtest: 300 signals through the candidate alone" in alone.stderr
    truth = json.loads(report.read_text())["agreement"]["truth"]
    assert truth["legacy_ari"] is None and truth["candidate_ari"] is not None
    old = CliRunner().invoke(cli, ["backtest", "--signals", str(path), "--legacy", "candidate", "--report-json",
                                   str(report)])
    assert old.exit_code == 0, old.output
    assert json.loads(report.read_text())["sides"]["control"] == "candidate"
    both = CliRunner().invoke(cli, ["backtest", "--signals", str(path), "--alone", "--control", "candidate"])
    assert both.exit_code == 2 and "give --alone or --control candidate, not both" in both.output


@pytest.mark.parametrize(("content", "message"), [
    (None, "gate FAIL: report {path} does not exist"),
    ("{not json", "gate FAIL: report {path} is corrupt: the report is not valid JSON"),
    ('{"schema": "harness.report/1", "generated_at": "2024-01-01T00:00:00Z"}',
     "gate FAIL: report {path} is corrupt: the report has no 'counts' section"),
])  # fmt: skip
def test_a_missing_or_corrupt_report_fails_with_one_clear_line(tmp_path: Path, content: str | None,
                                                               message: str) -> None:
    path = tmp_path / "report.json"
    if content is not None:
        path.write_text(content)
    junit = tmp_path / "gate.xml"
    result = gate("--report", str(path), "--junit", str(junit))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message.format(path=path))
    (case,) = ET.parse(junit).getroot().iter("testcase")
    assert case.get("name") == "report" and case.find("failure") is not None


def test_a_stale_report_fails(tmp_path: Path) -> None:
    path, report = tmp_path / "signals.jsonl", tmp_path / "report.json"
    write_signals(path, generate_signals(1_100, seed=4, samples=200))
    assert CliRunner().invoke(cli, ["backtest", "--signals", str(path), "--report-json", str(report)]).exit_code == 0
    document = json.loads(report.read_text())
    document["generated_at"] = "2020-01-01T00:00:00.000Z"
    report.write_text(json.dumps(document))
    result = gate("--report", str(report))
    assert result.exit_code == 1
    assert "the report is stale: generated 2020-01-01T00:00:00.000Z" in result.output


def test_a_bad_policy_is_one_line_and_exit_1(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[rules.ari]\nmin = 'high'\n")
    result = CliRunner().invoke(cli, ["gate", "--policy", str(policy), "--report", "r.json"])
    assert result.exit_code == 1
    assert result.output.strip() == (f"Error: policy {policy}: rules.ari.min must be a number in [0, 1], "
                                     "got 'high'")


def test_a_gate_that_cannot_run_exits_1_never_2() -> None:
    both = gate("--report", "a.json", "--backtest", "b.parquet")
    assert both.exit_code == 1 and "not both" in both.output
    no_policy = CliRunner().invoke(cli, ["gate", "--report", "a.json"])
    assert no_policy.exit_code == 1 and "the gate needs a policy" in no_policy.output


# --- the live comparison -----------------------------------------------------------------------------


def publish_results(client: redis.Redis, count: int) -> None:
    """What legacy and candidate workers would have written for `count` signals."""
    signals = list(generate_signals(count, seed=9, samples=300))
    pipe = client.pipeline(transaction=False)
    for name, latency_ms in (("legacy", 40.0), ("candidate", 12.0)):
        worker = InProcessWorker.load(name)
        for index, (signal, assignment) in enumerate(zip(signals, worker.assign(signals), strict=True)):
            entered = 1.7e12 + index * 10.0
            result = SignalClustered(
                signal_id=signal.signal_id, worker=name, model_version=worker.algorithm.model_version,
                outcome=assignment.outcome, label=assignment.label, is_new_cluster=assignment.is_new_cluster,
                entered_at_ms=entered, published_at_ms=entered + latency_ms + index % 7, processing_ms=1.0,
                device_id=signal.meta.device_id, true_kind=signal.meta.true_kind,
            )
            pipe.xadd(keys.results_stream(name), {keys.PAYLOAD_FIELD: encode_clustered(result)})
    pipe.execute()


def test_the_live_comparison_in_redis_is_judged(redis_url: str, redis_client: redis.Redis,
                                               tmp_path: Path) -> None:
    publish_results(redis_client, 1_200)
    comparator = start_harness(["comparator", "--redis-url", redis_url, "--checkpoint", "0.2",
                                "--exit-when-idle", "1"], log=tmp_path / "comparator.log")
    assert comparator.wait(timeout=60) == 0, (tmp_path / "comparator.log").read_text()
    result = gate("--redis-url", redis_url)
    assert result.exit_code == 0, result.output
    assert "  matched_pairs 1,200 >= min 1,000: PASS" in result.output
    assert f"gate PASS: {ALL_RULES} rules" in result.output


def test_a_comparator_that_stopped_checkpointing_long_ago_is_stale(redis_url: str, redis_client: redis.Redis,
                                                                   tmp_path: Path) -> None:
    publish_results(redis_client, 1_050)
    comparator = start_harness(["comparator", "--redis-url", redis_url, "--exit-when-idle", "0.5"],
                               log=tmp_path / "comparator.log")
    assert comparator.wait(timeout=60) == 0, (tmp_path / "comparator.log").read_text()
    two_hours_ago_ms = (time.time() - 7_200) * 1000.0
    redis_client.hset(SUMMARY_KEY, "updated_ms", str(two_hours_ago_ms))
    result = gate("--redis-url", redis_url)
    assert result.exit_code == 1
    assert "the report is stale" in result.output and "at most 3,600 s (gate.max_age_s)" in result.output


def test_an_unreadable_comparison_in_redis_fails_closed(redis_url: str, redis_client: redis.Redis) -> None:
    redis_client.set(STATE_KEY, b"\x00not a checkpoint")
    result = gate("--redis-url", redis_url)
    assert result.exit_code == 1
    assert result.output.startswith(f"gate FAIL: the comparison in Redis at {redis_url} is unreadable")


def test_no_comparison_in_redis_fails_closed(redis_url: str) -> None:
    result = gate("--redis-url", redis_url)
    assert result.exit_code == 1
    assert result.output.strip() == (f"gate FAIL: no comparison in Redis at {redis_url}: "
                                     "run `harness comparator` first")


def test_an_unreachable_redis_fails_closed() -> None:
    result = gate("--redis-url", "redis://127.0.0.1:1/0")
    assert result.exit_code == 1
    assert result.output.startswith("gate FAIL: cannot read the comparison from Redis at redis://127.0.0.1:1/0")


def test_the_redis_password_never_appears_in_what_report_and_gate_print(redis_url: str,
                                                                        redis_client: redis.Redis) -> None:
    secret = "hunter2-never-shown"
    url = redis_url.replace("unix://", f"unix://:{secret}@", 1)
    redis_client.config_set("requirepass", secret)
    try:
        report = CliRunner().invoke(cli, ["report", "--redis-url", url])
        gated = gate("--redis-url", url)
    finally:
        redis.Redis.from_url(url).config_set("requirepass", "")
    shown = redis_url.replace("unix://", "unix://:***@", 1)
    assert report.exit_code == 1 and f"no comparison in Redis at {shown}" in report.output
    assert gated.exit_code == 1 and f"no comparison in Redis at {shown}" in gated.output
    assert secret not in report.output + gated.output
