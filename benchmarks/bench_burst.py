"""A burst through real processes: the comparator counts every signal, and its peak memory does not grow
with the skew between a slow legacy (~1,600 signals/s) and a fast candidate (~20,000 signals/s).

Producer, legacy, candidate and comparator run as `python -m harness ...` processes on a private
redis-server, as `harness demo` runs them. The producer sends --signals as fast as it can; the script
waits until both workers have answered every signal and the comparator has counted them all, then reads
the comparator's peak RSS (VmHWM in /proc/PID/status) and stops everything. The same again with --small
signals gives the ratio of the two peaks. The last line printed is a JSON summary.

    python benchmarks/bench_burst.py [--signals 80000] [--small 5000] [--skip-small]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from harness.comparator.service import SUMMARY_KEY, live_report
from harness.embedded_redis import EmbeddedRedis
from harness.supervisor import Supervisor
from harness.transport import keys

WORKERS = ("legacy", "candidate")
REPORTED = ("matched", "missing_legacy", "missing_candidate", "late", "pending")
TARGET_RSS_RATIO = 1.2  # the burst's peak RSS within 20% of the small run's
POLL_S = 0.25
SHOW_EVERY_S = 5.0
SEED = 0


class BenchError(RuntimeError):
    """A process died or a deadline passed: the run stops with this one line."""


@dataclass(frozen=True)
class Run:
    signals: int
    counts: dict[str, int]
    rss_mb: float  # the comparator's VmHWM just before it was stopped
    seconds: float  # from the producer's start until the comparator had counted every signal
    peak_pending: int  # the largest join buffer the comparator reported on the way
    log_dir: Path


def status_mb(pid: int, field: str) -> float:
    """A kB figure of /proc/PID/status (VmHWM: peak resident set; VmRSS: current), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024.0
    raise BenchError(f"/proc/{pid}/status has no {field} line")


def comparator_counts(client: redis.Redis) -> dict[str, int]:
    """The counts of the comparator's last checkpoint (empty before its first one)."""
    raw = client.hget(SUMMARY_KEY, "counts")
    if raw is None:
        return {}
    return {key: int(value or 0) for key, value in json.loads(raw).items()}


def counted_all(counts: dict[str, int], signals: int) -> bool:
    # Both sides' results read, and nothing waiting in the join: every signal is matched or missing.
    return (counts.get("legacy_outputs", 0) >= signals and counts.get("candidate_outputs", 0) >= signals
            and counts.get("pending", -1) == 0)


def check_alive(supervisor: Supervisor, log_dir: Path) -> None:
    failed = supervisor.failed()
    if failed:
        name, code = next(iter(failed.items()))
        tail = " | ".join(supervisor.tail(name, 3).splitlines())
        raise BenchError(f"{name} exited with code {code}: {tail} (logs: {log_dir})")
    stopped = [name for name, process in supervisor.children.items()
               if name != "producer" and process.poll() is not None]
    if stopped:
        raise BenchError(f"{stopped[0]} stopped before every signal was counted (logs: {log_dir})")


def wait_until_counted(client: redis.Redis, supervisor: Supervisor, signals: int, log_dir: Path,
                       budget_s: float) -> tuple[dict[str, int], int]:
    """Poll until the comparator has counted every signal; returns its counts and the peak pending."""
    started = time.monotonic()
    deadline, next_show, peak_pending = started + budget_s, started + SHOW_EVERY_S, 0
    comparator_pid = supervisor.children["comparator"].pid
    while True:
        check_alive(supervisor, log_dir)
        counts = comparator_counts(client)
        peak_pending = max(peak_pending, counts.get("pending", 0))
        produced_done = supervisor.children["producer"].poll() == 0
        if produced_done and counted_all(counts, signals):
            return counts, peak_pending
        now = time.monotonic()
        if now >= next_show:
            done = {name: int(client.xlen(keys.results_stream(name))) for name in WORKERS}
            print(f"    {now - started:5.0f}s  produced {int(client.get(keys.PRODUCED_KEY) or 0):>7,}  "
                  f"legacy {done['legacy']:>7,}  candidate {done['candidate']:>7,}  "
                  f"matched {counts.get('matched', 0):>7,}  pending {counts.get('pending', 0):>7,}  "
                  f"comparator rss {status_mb(comparator_pid, 'VmRSS'):6.1f} MiB", flush=True)
            next_show = now + SHOW_EVERY_S
        if now > deadline:
            raise BenchError(f"not every signal was counted within {budget_s:.0f} s "
                             f"(last counts {counts or 'none yet'}; logs: {log_dir})")
        time.sleep(POLL_S)


def start_processes(supervisor: Supervisor, signals: int, max_pending: int | None) -> None:
    # As `harness demo` starts them: legacy is production's primary, the candidate a shadow.
    supervisor.spawn("legacy", ["worker", "legacy", "--init-primary", "--block-ms", "200"])
    supervisor.spawn("candidate", ["worker", "candidate", "--block-ms", "200"])
    comparator = ["comparator", *(["--max-pending", str(max_pending)] if max_pending else [])]
    supervisor.spawn("comparator", comparator)
    supervisor.spawn("producer", ["produce", "--count", str(signals), "--seed", str(SEED)])


def run_once(signals: int, max_pending: int | None) -> Run:
    log_dir = Path(tempfile.mkdtemp(prefix=f"bench-burst-{signals}-"))
    budget_s = 120.0 + signals / 200.0  # legacy at a few hundred signals/s on a busy machine still fits
    print(f"  {signals:,} signals (logs: {log_dir}; deadline {budget_s:.0f} s)", flush=True)
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        # Children read the URL from HARNESS_REDIS_URL, never from argv.
        supervisor = Supervisor(log_dir, server.url)
        try:
            started = time.monotonic()
            start_processes(supervisor, signals, max_pending)
            _, peak_pending = wait_until_counted(client, supervisor, signals, log_dir, budget_s)
            seconds = time.monotonic() - started
            rss_mb = status_mb(supervisor.children["comparator"].pid, "VmHWM")
        finally:
            supervisor.stop_all()
        report = live_report(client)  # the final checkpoint, written as the comparator stopped
        client.close()
    if report is None:
        raise BenchError(f"the comparator saved no state (logs: {log_dir})")
    counts = {key: int(value or 0) for key, value in report["counts"].items()}
    return Run(signals, counts, rss_mb, seconds, peak_pending, log_dir)


def show(label: str, run: Run) -> None:
    figures = "  ".join(f"{key} {run.counts.get(key, 0):,}" for key in REPORTED)
    print(f"  {label}: {run.signals:,} signals in {run.seconds:.1f} s: {figures}  "
          f"evicted {run.counts.get('evicted', 0):,}  peak pending {run.peak_pending:,}  "
          f"comparator peak RSS {run.rss_mb:.1f} MiB", flush=True)


def complete(run: Run) -> bool:
    """Every signal matched once on both sides: nothing missing, late, pending or evicted."""
    counts = run.counts
    lost = sum(counts.get(key, 0) for key in ("missing_legacy", "missing_candidate", "late", "pending", "evicted"))
    return counts.get("matched") == run.signals and lost == 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--signals", type=int, default=80_000, help="signals in the burst")
    parser.add_argument("--small", type=int, default=5_000, help="signals in the small run (the RSS baseline)")
    parser.add_argument("--skip-small", action="store_true", help="run the burst only (no RSS ratio)")
    parser.add_argument("--max-pending", type=int, help="the comparator's --max-pending (default: its own)")
    args = parser.parse_args(argv)
    if args.signals <= 0 or args.small <= 0 or (args.max_pending is not None and args.max_pending <= 0):
        parser.error("--signals, --small and --max-pending must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"load average at start: {load} ({os.cpu_count()} cores)", flush=True)
    try:
        burst = run_once(args.signals, args.max_pending)
        show("burst", burst)
        small = None if args.skip_small else run_once(args.small, args.max_pending)
        if small is not None:
            show("small", small)
    except BenchError as exc:
        print(f"bench_burst: {exc}", file=sys.stderr)
        return 1
    print(f"load average at end: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    ratio = round(burst.rss_mb / small.rss_mb, 3) if small is not None else None
    if ratio is not None:
        print(f"target: burst peak RSS within {TARGET_RSS_RATIO - 1:.0%} of the small run's: "
              f"{ratio:.2f}x, {'met' if ratio <= TARGET_RSS_RATIO else 'missed'}")
    runs = [run for run in (burst, small) if run is not None]
    for run in runs:
        if not complete(run):
            print(f"CHECK FAILED: {run.signals:,} signals were not all matched once: {run.counts}")
    summary: dict[str, Any] = {
        "burst_signals": burst.signals, "burst_matched": burst.counts.get("matched", 0),
        "burst_missing": burst.counts.get("missing_legacy", 0) + burst.counts.get("missing_candidate", 0),
        "burst_late": burst.counts.get("late", 0), "burst_rss_mb": round(burst.rss_mb, 1),
        "small_rss_mb": round(small.rss_mb, 1) if small is not None else None, "rss_ratio": ratio,
    }
    print(json.dumps(summary))
    return 0 if all(complete(run) for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
