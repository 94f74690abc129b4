"""The one-command demo: producer, legacy, candidate and comparator as processes on one Redis."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import redis

from harness import experiments
from harness.comparator.scope import experiment_report
from harness.comparator.service import SUMMARY_KEY, live_report
from harness.errors import HarnessError
from harness.report.headline import headline
from harness.supervisor import Supervisor
from harness.transport import keys
from harness.transport.connection import redis_client
from harness.transport.roles import production_summary


class DemoError(RuntimeError, HarnessError):
    pass


DEMO_RUNS_KEPT = 5  # the logs of the last few demo runs are kept; older run folders are removed
_RUN_FOLDER = re.compile(r"\d{8}-\d{6}-\d{6}-")  # <date>-<time>-<µs>-<unique>: only the demo's own are pruned


def new_log_dir(root: Path | None = None, keep: int = DEMO_RUNS_KEPT) -> Path:
    """A folder for this run's logs under $XDG_STATE_HOME/harness/demo (~/.local/state), pruned to `keep` runs."""
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    root = root or Path(state_home) / "harness" / "demo"
    try:
        root.mkdir(parents=True, exist_ok=True)
        run = Path(tempfile.mkdtemp(prefix=datetime.now().strftime("%Y%m%d-%H%M%S-%f-"), dir=root))
    except OSError:  # no writable home (a container, say): a temporary folder still shows the logs
        return Path(tempfile.mkdtemp(prefix="harness-demo-logs-"))
    runs = sorted(path for path in root.iterdir() if path.is_dir() and _RUN_FOLDER.match(path.name))
    for old in runs[:-keep]:
        if old != run:
            shutil.rmtree(old, ignore_errors=True)
    return run


@dataclass(frozen=True)
class DemoPlan:
    redis_url: str
    signals: int
    rate: float | None
    seed: int
    candidate_env: dict[str, str] = field(default_factory=dict)
    aa: bool = False
    cutover_policy: Path | None = None  # set: end the run with a gated cutover to the candidate
    join_timeout_s: float = 10.0
    shape_share: float = 0.0  # share of signals whose faults differ only in shape
    log_dir: Path = field(default_factory=new_log_dir)


@dataclass
class Progress:
    produced: int = 0
    matched: int = 0
    missing: int = 0
    ari: float | None = None
    processed: dict[str, int] = field(default_factory=dict)  # per worker: input entries it has answered


def ensure_clean(client: redis.Redis, reset: bool) -> None:
    existing = [k.decode() for k in client.scan_iter(match="harness:*", count=1000)]
    if existing and not reset:
        raise DemoError(f"{len(existing)} harness:* keys already exist in this Redis; pass --reset to clear them")
    for chunk_start in range(0, len(existing), 500):
        client.delete(*existing[chunk_start:chunk_start + 500])


def read_progress(client: redis.Redis, workers: tuple[str, ...] = ("legacy", "candidate")) -> Progress:
    produced = int(client.get(keys.PRODUCED_KEY) or 0)
    processed = {worker: int(client.xlen(keys.results_stream(worker))) for worker in workers}
    summary = client.hgetall(SUMMARY_KEY)
    if not summary:
        return Progress(produced, processed=processed)
    counts = json.loads(summary[b"counts"])
    ari = json.loads(summary[b"ari"])
    return Progress(produced, int(counts["matched"]),
                    int(counts["missing_legacy"]) + int(counts["missing_candidate"]), ari, processed)


Say = Callable[[str], None]


def run_demo(plan: DemoPlan, on_progress: Callable[[Progress], None] | None = None,
             say: Say = lambda line: None) -> dict[str, Any]:
    """Run the whole shadow deployment once and return its harness.report/1 report: the first experiment's
    (legacy vs candidate), with production as it ended and every experiment's headline (`experiments`).

    With a cutover, its steps are told as they happen, and a second part of the signals follows the switch,
    served by the new primary."""
    client = redis_client(plan.redis_url)
    supervisor = Supervisor(plan.log_dir, plan.redis_url)  # children read HARNESS_REDIS_URL: no password in argv
    worker_flags = ["--block-ms", "200"]
    try:
        # Legacy is production's worker: the first primary, under epoch 1.
        supervisor.spawn("legacy", ["worker", "legacy", "--init-primary", *worker_flags])
        supervisor.spawn("candidate", ["worker", "candidate", *worker_flags], env=plan.candidate_env)
        comparator_args = ["comparator", "--timeout", str(plan.join_timeout_s), "--checkpoint", "0.3"]
        if plan.aa:
            supervisor.spawn("legacy-replica", ["worker", "legacy", "--name", "legacy-replica", *worker_flags])
            comparator_args += ["--replica", "legacy-replica"]
        supervisor.spawn("comparator", comparator_args)
        produce_args = ["produce", "--count", str(plan.signals), "--seed", str(plan.seed),
                        "--shape-share", str(plan.shape_share)]
        if plan.rate:
            produce_args += ["--rate", str(plan.rate)]
        supervisor.spawn("producer", produce_args)
        _wait_until_compared(plan, client, supervisor, on_progress)
        if plan.cutover_policy is not None:
            _cut_over(plan, supervisor, say)
            _after_the_switch(plan, client, supervisor, say)
    finally:
        supervisor.stop_all()
    return _final_report(client, plan)


def _final_report(client: redis.Redis, plan: DemoPlan) -> dict[str, Any]:
    report = live_report(client, keys.DEFAULT_EXPERIMENT)
    if report is None:
        raise DemoError(f"the comparator saved no state; see its log in {plan.log_dir}")
    if plan.cutover_policy is not None:  # the comparison that was gated, and production as it ended
        report["cutover"] = production_summary(client)
        report["headline"] = headline(report)
    report["experiments"] = [
        {"name": exp.name, "control": exp.control, "candidate": exp.candidate, "running": exp.running,
         "headline": (experiment_report(client, exp) or {}).get("headline") or "nothing compared yet"}
        for exp in experiments.load_all(client) or [experiments.resolve(client)]]
    return report


def _cut_over(plan: DemoPlan, supervisor: Supervisor, say: Say) -> None:
    """Promote the candidate as an operator would: gate on the live comparison, switch, drain legacy; each
    step is told as the cutover prints it."""
    cutover = supervisor.spawn("cutover", ["cutover", "--policy", str(plan.cutover_policy), "--stop-with", "process",
                                           "--actor", "harness-demo"])
    code = _follow(plan.log_dir / "cutover.log", cutover, say, CUTOVER_TIMEOUT_S)
    if code is None:
        raise DemoError(f"the cutover did not finish within {CUTOVER_TIMEOUT_S:.0f} s; see "
                        f"{plan.log_dir}/cutover.log")
    if code != 0:
        raise DemoError(f"the cutover was refused or failed: {supervisor.tail('cutover', 2)}")


CUTOVER_TIMEOUT_S = 180.0


def _follow(log: Path, process: subprocess.Popen[bytes], say: Say, timeout_s: float) -> int | None:
    """Tell each line the process writes to its log as it comes; its exit code (None: still running at the end)."""
    deadline = time.monotonic() + timeout_s
    offset, partial = 0, b""
    while True:
        code = process.poll()
        with log.open("rb") as file:
            file.seek(offset)
            chunk = file.read()
        offset += len(chunk)
        *lines, partial = (partial + chunk).split(b"\n")
        for line in lines:
            say(line.decode(errors="replace"))
        if code is not None:
            if partial:
                say(partial.decode(errors="replace"))
            return code
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)


def _after_the_switch(plan: DemoPlan, client: redis.Redis, supervisor: Supervisor, say: Say) -> None:
    """A second part of the signals, served by the new primary: production goes on after the switch."""
    count = max(plan.signals // 2, 1)
    args = ["produce", "--count", str(count), "--seed", str(plan.seed + 1), "--shape-share", str(plan.shape_share)]
    producer = supervisor.spawn("producer-after-switch", [*args, *(["--rate", str(plan.rate)] if plan.rate else [])])
    say(f"after the switch: {count:,} more signals, served by the new primary")
    deadline = time.monotonic() + 120.0 + count / 200.0 + (count / plan.rate if plan.rate else 0.0)
    while not (producer.poll() == 0 and client.xlen(keys.PRODUCTION_STREAM) >= client.xlen(keys.DEFAULT_INPUT_STREAM)):
        failed = supervisor.failed()
        if failed:
            name, code = next(iter(failed.items()))
            raise DemoError(f"{name} exited with code {code}: {supervisor.tail(name, 3)} (logs: {plan.log_dir})")
        if time.monotonic() > deadline:
            raise DemoError(f"production did not serve every signal in time; logs: {plan.log_dir}")
        time.sleep(0.2)
    summary = production_summary(client) or {}
    served = ", ".join(f"{worker} {results:,}" for worker, results in summary.get("by_worker", {}).items())
    say(f"production: {summary.get('production_results', 0):,} results, one per signal ({served})")


def _wait_until_compared(plan: DemoPlan, client: redis.Redis, supervisor: Supervisor,
                         on_progress: Callable[[Progress], None] | None) -> None:
    # Generous: the slowest worker at a few hundred signals/s, plus the join timeout.
    budget_s = 120.0 + plan.signals / 200.0 + (plan.signals / plan.rate if plan.rate else 0.0)
    deadline = time.monotonic() + budget_s
    while True:
        failed = supervisor.failed()
        if failed:
            name, code = next(iter(failed.items()))
            raise DemoError(f"{name} exited with code {code}: {supervisor.tail(name, 3)} (logs: {plan.log_dir})")
        progress = read_progress(client)
        if on_progress:
            on_progress(progress)
        producer_done = supervisor.children["producer"].poll() == 0
        if producer_done and progress.produced and progress.matched + progress.missing >= progress.produced:
            return
        if time.monotonic() > deadline:
            raise DemoError(f"not all signals were compared within {budget_s:.0f}s; logs: {plan.log_dir}")
        time.sleep(0.2)
