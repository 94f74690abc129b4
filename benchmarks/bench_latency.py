"""End-to-end latency of the candidate worker under an open-loop producer at fixed rates (1k, 2k, 5k signals/s).

A real `harness worker candidate` process reads a private redis-server's input stream. For each rate the
producer sends signals on a fixed schedule (signal i is due at start + i / rate, whether or not the worker
keeps up) for --seconds, then waits for the worker to drain. Latency is a result's published time minus its
input entry's time (both on the Redis clock; the entry id has millisecond resolution, so figures read up to
1 ms high). The worker runs with its own defaults (--batch-size 500, --block-ms 1000): XREADGROUP answers as
soon as entries are there, so neither holds a signal back; --batch-size and --block-ms pass other values.
The last line printed is a JSON summary.

    python benchmarks/bench_latency.py [--rates 1000,2000,5000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import redis

from harness.contracts import SignalClustered, SignalReceived, decode_clustered, encode_signal, entry_id_ms
from harness.embedded_redis import EmbeddedRedis
from harness.producer.synthetic import generate_signals
from harness.transport import keys
from harness.transport.trim import trim_stream

ROOT = Path(__file__).resolve().parents[1]
WORKER = "candidate"
INPUT_STREAM = keys.DEFAULT_INPUT_STREAM
DISTINCT_SIGNALS = 1_000  # generated once, then sent again under fresh ids
WARMUP_SIGNALS = 300  # sent and drained before the first rate: imports, first clusters, first batches
MAX_PIPELINE = 500  # signals sent in one round trip when the producer is behind its schedule
KEEP_UP_SHARE = 0.95  # kept up: results arrive at >= this share of the offered rate ...
KEEP_UP_P99_MS = 100.0  # ... and p99 stays under this (a backlog that grows makes p99 grow with the run)
TARGET_P99_MS, TARGET_RATE = 10.0, 2_000  # informational target: p99 <= 10 ms at 2,000 signals/s
CATCH_UP_S = 120.0  # after a rate the worker did not keep up with, untimed time to clear its backlog
SEED = 11


@dataclasses.dataclass(frozen=True)
class Sent:
    count: int
    seconds: float  # from the first signal's due time to the last send
    max_behind_ms: float  # how late the producer ever was on its own schedule


def start_worker(url: str, log: Path, extra: Sequence[str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "harness", "worker", WORKER, "--redis-url", url, *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with log.open("ab") as sink:
        return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=sink,
                                stdin=subprocess.DEVNULL)


def stop(worker: subprocess.Popen[bytes]) -> None:
    worker.terminate()  # SIGTERM: it finishes and acks the batch in hand
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def produce(client: redis.Redis, signals: Sequence[SignalReceived], prefix: str, rate: float, seconds: float) -> Sent:
    """Send rate x seconds signals, each at its due time; late ones go out together at once (open loop)."""
    total = max(int(rate * seconds), 1)
    sent, max_behind = 0, 0.0
    start = time.perf_counter()
    while sent < total:
        now = time.perf_counter()
        due = min(total, int((now - start) * rate) + 1)
        if due <= sent:
            time.sleep(max(start + sent / rate - now, 0.0))
            continue
        max_behind = max(max_behind, now - (start + sent / rate))
        pipe = client.pipeline(transaction=False)
        for index in range(sent, min(due, sent + MAX_PIPELINE)):
            signal = dataclasses.replace(signals[index % len(signals)], signal_id=f"{prefix}-{index:07d}")
            pipe.xadd(INPUT_STREAM, {keys.PAYLOAD_FIELD: encode_signal(signal)})
        sent += len(pipe)
        pipe.execute()
    return Sent(sent, time.perf_counter() - start, max_behind * 1000)


def wait_for_results(client: redis.Redis, worker: subprocess.Popen[bytes], expected: int, timeout_s: float,
                     log: Path) -> bool:
    """True once the results stream holds `expected` entries; False at the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.xlen(keys.results_stream(WORKER)) >= expected:
            return True
        if worker.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise SystemExit(f"the worker exited with {worker.returncode}: {' | '.join(tail)}")
        time.sleep(0.05)
    return False


def last_result_id(client: redis.Redis) -> str:
    newest = client.xrevrange(keys.results_stream(WORKER), count=1)
    return newest[0][0].decode() if newest else "0-0"


def results_after(client: redis.Redis, after_id: str) -> list[tuple[float, SignalClustered]]:
    """Each result with its results-stream entry time (Redis clock, ms), the moment it was committed."""
    found: list[tuple[float, SignalClustered]] = []
    while True:
        page = client.xrange(keys.results_stream(WORKER), min=f"({after_id}", count=10_000)
        if not page:
            return found
        found += [(entry_id_ms(entry_id), decode_clustered(fields[keys.PAYLOAD_FIELD])) for entry_id, fields in page]
        after_id = page[-1][0].decode()


def percentiles(values: npt.NDArray[np.float64]) -> dict[str, float]:
    p50, p99 = (round(float(value), 2) for value in np.percentile(values, [50, 99]))
    return {"p50_ms": p50, "p99_ms": p99, "max_ms": round(float(values.max()), 2)}


def figures(rate: int, sent: Sent, drained: bool, found: Sequence[tuple[float, SignalClustered]]) -> dict[str, Any]:
    if not found:
        return {"rate": rate, "sent": sent.count, "results": 0, "kept_up": False}
    results = [result for _, result in found]
    latency = percentiles(np.array([r.end_to_end_ms for r in results], dtype=np.float64))
    # The same span on the Redis clock alone (result entry time - input entry time): no worker clock in it.
    committed = percentiles(np.array([at - r.entered_at_ms for at, r in found], dtype=np.float64))
    span_ms = max(at for at, _ in found) - min(r.entered_at_ms for r in results)
    offered_sps = sent.count / sent.seconds if sent.seconds > 0 else float(sent.count)
    results_sps = len(found) / (span_ms / 1000) if span_ms > 0 else float(len(found))
    kept_up = drained and results_sps >= KEEP_UP_SHARE * offered_sps and latency["p99_ms"] <= KEEP_UP_P99_MS
    return {"rate": rate, "sent": sent.count, "results": len(found), "offered_sps": round(offered_sps, 1),
            "results_sps": round(results_sps, 1), **latency,
            "committed_p99_ms": committed["p99_ms"], "committed_max_ms": committed["max_ms"],
            "producer_behind_ms": round(sent.max_behind_ms, 2),
            "errors": sum(r.outcome == "error" for r in results), "kept_up": kept_up}


def run_rate(client: redis.Redis, worker: subprocess.Popen[bytes], log: Path, signals: Sequence[SignalReceived],
             rate: int, seconds: float) -> dict[str, Any]:
    before_id, before_len = last_result_id(client), int(client.xlen(keys.results_stream(WORKER)))
    sent = produce(client, signals, f"lat-{rate}", rate, seconds)
    # A worker that keeps up is done within moments; one that does not gets a bounded time to catch up.
    expected = before_len + sent.count
    drained = wait_for_results(client, worker, expected, max(5.0, seconds), log)
    row = figures(rate, sent, drained, results_after(client, before_id))
    # Not timed: the next rate starts on an empty backlog, and Redis is kept small.
    if drained or wait_for_results(client, worker, expected, CATCH_UP_S, log):
        trim_stream(client, INPUT_STREAM)
    return row


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    print(f"\n{'rate':>6} {'offered/s':>10} {'results/s':>10} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
          f"{'commit p99':>10} {'behind ms':>9} {'results':>8}  kept up")
    for row in rows:
        nan = float("nan")
        print(f"{row['rate']:>6,} {row.get('offered_sps', 0):>10,.0f} {row.get('results_sps', 0):>10,.0f} "
              f"{row.get('p50_ms', nan):>7.2f} {row.get('p99_ms', nan):>7.2f} {row.get('max_ms', nan):>7.2f} "
              f"{row.get('committed_p99_ms', nan):>10.2f} {row.get('producer_behind_ms', 0):>9.1f} "
              f"{row['results']:>8,}  {'yes' if row['kept_up'] else 'NO'}")
    print("p50/p99/max: published_at - entry time (the worker's clock, corrected by Redis TIME); "
          "commit p99: results-stream entry time - input entry time (Redis clock only); "
          "behind: the producer's worst lateness on its own schedule")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rates", default="1000,2000,5000", help="comma-separated signals/s, run in this order")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each rate is offered")
    parser.add_argument("--samples", type=int, default=1_000, help="samples per signal")
    parser.add_argument("--batch-size", type=int, help="the worker's --batch-size (default: the worker's own)")
    parser.add_argument("--block-ms", type=int, help="the worker's --block-ms (default: the worker's own)")
    args = parser.parse_args(argv)
    try:
        args.rate_list = [int(rate) for rate in args.rates.split(",") if rate.strip()]
    except ValueError:
        parser.error(f"--rates must be comma-separated integers, got {args.rates!r}")
    if not args.rate_list or min(args.rate_list) <= 0 or args.seconds <= 0:
        parser.error("--rates must be positive and --seconds > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    extra = [*(["--batch-size", str(args.batch_size)] if args.batch_size else []),
             *(["--block-ms", str(args.block_ms)] if args.block_ms else [])]
    signals = list(generate_signals(DISTINCT_SIGNALS, SEED, devices=8, samples=args.samples))
    log = Path(tempfile.mkdtemp(prefix="bench-latency-")) / "worker.log"
    rows: list[dict[str, Any]] = []
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        worker = start_worker(server.url, log, extra)
        try:
            sent = produce(client, signals, "warmup", rate=WARMUP_SIGNALS, seconds=1.0)
            if not wait_for_results(client, worker, sent.count, 120.0, log):
                raise SystemExit(f"the worker did not answer the warm-up within 120 s; see {log}")
            print(f"worker {WORKER} ready (log: {log}); {args.samples:,} samples per signal", flush=True)
            for rate in args.rate_list:
                rows.append(run_rate(client, worker, log, signals, rate, args.seconds))
                print(f"  {rate:>6,} signals/s: p99 {rows[-1].get('p99_ms', 'n/a')} ms", flush=True)
        finally:
            stop(worker)
            client.close()
    print_table(rows)
    at_target = next((row for row in rows if row["rate"] == TARGET_RATE), None)
    if at_target is not None and "p99_ms" in at_target:
        met = at_target["p99_ms"] <= TARGET_P99_MS
        print(f"\ntarget (informational): p99 <= {TARGET_P99_MS:.0f} ms at {TARGET_RATE:,} signals/s: "
              f"{'met' if met else 'missed'}")
    sustained = [row["rate"] for row in rows if row["kept_up"]]
    print(json.dumps({"p99_ms": {str(row["rate"]): row.get("p99_ms") for row in rows},
                      "max_sustained_sps": max(sustained) if sustained else None,
                      "p50_ms": {str(row["rate"]): row.get("p50_ms") for row in rows},
                      "max_ms": {str(row["rate"]): row.get("max_ms") for row in rows}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
