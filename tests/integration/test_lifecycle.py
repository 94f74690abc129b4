"""The whole lifecycle an operator lives, with real processes on a real redis-server (append-only file):

legacy primary with the candidate as shadow; gate, cutover, rollback, cutover, `retire legacy`; then
candidate-v2 as the new shadow, a gate on its experiment and a cutover to it. Signals flow at 1,000/s the
whole time; the comparator is SIGKILLed once and Redis restarted once in the middle; a rollback whose target
is not running is refused while production keeps flowing. At the end every signal has exactly one
production result, and each experiment's report counts as many matched pairs as its export writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from harness import experiments
from harness.cli.main import cli
from harness.transport import keys
from harness.transport.roles import group_lag, read_roles
from tests.faults.stack import FaultStack, fault_stack, input_ids, production_entries
from tests.support.processes import ROOT, stop, wait_for

# Signals per second, from a producer process, from the first step to the last. Legacy (slow on purpose) must
# keep up while it is primary, or each switch copies a backlog that the workers' commits keep invalidating:
# on a quiet 2-core machine HARNESS_TEST_LIFECYCLE_RATE=1000 passes; shared with other work, legacy manages
# 500-750/s, hence the default.
RATE = int(os.environ.get("HARNESS_TEST_LIFECYCLE_RATE", "500"))
POLICY = str(ROOT / "policies" / "default.toml")
PAIRS_FOR_A_GATE = 1_500  # above the policy's min_pairs (1,000)
V2_ENV = {"HARNESS_CANDIDATE_SHAPE_LENGTH": "24"}  # another model version, the same clusters with default features


def harness(stack: FaultStack, *args: str) -> subprocess.CompletedProcess[str]:
    """A `harness` command as an operator runs it, against the stack's Redis."""
    return subprocess.run([sys.executable, "-m", "harness", *args, "--redis-url", stack.url], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=150)


def matched(stack: FaultStack, experiment: str) -> int:
    counts = stack.client.hget(keys.experiment_summary_key(experiment), "counts")
    return int(json.loads(counts)["matched"]) if counts else 0


def wait_for_pairs(stack: FaultStack, experiment: str, *alive: str) -> None:
    wait_for(lambda: matched(stack, experiment) >= PAIRS_FOR_A_GATE, 90,
             f"{PAIRS_FOR_A_GATE} pairs in experiment {experiment}", stack.alive(*alive))


def production_grows(stack: FaultStack, count: int, *alive: str) -> None:
    start = stack.client.xlen(keys.PRODUCTION_STREAM)
    wait_for(lambda: stack.client.xlen(keys.PRODUCTION_STREAM) >= start + count, 60,
             f"{count} more production results", stack.alive(*alive))


def succeeds(done: subprocess.CompletedProcess[str], *shown: str) -> str:
    assert done.returncode == 0, f"{done.args[3:]} exited {done.returncode}: {done.stderr}{done.stdout}"
    for text in shown:
        assert text in done.stdout, f"{text!r} not in the output of {done.args[3:]}:\n{done.stdout}"
    return done.stdout


def test_the_whole_lifecycle_under_flowing_traffic(tmp_path: Path) -> None:
    with fault_stack(tmp_path) as stack:
        stack.worker("legacy", "legacy", "--init-primary")
        stack.worker("candidate", "candidate")
        stack.comparator()
        # Traffic starts once both workers run, as in a deployment: a worker still starting up would have
        # its first signals wait in Redis, and the gate's latency rules would count that start-up against it.
        for worker in ("legacy", "candidate"):
            wait_for(lambda worker=worker: stack.client.hget(keys.heartbeat_key(worker), "state") == b"running",
                     60, f"{worker} running", stack.alive(worker))
        stack.harness("producer", "produce", "--rate", str(RATE), "--count", "1000000", "--seed", "3")
        flowing = ("producer", "comparator", "candidate")

        # legacy primary, the candidate its shadow: the implicit experiment "default"; gate, then cut over
        wait_for_pairs(stack, "default", *flowing, "legacy")
        succeeds(harness(stack, "gate", "--policy", POLICY), "gate PASS")
        cut = succeeds(harness(stack, "cutover", "--policy", POLICY, "--stop-with", "process", "--start-timeout", "60"),
                       "gate pass", "experiment candidate-vs-legacy-e2: candidate is the control, legacy the candidate")
        assert cut.index("gate pass") < cut.index("switch:") < cut.index("drained:")
        assert stack.processes["legacy"].wait(timeout=30) == 0, "legacy drains and exits"

        # the comparator dies mid-experiment; a new one resumes from the checkpoint of the current experiment
        stack.kill("comparator")
        stack.comparator()
        production_grows(stack, 2_000, *flowing)

        back = succeeds(harness(stack, "rollback", "--stop-with", "process", "--worker-log-dir", str(tmp_path / "logs"),
                                "--start-timeout", "60"), "experiment legacy-vs-candidate-e3")
        assert "legacy is serving: lease held by" in back
        assert experiments.current(stack.client).name == "legacy-vs-candidate-e3"  # type: ignore[union-attr]

        # Redis goes away and comes back (its append-only file keeps everything); nobody restarts anything
        stack.restart_redis([(name, '"retry_in_s"') for name in flowing])
        wait_for_pairs(stack, "legacy-vs-candidate-e3", *flowing)
        succeeds(harness(stack, "cutover", "--policy", POLICY, "--stop-with", "process", "--start-timeout", "60"),
                 "gate pass", "experiment candidate-vs-legacy-e4")

        # a rollback to a legacy that nothing runs, with a backend that cannot start it: refused, production flows
        before = stack.client.xlen(keys.PRODUCTION_STREAM)
        refused = harness(stack, "rollback", "--stop-with", "none", "--start-timeout", "1")
        assert refused.returncode == 1 and "rollback refused" in refused.stderr, refused.stderr
        assert "would leave production unserved" in refused.stderr
        assert (read_roles(stack.client).primary, read_roles(stack.client).epoch) == ("candidate", 4)
        production_grows(stack, 1_000, *flowing)
        assert stack.client.xlen(keys.PRODUCTION_STREAM) > before

        succeeds(harness(stack, "retire", "legacy", "--force", "--reason", "lifecycle test"), "retired legacy")
        assert experiments.current(stack.client) is None, "the retired worker is no longer compared"

        # a new candidate against the candidate now primary: the next experiment, the same commands
        # from the input's first entry, as the candidate did: an online model's clusters depend on its history
        stack.worker("candidate-v2", "candidate", env=V2_ENV)
        # Caught up to within a twentieth of a second of input: a shadow still working through its backlog gives
        # its first pairs that backlog's wait as latency, which the gate's latency rules rightly count against it.
        caught_up = lambda: (group_lag(stack.client, keys.DEFAULT_INPUT_STREAM, "candidate-v2") or 10**9) < RATE // 20  # noqa: E731
        wait_for(caught_up, 90, "candidate-v2 to catch up with the input", stack.alive(*flowing, "candidate-v2"))
        succeeds(harness(stack, "experiment", "start", "v2", "--control", "candidate", "--candidate", "candidate-v2"),
                 "started experiment v2")
        wait_for_pairs(stack, "v2", *flowing, "candidate-v2")
        succeeds(harness(stack, "gate", "--policy", POLICY, "--experiment", "v2"), "gate PASS")
        succeeds(harness(stack, "cutover", "--to", "candidate-v2", "--from", "candidate", "--policy", POLICY,
                         "--stop-with", "process", "--start-timeout", "60"),
                 "experiment candidate-v2-vs-candidate-e5")
        assert stack.processes["candidate"].wait(timeout=30) == 0, "the candidate drains and exits"
        assert stack.processes["producer"].poll() is None, "signals flowed from the first step to the last"
        stop(stack.processes["producer"])

        total = stack.client.xlen(keys.DEFAULT_INPUT_STREAM)
        wait_for(lambda: stack.client.xlen(keys.PRODUCTION_STREAM) >= total, 90,
                 f"a production result for all {total} signals", stack.alive("candidate-v2"))
        assert stop(stack.processes["comparator"]) == 0, "the comparator checkpoints and exits"
        assert_exactly_one_production_result_per_signal(stack)
        assert_reports_and_exports_agree(stack, tmp_path)


def assert_exactly_one_production_result_per_signal(stack: FaultStack) -> None:
    produced, published = input_ids(stack.client), Counter(production_entries(stack.client))
    assert len(produced) > 30 * RATE // 2, "traffic flowed through the whole run"
    assert not [entry for entry in produced if entry not in published], "a signal without a production result"
    assert max(published.values()) == 1, "a signal with two production results"
    by_worker = Counter(fields[b"worker"].decode() for _, fields in stack.client.xrange(keys.PRODUCTION_STREAM))
    assert set(by_worker) == {"legacy", "candidate", "candidate-v2"}


def assert_reports_and_exports_agree(stack: FaultStack, folder: Path) -> None:
    runner = CliRunner()
    names = [exp.name for exp in experiments.load_all(stack.client)]
    assert names == ["default", "candidate-vs-legacy-e2", "legacy-vs-candidate-e3", "candidate-vs-legacy-e4", "v2",
                     "candidate-v2-vs-candidate-e5"]
    for name in names:
        shown = runner.invoke(cli, ["report", "--redis-url", stack.url, "--format", "json", "--experiment", name])
        assert shown.exit_code == 0, shown.output
        counts = json.loads(shown.output)["counts"]
        pairs = folder / f"{name}.csv"
        exported = runner.invoke(cli, ["export", "--redis-url", stack.url, "--pairs", str(pairs), "--experiment", name])
        assert exported.exit_code == 0, exported.output
        assert len(pd.read_csv(pairs)) == counts["matched"], f"experiment {name}: report and export disagree"
    v2 = json.loads(runner.invoke(cli, ["experiment", "show", "v2", "--json", "--redis-url", stack.url]).output)
    counts = v2["report"]["counts"]
    assert counts["matched"] >= PAIRS_FOR_A_GATE and counts["missing_legacy"] == counts["missing_candidate"] == 0, \
        "the retired legacy never counts as missing"
    assert v2["experiment"]["end_reason"] == "cutover to candidate-v2 (epoch 5)"


def test_demo_with_a_cutover_tells_the_whole_story(tmp_path: Path) -> None:
    report_file = tmp_path / "report.json"
    demo = subprocess.run([sys.executable, "-m", "harness", "demo", "--signals", "1500", "--cutover", "--report-json",
                           str(report_file)], capture_output=True, text=True, cwd=ROOT, timeout=240,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert demo.returncode == 0, demo.stderr
    told = demo.stderr.splitlines()
    steps = ["gate pass", "fence:", "switch:", "experiment candidate-vs-legacy-e2", "drained:", "after the switch:"]
    at = [next(i for i, line in enumerate(told) if line.startswith(step)) for step in steps]
    assert at == sorted(at), "each step told as it happens, in order"
    report = json.loads(report_file.read_text())
    assert report["cutover"]["by_worker"] == {"legacy": 1500, "candidate": 750}, "the new primary serves the rest"
    assert [exp["name"] for exp in report["experiments"]] == ["default", "candidate-vs-legacy-e2"]
    assert "experiment default (legacy vs candidate, ended): candidate agrees with legacy" in demo.stdout
    assert "experiment candidate-vs-legacy-e2 (candidate vs legacy, running):" in demo.stdout
